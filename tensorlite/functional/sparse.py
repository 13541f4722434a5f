"""embedding: rows of a weight table picked by integer indices."""
import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import xp_of
from .shape import IndexScatter


class Embedding(Function):
    """out = weight[indices]; the gradient scatter-adds rows back (repeated indices sum), and the
    padding_idx row gets none, as PyTorch."""

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.padding_idx, ctx.shape = padding_idx, weight.shape
        ctx.save_for_backward(indices)
        return weight[indices]

    @staticmethod
    def backward(ctx, gy):
        (indices,) = ctx.saved_tensors
        g = IndexScatter.apply(gy, indices.data, True, ctx.shape)
        if ctx.padding_idx is not None:
            keep = xp_of(gy.data).ones((ctx.shape[0], 1), dtype=gy.dtype)
            keep[ctx.padding_idx] = 0
            g = g * Tensor(keep)
        return g, None, None


def embedding(input, weight, padding_idx=None):
    """input: integer indices of any shape; weight (num_embeddings, embedding_dim);
    returns input.shape + (embedding_dim,)."""
    idx = input.data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in 'iu':
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(idx.min() if idx.min() < 0 else idx.max())
        raise IndexError(f"embedding: index {bad} is out of range for {n} embeddings")
    if padding_idx is not None:
        padding_idx %= n
    return Embedding.apply(weight, xp_of(weight.data).asarray(idx), padding_idx)


def one_hot(tensor, num_classes=-1):
    """int64 one-hot codes of the class indices in `tensor` (any shape, integers): shape
    tensor.shape + (num_classes,), 1 at [..., tensor[...]] and 0 elsewhere, as PyTorch's
    one_hot.  num_classes=-1 takes tensor.max() + 1.  Not differentiable (integers in and out)."""
    idx = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if idx.dtype.kind not in 'iu':
        raise TypeError(f"one_hot: class values must be an integer tensor, got dtype {idx.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < -1:
        raise ValueError(f"one_hot: num_classes must be -1 (infer) or a non-negative int, got "
                         f"{num_classes!r}")
    xp = xp_of(idx)
    if idx.size and int(idx.min()) < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(idx.min())} at "
                         f"index {_where(xp, idx == idx.min())}")
    if num_classes == -1:
        if idx.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass "
                             "num_classes")
        num_classes = int(idx.max()) + 1
    if idx.size and int(idx.max()) >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes={num_classes}, "
                         f"got {int(idx.max())} at index {_where(xp, idx == idx.max())}")
    classes = xp.arange(int(num_classes), dtype=np.int64)
    return Tensor((idx[..., None] == classes).astype(np.int64))       # (*tensor.shape, C)


def _where(xp, mask):
    """The first index where `mask` holds, as a tuple of ints (() for a 0-d tensor)."""
    return tuple(int(i) for i in np.unravel_index(int(xp.argmax(mask.reshape(-1))), mask.shape))

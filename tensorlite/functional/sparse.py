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
        ctx.indices, ctx.padding_idx, ctx.shape = indices, padding_idx, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx, gy):
        g = IndexScatter.apply(gy, ctx.indices, True, ctx.shape)
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

"""Scaled dot-product attention, as torch.nn.functional.scaled_dot_product_attention.

    attention(q, k, v) = dropout(softmax(scale q k^T + mask)) v

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev)

The leading dims broadcast against each other (as matmul's batch dims).  scale defaults to
1/sqrt(E).  attn_mask broadcasts to (..., L, S): a bool mask says which keys each query *may* attend
(False -> -inf), a float mask is added to the scores.  is_causal=True is the top-left aligned mask
tril(ones(L, S)) -- query i may attend keys 0..i -- and cannot be combined with attn_mask (an error,
as in PyTorch).  dropout_p > 0 zeroes attention weights with probability dropout_p and scales the
rest by 1/(1 - dropout_p), with tensorlite's generator (tensorlite.random); as in PyTorch there is
no training flag: pass dropout_p=0 in evaluation.

A query whose every key is masked has no softmax.  Its output row is 0 and it passes no gradient:
what PyTorch 2.13 returns on CPU (for bool and -inf float masks alike), rather than NaN.

Two paths compute the same function (docs/attention.md derives both):

- plain (`plain_attention`): the (B, L, S) scores by one batched GEMM, a fused stable softmax
  kernel (kernels/{cpu,cuda}/attention.py) in place, the value GEMM.  Backward: one GEMM for dP,
  the fused kernel for dS = P (dP - rowsum(dP P)), three GEMMs for dq, dk, dv.  It holds the
  (B, L, S) probabilities between forward and backward.  Double backward works: when a graph is
  recorded, backward is written in Tensor ops (as GELU and the norms do).
- blockwise (`blockwise_attention`): FlashAttention's algorithm on NumPy/CuPy GEMMs.  For each tile
  of queries it walks blocks of keys with an online softmax (a running max and sum per row, the
  accumulated output rescaled when the max grows), so no more than one (block_q, block_k) score
  block per tile exists at a time; it saves only the output and one logsumexp per row.  Backward
  recomputes each score block from q, k and the logsumexp.  Double backward raises
  NotImplementedError.

This module holds the argument checks, the Functions and the wrappers; the array-level loops of
both paths, their tile sizes and their threads are in tensorlite/kernels/attention_blocks.py.

`scaled_dot_product_attention` takes the blockwise path when the score array would reach
BLOCKWISE_MIN_SCORE_BYTES, the plain one below.  Force a path with

    with attention_path('blockwise'):   # or 'plain'; 'auto' restores the size rule
        out = scaled_dot_product_attention(q, k, v)

Dropout draws its mask differently on the two paths (the plain path one (..., L, S) array from
the generator, the blockwise path one block at a time from a seed, so that backward can redraw
it): with the same seed the two paths give different -- equally distributed -- outputs.
"""
import contextlib
import math

import numpy as np

from .. import backend
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..kernels import attention_blocks
from ..kernels._launch import over_batch
from ..kernels.attention_blocks import (_plain_forward_rows, _plain_grads_arrays, _sum_back,
                                        blockwise_backward_arrays, blockwise_forward_arrays)
from ..random import generator
from ._util import xp_of
from .activation import softmax
from .arithmetic import where
from .linalg import matmul
from .reduction import sum as _sum
from .shape import sum_to

# The blockwise path is taken when B * L * S * itemsize reaches this many bytes (B the product of
# the broadcast leading dims).  Below it the plain path is faster (it computes no score twice; on
# the (512, 196, 64) spatial half of divided attention, 79 MB of scores: 0.23 s against 0.31 s
# forward+backward) and its memory is affordable; above it the plain path's two (B, L, S) arrays
# in backward cost more than they save ((64, 1568, 64) float32: 630 MB each).  Measurements:
# docs/attention.md.
BLOCKWISE_MIN_SCORE_BYTES = 256 * 2**20

PATHS = ('auto', 'plain', 'blockwise')
_path = 'auto'


@contextlib.contextmanager
def attention_path(path):
    """Within the block, scaled_dot_product_attention takes `path`: 'plain', 'blockwise' or
    'auto' (the size rule of BLOCKWISE_MIN_SCORE_BYTES)."""
    global _path
    if path not in PATHS:
        raise ValueError(f"attention_path: path must be one of {PATHS}, got {path!r}")
    previous, _path = _path, path
    try:
        yield
    finally:
        _path = previous


# ==================================================================================================
# arguments: checks, broadcasting, the mask as (Bm, Lm, Sm) plus an index per batch row
# ==================================================================================================

class _Problem:
    """The checked, broadcast shapes of one attention call.

    batch: the broadcast leading dims; B their product; L, S, E, Ev as in the module docstring.
    mask: None or an additive float array (Bm, Lm, Sm) with Lm in (1, L), Sm in (1, S);
    mask_index (B,) int64: batch row b uses mask[mask_index[b]]; mask_shape: the mask as given
    (its gradient, if it has one, is summed back to it)."""

    def __init__(self, query, key, value, attn_mask, dropout_p, is_causal, scale):
        op = 'scaled_dot_product_attention'
        for name, t in (('query', query), ('key', key), ('value', value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
            if t.ndim < 2:
                raise ValueError(f"{op}: {name} must have at least 2 dims (..., tokens, features), "
                                 f"got shape {tuple(t.shape)}")
            if t.dtype.kind != 'f' or t.dtype.name not in ('float32', 'float64'):
                raise TypeError(f"{op}: {name} must be float32 or float64, got dtype {t.dtype}")
        if not query.dtype == key.dtype == value.dtype:
            raise TypeError(f"{op}: query, key and value must have one dtype, got {query.dtype}, "
                            f"{key.dtype} and {value.dtype}")
        (L, E), (S, Ek), (Sv, Ev) = query.shape[-2:], key.shape[-2:], value.shape[-2:]
        if Ek != E:
            raise ValueError(f"{op}: query (shape {tuple(query.shape)}) and key (shape "
                             f"{tuple(key.shape)}) must have the same last dim, got {E} and {Ek}")
        if Sv != S:
            raise ValueError(f"{op}: key (shape {tuple(key.shape)}) and value (shape "
                             f"{tuple(value.shape)}) must have the same number of tokens (dim -2), "
                             f"got {S} and {Sv}")
        try:
            batch = tuple(np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2]))
        except ValueError:
            raise ValueError(f"{op}: the leading dims of query {tuple(query.shape)}, key "
                             f"{tuple(key.shape)} and value {tuple(value.shape)} cannot be "
                             "broadcast together") from None
        if not (isinstance(dropout_p, (int, float)) and 0.0 <= dropout_p <= 1.0):
            raise ValueError(f"{op}: dropout_p must be a number in [0, 1], got {dropout_p!r}")
        if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale)):
            raise ValueError(f"{op}: scale must be a finite number or None, got {scale!r}")
        self.batch, self.B = batch, math.prod(batch)
        self.L, self.S, self.E, self.Ev = L, S, E, Ev
        self.dtype = query.dtype
        self.scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
        self.causal = bool(is_causal)
        self.dropout_p = float(dropout_p)
        self.mask = self.mask_index = self.mask_shape = None
        self.mask_tensor = None         # the float mask Tensor, when it may need a gradient
        if attn_mask is None:
            return
        if is_causal:
            raise ValueError(f"{op}: attn_mask and is_causal=True cannot both be given (as in "
                             "PyTorch); fold the causal mask into attn_mask")
        self._set_mask(op, attn_mask, query)

    def _set_mask(self, op, attn_mask, query):
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor or None, got "
                            f"{type(attn_mask).__name__}")
        m = attn_mask.data
        if m.dtype != np.bool_ and m.dtype != self.dtype:
            raise TypeError(f"{op}: attn_mask must be bool or of the query's dtype {self.dtype}, "
                            f"got {m.dtype}")
        full = self.batch + (self.L, self.S)
        shape = tuple(m.shape)
        if len(shape) > len(full) or any(a not in (1, b) for a, b in
                                         zip(shape[::-1], full[::-1])):
            raise ValueError(f"{op}: attn_mask of shape {shape} cannot be broadcast to the "
                             f"attention weights' shape {full} (..., L, S)")
        xp = xp_of(m)
        padded = (1,) * (len(full) - len(shape)) + shape
        mbatch = padded[:-2]
        self.mask_shape = shape
        if m.dtype == np.bool_:
            add = xp.where(m, 0.0, -np.inf).astype(self.dtype)
        else:
            add = m
            if attn_mask.requires_grad:
                self.mask_tensor = attn_mask
        self.mask = xp.ascontiguousarray(add.reshape((math.prod(mbatch),) + padded[-2:]))
        index = np.arange(math.prod(mbatch), dtype=np.int64).reshape(mbatch)
        self.mask_index = np.ascontiguousarray(np.broadcast_to(index, self.batch).reshape(-1))

    def mask_for(self, attn_mask):
        """What the Functions take as the mask argument: the Tensor when its gradient may be
        needed (so the graph reaches it), else the additive array (or None)."""
        return self.mask_tensor if self.mask_tensor is not None else self.mask

    def flat(self, xp, a, tokens, features):
        """a broadcast to batch + (tokens, features), as a contiguous (B, tokens, features) array
        (a copy only when a was broadcast or strided)."""
        return xp.ascontiguousarray(xp.broadcast_to(a, self.batch + (tokens, features)).reshape(
            (self.B, tokens, features)))

    def score_bytes(self):
        return self.B * self.L * self.S * self.dtype.itemsize

    def without_arrays(self):
        """(a copy that holds no array, the arrays it held): a Function keeps the copy on ctx and
        saves the arrays (mask, mask_index) for backward, where `with_arrays` puts them back."""
        copy = object.__new__(_Problem)
        copy.__dict__.update(vars(self), mask=None, mask_index=None, mask_tensor=None,
                             has_mask_tensor=self.mask_tensor is not None)
        return copy, (self.mask, self.mask_index)

    def with_arrays(self, mask, mask_index, mask_input):
        """A copy of this array-free problem (`without_arrays`) with its saved arrays back (from
        saved_tensors: constant Tensors or None); `mask_input` is the Function's mask argument,
        the mask Tensor when it may need a gradient."""
        copy = object.__new__(_Problem)
        copy.__dict__.update(vars(self), mask=None if mask is None else mask.data,
                             mask_index=None if mask_index is None else mask_index.data,
                             mask_tensor=mask_input if self.has_mask_tensor else None)
        return copy


def _dropout_keep(shape, p, dtype, like):
    """A scaled keep-mask (0 or 1/(1-p)) of `shape` drawn from tensorlite's generator."""
    keep = generator().random(shape, dtype=np.float32) >= p
    scaled = keep.astype(dtype) * (1.0 / (1.0 - p)) if p < 1.0 else keep.astype(dtype)
    return backend.to_device(scaled, backend.device_of(like))


# ==================================================================================================
# the plain path
# ==================================================================================================

class PlainAttention(Function):
    """softmax(scale q k^T + mask) v with the (B, L, S) probabilities held for backward.

    Arguments: q, k, v (any leading dims broadcasting to pb.batch), mask (None, an additive array
    or a float mask Tensor: see _Problem.mask_for), pb (_Problem), keep (None or the scaled dropout
    keep-mask, (B, L, S)).  The arrays -- keep and pb's mask and mask_index too -- are kept through
    save_for_backward; ctx.pb is a copy of pb without them (_Problem.without_arrays)."""

    @staticmethod
    def forward(ctx, q, k, v, mask, pb, keep):
        xp = xp_of(q)
        qf, kf, vf = pb.flat(xp, q, pb.L, pb.E), pb.flat(xp, k, pb.S, pb.E), \
            pb.flat(xp, v, pb.S, pb.Ev)
        probs = xp.empty((pb.B, pb.L, pb.S), pb.dtype)
        out = xp.empty((pb.B, pb.L, pb.Ev), pb.dtype)
        over_batch(xp, pb.B, _plain_forward_rows, qf, kf, vf, pb, None if mask is None else
                    pb.mask, keep, probs, out)
        ctx.pb, pb_arrays = pb.without_arrays()
        ctx.save_for_backward(q, k, v, mask, probs, keep, *pb_arrays)
        return out.reshape(pb.batch + (pb.L, pb.Ev))

    @staticmethod
    def backward(ctx, gout):
        q, k, v, mask, probs, keep, pb_mask, pb_mask_index = ctx.saved_tensors
        pb = ctx.pb.with_arrays(pb_mask, pb_mask_index, mask)
        keep = None if keep is None else keep.data
        needs = ctx.needs_input_grad
        if is_grad_enabled():
            grads = _plain_grads_differentiable(q, k, v, mask, gout, probs.data, pb, keep, needs)
        else:
            grads = _plain_grads_arrays(q.data, k.data, v.data, gout.data, probs.data, pb, keep,
                                        needs)
        return tuple(None if g is None else (g if isinstance(g, Tensor) else Tensor(g))
                     for g in grads) + (None, None)


def _plain_grads_differentiable(q, k, v, mask, gout, probs, pb, keep, needs):
    """(dq, dk, dv, dmask) as Tensor expressions, for double backward: the probabilities are
    recomputed from q and k with Tensor ops (the saved ones are constants), then the formulas of
    _plain_grads_arrays are written with Tensor ops."""
    full = pb.batch + (pb.L, pb.S)
    p = _probs_differentiable(q, k, mask, probs, pb)
    w = p if keep is None else p * Tensor(keep.reshape(full))
    dq = dk = dv = dmask = None
    if needs[2]:
        dv = sum_to(matmul(w.mT, gout), v.shape)
    if needs[0] or needs[1] or needs[3]:
        dp = matmul(gout, v.mT)
        if keep is not None:
            dp = dp * Tensor(keep.reshape(full))
        ds = p * (dp - _sum(dp * p, -1, keepdim=True))
        if needs[0]:
            dq = sum_to(matmul(ds, k) * pb.scale, q.shape)
        if needs[1]:
            dk = sum_to(matmul(ds.mT, q) * pb.scale, k.shape)
        if needs[3]:
            dmask = sum_to(ds, pb.mask_shape)
    return dq, dk, dv, dmask


def _probs_differentiable(q, k, mask, probs, pb):
    """softmax(scale q k^T + mask) in Tensor ops, rows with every key masked set to 0 (their
    logits are replaced by 0 before the softmax, so no NaN reaches a gradient)."""
    xp = xp_of(probs)
    full = pb.batch + (pb.L, pb.S)
    z = matmul(q, k.mT) * pb.scale
    if pb.mask_tensor is not None:                    # a float mask that needs its gradient
        z = z + mask
    elif pb.mask is not None:                         # a constant: (B, Lm, Sm) -> batch + (Lm, Sm)
        z = z + Tensor(pb.mask[pb.mask_index].reshape(pb.batch + pb.mask.shape[1:]))
    if pb.causal:
        z = z + Tensor(_causal_additive(xp, pb.L, pb.S, pb.dtype))
    live = probs.reshape(full).sum(axis=-1, keepdims=True) > 0.5     # rows with a softmax
    if not bool(live.all()):
        z = where(Tensor(xp.broadcast_to(live, full)), z, 0.0)
        return softmax(z, -1) * Tensor(live.astype(pb.dtype))
    return softmax(z, -1)


def _causal_additive(xp, L, S, dtype):
    """(L, S): 0 where key j <= query i (tril(ones(L, S))), -inf above."""
    return xp.where(xp.tri(L, S, dtype=bool), 0.0, -np.inf).astype(dtype)


def plain_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scaled_dot_product_attention by the plain path (see the module docstring)."""
    pb = _Problem(query, key, value, attn_mask, dropout_p, is_causal, scale)
    keep = None
    if pb.dropout_p > 0:
        keep = _dropout_keep((pb.B, pb.L, pb.S), pb.dropout_p, pb.dtype, query.data)
    return PlainAttention.apply(query, key, value, pb.mask_for(attn_mask), pb, keep)


# ==================================================================================================
# the blockwise path
# ==================================================================================================

class BlockwiseAttention(Function):
    """The blockwise path: saves q, k, v, the mask, the output, lse (B, L) and pb's mask arrays;
    see blockwise_*_arrays."""

    @staticmethod
    def forward(ctx, q, k, v, mask, pb, seed, block_q, block_k):
        xp = xp_of(q)
        ctx.seed, ctx.blocks = seed, (block_q, block_k)
        qf, kf, vf = pb.flat(xp, q, pb.L, pb.E), pb.flat(xp, k, pb.S, pb.E), \
            pb.flat(xp, v, pb.S, pb.Ev)
        out, lse = blockwise_forward_arrays(qf, kf, vf, pb, seed, block_q, block_k)
        out = out.reshape(pb.batch + (pb.L, pb.Ev))
        ctx.pb, pb_arrays = pb.without_arrays()
        ctx.save_for_backward(q, k, v, mask, out, lse, *pb_arrays)
        return out

    @staticmethod
    def backward(ctx, gout):
        if is_grad_enabled():
            raise NotImplementedError(
                "scaled_dot_product_attention (blockwise path): double backward is not "
                "implemented; run the forward under attention_path('plain') for higher-order "
                "gradients")
        q, k, v, mask, out, lse, pb_mask, pb_mask_index = ctx.saved_tensors
        pb = ctx.pb.with_arrays(pb_mask, pb_mask_index, mask)
        xp = xp_of(q.data)
        qf, kf, vf = pb.flat(xp, q.data, pb.L, pb.E), pb.flat(xp, k.data, pb.S, pb.E), \
            pb.flat(xp, v.data, pb.S, pb.Ev)
        go = xp.ascontiguousarray(gout.data.reshape(pb.B, pb.L, pb.Ev), dtype=pb.dtype)
        of = out.data.reshape(pb.B, pb.L, pb.Ev)
        dq, dk, dv, dmask = blockwise_backward_arrays(qf, kf, vf, of, lse.data, go, pb, ctx.seed,
                                                      *ctx.blocks, ctx.needs_input_grad)
        needs = ctx.needs_input_grad
        grads = (
            _sum_back(xp, dq.reshape(pb.batch + (pb.L, pb.E)), q.shape) if needs[0] else None,
            _sum_back(xp, dk.reshape(pb.batch + (pb.S, pb.E)), k.shape) if needs[1] else None,
            _sum_back(xp, dv.reshape(pb.batch + (pb.S, pb.Ev)), v.shape) if needs[2] else None,
            _sum_back(xp, _mask_full(xp, dmask, pb), pb.mask_shape) if needs[3] else None,
        )
        return tuple(None if g is None else Tensor(g) for g in grads) + (None,) * 4


def _mask_full(xp, dmask3, pb):
    """The (Bm, Lm, Sm) mask gradient in the mask's own (left-padded) shape."""
    padded = (1,) * (len(pb.batch) + 2 - len(pb.mask_shape)) + tuple(pb.mask_shape)
    return dmask3.reshape(padded)


def blockwise_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                        scale=None, block_q=None, block_k=None):
    """scaled_dot_product_attention by the blockwise path (see the module docstring), with
    query tiles of block_q rows and key blocks of block_k keys (default attention_blocks.BLOCK_Q,
    BLOCK_K)."""
    pb = _Problem(query, key, value, attn_mask, dropout_p, is_causal, scale)
    block_q, block_k = block_q or attention_blocks.BLOCK_Q, block_k or attention_blocks.BLOCK_K
    for name, n in (('block_q', block_q), ('block_k', block_k)):
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"blockwise_attention: {name} must be a positive int, got {n!r}")
    seed = int(generator().integers(2**63)) if pb.dropout_p > 0 else 0
    return BlockwiseAttention.apply(query, key, value, pb.mask_for(attn_mask), pb, seed,
                                    block_q, block_k)


# ==================================================================================================
# the public function
# ==================================================================================================

def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """dropout(softmax(scale query key^T + mask)) value, as PyTorch's function of this name.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); attn_mask bool ("may
    attend") or float (added), broadcastable to (..., L, S); is_causal: tril(ones(L, S)), not with
    attn_mask; scale: default 1/sqrt(E).  The path (plain or blockwise) is chosen by size or by
    attention_path(); both give the same result (module docstring)."""
    path = _path
    if path == 'auto':
        pb = _Problem(query, key, value, attn_mask, dropout_p, is_causal, scale)
        path = 'blockwise' if pb.score_bytes() >= BLOCKWISE_MIN_SCORE_BYTES else 'plain'
    fn = blockwise_attention if path == 'blockwise' else plain_attention
    return fn(query, key, value, attn_mask, dropout_p, is_causal, scale)

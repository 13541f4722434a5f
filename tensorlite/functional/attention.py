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

`scaled_dot_product_attention` takes the blockwise path when the score array would reach
BLOCKWISE_MIN_SCORE_BYTES, the plain one below.  Force a path with

    with attention_path('blockwise'):   # or 'plain'; 'auto' restores the size rule
        out = scaled_dot_product_attention(q, k, v)

Dropout draws its mask differently on the two paths (the plain path one (..., L, S) array from
the generator, the blockwise path one block at a time from a seed, so that backward can redraw
it): with the same seed the two paths give different -- equally distributed -- outputs.
"""
import concurrent.futures
import contextlib
import ctypes
import glob
import math
import os

import numpy as np

from .. import backend, kernels
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
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

# Tile sizes of the blockwise path: queries per tile, keys per block.  A 256 x 256 float32 block
# is 256 KB: the score block and dS block of a worker stay in its core's L2 (2 MB here) while the
# GEMMs are large enough to run near BLAS speed (measured on (64, 1568, 64) float32 against
# 128 x 256, 256 x 128, 192 x 384, 128 x 512: docs/attention.md).
BLOCK_Q = 256
BLOCK_K = 256

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


def _sum_back(xp, g, shape):
    """A gradient of the broadcast shape summed back to the input's `shape`."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)


def _mask_grad(xp, ds, pb):
    """The gradient of an additive float mask: dS (B, L, S) summed back to the mask's shape."""
    return _sum_back(xp, ds.reshape(pb.batch + (pb.L, pb.S)), pb.mask_shape)


def _empty_mask(xp, dtype):
    return xp.zeros((0, 1, 1), dtype), np.zeros(1, np.int64)[:0]


def _kernel_mask(xp, pb, mask):
    """The (mask, mask_index) pair the softmax kernel takes, an empty mask for none."""
    if mask is None:
        m, _ = _empty_mask(xp, pb.dtype)
        return m, np.zeros(pb.B, np.int64)
    return mask, pb.mask_index


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
    keep-mask, (B, L, S))."""

    @staticmethod
    def forward(ctx, q, k, v, mask, pb, keep):
        xp = xp_of(q)
        ctx.pb, ctx.keep = pb, keep
        qf, kf, vf = pb.flat(xp, q, pb.L, pb.E), pb.flat(xp, k, pb.S, pb.E), \
            pb.flat(xp, v, pb.S, pb.Ev)
        probs = xp.empty((pb.B, pb.L, pb.S), pb.dtype)
        out = xp.empty((pb.B, pb.L, pb.Ev), pb.dtype)
        _over_batch(xp, pb.B, _plain_forward_rows, qf, kf, vf, pb, None if mask is None else
                    pb.mask, keep, probs, out)
        ctx.save_for_backward(q, k, v, mask, probs)
        return out.reshape(pb.batch + (pb.L, pb.Ev))

    @staticmethod
    def backward(ctx, gout):
        q, k, v, mask, probs = ctx.saved_tensors
        pb, keep = ctx.pb, ctx.keep
        needs = ctx.needs_input_grad
        if is_grad_enabled():
            grads = _plain_grads_differentiable(q, k, v, mask, gout, probs.data, pb, keep, needs)
        else:
            grads = _plain_grads_arrays(q.data, k.data, v.data, gout.data, probs.data, pb, keep,
                                        needs)
        return tuple(None if g is None else (g if isinstance(g, Tensor) else Tensor(g))
                     for g in grads) + (None, None)


def _plain_forward_rows(b0, b1, qf, kf, vf, pb, mask, keep, probs, out):
    """The plain forward of batch rows b0..b1-1 (one worker's share): raw scores by GEMM, the
    softmax kernel in place, the value GEMM."""
    xp = xp_of(qf)
    p = probs[b0:b1]
    xp.matmul(qf[b0:b1], kf[b0:b1].transpose(0, 2, 1), out=p)          # (b, L, S) raw scores
    if p.size:
        m, index = _kernel_mask(xp, pb, mask)
        kernels.twin('attention', p).softmax_fwd(p, m, index[b0:b1], pb.scale, pb.causal, p)
    xp.matmul(p if keep is None else p * keep[b0:b1], vf[b0:b1], out=out[b0:b1])


def _plain_grads_arrays(q, k, v, gout, probs, pb, keep, needs):
    """(dq, dk, dv, dmask) on arrays: dv = W^T dO with W = P * keep, dP = (dO v^T) * keep,
    dS = P (dP - rowsum(dP P)) by the kernel, dq = scale dS k, dk = scale dS^T q, dmask = dS."""
    xp = xp_of(q)
    qf, kf, vf = pb.flat(xp, q, pb.L, pb.E), pb.flat(xp, k, pb.S, pb.E), \
        pb.flat(xp, v, pb.S, pb.Ev)
    go = xp.ascontiguousarray(gout.reshape(pb.B, pb.L, pb.Ev), dtype=pb.dtype)
    dq = xp.empty((pb.B, pb.L, pb.E), pb.dtype) if needs[0] else None
    dk = xp.empty((pb.B, pb.S, pb.E), pb.dtype) if needs[1] else None
    dv = xp.empty((pb.B, pb.S, pb.Ev), pb.dtype) if needs[2] else None
    ds = xp.empty_like(probs) if needs[0] or needs[1] or needs[3] else None
    _over_batch(xp, pb.B, _plain_backward_rows, qf, kf, vf, go, probs, pb, keep, dq, dk, dv, ds)
    if needs[0]:
        dq = _sum_back(xp, dq.reshape(pb.batch + (pb.L, pb.E)), q.shape)
    if needs[1]:
        dk = _sum_back(xp, dk.reshape(pb.batch + (pb.S, pb.E)), k.shape)
    if needs[2]:
        dv = _sum_back(xp, dv.reshape(pb.batch + (pb.S, pb.Ev)), v.shape)
    dmask = _mask_grad(xp, ds, pb) if needs[3] else None
    return dq, dk, dv, dmask


def _plain_backward_rows(b0, b1, qf, kf, vf, go, probs, pb, keep, dq, dk, dv, ds):
    """_plain_grads_arrays for batch rows b0..b1-1 into the preallocated dq, dk, dv, ds (None
    for a gradient nobody needs; ds, the logits' gradient, is needed by dq, dk and dmask)."""
    xp = xp_of(qf)
    p, g = probs[b0:b1], go[b0:b1]
    if dv is not None:
        w = p if keep is None else p * keep[b0:b1]
        xp.matmul(w.transpose(0, 2, 1), g, out=dv[b0:b1])
    if ds is None:
        return
    d = ds[b0:b1]
    xp.matmul(g, vf[b0:b1].transpose(0, 2, 1), out=d)                  # dP
    if keep is not None:
        d *= keep[b0:b1]
    if d.size:
        kernels.twin('attention', d).softmax_bwd(p, d, d)
    if dq is not None:
        xp.multiply(xp.matmul(d, kf[b0:b1], out=dq[b0:b1]), pb.scale, out=dq[b0:b1])
    if dk is not None:
        xp.multiply(xp.matmul(d.transpose(0, 2, 1), qf[b0:b1], out=dk[b0:b1]), pb.scale,
                    out=dk[b0:b1])


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

def _block_keep(xp, seed, p, b, i0, j0, shape, dtype):
    """The scaled dropout keep-mask of score block (b, i0, j0): drawn from a generator seeded by
    (seed, b, i0, j0), so backward redraws exactly the block forward used."""
    rng = np.random.default_rng((seed, b, i0, j0))
    keep = rng.random(shape, dtype=np.float32) >= p
    scaled = keep.astype(dtype) * (1.0 / (1.0 - p)) if p < 1.0 else keep.astype(dtype)
    return xp.asarray(scaled)


def _score_block(xp, pb, qt, kf, b, i0, i1, j0, j1, s):
    """s[:] = scaled q_tile k_block^T + mask block, -inf above the diagonal when causal.
    qt: the query tile already multiplied by scale, (i1 - i0, E); s: (i1 - i0, j1 - j0)."""
    xp.matmul(qt, kf[b, j0:j1].T, out=s)
    if pb.mask is not None:
        m = pb.mask[pb.mask_index[b]]
        rows = slice(None) if m.shape[0] == 1 else slice(i0, i1)
        cols = slice(None) if m.shape[1] == 1 else slice(j0, j1)
        s += m[rows, cols]
    if pb.causal and j1 - 1 > i0:                   # the block reaches above the diagonal
        above = xp.arange(j0, j1)[None, :] > xp.arange(i0, i1)[:, None]
        xp.copyto(s, -np.inf, where=above)


# The blockwise loops run on BLOCKWISE_THREADS Python threads, each on its own share of the
# batch rows with single-threaded BLAS (OpenBLAS's per-thread setting): the Numba block kernels
# release the GIL, NumPy's ufuncs too, so the elementwise work runs on every core instead of one,
# and each GEMM is one core's, without OpenBLAS's fork/join on matrices this small.  On CuPy
# arrays one thread issues everything (the device is the parallel part).
BLOCKWISE_THREADS = max(1, min(os.cpu_count() or 1, 8))


def _blas_threads_setter():
    """OpenBLAS's openblas_set_num_threads_local from the library NumPy loaded, or None."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + '.libs', '*openblas*'))
    for path in libs:
        try:
            fn = getattr(ctypes.CDLL(path), 'openblas_set_num_threads_local')
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_set_blas_threads_local = _blas_threads_setter()


def _over_batch(xp, B, work, *args):
    """work(b_start, b_stop, *args) over B batch rows, split between BLOCKWISE_THREADS threads
    (one thread on CuPy, without OpenBLAS's per-thread setting, or for a single row)."""
    threads = min(BLOCKWISE_THREADS, B)
    if xp is not np or threads <= 1 or _set_blas_threads_local is None:
        work(0, B, *args)
        return

    def share(t):
        previous = _set_blas_threads_local(1)
        try:
            work(t * B // threads, (t + 1) * B // threads, *args)
        finally:
            _set_blas_threads_local(previous)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(share, t) for t in range(threads)]:
            f.result()


def _block(buf, rows, cols):
    """A C-contiguous (rows, cols) view on the front of the flat buffer `buf` (the kernels check
    contiguity; a [:rows, :cols] slice of a 2-D buffer would not be)."""
    return buf[:rows * cols].reshape(rows, cols)


def blockwise_forward_arrays(qf, kf, vf, pb, seed, block_q, block_k):
    """out (B, L, Ev) and lse (B, L) by the online softmax over key blocks.

    Per query tile: m (running max), l (running sum of exp(z - m)) and acc (running
    sum of exp(z - m) v) over the key blocks seen so far; a new block with a larger max rescales
    l and acc by alpha = exp(m_old - m_new) (kernel online_softmax_block).  At the end
    out = acc / l and lse = m + log(l) -- +inf for a row with every key masked, so that
    exp(z - lse) = 0 in backward."""
    xp = xp_of(qf)
    out = xp.empty((pb.B, pb.L, pb.Ev), pb.dtype)
    lse = xp.empty((pb.B, pb.L), pb.dtype)
    _over_batch(xp, pb.B, _forward_rows, qf, kf, vf, pb, seed, block_q, block_k, out, lse)
    return out, lse


def _forward_rows(b_start, b_stop, qf, kf, vf, pb, seed, block_q, block_k, out, lse):
    """blockwise_forward_arrays for batch rows b_start..b_stop-1 (one worker's share)."""
    xp = xp_of(qf)
    k = kernels.twin('attention', qf)
    L, S, Ev = pb.L, pb.S, pb.Ev
    dt = pb.dtype
    sbuf = xp.empty(block_q * block_k, dt)          # the one score block of the current tile
    pvbuf = xp.empty((block_q, Ev), dt)
    qbuf = xp.empty((block_q, pb.E), dt)
    m, l, alpha = (xp.empty(block_q, dt) for _ in range(3))
    for b in range(b_start, b_stop):
        for i0 in range(0, L, block_q):
            i1 = min(L, i0 + block_q)
            tq = i1 - i0
            qt = xp.multiply(qf[b, i0:i1], pb.scale, out=qbuf[:tq])
            mt, lt, at = m[:tq], l[:tq], alpha[:tq]
            mt.fill(-np.inf)
            lt.fill(0)
            acc = out[b, i0:i1]                         # accumulated in place
            acc.fill(0)
            stop = min(S, i1) if pb.causal else S      # keys no row of the tile may attend: skipped
            for j0 in range(0, stop, block_k):
                j1 = min(stop, j0 + block_k)
                s = _block(sbuf, tq, j1 - j0)
                _score_block(xp, pb, qt, kf, b, i0, i1, j0, j1, s)
                k.online_softmax_block(s, mt, lt, at)
                if pb.dropout_p > 0:
                    s *= _block_keep(xp, seed, pb.dropout_p, b, i0, j0, s.shape, dt)
                acc *= at[:, None]
                acc += xp.matmul(s, vf[b, j0:j1], out=pvbuf[:tq])
            empty = lt == 0
            lt[empty] = 1.0
            acc /= lt[:, None]
            lse[b, i0:i1] = xp.where(empty, np.inf, mt + xp.log(lt))


def blockwise_backward_arrays(qf, kf, vf, out, lse, gout, pb, seed, block_q, block_k, needs):
    """(dq, dk, dv, dmask) by recomputing P block by block from q, k and lse (FlashAttention's
    backward): per block, P = exp(z - lse), dv += (P keep)^T dO, dP = (dO v^T) keep,
    dS = P (dP - D) with D = rowsum(dO out), dq += scale dS k, dk += scale dS^T q, dmask += dS."""
    xp = xp_of(qf)
    B, L, S, E, Ev = pb.B, pb.L, pb.S, pb.E, pb.Ev
    dt = pb.dtype
    D = xp.einsum('ble,ble->bl', gout, out)          # rowsum(dO * out) = rowsum(dP * P)
    dq = xp.zeros((B, L, E), dt)
    dk = xp.zeros((B, S, E), dt)
    dv = xp.zeros((B, S, Ev), dt)
    dmask = None
    if needs[3]:
        # batch rows may share a mask slice: one worker, so that no two threads add to it
        dmask = xp.zeros(pb.mask.shape, dt)
        _backward_rows(0, B, qf, kf, vf, lse, gout, D, pb, seed, block_q, block_k, dq, dk, dv,
                       dmask)
    else:
        _over_batch(xp, B, _backward_rows, qf, kf, vf, lse, gout, D, pb, seed, block_q, block_k,
                    dq, dk, dv, None)
    dq *= pb.scale
    return dq, dk, dv, dmask


def _backward_rows(b_start, b_stop, qf, kf, vf, lse, gout, D, pb, seed, block_q, block_k,
                   dq, dk, dv, dmask):
    """blockwise_backward_arrays for batch rows b_start..b_stop-1 (one worker's share)."""
    xp = xp_of(qf)
    k = kernels.twin('attention', qf)
    L, S, E, Ev = pb.L, pb.S, pb.E, pb.Ev
    dt = pb.dtype
    pbuf = xp.empty(block_q * block_k, dt)
    dsbuf = xp.empty(block_q * block_k, dt)
    qbuf = xp.empty((block_q, E), dt)
    qgrad = xp.empty((block_q, E), dt)
    kgrad = xp.empty((block_k, max(E, Ev)), dt)
    for b in range(b_start, b_stop):
        for i0 in range(0, L, block_q):
            i1 = min(L, i0 + block_q)
            tq = i1 - i0
            qt = xp.multiply(qf[b, i0:i1], pb.scale, out=qbuf[:tq])
            go = gout[b, i0:i1]
            stop = min(S, i1) if pb.causal else S
            for j0 in range(0, stop, block_k):
                j1 = min(stop, j0 + block_k)
                tk = j1 - j0
                p = _block(pbuf, tq, tk)
                _score_block(xp, pb, qt, kf, b, i0, i1, j0, j1, p)
                k.shifted_exp_rows(p, lse[b, i0:i1])
                ds = _block(dsbuf, tq, tk)
                xp.matmul(go, vf[b, j0:j1].T, out=ds)          # dP of the dropped weights
                if pb.dropout_p > 0:
                    keep = _block_keep(xp, seed, pb.dropout_p, b, i0, j0, p.shape, dt)
                    ds *= keep
                    dv[b, j0:j1] += xp.matmul((p * keep).T, go, out=kgrad[:tk, :Ev])
                else:
                    dv[b, j0:j1] += xp.matmul(p.T, go, out=kgrad[:tk, :Ev])
                k.softmax_grad_block(p, ds, D[b, i0:i1])
                dq[b, i0:i1] += xp.matmul(ds, kf[b, j0:j1], out=qgrad[:tq])
                dk[b, j0:j1] += xp.matmul(ds.T, qt, out=kgrad[:tk, :E])
                if dmask is not None:
                    _add_mask_grad(dmask, pb, ds, b, i0, i1, j0, j1)


def _add_mask_grad(dmask, pb, ds, b, i0, i1, j0, j1):
    m = dmask[pb.mask_index[b]]
    g = ds
    if m.shape[0] == 1:
        g = g.sum(axis=0, keepdims=True)
        i0, i1 = 0, 1
    if m.shape[1] == 1:
        g = g.sum(axis=1, keepdims=True)
        j0, j1 = 0, 1
    m[i0:i1, j0:j1] += g


class BlockwiseAttention(Function):
    """The blockwise path: saves q, k, v, the output and lse (B, L); see blockwise_*_arrays."""

    @staticmethod
    def forward(ctx, q, k, v, mask, pb, seed, block_q, block_k):
        xp = xp_of(q)
        ctx.pb, ctx.seed, ctx.blocks = pb, seed, (block_q, block_k)
        qf, kf, vf = pb.flat(xp, q, pb.L, pb.E), pb.flat(xp, k, pb.S, pb.E), \
            pb.flat(xp, v, pb.S, pb.Ev)
        out, lse = blockwise_forward_arrays(qf, kf, vf, pb, seed, block_q, block_k)
        out = out.reshape(pb.batch + (pb.L, pb.Ev))
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, gout):
        if is_grad_enabled():
            raise NotImplementedError(
                "scaled_dot_product_attention (blockwise path): double backward is not "
                "implemented; run the forward under attention_path('plain') for higher-order "
                "gradients")
        q, k, v, out, lse = ctx.saved_tensors
        pb = ctx.pb
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
    query tiles of block_q rows and key blocks of block_k keys (default BLOCK_Q, BLOCK_K)."""
    pb = _Problem(query, key, value, attn_mask, dropout_p, is_causal, scale)
    block_q, block_k = block_q or BLOCK_Q, block_k or BLOCK_K
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

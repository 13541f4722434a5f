"""Scaled dot-product attention on arrays: the row loops of the plain and blockwise paths.

Everything here works on NumPy or CuPy arrays and knows nothing of Tensors; the autograd Functions
that call it are in tensorlite/functional/attention.py, and docs/attention.md derives both paths.
Arrays come flattened to a batch of B rows: q (B, L, E), k (B, S, E), v (B, S, Ev).  `pb`
describes one call: B, L, S, E, Ev, batch (the broadcast leading dims), dtype, scale, causal,
dropout_p, the mask as an additive (Bm, Lm, Sm) array with one index per batch row (mask,
mask_index; None for none) and the shape the user gave it (mask_shape), and flat(xp, a, tokens,
features), which broadcasts an input to (B, tokens, features) -- functional/attention.py's
`_Problem`, which also checks the arguments.

- plain: per batch row, the (L, S) scores by GEMM, the fused softmax kernel
  (kernels/{cpu,cuda}/attention.py) in place, the value GEMM; backward from the saved
  probabilities.
- blockwise: FlashAttention's online softmax over (BLOCK_Q, BLOCK_K) score blocks, forward and
  backward, with the score blocks recomputed in backward from q, k and one logsumexp per row.

Both walk the batch rows on worker threads (`over_batch` of kernels/_launch.py, the thread policy).
"""
import numpy as np

from .. import kernels
from ..backend import array_module as xp_of
from ._launch import over_batch as _over_batch      # the thread policy: batch rows between workers

# Tile sizes of the blockwise path: queries per tile, keys per block.  A 256 x 256 float32 block
# is 256 KB: the score block and dS block of a worker stay in its core's L2 (2 MB here) while the
# GEMMs are large enough to run near BLAS speed: (64, 1568, 64) float32 forward + backward takes
# 1,657 ms against 2,224 ms with 128 x 256 (docs/attention.md, "The threshold").
BLOCK_Q = 256
BLOCK_K = 256


# ==================================================================================================
# the mask: the softmax kernel's argument, its gradient summed back to its shape
# ==================================================================================================

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


# ==================================================================================================
# the plain path
# ==================================================================================================

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

"""Pooling and resampling kernels (CPU).

Every pool is seen as 3-D: planes `(B, D, H, W)` (B = N * C; a 1-D or 2-D pool has leading
spatial axes of size 1), and where output o of an axis reads is given by a table, not by
(kernel, stride, padding) arithmetic inside the loop: `windows[a]` is an int64 `(O_a, 2)` array of
[start, stop) input positions, already clipped to the input, read every `dilation[a]` steps.  So
max_pool and adaptive_max_pool share one kernel, avg_pool and adaptive_avg_pool another, and the
padding, ceil_mode and divisor rules of PyTorch live in Python (functional/pool.py), where they can
be read.

Windows are boxes, so the pools are computed separably: the window's (d, h) rows are reduced into
one row, then each output reduces its columns of that row, which vectorizes where scanning each
window does not (benchmarks/bench_pool.py times the result).
No parallel loop has two threads writing one element: avg_pool_bwd and resample_bwd gather (each
input position sums the outputs that read it), and the scatters (max_pool_bwd, resample_bwd along
the last axis) are parallel over planes or rows, which are disjoint.

Resampling (interpolate) is separable: one axis at a time, `y[p, o, q] = w0 x[p, i0, q] +
w1 x[p, i1, q]` on the array viewed as `(P, I, Q)`, with `index` and `weight` `(O, 2)` tables.
"""
import numba
import numpy as np

from .._launch import (check_max_pool_bwd, check_pool, check_resample, resample_ranges, run,
                       window_ranges)
from .._scalar import for_cpu

(resample_weight,) = for_cpu('resample_weight')


# ---- kernels --------------------------------------------------------------------------------------

@numba.njit(parallel=True, cache=True)
def _max_pool_fwd(x, wd, wh, ww, sd, sh, sw, neg_inf, y, indices):
    B, D, H, W = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    for bo in numba.prange(B * OD):
        b = bo // OD
        od = bo - b * OD
        d0, d1 = wd[od, 0], wd[od, 1]
        best = np.empty(W, x.dtype)
        arg = np.empty(W, np.int64)
        for oh in range(OH):
            h0, h1 = wh[oh, 0], wh[oh, 1]
            # separable: the max over the window's (d, h) rows for every column k (a branch-free
            # pass LLVM vectorizes), then over each output's columns; the same result as scanning
            # each window, by the order below
            if d0 < d1 and h0 < h1:
                first = (d0 * H + h0) * W
                for k in range(W):
                    best[k] = neg_inf
                    arg[k] = first + k
            for i in range(d0, d1, sd):
                for j in range(h0, h1, sh):
                    row = x[b, i, j]
                    base = (i * H + j) * W
                    for k in range(W):
                        v = row[k]
                        take = v > best[k] or v != v
                        best[k] = v if take else best[k]
                        arg[k] = base + k if take else arg[k]
            for ow in range(OW):
                w0, w1 = ww[ow, 0], ww[ow, 1]
                if not (d0 < d1 and h0 < h1 and w0 < w1):     # dilation skipped the input
                    y[b, od, oh, ow] = neg_inf
                    indices[b, od, oh, ow] = -1
                    continue
                # PyTorch scans the window in flat order and takes v when v > best or v is NaN:
                # so the last NaN wins, else the largest value at its smallest flat position
                bv, ba = best[w0], arg[w0]
                for k in range(w0 + sw, w1, sw):
                    v, a = best[k], arg[k]
                    if v != v:
                        if bv == bv or a > ba:
                            bv, ba = v, a
                    elif bv == bv and (v > bv or (v == bv and a < ba)):
                        bv, ba = v, a
                y[b, od, oh, ow] = bv
                indices[b, od, oh, ow] = ba


@numba.njit(parallel=True, cache=True)
def _max_pool_bwd(gy, indices, gx):
    B, M = gy.shape
    N = gx.shape[1]
    for b in numba.prange(B):           # planes are disjoint: no two threads write one element
        for i in range(N):
            gx[b, i] = 0
        for o in range(M):
            t = indices[b, o]
            if t >= 0 and t < N:
                gx[b, t] += gy[b, o]


@numba.njit(parallel=True, cache=True)
def _avg_pool_fwd(x, wd, wh, ww, cd, ch, cw, zero, y):
    B, D, H, W = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    for bo in numba.prange(B * OD):
        b = bo // OD
        od = bo - b * OD
        acc = np.empty(W, x.dtype)
        for oh in range(OH):
            # separable, as max: sum the window's (d, h) rows into one row (vectorized adds),
            # then each output sums its columns of that row
            for k in range(W):
                acc[k] = zero
            for i in range(wd[od, 0], wd[od, 1]):
                for j in range(wh[oh, 0], wh[oh, 1]):
                    row = x[b, i, j]
                    for k in range(W):
                        acc[k] += row[k]
            c = cd[od] * ch[oh]
            for ow in range(OW):
                s = zero
                for k in range(ww[ow, 0], ww[ow, 1]):
                    s += acc[k]
                y[b, od, oh, ow] = s / (c * cw[ow])


@numba.njit(parallel=True, cache=True)
def _avg_pool_bwd(gy, rd, rh, rw, cd, ch, cw, zero, gx):
    B, D, H, W = gx.shape
    OD, OH, OW = gy.shape[1], gy.shape[2], gy.shape[3]
    scaled = np.empty_like(gy)              # gy / divisor, once per output instead of per reader
    for bo in numba.prange(B * OD):
        b = bo // OD
        od = bo - b * OD
        for oh in range(OH):
            c = cd[od] * ch[oh]
            for ow in range(OW):
                scaled[b, od, oh, ow] = gy[b, od, oh, ow] / (c * cw[ow])
    for bi in numba.prange(B * D):
        b = bi // D
        i = bi - b * D
        acc = np.empty(OW, gy.dtype)
        for j in range(H):
            # separable gather: sum the rows of the outputs whose (d, h) window holds (i, j), then
            # each input column sums the outputs whose w window holds it
            for ow in range(OW):
                acc[ow] = zero
            for od in range(rd[i, 0], rd[i, 1]):
                for oh in range(rh[j, 0], rh[j, 1]):
                    for ow in range(OW):
                        acc[ow] += scaled[b, od, oh, ow]
            for k in range(W):
                s = zero
                for ow in range(rw[k, 0], rw[k, 1]):
                    s += acc[ow]
                gx[b, i, j, k] = s


@numba.njit(parallel=True, cache=True)
def _resample_fwd(x, index, weight, y):
    P, O, Q = y.shape
    if Q == 1:
        # the last axis: rows of one element, where a division per output to split (p, o)
        # would cost more than the interpolation; parallel over the (many) rows instead
        for p in numba.prange(P):
            for o in range(O):
                w1 = weight[o, 1]
                v = weight[o, 0] * x[p, index[o, 0], 0]
                if w1 != 0:         # nearest, or a sample on i0: a copy (no 0 * inf = nan)
                    v += w1 * x[p, index[o, 1], 0]
                y[p, o, 0] = v
        return
    for po in numba.prange(P * O):
        p = po // O
        o = po - p * O
        i0, i1 = index[o, 0], index[o, 1]
        w0, w1 = weight[o, 0], weight[o, 1]
        if w1 == 0:
            for q in range(Q):
                y[p, o, q] = w0 * x[p, i0, q]
        else:
            for q in range(Q):
                y[p, o, q] = w0 * x[p, i0, q] + w1 * x[p, i1, q]


@numba.njit(parallel=True, cache=True)
def _resample_bwd(gy, index, weight, ranges, zero, gx):
    P, I, Q = gx.shape
    O = gy.shape[1]
    if Q == 1:
        # the last axis (see _resample_fwd): a scatter along each row, which one thread owns
        for p in numba.prange(P):
            for i in range(I):
                gx[p, i, 0] = zero
            for o in range(O):
                g = gy[p, o, 0]
                gx[p, index[o, 0], 0] += weight[o, 0] * g
                if weight[o, 1] != 0:
                    gx[p, index[o, 1], 0] += weight[o, 1] * g
        return
    for pi in numba.prange(P * I):
        p = pi // I
        i = pi - p * I
        for q in range(Q):
            gx[p, i, q] = zero
        for o in range(ranges[i, 0], ranges[i, 1]):
            c = resample_weight(index, weight, o, i, zero)
            if c != 0:
                for q in range(Q):
                    gx[p, i, q] += c * gy[p, o, q]


# ---- launches (the CUDA twins have the same names and signatures) --------------------------------

def max_pool_fwd(x, windows, dilation, y, indices):
    """y[b, o] = max of x[b] over window o (every dilation-th position); indices[b, o] = the flat
    position (i * H + j) * W + k of that maximum within the plane, -1 for a window with no input.
    x: (B, D, H, W); y, indices: (B, O_d, O_h, O_w), float like x and int64."""
    check_pool('max_pool_fwd', x, windows, dilation, (y, indices), ('y', 'indices'))
    run(_max_pool_fwd, x.size + y.size, x, windows[0], windows[1], windows[2], int(dilation[0]),
         int(dilation[1]), int(dilation[2]), x.dtype.type(-np.inf), y, indices)


def max_pool_bwd(gy, indices, gx):
    """gx[b] = zeros with gy[b, o] added at indices[b, o] (indices outside the plane, like the -1
    of an empty window, are skipped).  gy, indices: (B, M); gx: (B, N)."""
    check_max_pool_bwd(gy, indices, gx)
    run(_max_pool_bwd, gy.size + gx.size, gy, indices, gx)


def avg_pool_fwd(x, windows, divisors, y):
    """y[b, o] = (sum of x[b] over window o) / (divisors[0][o_d] * divisors[1][o_h] *
    divisors[2][o_w]).  x: (B, D, H, W); y: (B, O_d, O_h, O_w)."""
    check_pool('avg_pool_fwd', x, windows, divisors, (y,), ('y',))
    run(_avg_pool_fwd, x.size + y.size, x, windows[0], windows[1], windows[2], divisors[0],
         divisors[1], divisors[2], x.dtype.type(0), y)


def avg_pool_bwd(gy, windows, divisors, gx):
    """The adjoint of avg_pool_fwd: gx[b, i] = sum over the outputs o whose window holds i of
    gy[b, o] / divisor(o).  gy: (B, O_d, O_h, O_w); gx: (B, D, H, W)."""
    check_pool('avg_pool_bwd', gx, windows, divisors, (gy,), ('gy',), x_name='gx')
    r = window_ranges(windows, gx.shape[1:])
    run(_avg_pool_bwd, gy.size + gx.size, gy, r[0], r[1], r[2], divisors[0], divisors[1],
         divisors[2], gx.dtype.type(0), gx)


def resample_fwd(x, index, weight, y):
    """y[p, o, q] = weight[o, 0] x[p, index[o, 0], q] + weight[o, 1] x[p, index[o, 1], q].
    x: (P, I, Q); y: (P, O, Q); index int64 (O, 2); weight (O, 2) of x's dtype."""
    check_resample('resample_fwd', x, index, weight, y)
    run(_resample_fwd, x.size + y.size, x, index, weight, y)


def resample_bwd(gy, index, weight, gx):
    """The adjoint of resample_fwd: gx[p, i, q] = sum over o, c with index[o, c] = i of
    weight[o, c] gy[p, o, q].  gy: (P, O, Q); gx: (P, I, Q)."""
    check_resample('resample_bwd', gx, index, weight, gy, x_name='gx', y_name='gy')
    run(_resample_bwd, gy.size + gx.size, gy, index, weight, resample_ranges(index, gx.shape[1]),
         gx.dtype.type(0), gx)

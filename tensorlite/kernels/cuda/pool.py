"""Pooling and resampling kernels (CUDA twins of kernels/cpu/pool.py: same names, same signatures,
same tables; see that file for the layout).

Thread mapping (launch configurations in _grid.py): every kernel is a grid-stride loop over the
elements it writes -- the thread with global index i takes elements i, i + gridsize,
i + 2 * gridsize, ... -- so any grid is correct and the grid is chosen at launch
(`_grid.grid(n)`).  The forward kernels and avg_pool_bwd / resample_bwd write each element from
one thread, gathering; the max-pool scatter (max_pool_bwd) loops over the gradient's elements and
adds with atomics, since two outputs may share an argmax."""
import numpy as np
from numba import cuda

from . import _grid
from .._launch import (check_max_pool_bwd, check_pool, check_resample, resample_ranges,
                       window_ranges)
from .._scalar import for_cuda

(resample_weight,) = for_cuda('resample_weight')


@cuda.jit(device=True, inline=True)
def _position(t, D, H, W):
    """(b, d, h, w): the position of flat index t in a (B, D, H, W) array."""
    w = t % W
    r = t // W
    h = r % H
    r //= H
    return r // D, r % D, h, w


@cuda.jit(cache=True)
def _max_pool_fwd(x, wd, wh, ww, sd, sh, sw, neg_inf, y, indices):
    B, D, H, W = x.shape
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    for t in range(cuda.grid(1), B * OD * OH * OW, cuda.gridsize(1)):
        b, od, oh, ow = _position(t, OD, OH, OW)
        d0, d1 = wd[od, 0], wd[od, 1]
        h0, h1 = wh[oh, 0], wh[oh, 1]
        w0, w1 = ww[ow, 0], ww[ow, 1]
        best = neg_inf
        arg = -1
        if d0 < d1 and h0 < h1 and w0 < w1:
            arg = (d0 * H + h0) * W + w0
        for i in range(d0, d1, sd):
            for j in range(h0, h1, sh):
                base = (i * H + j) * W
                for k in range(w0, w1, sw):
                    v = x[b, i, j, k]
                    if v > best or v != v:
                        best = v
                        arg = base + k
        y[b, od, oh, ow] = best
        indices[b, od, oh, ow] = arg


@cuda.jit(cache=True)
def _max_pool_bwd(gy, indices, gx):
    B, M = gy.shape
    N = gx.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b = t // M
        o = t - b * M
        i = indices[b, o]
        if i >= 0 and i < N:
            cuda.atomic.add(gx, (b, i), gy[b, o])


@cuda.jit(cache=True)
def _avg_pool_fwd(x, wd, wh, ww, cd, ch, cw, zero, y):
    B = x.shape[0]
    OD, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    for t in range(cuda.grid(1), B * OD * OH * OW, cuda.gridsize(1)):
        b, od, oh, ow = _position(t, OD, OH, OW)
        s = zero
        for i in range(wd[od, 0], wd[od, 1]):
            for j in range(wh[oh, 0], wh[oh, 1]):
                for k in range(ww[ow, 0], ww[ow, 1]):
                    s += x[b, i, j, k]
        y[b, od, oh, ow] = s / (cd[od] * ch[oh] * cw[ow])


@cuda.jit(cache=True)
def _avg_pool_bwd(gy, rd, rh, rw, cd, ch, cw, zero, gx):
    B, D, H, W = gx.shape
    for t in range(cuda.grid(1), B * D * H * W, cuda.gridsize(1)):
        b, i, j, k = _position(t, D, H, W)
        s = zero
        for od in range(rd[i, 0], rd[i, 1]):
            for oh in range(rh[j, 0], rh[j, 1]):
                for ow in range(rw[k, 0], rw[k, 1]):
                    s += gy[b, od, oh, ow] / (cd[od] * ch[oh] * cw[ow])
        gx[b, i, j, k] = s


@cuda.jit(cache=True)
def _resample_fwd(x, index, weight, y):
    P, O, Q = y.shape
    for t in range(cuda.grid(1), P * O * Q, cuda.gridsize(1)):
        q = t % Q
        r = t // Q
        o = r % O
        p = r // O
        w1 = weight[o, 1]
        v = weight[o, 0] * x[p, index[o, 0], q]
        if w1 != 0:
            v += w1 * x[p, index[o, 1], q]
        y[p, o, q] = v


@cuda.jit(cache=True)
def _resample_bwd(gy, index, weight, ranges, zero, gx):
    P, I, Q = gx.shape
    for t in range(cuda.grid(1), P * I * Q, cuda.gridsize(1)):
        q = t % Q
        r = t // Q
        i = r % I
        p = r // I
        s = zero
        for o in range(ranges[i, 0], ranges[i, 1]):
            c = resample_weight(index, weight, o, i, zero)
            if c != 0:
                s += c * gy[p, o, q]
        gx[p, i, q] = s


def _dev(*tables):
    """The small host tables, copied to the device once per launch."""
    return tuple(cuda.to_device(np.ascontiguousarray(t)) for t in tables)


def max_pool_fwd(x, windows, dilation, y, indices):
    check_pool('max_pool_fwd', x, windows, dilation, (y, indices), ('y', 'indices'))
    if y.size:
        _max_pool_fwd[_grid.grid(y.size)](x, *_dev(*windows), int(dilation[0]), int(dilation[1]),
                                          int(dilation[2]), x.dtype.type(-np.inf), y, indices)


def max_pool_bwd(gy, indices, gx):
    check_max_pool_bwd(gy, indices, gx)
    gx[...] = 0
    if gy.size:
        _max_pool_bwd[_grid.grid(gy.size)](gy, indices, gx)


def avg_pool_fwd(x, windows, divisors, y):
    check_pool('avg_pool_fwd', x, windows, divisors, (y,), ('y',))
    if y.size:
        _avg_pool_fwd[_grid.grid(y.size)](x, *_dev(*windows), *_dev(*divisors), x.dtype.type(0), y)


def avg_pool_bwd(gy, windows, divisors, gx):
    check_pool('avg_pool_bwd', gx, windows, divisors, (gy,), ('gy',), x_name='gx')
    r = window_ranges(windows, gx.shape[1:])
    if gx.size:
        _avg_pool_bwd[_grid.grid(gx.size)](gy, *_dev(*r), *_dev(*divisors), gx.dtype.type(0), gx)


def resample_fwd(x, index, weight, y):
    check_resample('resample_fwd', x, index, weight, y)
    if y.size:
        _resample_fwd[_grid.grid(y.size)](x, *_dev(index, weight), y)


def resample_bwd(gy, index, weight, gx):
    check_resample('resample_bwd', gx, index, weight, gy, x_name='gx', y_name='gy')
    if gx.size:
        tables = _dev(index, weight, resample_ranges(index, gx.shape[1]))
        _resample_bwd[_grid.grid(gx.size)](gy, *tables, gx.dtype.type(0), gx)

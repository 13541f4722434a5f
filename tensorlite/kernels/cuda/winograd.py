"""Winograd F(2x2x2, 3x3x3) kernels (CUDA twins of kernels/cpu/winograd.py: same names, same
signatures; the transforms and the layout of P are described there).

Thread mapping (grid-stride loops, launch sizes from _grid.py): one element of the loop is one
tile of one channel -- (c, p) for the input transform and the output transforms, (co, ci) for the
filter transforms.  Its thread gathers the tile (zero outside the volume), applies the 1-D
transform along each axis in a local 64-element array, and writes its 64 (or 8, or 27) results.
The local arrays and the constants are in the arrays' dtype, as on the CPU: a Python float would
make a float32 transform compute in float64.  Consecutive threads take consecutive tiles p, so
the writes of V and M (the large arrays) are coalesced.  No two threads write one element: no
atomics.
"""
from numba import cuda

from . import _grid
from .._launch import (check_filter_transform, check_filter_transform_adjoint,
                       check_input_transform, check_output_transform,
                       check_output_transform_adjoint)

# The tiles of the batch are as large as the bound allows (no cache to fit, as for the conv twin).
PREFERRED_TILE_BYTES = None


@cuda.jit(device=True, inline=True)
def _bt(d, base, s):
    """B^T along one axis of the 4x4x4 array d (flat), on the 4 elements base + s * (0..3)."""
    a0, a1, a2, a3 = d[base], d[base + s], d[base + 2 * s], d[base + 3 * s]
    d[base] = a0 - a2
    d[base + s] = a1 + a2
    d[base + 2 * s] = a2 - a1
    d[base + 3 * s] = a1 - a3


@cuda.jit(device=True, inline=True)
def _tile(p, rows, n_h, n_w, row0):
    """(sample, tt, th, tw) of column p of a band: `rows` tile rows of n_w tiles per sample, the
    band starting at tile row row0 of the (nT, nH) grid."""
    b = p // (rows * n_w)
    rest = p - b * rows * n_w
    r = rest // n_w
    tt = (row0 + r) // n_h
    return b, tt, row0 + r - tt * n_h, rest - r * n_w


@cuda.jit(cache=True)
def _input_transform(x, pt, ph, pw, n_t, n_h, n_w, row0, v):
    n, c_in, t_in, h_in, w_in = x.shape                 # read once: see _grid.py
    p_all = v.shape[2]
    rows = p_all // (n * n_w)
    d = cuda.local.array(64, x.dtype)                   # (i, j, k) of one tile
    zero = x.dtype.type(0)
    for idx in range(cuda.grid(1), c_in * p_all, cuda.gridsize(1)):
        c = idx // p_all
        p = idx - c * p_all
        b, tt, th, tw = _tile(p, rows, n_h, n_w, row0)
        for i in range(4):
            it = 2 * tt - pt + i
            for j in range(4):
                ih = 2 * th - ph + j
                for k in range(4):
                    iw = 2 * tw - pw + k
                    if 0 <= it < t_in and 0 <= ih < h_in and 0 <= iw < w_in:
                        d[(i * 4 + j) * 4 + k] = x[b, c, it, ih, iw]
                    else:
                        d[(i * 4 + j) * 4 + k] = zero
        for q in range(16):
            _bt(d, q * 4, 1)                            # along W
        for q in range(16):
            _bt(d, (q // 4) * 16 + q % 4, 4)            # along H
        for q in range(16):
            _bt(d, q, 16)                               # along T
        for e in range(64):
            v[e, c, p] = d[e]


@cuda.jit(cache=True)
def _output_transform(m, bias, has_bias, row0, y):
    n, c_out, o_t, o_h, o_w = y.shape
    n_h, n_w = (o_h + 1) // 2, (o_w + 1) // 2
    p_all = m.shape[2]
    rows = p_all // (n * n_w)
    s1 = cuda.local.array(32, m.dtype)                  # (i, eh, ew): A^T along T
    s2 = cuda.local.array(16, m.dtype)                  # (i, j, ew): then along H
    zero = m.dtype.type(0)
    for idx in range(cuda.grid(1), c_out * p_all, cuda.gridsize(1)):
        co = idx // p_all
        p = idx - co * p_all
        b, tt, th, tw = _tile(p, rows, n_h, n_w, row0)
        for q in range(16):
            m1, m2 = m[16 + q, co, p], m[32 + q, co, p]
            s1[q] = m[q, co, p] + m1 + m2
            s1[16 + q] = m1 - m2 - m[48 + q, co, p]
        for i in range(2):
            for k in range(4):
                q = i * 16 + k
                a1, a2 = s1[q + 4], s1[q + 8]
                s2[i * 8 + k] = s1[q] + a1 + a2
                s2[i * 8 + 4 + k] = a1 - a2 - s1[q + 12]
        add = bias[co] if has_bias else zero
        for i in range(2):
            for j in range(2):
                ot, oh = 2 * tt + i, 2 * th + j
                if ot >= o_t or oh >= o_h:
                    continue
                q = i * 8 + j * 4
                a1, a2 = s2[q + 1], s2[q + 2]
                y[b, co, ot, oh, 2 * tw] = s2[q] + a1 + a2 + add
                if 2 * tw + 1 < o_w:
                    y[b, co, ot, oh, 2 * tw + 1] = a1 - a2 - s2[q + 3] + add


@cuda.jit(cache=True)
def _output_transform_adjoint(gy, row0, gm):
    n, c_out, o_t, o_h, o_w = gy.shape
    n_h, n_w = (o_h + 1) // 2, (o_w + 1) // 2
    p_all = gm.shape[2]
    rows = p_all // (n * n_w)
    g = cuda.local.array(8, gy.dtype)                   # (i, j, s): the 2x2x2 tile of gy
    s1 = cuda.local.array(16, gy.dtype)                 # (i, j, ew): A along W
    s2 = cuda.local.array(32, gy.dtype)                 # (i, eh, ew): then along H
    zero = gy.dtype.type(0)
    for idx in range(cuda.grid(1), c_out * p_all, cuda.gridsize(1)):
        co = idx // p_all
        p = idx - co * p_all
        b, tt, th, tw = _tile(p, rows, n_h, n_w, row0)
        for q in range(8):
            ot, oh, ow = 2 * tt + q // 4, 2 * th + (q // 2) % 2, 2 * tw + q % 2
            g[q] = gy[b, co, ot, oh, ow] if ot < o_t and oh < o_h and ow < o_w else zero
        for q in range(4):
            g0, g1 = g[2 * q], g[2 * q + 1]
            s1[q * 4] = g0
            s1[q * 4 + 1] = g0 + g1
            s1[q * 4 + 2] = g0 - g1
            s1[q * 4 + 3] = -g1
        for i in range(2):
            for k in range(4):
                g0, g1 = s1[i * 8 + k], s1[i * 8 + 4 + k]
                s2[i * 16 + k] = g0
                s2[i * 16 + 4 + k] = g0 + g1
                s2[i * 16 + 8 + k] = g0 - g1
                s2[i * 16 + 12 + k] = -g1
        for q in range(16):
            g0, g1 = s2[q], s2[16 + q]
            gm[q, co, p] = g0
            gm[16 + q, co, p] = g0 + g1
            gm[32 + q, co, p] = g0 - g1
            gm[48 + q, co, p] = -g1


@cuda.jit(cache=True)
def _filter_transform(w, u):
    c_out, c_in = w.shape[0], w.shape[1]
    s1 = cuda.local.array(36, w.dtype)                  # (et, kh, kw): G along T
    s2 = cuda.local.array(48, w.dtype)                  # (et, eh, kw): then along H
    half = w.dtype.type(0.5)
    for idx in range(cuda.grid(1), c_out * c_in, cuda.gridsize(1)):
        co = idx // c_in
        ci = idx - co * c_in
        for q in range(9):
            g0, g1, g2 = w[co, ci, 0, q // 3, q % 3], w[co, ci, 1, q // 3, q % 3], \
                w[co, ci, 2, q // 3, q % 3]
            s1[q] = g0
            s1[9 + q] = half * (g0 + g1 + g2)
            s1[18 + q] = half * (g0 - g1 + g2)
            s1[27 + q] = g2
        for et in range(4):
            for k in range(3):
                q = et * 9 + k
                g0, g1, g2 = s1[q], s1[q + 3], s1[q + 6]
                o = et * 12 + k
                s2[o] = g0
                s2[o + 3] = half * (g0 + g1 + g2)
                s2[o + 6] = half * (g0 - g1 + g2)
                s2[o + 9] = g2
        for q in range(16):
            g0, g1, g2 = s2[q * 3], s2[q * 3 + 1], s2[q * 3 + 2]
            u[q * 4, co, ci] = g0
            u[q * 4 + 1, co, ci] = half * (g0 + g1 + g2)
            u[q * 4 + 2, co, ci] = half * (g0 - g1 + g2)
            u[q * 4 + 3, co, ci] = g2


@cuda.jit(cache=True)
def _filter_transform_adjoint(gu, gw):
    c_out, c_in = gw.shape[0], gw.shape[1]
    s1 = cuda.local.array(48, gu.dtype)                 # (et, eh, kw): G^T along W
    s2 = cuda.local.array(36, gu.dtype)                 # (et, kh, kw): then along H
    half = gu.dtype.type(0.5)
    for idx in range(cuda.grid(1), c_out * c_in, cuda.gridsize(1)):
        co = idx // c_in
        ci = idx - co * c_in
        for q in range(16):
            u0, u1, u2, u3 = gu[q * 4, co, ci], gu[q * 4 + 1, co, ci], gu[q * 4 + 2, co, ci], \
                gu[q * 4 + 3, co, ci]
            s1[q * 3] = u0 + half * (u1 + u2)
            s1[q * 3 + 1] = half * (u1 - u2)
            s1[q * 3 + 2] = half * (u1 + u2) + u3
        for et in range(4):
            for k in range(3):
                q = et * 12 + k
                u0, u1, u2, u3 = s1[q], s1[q + 3], s1[q + 6], s1[q + 9]
                o = et * 9 + k
                s2[o] = u0 + half * (u1 + u2)
                s2[o + 3] = half * (u1 - u2)
                s2[o + 6] = half * (u1 + u2) + u3
        for q in range(9):
            u0, u1, u2, u3 = s2[q], s2[9 + q], s2[18 + q], s2[27 + q]
            gw[co, ci, 0, q // 3, q % 3] = u0 + half * (u1 + u2)
            gw[co, ci, 1, q // 3, q % 3] = half * (u1 - u2)
            gw[co, ci, 2, q // 3, q % 3] = half * (u1 + u2) + u3


def input_transform(x, padding, tiles, row0, v):
    """See kernels/cpu/winograd.py: v (64, C, n * rows * nW) = B^T d B of x's tiles."""
    check_input_transform(x, padding, tiles, row0, v)
    if v.size:
        _input_transform[_grid.grid(v.shape[1] * v.shape[2])](x, *padding, *tiles, row0, v)


def filter_transform(w, u):
    """See kernels/cpu/winograd.py: u (64, C_out, C_in) = G w G^T."""
    check_filter_transform(w, u)
    if u.size:
        _filter_transform[_grid.grid(w.shape[0] * w.shape[1])](w, u)


def output_transform(m, b, row0, y):
    """See kernels/cpu/winograd.py: y's band = A^T M A (+ b), cropped."""
    check_output_transform(m, b, row0, y)
    if m.size:
        bias = m[:1, 0, 0] if b is None else b          # a stand-in when has_bias is False: never read
        _output_transform[_grid.grid(m.shape[1] * m.shape[2])](m, bias, b is not None, row0, y)


def output_transform_adjoint(gy, row0, gm):
    """See kernels/cpu/winograd.py: gm (64, C_out, n * rows * nW) = A gY A^T."""
    check_output_transform_adjoint(gy, row0, gm)
    if gm.size:
        _output_transform_adjoint[_grid.grid(gm.shape[1] * gm.shape[2])](gy, row0, gm)


def filter_transform_adjoint(gu, gw):
    """See kernels/cpu/winograd.py: gw (C_out, C_in, 3, 3, 3) = G^T gU G."""
    check_filter_transform_adjoint(gu, gw)
    if gw.size:
        _filter_transform_adjoint[_grid.grid(gw.shape[0] * gw.shape[1])](gu, gw)

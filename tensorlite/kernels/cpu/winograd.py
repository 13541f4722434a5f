"""Winograd convolution F(2x2x2, 3x3x3) kernels (CPU): the five transforms around the batched GEMM.

A stride-1, dilation-1, 3x3x3 correlation y = x (*) g is computed on tiles of 2x2x2 outputs, each
from a 4x4x4 window of the input (windows overlap by 2).  In one dim (Lavin & Gray, 2016), with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

    y (2) = A^T [(G g) * (B^T d)]        for the window d (4) and the kernel g (3),

and in three dims each matrix is applied along every axis.  Over channels the elementwise product
becomes, for each of the 64 transformed positions e, a matrix product

    M[e] (C_out, P) = U[e] (C_out, C_in) @ V[e] (C_in, P)

with U = G g G^T the transformed filters and V = B^T d B the transformed input tiles of P tiles:
64 independent GEMMs (xp.matmul on (64, ...) stacks), 27 * 8 / 64 = 3.4x fewer multiplies than
vol2col + GEMM.  The kernels here are the transforms:

    input_transform(x, padding, tiles, row0, v)         V = B^T d B          x -> (64, C, P)
    filter_transform(w, u)                              U = G g G^T          w -> (64, C_out, C_in)
    output_transform(m, b, row0, y)                     y = A^T M A (+ b)    (64, C_out, P) -> y
    output_transform_adjoint(gy, row0, gm)              gM = A gy A^T        gy -> (64, C_out, P)
    filter_transform_adjoint(gu, gw)                    gw = G^T gU G        (64, C_out, C_in) -> gw

The last two give the weight gradient, gw = G^T [sum over tiles of gM V^T] G; the input gradient
is a Winograd convolution of gy with the flipped kernel (kernels/conv_plan.py).

Layout of P: the tile grid of the output is (nT, nH, nW) = ceil(out / 2); a call covers n samples
and a band of `rows` tile rows (tt, th) = divmod(row0 + r, nH), so P = n * rows * nW with
p = (b * rows + r) * nW + tw: for one (e, channel) the tiles of a tile row are consecutive, and the
CPU kernels run their arithmetic as loops over tw that LLVM vectorizes.  Tile (tt, th, tw) reads
the input at 2 * tile - padding + (0..3) per dim (zero outside the volume: the padding is done
here) and writes the outputs 2 * tile + (0, 1) that fall inside y (partial tiles are cropped).
"""
import numba
import numpy as np

from .._launch import (BESIDE_GEMM_THREADS, check_filter_transform,
                       check_filter_transform_adjoint, check_input_transform,
                       check_output_transform, check_output_transform_adjoint, run)

# Tiles of the batch keep V and M (64 * (C_in + C_out) * P elements) under this many bytes (and
# under the bound in tensorlite.kernels), as PREFERRED_TILE_BYTES in kernels/cpu/conv.py does for
# the columns.  Larger than vol2col's 8 MiB: P is the N of the 64 GEMMs, and at 8 MiB it is only
# 170-260 tiles with 64-128 channels.  Measured forward, one BLAS thread, medians of 5 / 3 under
# load, tiles of 8 / 32 / 128 MiB: (8, 64->64, 8, 28, 28) 128 / 104 / 115 ms, (2, 256->256, 8,
# 28, 28) 335 / 246 / 318 ms (docs/performance.md, "Winograd convolution").
PREFERRED_TILE_BYTES = 32 * 2**20


# ---- the transforms ----------------------------------------------------------------------------------
# Each tile kernel runs one job per (sample, channel) and walks the tile rows of its band in runs
# that share one tt: a run of c tile rows (th, tw) is c * nW consecutive tiles of P, so every 1-D
# transform is one loop over c * nW tiles (nW alone, 14 at 28x28, is shorter than one AVX-512
# vector: such loops ran scalar, 3x slower).  The loops go between flat arrays indexed with
# unsigned ints (an index Numba cannot prove non-negative gets a wraparound branch that blocks
# vectorization: kernels/cpu/conv.py).  `s*` and `t*` are the offsets of the four (or two) source
# and target vectors of one transform, `step` is 2 where tiles read or write input/output rows
# two elements apart.

@numba.njit(inline='always')
def _bt(src, s0, s1, s2, s3, step, dst, t0, t1, t2, t3, count):
    """B^T along one axis, for `count` tiles: (a0, a1, a2, a3) -> (a0-a2, a1+a2, a2-a1, a1-a3)."""
    s0, s1, s2, s3 = np.uint64(s0), np.uint64(s1), np.uint64(s2), np.uint64(s3)
    t0, t1, t2, t3 = np.uint64(t0), np.uint64(t1), np.uint64(t2), np.uint64(t3)
    st = np.uint64(step)
    for k in range(np.uint64(count)):
        a0 = src[s0 + k * st]
        a1 = src[s1 + k * st]
        a2 = src[s2 + k * st]
        a3 = src[s3 + k * st]
        dst[t0 + k] = a0 - a2
        dst[t1 + k] = a1 + a2
        dst[t2 + k] = a2 - a1
        dst[t3 + k] = a1 - a3


@numba.njit(inline='always')
def _at(src, s0, s1, s2, s3, dst, t0, t1, step, add, count):
    """A^T along one axis: (m0, m1, m2, m3) -> (m0+m1+m2, m1-m2-m3), plus `add`."""
    s0, s1, s2, s3 = np.uint64(s0), np.uint64(s1), np.uint64(s2), np.uint64(s3)
    t0, t1, st = np.uint64(t0), np.uint64(t1), np.uint64(step)
    for k in range(np.uint64(count)):
        a1 = src[s1 + k]
        a2 = src[s2 + k]
        dst[t0 + k * st] = src[s0 + k] + a1 + a2 + add
        dst[t1 + k * st] = a1 - a2 - src[s3 + k] + add


@numba.njit(inline='always')
def _a(src, s0, s1, step, dst, t0, t1, t2, t3, count):
    """A along one axis, the adjoint of A^T: (g0, g1) -> (g0, g0+g1, g0-g1, -g1)."""
    s0, s1, st = np.uint64(s0), np.uint64(s1), np.uint64(step)
    t0, t1, t2, t3 = np.uint64(t0), np.uint64(t1), np.uint64(t2), np.uint64(t3)
    for k in range(np.uint64(count)):
        g0 = src[s0 + k * st]
        g1 = src[s1 + k * st]
        dst[t0 + k] = g0
        dst[t1 + k] = g0 + g1
        dst[t2 + k] = g0 - g1
        dst[t3 + k] = -g1


@numba.njit(parallel=True, cache=True)
def _input_transform(x, pt, ph, pw, n_t, n_h, n_w, row0, v):
    n, c_in, t_in, h_in, w_in = x.shape
    p_all = v.shape[2]
    rows = p_all // (n * n_w)
    pitch = 2 * n_w                             # the input columns of a tile row, but the last 2
    most = n_h * n_w                            # tiles in the longest run
    block = n_h * pitch + 2                     # d's stride between the 16 (i, j)
    plane = c_in * p_all                        # v's stride between transformed positions e
    vf = v.reshape(-1)
    lo = min(pw, pitch + 2)                     # row[q] = x[.., q - pw] for q in [lo, hi)
    hi = max(min(pitch + 2, w_in + pw), lo)
    main = min(hi, pitch)                       # [lo, main) of the pitch, the rest in `tail`
    for job in numba.prange(n * c_in):
        b = job // c_in
        c = job - b * c_in
        d = np.empty(16 * block, dtype=x.dtype)         # ((i, j), th, q): input rows, pitch 2 nW
        tail = np.empty(16 * 2 * n_h, dtype=x.dtype)    # ((i, j), th, 2): the 2 columns past it
        sw = np.empty(64 * most, dtype=x.dtype)         # ((i, j, ew), k): B^T along W
        sh = np.empty(64 * most, dtype=x.dtype)         # ((i, eh, ew), k): then along H
        r = 0
        while r < rows:
            tt = (row0 + r) // n_h
            th0 = row0 + r - tt * n_h
            cnt = min(n_h - th0, rows - r)              # tile rows th0 .. th0 + cnt - 1 of plane tt
            kk = cnt * n_w
            for ij in range(16):
                it = 2 * tt - pt + ij // 4
                for q in range(cnt):
                    ih = 2 * (th0 + q) - ph + ij % 4
                    o = ij * block + q * pitch
                    e = (ij * n_h + q) * 2
                    if it < 0 or it >= t_in or ih < 0 or ih >= h_in:
                        d[o:o + pitch] = 0
                        tail[e] = 0
                        tail[e + 1] = 0
                        continue
                    src = x[b, c, it, ih]
                    d[o:o + lo] = 0
                    d[o + lo:o + main] = src[lo - pw:main - pw]
                    d[o + main:o + pitch] = 0
                    tail[e] = src[pitch - pw] if lo <= pitch < hi else 0
                    tail[e + 1] = src[pitch + 1 - pw] if lo <= pitch + 1 < hi else 0
            for ij in range(16):
                # the last tile of each row reads 2 columns past the pitch: fixed below from `tail`
                q, o = ij * block, ij * 4 * most
                _bt(d, q, q + 1, q + 2, q + 3, 2, sw, o, o + most, o + 2 * most, o + 3 * most, kk)
                for t in range(cnt):
                    k = o + t * n_w + n_w - 1
                    a1 = d[q + t * pitch + pitch - 1]
                    a2 = tail[(ij * n_h + t) * 2]
                    a3 = tail[(ij * n_h + t) * 2 + 1]
                    sw[k] = d[q + t * pitch + pitch - 2] - a2
                    sw[k + most] = a1 + a2
                    sw[k + 2 * most] = a2 - a1
                    sw[k + 3 * most] = a1 - a3
            for i in range(4):
                for ew in range(4):
                    q = (i * 16 + ew) * most            # (i, j, ew) with j = 0, then + 4 most per j
                    _bt(sw, q, q + 4 * most, q + 8 * most, q + 12 * most, 1,
                        sh, q, q + 4 * most, q + 8 * most, q + 12 * most, kk)
            o = c * p_all + (b * rows + r) * n_w
            for e in range(16):                         # (eh, ew); et = 0..3 are 16 planes apart
                q = e * most
                _bt(sh, q, q + 16 * most, q + 32 * most, q + 48 * most, 1,
                    vf, o + e * plane, o + (16 + e) * plane, o + (32 + e) * plane,
                    o + (48 + e) * plane, kk)
            r += cnt


@numba.njit(parallel=True, cache=True)
def _output_transform(m, bias, row0, y):
    n, c_out, o_t, o_h, o_w = y.shape
    n_h, n_w = (o_h + 1) // 2, (o_w + 1) // 2
    p_all = m.shape[2]
    rows = p_all // (n * n_w)
    plane = c_out * p_all
    most = n_h * n_w
    pitch = 2 * n_w
    mf = m.reshape(-1)
    has_bias = bias.size > 0
    zero = y.dtype.type(0)
    for job in numba.prange(n * c_out):
        b = job // c_out
        co = job - b * c_out
        st = np.empty(32 * most, dtype=y.dtype)         # ((i, eh, ew), k): A^T along T
        sh = np.empty(16 * most, dtype=y.dtype)         # ((i, j, ew), k): then along H
        out = np.empty(4 * n_h * pitch, dtype=y.dtype)  # ((i, j), th, 2 tw + s): output rows
        add = bias[co] if has_bias else zero
        r = 0
        while r < rows:
            tt = (row0 + r) // n_h
            th0 = row0 + r - tt * n_h
            cnt = min(n_h - th0, rows - r)
            kk = cnt * n_w
            o = co * p_all + (b * rows + r) * n_w
            for e in range(16):
                _at(mf, o + e * plane, o + (16 + e) * plane, o + (32 + e) * plane,
                    o + (48 + e) * plane, st, e * most, (16 + e) * most, 1, zero, kk)
            for i in range(2):
                for ew in range(4):
                    q = (i * 16 + ew) * most
                    _at(st, q, q + 4 * most, q + 8 * most, q + 12 * most,
                        sh, (i * 8 + ew) * most, (i * 8 + 4 + ew) * most, 1, zero, kk)
            for ij in range(4):
                q, t = ij * 4 * most, ij * n_h * pitch
                _at(sh, q, q + most, q + 2 * most, q + 3 * most, out, t, t + 1, 2, add, kk)
                ot = 2 * tt + ij // 2
                if ot >= o_t:
                    continue
                for th in range(cnt):
                    oh = 2 * (th0 + th) + ij % 2
                    if oh < o_h:
                        y[b, co, ot, oh, :] = out[t + th * pitch:t + th * pitch + o_w]
            r += cnt


@numba.njit(parallel=True, cache=True)
def _output_transform_adjoint(gy, row0, gm):
    n, c_out, o_t, o_h, o_w = gy.shape
    n_h, n_w = (o_h + 1) // 2, (o_w + 1) // 2
    p_all = gm.shape[2]
    rows = p_all // (n * n_w)
    plane = c_out * p_all
    most = n_h * n_w
    pitch = 2 * n_w
    gf = gm.reshape(-1)
    for job in numba.prange(n * c_out):
        b = job // c_out
        co = job - b * c_out
        g = np.zeros(4 * n_h * pitch, dtype=gy.dtype)   # ((i, j), th, q): gy's rows, zero-padded
        sw = np.empty(16 * most, dtype=gy.dtype)        # ((i, j, ew), k): A along W
        sh = np.empty(32 * most, dtype=gy.dtype)        # ((i, eh, ew), k): then along H
        r = 0
        while r < rows:
            tt = (row0 + r) // n_h
            th0 = row0 + r - tt * n_h
            cnt = min(n_h - th0, rows - r)
            kk = cnt * n_w
            for ij in range(4):
                ot = 2 * tt + ij // 2
                for th in range(cnt):
                    oh = 2 * (th0 + th) + ij % 2
                    q = (ij * n_h + th) * pitch
                    if ot < o_t and oh < o_h:
                        g[q:q + o_w] = gy[b, co, ot, oh, :]     # g[q + o_w] (odd oW) stays 0
                    else:
                        g[q:q + pitch] = 0
                q, t = ij * n_h * pitch, ij * 4 * most
                _a(g, q, q + 1, 2, sw, t, t + most, t + 2 * most, t + 3 * most, kk)
            for i in range(2):
                for ew in range(4):
                    q = (i * 8 + ew) * most
                    t = (i * 16 + ew) * most
                    _a(sw, q, q + 4 * most, 1, sh, t, t + 4 * most, t + 8 * most, t + 12 * most, kk)
            o = co * p_all + (b * rows + r) * n_w
            for e in range(16):
                _a(sh, e * most, (16 + e) * most, 1, gf, o + e * plane, o + (16 + e) * plane,
                   o + (32 + e) * plane, o + (48 + e) * plane, kk)
            r += cnt


@numba.njit(parallel=True, cache=True)
def _filter_transform(w, u):
    c_out, c_in = w.shape[:2]
    half = w.dtype.type(0.5)
    for job in numba.prange(c_out * c_in):
        co = job // c_in
        ci = job - co * c_in
        g = w[co, ci]
        s1 = np.empty((4, 3, 3), dtype=w.dtype)         # (et, kh, kw)
        s2 = np.empty((4, 4, 3), dtype=w.dtype)         # (et, eh, kw)
        for a in range(3):
            for k in range(3):
                g0, g1, g2 = g[0, a, k], g[1, a, k], g[2, a, k]
                s1[0, a, k] = g0
                s1[1, a, k] = half * (g0 + g1 + g2)
                s1[2, a, k] = half * (g0 - g1 + g2)
                s1[3, a, k] = g2
        for et in range(4):
            for k in range(3):
                g0, g1, g2 = s1[et, 0, k], s1[et, 1, k], s1[et, 2, k]
                s2[et, 0, k] = g0
                s2[et, 1, k] = half * (g0 + g1 + g2)
                s2[et, 2, k] = half * (g0 - g1 + g2)
                s2[et, 3, k] = g2
        for et in range(4):
            for eh in range(4):
                g0, g1, g2 = s2[et, eh, 0], s2[et, eh, 1], s2[et, eh, 2]
                e = (et * 4 + eh) * 4
                u[e, co, ci] = g0
                u[e + 1, co, ci] = half * (g0 + g1 + g2)
                u[e + 2, co, ci] = half * (g0 - g1 + g2)
                u[e + 3, co, ci] = g2


@numba.njit(parallel=True, cache=True)
def _filter_transform_adjoint(gu, gw):
    c_out, c_in = gw.shape[:2]
    half = gw.dtype.type(0.5)
    for job in numba.prange(c_out * c_in):
        co = job // c_in
        ci = job - co * c_in
        s1 = np.empty((4, 4, 3), dtype=gw.dtype)        # (et, eh, kw): G^T along W
        s2 = np.empty((4, 3, 3), dtype=gw.dtype)        # (et, kh, kw): then along H
        for et in range(4):
            for eh in range(4):
                e = (et * 4 + eh) * 4
                u0, u1, u2, u3 = gu[e, co, ci], gu[e + 1, co, ci], gu[e + 2, co, ci], gu[e + 3, co, ci]
                s1[et, eh, 0] = u0 + half * (u1 + u2)
                s1[et, eh, 1] = half * (u1 - u2)
                s1[et, eh, 2] = half * (u1 + u2) + u3
        for et in range(4):
            for k in range(3):
                u0, u1, u2, u3 = s1[et, 0, k], s1[et, 1, k], s1[et, 2, k], s1[et, 3, k]
                s2[et, 0, k] = u0 + half * (u1 + u2)
                s2[et, 1, k] = half * (u1 - u2)
                s2[et, 2, k] = half * (u1 + u2) + u3
        for a in range(3):
            for k in range(3):
                u0, u1, u2, u3 = s2[0, a, k], s2[1, a, k], s2[2, a, k], s2[3, a, k]
                gw[co, ci, 0, a, k] = u0 + half * (u1 + u2)
                gw[co, ci, 1, a, k] = half * (u1 - u2)
                gw[co, ci, 2, a, k] = half * (u1 + u2) + u3


# ---- launch wrappers ---------------------------------------------------------------------------------

def input_transform(x, padding, tiles, row0, v):
    """v[e, c, (b, r, tw)] = (B^T d B)[e] for the 4x4x4 window d of x[b, c] at
    2 * (tt, th, tw) - padding, (tt, th) = divmod(row0 + r, nH); zero outside the volume.

    x (n, C, T, H, W); padding (pT, pH, pW) >= 0, the low side; tiles (nT, nH, nW), the output's
    tile grid (tile_grid); v (64, C, n * rows * nW), preallocated, every element written."""
    check_input_transform(x, padding, tiles, row0, v)
    if v.size:
        run(_input_transform, x.size + v.size, x, *padding, *tiles, row0, v,
            most=BESIDE_GEMM_THREADS)


def filter_transform(w, u):
    """u[e, co, ci] = (G w[co, ci] G^T)[e]: w (C_out, C_in, 3, 3, 3), u (64, C_out, C_in)."""
    check_filter_transform(w, u)
    if u.size:
        run(_filter_transform, w.size + u.size, w, u, most=BESIDE_GEMM_THREADS)


def output_transform(m, b, row0, y):
    """y[b, co, 2 * tile + (0, 1)] = (A^T M A) of m[:, co, p] (+ b[co]) for the tiles of the band,
    cropped to y.  m (64, C_out, n * rows * nW); b (C_out,) or None; y (n, C_out, oT, oH, oW),
    its band's rows overwritten (the other rows untouched)."""
    check_output_transform(m, b, row0, y)
    if m.size:
        bias = m[:0, 0, 0] if b is None else b             # an empty array stands for no bias
        run(_output_transform, m.size + y.size, m, bias, row0, y, most=BESIDE_GEMM_THREADS)


def output_transform_adjoint(gy, row0, gm):
    """gm[:, co, p] = A gY A^T for the 2x2x2 tile gY of gy[b, co] (zero beyond gy's edges): the
    adjoint of output_transform.  gy (n, C_out, oT, oH, oW); gm (64, C_out, n * rows * nW),
    preallocated, every element written."""
    check_output_transform_adjoint(gy, row0, gm)
    if gm.size:
        run(_output_transform_adjoint, gy.size + gm.size, gy, row0, gm, most=BESIDE_GEMM_THREADS)


def filter_transform_adjoint(gu, gw):
    """gw[co, ci] = G^T gU G for gU = gu[:, co, ci] as 4x4x4: the adjoint of filter_transform.
    gu (64, C_out, C_in); gw (C_out, C_in, 3, 3, 3), overwritten."""
    check_filter_transform_adjoint(gu, gw)
    if gw.size:
        run(_filter_transform_adjoint, gu.size + gw.size, gu, gw, most=BESIDE_GEMM_THREADS)

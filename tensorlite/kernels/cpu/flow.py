"""Optical-flow kernels (CPU): the per-pixel stages of Farnebäck's dense flow
(tensorlite/data/flow.py holds the algorithm and its equations).

Layout: every multi-channel image is planar, `(C, H, W)` float32 -- a polynomial expansion is
`(5, H, W)`, a flow `(2, H, W)` with channel 0 = dx and 1 = dy -- so a row of one channel is
contiguous and the inner loops run along it.  Pixels outside the image read the nearest border
pixel (replicate), as OpenCV's Farnebäck does.

Stages, one kernel each (the CUDA twins in kernels/cuda/flow.py have the same names and
signatures):

    poly_expansion(image, n, sigma, coeffs)          image (H, W) -> coeffs (5, H, W)
    separable_blur(src, taps, dst)                   (C, H, W), taps (K,) odd -> (C, H, W)
    resize_bilinear(src, value_scale, dst)           (C, H, W) -> (C, h, w), values * value_scale
    update_matrices(coeffs0, coeffs1, flow, border, matrices)        -> matrices (5, H, W)
    solve_flow(matrices, reg, reg_prior, flow)       flow (2, H, W) updated in place

The kernels are serial (one thread).  Flow is computed in the data pipeline, where the parallelism
is one frame pair per loader worker process: there, prange's OpenMP workers wait for a core the
other processes hold (10-20x slower under load than one thread; docs/data.md, "Optical flow").
"""
import numba
import numpy as np

from .._launch import (check_poly_expansion, check_resize_bilinear, check_separable_blur,
                       check_solve_flow, check_update_matrices, poly_expansion_filters)
from .._scalar import for_cpu

normal_equations_pixel, poly_cols_pixel, poly_rows_pixel, solve_flow_pixel = for_cpu(
    'normal_equations_pixel', 'poly_cols_pixel', 'poly_rows_pixel', 'solve_flow_pixel')


# ---- polynomial expansion ------------------------------------------------------------------------

@numba.njit(cache=True)
def _poly_rows(image, taps, rows):
    H, W = image.shape
    n = (taps.shape[1] - 1) // 2
    for y in range(H):
        for x in range(W):
            poly_rows_pixel(image, taps, rows, y, x, W, n)


@numba.njit(cache=True)
def _poly_cols(rows, taps, consts, coeffs):
    _, H, W = rows.shape
    n = (taps.shape[1] - 1) // 2
    for y in range(H):
        for x in range(W):
            poly_cols_pixel(rows, taps, consts, coeffs, y, x, H, n)


def poly_expansion(image, n, sigma, coeffs):
    """coeffs (5, H, W) = (b_x, b_y, a_xx, a_yy, a_xy): the weighted least-squares fit of
    f(x + u, y + v) ~ c + b_x u + b_y v + a_xx u^2 + a_yy v^2 + a_xy u v to image (H, W) float32
    over a (2n+1)^2 window with Gaussian applicability of std `sigma`."""
    check_poly_expansion(image, coeffs)
    taps, consts = poly_expansion_filters(int(n), float(sigma))
    rows = np.empty((3,) + image.shape, np.float32)
    _poly_rows(image, taps, rows)
    _poly_cols(rows, taps, consts, coeffs)


# ---- separable smoothing -------------------------------------------------------------------------

@numba.njit(cache=True)
def _blur_rows(src, taps, dst):
    # one tap at a time over the whole row (x + k inside the row, then the clamped ends): the
    # inner loops are unit-stride and branch-free, so they vectorize
    C, H, W = src.shape
    n = (taps.shape[0] - 1) // 2
    for cy in range(C * H):
        c, y = cy // H, cy % H
        for x in range(W):
            dst[c, y, x] = 0
        for k in range(-n, n + 1):
            w = taps[k + n]
            lo, hi = min(max(-k, 0), W), max(min(W - k, W), 0)
            if hi > lo:
                # views that start at 0: an index from range(m) is provably >= 0, so Numba's
                # negative-index wraparound check (which blocks vectorization) disappears
                out, inp = dst[c, y, lo:hi], src[c, y, lo + k:hi + k]
                for i in range(hi - lo):
                    out[i] += w * inp[i]
            for x in range(lo):
                dst[c, y, x] += w * src[c, y, 0]
            for x in range(max(hi, lo), W):
                dst[c, y, x] += w * src[c, y, W - 1]


@numba.njit(cache=True)
def _blur_cols(src, taps, dst):
    # output row y is a weighted sum of whole input rows y + k: contiguous reads, one row at a time
    C, H, W = src.shape
    n = (taps.shape[0] - 1) // 2
    for cy in range(C * H):
        c, y = cy // H, cy % H
        for x in range(W):
            dst[c, y, x] = 0
        for k in range(-n, n + 1):
            yy = min(max(y + k, 0), H - 1)
            w = taps[k + n]
            for x in range(W):
                dst[c, y, x] += w * src[c, yy, x]


def separable_blur(src, taps, dst):
    """dst (C, H, W) = src (C, H, W) correlated with the 1-D `taps` (odd length K) along x, then
    along y, each channel on its own; pixels beyond the border repeat the border."""
    check_separable_blur(src, taps, dst)
    tmp = np.empty_like(src)
    _blur_rows(src, taps, tmp)
    _blur_cols(tmp, taps, dst)


# ---- bilinear resampling (pyramid down-sampling, flow up-sampling) -------------------------------

@numba.njit(cache=True)
def _resize_bilinear(src, value_scale, dst):
    # pixel centres are aligned: output (i, j) reads input ((i + .5) H/h - .5, (j + .5) W/w - .5)
    C, H, W = src.shape
    _, h, w = dst.shape
    sy, sx = H / h, W / w
    for ci in range(C * h):
        c, i = ci // h, ci % h
        fy = min(max((i + 0.5) * sy - 0.5, 0.0), H - 1.0)
        y0 = min(int(fy), H - 2) if H > 1 else 0
        ay = fy - y0
        y1 = min(y0 + 1, H - 1)
        for j in range(w):
            fx = min(max((j + 0.5) * sx - 0.5, 0.0), W - 1.0)
            x0 = min(int(fx), W - 2) if W > 1 else 0
            ax = fx - x0
            x1 = min(x0 + 1, W - 1)
            top = (1 - ax) * src[c, y0, x0] + ax * src[c, y0, x1]
            bottom = (1 - ax) * src[c, y1, x0] + ax * src[c, y1, x1]
            dst[c, i, j] = value_scale * ((1 - ay) * top + ay * bottom)


def resize_bilinear(src, value_scale, dst):
    """dst (C, h, w) = value_scale * src (C, H, W) resampled bilinearly, pixel centres aligned
    (corners are not: pixel (i, j) of dst sits at ((i + 1/2) H/h - 1/2, (j + 1/2) W/w - 1/2))."""
    check_resize_bilinear(src, dst)
    _resize_bilinear(src, np.float32(value_scale), dst)


# ---- the displacement step: normal equations per pixel, and their solution -----------------------

# in float64, as the arithmetic of Python's numbers (the CUDA twin's is float32)
@numba.njit(cache=True)
def _update_matrices(coeffs0, coeffs1, flow, border, matrices):
    _, H, W = coeffs0.shape
    for y in range(H):
        for x in range(W):
            normal_equations_pixel(coeffs0, coeffs1, flow, border, matrices, y, x, H, W,
                                   numba.float64)



def update_matrices(coeffs0, coeffs1, flow, border, matrices):
    """The per-pixel normal equations of one displacement step: with A = (A1(p) + A2(p + d))/2
    (a 2x2 symmetric matrix from the a coefficients), r = A d - (b2(p + d) - b1(p))/2 (the second
    expansion sampled bicubically at the flow's target) and w the border weight,
    matrices (5, H, W) = (G_xx, G_xy, G_yy, h_x, h_y) of G = w^2 A^T A and h = w^2 A^T r.
    coeffs0, coeffs1 (5, H, W); flow (2, H, W) = (dx, dy); border: width (pixels) of the ramp."""
    check_update_matrices(coeffs0, coeffs1, flow, matrices)
    _update_matrices(coeffs0, coeffs1, flow, int(border), matrices)


@numba.njit(cache=True)
def _solve_flow(matrices, reg, reg_prior, flow):
    _, H, W = matrices.shape
    for y in range(H):
        for x in range(W):
            solve_flow_pixel(matrices, reg, reg_prior, flow, y, x)


def solve_flow(matrices, reg, reg_prior, flow):
    """flow (2, H, W) <- (G + (reg + reg_prior) I)^{-1} (h + reg_prior flow) per pixel, from
    matrices (5, H, W) = (G_xx, G_xy, G_yy, h_x, h_y) already averaged over the window.  Where G
    is weak (flat or one-dimensional texture) reg >= 0 pulls the flow towards 0 and
    reg_prior >= 0 towards the flow it replaces (the coarser level's); a pixel whose system is
    singular keeps its flow."""
    check_solve_flow(matrices, reg, reg_prior, flow)
    _solve_flow(matrices, np.float32(reg), np.float32(reg_prior), flow)

"""Optical-flow kernels (CUDA twins of kernels/cpu/flow.py: same names, same signatures, same
planar (C, H, W) float32 layout and replicated borders).

A 2-D grid-stride loop over the output pixels (kernels/cuda/_grid.py): x along threadIdx.x, so the
threads of a warp read and write adjacent memory of one row; y (and the channel, for the
multi-channel passes) along the grid's second axis.  On a GPU one thread per pixel (the grid capped
at _grid.MAX_BLOCKS blocks); under the simulator 2 blocks.  Every pixel's work is independent, so
no kernel needs shared memory or a barrier.
The per-pixel maths is the CPU twin's (kernels/_scalar.py); the host-side filters (Gaussian taps,
the inverse Gram matrix of the polynomial basis) come from kernels/_launch.py, copied to the device.
"""
import numba
from numba import cuda

from ... import backend
from .._launch import (check_poly_expansion, check_resize_bilinear, check_separable_blur,
                       check_solve_flow, check_update_matrices, poly_expansion_filters)
from .._scalar import for_cuda
from . import _grid

clamp, minimum, normal_equations_pixel, poly_cols_pixel, poly_rows_pixel, solve_flow_pixel = \
    for_cuda('clamp', 'minimum', 'normal_equations_pixel', 'poly_cols_pixel', 'poly_rows_pixel',
             'solve_flow_pixel')

# threads per block along x and y; smaller under the simulator, which runs each thread as a Python
# thread (8 x 4 still exercises blocks that straddle the image edge)
BLOCK = (8, 4) if _grid.SIMULATED else (32, 8)


def _launch(width, rows):
    """(blocks, threads) for a grid-stride loop over `width` x `rows` pixels: one thread per pixel,
    at most _grid.MAX_BLOCKS blocks in all."""
    bx, by = BLOCK
    nx = max(1, min((width + bx - 1) // bx, _grid.MAX_BLOCKS))
    ny = max(1, min((rows + by - 1) // by, _grid.MAX_BLOCKS // nx))
    return (nx, ny), BLOCK


# ---- polynomial expansion ------------------------------------------------------------------------

@cuda.jit(cache=True)
def _poly_rows(image, taps, rows):
    H, W = image.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    n = (taps.shape[1] - 1) // 2
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            poly_rows_pixel(image, taps, rows, y, x, W, n)


@cuda.jit(cache=True)
def _poly_cols(rows, taps, consts, coeffs):
    _, H, W = rows.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    n = (taps.shape[1] - 1) // 2
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            poly_cols_pixel(rows, taps, consts, coeffs, y, x, H, n)


def poly_expansion(image, n, sigma, coeffs):
    check_poly_expansion(image, coeffs)
    xp = backend.array_module(image)
    taps, consts = poly_expansion_filters(int(n), float(sigma))
    taps, consts = xp.asarray(taps), xp.asarray(consts)
    rows = xp.empty((3,) + image.shape, xp.float32)
    H, W = image.shape
    _poly_rows[_launch(W, H)](image, taps, rows)
    _poly_cols[_launch(W, H)](rows, taps, consts, coeffs)


# ---- separable smoothing -------------------------------------------------------------------------

@cuda.jit(cache=True)
def _blur_rows(src, taps, dst):
    C, H, W = src.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    n = (taps.shape[0] - 1) // 2
    for cy in range(start_y, C * H, step_y):
        for x in range(start_x, W, step_x):
            c, y = cy // H, cy % H
            s = numba.float32(0)
            for k in range(-n, n + 1):
                s += taps[k + n] * src[c, y, clamp(x + k, 0, W - 1)]
            dst[c, y, x] = s


@cuda.jit(cache=True)
def _blur_cols(src, taps, dst):
    C, H, W = src.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    n = (taps.shape[0] - 1) // 2
    for cy in range(start_y, C * H, step_y):
        for x in range(start_x, W, step_x):
            c, y = cy // H, cy % H
            s = numba.float32(0)
            for k in range(-n, n + 1):
                s += taps[k + n] * src[c, clamp(y + k, 0, H - 1), x]
            dst[c, y, x] = s


def separable_blur(src, taps, dst):
    check_separable_blur(src, taps, dst)
    xp = backend.array_module(src)
    tmp = xp.empty_like(src)
    C, H, W = src.shape
    _blur_rows[_launch(W, C * H)](src, taps, tmp)
    _blur_cols[_launch(W, C * H)](tmp, taps, dst)


# ---- bilinear resampling -------------------------------------------------------------------------

@cuda.jit(cache=True)
def _resize_bilinear(src, value_scale, dst):
    C, H, W = src.shape
    _, h, w = dst.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    for ci in range(start_y, C * h, step_y):
        for j in range(start_x, w, step_x):
            # coordinates in the array's type: Python floats and int64 operands would promote
            # float32 to float64 (the CPU twin computes them in float64)
            f = src.dtype.type
            c, i = ci // h, ci % h
            fy = clamp((f(i) + f(0.5)) * (f(H) / f(h)) - f(0.5), f(0), f(H - 1))
            y0 = minimum(int(fy), H - 2) if H > 1 else 0
            ay = fy - f(y0)
            y1 = minimum(y0 + 1, H - 1)
            fx = clamp((f(j) + f(0.5)) * (f(W) / f(w)) - f(0.5), f(0), f(W - 1))
            x0 = minimum(int(fx), W - 2) if W > 1 else 0
            ax = fx - f(x0)
            x1 = minimum(x0 + 1, W - 1)
            top = (f(1) - ax) * src[c, y0, x0] + ax * src[c, y0, x1]
            bottom = (f(1) - ax) * src[c, y1, x0] + ax * src[c, y1, x1]
            dst[c, i, j] = value_scale * ((f(1) - ay) * top + ay * bottom)


def resize_bilinear(src, value_scale, dst):
    check_resize_bilinear(src, dst)
    C, h, w = dst.shape
    _resize_bilinear[_launch(w, C * h)](src, numba.float32(value_scale), dst)


# ---- the displacement step -----------------------------------------------------------------------

@cuda.jit(cache=True)
def _update_matrices(coeffs0, coeffs1, flow, border, matrices):
    _, H, W = coeffs0.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            # in the flow's float32, as in _resize_bilinear (the CPU twin's is float64)
            normal_equations_pixel(coeffs0, coeffs1, flow, border, matrices, y, x, H, W,
                                   flow.dtype.type)


def update_matrices(coeffs0, coeffs1, flow, border, matrices):
    check_update_matrices(coeffs0, coeffs1, flow, matrices)
    _, H, W = coeffs0.shape
    _update_matrices[_launch(W, H)](coeffs0, coeffs1, flow, int(border), matrices)


@cuda.jit(cache=True)
def _solve_flow(matrices, reg, reg_prior, flow):
    _, H, W = matrices.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            solve_flow_pixel(matrices, reg, reg_prior, flow, y, x)


def solve_flow(matrices, reg, reg_prior, flow):
    check_solve_flow(matrices, reg, reg_prior, flow)
    _, H, W = matrices.shape
    _solve_flow[_launch(W, H)](matrices, numba.float32(reg), numba.float32(reg_prior), flow)

"""Optical-flow kernels (CUDA twins of kernels/cpu/flow.py: same names, same signatures, same
planar (C, H, W) float32 layout and replicated borders).

A 2-D grid-stride loop over the output pixels (kernels/cuda/_grid.py): x along threadIdx.x, so the
threads of a warp read and write adjacent memory of one row; y (and the channel, for the
multi-channel passes) along the grid's second axis.  On a GPU one thread per pixel (the grid capped
at _grid.MAX_BLOCKS blocks); under the simulator 2 blocks.  Every pixel's work is independent, so
no kernel needs shared memory or a barrier.
The host-side filters (Gaussian taps, the inverse Gram matrix of the polynomial basis) are computed
by the CPU twin's helpers and copied to the device.
"""
import numba
from numba import cuda

from ... import backend
from ..cpu.flow import (COEFFS, MATRICES, check_planar, check_taps, poly_expansion_filters)
from . import _grid
from ._device import _max, _min  # builtin min/max do not compile for the CUDA target

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
            s0 = s1 = s2 = numba.float32(0)
            for k in range(-n, n + 1):
                v = image[y, _min(_max(x + k, 0), W - 1)]
                s0 += taps[0, k + n] * v
                s1 += taps[1, k + n] * v
                s2 += taps[2, k + n] * v
            rows[0, y, x] = s0
            rows[1, y, x] = s1
            rows[2, y, x] = s2


@cuda.jit(cache=True)
def _poly_cols(rows, taps, consts, coeffs):
    _, H, W = rows.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    n = (taps.shape[1] - 1) // 2
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            f1 = fx = fy = fxx = fyy = fxy = numba.float32(0)
            for k in range(-n, n + 1):
                yy = _min(_max(y + k, 0), H - 1)
                g, tg, ttg = taps[0, k + n], taps[1, k + n], taps[2, k + n]
                r0, r1, r2 = rows[0, yy, x], rows[1, yy, x], rows[2, yy, x]
                f1 += g * r0
                fx += g * r1
                fxx += g * r2
                fy += tg * r0
                fxy += tg * r1
                fyy += ttg * r0
            coeffs[0, y, x] = fx * consts[0]
            coeffs[1, y, x] = fy * consts[0]
            coeffs[2, y, x] = consts[2] * f1 + consts[3] * fxx + consts[4] * fyy
            coeffs[3, y, x] = consts[2] * f1 + consts[4] * fxx + consts[3] * fyy
            coeffs[4, y, x] = fxy * consts[1]


def poly_expansion(image, n, sigma, coeffs):
    if image.ndim != 2:
        raise ValueError(f"poly_expansion: image has shape {tuple(image.shape)}, expected (H, W)")
    check_planar('poly_expansion', 'image', image[None])
    check_planar('poly_expansion', 'coeffs', coeffs, (COEFFS,) + image.shape)
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
                s += taps[k + n] * src[c, y, _min(_max(x + k, 0), W - 1)]
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
                s += taps[k + n] * src[c, _min(_max(y + k, 0), H - 1), x]
            dst[c, y, x] = s


def separable_blur(src, taps, dst):
    check_planar('separable_blur', 'src', src)
    check_taps('separable_blur', taps)
    check_planar('separable_blur', 'dst', dst, src.shape)
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
            fy = _min(_max((f(i) + f(0.5)) * (f(H) / f(h)) - f(0.5), f(0)), f(H - 1))
            y0 = _min(int(fy), H - 2) if H > 1 else 0
            ay = fy - f(y0)
            y1 = _min(y0 + 1, H - 1)
            fx = _min(_max((f(j) + f(0.5)) * (f(W) / f(w)) - f(0.5), f(0)), f(W - 1))
            x0 = _min(int(fx), W - 2) if W > 1 else 0
            ax = fx - f(x0)
            x1 = _min(x0 + 1, W - 1)
            top = (f(1) - ax) * src[c, y0, x0] + ax * src[c, y0, x1]
            bottom = (f(1) - ax) * src[c, y1, x0] + ax * src[c, y1, x1]
            dst[c, i, j] = value_scale * ((f(1) - ay) * top + ay * bottom)


def resize_bilinear(src, value_scale, dst):
    check_planar('resize_bilinear', 'src', src)
    check_planar('resize_bilinear', 'dst', dst, channels=src.shape[0])
    C, h, w = dst.shape
    _resize_bilinear[_launch(w, C * h)](src, numba.float32(value_scale), dst)


# ---- the displacement step -----------------------------------------------------------------------

@cuda.jit(device=True, inline=True)
def _border_weight(y, x, H, W, border):
    d = _min(_min(y, H - 1 - y), _min(x, W - 1 - x))
    if d >= border:
        return numba.float32(1)
    return numba.float32(d + 1) / numba.float32(border + 1)


@cuda.jit(device=True, inline=True)
def _cubic_weight(i, t):
    # Catmull-Rom weight of tap i = 0..3 (offsets -1, 0, 1, 2), as the CPU twin's cubic_weight,
    # with constants of t's type (Python numbers would promote float32 to float64)
    f = type(t)
    if i == 0:
        return ((-t + f(2)) * t - f(1)) * t * f(0.5)
    if i == 1:
        return ((f(3) * t - f(5)) * t * t + f(2)) * f(0.5)
    if i == 2:
        return ((f(-3) * t + f(4)) * t + f(1)) * t * f(0.5)
    return (t - f(1)) * t * t * f(0.5)


@cuda.jit(cache=True)
def _update_matrices(coeffs0, coeffs1, flow, border, matrices):
    _, H, W = coeffs0.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            f = flow.dtype.type      # as in _resize_bilinear: no float64 (the CPU twin's is)
            dx, dy = flow[0, y, x], flow[1, y, x]
            fx, fy = f(x) + dx, f(y) + dy
            w = _border_weight(y, x, H, W, border)
            if not (fx >= f(0) and fy >= f(0) and fx <= f(W - 1) and fy <= f(H - 1)):
                for k in range(MATRICES):
                    matrices[k, y, x] = 0
                continue
            ix, iy = int(fx), int(fy)
            tx, ty = fx - f(ix), fy - f(iy)
            c1 = c2 = c3 = c4 = c5 = numba.float32(0)
            for i in range(4):
                yi = _min(_max(iy - 1 + i, 0), H - 1)
                wy = _cubic_weight(i, ty)
                for j in range(4):
                    xj = _min(_max(ix - 1 + j, 0), W - 1)
                    wij = wy * _cubic_weight(j, tx)
                    c1 += wij * coeffs1[0, yi, xj]
                    c2 += wij * coeffs1[1, yi, xj]
                    c3 += wij * coeffs1[2, yi, xj]
                    c4 += wij * coeffs1[3, yi, xj]
                    c5 += wij * coeffs1[4, yi, xj]
            axx = (coeffs0[2, y, x] + c3) * f(0.5)
            ayy = (coeffs0[3, y, x] + c4) * f(0.5)
            axy = (coeffs0[4, y, x] + c5) * f(0.25)
            rx = w * ((coeffs0[0, y, x] - c1) * f(0.5) + axx * dx + axy * dy)
            ry = w * ((coeffs0[1, y, x] - c2) * f(0.5) + axy * dx + ayy * dy)
            axx *= w
            ayy *= w
            axy *= w
            matrices[0, y, x] = axx * axx + axy * axy
            matrices[1, y, x] = axy * (axx + ayy)
            matrices[2, y, x] = axy * axy + ayy * ayy
            matrices[3, y, x] = axx * rx + axy * ry
            matrices[4, y, x] = axy * rx + ayy * ry


def update_matrices(coeffs0, coeffs1, flow, border, matrices):
    check_planar('update_matrices', 'coeffs0', coeffs0, channels=COEFFS)
    shape = coeffs0.shape
    check_planar('update_matrices', 'coeffs1', coeffs1, shape)
    check_planar('update_matrices', 'flow', flow, (2,) + shape[1:])
    check_planar('update_matrices', 'matrices', matrices, (MATRICES,) + shape[1:])
    _update_matrices[_launch(shape[2], shape[1])](coeffs0, coeffs1, flow, int(border), matrices)


@cuda.jit(cache=True)
def _solve_flow(matrices, reg, reg_prior, flow):
    _, H, W = matrices.shape
    start_x, start_y = cuda.grid(2)
    step_x, step_y = cuda.gridsize(2)
    for y in range(start_y, H, step_y):
        for x in range(start_x, W, step_x):
            gxx = matrices[0, y, x] + reg + reg_prior
            gxy = matrices[1, y, x]
            gyy = matrices[2, y, x] + reg + reg_prior
            hx = matrices[3, y, x] + reg_prior * flow[0, y, x]
            hy = matrices[4, y, x] + reg_prior * flow[1, y, x]
            det = gxx * gyy - gxy * gxy
            if det > 0:
                flow[0, y, x] = (gyy * hx - gxy * hy) / det
                flow[1, y, x] = (gxx * hy - gxy * hx) / det


def solve_flow(matrices, reg, reg_prior, flow):
    check_planar('solve_flow', 'matrices', matrices, channels=MATRICES)
    check_planar('solve_flow', 'flow', flow, (2,) + matrices.shape[1:])
    if not (reg >= 0 and reg_prior >= 0):
        raise ValueError(f"solve_flow: reg and reg_prior must be >= 0, got {reg!r} and "
                         f"{reg_prior!r}")
    _, H, W = matrices.shape
    _solve_flow[_launch(W, H)](matrices, numba.float32(reg), numba.float32(reg_prior), flow)

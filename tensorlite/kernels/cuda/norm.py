"""Fused normalization kernels (CUDA twins of kernels/cpu/norm.py: same names, same signatures).

Sums are block reductions: a block of THREADS threads strides over one (n, c) slab (batch_norm)
or one row (layer_norm), then a tree sum in shared memory, in float64 as on the CPU; the per-slab
sums are combined by kernels/_launch.py's helpers, on the device's array module.  The blocks take
their slabs or rows in a block-stride loop (the grid is capped by _grid.MAX_BLOCKS, so a block may
do several), with a barrier at the end of each so the shared buffer can be reused.  Elementwise
passes are grid-stride loops, one value at a time.  The weight and bias gradients of layer_norm
sum over rows, so they get a kernel of their own: the rows are split into at most ROW_BLOCKS
blocks of rows (a function of the shape alone, so the result does not depend on the launch),
summed separately and combined afterwards; the grid strides over columns along x (adjacent
threads read adjacent memory) and over the blocks of rows along y.
"""
import math

from numba import cuda, float64

from ... import backend
from .._launch import (check_batch_norm_apply, check_batch_norm_grad_sums,
                       check_batch_norm_input_grad, check_batch_norm_stats, check_layer_norm_bwd,
                       check_layer_norm_fwd, combine_grad_sums, combine_stats)
from .._scalar import for_cuda
from . import _grid

maximum, minimum = for_cuda('maximum', 'minimum')


# threads of a reduction block: a power of two (the tree sum halves it) and a compile-time constant
# (the size of the shared buffer), so _grid.use_gpu_launch does not change it; under the simulator,
# which runs each thread as a Python thread, _grid.SIM_THREADS (32): that still exercises the
# strided loops and five levels of the tree sum
THREADS = _grid.SIM_THREADS if _grid.SIMULATED else 128
ROW_BLOCKS = 64     # blocks of rows summed separately for layer_norm's weight/bias gradients


@cuda.jit(device=True)
def _block_sum2(buf, a, b):
    """The sums of `a` and of `b` over the threads of the block, both in one tree (half the
    barriers of two); every thread must call it, once per loop iteration, and the iteration must
    end with a barrier (cuda.syncthreads()) before buf is written again: the result is read from
    buf[:, 0].  buf: shared (2, THREADS) float64."""
    t = cuda.threadIdx.x
    buf[0, t] = a
    buf[1, t] = b
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            buf[0, t] += buf[0, t + step]
            buf[1, t] += buf[1, t + step]
        cuda.syncthreads()
        step //= 2
    return buf[0, 0], buf[1, 0]


# ---- batch_norm: x (N, C, S) ---------------------------------------------------------------------

@cuda.jit(cache=True)
def _channel_shifted_sums(x, shift, part):
    # one block per (c, n) slab at a time, as the CPU twin's loop: N * C slabs, not C; blocks
    # stride over c along x and over n along y
    N, C, S = x.shape
    buf = cuda.shared.array((2, THREADS), float64)
    for n in range(cuda.blockIdx.y, N, cuda.gridDim.y):
        for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
            k = shift[c]
            s, ss = 0.0, 0.0
            for i in range(cuda.threadIdx.x, S, THREADS):
                d = x[n, c, i] - k
                s += d
                ss += d * d
            s, ss = _block_sum2(buf, s, ss)
            if cuda.threadIdx.x == 0:
                part[n, c, 0] = s
                part[n, c, 1] = ss
            cuda.syncthreads()      # every thread has read buf before the next slab writes it


@cuda.jit(cache=True)
def _channel_affine(x, mean, scale, shift, y):
    N, C, S = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, rest = e // (C * S), e % (C * S)
        c, i = rest // S, rest % S
        y[n, c, i] = (x[n, c, i] - mean[c]) * scale[c] + shift[c]


@cuda.jit(cache=True)
def _channel_grad_sums(x, dy, mean, part):
    N, C, S = x.shape
    buf = cuda.shared.array((2, THREADS), float64)
    for n in range(cuda.blockIdx.y, N, cuda.gridDim.y):
        for c in range(cuda.blockIdx.x, C, cuda.gridDim.x):
            m = mean[c]
            s, sx = 0.0, 0.0
            for i in range(cuda.threadIdx.x, S, THREADS):
                g = dy[n, c, i]
                s += g
                sx += g * (x[n, c, i] - m)
            s, sx = _block_sum2(buf, s, sx)
            if cuda.threadIdx.x == 0:
                part[n, c, 0] = s
                part[n, c, 1] = sx
            cuda.syncthreads()      # every thread has read buf before the next slab writes it


@cuda.jit(cache=True)
def _channel_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx):
    N, C, S = x.shape
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        n, rest = e // (C * S), e % (C * S)
        c, i = rest // S, rest % S
        r = rstd[c]
        count = x.dtype.type(N * S)     # an int64 divisor would promote float32 to float64
        xh = (x[n, c, i] - mean[c]) * r
        dx[n, c, i] = weight[c] * r * (dy[n, c, i] - sum_dy[c] / count
                                       - xh * sum_dy_xhat[c] / count)


def _slab_blocks(C, N):
    """The (x, y) grid of a kernel over (c, n) slabs: at most _grid.MAX_BLOCKS blocks in all."""
    bx = _grid.row_blocks(C)
    return bx, max(1, min(N, _grid.MAX_BLOCKS // bx))


def batch_norm_stats(x, eps, mean, var, rstd):
    check_batch_norm_stats(x, mean, var, rstd)
    C = x.shape[1]
    xp = backend.array_module(x)
    shift = x[0, :, 0].astype(xp.float64)
    part = xp.empty((x.shape[0], C, 2))
    _channel_shifted_sums[_slab_blocks(C, x.shape[0]), THREADS](x, shift, part)
    combine_stats(xp, part, shift, x.shape[0] * x.shape[2], eps, mean, var, rstd)


def batch_norm_apply(x, mean, scale, shift, y):
    check_batch_norm_apply(x, mean, scale, shift, y)
    _channel_affine[_grid.grid(x.size)](x, mean, scale, shift, y)


def batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat):
    check_batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat)
    C = x.shape[1]
    part = backend.array_module(x).empty((x.shape[0], C, 2))
    _channel_grad_sums[_slab_blocks(C, x.shape[0]), THREADS](x, dy, mean, part)
    combine_grad_sums(part, rstd, sum_dy, sum_dy_xhat)


def batch_norm_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx):
    check_batch_norm_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx)
    _channel_input_grad[_grid.grid(x.size)](x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx)


# ---- layer_norm: x (R, D) ------------------------------------------------------------------------

@cuda.jit(cache=True)
def _row_norm_fwd(x, weight, bias, eps, y, mean, var, rstd):
    R, D = x.shape
    t = cuda.threadIdx.x
    buf = cuda.shared.array((2, THREADS), float64)
    for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        k = float64(x[r, 0])            # shifted sums in one reduction, as batch_norm's
        s, ss = 0.0, 0.0
        for j in range(t, D, THREADS):
            d = x[r, j] - k
            s += d
            ss += d * d
        s, ss = _block_sum2(buf, s, ss)
        if t == 0:
            m = s / D
            v = maximum(ss / D - m * m, 0.0)
            mean[r] = k + m
            var[r] = v
            rstd[r] = 1.0 / math.sqrt(v + eps)
        cuda.syncthreads()              # thread 0's writes are visible to the block after this
        mr, rr = mean[r], rstd[r]       # as stored, as backward sees them
        for j in range(t, D, THREADS):
            y[r, j] = (x[r, j] - mr) * rr * weight[j] + bias[j]
        cuda.syncthreads()              # the end of the row: buf is free for the next one


@cuda.jit(cache=True)
def _row_norm_input_grad(x, dy, mean, rstd, weight, dx):
    R, D = x.shape
    t = cuda.threadIdx.x
    buf = cuda.shared.array((2, THREADS), float64)
    for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        m, rs = mean[r], rstd[r]
        a, b = 0.0, 0.0
        for j in range(t, D, THREADS):
            g = dy[r, j] * weight[j]
            a += g
            b += g * (x[r, j] - m) * rs
        a, b = _block_sum2(buf, a, b)
        a, b = a / D, b / D
        for j in range(t, D, THREADS):
            dx[r, j] = rs * (dy[r, j] * weight[j] - a - (x[r, j] - m) * rs * b)
        cuda.syncthreads()              # every thread has read buf before the next row writes it


@cuda.jit(cache=True)
def _row_norm_param_grad(x, dy, mean, rstd, part_w, part_b):
    # the rows are split into part_w.shape[0] blocks of rows, a function of R alone, so the partial
    # sums (and their rounding) do not depend on the launch: the blocks along y stride over the
    # blocks of rows, the threads along x over the columns (adjacent threads, adjacent columns)
    R, D = x.shape
    blocks = part_w.shape[0]
    per = (R + blocks - 1) // blocks
    for t in range(cuda.blockIdx.y, blocks, cuda.gridDim.y):
        for j in range(cuda.grid(1), D, cuda.gridsize(1)):
            sw, sb = 0.0, 0.0
            for r in range(t * per, minimum(R, (t + 1) * per)):
                g = dy[r, j]
                sw += g * (x[r, j] - mean[r]) * rstd[r]
                sb += g
            part_w[t, j] = sw
            part_b[t, j] = sb


def layer_norm_fwd(x, weight, bias, eps, y, mean, var, rstd):
    check_layer_norm_fwd(x, weight, bias, y, mean, var, rstd)
    R, D = x.shape
    _row_norm_fwd[_grid.row_blocks(R), THREADS](x, weight, bias, float(eps), y, mean, var, rstd)


def layer_norm_bwd(x, dy, mean, rstd, weight, dx, dweight, dbias):
    check_layer_norm_bwd(x, dy, mean, rstd, weight, dx, dweight, dbias)
    R, D = x.shape
    _row_norm_input_grad[_grid.row_blocks(R), THREADS](x, dy, mean, rstd, weight, dx)
    xp = backend.array_module(x)
    blocks = min(R, ROW_BLOCKS)
    part_w, part_b = xp.empty((blocks, D)), xp.empty((blocks, D))
    col_blocks, threads = _grid.grid(D)
    _row_norm_param_grad[(col_blocks, _grid.row_blocks(blocks)), threads](x, dy, mean, rstd,
                                                                         part_w, part_b)

    dweight[...] = part_w.sum(axis=0)
    dbias[...] = part_b.sum(axis=0)

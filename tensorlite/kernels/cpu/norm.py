"""Fused normalization kernels (CPU): batch_norm over (N, C, S) with statistics per channel, and
layer_norm over (R, D) with statistics per row.

The NumPy path reads or writes an array of the input's size about a dozen times for a forward
and twenty for a backward (allocating temporaries as large); these loops do it three times
(forward) and five (backward).  Measured against the NumPy path of
tensorlite/functional/normalization.py by benchmarks/bench_norm.py.

Sums are accumulated in float64 whatever the dtype: a running float32 sum over the 400,000 values
of one channel would lose several of its seven digits.  The batch statistics are shifted sums -- sum(x - k) and
sum((x - k)^2) with k the channel's first value -- which read the data once and do not suffer the
cancellation of sum(x^2) - M mean^2 when the mean is large against the spread.
"""
import math

import numba
import numpy as np

from .._launch import (check_batch_norm_apply, check_batch_norm_grad_sums,
                       check_batch_norm_input_grad, check_batch_norm_stats, check_layer_norm_bwd,
                       check_layer_norm_fwd, combine_grad_sums, combine_stats, run)

# Reassociation lets LLVM split a running sum over several vector lanes: the float32 -> float64 sums
# then run at memory speed instead of one dependent add at a time (5x on batch_norm's statistics),
# and the split sums are, if anything, more accurate.  No other fast-math flag: NaN and inf must
# propagate as they would in NumPy.
REDUCE = {'reassoc', 'contract'}


# ---- batch_norm: x (N, C, S), one statistic per channel -----------------------------------------

@numba.njit(parallel=True, cache=True, fastmath=REDUCE)
def _channel_shifted_sums(x, shift, part):
    # one (n, c) slab per iteration, so N * C iterations keep both cores busy even when C is small
    N, C, S = x.shape
    for nc in numba.prange(N * C):
        n, c = nc // C, nc % C
        k = shift[c]
        s, ss = 0.0, 0.0
        for i in range(S):
            d = x[n, c, i] - k
            s += d
            ss += d * d
        part[n, c, 0] = s
        part[n, c, 1] = ss


@numba.njit(parallel=True, cache=True)
def _channel_affine(x, mean, scale, shift, y):
    N, C, S = x.shape
    for nc in numba.prange(N * C):
        n, c = nc // C, nc % C
        m, a, b = mean[c], scale[c], shift[c]
        for i in range(S):
            y[n, c, i] = (x[n, c, i] - m) * a + b


@numba.njit(parallel=True, cache=True, fastmath=REDUCE)
def _channel_grad_sums(x, dy, mean, part):
    N, C, S = x.shape
    for nc in numba.prange(N * C):
        n, c = nc // C, nc % C
        m = mean[c]
        s, sx = 0.0, 0.0
        for i in range(S):
            g = dy[n, c, i]
            s += g
            sx += g * (x[n, c, i] - m)
        part[n, c, 0] = s
        part[n, c, 1] = sx


@numba.njit(parallel=True, cache=True)
def _channel_input_grad(x, dy, mean, rstd, weight, mean_dy, mean_dy_xhat, dx):
    N, C, S = x.shape
    for nc in numba.prange(N * C):
        n, c = nc // C, nc % C
        m, r = mean[c], rstd[c]
        wr, a, b = weight[c] * r, mean_dy[c], mean_dy_xhat[c]
        for i in range(S):
            dx[n, c, i] = wr * (dy[n, c, i] - a - (x[n, c, i] - m) * r * b)


def batch_norm_stats(x, eps, mean, var, rstd):
    """Per channel c of x (N, C, S): mean[c], biased var[c] and rstd[c] = 1 / sqrt(var[c] + eps)."""
    check_batch_norm_stats(x, mean, var, rstd)
    C = x.shape[1]
    shift = x[0, :, 0].astype(np.float64)
    part = np.empty((x.shape[0], C, 2))
    run(_channel_shifted_sums, x.size, x, shift, part)
    combine_stats(np, part, shift, x.shape[0] * x.shape[2], eps, mean, var, rstd)

def batch_norm_apply(x, mean, scale, shift, y):
    """y[n, c, i] = (x[n, c, i] - mean[c]) * scale[c] + shift[c]: the normalization and affine map
    in one pass (scale = weight * rstd, shift = bias)."""
    check_batch_norm_apply(x, mean, scale, shift, y)
    run(_channel_affine, 2 * x.size, x, mean, scale, shift, y)


def batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat):
    """Per channel: sum_dy[c] = sum(dy), sum_dy_xhat[c] = sum(dy * (x - mean) * rstd) over (N, S)
    -- the bias and weight gradients, and the two means the input gradient needs."""
    check_batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat)
    C = x.shape[1]
    part = np.empty((x.shape[0], C, 2))
    run(_channel_grad_sums, 2 * x.size, x, dy, mean, part)
    combine_grad_sums(part, rstd, sum_dy, sum_dy_xhat)

def batch_norm_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx):
    """dx = weight rstd (dy - sum_dy / M - xhat sum_dy_xhat / M), M = N S, xhat = (x - mean) rstd:
    the input gradient with batch statistics (sums from batch_norm_grad_sums)."""
    check_batch_norm_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx)
    count = x.shape[0] * x.shape[2]
    run(_channel_input_grad, 3 * x.size, x, dy, mean, rstd, weight, sum_dy / count,
        sum_dy_xhat / count, dx)


# ---- layer_norm: x (R, D), one statistic per row -------------------------------------------------

@numba.njit(parallel=True, cache=True, fastmath=REDUCE)
def _row_norm_fwd(x, weight, bias, eps, y, mean, var, rstd):
    R, D = x.shape
    for r in numba.prange(R):
        # a row is read three times, but it is small enough to stay in cache after the first
        s = 0.0
        for j in range(D):
            s += x[r, j]
        m = s / D
        ss = 0.0
        for j in range(D):
            d = x[r, j] - m
            ss += d * d
        mean[r] = m
        var[r] = ss / D
        rstd[r] = 1.0 / math.sqrt(ss / D + eps)
        mr, rr = mean[r], rstd[r]           # rounded to x's dtype, as backward will see them
        for j in range(D):
            y[r, j] = (x[r, j] - mr) * rr * weight[j] + bias[j]


@numba.njit(parallel=True, cache=True, fastmath=REDUCE)
def _row_norm_bwd(x, dy, mean, rstd, weight, dx, part_w, part_b):
    # rows are split into len(part_w) blocks; each block sums its weight/bias gradient into its own
    # row of part_w/part_b, so no two threads write the same memory
    R, D = x.shape
    blocks = part_w.shape[0]
    per = (R + blocks - 1) // blocks
    for t in numba.prange(blocks):
        for r in range(t * per, min(R, (t + 1) * per)):
            m, rs = mean[r], rstd[r]
            a, b = 0.0, 0.0
            for j in range(D):
                xh = (x[r, j] - m) * rs
                g = dy[r, j] * weight[j]
                a += g
                b += g * xh
                part_w[t, j] += dy[r, j] * xh
                part_b[t, j] += dy[r, j]
            a /= D
            b /= D
            for j in range(D):
                dx[r, j] = rs * (dy[r, j] * weight[j] - a - (x[r, j] - m) * rs * b)


def layer_norm_fwd(x, weight, bias, eps, y, mean, var, rstd):
    """Per row r of x (R, D): mean[r], biased var[r], rstd[r] = 1 / sqrt(var[r] + eps), and
    y[r, j] = (x[r, j] - mean[r]) rstd[r] weight[j] + bias[j]."""
    check_layer_norm_fwd(x, weight, bias, y, mean, var, rstd)
    run(_row_norm_fwd, 2 * x.size, x, weight, bias, eps, y, mean, var, rstd)


def layer_norm_bwd(x, dy, mean, rstd, weight, dx, dweight, dbias):
    """With g = dy weight and xhat = (x - mean) rstd, per row: dx = rstd (g - mean(g) -
    xhat mean(g xhat)); over rows: dweight = sum(dy xhat), dbias = sum(dy)."""
    check_layer_norm_bwd(x, dy, mean, rstd, weight, dx, dweight, dbias)
    R, D = x.shape
    # a few blocks per thread balance the load; float64 partials keep the sums over rows exact.
    # The blocks follow Numba's configured thread count, not the one thread `run` may pick for a
    # small input, so the sums do not depend on that choice
    blocks = min(R, 4 * numba.get_num_threads())
    part_w = np.zeros((blocks, D))
    part_b = np.zeros((blocks, D))
    run(_row_norm_bwd, 3 * x.size, x, dy, mean, rstd, weight, dx, part_w, part_b)
    dweight[...] = part_w.sum(axis=0)
    dbias[...] = part_b.sum(axis=0)

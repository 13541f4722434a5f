"""Fused activation kernels (CPU).  erf has no NumPy expression, and GELU's backward would take
a dozen NumPy passes over the data; one loop does it.  ReLU is one pass each way where NumPy took
three (a comparison, a cast to a float mask, the maximum) forward and a multiply backward.

Speed notes (benchmarks/bench_engine.py): the exact and tanh forms are separate loops, not a
branch inside one loop, and the constants are passed in the array's dtype, so float32 stays
float32; tanh(u) is computed as 1 - 2 / (exp(2u) + 1), which LLVM vectorizes where math.tanh
stays a scalar libm call (about 5x slower here).
"""
import math

import numba

from .._launch import INV_SQRT_2PI, SQRT_HALF, TANH_C, TANH_K, check_elementwise, run


@numba.njit(parallel=True, cache=True)
def _erf(x, out):
    for i in numba.prange(x.size):
        out[i] = math.erf(x[i])


@numba.njit(parallel=True, cache=True)
def _gelu_exact_fwd(x, y, half, sqrt_half):
    for i in numba.prange(x.size):
        v = x[i]
        y[i] = half * v * (1 + math.erf(v * sqrt_half))


@numba.njit(parallel=True, cache=True)
def _gelu_exact_bwd(x, gy, gx, half, sqrt_half, inv_sqrt_2pi):
    for i in numba.prange(x.size):
        v = x[i]
        gx[i] = gy[i] * (half * (1 + math.erf(v * sqrt_half))
                         + v * inv_sqrt_2pi * math.exp(-half * v * v))


@numba.njit(parallel=True, cache=True)
def _gelu_tanh_fwd(x, y, half, k, c):
    for i in numba.prange(x.size):
        v = x[i]
        t = 1 - 2 / (math.exp(2 * k * (v + c * v * v * v)) + 1)       # tanh(k (v + c v^3))
        y[i] = half * v * (1 + t)


@numba.njit(parallel=True, cache=True)
def _gelu_tanh_bwd(x, gy, gx, half, k, c):
    for i in numba.prange(x.size):
        v = x[i]
        t = 1 - 2 / (math.exp(2 * k * (v + c * v * v * v)) + 1)
        gx[i] = gy[i] * (half * (1 + t) + half * v * (1 - t * t) * k * (1 + 3 * c * v * v))


@numba.njit(parallel=True, cache=True)
def _relu_fwd(x, y, zero):
    for i in numba.prange(x.size):
        v = x[i]
        y[i] = zero if v <= zero else v         # NaN stays NaN, as PyTorch's relu


@numba.njit(parallel=True, cache=True)
def _relu_bwd(y, gy, gx, zero):
    for i in numba.prange(y.size):
        gx[i] = zero if y[i] <= zero else gy[i]     # PyTorch's threshold_backward on the output


def relu_fwd(x, y):
    """y = max(x, 0), elementwise (NaN stays NaN); y may be x itself (in place)."""
    check_elementwise('relu_fwd', ('x', 'y'), (x, y))
    run(_relu_fwd, 2 * x.size, x.reshape(-1), y.reshape(-1), x.dtype.type(0))


def relu_bwd(y, gy, gx):
    """gx = 0 where the output y <= 0, else gy (a NaN output passes gy, as PyTorch's
    threshold_backward); gx may be gy itself."""
    check_elementwise('relu_bwd', ('y', 'gy', 'gx'), (y, gy, gx))
    run(_relu_bwd, 3 * y.size, y.reshape(-1), gy.reshape(-1), gx.reshape(-1), y.dtype.type(0))


def erf(x, out):
    """out = erf(x), elementwise."""
    check_elementwise('erf', ('x', 'out'), (x, out))
    run(_erf, 2 * x.size, x.reshape(-1), out.reshape(-1))


def gelu_fwd(x, y, approximate):
    """y = x Phi(x) (approximate=False) or its tanh approximation (approximate=True)."""
    check_elementwise('gelu_fwd', ('x', 'y'), (x, y))
    c = x.dtype.type
    if approximate:
        run(_gelu_tanh_fwd, 2 * x.size, x.reshape(-1), y.reshape(-1), c(0.5), c(TANH_K), c(TANH_C))
    else:
        run(_gelu_exact_fwd, 2 * x.size, x.reshape(-1), y.reshape(-1), c(0.5), c(SQRT_HALF))


def gelu_bwd(x, gy, gx, approximate):
    """gx = gy * d gelu(x) / dx."""
    check_elementwise('gelu_bwd', ('x', 'gy', 'gx'), (x, gy, gx))
    c = x.dtype.type
    if approximate:
        run(_gelu_tanh_bwd, 3 * x.size, x.reshape(-1), gy.reshape(-1), gx.reshape(-1), c(0.5),
            c(TANH_K), c(TANH_C))
    else:
        run(_gelu_exact_bwd, 3 * x.size, x.reshape(-1), gy.reshape(-1), gx.reshape(-1), c(0.5),
            c(SQRT_HALF), c(INV_SQRT_2PI))

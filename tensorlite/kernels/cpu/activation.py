"""Fused activation kernels (CPU).  erf has no NumPy expression, and GELU's backward would take
seven NumPy passes over the data; one loop does it."""
import math

import numba

from .._launch import check_elementwise

SQRT_HALF = 0.7071067811865476          # 1 / sqrt(2)
INV_SQRT_2PI = 0.3989422804014327       # 1 / sqrt(2 pi)
TANH_K = 0.7978845608028654             # sqrt(2 / pi)
TANH_C = 0.044715


@numba.njit(parallel=True, cache=True)
def _erf(x, out):
    for i in numba.prange(x.size):
        out[i] = math.erf(x[i])


@numba.njit(parallel=True, cache=True)
def _gelu_fwd(x, y, approximate):
    for i in numba.prange(x.size):
        v = x[i]
        if approximate:
            y[i] = 0.5 * v * (1.0 + math.tanh(TANH_K * (v + TANH_C * v * v * v)))
        else:
            y[i] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))


@numba.njit(parallel=True, cache=True)
def _gelu_bwd(x, gy, gx, approximate):
    for i in numba.prange(x.size):
        v = x[i]
        if approximate:
            t = math.tanh(TANH_K * (v + TANH_C * v * v * v))
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * TANH_K * (1.0 + 3.0 * TANH_C * v * v)
        else:
            d = 0.5 * (1.0 + math.erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * math.exp(-0.5 * v * v)
        gx[i] = gy[i] * d


def erf(x, out):
    """out = erf(x), elementwise."""
    check_elementwise('erf', ('x', 'out'), (x, out))
    _erf(x.reshape(-1), out.reshape(-1))


def gelu_fwd(x, y, approximate):
    """y = x Phi(x) (approximate=False) or its tanh approximation (approximate=True)."""
    check_elementwise('gelu_fwd', ('x', 'y'), (x, y))
    _gelu_fwd(x.reshape(-1), y.reshape(-1), bool(approximate))


def gelu_bwd(x, gy, gx, approximate):
    """gx = gy * d gelu(x) / dx."""
    check_elementwise('gelu_bwd', ('x', 'gy', 'gx'), (x, gy, gx))
    _gelu_bwd(x.reshape(-1), gy.reshape(-1), gx.reshape(-1), bool(approximate))

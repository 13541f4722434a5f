"""Fused activation kernels (CUDA twins of kernels/cpu/activation.py: same names, same signatures).

Elementwise over the flattened arrays: each kernel is a grid-stride loop, one value at a time.
"""
import math

from numba import cuda

from .._launch import INV_SQRT_2PI, SQRT_HALF, TANH_C, TANH_K, check_elementwise
from . import _grid


@cuda.jit(cache=True)
def _erf(x, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = math.erf(x[i])


@cuda.jit(cache=True)
def _gelu_fwd(x, y, approximate):
    f = x.dtype.type                # constants in x's dtype: a Python float would make it float64
    half, one, k, c, sqrt_half = f(0.5), f(1.0), f(TANH_K), f(TANH_C), f(SQRT_HALF)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if approximate:
            y[i] = half * v * (one + math.tanh(k * (v + c * v * v * v)))
        else:
            y[i] = half * v * (one + math.erf(v * sqrt_half))


@cuda.jit(cache=True)
def _gelu_bwd(x, gy, gx, approximate):
    f = x.dtype.type
    half, one, three, k, c = f(0.5), f(1.0), f(3.0), f(TANH_K), f(TANH_C)
    sqrt_half, inv_sqrt_2pi = f(SQRT_HALF), f(INV_SQRT_2PI)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if approximate:
            t = math.tanh(k * (v + c * v * v * v))
            d = half * (one + t) + half * v * (one - t * t) * k * (one + three * c * v * v)
        else:
            d = half * (one + math.erf(v * sqrt_half)) + v * inv_sqrt_2pi * math.exp(-half * v * v)
        gx[i] = gy[i] * d


@cuda.jit(cache=True)
def _relu_fwd(x, y, zero):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        y[i] = zero if v <= zero else v


@cuda.jit(cache=True)
def _relu_bwd(y, gy, gx, zero):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        gx[i] = zero if y[i] <= zero else gy[i]


def relu_fwd(x, y):
    check_elementwise('relu_fwd', ('x', 'y'), (x, y))
    if x.size:
        _relu_fwd[_grid.grid(x.size)](x.reshape(-1), y.reshape(-1), x.dtype.type(0))


def relu_bwd(y, gy, gx):
    check_elementwise('relu_bwd', ('y', 'gy', 'gx'), (y, gy, gx))
    if y.size:
        _relu_bwd[_grid.grid(y.size)](y.reshape(-1), gy.reshape(-1), gx.reshape(-1),
                                      y.dtype.type(0))


def erf(x, out):
    check_elementwise('erf', ('x', 'out'), (x, out))
    if x.size:
        _erf[_grid.grid(x.size)](x.reshape(-1), out.reshape(-1))


def gelu_fwd(x, y, approximate):
    check_elementwise('gelu_fwd', ('x', 'y'), (x, y))
    if x.size:
        _gelu_fwd[_grid.grid(x.size)](x.reshape(-1), y.reshape(-1), bool(approximate))


def gelu_bwd(x, gy, gx, approximate):
    check_elementwise('gelu_bwd', ('x', 'gy', 'gx'), (x, gy, gx))
    if x.size:
        _gelu_bwd[_grid.grid(x.size)](x.reshape(-1), gy.reshape(-1), gx.reshape(-1),
                                      bool(approximate))

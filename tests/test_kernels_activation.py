"""The activation kernels: CPU twin against a math.erf reference, CUDA twin against the CPU twin
(under NUMBA_ENABLE_CUDASIM=1 when there is no GPU; see conftest.py), and the launch checks."""
import math

import numpy as np
import pytest

from tensorlite.kernels import twin
from tensorlite.kernels.cpu import activation as cpu

cuda = pytest.importorskip('tensorlite.kernels.cuda.activation')

SHAPES = [(0,), (1,), (7,), (3, 5), (2, 3, 4)]
DTYPES = [np.float32, np.float64]


def _x(shape, dtype):
    return (np.random.default_rng(0).standard_normal(shape) * 3).astype(dtype)


def _tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)


def _gelu_ref(x, approximate):
    x = x.astype(np.float64)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', SHAPES)
def test_cpu_erf_matches_math_erf(shape, dtype):
    x = _x(shape, dtype)
    out = np.empty_like(x)
    cpu.erf(x, out)
    ref = np.vectorize(math.erf)(x.astype(np.float64)) if x.size else x
    np.testing.assert_allclose(out, ref, **_tol(dtype))


@pytest.mark.parametrize('approximate', [False, True])
@pytest.mark.parametrize('dtype', DTYPES)
def test_cpu_gelu_forward_and_backward_match_references(approximate, dtype):
    x = _x((4, 6), dtype)
    y = np.empty_like(x)
    cpu.gelu_fwd(x, y, approximate)
    np.testing.assert_allclose(y, _gelu_ref(x, approximate), **_tol(dtype))
    gy = np.ones_like(x)
    gx = np.empty_like(x)
    cpu.gelu_bwd(x, gy, gx, approximate)
    h = 1e-6
    x64 = x.astype(np.float64)
    numeric = (_gelu_ref(x64 + h, approximate) - _gelu_ref(x64 - h, approximate)) / (2 * h)
    np.testing.assert_allclose(gx, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', SHAPES)
def test_cuda_twin_erf_matches_cpu_twin(shape, dtype):
    x = _x(shape, dtype)
    a, b = np.empty_like(x), np.empty_like(x)
    cpu.erf(x, a)
    cuda.erf(x, b)
    np.testing.assert_allclose(b, a, **_tol(dtype))


@pytest.mark.parametrize('approximate', [False, True])
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', [(1,), (5, 3), (300,)])      # 300 > one block of 256 threads
def test_cuda_twin_gelu_matches_cpu_twin(shape, dtype, approximate):
    x = _x(shape, dtype)
    gy = _x(shape, dtype)[::-1].copy()
    y_cpu, y_cuda = np.empty_like(x), np.empty_like(x)
    cpu.gelu_fwd(x, y_cpu, approximate)
    cuda.gelu_fwd(x, y_cuda, approximate)
    np.testing.assert_allclose(y_cuda, y_cpu, **_tol(dtype))
    g_cpu, g_cuda = np.empty_like(x), np.empty_like(x)
    cpu.gelu_bwd(x, gy, g_cpu, approximate)
    cuda.gelu_bwd(x, gy, g_cuda, approximate)
    np.testing.assert_allclose(g_cuda, g_cpu, **_tol(dtype))


def _relu_input(shape, dtype):
    """Normal values with exact zeros, -0.0, NaN and infinities mixed in."""
    x = _x(shape, dtype).reshape(-1)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf], dtype=dtype)
    x[:min(x.size, 5)] = specials[:min(x.size, 5)]
    return x.reshape(shape)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', SHAPES + [(5000,)])       # 5000: past the serial threshold
def test_cpu_relu_matches_pytorchs_rule(shape, dtype):
    """Forward max(x, 0) with NaN kept; backward 0 where the output y <= 0, else gy (so 0 at
    x = 0, and gy passes a NaN output: torch's threshold_backward on the result)."""
    x = _relu_input(shape, dtype)
    y = np.empty_like(x)
    cpu.relu_fwd(x, y)
    expected = np.where(np.isnan(x), x, np.where(x > 0, x, 0)).astype(dtype)
    np.testing.assert_array_equal(y, expected)
    gy = _x(shape, dtype)[::-1].copy()
    gx = np.empty_like(x)
    cpu.relu_bwd(y, gy, gx)
    np.testing.assert_array_equal(gx, np.where(y <= 0, 0, gy).astype(dtype))
    inplace = x.copy()
    cpu.relu_fwd(inplace, inplace)
    np.testing.assert_array_equal(inplace, y)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', [(1,), (5, 3), (300,)])
def test_cuda_twin_relu_matches_cpu_twin(shape, dtype):
    x = _relu_input(shape, dtype)
    gy = _x(shape, dtype)[::-1].copy()
    y_cpu, y_cuda = np.empty_like(x), np.empty_like(x)
    cpu.relu_fwd(x, y_cpu)
    cuda.relu_fwd(x, y_cuda)
    np.testing.assert_array_equal(y_cuda, y_cpu)
    g_cpu, g_cuda = np.empty_like(x), np.empty_like(x)
    cpu.relu_bwd(y_cpu, gy, g_cpu)
    cuda.relu_bwd(y_cpu, gy, g_cuda)
    np.testing.assert_array_equal(g_cuda, g_cpu)


@pytest.mark.parametrize('module', [cpu, cuda], ids=['cpu', 'cuda'])
def test_relu_launch_refuses_mixed_arrays(module):
    x = np.ones((4, 4), np.float32)
    with pytest.raises(TypeError, match='relu_fwd: y has dtype float64, x has float32'):
        module.relu_fwd(x, np.empty((4, 4)))
    with pytest.raises(ValueError, match='relu_bwd: gy .*not C-contiguous'):
        module.relu_bwd(x, x.T, np.empty_like(x))


@pytest.mark.parametrize('module', [cpu, cuda], ids=['cpu', 'cuda'])
def test_launch_refuses_strided_and_mixed_arrays(module):
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match='x .*not C-contiguous'):
        module.erf(x[:, ::2], np.empty((4, 2)))
    with pytest.raises(TypeError, match='out has dtype float32'):
        module.erf(x, np.empty((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match='out has 3 elements'):
        module.erf(x, np.empty(3))
    with pytest.raises(TypeError, match='int64'):
        module.erf(np.ones(3, dtype=np.int64), np.empty(3, dtype=np.int64))


def test_dispatch_picks_the_cpu_twin_for_numpy_arrays():
    assert twin('activation', np.ones(2)) is cpu

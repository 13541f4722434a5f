"""What the twins share at a launch (kernels/_launch.py, kernels/_scalar.py): the CUDA twins take
their checks, tables and scalar maths from there, never from a CPU twin; the twins of a family have
the same launch functions (the CPU twin may have helpers of its kernels besides); the one CPU
thread policy picks Numba's thread count and restores it."""
import ast
import inspect
import pathlib

import numba
import numpy as np
import pytest

from tensorlite.kernels import _launch, _scalar

KERNELS = pathlib.Path(_launch.__file__).parent
FAMILIES = sorted(p.stem for p in (KERNELS / 'cuda').glob('*.py') if not p.stem.startswith('_'))


@pytest.mark.parametrize('family', FAMILIES)
def test_cuda_twin_imports_nothing_from_the_cpu_twins(family):
    tree = ast.parse((KERNELS / 'cuda' / f'{family}.py').read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [m for m in imported if m and m.split('.')[0] == 'cpu'], imported


@pytest.mark.parametrize('family', FAMILIES)
def test_twins_have_the_same_launch_functions(family):
    import importlib
    cpu = importlib.import_module(f'tensorlite.kernels.cpu.{family}')
    cuda = importlib.import_module(f'tensorlite.kernels.cuda.{family}')

    def launches(module):
        return {name: inspect.signature(fn) for name, fn in vars(module).items()
                if inspect.isfunction(fn) and not name.startswith('_')
                and fn.__module__ == module.__name__}
    on_cpu, on_cuda = launches(cpu), launches(cuda)
    assert on_cuda and {name: on_cpu.get(name) for name in on_cuda} == on_cuda


def test_thread_policy_one_thread_below_serial_below_and_the_count_restored():
    before = numba.get_num_threads()
    assert _launch.thread_count(_launch.SERIAL_BELOW - 1) == 1
    assert _launch.thread_count(_launch.SERIAL_BELOW) is None
    assert _launch.thread_count(_launch.SERIAL_BELOW, most=_launch.BESIDE_GEMM_THREADS) == 1
    assert _launch.run(numba.get_num_threads, 10) == 1
    assert _launch.run(numba.get_num_threads, _launch.SERIAL_BELOW) == before
    assert _launch.run(numba.get_num_threads, _launch.SERIAL_BELOW, most=1) == 1
    assert numba.get_num_threads() == before


def test_over_batch_covers_every_row_once():
    seen = []
    _launch.over_batch(np, 11, lambda b0, b1, out: out.extend(range(b0, b1)), seen)
    assert sorted(seen) == list(range(11))


def test_check_arrays_names_the_argument():
    x, y = np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)
    _launch.check_arrays('k', [('x', x, (2, 3)), ('y', y, (3, 2))])
    with pytest.raises(ValueError, match=r'k: y has shape \(3, 2\), expected \(2, 3\)'):
        _launch.check_arrays('k', [('x', x, (2, 3)), ('y', y, (2, 3))])
    with pytest.raises(ValueError, match='k: y has 6 elements, x has 3'):
        _launch.check_elementwise('k', ('x', 'y'), (x[0], y))
    with pytest.raises(TypeError, match='k: y has dtype float64, x has float32'):
        _launch.check_arrays('k', [('x', x), ('y', y.astype(np.float64))])


def test_shared_scalar_maths_is_the_same_compiled_and_in_python():
    """The Python of kernels/_scalar.py (what the CUDA simulator runs) and its @njit compilation
    agree; cubic weights of one offset sum to 1."""
    cubic, clamp = _scalar.for_cpu('cubic_weight', 'clamp')

    @numba.njit
    def weights(t):
        return cubic(0, t) + cubic(1, t) + cubic(2, t) + cubic(3, t), clamp(7, 0, 4), clamp(-1, 0, 4)

    for t in (0.0, 0.25, 0.7):
        total, hi, lo = weights(t)
        assert total == pytest.approx(1.0) and (hi, lo) == (4, 0)
        assert sum(_scalar.cubic_weight(i, t) for i in range(4)) == total

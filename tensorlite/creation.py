"""Making tensors: `tensor`, `zeros`, `ones`, `full`, `empty`, `arange`, `rand`, `randn`, the
`*_like` versions and `from_numpy`."""
import numbers

import numpy as np

from . import backend, dtypes
from .autograd.tensor import Tensor
from .random import generator


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"sizes must be non-negative integers, got {tuple(size)}")
    return tuple(int(s) for s in size)


def _finish(array, dtype, device, requires_grad):
    """Cast, move to the device, wrap."""
    if dtype is not None:
        array = array.astype(dtypes.normalize_dtype(dtype), copy=False)
    device = backend.normalize_device(device)
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def tensor(data, dtype=None, device='cpu', requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, numbers, NumPy/CuPy arrays, Tensors).
    Python floats become float32 and Python ints int64; an array keeps its dtype (float64 stays
    float64)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or isinstance(data, np.generic) or backend.is_cupy_array(data):
        array = backend.as_numpy(data).copy()
    else:
        array = np.array(data)
        if array.dtype == np.float64:
            array = array.astype(dtypes.DEFAULT_FLOAT)
        elif array.dtype.kind == 'i':
            array = array.astype(dtypes.DEFAULT_INT)
    if dtype is None and array.dtype not in dtypes.SUPPORTED:
        dtypes.normalize_dtype(array.dtype)             # refuses it by name
    return _finish(array, dtype, device, requires_grad)


def from_numpy(array):
    """A CPU tensor that shares memory with the NumPy array."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a NumPy array, got {type(array).__name__}")
    return Tensor(array)


as_tensor = tensor


def _filled(fill, size, dtype, device, requires_grad):
    dtype = dtypes.normalize_dtype(dtype) or dtypes.DEFAULT_FLOAT
    return _finish(np.full(_size(size), fill, dtype=dtype), None, device, requires_grad)


def zeros(*size, dtype=None, device='cpu', requires_grad=False):
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device='cpu', requires_grad=False):
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device='cpu', requires_grad=False):
    dtype = dtypes.normalize_dtype(dtype) or dtypes.DEFAULT_FLOAT
    return _finish(np.empty(_size(size), dtype=dtype), None, device, requires_grad)


def full(size, fill_value, dtype=None, device='cpu', requires_grad=False):
    """dtype from fill_value when not given: bool, int64 or float32 (as PyTorch)."""
    if dtype is None:
        dtype = (dtypes.bool_ if isinstance(fill_value, bool) else
                 dtypes.DEFAULT_INT if isinstance(fill_value, numbers.Integral) else dtypes.DEFAULT_FLOAT)
    size = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _filled(fill_value, size, dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device='cpu', requires_grad=False):
    """int64 when start, end and step are integers, float32 otherwise (as PyTorch)."""
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    if dtype is None:
        dtype = dtypes.DEFAULT_INT if ints else dtypes.DEFAULT_FLOAT
    return _finish(np.arange(start, end, step), dtype, device, requires_grad)


def rand(*size, dtype=None, device='cpu', requires_grad=False):
    """Uniform on [0, 1), from the generator `manual_seed` controls."""
    dtype = dtypes.normalize_dtype(dtype) or dtypes.DEFAULT_FLOAT
    return _finish(generator().random(_size(size)), dtype, device, requires_grad)


def randn(*size, dtype=None, device='cpu', requires_grad=False):
    """Standard normal, from the generator `manual_seed` controls."""
    dtype = dtypes.normalize_dtype(dtype) or dtypes.DEFAULT_FLOAT
    return _finish(generator().standard_normal(_size(size)), dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device='cpu'):
    if high is None:
        low, high = 0, low
    return _finish(generator().integers(low, high, size=_size((size,) if isinstance(size, int) else size)),
                   dtype or dtypes.DEFAULT_INT, device, False)


def _like(fn, t, dtype, device, requires_grad):
    return fn(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    return _like(zeros, input, dtype, device, requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    return _like(ones, input, dtype, device, requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    return _like(empty, input, dtype, device, requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    return _like(rand, input, dtype, device, requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    return _like(randn, input, dtype, device, requires_grad)

"""Devices and array modules.

'cpu' means NumPy (plus Numba's @njit kernels); 'cuda' means CuPy (plus Numba's @cuda.jit kernels).
Everything above this file asks `array_module(x)` for the module that owns an array and never
imports CuPy itself, so one code path serves both devices.
"""
import numpy as np

DEVICES = ('cpu', 'cuda')

_cupy = None            # the cupy module once imported successfully
_cupy_error = None      # why importing it failed, kept for the error message


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy
            _cupy = cupy
        except Exception as e:          # ImportError, or a CUDA library missing at import time
            _cupy_error = e
    return _cupy


def cupy_available():
    """True when CuPy imports (not a statement about a GPU being present)."""
    return _import_cupy() is not None


def gpu_count():
    cp = _import_cupy()
    if cp is None:
        return 0
    try:
        return cp.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def check_cuda():
    """Raise a RuntimeError that says which part of the CUDA stack is missing."""
    if _import_cupy() is None:
        raise RuntimeError(
            "device 'cuda' needs CuPy, which is not installed or failed to import "
            f"({_cupy_error!r}); install it with pip install 'tensorlite[gpu]'")
    if gpu_count() == 0:
        raise RuntimeError("device 'cuda' needs a GPU: CuPy is installed but it found no CUDA device")


def normalize_device(device):
    """'cpu', 'cuda', 'cuda:0' or None -> 'cpu' | 'cuda'; anything else is refused by name."""
    if device is None:
        return 'cpu'
    name = str(getattr(device, 'type', device))
    if name.startswith('cuda:') and name[5:].isdigit():
        name = 'cuda'
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return name


def is_cupy_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def array_module(x):
    """NumPy or CuPy, whichever owns the array `x` (DeZero's get_array_module)."""
    return _cupy if is_cupy_array(x) else np


def device_of(x):
    return 'cuda' if is_cupy_array(x) else 'cpu'


def xp_for(device):
    if device == 'cuda':
        check_cuda()
        return _cupy
    return np


def to_device(array, device):
    """Copy an array to 'cpu' or 'cuda' (no copy if already there)."""
    if device == 'cuda':
        check_cuda()
        return _cupy.asarray(array)
    if is_cupy_array(array):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def as_numpy(x):
    return _cupy.asnumpy(x) if is_cupy_array(x) else np.asarray(x)

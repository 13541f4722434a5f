"""Raw-array kernels with CPU (Numba @njit) and CUDA (Numba @cuda.jit) twins.

`kernels.activation(x)` returns the twin module for the array's device: kernels/cpu/activation.py
for NumPy arrays, kernels/cuda/activation.py for CuPy arrays.  Both have the same function names
and signatures; outputs are preallocated by the caller and passed last.  Nothing here knows Tensors.
"""
import importlib

from .. import backend


def twin(family, array):
    """The module of kernel `family` ('activation', ...) for the device that holds `array`."""
    side = 'cuda' if backend.is_cupy_array(array) else 'cpu'
    return importlib.import_module(f'{__name__}.{side}.{family}')


def activation(array):
    return twin('activation', array)

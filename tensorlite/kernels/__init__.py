"""Raw-array kernels with CPU (Numba @njit) and CUDA (Numba @cuda.jit) twins.

`kernels.activation(x)` returns the twin module for the array's device: kernels/cpu/activation.py
for NumPy arrays, kernels/cuda/activation.py for CuPy arrays.  Both have the same function names
and signatures; outputs are preallocated by the caller and passed last.  Nothing here knows Tensors.

Memory bound of the convolution column buffer
---------------------------------------------
Convolution lowers to vol2col + GEMM (tensorlite/kernels/conv_plan.py).  The column matrix of a
whole batch is kT*kH*kW times the input (27x for a 3x3x3 kernel: 2.8 GB for a (8, 64, 16, 56, 56)
float32 input), so the batch is cut into tiles -- whole samples, or bands of output rows of one
sample -- whose column buffer never exceeds `column_buffer_bytes()` (default 256 MiB).  Change it
with

    tensorlite.kernels.set_column_buffer_bytes(64 * 2**20)

This is the one place the bound is set; it holds for every conv and conv_transpose and both of
their gradients, on CPU and GPU.  (The CPU twin prefers smaller, cache-sized tiles anyway: see
PREFERRED_TILE_BYTES in kernels/cpu/conv.py.)  A bound smaller than one output row of one sample
cannot be kept: the convolution then raises a ValueError that says so.
"""
import importlib

from .. import _recorder, backend

_column_buffer_bytes = 256 * 2**20


def column_buffer_bytes():
    """The most bytes a convolution's column buffer may take (see the module docstring)."""
    return _column_buffer_bytes


def set_column_buffer_bytes(nbytes):
    """Set the bound on a convolution's column buffer, in bytes; returns the previous bound."""
    global _column_buffer_bytes
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes <= 0:
        raise ValueError(f"set_column_buffer_bytes: expected a positive int of bytes, got {nbytes!r}")
    previous, _column_buffer_bytes = _column_buffer_bytes, nbytes
    return previous


def twin(family, array):
    """The module of kernel `family` ('activation', ...) for the device that holds `array`; while
    a profiler records, a stand-in for it that reports every launch."""
    side = 'cuda' if backend.is_cupy_array(array) else 'cpu'
    module = importlib.import_module(f'{__name__}.{side}.{family}')
    recorder = _recorder.active
    return module if recorder is None else recorder.kernel_twin(family, side, module)


def activation(array):
    return twin('activation', array)


def conv(array):
    return twin('conv', array)


def winograd(array):
    return twin('winograd', array)


def optim(array):
    return twin('optim', array)

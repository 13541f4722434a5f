"""Checks made where a kernel is launched.

A kernel walks flat memory: a strided array silently copied by `ravel()` would lose the kernel's
writes, and a float32 array next to a float64 one would be misread.  So every launch wrapper checks
that its arrays are C-contiguous, of one supported float dtype and of one size, and says which
argument is wrong.
"""

import numba
import numpy as np

# The dtypes the kernels take, as dtype objects: `a.dtype in FLOAT_DTYPES` costs about 0.04 us,
# reading `a.dtype.name` 1.9 us (a new string each time), which a launch check made per array.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Below this many elements (inputs + outputs) a parallel CPU kernel runs on one thread: waking
# Numba's thread pool costs more than the work, and on a busy machine (a data loader in other
# processes, or a test run beside another) it costs milliseconds per launch while one thread takes
# microseconds (measured: erf on 64 elements, 1 ms with 2 threads against 24 us on one, with three
# busy processes on the 2 cores).
SERIAL_BELOW = 1 << 15


def run(kernel, work, *args):
    """Call a parallel Numba kernel, on one thread when `work` (elements touched) is small."""
    if work >= SERIAL_BELOW:
        return kernel(*args)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)


def check_elementwise(kernel, names, arrays):
    """All `arrays` C-contiguous, float32/float64, one dtype, one size; else a ValueError/TypeError
    naming the kernel and the argument."""
    first = arrays[0]
    for name, a in zip(names, arrays):
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected float32 or float64")
        if a.dtype != first.dtype:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, {names[0]} has {first.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} (shape {tuple(a.shape)}) is not C-contiguous")
        if a.size != first.size:
            raise ValueError(f"{kernel}: {name} has {a.size} elements, {names[0]} has {first.size}")

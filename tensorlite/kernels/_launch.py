"""Checks made where a kernel is launched.

A kernel walks flat memory: a strided array silently copied by `ravel()` would lose the kernel's
writes, and a float32 array next to a float64 one would be misread.  So every launch wrapper checks
that its arrays are C-contiguous, of one supported float dtype and of one size, and says which
argument is wrong.
"""

FLOAT_DTYPES = ('float32', 'float64')


def check_elementwise(kernel, names, arrays):
    """All `arrays` C-contiguous, float32/float64, one dtype, one size; else a ValueError/TypeError
    naming the kernel and the argument."""
    first = arrays[0]
    for name, a in zip(names, arrays):
        if a.dtype.name not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected float32 or float64")
        if a.dtype != first.dtype:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, {names[0]} has {first.dtype}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} (shape {tuple(a.shape)}) is not C-contiguous")
        if a.size != first.size:
            raise ValueError(f"{kernel}: {name} has {a.size} elements, {names[0]} has {first.size}")

"""Device functions the CUDA twins share."""
from numba import cuda


# Builtin min/max of scalars do not compile for Numba 0.68's CUDA target (the simulator runs
# Python's, so only tensorlite gpu-report sees it); these return what Python's min and max return.
@cuda.jit(device=True, inline=True)
def _min(a, b):
    return b if b < a else a


@cuda.jit(device=True, inline=True)
def _max(a, b):
    return b if b > a else a

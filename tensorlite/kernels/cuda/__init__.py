"""CUDA twins: Numba @cuda.jit kernels on CuPy arrays (or NumPy arrays under NUMBA_ENABLE_CUDASIM=1).
Same function names and signatures as the CPU twins in kernels/cpu."""


def report(arch='sm_80', dtypes=('float32', 'float64')):
    """Every CUDA twin compiled by NVIDIA's compilers for `arch`: {'arch', 'kernels': [record]}
    (registers, spills, memory, float64 instructions, occupancy; see _report.py)."""
    from ._report import report
    return report(arch, dtypes)

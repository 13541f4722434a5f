"""CUDA twins: Numba @cuda.jit kernels on CuPy arrays (or NumPy arrays under NUMBA_ENABLE_CUDASIM=1).
Same function names and signatures as the CPU twins in kernels/cpu."""

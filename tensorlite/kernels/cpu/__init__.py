"""CPU twins: Numba @njit kernels on NumPy arrays."""

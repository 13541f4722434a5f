"""`tl.cuda`: whether device 'cuda' can be used on this machine, and if not, why."""
from . import backend


def is_available():
    """True when device 'cuda' works: CuPy imports and sees a GPU, or the simulation flag
    TENSORLITE_SIMULATE_CUDA=1 is set (see docs/gpu.md)."""
    return backend.unavailable_reason() is None


def unavailable_reason():
    """None when `is_available()`; else one line naming what is missing (CuPy, a GPU, or the
    simulation flag)."""
    return backend.unavailable_reason()


def is_simulated():
    """True when device 'cuda' is the simulated one (TENSORLITE_SIMULATE_CUDA=1)."""
    return backend.simulation_requested()


def device_count():
    return backend.gpu_count() if is_available() else 0

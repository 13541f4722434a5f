"""`tl.cuda`: whether device 'cuda' can be used on this machine."""
from . import backend


def is_available():
    """True when CuPy imports and sees at least one GPU."""
    return backend.gpu_count() > 0


def device_count():
    return backend.gpu_count()

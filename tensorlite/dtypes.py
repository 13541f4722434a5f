"""The dtypes tensorlite supports, as NumPy dtype objects (so `t.dtype == np.float32` works)."""
import numpy as np

float16 = half = np.dtype('float16')
float32 = float = np.dtype('float32')
float64 = double = np.dtype('float64')
int8 = np.dtype('int8')
int16 = np.dtype('int16')
int32 = np.dtype('int32')
int64 = long = np.dtype('int64')
uint8 = np.dtype('uint8')
bool_ = np.dtype('bool')

SUPPORTED = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
FLOATING = (float16, float32, float64)
DEFAULT_FLOAT = float32
DEFAULT_INT = int64


def normalize_dtype(dtype):
    """np.dtype for anything that names a supported dtype (np.float32, 'float32', tl.float32, a
    torch-style name with a 'torch.' prefix); anything else is refused by name."""
    if dtype is None:
        return None
    name = dtype
    if isinstance(dtype, str) and dtype.startswith('torch.'):
        name = dtype[len('torch.'):]
    try:
        d = np.dtype(name)
    except TypeError:
        d = None
    if d is None or d not in SUPPORTED:
        names = ', '.join(s.name for s in SUPPORTED)
        raise TypeError(f"unsupported dtype {dtype!r}: tensorlite supports {names}")
    return d


def is_floating(dtype):
    return np.dtype(dtype).kind == 'f'

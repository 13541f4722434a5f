"""Small helpers shared by the op files: turning arguments into Tensors, normalizing dims."""
import numbers

import numpy as np

from .. import backend
from ..autograd.tensor import Tensor, _wrap


def as_tensor_pair(op, a, b):
    """Both operands as Tensors: a Python number or array beside a Tensor takes the Tensor's device
    (and, for a number, its dtype); two non-Tensors are refused."""
    if isinstance(a, Tensor):
        b = _wrap(b, a)
    elif isinstance(b, Tensor):
        a = _wrap(a, b)
    else:
        raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    return a, b


def check_broadcast(op, *tensors):
    """The broadcast shape, or a ValueError naming the op and every shape."""
    shapes = [tuple(t.shape) for t in tensors]
    if all(s == shapes[0] for s in shapes):              # the common case, without NumPy's machinery
        return shapes[0]
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: shapes {' and '.join(map(str, shapes))} cannot be broadcast "
                         "together") from None


def normalize_dim(dim, ndim, op='op'):
    """A dim in [-ndim, ndim) -> [0, ndim), with an IndexError naming the op otherwise."""
    n = max(ndim, 1)
    if not isinstance(dim, numbers.Integral) or not -n <= dim < n:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim) % n


def normalize_dims(dim, ndim, op='op'):
    """None or () -> all dims (PyTorch's convention); an int or a tuple -> a sorted tuple of
    non-negative dims."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        dims = tuple(sorted({normalize_dim(d, ndim, op) for d in dim}))
        if len(dims) != len(dim):
            raise ValueError(f"{op}: dim {tuple(dim)} names a dimension twice")
        return dims
    return (normalize_dim(dim, ndim, op),)


def xp_of(array):
    return backend.array_module(array)

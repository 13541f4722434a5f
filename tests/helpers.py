"""Shared strategies and helpers for op tests."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4):
    """Shapes including size-1 and empty dims."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcast_pair(min_dims=0, max_dims=3, min_side=0, max_side=4):
    """Two shapes that broadcast together (size-1 dims and missing leading dims included)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=max_dims,
                                             min_side=min_side, max_side=max_side).map(
        lambda r: r.input_shapes)


def leaf(array, requires_grad=True):
    """A float64 leaf Tensor holding a copy of `array`."""
    return tl.tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def randn(rng, shape, low=None):
    """float64 normal values; with `low`, values shifted to be >= low (for log, sqrt, pow)."""
    a = rng.standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    return a


def away_from(a, points, margin=1e-2):
    """Push values of `a` at least `margin` away from each kink in `points` (finite differences
    across a kink are meaningless)."""
    a = np.array(a, dtype=np.float64)
    for p in points:
        close = np.abs(a - p) < margin
        a[close] = p + np.where(a[close] >= p, margin, -margin) * 2
    return a


def check_grads(fn, inputs, second=True):
    """float64 gradcheck and (by default) gradgradcheck, both modes of the first."""
    assert tl.gradcheck(fn, inputs)
    assert tl.gradcheck(fn, inputs, fast_mode=True)
    if second:
        assert tl.gradgradcheck(fn, inputs)

"""Pooling and resampling: max_pool, avg_pool and their adaptive forms in 1, 2 and 3 dims, and
interpolate (nearest and (bi/tri)linear), all with PyTorch's signatures and arithmetic.

Inputs are (N, C, *spatial) or unbatched (C, *spatial).  Every pool is one of two kernels
(kernels/cpu/pool.py) over planes (N * C, D, H, W), driven by tables that say where each output
reads; this file turns PyTorch's rules (padding, ceil_mode, count_include_pad, divisor_override,
adaptive windows) into those tables, so the rules are written once, in Python.

Every backward is a Function of its own whose backward is the op again, so second derivatives work:

- max pool: y = x[argmax].  Backward scatters gy to the argmax (ScatterToArgmax); the backward of
  a scatter by fixed indices is the gather by the same indices (GatherAtArgmax), and back again.
- avg pool and interpolate are linear maps A; backward applies A^T (AvgPoolAdjoint,
  ResampleAdjoint), and the adjoint of A^T is A.
"""
import math
import numbers

import numpy as np

from .. import kernels
from ..autograd.function import Function
from .shape import clone
from ._util import xp_of

_SPATIAL = {1: 'L', 2: 'H, W', 3: 'D, H, W'}


# ---- argument checking ----------------------------------------------------------------------------

def _ntuple(op, name, value, n):
    """An int, or a tuple of 1 or n ints, as a tuple of n ints (PyTorch's _single/_pair/_triple)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value):
        if len(value) == n:
            return tuple(int(v) for v in value)
        if len(value) == 1:
            return (int(value[0]),) * n
    raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")


def _check_input(op, input, nd):
    """(C, *spatial) or (N, C, *spatial), float32/float64, with no empty dim but the batch."""
    shape = tuple(input.shape)
    if input.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{op}: expected a {nd + 1}-D (C, {_SPATIAL[nd]}) or {nd + 2}-D "
                         f"(N, C, {_SPATIAL[nd]}) input, got shape {shape}")
    if input.dtype.name not in ('float32', 'float64'):
        raise TypeError(f"{op}: needs a float32 or float64 tensor, got dtype {input.dtype}")
    if any(s == 0 for s in shape[-(nd + 1):]):
        raise ValueError(f"{op}: input of shape {shape} has an empty channel or spatial dim; "
                         "only the batch dim may be 0")


# ---- where each output reads ---------------------------------------------------------------------

class PoolGeometry:
    """The tables of one pool: for each of `nd` pooled axes, `windows[a]` (O_a, 2) int64 [start, stop)
    of the input positions output o reads (clipped to the input), read every `dilation[a]` steps,
    and for average pools `divisors[a]` (O_a,) whose product over the axes divides the window sum.
    The kernels see 3 axes: 1-D and 2-D pools get leading axes of size 1 with window [0, 1)."""

    def __init__(self, in_size, out_size, windows, dilation=None, divisors=None):
        self.nd = len(in_size)
        pad = 3 - self.nd
        self.in_size, self.out_size = tuple(in_size), tuple(out_size)
        self.in3 = (1,) * pad + self.in_size
        self.out3 = (1,) * pad + self.out_size
        trivial = np.array([[0, 1]], dtype=np.int64)
        self.windows = (trivial,) * pad + tuple(np.ascontiguousarray(w, dtype=np.int64)
                                                for w in windows)
        self.dilation = (1,) * pad + tuple(dilation or (1,) * self.nd)
        self.divisors = None if divisors is None else (
            (np.ones(1),) * pad + tuple(np.asarray(c, dtype=np.float64) for c in divisors))
        # a dilated window can straddle the input without hitting it: its max is -inf, index -1
        self.has_empty = any(bool((w[:, 0] >= w[:, 1]).any()) for w in self.windows)
        self._cast = {}

    def divisors_as(self, dtype):
        """The divisor tables in the data's dtype (the kernels divide in that dtype)."""
        if dtype not in self._cast:
            self._cast[dtype] = tuple(np.ascontiguousarray(c, dtype=dtype) for c in self.divisors)
        return self._cast[dtype]


def pool_output_size(n_in, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's pooling_output_shape: floor (or ceil) of the window count, and with ceil_mode the
    last window must still start inside the input or its left padding."""
    span = dilation * (kernel - 1) + 1
    out = (n_in + 2 * padding - span + ((stride - 1) if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= n_in + padding:
        out -= 1
    return out


def pool_geometry(op, input, nd, kernel_size, stride, padding, dilation, ceil_mode,
                  average=False, count_include_pad=True, divisor_override=None):
    """The PoolGeometry of a max pool (average=False) or an average pool over the last `nd` dims of
    `input` (anything with a .shape), with PyTorch's rules and its errors: padding at most half the
    kernel, at least one window per axis.  `op` names the caller in error messages."""
    k = _ntuple(op, 'kernel_size', kernel_size, nd)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _ntuple(op, 'stride', stride, nd)
    p = _ntuple(op, 'padding', padding, nd)
    d = _ntuple(op, 'dilation', dilation, nd)
    for name, vals, low in (('kernel_size', k, 1), ('stride', s, 1), ('dilation', d, 1),
                            ('padding', p, 0)):
        if any(v < low for v in vals):
            raise ValueError(f"{op}: {name} must be >= {low} on every axis, got {vals}")
    if any(pa > ka // 2 for pa, ka in zip(p, k)):
        raise ValueError(f"{op}: padding {p} must be at most half of kernel_size {k} "
                         "(padding <= kernel_size // 2 on every axis)")
    if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                         or divisor_override == 0):
        raise ValueError(f"{op}: divisor_override must be a non-zero int, got {divisor_override!r}")
    in_size = tuple(input.shape[-nd:])
    out_size = tuple(pool_output_size(n, ka, sa, pa, da, ceil_mode)
                     for n, ka, sa, pa, da in zip(in_size, k, s, p, d))
    if any(o < 1 for o in out_size):
        spans = tuple(da * (ka - 1) + 1 for ka, da in zip(k, d))
        padded = tuple(n + 2 * pa for n, pa in zip(in_size, p))
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} with kernel_size {k}, stride "
                         f"{s}, padding {p}, dilation {d}, ceil_mode={ceil_mode} gives output size "
                         f"{out_size}: the kernel spans {spans} but the padded input is only "
                         f"{padded}")
    windows, divisors = [], []
    for n, o, ka, sa, pa, da in zip(in_size, out_size, k, s, p, d):
        start = np.arange(o, dtype=np.int64) * sa - pa          # unclipped, in padded coordinates
        end = start + da * (ka - 1) + 1
        # the first position inside the input that the dilated window reads (PyTorch steps
        # `start += dilation` while start < 0)
        lo = np.where(start < 0, start + ((-start + da - 1) // da) * da, start)
        lo = np.minimum(lo, n)
        hi = np.clip(end, 0, n)
        windows.append(np.stack([lo, hi], axis=1))
        if average:
            # count_include_pad counts the padding a window covers but not what lies past it
            # (a ceil_mode window can run beyond the right padding)
            divisors.append((np.minimum(end, n + pa) - start) if count_include_pad else (hi - lo))
    if average and divisor_override is not None:
        divisors = [np.full(o, float(divisor_override)) if a == 0 else np.ones(o)
                    for a, o in enumerate(out_size)]
    return PoolGeometry(in_size, out_size, windows, d, divisors if average else None)


def _adaptive_output_size(op, input, nd, output_size):
    in_size = tuple(input.shape[-nd:])
    if isinstance(output_size, (tuple, list)) and len(output_size) == nd:
        if not all(o is None or (isinstance(o, numbers.Integral) and not isinstance(o, bool))
                   for o in output_size):
            raise ValueError(f"{op}: output_size must be ints or None, got {output_size!r}")
        out = tuple(n if o is None else int(o) for n, o in zip(in_size, output_size))
    else:
        out = _ntuple(op, 'output_size', output_size, nd)
    if any(o < 1 for o in out):
        raise ValueError(f"{op}: output_size {out} for input of shape {tuple(input.shape)}: every "
                         "output size must be >= 1")
    return in_size, out


def adaptive_geometry(op, input, nd, output_size, average):
    """PyTorch's adaptive windows: output o of n_out reads [floor(o n_in / n_out),
    ceil((o + 1) n_in / n_out))."""
    in_size, out_size = _adaptive_output_size(op, input, nd, output_size)
    windows, divisors = [], []
    for n, o in zip(in_size, out_size):
        i = np.arange(o, dtype=np.int64)
        start = (i * n) // o
        end = -((-(i + 1) * n) // o)
        windows.append(np.stack([start, end], axis=1))
        divisors.append(end - start)
    return PoolGeometry(in_size, out_size, windows, None, divisors if average else None)


# ---- planes: (*lead, *spatial) <-> (B, D, H, W) -----------------------------------------------------

def _lead(a, nd):
    return tuple(a.shape[:a.ndim - nd])


def _planes(a, geom, size3):
    """a (*lead, *spatial) as contiguous (B, *size3) planes, B = prod(lead)."""
    lead = _lead(a, geom.nd)
    return xp_of(a).ascontiguousarray(a).reshape((math.prod(lead),) + size3), lead


def _flat_planes(a, geom, size3):
    """a (*lead, *spatial) as contiguous (B, prod(size3))."""
    lead = _lead(a, geom.nd)
    return xp_of(a).ascontiguousarray(a).reshape(math.prod(lead), math.prod(size3)), lead


# ---- max pool -------------------------------------------------------------------------------------

class MaxPool(Function):
    """y[o] = max of x over window o.  The argmax's flat index in its plane is kept (as PyTorch
    returns it): backward sends each gradient there and nowhere else."""

    @staticmethod
    def forward(ctx, x, geom, return_indices):
        xp = xp_of(x)
        planes, lead = _planes(x, geom, geom.in3)
        y = xp.empty((planes.shape[0],) + geom.out3, dtype=x.dtype)
        idx = xp.empty(y.shape, dtype=np.int64)
        kernels.twin('pool', planes).max_pool_fwd(planes, geom.windows, geom.dilation, y, idx)
        ctx.geom = geom
        ctx.save_for_backward(idx)
        y = y.reshape(lead + geom.out_size)
        if return_indices:
            # a copy: the user may write into it, backward must keep the original
            return y, idx.reshape(lead + geom.out_size).copy()
        return y

    @staticmethod
    def backward(ctx, gy, _g_indices=None):
        (indices,) = ctx.saved_tensors
        return ScatterToArgmax.apply(gy, indices.data, ctx.geom), None, None


class ScatterToArgmax(Function):
    """gx = zeros of the input's shape with gy[o] added at the argmax of window o (max pool's
    backward).  Linear in gy, with adjoint the gather at the same indices."""

    @staticmethod
    def forward(ctx, gy, indices, geom):
        ctx.geom = geom
        ctx.save_for_backward(indices)
        g, lead = _flat_planes(gy, geom, geom.out3)
        gx = xp_of(gy).empty((g.shape[0], math.prod(geom.in3)), dtype=gy.dtype)
        kernels.twin('pool', g).max_pool_bwd(g, indices.reshape(g.shape), gx)
        return gx.reshape(lead + geom.in_size)

    @staticmethod
    def backward(ctx, gg):
        (indices,) = ctx.saved_tensors
        return GatherAtArgmax.apply(gg, indices.data, ctx.geom), None, None


class GatherAtArgmax(Function):
    """out[o] = g[argmax of window o]: the adjoint of ScatterToArgmax (and max pool's forward with
    the indices fixed)."""

    @staticmethod
    def forward(ctx, g, indices, geom):
        ctx.geom = geom
        ctx.save_for_backward(indices)
        xp = xp_of(g)
        src, lead = _flat_planes(g, geom, geom.in3)
        flat = indices.reshape(src.shape[0], math.prod(geom.out3))
        if geom.has_empty:                     # -1: a window that read nothing passes nothing
            out = xp.take_along_axis(src, xp.maximum(flat, 0), axis=1)
            out[flat < 0] = 0
        else:
            out = xp.take_along_axis(src, flat, axis=1)
        return out.reshape(lead + geom.out_size)

    @staticmethod
    def backward(ctx, gy):
        (indices,) = ctx.saved_tensors
        return ScatterToArgmax.apply(gy, indices.data, ctx.geom), None, None


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    _check_input(op, input, nd)
    geom = pool_geometry(op, input, nd, kernel_size, stride, padding, dilation, bool(ceil_mode))
    return MaxPool.apply(input, geom, bool(return_indices))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (C, L) or (N, C, L); with return_indices also the argmax's position in L.
    Padding is -inf (never chosen); a NaN in a window wins, as in PyTorch."""
    return _max_pool('max_pool1d', 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (C, H, W) or (N, C, H, W); indices are flat positions h * W + w."""
    return _max_pool('max_pool2d', 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over windows of (C, D, H, W) or (N, C, D, H, W); indices are flat positions
    (d * H + h) * W + w."""
    return _max_pool('max_pool3d', 3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _adaptive_max_pool(op, nd, input, output_size, return_indices):
    _check_input(op, input, nd)
    geom = adaptive_geometry(op, input, nd, output_size, average=False)
    return MaxPool.apply(input, geom, bool(return_indices))


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max over the window [floor(o L / L_out), ceil((o + 1) L / L_out)) for each output o."""
    return _adaptive_max_pool('adaptive_max_pool1d', 1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """adaptive_max_pool1d along H and W; output_size an int, or a pair that may hold None (keep)."""
    return _adaptive_max_pool('adaptive_max_pool2d', 2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """adaptive_max_pool1d along D, H and W; output_size an int, or a triple that may hold None."""
    return _adaptive_max_pool('adaptive_max_pool3d', 3, input, output_size, return_indices)


# ---- average pool ---------------------------------------------------------------------------------

class AvgPool(Function):
    """y[o] = sum of x over window o / divisor(o): a linear map, whose backward is its adjoint."""

    @staticmethod
    def forward(ctx, x, geom):
        ctx.geom = geom
        planes, lead = _planes(x, geom, geom.in3)
        y = xp_of(x).empty((planes.shape[0],) + geom.out3, dtype=x.dtype)
        kernels.twin('pool', planes).avg_pool_fwd(planes, geom.windows, geom.divisors_as(x.dtype), y)
        return y.reshape(lead + geom.out_size)

    @staticmethod
    def backward(ctx, gy):
        return AvgPoolAdjoint.apply(gy, ctx.geom), None


class AvgPoolAdjoint(Function):
    """gx[i] = sum over the windows o that hold i of gy[o] / divisor(o) (avg pool's backward).
    Its own adjoint is the avg pool."""

    @staticmethod
    def forward(ctx, gy, geom):
        ctx.geom = geom
        g, lead = _planes(gy, geom, geom.out3)
        gx = xp_of(gy).empty((g.shape[0],) + geom.in3, dtype=gy.dtype)
        kernels.twin('pool', g).avg_pool_bwd(g, geom.windows, geom.divisors_as(gy.dtype), gx)
        return gx.reshape(lead + geom.in_size)

    @staticmethod
    def backward(ctx, gg):
        return AvgPool.apply(gg, ctx.geom), None


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    _check_input(op, input, nd)
    geom = pool_geometry(op, input, nd, kernel_size, stride, padding, 1, bool(ceil_mode),
                         average=True, count_include_pad=bool(count_include_pad),
                         divisor_override=divisor_override)
    if nd == 3:
        k = _ntuple(op, 'kernel_size', kernel_size, 3)
        if any(n < ka for n, ka in zip(geom.in_size, k)):
            # PyTorch's avg_pool3d (alone among the pools) refuses this even when padding would
            # make room; refused here too, so a model that runs here runs there
            raise ValueError(f"{op}: input of shape {tuple(input.shape)} is smaller than "
                             f"kernel_size {k} in (D, H, W) {geom.in_size}; avg_pool3d needs "
                             "the unpadded input to hold a whole kernel, as in PyTorch")
    return AvgPool.apply(input, geom)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over windows of (C, L) or (N, C, L).  The divisor is the window's size counting the
    zero padding it covers (count_include_pad=True) or only the input positions (False)."""
    return _avg_pool('avg_pool1d', 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows of (C, H, W) or (N, C, H, W); divisor_override replaces every divisor."""
    return _avg_pool('avg_pool2d', 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows of (C, D, H, W) or (N, C, D, H, W); divisor_override replaces every
    divisor."""
    return _avg_pool('avg_pool3d', 3, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_avg_pool(op, nd, input, output_size):
    _check_input(op, input, nd)
    return AvgPool.apply(input, adaptive_geometry(op, input, nd, output_size, average=True))


def adaptive_avg_pool1d(input, output_size):
    """Mean over the window [floor(o L / L_out), ceil((o + 1) L / L_out)) for each output o."""
    return _adaptive_avg_pool('adaptive_avg_pool1d', 1, input, output_size)


def adaptive_avg_pool2d(input, output_size):
    """adaptive_avg_pool1d along H and W; output_size an int, or a pair that may hold None (keep)."""
    return _adaptive_avg_pool('adaptive_avg_pool2d', 2, input, output_size)


def adaptive_avg_pool3d(input, output_size):
    """adaptive_avg_pool1d along D, H and W; output_size an int, or a triple that may hold None.
    adaptive_avg_pool3d(x, 1) is the global average pool of a video network's head."""
    return _adaptive_avg_pool('adaptive_avg_pool3d', 3, input, output_size)


# ---- resampling -----------------------------------------------------------------------------------

class ResampleTable:
    """One axis of an interpolation: output o = weight[o, 0] x[index[o, 0]] + weight[o, 1]
    x[index[o, 1]] (nearest: weight (1, 0))."""

    def __init__(self, n_in, index, weight):
        self.n_in, self.n_out = n_in, len(index)
        self.index = np.ascontiguousarray(index, dtype=np.int64)
        self.weight = np.ascontiguousarray(weight)
        self._cast = {}

    def weight_as(self, dtype):
        if self.weight.dtype == dtype:
            return self.weight
        if dtype not in self._cast:
            self._cast[dtype] = np.ascontiguousarray(self.weight, dtype=dtype)
        return self._cast[dtype]

    def is_identity(self):
        return (self.n_in == self.n_out and bool((self.index[:, 0] == np.arange(self.n_in)).all())
                and bool((self.weight[:, 0] == 1).all()) and bool((self.weight[:, 1] == 0).all()))


def _axis_view(a, axis):
    """a as (P, n, Q) around `axis`, contiguous."""
    shape = tuple(a.shape)
    return xp_of(a).ascontiguousarray(a).reshape(math.prod(shape[:axis]), shape[axis],
                                                 math.prod(shape[axis + 1:]))


class Resample(Function):
    """Resample one axis with a ResampleTable: a linear map, whose backward is its adjoint."""

    @staticmethod
    def forward(ctx, x, axis, table):
        ctx.axis, ctx.table = axis, table
        xs = _axis_view(x, axis)                                        # (P, n_in, Q)
        y = xp_of(x).empty((xs.shape[0], table.n_out, xs.shape[2]), dtype=x.dtype)
        kernels.twin('pool', xs).resample_fwd(xs, table.index, table.weight_as(x.dtype), y)
        return y.reshape(x.shape[:axis] + (table.n_out,) + x.shape[axis + 1:])

    @staticmethod
    def backward(ctx, gy):
        return ResampleAdjoint.apply(gy, ctx.axis, ctx.table), None, None


class ResampleAdjoint(Function):
    """gx[i] = sum over the outputs o that read i of their weight times gy[o] (Resample's backward).
    Its own adjoint is Resample."""

    @staticmethod
    def forward(ctx, gy, axis, table):
        ctx.axis, ctx.table = axis, table
        g = _axis_view(gy, axis)                                        # (P, n_out, Q)
        gx = xp_of(gy).empty((g.shape[0], table.n_in, g.shape[2]), dtype=gy.dtype)
        kernels.twin('pool', g).resample_bwd(g, table.index, table.weight_as(gy.dtype), gx)
        return gx.reshape(gy.shape[:axis] + (table.n_in,) + gy.shape[axis + 1:])

    @staticmethod
    def backward(ctx, gg):
        return Resample.apply(gg, ctx.axis, ctx.table), None, None


def nearest_table(n_in, n_out, scale=None, dtype=np.float32, two_d=False):
    """PyTorch's legacy 'nearest': src = min(floor(dst * s), n_in - 1) with s = 1 / scale_factor
    when one was given, else n_in / n_out.  PyTorch's CPU kernels round this two ways, and both are
    followed here so the same indices come out: for 1-D and 3-D input, s and dst * s in the data's
    dtype, rounded to float32 before the floor; for 2-D input (two_d), s in float32, and
    n_out == n_in (a copy) and n_out == 2 n_in (dst // 2) taken exactly whatever the scale_factor."""
    dst = np.arange(n_out)
    if two_d and n_out == n_in:
        src = dst
    elif two_d and n_out == 2 * n_in:
        src = dst >> 1
    else:
        f = np.float32 if two_d else np.dtype(dtype).type
        s = f(1.0 / scale) if scale else f(n_in) / f(n_out)
        src = np.minimum(np.floor((dst.astype(f) * s).astype(np.float32)).astype(np.int64), n_in - 1)
    index = np.stack([src, src], axis=1)
    weight = np.zeros((n_out, 2), dtype=dtype)
    weight[:, 0] = 1
    return ResampleTable(n_in, index, weight)


def linear_table(n_in, n_out, align_corners, scale=None, dtype=np.float64):
    """PyTorch's linear weights along one axis, computed in the data's dtype as PyTorch does.
    align_corners=True: src = dst (n_in - 1) / (n_out - 1); False: src = (dst + 0.5) s - 0.5,
    clamped at 0, with s = 1 / scale_factor when one was given, else n_in / n_out."""
    f = np.dtype(dtype).type
    dst = np.arange(n_out)
    if n_out == n_in:
        index = np.stack([dst, dst], axis=1)
        weight = np.zeros((n_out, 2), dtype=dtype)
        weight[:, 0] = 1
        return ResampleTable(n_in, index, weight)
    d = dst.astype(dtype)
    if align_corners:
        s = f(n_in - 1) / f(n_out - 1) if n_out > 1 else f(0)
        src = s * d
    else:
        s = f(1.0 / scale) if scale else f(n_in) / f(n_out)
        src = np.maximum(s * (d + f(0.5)) - f(0.5), f(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), f(0), f(1))
    i1 = i0 + (i0 < n_in - 1)
    return ResampleTable(n_in, np.stack([i0, i1], axis=1), np.stack([f(1) - lam, lam], axis=1))


_LINEAR_MODES = {'linear': 1, 'bilinear': 2, 'trilinear': 3}
_NOT_BUILT = ('bicubic', 'area', 'nearest-exact')


def _interp_sizes(input, nd, size, scale_factor, recompute_scale_factor):
    """(output sizes, scale factors or None per axis), as torch.nn.functional.interpolate."""
    in_size = tuple(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: give size or scale_factor, not both")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor must be given")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is not meaningful with an "
                             "explicit size")
        if isinstance(size, (tuple, list)):
            if len(size) != nd:
                raise ValueError(f"interpolate: size {tuple(size)} has {len(size)} entries but the "
                                 f"input of shape {tuple(input.shape)} has {nd} spatial dims")
            out = tuple(size)
        else:
            out = (size,) * nd
        if not all(isinstance(o, numbers.Integral) and not isinstance(o, bool) for o in out):
            raise ValueError(f"interpolate: size must be ints, got {size!r}")
        out = tuple(int(o) for o in out)
        scales = (None,) * nd
    else:
        if isinstance(scale_factor, (tuple, list)):
            if len(scale_factor) != nd:
                raise ValueError(f"interpolate: scale_factor {tuple(scale_factor)} has "
                                 f"{len(scale_factor)} entries but the input of shape "
                                 f"{tuple(input.shape)} has {nd} spatial dims")
            scales = tuple(float(s) for s in scale_factor)
        else:
            scales = (float(scale_factor),) * nd
        if any(not s > 0 or not math.isfinite(s) for s in scales):
            raise ValueError(f"interpolate: scale_factor must be positive and finite, got "
                             f"{scale_factor!r}")
        out = tuple(int(math.floor(n * s)) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None,) * nd
    if any(o < 1 for o in out):
        raise ValueError(f"interpolate: input of shape {tuple(input.shape)} gives output size "
                         f"{out}; every output size must be >= 1")
    return out, scales


def interpolate(input, size=None, scale_factor=None, mode='nearest', align_corners=None,
                recompute_scale_factor=None):
    """Resample (N, C, L), (N, C, H, W) or (N, C, D, H, W) to `size` or by `scale_factor`, as
    torch.nn.functional.interpolate.  mode 'nearest' (PyTorch's legacy nearest) or 'linear' (3-D),
    'bilinear' (4-D), 'trilinear' (5-D); align_corners=True maps the corner samples onto each
    other, False (the default) the corners of the pixel areas.  Separable: one axis at a time, so
    resampling only time (SlowFast's pathways) touches only time."""
    if mode in _NOT_BUILT:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented; expected "
                                  "'nearest', 'linear', 'bilinear' or 'trilinear'")
    if mode != 'nearest' and mode not in _LINEAR_MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; expected 'nearest', 'linear', "
                         "'bilinear' or 'trilinear'")
    if input.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: expected a 3-D (N, C, L), 4-D (N, C, H, W) or 5-D "
                         f"(N, C, D, H, W) input, got shape {tuple(input.shape)}")
    if input.dtype.name not in ('float32', 'float64'):
        raise TypeError(f"interpolate: needs a float32 or float64 tensor, got dtype {input.dtype}")
    nd = input.ndim - 2
    if mode in _LINEAR_MODES and _LINEAR_MODES[mode] != nd:
        need = _LINEAR_MODES[mode]
        raise ValueError(f"interpolate: mode {mode!r} needs a {need + 2}-D (N, C, "
                         f"{_SPATIAL[need]}) input, got shape {tuple(input.shape)}")
    if mode == 'nearest' and align_corners is not None:
        raise ValueError("interpolate: align_corners can only be set with mode 'linear', "
                         "'bilinear' or 'trilinear', not 'nearest'")
    if any(s == 0 for s in input.shape[1:]):
        raise ValueError(f"interpolate: input of shape {tuple(input.shape)} has an empty channel "
                         "or spatial dim; only the batch dim may be 0")
    out, scales = _interp_sizes(input, nd, size, scale_factor, recompute_scale_factor)
    y = input
    for a in range(nd):
        n_in = input.shape[2 + a]
        if mode == 'nearest':
            table = nearest_table(n_in, out[a], scales[a], input.dtype, two_d=nd == 2)
        else:
            table = linear_table(n_in, out[a], bool(align_corners), scales[a], input.dtype)
        if not table.is_identity():
            y = Resample.apply(y, 2 + a, table)
    return clone(input) if y is input else y

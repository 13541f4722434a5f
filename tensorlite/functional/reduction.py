"""Reductions over a dim or a tuple of dims, with PyTorch's `dim` and `keepdim`."""
import collections
import warnings

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import exp
from ._util import normalize_dim, normalize_dims, xp_of
from .shape import broadcast_to, gather, reshape, squeeze

MaxResult = collections.namedtuple('MaxResult', ['values', 'indices'])


def _keep_shape(shape, dims):
    """The reduced shape with keepdim=True: size 1 on every reduced dim."""
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _count(shape, dims):
    return int(np.prod([shape[d] for d in dims])) if dims else 1


def _dims(input, dim, op):
    """The dims to reduce; a 0-d tensor accepts dim 0 or -1 (as PyTorch) and has none to reduce."""
    dims = normalize_dims(dim, input.ndim, op)
    return dims if input.ndim else ()


def _expand_back(gy, in_shape, dims):
    """A reduced gradient broadcast back over the reduced dims."""
    return broadcast_to(reshape(gy, _keep_shape(in_shape, dims)), in_shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape, ctx.dims = x.shape, dims
        return x.sum(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        return _expand_back(gy, ctx.in_shape, ctx.dims), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape, ctx.dims = x.shape, dims
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)       # the mean of nothing is NaN
            return x.mean(axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        n = _count(ctx.in_shape, ctx.dims)
        return _expand_back(gy, ctx.in_shape, ctx.dims) / (n if n > 0 else 1), None, None


def sum(input, dim=None, keepdim=False):
    return Sum.apply(input, _dims(input, dim, 'sum'), keepdim)


def mean(input, dim=None, keepdim=False):
    if input.dtype.kind not in 'f':
        raise TypeError(f"mean: needs a floating-point tensor, got dtype {input.dtype}")
    return Mean.apply(input, _dims(input, dim, 'mean'), keepdim)


class Var(Function):
    """Var = sum((x - mean)^2) / (N - ddof); d/dx = 2 (x - mean) / (N - ddof)."""

    @staticmethod
    def forward(ctx, x, dims, ddof, keepdim):
        ctx.dims, ctx.ddof = dims, ddof
        ctx.save_for_backward(x)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            return x.var(axis=dims, ddof=ddof, keepdims=keepdim)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        n = _count(x.shape, ctx.dims)
        centred = x - mean(x, ctx.dims, keepdim=True)
        factor = 2.0 / (n - ctx.ddof) if n > ctx.ddof else float('nan')
        return _expand_back(gy, x.shape, ctx.dims) * centred * factor, None, None, None


class Std(Function):
    """Std = sqrt(Var); d/dx = (x - mean) / ((N - ddof) std)."""

    @staticmethod
    def forward(ctx, x, dims, ddof, keepdim):
        ctx.dims, ctx.ddof, ctx.keepdim = dims, ddof, keepdim
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            y = x.std(axis=dims, ddof=ddof, keepdims=keepdim)
        y = xp_of(x).asarray(y)         # not a NumPy scalar: save_for_backward finds y by identity
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        n = _count(x.shape, ctx.dims)
        centred = x - mean(x, ctx.dims, keepdim=True)
        scale = _expand_back(gy / (y * (n - ctx.ddof)), x.shape, ctx.dims)
        return scale * centred, None, None, None


def var(input, dim=None, unbiased=True, keepdim=False):
    return Var.apply(input, _dims(input, dim, 'var'), int(unbiased), keepdim)


def std(input, dim=None, unbiased=True, keepdim=False):
    return Std.apply(input, _dims(input, dim, 'std'), int(unbiased), keepdim)


class LogSumExp(Function):
    """y = m + log(sum(exp(x - m))) with m the max (stable); d/dx = exp(x - y), the softmax."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.dims = dims
        xp = xp_of(x)
        if x.size:
            m = x.max(axis=dims, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)
        else:                                   # max has no identity; the sum of nothing is 0
            m = xp.zeros(_keep_shape(x.shape, dims), dtype=x.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)       # log(0) = -inf, as PyTorch
            y = xp.log(xp.exp(x - m).sum(axis=dims, keepdims=True)) + m
        if not keepdim:
            y = y.reshape(tuple(s for i, s in enumerate(x.shape) if i not in dims))
        y = xp.asarray(y)                       # not a NumPy scalar, as in Std
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        keep = _keep_shape(x.shape, ctx.dims)
        return _expand_back(gy, x.shape, ctx.dims) * exp(x - reshape(y, keep)), None, None


def logsumexp(input, dim, keepdim=False):
    return LogSumExp.apply(input, _dims(input, dim, 'logsumexp'), keepdim)


def _arg(name, input, dim, keepdim):
    xp = xp_of(input.data)
    fn = getattr(xp, name)
    if dim is None:
        if input.numel() == 0:
            raise ValueError(f"{name}: cannot reduce an empty tensor of shape {tuple(input.shape)}")
        idx = fn(input.data)
        out = xp.asarray(idx, dtype=np.int64)
        return Tensor(out.reshape((1,) * input.ndim) if keepdim else out)
    d = normalize_dim(dim, input.ndim, name)
    if input.ndim and input.shape[d] == 0:      # other dims may be empty: the result is then empty
        raise ValueError(f"{name}: cannot reduce over dim {dim}, which has size 0 (shape "
                         f"{tuple(input.shape)})")
    idx = fn(input.data, axis=d, keepdims=keepdim)
    return Tensor(xp.asarray(idx, dtype=np.int64))   # NumPy gives a scalar for a 1-D input


def argmax(input, dim=None, keepdim=False):
    """Index of the largest element (of the flattened tensor when dim is None); no gradient."""
    return _arg('argmax', input, dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return _arg('argmin', input, dim, keepdim)


class ExtremumAll(Function):
    """max or min of the whole tensor; the gradient is split evenly between tied elements (as
    PyTorch's full max()/min()).  The tie mask is a constant: zero second derivative."""

    @staticmethod
    def forward(ctx, x, name):
        y = getattr(x, name)()
        mask = (x == y).astype(x.dtype)
        ctx.save_for_backward(xp_of(x).asarray(mask / mask.sum()))  # asarray: 0-d gives a scalar
        return y

    @staticmethod
    def backward(ctx, gy):
        (share,) = ctx.saved_tensors
        return gy * share, None


def _extremum(name, input, dim, keepdim):
    """Along a dim: values gathered at the arg-extremum, so the gradient goes to that one element;
    over everything: ExtremumAll."""
    if dim is None:
        if input.numel() == 0:
            raise ValueError(f"{name}: cannot reduce an empty tensor of shape {tuple(input.shape)}")
        return ExtremumAll.apply(input, name)
    d = normalize_dim(dim, input.ndim, name)
    if input.ndim == 0:                         # as PyTorch: a 0-d tensor is its own extremum
        return _extremum(name, reshape(input, (1,)), 0, False)
    idx = _arg('arg' + name, input, d, True)
    values = gather(input, d, idx)
    if not keepdim:
        values, idx = squeeze(values, d), Tensor(idx.data.squeeze(d))
    return MaxResult(values, idx)


def max(input, dim=None, keepdim=False):
    """`max(x)` -> the largest value (gradient split between ties); `max(x, dim)` -> (values,
    indices) along dim, the gradient going to one element (the first maximum).  Both as PyTorch."""
    return _extremum('max', input, dim, keepdim)


def min(input, dim=None, keepdim=False):
    return _extremum('min', input, dim, keepdim)

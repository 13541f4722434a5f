"""Normalization: batch_norm, layer_norm, group_norm, with PyTorch's signatures and semantics.

All three standardize x over some axes -- xhat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), var
the biased variance -- then apply an affine map y = xhat * weight + bias.  They differ only in the
axes.  Each norm views its input as `Layout.view`, takes statistics over `Layout.red` and broadcasts
weight and bias as `Layout.wview`:

    batch_norm  (N, C, *)   -> (N, C, S)          statistics over (0, 2)   weight (1, C, 1)
    layer_norm  (*, D...)   -> (R, D)             statistics over (1,)     weight (1, D)
    group_norm  (N, C, *)   -> (N, G, C/G, S)     statistics over (2, 3)   weight (1, G, C/G, 1)

Backward is the closed form.  With g = dy * weight and means taken over the statistics' axes:

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat))      statistics of the batch (x's own)
    dx = rstd * g                                           fixed statistics (batch_norm in eval)
    dweight = sum(dy * xhat), dbias = sum(dy)               over the axes weight is broadcast on

Forward runs on arrays: through fused Numba kernels for the batch_norm and layer_norm layouts
(kernels/{cpu,cuda}/norm.py: three to five passes over memory where NumPy makes twelve to twenty;
see benchmarks/bench_norm.py), through NumPy for group_norm, which has no kernel, and for CPU inputs
below FUSED_MIN_SIZE values, where a kernel's parallel launch costs more than NumPy's whole
computation.  It saves x, weight, mean and rstd.  mean and rstd come back in backward as constants,
which is right for a first derivative but not for a second one, where they are functions of x.
So backward has two paths, as GELU's: when no graph is recorded (ordinary training) it runs on
arrays, kernels or NumPy as forward did; when a graph is recorded (create_graph=True) it recomputes
mean and rstd from x with Tensor ops and writes the same formulas with Tensor ops, which are
differentiable in turn.

Running statistics (batch_norm in training) are updated in place, under no_grad, as PyTorch does:
running = (1 - momentum) * running + momentum * batch statistic, with the unbiased batch variance
for running_var.  momentum=None is PyTorch's cumulative moving average, which needs the number of
batches seen; PyTorch keeps it in the module, and so does tensorlite.nn (which passes
momentum=1/num_batches_tracked).  The functional form takes it as the keyword
`num_batches_tracked` (the count including this batch) and raises without it.
"""
import math
import numbers
import warnings
from typing import NamedTuple, Optional

from .. import backend, kernels
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..autograd.tensor import Tensor
from ._util import xp_of
from .reduction import mean as _mean
from .reduction import sum as _sum
from .shape import reshape


class Layout(NamedTuple):
    """How a norm sees its input: x.reshape(view), statistics over the axes `red`, weight and bias
    (of shape `param`) reshaped to `wview`, their gradients summed over the axes `wred`.  `kernel`
    names the fused kernels that cover this layout ('batch' or 'layer'), None for NumPy only."""
    view: tuple
    red: tuple
    param: tuple
    wview: tuple
    wred: tuple
    kernel: Optional[str]

    @property
    def stat_shape(self):
        """The shape of mean and rstd: view with size 1 on the reduced axes."""
        return tuple(1 if i in self.red else s for i, s in enumerate(self.view))


def batch_layout(shape):
    N, C, S = shape[0], shape[1], math.prod(shape[2:])
    return Layout((N, C, S), (0, 2), (C,), (1, C, 1), (0, 2), 'batch')


def layer_layout(shape, ndim):
    """The last `ndim` dims normalized together."""
    lead, param = shape[:len(shape) - ndim], tuple(shape[len(shape) - ndim:])
    D = math.prod(param)
    return Layout((math.prod(lead), D), (1,), param, (1, D), (0,), 'layer')


def group_layout(shape, groups):
    N, C, S = shape[0], shape[1], math.prod(shape[2:])
    return Layout((N, groups, C // groups, S), (2, 3), (C,), (1, groups, C // groups, 1), (0, 3),
                  None)


# ==================================================================================================
# first-order paths on raw arrays: the fused kernels where they cover the layout, NumPy otherwise
# ==================================================================================================

# Below this many values a CPU kernel's parallel launch costs more than NumPy's whole computation
# (benchmarks/bench_norm.py --sizes), so the Functions take the NumPy path.
FUSED_MIN_SIZE = 1 << 15


def _fused(layout, x):
    """Whether the fused kernels cover this layout and dtype."""
    return layout.kernel is not None and x.size > 0 and x.dtype.name in ('float32', 'float64')


def _pays(x):
    """Whether the kernels are worth launching for x (always on a GPU)."""
    return backend.is_cupy_array(x) or x.size >= FUSED_MIN_SIZE


def _contiguous(xp, a, dtype):
    return xp.ascontiguousarray(a, dtype=dtype)


def normalize_arrays(x, weight, bias, layout, eps, stats=None, fused=True):
    """The forward on arrays.  x has layout.view's size; weight and bias are arrays (any shape of
    layout.wview's size) or None; stats is None to normalize with x's own statistics, or (mean, var)
    arrays to normalize with (batch_norm in eval).  Returns y (x's shape) and mean, var, rstd
    (layout.stat_shape).  fused=True runs the kernels wherever they cover the layout and dtype,
    fused=False the NumPy path; the Functions choose by size (_pays)."""
    xp = xp_of(x)
    dt = x.dtype
    if stats is not None:
        # copies: backward must see these values even if the running statistics change meanwhile
        mean = xp.array(stats[0], dtype=dt).reshape(layout.stat_shape)
        var = xp.array(stats[1], dtype=dt).reshape(layout.stat_shape)
        rstd = 1 / xp.sqrt(var + eps)
    if fused and _fused(layout, x):
        xv = _contiguous(xp, x, dt).reshape(layout.view)
        y = xp.empty_like(xv)
        k = kernels.twin('norm', xv)
        if layout.kernel == 'batch':
            C = layout.view[1]
            if stats is None:
                mean, var, rstd = (xp.empty(C, dt) for _ in range(3))
                k.batch_norm_stats(xv, eps, mean, var, rstd)
            scale = rstd.reshape(C) if weight is None else weight.reshape(C) * rstd.reshape(C)
            shift = xp.zeros(C, dt) if bias is None else bias.reshape(C)
            k.batch_norm_apply(xv, _contiguous(xp, mean.reshape(C), dt), _contiguous(xp, scale, dt),
                               _contiguous(xp, shift, dt), y)
        else:
            R, D = layout.view
            w = xp.ones(D, dt) if weight is None else _contiguous(xp, weight.reshape(D), dt)
            b = xp.zeros(D, dt) if bias is None else _contiguous(xp, bias.reshape(D), dt)
            mean, var, rstd = (xp.empty(R, dt) for _ in range(3))
            k.layer_norm_fwd(xv, w, b, eps, y, mean, var, rstd)
        shape = layout.stat_shape
        return y.reshape(x.shape), mean.reshape(shape), var.reshape(shape), rstd.reshape(shape)

    xv = x.reshape(layout.view)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)     # the statistics of nothing are NaN
        if stats is None:
            mean = xv.mean(axis=layout.red, keepdims=True)
            y = xv - mean                                   # two passes: no cancellation in var
            var = (y * y).mean(axis=layout.red, keepdims=True)
            rstd = 1 / xp.sqrt(var + eps)
        else:
            y = xv - mean
    y *= rstd                       # in place on the temporary: NumPy's fewest passes
    if weight is not None:
        y *= weight.reshape(layout.wview)
    if bias is not None:
        y += bias.reshape(layout.wview)
    return y.reshape(x.shape), mean, var, rstd


def normalize_grad_arrays(x, gy, weight, mean, rstd, layout, batch_stats, needs=(True,) * 3,
                          fused=True):
    """The first-order backward on arrays: (dx, dweight, dbias), None where `needs` is False or the
    parameter is None.  mean and rstd as normalize_arrays returned them; batch_stats says whether
    they were x's own (then they depend on x) or fixed."""
    xp = xp_of(x)
    dt = x.dtype
    need_x, need_w, need_b = needs[0], needs[1] and weight is not None, needs[2]
    if fused and _fused(layout, x):
        xv = _contiguous(xp, x, dt).reshape(layout.view)
        gyv = _contiguous(xp, gy, dt).reshape(layout.view)
        k = kernels.twin('norm', xv)
        if layout.kernel == 'batch':
            C = layout.view[1]
            m, r = _contiguous(xp, mean.reshape(C), dt), _contiguous(xp, rstd.reshape(C), dt)
            w = xp.ones(C, dt) if weight is None else _contiguous(xp, weight.reshape(C), dt)
            sum_dy = sum_dy_xhat = dx = None
            if need_w or need_b or (need_x and batch_stats):
                sum_dy, sum_dy_xhat = xp.empty(C, dt), xp.empty(C, dt)
                k.batch_norm_grad_sums(xv, gyv, m, r, sum_dy, sum_dy_xhat)
            if need_x and batch_stats:
                dx = xp.empty_like(xv)
                k.batch_norm_input_grad(xv, gyv, m, r, w, sum_dy, sum_dy_xhat, dx)
            elif need_x:
                dx = gyv * (w * r).reshape(layout.wview)            # one pass: NumPy is enough
            dw, db = sum_dy_xhat, sum_dy
        else:
            R, D = layout.view
            w = xp.ones(D, dt) if weight is None else _contiguous(xp, weight.reshape(D), dt)
            dx, dw, db = xp.empty_like(xv), xp.empty(D, dt), xp.empty(D, dt)
            k.layer_norm_bwd(xv, gyv, _contiguous(xp, mean.reshape(R), dt),
                             _contiguous(xp, rstd.reshape(R), dt), w, dx, dw, db)
    else:
        xv, gyv = x.reshape(layout.view), gy.reshape(layout.view)
        red = layout.red
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)
            xhat = (xv - mean) * rstd
            g = gyv if weight is None else gyv * weight.reshape(layout.wview)
            dx = None
            if need_x and batch_stats:
                dx = g - g.mean(axis=red, keepdims=True)
                dx -= xhat * (g * xhat).mean(axis=red, keepdims=True)
                dx *= rstd
            elif need_x:
                dx = g * rstd
            dw = (gyv * xhat).sum(axis=layout.wred) if need_w else None
            db = gyv.sum(axis=layout.wred) if need_b else None
    return (dx.reshape(x.shape) if need_x else None, dw.reshape(layout.param) if need_w else None,
            db.reshape(layout.param) if need_b else None)


# ==================================================================================================
# the differentiable path: the same formulas with Tensor ops
# ==================================================================================================

def _grads_differentiable(x, gy, weight, mean, rstd, layout, batch_stats, eps, needs):
    """(dx, dweight, dbias) as Tensor expressions of x, gy and weight: with batch statistics, mean
    and rstd are recomputed from x here, so that they are graph values and not constants."""
    red = layout.red
    xv, gyv = reshape(x, layout.view), reshape(gy, layout.view)
    if batch_stats:
        xc = xv - _mean(xv, red, keepdim=True)
        rstd = (_mean(xc * xc, red, keepdim=True) + eps) ** -0.5
        xhat = xc * rstd
    else:
        xhat = (xv - mean) * rstd
    g = gyv if weight is None else gyv * reshape(weight, layout.wview)
    dx = dw = db = None
    if needs[0]:
        if batch_stats:
            dx = rstd * (g - _mean(g, red, keepdim=True)
                         - xhat * _mean(g * xhat, red, keepdim=True))
        else:
            dx = g * rstd
        dx = reshape(dx, x.shape)
    if needs[1] and weight is not None:
        dw = reshape(_sum(gyv * xhat, layout.wred), layout.param)
    if needs[2]:
        db = reshape(_sum(gyv, layout.wred), layout.param)
    return dx, dw, db


class _Normalization(Function):
    """The backward the three norms share.  Their forward sets ctx.layout, ctx.eps and
    ctx.batch_stats, and saves (x, weight, mean, rstd) with mean and rstd in layout.stat_shape;
    x, weight and bias are its first three arguments."""

    @staticmethod
    def backward(ctx, gy, *stat_grads):     # batch_norm's statistics: not differentiable
        x, weight, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        rest = (None,) * (len(ctx.input_meta) - 3)
        if not is_grad_enabled():
            grads = normalize_grad_arrays(
                x.data, gy.data, None if weight is None else weight.data, mean.data, rstd.data,
                ctx.layout, ctx.batch_stats, needs, fused=_pays(x.data))
            return tuple(None if g is None else Tensor(g) for g in grads) + rest
        return _grads_differentiable(x, gy, weight, mean, rstd, ctx.layout, ctx.batch_stats,
                                     ctx.eps, needs) + rest


class BatchNorm(_Normalization):
    """Statistics per channel over (N, *spatial).  In training (running=None) the outputs are
    (y, batch mean, biased batch var), the last two not differentiable (for the running statistics);
    with running=(mean, var) arrays the output is y."""

    @staticmethod
    def forward(ctx, x, weight, bias, running, eps):
        ctx.layout, ctx.eps, ctx.batch_stats = batch_layout(x.shape), eps, running is None
        y, mean, var, rstd = normalize_arrays(x, weight, bias, ctx.layout, eps, running, _pays(x))
        ctx.save_for_backward(x, weight, mean, rstd)
        if running is not None:
            return y
        mean, var = mean.reshape(-1), var.reshape(-1)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var


class LayerNorm(_Normalization):
    """Statistics per sample over the last `ndim` dims; weight and bias of those dims' shape."""

    @staticmethod
    def forward(ctx, x, weight, bias, ndim, eps):
        ctx.layout, ctx.eps, ctx.batch_stats = layer_layout(x.shape, ndim), eps, True
        y, mean, _, rstd = normalize_arrays(x, weight, bias, ctx.layout, eps, fused=_pays(x))
        ctx.save_for_backward(x, weight, mean, rstd)
        return y


class GroupNorm(_Normalization):
    """Statistics per sample and group of C/G channels; weight and bias per channel."""

    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):
        ctx.layout, ctx.eps, ctx.batch_stats = group_layout(x.shape, groups), eps, True
        y, mean, _, rstd = normalize_arrays(x, weight, bias, ctx.layout, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return y


# ==================================================================================================
# the public functions: argument checks, then the Function
# ==================================================================================================

def _check_input(op, input, min_ndim, layout_text):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != 'f':
        raise TypeError(f"{op}: needs a floating-point input, got dtype {input.dtype}")
    if input.ndim < min_ndim:
        raise ValueError(f"{op}: expected an input of shape {layout_text} with at least {min_ndim} "
                         f"dimensions, got shape {tuple(input.shape)}")


def _check_param(op, name, t, shape, input, same_dtype=True):
    """weight, bias or a running statistic: None, or a Tensor of `shape` on input's device (and of
    input's dtype when same_dtype)."""
    if t is None:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)} for an "
                         f"input of shape {tuple(input.shape)}")
    if same_dtype and t.dtype != input.dtype:
        raise TypeError(f"{op}: {name} has dtype {t.dtype}, the input has {input.dtype}")
    if not same_dtype and t.dtype.kind != 'f':
        raise TypeError(f"{op}: {name} needs a floating-point dtype, got {t.dtype}")
    if t.device != input.device:
        raise RuntimeError(f"{op}: {name} is on {t.device}, the input on {input.device}")


def _count_argument(n):
    value = n.item() if isinstance(n, Tensor) else n
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"batch_norm: num_batches_tracked must be a positive integer (the number "
                         f"of batches seen, this one included), got {n!r}")
    return int(value)


def check_batch_norm_arguments(op, input, weight, bias, running_mean, running_var):
    """The checks batch_norm and sync_batch_norm share: an (N, C, *) input, (C,) weight, bias and
    running statistics, the two statistics together or neither; errors name `op`."""
    _check_input(op, input, 2, '(N, C, *)')
    C = input.shape[1]
    for name, t in (('weight', weight), ('bias', bias)):
        _check_param(op, name, t, (C,), input)
    for name, t in (('running_mean', running_mean), ('running_var', running_var)):
        _check_param(op, name, t, (C,), input, same_dtype=False)
    if (running_mean is None) != (running_var is None):
        given = 'running_mean' if running_var is None else 'running_var'
        raise ValueError(f"{op}: running_mean and running_var go together, got only {given}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, num_batches_tracked=None):
    """Normalizes each channel of input (N, C, *) over N and the spatial dims, then y = xhat *
    weight + bias (weight, bias: (C,) or None).

    training=True: normalizes with the batch's mean and biased variance and, when running_mean and
    running_var (Tensors (C,)) are given, updates them in place: running = (1 - momentum) running +
    momentum * batch statistic, the unbiased batch variance for running_var.  momentum=None: the
    cumulative average, momentum = 1 / num_batches_tracked (batches seen including this one).
    training=False: normalizes with running_mean and running_var, which are then required.
    Running statistics never receive gradients.
    """
    op = 'batch_norm'
    check_batch_norm_arguments(op, input, weight, bias, running_mean, running_var)
    if not training:
        if running_mean is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when "
                             "training=False (they are the statistics to normalize with), got None")
        if eps < 0:
            raise ValueError(f"batch_norm: eps must be non-negative, got {eps}")
        return BatchNorm.apply(input, weight, bias, (running_mean.data, running_var.data), eps)

    count = input.shape[0] * math.prod(input.shape[2:])
    if count == 1:
        raise ValueError("batch_norm: Expected more than 1 value per channel when training, got "
                         f"input of shape {tuple(input.shape)}")
    if eps <= 0:
        raise ValueError(f"batch_norm: eps must be positive in training, got {eps}")
    factor = momentum
    if running_mean is not None and momentum is None:
        if num_batches_tracked is None:
            raise ValueError("batch_norm: momentum=None (a cumulative average) needs "
                             "num_batches_tracked, the number of batches seen including this one")
        factor = 1.0 / _count_argument(num_batches_tracked)
    y, mean, var = BatchNorm.apply(input, weight, bias, None, eps)
    if running_mean is not None and count > 0:      # an empty batch leaves them as they were
        with no_grad():
            running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            running_var.mul_(1 - factor).add_(var * (count / (count - 1)), alpha=factor)
    return y


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalizes over the last len(normalized_shape) dims of input, which must be normalized_shape;
    then y = xhat * weight + bias, weight and bias of normalized_shape (or None)."""
    op = 'layer_norm'
    shape = ((normalized_shape,) if isinstance(normalized_shape, numbers.Integral)
             else tuple(normalized_shape))
    if not shape:
        raise ValueError("layer_norm: normalized_shape must name at least one dimension, got ()")
    _check_input(op, input, len(shape), f"(*, {', '.join(map(str, shape))})")
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} expects an input of shape "
                         f"(*, {', '.join(map(str, shape))}), got {tuple(input.shape)}")
    for name, t in (('weight', weight), ('bias', bias)):
        _check_param(op, name, t, shape, input)
    return LayerNorm.apply(input, weight, bias, len(shape), eps)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Splits the C channels of input (N, C, *) into num_groups groups and normalizes each sample's
    group over its channels and spatial dims; then y = xhat * weight + bias per channel."""
    op = 'group_norm'
    _check_input(op, input, 2, '(N, C, *)')
    N, C = input.shape[:2]
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) \
            or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive integer, got {num_groups!r}")
    if C % num_groups:
        raise ValueError(f"group_norm: the number of channels must be divisible by num_groups, got "
                         f"input of shape {tuple(input.shape)} and num_groups={num_groups}")
    for name, t in (('weight', weight), ('bias', bias)):
        _check_param(op, name, t, (C,), input)
    # PyTorch's own check, kept so that the same calls fail: it counts N * C/G * spatial values
    if N * (C // num_groups) * math.prod(input.shape[2:]) == 1:
        raise ValueError("group_norm: Expected more than 1 value per channel when training, got "
                         f"input of shape {tuple(input.shape)} with num_groups={num_groups}")
    return GroupNorm.apply(input, weight, bias, int(num_groups), eps)

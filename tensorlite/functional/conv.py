"""N-d convolution and transposed convolution (PyTorch's semantics and weight layouts).

One implementation serves conv1d/2d/3d and conv_transpose1d/2d/3d: a 1-D or 2-D problem is a 3-D one
with unit spatial dims in front, so (N, C, L) is seen as (N, C, 1, 1, L).  Three Functions carry
the whole family, and each one's backward is made of the others, so gradients of any order flow:

    Conv(x, w)            y  = x (*) w                       the correlation PyTorch calls conv
    ConvTranspose(gy, w)  gx = the adjoint of x -> x (*) w   conv's input gradient, conv_transpose
    ConvWeightGrad(x, gy) gw = the adjoint of w -> x (*) w   conv's weight gradient

Their forwards call the array-level products of tensorlite/kernels/conv_plan.py: vol2col + GEMM
over tiles of the batch under the column buffer bound (docs/kernels.md), or, per shape, direct
depthwise kernels, a flipped-kernel convolution, or Winograd F(2x2x2, 3x3x3).  Conv's backward,
when no graph is recorded, takes both gradients from one pass over gy
(`conv_backward_fused_arrays`).  `conv_algorithm` forces Winograd or the GEMM for a block of code.
"""
import contextlib
import numbers

from .. import kernels
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ..kernels import conv_plan
from ..kernels.conv_plan import (ALGORITHMS, Geometry, conv_backward_fused_arrays,
                                 conv_forward_arrays, conv_input_grad_arrays,
                                 conv_weight_grad_arrays, fused_backward_applies)


@contextlib.contextmanager
def conv_algorithm(algorithm):
    """Within the block, convolutions (and their gradients) that Winograd can compute -- stride 1,
    dilation 1, groups 1, a 3x3x3 kernel, low padding 0..2 -- take `algorithm`: 'winograd',
    'gemm' (vol2col + GEMM), or 'auto' (the measured rule `_use_winograd` of
    tensorlite/kernels/conv_plan.py).  Others always take the GEMM.

        with conv_algorithm('winograd'):
            y = conv3d(x, w, b, padding=1)
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv_algorithm: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    previous = conv_plan.set_algorithm(algorithm)
    try:
        yield
    finally:
        conv_plan.set_algorithm(previous)


# ---- Functions: each backward is made of the other two ---------------------------------------------

def _bias_grad(gy):
    """The sum of gy (N, C, *spatial) over every dim but C, as a differentiable Tensor."""
    n, c = gy.shape[:2]
    return gy.reshape(n, c, -1).sum(dim=2).sum(dim=0)                   # (N, C, P) -> (C,)


class Conv(Function):
    """y = x (*) w + b: x (N, C_in, *vol), w (C_out, C_in/groups, *kernel), b (C_out,) or None."""

    @staticmethod
    def forward(ctx, x, w, b, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, w)
        return conv_forward_arrays(x, w, b, geo)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gb = _bias_grad(gy) if need[2] else None
        if (need[0] and need[1] and not is_grad_enabled()
                and fused_backward_applies(x.shape[1], w.shape[0], geo, kernels.conv(gy.data))):
            gx, gw = conv_backward_fused_arrays(x.data, w.data, gy.data, geo)
            return Tensor(gx), Tensor(gw), gb, None
        gx = ConvTranspose.apply(gy, w, None, geo) if need[0] else None
        gw = ConvWeightGrad.apply(x, gy, geo) if need[1] else None
        return gx, gw, gb, None


class ConvTranspose(Function):
    """y = the adjoint of (v -> v (*) w) applied to x, + b: x (N, C_out, *out) on the column side,
    w (C_out, C_in/groups, *kernel) as Conv's -- which is PyTorch's conv_transpose layout
    (C_in', C_out'/groups, *kernel) with the roles of the channel counts swapped -- and y
    (N, C_in, *vol) on the volume side."""

    @staticmethod
    def forward(ctx, x, w, b, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, w)
        g = geo.groups
        y = conv_input_grad_arrays(x, w, geo, w.shape[1] * g)
        if b is not None:
            y += b.reshape((1, -1) + (1,) * geo.nd)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gx = Conv.apply(gy, w, None, geo) if need[0] else None           # the adjoint's adjoint
        gw = ConvWeightGrad.apply(gy, x, geo) if need[1] else None      # gy on the volume side
        gb = _bias_grad(gy) if need[2] else None
        return gx, gw, gb, None


class ConvWeightGrad(Function):
    """gw = the correlation of x (N, C_in, *vol) with gy (N, C_out, *out), summed over the batch:
    the weight gradient of Conv, linear in each argument."""

    @staticmethod
    def forward(ctx, x, gy, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, gy)
        c_out, c_in = gy.shape[1], x.shape[1]
        w_shape = (c_out, c_in // geo.groups) + geo.user_shape(geo.kernel)
        return conv_weight_grad_arrays(x, gy, geo, w_shape)

    @staticmethod
    def backward(ctx, ggw):
        x, gy = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gx = ConvTranspose.apply(gy, ggw, None, geo) if need[0] else None
        g_gy = Conv.apply(x, ggw, None, geo) if need[1] else None
        return gx, g_gy, None


# ---- public API: argument checks as PyTorch makes them --------------------------------------------

def _ints(op, name, value, nd, minimum):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * nd
    elif (isinstance(value, (tuple, list)) and len(value) == nd
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        value = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < minimum for v in value):
        what = 'negative' if minimum == 0 else 'non-positive'
        raise ValueError(f"{op}: {what} {name} {value} is not supported")
    return value


def _pad3(t, fill):
    return (fill,) * (3 - len(t)) + tuple(t)


def _check_tensors(op, input, weight, bias, nd, groups, weight_desc):
    named = (('input', input), ('weight', weight)) + ((('bias', bias),) if bias is not None else ())
    for name, t in named:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
    spatial = {1: 'L', 2: 'H, W', 3: 'T, H, W'}[nd]
    if input.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D input (N, C, {spatial}), got shape "
                         f"{tuple(input.shape)} ({input.ndim}-D; batch the input, unbatched inputs "
                         "are not accepted)")
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D weight {weight_desc}, got shape "
                         f"{tuple(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != input.dtype):
        raise TypeError(f"{op}: input, weight and bias must have one dtype, got {input.dtype}, "
                        f"{weight.dtype}" + (f" and {bias.dtype}" if bias is not None else ""))
    if input.dtype.kind != 'f':
        raise TypeError(f"{op}: expected a floating-point input, got {input.dtype}")


def _check_fits(op, input, weight, vol, padding_lo, padding_hi, kernel, dilation):
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(v + lo + hi for v, lo, hi in zip(vol, padding_lo, padding_hi))
    if any(s > p for s, p in zip(span, padded)):
        raise ValueError(f"{op}: kernel {tuple(kernel)} with dilation {tuple(dilation)} spans "
                         f"{span}, larger than the padded input {padded} (input "
                         f"{tuple(input.shape)}, weight {tuple(weight.shape)})")


def _conv(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(op, input, weight, bias, nd, groups, '(C_out, C_in/groups, *kernel)')
    n, c_in = input.shape[:2]
    c_out, c_in_g = weight.shape[:2]
    if c_in % groups or c_out % groups or c_in_g * groups != c_in:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {c_in} channels, weight "
                         f"{tuple(weight.shape)} with groups={groups} expects C_in = weight.shape[1] * "
                         f"groups = {c_in_g * groups} and C_out ({c_out}) divisible by groups")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias shape {tuple(bias.shape)}, expected ({c_out},) for weight "
                         f"{tuple(weight.shape)}")
    kernel = tuple(weight.shape[2:])
    stride = _ints(op, 'stride', stride, nd, 1)
    dilation = _ints(op, 'dilation', dilation, nd, 1)
    vol = tuple(input.shape[2:])
    if isinstance(padding, str):
        if padding == 'valid':
            lo = hi = (0,) * nd
        elif padding == 'same':
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride})")
            total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
            lo = tuple(t // 2 for t in total)           # PyTorch puts the odd extra on the high side
            hi = tuple(t - l for t, l in zip(total, lo))
        else:
            raise ValueError(f"{op}: padding must be 'same', 'valid', an int or a tuple of {nd} "
                             f"ints, got {padding!r}")
    else:
        lo = hi = _ints(op, 'padding', padding, nd, 0)
    _check_fits(op, input, weight, vol, lo, hi, kernel, dilation)
    out = tuple((v + a + b - d * (k - 1) - 1) // s + 1
                for v, a, b, k, s, d in zip(vol, lo, hi, kernel, stride, dilation))
    geo = Geometry(nd, _pad3(vol, 1), _pad3(out, 1), _pad3(kernel, 1), _pad3(stride, 1),
                   _pad3(lo, 0), _pad3(dilation, 1), int(groups))
    return Conv.apply(input, weight, bias, geo)


def _conv_transpose(op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensors(op, input, weight, bias, nd, groups, '(C_in, C_out/groups, *kernel)')
    n, c_in = input.shape[:2]
    c_w, c_out_g = weight.shape[:2]
    if c_in % groups or c_w != c_in:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {c_in} channels, weight "
                         f"{tuple(weight.shape)} expects {c_w} (its dim 0), divisible by "
                         f"groups={groups}")
    c_out = c_out_g * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias shape {tuple(bias.shape)}, expected ({c_out},) for weight "
                         f"{tuple(weight.shape)} and groups={groups}")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints (PyTorch's "
                         f"conv_transpose takes no 'same'/'valid'), got {padding!r}")
    kernel = tuple(weight.shape[2:])
    stride = _ints(op, 'stride', stride, nd, 1)
    padding = _ints(op, 'padding', padding, nd, 0)
    output_padding = _ints(op, 'output_padding', output_padding, nd, 0)
    dilation = _ints(op, 'dilation', dilation, nd, 1)
    if any(op_ >= max(s, d) for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    out = tuple(input.shape[2:])
    vol = tuple((o - 1) * s - 2 * p + d * (k - 1) + op_ + 1
                for o, s, p, d, k, op_ in zip(out, stride, padding, dilation, kernel, output_padding))
    if any(v <= 0 for v in vol):
        raise ValueError(f"{op}: input {tuple(input.shape)} with weight {tuple(weight.shape)}, "
                         f"stride {stride}, padding {padding}, dilation {dilation} and "
                         f"output_padding {output_padding} gives the non-positive output size {vol}")
    geo = Geometry(nd, _pad3(vol, 1), _pad3(out, 1), _pad3(kernel, 1), _pad3(stride, 1),
                   _pad3(padding, 0), _pad3(dilation, 1), int(groups))
    return ConvTranspose.apply(input, weight, bias, geo)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, L), weight (C_out, C_in/groups, k), bias (C_out,) -> (N, C_out, L_out).
    padding: an int, a 1-tuple, 'valid' or 'same' (stride 1 only), as PyTorch."""
    return _conv('conv1d', 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    return _conv('conv2d', 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, T, H, W), weight (C_out, C_in/groups, kT, kH, kW) -> (N, C_out, T', H', W'),
    with X' = (X + 2 padding - dilation (k - 1) - 1) // stride + 1 per spatial dim."""
    return _conv('conv3d', 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, L), weight (C_in, C_out/groups, k) -> (N, C_out, L_out) with
    L_out = (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1: the input gradient
    of conv1d with the same arguments."""
    return _conv_transpose('conv_transpose1d', 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    return _conv_transpose('conv_transpose2d', 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, T, H, W), weight (C_in, C_out/groups, kT, kH, kW) -> (N, C_out, T', H', W')."""
    return _conv_transpose('conv_transpose3d', 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)

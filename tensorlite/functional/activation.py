"""Activations: relu, leaky_relu, gelu, erf, sigmoid, tanh, softplus, silu, softmax, log_softmax.

Backward is written with Tensor ops so it is differentiable; GELU also has a fused kernel that
backward uses when no graph is being recorded (first-order training), the common case.
"""
import math

from .. import kernels
from ..autograd.function import Function
from ..kernels._launch import FLOAT_DTYPES
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ._util import normalize_dim, xp_of
from .arithmetic import exp, where
from .reduction import sum as _sum


def _float_contiguous(op, x):
    if x.dtype.kind != 'f':
        raise TypeError(f"{op}: needs a floating-point tensor, got dtype {x.dtype}")
    # not ascontiguousarray alone: it turns a 0-d array into shape (1,)
    return x if x.flags.c_contiguous else xp_of(x).ascontiguousarray(x)


class ReLU(Function):
    """max(x, 0) by a kernel; saves its output y, since dy/dx is 1 where y > 0 and 0 elsewhere
    (0 at x = 0, as PyTorch).  With inplace, y is written over x's memory (see `relu`)."""

    @staticmethod
    def forward(ctx, x, inplace):
        xp = xp_of(x)
        # x[...]: a new array object on x's memory, so that it is saved as the output, not the input
        y = x[...] if inplace else None
        if x.dtype in FLOAT_DTYPES and x.flags.c_contiguous:
            y = xp.empty_like(x) if y is None else y
            kernels.activation(x).relu_fwd(x, y)
        else:                                   # integers, strided views: NumPy's maximum
            y = xp.maximum(x, 0, out=y)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        if not is_grad_enabled() and y.dtype in FLOAT_DTYPES and y.data.flags.c_contiguous:
            g = _float_contiguous('relu', gy.data.astype(y.dtype, copy=False))
            gx = xp_of(g).empty_like(g)
            kernels.activation(g).relu_bwd(y.data, g, gx)       # one pass: gy where y > 0, else 0
            return Tensor(gx), None
        return gy * Tensor(xp_of(y.data).asarray(~(y.data <= 0), dtype=gy.dtype)), None


def relu(input, inplace=False):
    """max(input, 0).  inplace=True writes the result over input's memory and returns input (now
    the ReLU's output in the graph); a Function that saved input for its backward then raises
    there, as in PyTorch.  Conv and BatchNorm save their inputs, not their outputs, so a ReLU
    after either can be in place."""
    if not inplace:
        return ReLU.apply(input, False)
    input._check_inplace('relu_')
    return input._write_inplace('relu_', ReLU.apply(input, True), shares_memory=True)


def relu_(input):
    """relu(input, inplace=True)."""
    return relu(input, inplace=True)


class LeakyReLU(Function):
    """x where x > 0, negative_slope x elsewhere; saves the slope (1 or negative_slope) as a
    constant, since it is piecewise constant."""

    @staticmethod
    def forward(ctx, x, negative_slope):
        xp = xp_of(x)
        slope = xp.where(x > 0, 1, negative_slope).astype(x.dtype)
        ctx.save_for_backward(slope)
        return x * slope

    @staticmethod
    def backward(ctx, gy):
        (slope,) = ctx.saved_tensors
        return gy * slope, None


def leaky_relu(input, negative_slope=0.01):
    return LeakyReLU.apply(input, negative_slope)


class Erf(Function):
    """erf(x) by a Numba kernel; d/dx = 2/sqrt(pi) exp(-x^2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)            # the input, not a copy: second derivatives flow through it
        xc = _float_contiguous('erf', x)
        y = xp_of(xc).empty_like(xc)
        kernels.activation(xc).erf(xc, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * (2.0 / math.sqrt(math.pi)) * exp(-(x * x))


def erf(input):
    return Erf.apply(input)


class GELU(Function):
    """x Phi(x) (exact, with erf) or 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        ctx.save_for_backward(x)            # the input, not a copy: second derivatives flow through it
        xc = _float_contiguous('gelu', x)
        y = xp_of(xc).empty_like(xc)
        kernels.activation(xc).gelu_fwd(xc, y, approximate)
        return y

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        if not is_grad_enabled():                       # fused: one pass instead of seven
            g = _float_contiguous('gelu', gy.data.astype(x.dtype, copy=False))
            gx = xp_of(g).empty_like(g)
            xc = _float_contiguous('gelu', x.data)
            kernels.activation(g).gelu_bwd(xc, g, gx, ctx.approximate)
            return Tensor(gx), None
        return gy * _gelu_derivative(x, ctx.approximate), None


def _gelu_derivative(x, approximate):
    """d gelu / dx as Tensor ops (used when a second derivative is being recorded)."""
    if approximate:
        k, c = math.sqrt(2 / math.pi), 0.044715
        t = tanh((x + c * x * x * x) * k)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x)
    phi = exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    return 0.5 * (1 + erf(x * (1 / math.sqrt(2)))) + x * phi


def gelu(input, approximate='none'):
    if approximate not in ('none', 'tanh'):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(input, approximate == 'tanh')


class Sigmoid(Function):
    """1 / (1 + exp(-x)), computed as 0.5 tanh(x/2) + 0.5 (no overflow); d/dx = y (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        # save what is returned (astype may make a new object), so it is recognized as the output
        y = (0.5 * xp_of(x).tanh(0.5 * x) + 0.5).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y * (1 - y)


def sigmoid(input):
    return Sigmoid.apply(input)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * (1 - y * y)


def tanh(input):
    return Tanh.apply(input)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (PyTorch); d/dx = sigmoid(beta x)."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = xp_of(x)
        z = beta * x
        ctx.beta = beta
        linear = xp.asarray(z > threshold)
        ctx.save_for_backward(x, linear)
        smooth = (xp.maximum(z, 0) + xp.log1p(xp.exp(-abs(z)))) / beta
        return xp.where(linear, x, smooth).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, gy):
        x, linear = ctx.saved_tensors
        return where(linear, gy, gy * sigmoid(x * ctx.beta)), None, None


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(input, beta, threshold)


class SiLU(Function):
    """x sigmoid(x); d/dx = s (1 + x (1 - s))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * (0.5 * xp_of(x).tanh(0.5 * x) + 0.5)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        s = sigmoid(x)
        return gy * s * (1 + x * (1 - s))


def silu(input):
    return SiLU.apply(input)


def _max_keepdim(x, dim):
    """x's max over dim (kept), subtracted for stability; an empty x has none and needs none."""
    return x.max(axis=dim, keepdims=True) if x.size else 0


class Softmax(Function):
    """exp(x - max) / sum; d/dx: y (g - sum(g y))."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        xp = xp_of(x)
        e = xp.exp(x - _max_keepdim(x, dim))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        gyy = gy * y
        return gyy - y * _sum(gyy, ctx.dim, keepdim=True), None


class LogSoftmax(Function):
    """x - max - log(sum(exp(x - max))); d/dx: g - exp(y) sum(g)."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        xp = xp_of(x)
        z = x - _max_keepdim(x, dim)
        y = z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True)) if x.size else z
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy - exp(y) * _sum(gy, ctx.dim, keepdim=True), None


def softmax(input, dim):
    return Softmax.apply(input, normalize_dim(dim, input.ndim, 'softmax'))


def log_softmax(input, dim):
    return LogSoftmax.apply(input, normalize_dim(dim, input.ndim, 'log_softmax'))

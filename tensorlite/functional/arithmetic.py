"""Elementwise arithmetic with NumPy broadcasting.

Each backward undoes broadcasting with `sum_to` and is written with Tensor ops, so it is itself
differentiable.  Masks (which side of a max won, where a clamp was active) are constants: their
derivative is zero almost everywhere.

On 0-d inputs NumPy ufuncs return scalars, not arrays; what forward keeps goes through `asarray`,
because a Tensor holds only arrays and `save_for_backward` finds the output by identity.
"""
import numbers

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import as_tensor_pair, check_broadcast, xp_of
from .shape import sum_to


def _binary(fn, op, a, b):
    a, b = as_tensor_pair(op, a, b)
    check_broadcast(op, a, b)
    return fn.apply(a, b)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, gy):
        ga = sum_to(gy, ctx.shapes[0]) if ctx.needs_input_grad[0] else None
        gb = sum_to(gy, ctx.shapes[1]) if ctx.needs_input_grad[1] else None
        return ga, gb


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, gy):
        ga = sum_to(gy, ctx.shapes[0]) if ctx.needs_input_grad[0] else None
        gb = sum_to(-gy, ctx.shapes[1]) if ctx.needs_input_grad[1] else None
        return ga, gb


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = sum_to(gy * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(gy * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        y = a / b
        ctx.save_for_backward(a, b)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        ga = sum_to(gy / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = sum_to(-gy * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


def add(input, other, alpha=1):
    """input + alpha * other."""
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(Add, 'add', input, other)


def sub(input, other, alpha=1):
    if alpha != 1:
        other = mul(other, alpha)
    return _binary(Sub, 'sub', input, other)


def mul(input, other):
    return _binary(Mul, 'mul', input, other)


def div(input, other):
    return _binary(Div, 'div', input, other)


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, gy):
        return -gy


def neg(x):
    return Neg.apply(x)


class Pow(Function):
    """a ** b for two tensors: d/da = b a^(b-1), d/db = a^b log a (NaN where a <= 0, as the
    real-valued derivative does not exist there)."""

    @staticmethod
    def forward(ctx, a, b):
        y = xp_of(a).asarray(a ** b)         # a scalar for 0-d operands: see the module docstring
        ctx.save_for_backward(a, b, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        a, b, y = ctx.saved_tensors
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if ctx.needs_input_grad[0] else None
        # log in y's dtype: a float32 base must not cost a float64 exponent its precision
        gb = sum_to(gy * y * log(a.to(y.dtype)), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class PowScalar(Function):
    """x ** p for a Python number p."""

    @staticmethod
    def forward(ctx, x, p):
        ctx.p = p
        ctx.save_for_backward(x)
        return x ** xp_of(x).asarray(p, dtype=x.dtype)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        if ctx.p == 0:
            return gy * 0, None
        return gy * ctx.p * x ** (ctx.p - 1), None


def pow(input, exponent):
    """input ** exponent; either may be a Python number."""
    if isinstance(input, Tensor) and isinstance(exponent, numbers.Number) \
            and not isinstance(exponent, bool):
        if exponent == 1:
            return input
        return PowScalar.apply(input, exponent)
    return _binary(Pow, 'pow', input, exponent)


class Reciprocal(Function):
    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).asarray(1 / x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -gy * y * y


def reciprocal(x):
    return Reciprocal.apply(x)


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        ctx.save_for_backward(xp.asarray(xp.sign(x)))   # 0 at 0: PyTorch's subgradient choice
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, gy):
        (sign,) = ctx.saved_tensors
        return gy * sign


def abs(x):
    return Abs.apply(x)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        y = xp.asarray(xp.sqrt(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy / (2 * y)


def sqrt(x):
    return Sqrt.apply(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        y = xp.asarray(xp.exp(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return gy * y


def exp(x):
    return Exp.apply(x)


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy / x


def log(x):
    return Log.apply(x)


class _Extremum(Function):
    """maximum/minimum: the gradient goes to the winner; a tie splits it half and half (PyTorch)."""
    pick = None

    @classmethod
    def forward(cls, ctx, a, b):
        xp = xp_of(a)
        y = xp.asarray(getattr(xp, cls.pick)(a, b))
        win_a = (a == y).astype(y.dtype)
        win_b = (b == y).astype(y.dtype)
        tie = win_a * win_b
        ctx.save_for_backward(xp.asarray(win_a - 0.5 * tie), xp.asarray(win_b - 0.5 * tie))
        ctx.shapes = a.shape, b.shape
        return y

    @staticmethod
    def backward(ctx, gy):
        ma, mb = ctx.saved_tensors
        ga = sum_to(gy * ma, ctx.shapes[0]) if ctx.needs_input_grad[0] else None
        gb = sum_to(gy * mb, ctx.shapes[1]) if ctx.needs_input_grad[1] else None
        return ga, gb


class Maximum(_Extremum):
    pick = 'maximum'


class Minimum(_Extremum):
    pick = 'minimum'


def maximum(input, other):
    return _binary(Maximum, 'maximum', input, other)


def minimum(input, other):
    return _binary(Minimum, 'minimum', input, other)


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        xp = xp_of(x)
        y = xp.clip(x, lo, hi) if lo is not None or hi is not None else x.copy()
        inside = xp.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside.astype(x.dtype))
        return y

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved_tensors
        return gy * mask, None, None


def clamp(input, min=None, max=None):
    """Limit to [min, max] (numbers); the gradient passes where min <= x <= max."""
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    return Clamp.apply(input, min, max)


clip = clamp


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = a.shape, b.shape
        return xp_of(a).where(cond, a, b)

    @staticmethod
    def backward(ctx, gy):
        (cond,) = ctx.saved_tensors
        on = Tensor(cond.data.astype(gy.dtype))
        ga = sum_to(gy * on, ctx.shapes[0]) if ctx.needs_input_grad[1] else None
        gb = sum_to(gy * (1 - on), ctx.shapes[1]) if ctx.needs_input_grad[2] else None
        return None, ga, gb


def where(condition, input, other):
    """Elementwise `input if condition else other`, broadcasting all three."""
    a, b = as_tensor_pair('where', input, other)
    cond = condition.data if isinstance(condition, Tensor) else xp_of(a.data).asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    check_broadcast('where', Tensor(cond), a, b)
    return Where.apply(cond, a, b)


def masked_fill(input, mask, value):
    """`input` with `value` wherever the bool `mask` is true."""
    return where(mask, value, input)

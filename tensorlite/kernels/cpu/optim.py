"""Fused optimizer updates (CPU): one SGD or Adam/AdamW step of one parameter in one pass over
its memory, where the NumPy path of tensorlite/optim made about six (SGD with momentum) to twelve
(Adam) passes and as many temporaries.

The formulas are tensorlite/optim/sgd.py's and adam.py's (PyTorch's), computed in the same order
and in the array's dtype, with every hyperparameter -- and every value derived from them in Python,
such as 1 - beta1 or lr / (1 - beta1**t) -- cast to that dtype before the launch, as NumPy casts a
Python float meeting a float32 array: so the fused step gives the NumPy step's result to the last
bit.  No fast-math: a contracted multiply-add would round differently.  error_model='numpy' lets a
division by zero give inf/nan as NumPy's does instead of raising, which is also what lets LLVM
vectorize the loops (Adam: 3.4 ns a value with Python's error model, 0.57 ns with NumPy's).

The loops run on one thread, called directly (not through `_launch.run`).  A model's parameters
are mostly small -- the tiny TimeSformer's 54 hold 800 values on average -- and a direct call costs
0.34 us where `run` (set the thread count, launch a parallel loop, set it back) costs 4.5 us; and
two threads gave nothing on large ones either (Adam on 4M values: 0.50 ns a value on one thread,
0.52 on two, on this project's 2 busy cores).  See docs/performance.md, "The optimizer update".
"""
import functools
import math

import numba

from .._launch import FLOAT_DTYPES, check_elementwise


def check_like(kernel, named):
    """`named` is [(name, array or None)], the parameter first: every array (None is skipped) of
    the parameter's shape, C-contiguous, of its float dtype; else a ValueError/TypeError naming
    the kernel and the argument."""
    named = [(name, a) for name, a in named if a is not None]
    p_name, p = named[0]
    # the common case in cheap tests; the full check only to name a fault
    dtype, shape = p.dtype, p.shape
    if dtype in FLOAT_DTYPES:
        for _, a in named:
            if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
                break
        else:
            return
    for name, a in named[1:]:
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected {p_name}'s "
                             f"shape {tuple(shape)}")
    check_elementwise(kernel, [name for name, _ in named], [a for _, a in named])


def flat_or_stand_in(a, p):
    """`a` flattened; or, when `a` is None (a state the step does not use: SGD's buffer without
    momentum, vmax without amsgrad), an empty array of p's dtype that the kernel never indexes.
    Not p itself: a launch on host arrays (the CUDA simulator's, or a GPU's) copies each argument
    to the device and back, and the stand-in's unchanged copy would overwrite p's update."""
    return p.reshape(-1)[:0] if a is None else a.reshape(-1)


@functools.lru_cache(maxsize=64)
def sgd_scalars(dtype, lr, momentum, dampening, weight_decay):
    """The SGD hyperparameters as scalars of `dtype`: lr, momentum, 1 - dampening, weight_decay.
    (Cached: every parameter of a group asks for the same ones, 0.9 us to make, 0.2 us to find.)"""
    c = dtype.type
    return c(lr), c(momentum), c(1 - dampening), c(weight_decay)


@functools.lru_cache(maxsize=64)
def adam_scalars(dtype, step, lr, beta1, beta2, eps, weight_decay):
    """The Adam scalars of step `step` (1, 2, ...) as scalars of `dtype`: beta1, 1 - beta1, beta2,
    1 - beta2, lr / (1 - beta1**step), sqrt(1 - beta2**step), eps, weight_decay,
    1 - lr * weight_decay.  (Cached, as sgd_scalars.)"""
    if step < 1:
        raise ValueError(f"adam: step must be 1 or more (the count after this step), got {step}")
    c = dtype.type
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    return (c(beta1), c(1 - beta1), c(beta2), c(1 - beta2), c(lr / bias_correction1),
            c(bias_correction2_sqrt), c(eps), c(weight_decay), c(1 - lr * weight_decay))


# ---- SGD -----------------------------------------------------------------------------------------
@numba.njit(cache=True, error_model='numpy')
def _sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_momentum, nesterov,
         maximize, first):
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        if use_momentum:
            b = d if first else buf[i] * momentum + one_minus_dampening * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] - lr * d


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """One SGD step of parameter array `p` with gradient `g`, in place:

        d = -g if maximize else g
        d = d + weight_decay * p                       (if weight_decay != 0)
        buf = d if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf    (these two if momentum != 0)
        p = p - lr * d

    `buf` is the momentum buffer (written; read unless `first`), None when momentum is 0.  All
    arrays of one shape, C-contiguous, of one dtype (float32 or float64), the computation's."""
    use_momentum = momentum != 0
    if use_momentum and buf is None:
        raise ValueError(f"sgd_step: momentum={momentum} needs a momentum buffer, got None")
    check_like('sgd_step', [('p', p), ('g', g), ('buf', buf if use_momentum else None)])
    _sgd(p.reshape(-1), g.reshape(-1), flat_or_stand_in(buf if use_momentum else None, p),
         *sgd_scalars(p.dtype, lr, momentum, dampening, weight_decay), use_momentum,
         bool(nesterov), bool(maximize), bool(first))


# ---- Adam and AdamW ------------------------------------------------------------------------------
@numba.njit(cache=True, inline='always')
def _adam_moments(g, w, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                  decoupled, maximize):
    """One value's (p, m, v) after the weight decay and the moment updates."""
    d = -g if maximize else g
    if weight_decay != 0:
        if decoupled:
            w = w * decay                              # AdamW: p (1 - lr wd), outside the moments
        else:
            d = d + weight_decay * w
    return w, m * beta1 + one_minus_beta1 * d, v * beta2 + one_minus_beta2 * (d * d)


# Two loops, not one with `if amsgrad` inside: a loop that may store to vmax must check at run time
# that vmax overlaps no other array, and with v standing in for it (as first written) it did, so
# LLVM ran the scalar loop: 3.3 ns a value against 0.5 ns for the vector loop.
@numba.njit(cache=True, error_model='numpy')
def _adam(p, g, m, v, vmax, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
          bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize):
    if amsgrad:
        for i in range(p.size):
            w, mi, vi = _adam_moments(g[i], p[i], m[i], v[i], beta1, one_minus_beta1, beta2,
                                      one_minus_beta2, weight_decay, decay, decoupled, maximize)
            m[i] = mi
            v[i] = vi
            top = vmax[i]
            if vi > top or vi != vi:                   # np.maximum: a NaN on either side wins
                top = vi
            vmax[i] = top
            p[i] = w - step_size * mi / (math.sqrt(top) / bias_correction2_sqrt + eps)
    else:
        for i in range(p.size):
            w, mi, vi = _adam_moments(g[i], p[i], m[i], v[i], beta1, one_minus_beta1, beta2,
                                      one_minus_beta2, weight_decay, decay, decoupled, maximize)
            m[i] = mi
            v[i] = vi
            p[i] = w - step_size * mi / (math.sqrt(vi) / bias_correction2_sqrt + eps)


def adam_step(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize):
    """Step `step` (1, 2, ...) of Adam (decoupled=False) or AdamW (decoupled=True) on parameter
    array `p` with gradient `g`, in place:

        d = -g if maximize else g
        p = p * (1 - lr * weight_decay)   if decoupled,   else   d = d + weight_decay * p
        m = beta1 * m + (1 - beta1) * d
        v = beta2 * v + (1 - beta2) * d * d
        vmax = max(vmax, v)                                           (if amsgrad)
        p = p - lr / (1 - beta1**step) * m / (sqrt(vmax if amsgrad else v)
                                                / sqrt(1 - beta2**step) + eps)

    `m`, `v` (and `vmax`, None without amsgrad) are the moment estimates, read and written.  All
    arrays of one shape, C-contiguous, of one dtype (float32 or float64), the computation's."""
    if amsgrad and vmax is None:
        raise ValueError("adam_step: amsgrad=True needs a vmax array, got None")
    check_like('adam_step', [('p', p), ('g', g), ('m', m), ('v', v),
                             ('vmax', vmax if amsgrad else None)])
    _adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
          flat_or_stand_in(vmax if amsgrad else None, p),
          *adam_scalars(p.dtype, step, lr, beta1, beta2, eps, weight_decay),
          bool(decoupled), bool(amsgrad), bool(maximize))

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
import numba

from .._launch import (adam_scalars, check_adam_step, check_sgd_step, flat_or_stand_in,
                       sgd_scalars)
from .._scalar import for_cpu

adam_value, sgd_value = for_cpu('adam_value', 'sgd_value')


# ---- SGD -----------------------------------------------------------------------------------------
@numba.njit(cache=True, error_model='numpy')
def _sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_momentum, nesterov,
         maximize, first):
    for i in range(p.size):
        sgd_value(p, g, buf, i, lr, momentum, one_minus_dampening, weight_decay, use_momentum,
                  nesterov, maximize, first)


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    """One SGD step of parameter array `p` with gradient `g`, in place:

        d = -g if maximize else g
        d = d + weight_decay * p                       (if weight_decay != 0)
        buf = d if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf    (these two if momentum != 0)
        p = p - lr * d

    `buf` is the momentum buffer (written; read unless `first`), None when momentum is 0.  All
    arrays of one shape, C-contiguous, of one dtype (float32 or float64), the computation's."""
    use_momentum = check_sgd_step(p, g, buf, momentum)
    _sgd(p.reshape(-1), g.reshape(-1), flat_or_stand_in(buf if use_momentum else None, p),
         *sgd_scalars(p.dtype, lr, momentum, dampening, weight_decay), use_momentum,
         bool(nesterov), bool(maximize), bool(first))


# ---- Adam and AdamW ------------------------------------------------------------------------------
# Two loops, each with amsgrad a constant, not one with `if amsgrad` inside: a loop that may store
# to vmax must check at run time that vmax overlaps no other array, and with v standing in for it
# it did, so LLVM ran the scalar loop: 3.3 ns a value against 0.5 ns for the vector loop.
@numba.njit(cache=True, error_model='numpy')
def _adam(p, g, m, v, vmax, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
          bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize):
    if amsgrad:
        for i in range(p.size):
            adam_value(p, g, m, v, vmax, i, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       step_size, bias_correction2_sqrt, eps, weight_decay, decay, decoupled,
                       True, maximize)
    else:
        for i in range(p.size):
            adam_value(p, g, m, v, vmax, i, beta1, one_minus_beta1, beta2, one_minus_beta2,
                       step_size, bias_correction2_sqrt, eps, weight_decay, decay, decoupled,
                       False, maximize)


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
    check_adam_step(p, g, m, v, vmax, amsgrad)
    _adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
          flat_or_stand_in(vmax if amsgrad else None, p),
          *adam_scalars(p.dtype, step, lr, beta1, beta2, eps, weight_decay),
          bool(decoupled), bool(amsgrad), bool(maximize))

"""Fused optimizer updates (CUDA twins of kernels/cpu/optim.py: same names, same signatures).

Elementwise over the flattened arrays, each kernel a grid-stride loop.  The hyperparameters arrive
as scalars of the arrays' dtype (cpu/optim.py's `sgd_scalars`, `adam_scalars`) and the kernels hold
no float literal: a Python float in a CUDA kernel is a float64, and would promote a float32 update
to double precision (slow on most GPUs, and a different rounding from the CPU twin's).
"""
import math

from numba import cuda

from ..cpu.optim import adam_scalars, check_like, flat_or_stand_in, sgd_scalars
from . import _grid


@cuda.jit(cache=True)
def _sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_momentum, nesterov,
         maximize, first):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = -g[i] if maximize else g[i]
        if weight_decay != 0:
            d = d + weight_decay * p[i]
        if use_momentum:
            b = d if first else buf[i] * momentum + one_minus_dampening * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] - lr * d


@cuda.jit(cache=True)
def _adam(p, g, m, v, vmax, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
          bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        d = -g[i] if maximize else g[i]
        w = p[i]
        if weight_decay != 0:
            if decoupled:
                w = w * decay
            else:
                d = d + weight_decay * w
        mi = m[i] * beta1 + one_minus_beta1 * d
        vi = v[i] * beta2 + one_minus_beta2 * (d * d)
        m[i] = mi
        v[i] = vi
        if amsgrad:
            top = vmax[i]
            if vi > top or vi != vi:
                top = vi
            vmax[i] = top
            vi = top
        p[i] = w - step_size * mi / (math.sqrt(vi) / bias_correction2_sqrt + eps)


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    use_momentum = momentum != 0
    if use_momentum and buf is None:
        raise ValueError(f"sgd_step: momentum={momentum} needs a momentum buffer, got None")
    check_like('sgd_step', [('p', p), ('g', g), ('buf', buf if use_momentum else None)])
    if p.size:
        _sgd[_grid.grid(p.size)](p.reshape(-1), g.reshape(-1),
                                 flat_or_stand_in(buf if use_momentum else None, p),
                                 *sgd_scalars(p.dtype, lr, momentum, dampening, weight_decay),
                                 use_momentum, bool(nesterov), bool(maximize), bool(first))


def adam_step(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize):
    if amsgrad and vmax is None:
        raise ValueError("adam_step: amsgrad=True needs a vmax array, got None")
    check_like('adam_step', [('p', p), ('g', g), ('m', m), ('v', v),
                             ('vmax', vmax if amsgrad else None)])
    if p.size:
        scalars = adam_scalars(p.dtype, step, lr, beta1, beta2, eps, weight_decay)
        _adam[_grid.grid(p.size)](p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                  flat_or_stand_in(vmax if amsgrad else None, p), *scalars,
                                  bool(decoupled), bool(amsgrad), bool(maximize))

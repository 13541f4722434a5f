"""Fused optimizer updates (CUDA twins of kernels/cpu/optim.py: same names, same signatures).

Elementwise over the flattened arrays, each kernel a grid-stride loop over the CPU twin's
per-value step (kernels/_scalar.py).  The hyperparameters arrive as scalars of the arrays' dtype
(kernels/_launch.py's `sgd_scalars`, `adam_scalars`) and the kernels hold no float literal: a
Python float in a CUDA kernel is a float64, and would promote a float32 update to double precision
(slow on most GPUs, and a different rounding from the CPU twin's).
"""
from numba import cuda

from .._launch import (adam_scalars, check_adam_step, check_sgd_step, flat_or_stand_in,
                       sgd_scalars)
from .._scalar import for_cuda
from . import _grid

adam_value, sgd_value = for_cuda('adam_value', 'sgd_value')


@cuda.jit(cache=True)
def _sgd(p, g, buf, lr, momentum, one_minus_dampening, weight_decay, use_momentum, nesterov,
         maximize, first):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        sgd_value(p, g, buf, i, lr, momentum, one_minus_dampening, weight_decay, use_momentum,
                  nesterov, maximize, first)


@cuda.jit(cache=True)
def _adam(p, g, m, v, vmax, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
          bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        adam_value(p, g, m, v, vmax, i, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                   bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize)


def sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
    use_momentum = check_sgd_step(p, g, buf, momentum)
    if p.size:
        _sgd[_grid.grid(p.size)](p.reshape(-1), g.reshape(-1),
                                 flat_or_stand_in(buf if use_momentum else None, p),
                                 *sgd_scalars(p.dtype, lr, momentum, dampening, weight_decay),
                                 use_momentum, bool(nesterov), bool(maximize), bool(first))


def adam_step(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad,
              maximize):
    check_adam_step(p, g, m, v, vmax, amsgrad)
    if p.size:
        scalars = adam_scalars(p.dtype, step, lr, beta1, beta2, eps, weight_decay)
        _adam[_grid.grid(p.size)](p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                                  flat_or_stand_in(vmax if amsgrad else None, p), *scalars,
                                  bool(decoupled), bool(amsgrad), bool(maximize))


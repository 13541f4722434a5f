"""Gradient clipping by the global norm, as `torch.nn.utils.clip_grad_norm_`."""
import math

import numpy as np

from .. import backend
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from .optimizer import check_hyperparameter


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of `parameters` in place so that their joint norm is at most `max_norm`.

    The total norm is the `norm_type`-norm of all gradients taken together, as if concatenated
    into one vector (`norm_type=inf`: the largest absolute value).  When it exceeds `max_norm`,
    every gradient is multiplied by `max_norm / (total_norm + 1e-6)`; the 1e-6 keeps the division
    finite for a zero norm.  Parameters without a gradient are skipped.

    Returns the total norm *before* clipping as a 0-d Tensor in the gradients' dtype, as PyTorch
    does (`float(norm)` or `norm.item()` for a Python number).  A NaN or infinite norm raises
    RuntimeError with `error_if_nonfinite=True`; otherwise, as in PyTorch, the gradients are
    multiplied by the resulting NaN coefficient, so the problem shows at once.
    """
    max_norm = check_hyperparameter('clip_grad_norm_', 'max_norm', max_norm)
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be a finite number > 0, got {max_norm!r}")
    try:
        norm_type = float(norm_type)
    except (TypeError, ValueError):
        norm_type = math.nan
    if not norm_type > 0:                     # inf is allowed: the largest absolute value
        raise ValueError(f"clip_grad_norm_: norm_type must be a number > 0 or inf, got "
                         f"{norm_type!r}")
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    with_grad = [p for p in parameters if p.grad is not None]
    grads = [p.grad.data for p in with_grad]
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = backend.array_module(grads[0])

    # Accumulated in float64 so that many float32 gradients do not lose the small ones.
    if math.isinf(norm_type):
        total = max(float(xp.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float((xp.abs(g.astype(np.float64)) ** norm_type).sum()) for g in grads)
        total = total ** (1.0 / norm_type)

    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {total}, so "
                           "they cannot be clipped; pass error_if_nonfinite=False to scale them "
                           "anyway")
    clip_coef = max_norm / (total + 1e-6)
    if not clip_coef >= 1.0:                     # also when it is NaN, as PyTorch's clamp
        with no_grad():
            for p in with_grad:
                p.grad.mul_(clip_coef)
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))

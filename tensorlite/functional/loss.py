"""Losses, composed of differentiable ops (so each has a second derivative), with PyTorch's
arguments and reductions."""
import numpy as np

from .. import backend
from ..autograd.tensor import Tensor
from ._util import check_broadcast, xp_of
from .activation import log_softmax, softplus
from .arithmetic import abs as _abs
from .reduction import sum as _sum
from .shape import gather, reshape, squeeze, unsqueeze

REDUCTIONS = ('none', 'mean', 'sum')


def _check_reduction(op, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == 'sum':
        return loss.sum()
    if reduction == 'mean':
        return loss.mean()
    return loss


def _class_weight_shape(ndim):
    """Shape that broadcasts a (C,) weight against (N, C, d1, ...)."""
    return (1, -1) + (1,) * (ndim - 2)


def _check_devices(op, input, **others):
    """RuntimeError naming `op` when a Tensor among `others` (target, weight) is on another device
    than `input`."""
    where = backend.device_of(input.data)
    for name, x in others.items():
        if isinstance(x, Tensor) and backend.device_of(x.data) != where:
            raise RuntimeError(f"{op}: expected input and {name} on one device, found input on "
                               f"{where} and {name} on {backend.device_of(x.data)} (move it with "
                               f".to('{where}'))")


def _check_class_target(op, input, target):
    """(N, C, d...) input and (N, d...) integer target; returns the target array."""
    t = target.data if isinstance(target, Tensor) else xp_of(input.data).asarray(target)
    if t.dtype.kind not in 'iu':
        raise TypeError(f"{op}: class-index target must be an integer tensor, got dtype {t.dtype}")
    expected = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(t.shape) != expected:
        raise ValueError(f"{op}: input shape {tuple(input.shape)} needs target shape {expected}, "
                         f"got {tuple(t.shape)}")
    return t


def nll_loss(input, target, weight=None, ignore_index=-100, reduction='mean'):
    """-input[n, target[n]] (times weight[target[n]]), for input (N, C) / (N, C, d...) of
    log-probabilities or (C,) with a scalar target.  'mean' divides by the summed weights of the
    targets that are not ignored, as PyTorch."""
    _check_reduction('nll_loss', reduction)
    _check_devices('nll_loss', input, target=target, weight=weight)
    if input.ndim == 1:
        out = nll_loss(unsqueeze(input, 0), reshape(_as_int_tensor(target, input), (1,)), weight,
                       ignore_index, reduction)
        return squeeze(out, 0) if reduction == 'none' else out
    if input.ndim < 2:
        raise ValueError(f"nll_loss: input must be (N, C) or (N, C, d...), got shape {tuple(input.shape)}")
    C = input.shape[1]
    t = _check_class_target('nll_loss', input, target)
    xp = xp_of(input.data)
    valid = t != ignore_index
    bad = t[valid & ((t < 0) | (t >= C))]
    if bad.size:
        raise IndexError(f"nll_loss: target value {int(bad.reshape(-1)[0])} is out of range for "
                         f"{C} classes (and is not ignore_index={ignore_index})")
    safe = xp.where(valid, t, 0)
    picked = squeeze(gather(input, 1, xp.expand_dims(safe, 1)), 1)              # (N, d...)
    w = valid.astype(input.dtype)
    if weight is not None:
        wd = weight.data if isinstance(weight, Tensor) else xp.asarray(weight)
        if tuple(wd.shape) != (C,):
            raise ValueError(f"nll_loss: weight must have shape ({C},), got {tuple(wd.shape)}")
        w = w * wd.astype(input.dtype)[safe]
    losses = -picked * Tensor(w)
    if reduction == 'none':
        return losses
    if reduction == 'sum':
        return losses.sum()
    return losses.sum() / Tensor(xp.asarray(w.sum(), dtype=input.dtype))


def _as_int_tensor(target, like):
    if isinstance(target, Tensor):
        return target
    return Tensor(xp_of(like.data).asarray(target, dtype=np.int64))


def cross_entropy(input, target, weight=None, ignore_index=-100, label_smoothing=0.0,
                  reduction='mean'):
    """log_softmax over dim 1 then nll_loss; `target` holds class indices (N, d...) or class
    probabilities of input's shape.  Label smoothing mixes in the uniform distribution, as PyTorch."""
    _check_reduction('cross_entropy', reduction)
    _check_devices('cross_entropy', input, target=target, weight=weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 1:
        input = unsqueeze(input, 0)
        if not isinstance(target, Tensor):      # an int or an array of probabilities
            target = Tensor(xp_of(input.data).asarray(target))
        target = unsqueeze(target, 0) if target.dtype.kind == 'f' else reshape(target, (1,))
        out = cross_entropy(input, target, weight, ignore_index, label_smoothing, reduction)
        return squeeze(out, 0) if reduction == 'none' else out
    C = input.shape[1]
    logp = log_softmax(input, 1)
    xp = xp_of(input.data)
    wd = None
    if weight is not None:
        wd = (weight.data if isinstance(weight, Tensor) else xp.asarray(weight)).astype(input.dtype)
        if tuple(wd.shape) != (C,):
            raise ValueError(f"cross_entropy: weight must have shape ({C},), got {tuple(wd.shape)}")
    t = target.data if isinstance(target, Tensor) else xp.asarray(target)
    if t.dtype.kind == 'f':                                          # class probabilities
        if ignore_index != -100:
            raise ValueError(f"cross_entropy: ignore_index ({ignore_index}) needs class-index "
                             f"targets; this target holds probabilities (dtype {t.dtype})")
        if tuple(t.shape) != tuple(input.shape):
            raise ValueError(f"cross_entropy: probability target must have input's shape "
                             f"{tuple(input.shape)}, got {tuple(t.shape)}")
        p = t.astype(input.dtype)
        if label_smoothing > 0:
            p = p * (1 - label_smoothing) + label_smoothing / C
        if wd is not None:
            p = p * wd.reshape(_class_weight_shape(input.ndim))
        losses = -_sum(logp * Tensor(p), 1)
        if reduction == 'mean':
            return losses.mean()                     # over N and d...; NaN for none, as PyTorch
        return losses.sum() if reduction == 'sum' else losses
    t = _check_class_target('cross_entropy', input, target)        # an error that names this op
    nll = nll_loss(logp, target, wd, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    valid = (t != ignore_index)
    wsmooth = Tensor(wd.reshape(_class_weight_shape(input.ndim))) if wd is not None else None
    smooth = -_sum(logp * wsmooth if wsmooth is not None else logp, 1) * Tensor(valid.astype(input.dtype))
    if reduction == 'mean':
        if wd is not None:
            denom = wd[xp.where(valid, t, 0)][valid].sum()
        else:
            denom = valid.sum()
        smooth = smooth.sum() / Tensor(xp.asarray(denom, dtype=input.dtype))
    elif reduction == 'sum':
        smooth = smooth.sum()
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / C)


def mse_loss(input, target, reduction='mean'):
    """(input - target)^2, reduced."""
    _check_reduction('mse_loss', reduction)
    check_broadcast('mse_loss', input, target if isinstance(target, Tensor) else Tensor(np.asarray(target)))
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction='mean'):
    """|input - target|, reduced."""
    _check_reduction('l1_loss', reduction)
    check_broadcast('l1_loss', input, target if isinstance(target, Tensor) else Tensor(np.asarray(target)))
    return _reduce(_abs(input - target), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction='mean', pos_weight=None):
    """-[pos_weight t log s(x) + (1 - t) log(1 - s(x))], stable: (1 - t) x + (1 + (pw - 1) t) softplus(-x)."""
    _check_reduction('binary_cross_entropy_with_logits', reduction)
    t = target if isinstance(target, Tensor) else Tensor(xp_of(input.data).asarray(target, dtype=input.dtype))
    if tuple(t.shape) != tuple(input.shape):
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {tuple(t.shape)} must equal "
                         f"input shape {tuple(input.shape)}")
    sp = softplus(-input)
    if pos_weight is not None:
        loss = (1 - t) * input + (1 + (pos_weight - 1) * t) * sp
    else:
        loss = (1 - t) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)

"""Dropout with an explicit `training` flag (no global train/eval state)."""
from .. import backend
from ..autograd.function import Function
from ..random import generator


class Dropout(Function):
    """Zero each element with probability p and scale the rest by 1/(1-p); the scaled mask is a
    constant, so backward (and every higher derivative) multiplies by it."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, gy):
        (mask,) = ctx.saved_tensors
        return gy * mask, None


def dropout(input, p=0.5, training=True):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = generator().random(input.shape) >= p
    mask = backend.to_device((keep / (1.0 - p)).astype(input.dtype), input.device)
    return Dropout.apply(input, mask)

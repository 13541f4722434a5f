"""LocalResponseNorm: Krizhevsky et al.'s cross-channel normalization, as PyTorch computes it.

    b_c = a_c / (k + alpha / n * sum_{c' = c - n//2}^{c + (n-1)//2} a_{c'}^2) ** beta

with channels outside [0, C) counting as zeros and n = `size`.  alpha is divided by n (PyTorch's
and Caffe's convention; Krizhevsky's paper writes alpha for the undivided sum).  The channel
window sum is an average pool over the channel axis of the zero-padded squares, exactly as
PyTorch's functional.local_response_norm builds it, so the layer needs no op of its own: its
gradient (and second derivative) comes from pad, avg_pool3d, pow and div.

The layer has no parameters.  The early video CNNs (AlexNet/CaffeNet, ZF, CNN-M: LRCN, two-stream,
Karpathy et al.) use it after their first two convolutions.
"""
import numbers

from .. import functional as F
from .module import Module


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """input (N, C, *), at least one dim after C -> the same shape, normalized across channels."""
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input (N, C, *) with at least 3 dims, "
                         f"got shape {tuple(input.shape)}")
    N, C = input.shape[:2]
    rest = tuple(input.shape[2:])
    squares = (input * input).reshape(N, 1, C, rest[0], -1)      # (N, 1, C, D1, D2 * ...)
    # zeros before and after the channels: the window of channel c is c - size//2 .. c + (size-1)//2
    squares = F.pad(squares, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window_mean = F.avg_pool3d(squares, (size, 1, 1), stride=1)  # (N, 1, C, D1, D2 * ...)
    div = (window_mean.reshape(N, C, *rest) * alpha + k) ** beta
    return input / div


class LocalResponseNorm(Module):
    """LocalResponseNorm(size, alpha=1e-4, beta=0.75, k=1.0) as torch.nn.LocalResponseNorm: input
    (N, C, *) -> the same shape.  No parameters, no state."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def forward(self, input):
        return local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f'{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}'

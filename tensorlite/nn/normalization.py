"""BatchNorm1d/2d/3d, LayerNorm, GroupNorm with PyTorch's parameters, buffers and update rules."""
import numbers

from .. import dtypes
from .. import functional as F
from ..creation import ones, tensor, zeros
from . import init
from .module import Module, Parameter, check_size


class _BatchNorm(Module):
    """Normalizes each channel over (N, *spatial).  Buffers running_mean, running_var and
    num_batches_tracked (state-dict names as PyTorch); momentum=None is a cumulative average."""
    expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        num_features = check_size(type(self).__name__, 'num_features', num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dev = device or 'cpu'
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype, device=dev))
            self.bias = Parameter(zeros(num_features, dtype=dtype, device=dev))
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)
        if track_running_stats:
            self.register_buffer('running_mean', zeros(num_features, dtype=dtype, device=dev))
            self.register_buffer('running_var', ones(num_features, dtype=dtype, device=dev))
            self.register_buffer('num_batches_tracked', tensor(0, dtype=dtypes.int64, device=dev))
        else:
            self.register_buffer('running_mean', None)
            self.register_buffer('running_var', None)
            self.register_buffer('num_batches_tracked', None)

    def reset_running_stats(self):
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        if input.ndim not in self.expected_dims:
            raise ValueError(f"{type(self).__name__}: expected a "
                             f"{' or '.join(f'{d}D' for d in self.expected_dims)} input, got "
                             f"{input.ndim}D input of shape {tuple(input.shape)}")
        running_mean, running_var, use_batch_stats, factor = self._step_statistics()
        return F.batch_norm(input, running_mean, running_var, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    def _step_statistics(self):
        """One forward's (running_mean, running_var, use_batch_stats, momentum factor), counting
        the batch in num_batches_tracked when training: PyTorch's rules (momentum None is a
        cumulative moving average; without tracked statistics the batch's are used, also in
        eval)."""
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:          # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return (self.running_mean if track else None, self.running_var if track else None,
                use_batch_stats, factor)

    def extra_repr(self):
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, '
                f'track_running_stats={self.track_running_stats}')


class BatchNorm1d(_BatchNorm):
    """Input (N, C) or (N, C, L)."""
    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Input (N, C, H, W)."""
    expected_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Input (N, C, T, H, W)."""
    expected_dims = (5,)


class LayerNorm(Module):
    """Normalizes over the last len(normalized_shape) dims; weight ones, bias zeros."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = check_size('LayerNorm', 'normalized_shape', tuple(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        dev = device or 'cpu'
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape, dtype=dtype, device=dev))
            if bias:
                self.bias = Parameter(zeros(*self.normalized_shape, dtype=dtype, device=dev))
            else:
                self.register_parameter('bias', None)
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f'{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}'


class GroupNorm(Module):
    """Normalizes groups of channels of (N, C, *); per-channel weight ones, bias zeros."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        num_groups = check_size('GroupNorm', 'num_groups', num_groups)
        num_channels = check_size('GroupNorm', 'num_channels', num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        dev = device or 'cpu'
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype, device=dev))
            self.bias = Parameter(zeros(num_channels, dtype=dtype, device=dev))
        else:
            self.register_parameter('weight', None)
            self.register_parameter('bias', None)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f'{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}'

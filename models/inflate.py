"""Inflation: a 3D network made from a 2D one (Carreira & Zisserman 2017, I3D).

    from tensorlite.models import inflate_2d_to_3d
    net3d = inflate_2d_to_3d(net2d, time_kernel=3)     # every Conv2d -> Conv3d (3, kH, kW), ...
    logits = net3d(clips)                              # clips (N, C, T, H, W)

The lesson's idea: a good 2D image network already knows what things look like; to get a video
network that starts from that knowledge, give every 2D filter a time axis by repeating it t times
and dividing by t.  On a "boring video" -- one frame repeated T times -- each inflated filter then
computes exactly what the 2D filter computed on that frame, so the 3D network starts where the 2D
network was and training only has to learn what changes in time.

What is converted (found by walking the module tree generically: Sequential, ModuleList, ModuleDict
and custom Modules holding layers as attributes all work; a layer shared at two places stays
shared):

    Conv2d            -> Conv3d, weight (O, I/g, kH, kW) -> (O, I/g, t, kH, kW) = w / t repeated t
                         times; bias copied; temporal stride `time_stride`, temporal padding t // 2
                         (so T is preserved for odd t and stride 1), temporal dilation 1
    BatchNorm2d       -> BatchNorm3d: weight, bias, running_mean, running_var, num_batches_tracked,
                         eps, momentum, affine, track_running_stats copied
    MaxPool2d         -> MaxPool3d (tp, kH, kW), temporal stride tp, temporal padding 0
    AvgPool2d         -> AvgPool3d likewise (a divisor_override d becomes d * tp)
    AdaptiveAvgPool2d -> AdaptiveAvgPool3d (adaptive_time_size, *output_size)
    AdaptiveMaxPool2d -> AdaptiveMaxPool3d likewise (when tensorlite.nn has AdaptiveMaxPool2d)

with tp = `pool_time_kernel` (1 by default: pools stay spatial, as in I3D's early pools) and
`adaptive_time_size` = 1 by default, so a global pool becomes a global space-time pool and a head
that flattens (N, C, 1, 1) -> (N, C) flattens (N, C, 1, 1, 1) -> (N, C) unchanged.  Every other
module (Linear, ReLU, Dropout, LayerNorm, ...) is copied as it is: elementwise and channel-wise
layers do not care whether the tensor has one more axis.

`time_kernel`, `time_stride` and `pool_time_kernel` are each an int or a callable
`(qualified_name, module_2d) -> int`, where qualified_name is the name in `net2d.named_modules()`
('layer2.0.conv1'); this is how I3D-ResNet-50 chooses 5 for the stem and 3 or 1 per block.

Forward code is not rewritten.  Only modules are replaced, so a custom Module's `forward` must be
"inflation-ready": written in terms of its submodules and of operations that work on 5-D tensors as
well as 4-D ones (`x.flatten(1)` after a global pool is fine; `x.reshape(n, c * h * w)` with h, w
read from a 4-D shape, `x.mean((2, 3))`, or a check `x.ndim == 4` are not).  A functional call
such as `F.max_pool2d(x, 2)` inside a forward is not a module and is not inflated.

Temporal borders, and the boring-video property.  With zero temporal padding ('zeros', the
default, as Carreira & Zisserman and PyTorchVideo's i3d_r50) a border frame of a boring video sees
the zero padding: an inflated t = 3 conv gives (2/3) w * x + b there instead of w * x + b.  The
boring-video property then holds exactly only at frames farther from both ends than the network's
temporal receptive-field radius, and the logits after a global temporal pool differ slightly.
`time_padding_mode='replicate'` pads time by repeating the first and last frames instead; then a
boring video is mapped to a boring video by every layer and the inflated network's logits equal the
2D network's logits exactly, whatever T.  The replicate variant (`ReplicateTimeConv3d`, used for
t > 1) is a Conv3d with the same parameters and state-dict keys; only its temporal padding differs.
"""
import copy

import numpy as np

import tensorlite.functional as F
import tensorlite.nn as nn
from tensorlite.autograd.grad_mode import no_grad

TIME_PADDING_MODES = ('zeros', 'replicate')


class ReplicateTimeConv3d(nn.Conv3d):
    """A Conv3d whose temporal padding repeats the first and last frames instead of adding zeros
    (spatial padding stays zeros).  Same parameters and state-dict keys as nn.Conv3d."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, time_padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias)
        self.time_padding = int(time_padding)

    def forward(self, input):
        x, p = input, self.time_padding
        if p:
            first, last = x[:, :, :1], x[:, :, -1:]          # (N, C, 1, H, W) each
            x = F.cat([first] * p + [x] + [last] * p, dim=2)  # (N, C, T + 2p, H, W)
        return super().forward(x)

    def extra_repr(self):
        return super().extra_repr() + f', time_padding={self.time_padding} (replicate)'


def _per_module(value, name, module, what):
    t = value(name, module) if callable(value) else value
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise ValueError(f"inflate_2d_to_3d: {what} for {name or 'the root module'!r} must be a "
                         f"positive int, got {t!r}")
    return int(t)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def inflate_conv2d(conv, t=3, time_stride=1, time_padding_mode='zeros'):
    """Conv3d (t, kH, kW) from a Conv2d: weight w / t repeated t times along time, bias copied."""
    if time_padding_mode not in TIME_PADDING_MODES:
        raise ValueError(f"inflate_2d_to_3d: time_padding_mode must be one of "
                         f"{TIME_PADDING_MODES}, got {time_padding_mode!r}")
    kernel = (t,) + tuple(conv.kernel_size)
    stride = (time_stride,) + tuple(conv.stride)
    dilation = (1,) + tuple(conv.dilation)
    pt = t // 2
    if isinstance(conv.padding, str):           # 'same' keeps every size at stride 1; 'valid' is 0
        spatial = (0, 0) if conv.padding == 'valid' else None
    else:
        spatial = tuple(conv.padding)
    has_bias = conv.bias is not None
    if time_padding_mode == 'replicate' and pt > 0:
        if spatial is None:
            spatial = tuple((d * (k - 1)) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
        new = ReplicateTimeConv3d(conv.in_channels, conv.out_channels, kernel, stride,
                                  (0,) + spatial, dilation, conv.groups, has_bias, time_padding=pt)
    else:
        padding = 'same' if spatial is None else (pt,) + spatial
        new = nn.Conv3d(conv.in_channels, conv.out_channels, kernel, stride, padding, dilation,
                        conv.groups, has_bias)
    with no_grad():
        w2 = conv.weight.data                                   # (O, I/g, kH, kW)
        w3 = np.repeat(w2[:, :, None], t, axis=2) / t           # (O, I/g, t, kH, kW)
        new.weight.data = w3.astype(w2.dtype)
        if has_bias:
            new.bias.data = conv.bias.data.copy()
    new.train(conv.training)
    new.weight.requires_grad_(conv.weight.requires_grad)
    if has_bias:
        new.bias.requires_grad_(conv.bias.requires_grad)
    return new


def inflate_batch_norm2d(bn):
    """BatchNorm3d with bn's hyper-parameters, affine parameters and running statistics."""
    new = nn.BatchNorm3d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    with no_grad():
        for name in ('weight', 'bias'):
            p = getattr(bn, name)
            if p is not None:
                getattr(new, name).data = p.data.copy()
                getattr(new, name).requires_grad_(p.requires_grad)
        for name in ('running_mean', 'running_var', 'num_batches_tracked'):
            b = getattr(bn, name)
            if b is not None:
                getattr(new, name).data = b.data.copy()
    new.train(bn.training)
    return new


def inflate_pool2d(pool, tp=1):
    """MaxPool3d / AvgPool3d (tp, kH, kW) with temporal stride tp and no temporal padding."""
    kernel = (tp,) + _pair(pool.kernel_size)
    stride = (tp,) + _pair(pool.kernel_size if pool.stride is None else pool.stride)
    padding = (0,) + _pair(pool.padding)
    if isinstance(pool, nn.MaxPool2d):
        new = nn.MaxPool3d(kernel, stride, padding, (1,) + _pair(pool.dilation),
                           pool.return_indices, pool.ceil_mode)
    else:
        divisor = None if pool.divisor_override is None else pool.divisor_override * tp
        new = nn.AvgPool3d(kernel, stride, padding, pool.ceil_mode, pool.count_include_pad, divisor)
    new.train(pool.training)
    return new


def inflate_adaptive_pool2d(pool, adaptive_time_size=1):
    """AdaptiveAvgPool3d / AdaptiveMaxPool3d (adaptive_time_size, *output_size)."""
    out = (adaptive_time_size,) + _pair(pool.output_size)
    if isinstance(pool, nn.AdaptiveAvgPool2d):
        new = nn.AdaptiveAvgPool3d(out)
    else:
        new = nn.AdaptiveMaxPool3d(out, pool.return_indices)
    new.train(pool.training)
    return new


_ADAPTIVE_MAX_2D = getattr(nn, 'AdaptiveMaxPool2d', None)   # not in tensorlite.nn yet
_ADAPTIVE_2D = (nn.AdaptiveAvgPool2d,) + ((_ADAPTIVE_MAX_2D,) if _ADAPTIVE_MAX_2D else ())
INFLATED_TYPES = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d) + _ADAPTIVE_2D


def inflate_2d_to_3d(net2d, time_kernel=3, time_stride=1, pool_time_kernel=1,
                     adaptive_time_size=1, time_padding_mode='zeros'):
    """A new 3D network from the 2D network `net2d` (which is left unchanged).

    Every Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (and AdaptiveMaxPool2d) at
    any depth is replaced by its 3D counterpart (module docstring); everything else is deep-copied.
    time_kernel, time_stride, pool_time_kernel: int, or callable (qualified_name, module_2d) -> int.
    adaptive_time_size: the temporal output size of inflated adaptive pools (None keeps T).
    time_padding_mode: 'zeros' (Carreira & Zisserman, PyTorchVideo) or 'replicate' (a boring video
    gives exactly the 2D network's output at every T).  State-dict keys are net2d's.
    """
    if not isinstance(net2d, nn.Module):
        raise TypeError(f"inflate_2d_to_3d: expected a tensorlite nn.Module, got "
                        f"{type(net2d).__name__}")
    if time_padding_mode not in TIME_PADDING_MODES:
        raise ValueError(f"inflate_2d_to_3d: time_padding_mode must be one of "
                         f"{TIME_PADDING_MODES}, got {time_padding_mode!r}")

    def convert(name, m):
        if isinstance(m, nn.Conv2d):
            return inflate_conv2d(m, _per_module(time_kernel, name, m, 'time_kernel'),
                                  _per_module(time_stride, name, m, 'time_stride'),
                                  time_padding_mode)
        if isinstance(m, nn.BatchNorm2d):
            return inflate_batch_norm2d(m)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return inflate_pool2d(m, _per_module(pool_time_kernel, name, m, 'pool_time_kernel'))
        if isinstance(m, _ADAPTIVE_2D):
            return inflate_adaptive_pool2d(m, adaptive_time_size)
        return None

    # Convert from the original (so callables see net2d's own modules), keyed by identity so a
    # module shared at two places becomes one shared 3D module.
    converted = {}
    for name, m in net2d.named_modules():
        new = convert(name, m)
        if new is not None:
            converted[id(m)] = new
    if id(net2d) in converted:                  # the network is itself a single layer
        return converted[id(net2d)]
    # Deep-copy everything else, with the converted modules standing in for the originals (the
    # memo makes deepcopy return them instead of copying the 2D layers).
    memo = {key: new for key, new in converted.items()}
    return copy.deepcopy(net2d, memo)

"""Conv1d/2d/3d and ConvTranspose1d/2d/3d with PyTorch's arguments, parameter names, shapes and
initialization."""
from .. import functional as F
from ..creation import empty
from . import init
from .module import Module, Parameter, check_size


def _tuple(v, n, name):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name} must be an int or {n} ints, got {tuple(v)}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


class _ConvNd(Module):
    n = None                  # spatial dims
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode='zeros', output_padding=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        in_channels = check_size(name, 'in_channels', in_channels)
        out_channels = check_size(name, 'out_channels', out_channels)
        groups = check_size(name, 'groups', groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if padding_mode != 'zeros':
            raise NotImplementedError(f"{name}: padding_mode {padding_mode!r} is not implemented; "
                                      "only 'zeros' is")
        n = self.n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = check_size(name, 'kernel_size', _tuple(kernel_size, n, 'kernel_size'))
        self.stride = check_size(name, 'stride', _tuple(stride, n, 'stride'))
        self.padding = padding if isinstance(padding, str) else \
            check_size(name, 'padding', _tuple(padding, n, 'padding'), low=0)
        self.dilation = check_size(name, 'dilation', _tuple(dilation, n, 'dilation'))
        self.output_padding = check_size(name, 'output_padding',
                                         _tuple(output_padding, n, 'output_padding'), low=0)
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        dev = device or 'cpu'
        self.weight = Parameter(empty(*shape, dtype=dtype, device=dev))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=dev))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def extra_repr(self):
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'stride={self.stride}')
        if self.padding != (0,) * self.n:
            s += f', padding={self.padding!r}' if isinstance(self.padding, str) else f', padding={self.padding}'
        if self.dilation != (1,) * self.n:
            s += f', dilation={self.dilation}'
        if self.output_padding != (0,) * self.n:
            s += f', output_padding={self.output_padding}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        if self.bias is None:
            s += ', bias=False'
        return s


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode='zeros', device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device=device, dtype=dtype)

    def forward(self, input):
        conv = getattr(F, f'conv{self.n}d')
        return conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    n = 1


class Conv2d(_Conv):
    n = 2


class Conv3d(_Conv):
    """weight (out_channels, in_channels / groups, kT, kH, kW); input (N, C, T, H, W)."""
    n = 3


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros',
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, output_padding, device=device, dtype=dtype)

    def forward(self, input):
        conv_t = getattr(F, f'conv_transpose{self.n}d')
        return conv_t(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                      self.groups, self.dilation)


class ConvTranspose1d(_ConvTranspose):
    n = 1


class ConvTranspose2d(_ConvTranspose):
    n = 2


class ConvTranspose3d(_ConvTranspose):
    """weight (in_channels, out_channels / groups, kT, kH, kW)."""
    n = 3

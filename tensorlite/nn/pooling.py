"""Pooling layers over tensorlite.functional's pooling ops, with PyTorch's arguments."""
from .. import functional as F
from .module import Module, check_size



def _check_window(owner, kernel_size, stride, padding):
    """A pooling window: kernel_size and stride (None: the kernel size) >= 1, padding >= 0."""
    check_size(owner, 'kernel_size', kernel_size)
    if stride is not None:
        check_size(owner, 'stride', stride)
    check_size(owner, 'padding', padding, low=0)

class _MaxPoolNd(Module):
    n = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        _check_window(type(self).__name__, kernel_size, stride, padding)
        check_size(type(self).__name__, 'dilation', dilation)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input):
        return getattr(F, f'max_pool{self.n}d')(input, self.kernel_size, self.stride, self.padding,
                                                self.dilation, ceil_mode=self.ceil_mode,
                                                return_indices=self.return_indices)

    def extra_repr(self):
        return (f'kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, '
                f'padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}')


class MaxPool1d(_MaxPoolNd):
    n = 1


class MaxPool2d(_MaxPoolNd):
    n = 2


class MaxPool3d(_MaxPoolNd):
    n = 3


class _AvgPoolNd(Module):
    n = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        _check_window(type(self).__name__, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        kwargs = {} if self.n == 1 else {'divisor_override': self.divisor_override}
        return getattr(F, f'avg_pool{self.n}d')(input, self.kernel_size, self.stride, self.padding,
                                                self.ceil_mode, self.count_include_pad, **kwargs)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}'


class AvgPool1d(_AvgPoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    n = 1


class AvgPool2d(_AvgPoolNd):
    n = 2


class AvgPool3d(_AvgPoolNd):
    n = 3


class _AdaptiveAvgPoolNd(Module):
    n = None

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return getattr(F, f'adaptive_avg_pool{self.n}d')(input, self.output_size)

    def extra_repr(self):
        return f'output_size={self.output_size}'


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    n = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    n = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    n = 3


class _AdaptiveMaxPoolNd(Module):
    _fn = None

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input):
        return type(self)._fn(input, self.output_size, self.return_indices)

    def extra_repr(self):
        return f'output_size={self.output_size}'


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    _fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    _fn = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    _fn = staticmethod(F.adaptive_max_pool3d)

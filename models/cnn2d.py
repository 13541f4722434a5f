"""The per-frame 2D CNNs that single-frame, late/early fusion, two-stream and CNN+LSTM are built on.

The lesson's first four ways of handling video all start from an image classifier: a 2D CNN that
maps one picture (N, C, H, W) to a feature vector.  What differs is what they feed it (one frame,
every frame, frames stacked as channels, optical flow) and how they combine the results.  This file
holds that shared image network, `FrameCNN`, in four configurations:

    'tiny'         conv3x3-BN-ReLU-maxpool2 x 3 (widths 8, 16, 32) -> flatten -> fc6 64, ReLU.
                   For 32 x 32 synthetic frames.  Its conv stage ends in a 4 x 4 map that is
                   *flattened*, not globally pooled: the synthetic 'motion' and 'order' families
                   wrap objects around a torus, so a globally pooled feature hardly changes from
                   frame to frame and a recurrent model on top could not see where the object went.
    'karpathy'     the single-frame network of Karpathy et al. 2014 (Large-scale video
                   classification with CNNs), on 170 x 170 crops:
                   C(96,11,3)-N-P-C(256,5,1)-N-P-C(384,3,1)-C(384,3,1)-C(256,3,1)-P-FC(4096)-
                   FC(4096), C(d,f,s) = d filters f x f at stride s, N = LRN, P = 2 x 2 max pooling.
                   The paper gives neither paddings nor the rounding of the pools; assumed here:
                   conv1 unpadded, the 5 x 5 and 3 x 3 convs keep the size (pad 2, pad 1), pools
                   floor (PyTorch's default), dropout 0.5 after fc6/fc7 (Krizhevsky's), LRN(5, 1e-4,
                   0.75, k=2): 170 -> 54 -> 27 -> 27 -> 13 -> 13 -> 6, fc6 reads 256 * 6 * 6 = 9216.
    'cnn_m_2048'   CNN-M-2048 (Chatfield et al. 2014), each stream of Simonyan & Zisserman's
                   two-stream network, on 224 x 224: conv1 96@7x7/2 -> LRN -> pool; conv2 256@5x5/2
                   pad 1 -> LRN -> pool; conv3/4/5 512@3x3 pad 1 -> pool; fc6 4096; fc7 2048, with
                   Caffe's ceil-mode 3x3/2 max pools (224 -> 109 -> 54 -> 26 -> 13 -> 6, fc6 reads
                   18,432).  The temporal stream drops the second LRN (`norm2=False`).  LRN(5, 5e-4,
                   0.75, k=2), the VGG_CNN_M_2048 deploy prototxt's values as recalled (not checked
                   against the file; LRN has no parameters, so the counts do not depend on it).
    'caffenet_zf'  LRCN's "hybrid CaffeNet/ZF" (Donahue et al., lisa-caffe-public
                   train_test_lstm_RGB.prototxt), on 227 x 227: conv1 96@7x7/2 -> pool -> LRN;
                   conv2 384@5x5/2 group 2 -> pool -> LRN; conv3 512@3x3 pad 1; conv4 512 group 2;
                   conv5 384 group 2 -> pool; fc6 4096, ReLU, dropout 0.9.  Ceil-mode pools:
                   227 -> 111 -> 55 -> 26 -> 13 -> 13 -> 6, fc6 reads 13,824.  LRN(5, 1e-4, 0.75).

Names.  Every layer is a direct child named as in the reference Caffe prototxts (conv1, relu1,
norm1, pool1, ..., fc6, relu6, drop6, fc7, ...; the tiny net adds bn1...), so the state-dict keys
are `conv1.weight`, `fc6.bias`, ... -- what a Caffe-to-PyTorch conversion of those models gives --
and every model that holds a FrameCNN as `cnn` has keys `cnn.conv1.weight`, ...
"""
import math
import numbers

import numpy as np

import tensorlite.nn as nn
import tensorlite.random as tl_random
from tensorlite.nn.local_response_norm import LocalResponseNorm

ARCHS = ('tiny', 'karpathy', 'cnn_m_2048', 'caffenet_zf')


class FrameCNN(nn.Module):
    """A 2D CNN on single images: conv stage -> flatten -> fc stage.

    forward(x): x (N, C, H, W) with H = W = input_size -> (N, out_dim).
    forward_features(x): the conv stage, flattened: (N, feature_dim), feature_dim = C' h w.
    forward_fc(z): the fc stage on (N, fc_in_features) -> (N, out_dim).  fc_in_features is
        feature_dim, or a multiple of it when the model feeds the fc stage several frames'
        features side by side (late fusion by concatenation).

    Built by `frame_cnn(arch, ...)`; the layers are direct children (see the module docstring).
    """

    def __init__(self, conv_layers, fc_layers, in_channels, input_size, feature_shape, out_dim):
        super().__init__()
        for name, layer in list(conv_layers) + list(fc_layers):
            self.add_module(name, layer)
        self.conv_names = tuple(name for name, _ in conv_layers)
        self.fc_names = tuple(name for name, _ in fc_layers)
        self.in_channels, self.input_size = in_channels, input_size
        self.feature_shape = tuple(feature_shape)               # (C', h, w) after the conv stage
        self.feature_dim = math.prod(feature_shape)
        self.out_dim = out_dim

    def forward_features(self, x):
        for name in self.conv_names:
            x = getattr(self, name)(x)
        return x.reshape(x.shape[0], -1)                        # (N, C' h w)

    def forward_fc(self, z):
        for name in self.fc_names:
            z = getattr(self, name)(z)
        return z

    def forward(self, x):
        return self.forward_fc(self.forward_features(x))


# ---- the four configurations ---------------------------------------------------------------------


def _relu():
    # in place: the output overwrites the conv's (Conv saves its input, not its output), which
    # saves an allocation and an activation's memory per layer
    return nn.ReLU(inplace=True)

def _tiny_conv(in_channels, widths=(8, 16, 32), batch_norm=True):
    layers, c = [], in_channels
    for i, w in enumerate(widths, start=1):
        layers.append((f'conv{i}', nn.Conv2d(c, w, 3, padding=1)))
        if batch_norm:
            layers.append((f'bn{i}', nn.BatchNorm2d(w)))
        layers += [(f'relu{i}', _relu()), (f'pool{i}', nn.MaxPool2d(2))]
        c = w
    return layers


def _karpathy_conv(in_channels):
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    return [('conv1', nn.Conv2d(in_channels, 96, 11, stride=3)), ('relu1', _relu()),
            ('norm1', LocalResponseNorm(**lrn)), ('pool1', nn.MaxPool2d(2)),
            ('conv2', nn.Conv2d(96, 256, 5, padding=2)), ('relu2', _relu()),
            ('norm2', LocalResponseNorm(**lrn)), ('pool2', nn.MaxPool2d(2)),
            ('conv3', nn.Conv2d(256, 384, 3, padding=1)), ('relu3', _relu()),
            ('conv4', nn.Conv2d(384, 384, 3, padding=1)), ('relu4', _relu()),
            ('conv5', nn.Conv2d(384, 256, 3, padding=1)), ('relu5', _relu()),
            ('pool5', nn.MaxPool2d(2))]


def _cnn_m_2048_conv(in_channels, norm2=True):
    lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
    layers = [('conv1', nn.Conv2d(in_channels, 96, 7, stride=2)), ('relu1', _relu()),
              ('norm1', LocalResponseNorm(**lrn)), ('pool1', nn.MaxPool2d(3, 2, ceil_mode=True)),
              ('conv2', nn.Conv2d(96, 256, 5, stride=2, padding=1)), ('relu2', _relu())]
    if norm2:
        layers.append(('norm2', LocalResponseNorm(**lrn)))
    return layers + [('pool2', nn.MaxPool2d(3, 2, ceil_mode=True)),
                     ('conv3', nn.Conv2d(256, 512, 3, padding=1)), ('relu3', _relu()),
                     ('conv4', nn.Conv2d(512, 512, 3, padding=1)), ('relu4', _relu()),
                     ('conv5', nn.Conv2d(512, 512, 3, padding=1)), ('relu5', _relu()),
                     ('pool5', nn.MaxPool2d(3, 2, ceil_mode=True))]


def _caffenet_zf_conv(in_channels):
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
    return [('conv1', nn.Conv2d(in_channels, 96, 7, stride=2)), ('relu1', _relu()),
            ('pool1', nn.MaxPool2d(3, 2, ceil_mode=True)), ('norm1', LocalResponseNorm(**lrn)),
            ('conv2', nn.Conv2d(96, 384, 5, stride=2, groups=2)), ('relu2', _relu()),
            ('pool2', nn.MaxPool2d(3, 2, ceil_mode=True)), ('norm2', LocalResponseNorm(**lrn)),
            ('conv3', nn.Conv2d(384, 512, 3, padding=1)), ('relu3', _relu()),
            ('conv4', nn.Conv2d(512, 512, 3, padding=1, groups=2)), ('relu4', _relu()),
            ('conv5', nn.Conv2d(512, 384, 3, padding=1, groups=2)), ('relu5', _relu()),
            ('pool5', nn.MaxPool2d(3, 2, ceil_mode=True))]


def _fc_stage(in_features, dims, dropout):
    """fc6, relu6[, drop6], fc7, relu7[, drop7], ... with Caffe's numbering from 6."""
    layers, d = [], in_features
    for i, width in enumerate(dims, start=6):
        layers += [(f'fc{i}', nn.Linear(d, width)), (f'relu{i}', _relu())]
        if dropout:
            layers.append((f'drop{i}', nn.Dropout(dropout)))
        d = width
    return layers, d


_DEFAULTS = {
    'tiny': dict(input_size=32, fc_dims=(64,), dropout=0.0),
    'karpathy': dict(input_size=170, fc_dims=(4096, 4096), dropout=0.5),
    'cnn_m_2048': dict(input_size=224, fc_dims=(4096, 2048), dropout=0.5),
    'caffenet_zf': dict(input_size=227, fc_dims=(4096,), dropout=0.9),
}


def frame_cnn(arch, in_channels=3, input_size=None, fc_dims=None, dropout=None, fc_inputs=1,
              **conv_options):
    """A FrameCNN in configuration `arch` (one of ARCHS) for `in_channels`-channel images of
    input_size x input_size.  fc_dims: widths of fc6, fc7, ...; dropout after each (0 = none);
    fc_inputs: how many frames' conv features fc6 reads side by side (late fusion by
    concatenation), 1 otherwise.  conv_options: 'tiny' takes widths=(8, 16, 32) and
    batch_norm=True; 'cnn_m_2048' takes norm2=True (False for the temporal stream)."""
    if arch not in ARCHS:
        raise ValueError(f"frame_cnn: arch must be one of {ARCHS}, got {arch!r}")
    defaults = _DEFAULTS[arch]
    input_size = defaults['input_size'] if input_size is None else input_size
    fc_dims = tuple(defaults['fc_dims'] if fc_dims is None else fc_dims)
    dropout = defaults['dropout'] if dropout is None else dropout
    conv = {'tiny': _tiny_conv, 'karpathy': _karpathy_conv, 'cnn_m_2048': _cnn_m_2048_conv,
            'caffenet_zf': _caffenet_zf_conv}[arch](in_channels, **conv_options)
    feature_shape = conv_output_shape(conv, in_channels, input_size)
    fc, out_dim = _fc_stage(fc_inputs * math.prod(feature_shape), fc_dims, dropout)
    return FrameCNN(conv, fc, in_channels, input_size, feature_shape, out_dim)


# ---- shapes --------------------------------------------------------------------------------------

def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _window_count(n, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Output length of a conv or pool along one axis (PyTorch's rule, ceil_mode included)."""
    span = dilation * (kernel - 1) + 1
    out = (n + 2 * padding - span + ((stride - 1) if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


def conv_output_shape(layers, in_channels, size):
    """(C, h, w) after the (name, layer) list on (in_channels, size, size) images, worked out from
    the layers' arguments (no forward pass).  Raises ValueError if the images are too small."""
    c, hw = in_channels, (size, size)
    for name, layer in layers:
        if isinstance(layer, nn.Conv2d):
            c = layer.out_channels
            hw = tuple(_window_count(n, k, s, p, d) for n, k, s, p, d in zip(
                hw, layer.kernel_size, layer.stride, layer.padding, layer.dilation))
        elif isinstance(layer, nn.MaxPool2d):
            k = _pair(layer.kernel_size)
            s = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
            p, d = _pair(layer.padding), _pair(layer.dilation)
            hw = tuple(_window_count(n, *a, ceil_mode=layer.ceil_mode)
                       for n, *a in zip(hw, k, s, p, d))
        if min(hw) < 1:
            raise ValueError(f"frame_cnn: {size} x {size} images are too small: nothing is left "
                             f"after {name}")
    return (c,) + hw


# ---- what the models share -----------------------------------------------------------------------

def pick_frame(model, x, index, training):
    """One frame per clip: x (N, C, T, H, W) -> (N, C, H, W).

    index None: the middle frame T // 2 in evaluation, and in training an independent random
    frame per clip, drawn from tensorlite's generator (tl.manual_seed makes it reproducible).
    index an int in [-T, T): that frame, in both modes."""
    N, T = x.shape[0], x.shape[2]
    if index is None:
        if not training:
            return x[:, :, T // 2]                              # (N, C, H, W)
        chosen = tl_random.generator().integers(0, T, size=N)
        return x[np.arange(N), :, chosen]                       # (N, C, H, W): frame chosen[n]
    if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not -T <= index < T:
        raise ValueError(f"{model}: frame must be None or an int in [-{T}, {T}) for clips of "
                         f"{T} frames, got {index!r}")
    return x[:, :, int(index)]                                  # (N, C, H, W)


__all__ = ['ARCHS', 'FrameCNN', 'frame_cnn', 'conv_output_shape', 'pick_frame']

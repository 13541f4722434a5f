"""C3D (Tran et al. 2015): eight 3x3x3 convolutions over space AND time, five max pools, two FC.

    from tensorlite.models import build_model
    net = build_model('c3d', num_classes=101, preset='paper')   # 16 x 112 x 112 clips, 78,409,573

The lesson's idea: make the convolution itself 3D.  Each filter is 3 (time) x 3 x 3 (space) x C_in,
slides over time as well as space, and so sees motion at every layer -- at about 3x the weights and
the multiply-adds of the 3x3 2D filter (81 weights against 27 on RGB).

Layout (the paper preset is MMAction2's C3D backbone + I3DHead with spatial_type=None,
../shared/REFERENCES.md section 1); every conv is 3x3x3, stride 1, padding 1, with bias, then ReLU:

    (N, 3, 16, 112, 112) conv1a 64  -> pool1 max 1x2x2 (space only)   -> (N, 64, 16, 56, 56)
                         conv2a 128 -> pool2 max 2x2x2                -> (N, 128, 8, 28, 28)
                         conv3a/b 256 -> pool3 2x2x2                  -> (N, 256, 4, 14, 14)
                         conv4a/b 512 -> pool4 2x2x2                  -> (N, 512, 2, 7, 7)
                         conv5a/b 512 -> pool5 2x2x2, padding (0,1,1) -> (N, 512, 1, 4, 4)
    flatten (N, 8192) -> fc6 4096, ReLU, dropout 0.5 -> fc7 4096, ReLU -> dropout 0.5 -> fc_cls

pool5's spatial padding reproduces Caffe's ceil-mode pooling (7 -> 4).  The tiny preset keeps this
layout with widths 8, 16, 32, 32, 32, 32, 32, 32 and fc 128 on 16 x 32 x 32 clips, and adds
BatchNorm after every conv (MMAction2's norm_cfg option; the paper's C3D has none):
(N, 3, 16, 32, 32) -> pool1 (16, 16, 16) -> pool2 (8, 8, 8) -> pool3 (4, 4, 4) -> pool4 (2, 2, 2)
-> pool5 (1, 2, 2) -> flatten (N, 32 * 4).

Because the network flattens the pool5 volume into fc6, T, H and W are fixed by the preset (the
`frames` and `size` it is built for: paper 16 x 112 x 112, tiny 16 x 32 x 32; others via overrides
`frames=`, `size=`); any other clip size is a ValueError naming the expected shape.  The four
2x2x2 pools need at least 16 frames; with `clamp_time_pools=True` a pool that receives a single
frame pools space only (1x2x2), so 4- and 8-frame clips fit (tensorlite.experiments' 'frames'
trains C3D on 4, 8 and 16 frames; at 16 frames nothing changes).

What it sees in time: each conv sees 3 frames and pool2..pool5 halve T, so the receptive field
covers the whole 16-frame clip by conv5 and fc6 sees where in time (which of the pool5 cells)
things happened -- it can tell an event from its reverse.  pool1 keeps all 16 frames so that early
motion is not merged away.

State-dict keys are MMAction2's: `conv1a.conv.weight` (its ConvModule wraps the Conv3d as `.conv`),
`fc6.weight`, `fc7.weight`; the head's `fc_cls` is MMAction2's `cls_head.fc_cls`.  A MMAction2
checkpoint maps by dropping the `backbone.` and `cls_head.` prefixes.
"""
import tensorlite.nn as nn

from ._common import check_clip
from .registry import register_model

C3D_CONVS = ('conv1a', 'conv2a', 'conv3a', 'conv3b', 'conv4a', 'conv4b', 'conv5a', 'conv5b')

C3D_PRESETS = {
    'paper': dict(widths=(64, 128, 256, 256, 512, 512, 512, 512), fc_width=4096, frames=16,
                  size=112),
    # tiny: BatchNorm after every conv and no dropout.  Without BatchNorm the 8-layer plain net
    # stays at chance on the 'order' family after 64 Adam steps of 32 clips, and with it reaches
    # 93 % (docs/training.md, "What it takes to learn `order`").
    'tiny': dict(widths=(8, 16, 32, 32, 32, 32, 32, 32), fc_width=128, frames=16, size=32,
                 batch_norm=True, dropout=0.0),
}


def _pooled(n, kernel, stride, padding):
    return (n + 2 * padding - kernel) // stride + 1


class ConvModule(nn.Module):
    """Conv3d 3x3x3 (stride 1, padding 1) then, with batch_norm, BatchNorm3d, then ReLU; named as
    mmcv's ConvModule (`conv`, `bn`, `activate`) so the state-dict keys are MMAction2's (its C3D
    takes norm_cfg=dict(type='BN3d') for the BatchNorm variant; the conv keeps its bias, as
    MMAction2's C3D sets bias=True explicitly).
    (N, C_in, T, H, W) -> (N, C_out, T, H, W)."""

    def __init__(self, in_channels, out_channels, batch_norm=False):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm3d(out_channels) if batch_norm else None
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.activate(x)


class C3D(nn.Module):
    """C3D for clips (N, in_channels, frames, size, size) -> logits (N, num_classes)."""

    def __init__(self, num_classes, widths=(64, 128, 256, 256, 512, 512, 512, 512), fc_width=4096,
                 frames=16, size=112, in_channels=3, dropout=0.5, batch_norm=False,
                 clamp_time_pools=False):
        super().__init__()
        if len(widths) != 8:
            raise ValueError(f"C3D: widths must have 8 entries (conv1a..conv5b), got "
                             f"{tuple(widths)}")
        self.in_channels, self.frames, self.size = in_channels, frames, size
        # The pool geometry, as (kernel, stride, padding) per (time, space); pool1 is spatial only.
        pools = [((1, 2, 2), (1, 2, 2), (0, 0, 0))] + [((2, 2, 2), (2, 2, 2), (0, 0, 0))] * 3 \
            + [((2, 2, 2), (2, 2, 2), (0, 1, 1))]
        t, h = frames, size
        for i, (k, s, p) in enumerate(pools):
            if clamp_time_pools and t < k[0]:          # one frame left: pool space only
                k, s, p = (1,) + k[1:], (1,) + s[1:], (0,) + p[1:]
                pools[i] = (k, s, p)
            t, h = _pooled(t, k[0], s[0], p[0]), _pooled(h, k[1], s[1], p[1])
            if t < 1 or h < 1:
                raise ValueError(f"C3D: a clip of {frames} x {size} x {size} is too small for the "
                                 f"five pools (pool{i + 1} would have no output); frames must be "
                                 f">= 16 (or clamp_time_pools=True) and size >= 16")
        self.pool5_shape = (widths[-1], t, h, h)          # (C, T', H', W') flattened into fc6
        c = in_channels
        convs = iter(zip(C3D_CONVS, widths))
        for stage, n_convs in enumerate((1, 1, 2, 2, 2)):
            for _ in range(n_convs):
                name, width = next(convs)
                setattr(self, name, ConvModule(c, width, batch_norm))
                c = width
            k, s, p = pools[stage]
            setattr(self, f'pool{stage + 1}', nn.MaxPool3d(k, stride=s, padding=p))
        self.fc6 = nn.Linear(widths[-1] * t * h * h, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.head_dropout = nn.Dropout(dropout)
        self.fc_cls = nn.Linear(fc_width, num_classes)
        for m in self.modules():                  # MMAction2's init_weights for the convs
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def forward(self, x):
        check_clip('c3d', x, channels=self.in_channels, frames=self.frames)
        if tuple(x.shape[3:]) != (self.size, self.size):
            raise ValueError(f"c3d: this model is built for {self.size}x{self.size} frames (fc6 "
                             f"flattens the pool5 volume), input (N, {self.in_channels}, "
                             f"{self.frames}, {self.size}, {self.size}), got shape "
                             f"{tuple(x.shape)}")
        x = self.pool1(self.conv1a(x))                     # (N, c1, T, H/2, W/2)
        x = self.pool2(self.conv2a(x))                     # (N, c2, T/2, H/4, W/4)
        x = self.pool3(self.conv3b(self.conv3a(x)))        # (N, c3, T/4, H/8, W/8)
        x = self.pool4(self.conv4b(self.conv4a(x)))        # (N, c4, T/8, H/16, W/16)
        x = self.pool5(self.conv5b(self.conv5a(x)))        # (N, c5, T/16, H//32 + 1, W//32 + 1)
        x = x.flatten(1)                                   # (N, c5 * T' * H' * W')
        x = self.dropout(self.relu(self.fc6(x)))           # (N, fc)
        x = self.relu(self.fc7(x))                         # (N, fc)
        return self.fc_cls(self.head_dropout(x))           # (N, num_classes)


def c3d_clip(frames, size):
    """C3D's arguments for clips of `frames` x size x size: fc6 reads the pool5 volume, so both are
    fixed; below 16 frames a time pool that gets one frame pools space only (clamp_time_pools)."""
    return {'frames': frames, 'size': size, **({'clamp_time_pools': True} if frames < 16 else {})}


@register_model('c3d', paper_num_classes=101, paper_clip=(16, 112), clip_arguments=c3d_clip)
def c3d(num_classes, preset='tiny', **overrides):
    """C3D: 'paper' = MMAction2's C3D on 16 x 112 x 112 (78,409,573 parameters with 101 classes);
    'tiny' = the same layout, widths 8..32 and fc 128, on 16 x 32 x 32, with BatchNorm after every
    conv and no dropout (see C3D_PRESETS).  Overrides are C3D's arguments (widths=, fc_width=,
    frames=, size=, dropout=, batch_norm=, clamp_time_pools=)."""
    return C3D(num_classes, **{**C3D_PRESETS[preset], **overrides})

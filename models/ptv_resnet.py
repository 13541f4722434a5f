"""PyTorchVideo's hub ResNets as their source builds and names them: i3d_r50, slow_r50, c2d_r50.

    from tensorlite.models import build_model, convert_state_dict
    net = build_model('i3d_r50', num_classes=400, preset='paper')     # 28,043,472 parameters
    net.load_state_dict(convert_state_dict('pytorchvideo', 'i3d_r50', hub_state_dict))

The lesson's idea: three reference points of one 3D ResNet-50, differing only in where the
network looks across time (all three are PyTorchVideo's `create_resnet`, 8 x 8 Kinetics setting,
../shared/REFERENCES.md section 2 and its "Bonus" line):

    model      stem conv   conv_a temporal kernels res2 | res3 | res4 | res5     pool after res2
    i3d_r50    5 x 7 x 7   3,3,3 | 3,1,3,1 | 3,1,3,1,3,1 | 1,3,1                max 2 x 1 x 1
    slow_r50   1 x 7 x 7   1     | 1       | 3           | 3                     none
    c2d_r50    1 x 7 x 7   1     | 1       | 1           | 1                     max 2 x 1 x 1

Every other conv (conv_b 1 x 3 x 3 with the spatial stride 2 in the first block of res3, res4,
res5; conv_c and the shortcut 1 x 1 x 1) is the same; blocks (3, 4, 6, 3), bottleneck widths 64,
128, 256, 512 (x4 out), stem 64 channels with max pool 1 x 3 x 3 stride (1, 2, 2).  Head: global
average pool, dropout 0.5, fc.

Shapes (paper, 8 x 224 x 224, the hub's reference input for all three):

    i3d_r50 / c2d_r50:  (N, 3, 8, 224, 224) -> stem (N, 64, 8, 56, 56) -> res2 (N, 256, 8, 56, 56)
        -> pool (N, 256, 4, 56, 56) -> res3 (N, 512, 4, 28, 28) -> res4 (N, 1024, 4, 14, 14)
        -> res5 (N, 2048, 4, 7, 7) -> pool (N, 2048, 1, 1, 1) -> fc (N, 400)
    slow_r50:  the same without the time pool: T = 8 to res5 (N, 2048, 8, 7, 7).

    parameters with 400 classes: i3d_r50 28,043,472, slow_r50 32,454,096, c2d_r50 24,327,632.

The tiny presets keep each layout on 16 x 32 x 32 clips with one block per stage, stem 8 with a
(5 | 1) x 3 x 3 kernel, widths 4, 8, 16, 32 (x4) and no dropout, as 'i3d''s tiny preset (one block
per stage takes the first kernel of each stage's cycle: i3d_r50 3, 3, 3, 1).

What each sees in time: i3d_r50 has temporal kernels from the stem on, so its receptive field
covers the 8 frames early and its late layers can model motion and order.  slow_r50 (the SlowFast
paper's Slow-only baseline) is per-frame until res4 and then sees 3 frames per conv, at full frame
rate (no time pool).  c2d_r50 is a 2D ResNet-50 run on every frame: no conv mixes frames, only the
max pool after res2 (the larger of two neighbouring frames) and the head's average over time do:
it cannot tell a clip of an even number of frames from its reverse (the max pool gets the same
pairs).  All three average over
time in the head: a decision about the clip as a whole.

State-dict keys are PyTorchVideo's, so a hub checkpoint (its "model_state") loads with no renaming
(convert_state_dict('pytorchvideo', 'i3d_r50', sd)):
    blocks.0.conv / blocks.0.norm                                   the stem
    blocks.{1,3,4,5}.res_blocks.{b}.branch1_conv / branch1_norm     shortcut (block 0), res2..res5
    blocks.{1,3,4,5}.res_blocks.{b}.branch2.conv_a / norm_a / conv_b / norm_b / conv_c / norm_c
    blocks.2                                                        the time pool (no parameters)
    blocks.6.proj                                                   the fc
slow_r50 has no time pool, so its res3..res5 are blocks.2..4 and its fc blocks.5.proj.  The blocks
are models/slowfast.py's (one pathway of SlowFast).  The 'i3d' model keeps torchvision's 2D ResNet
names so that ImageNet weights inflate into it (models/i3d.py); an i3d_r50 checkpoint also loads
there, renamed (convert_state_dict('pytorchvideo', 'i3d', sd)).

Differences from PyTorchVideo: the head's average pool is adaptive (PyTorchVideo fixes its kernel
at 4 x 7 x 7, slow_r50 8 x 7 x 7, the reference input's res5 output), so any clip works, and it
pools before the fc (PyTorchVideo applies the fc at every position and then averages: the same
linear map, equal to rounding).
"""
import tensorlite.nn as nn

from ._common import check_clip
from .convert import register_conversion
from .registry import register_model
from .slowfast import _Head, _ResStage, _Stem, init_pytorchvideo_weights

# conv_a temporal kernels per stage (res2..res5), each cycled over the stage's blocks, and the
# stem's temporal kernel and time pool: pytorchvideo/models/hub/resnet.py.
PTV_RESNETS = {
    'i3d_r50': dict(stem_time_kernel=5, block_time_kernels=((3,), (3, 1), (3, 1), (1, 3)),
                    temporal_pool=2),
    'slow_r50': dict(stem_time_kernel=1, block_time_kernels=((1,), (1,), (3,), (3,)),
                     temporal_pool=None),
    'c2d_r50': dict(stem_time_kernel=1, block_time_kernels=((1,), (1,), (1,), (1,)),
                    temporal_pool=2),
}

PTV_RESNET_PRESETS = {
    'paper': dict(depths=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem_width=64,
                  stem_spatial_kernel=7, dropout=0.5),
    # tiny: i3d's tiny sizes (a 3 x 3 stem: a 7 x 7 one on 16 frames of 32^2 would be most of the
    # multiply-adds), no dropout
    'tiny': dict(depths=(1, 1, 1, 1), widths=(4, 8, 16, 32), stem_width=8, stem_spatial_kernel=3,
                 dropout=0.0),
}


class _PooledHead(_Head):
    """(N, C, T, H, W) -> global average pool (N, C, 1, 1, 1) -> flatten, dropout, proj
    (N, num_classes).  PyTorchVideo's ResNetBasicHead with an adaptive pool."""

    def __init__(self, in_features, num_classes, dropout):
        super().__init__(in_features, num_classes, dropout)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        return super().forward(self.pool(x))


class PyTorchVideoResNet(nn.Module):
    """PyTorchVideo's create_resnet with bottleneck blocks: stem, res2, [time pool], res3..res5,
    head, as `blocks`.  Input (N, in_channels, T, H, W), T >= temporal_pool; output
    (N, num_classes).

    name                 the model's name in error messages
    depths, widths       blocks and bottleneck inner widths of res2..res5 (outputs x 4)
    stem_width, stem_time_kernel, stem_spatial_kernel   the stem conv
    block_time_kernels   conv_a temporal kernel of res2..res5, each an int or a cycled sequence
    temporal_pool        the max pool's kernel and stride in time after res2, or None
    """
    expansion = 4

    def __init__(self, num_classes, name='ptv_resnet', depths=(3, 4, 6, 3),
                 widths=(64, 128, 256, 512), stem_width=64, stem_time_kernel=5,
                 stem_spatial_kernel=7, block_time_kernels=((3,), (3, 1), (3, 1), (1, 3)),
                 temporal_pool=2, dropout=0.5, in_channels=3):
        super().__init__()
        for what, v in (('depths', depths), ('widths', widths),
                        ('block_time_kernels', block_time_kernels)):
            if len(v) != 4:
                raise ValueError(f"{name}: {what} must have 4 entries (res2..res5), got {tuple(v)}")
        self.name, self.in_channels, self.temporal_pool = name, in_channels, temporal_pool
        blocks = [_Stem(in_channels, stem_width, stem_time_kernel, stem_spatial_kernel)]
        channels = stem_width
        for i in range(4):
            out = widths[i] * self.expansion
            blocks.append(_ResStage(depths[i], channels, widths[i], out, block_time_kernels[i],
                                    1 if i == 0 else 2))
            channels = out
            if i == 0 and temporal_pool is not None:
                blocks.append(nn.MaxPool3d((temporal_pool, 1, 1), stride=(temporal_pool, 1, 1)))
        self.num_features = channels
        blocks.append(_PooledHead(channels, num_classes, dropout))
        self.blocks = nn.ModuleList(blocks)
        init_pytorchvideo_weights(self)

    def features(self, x):
        """(N, C, T, H, W) -> (N, 4 w4, T', H/32, W/32), T' = T / temporal_pool (or T)."""
        for block in self.blocks[:-1]:      # stem, res2, [time pool], res3, res4, res5
            x = block(x)
        return x

    def forward(self, x):
        check_clip(self.name, x, channels=self.in_channels)
        if self.temporal_pool is not None and x.shape[2] < self.temporal_pool:
            raise ValueError(f"{self.name}: needs at least {self.temporal_pool} frames (temporal "
                             f"max pool {self.temporal_pool}x1x1 after res2), input "
                             f"(N, {self.in_channels}, T>={self.temporal_pool}, H, W), got shape "
                             f"{tuple(x.shape)}")
        return self.blocks[-1](self.features(x))        # (N, num_classes)


def _build(name, num_classes, preset, overrides):
    return PyTorchVideoResNet(num_classes, name=name, **{**PTV_RESNETS[name],
                                                          **PTV_RESNET_PRESETS[preset],
                                                          **overrides})


@register_model('i3d_r50', paper_num_classes=400, paper_clip=(8, 224))    # any clip: adaptive pool
def i3d_r50(num_classes, preset='tiny', **overrides):
    """PyTorchVideo hub's i3d_r50 (28,043,472 parameters with 400 classes, its keys); overrides are
    PyTorchVideoResNet's arguments."""
    return _build('i3d_r50', num_classes, preset, overrides)


@register_model('slow_r50', paper_num_classes=400, paper_clip=(8, 224))
def slow_r50(num_classes, preset='tiny', **overrides):
    """PyTorchVideo hub's slow_r50, SlowFast's Slow-only 8x8 (32,454,096 parameters with 400
    classes, its keys); overrides are PyTorchVideoResNet's arguments."""
    return _build('slow_r50', num_classes, preset, overrides)


@register_model('c2d_r50', paper_num_classes=400, paper_clip=(8, 224))
def c2d_r50(num_classes, preset='tiny', **overrides):
    """PyTorchVideo hub's c2d_r50, a per-frame ResNet-50 with one time pool (24,327,632 parameters
    with 400 classes, its keys); overrides are PyTorchVideoResNet's arguments."""
    return _build('c2d_r50', num_classes, preset, overrides)


register_conversion('pytorchvideo', 'i3d_r50', head='blocks.6.proj.weight')
register_conversion('pytorchvideo', 'slow_r50', head='blocks.5.proj.weight')
register_conversion('pytorchvideo', 'c2d_r50', head='blocks.6.proj.weight')

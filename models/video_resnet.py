"""torchvision's video ResNets (Tran et al. 2018): R3D-18, MC3-18 and R(2+1)D-18.

    from tensorlite.models import build_model, convert_state_dict
    net = build_model('r3d_18', num_classes=400, preset='paper')   # 16 x 112 x 112, 33,371,472
    net.load_state_dict(convert_state_dict('torchvision', 'r3d_18', torch_state_dict))

The lesson's idea: three ways to put time into the same 18-layer ResNet (two BasicBlocks per stage,
"A Closer Look at Spatiotemporal Convolutions for Action Recognition"), compared at about the
same number of weights:

  r3d_18       every conv a full 3 x 3 x 3 (space AND time), as C3D but residual;
  mc3_18       "mixed convolutions": 3D (3 x 3 x 3) in the stem and layer1 only, then 2D
               (1 x 3 x 3, no temporal kernel, no temporal stride) -- motion is modelled early and
               the late layers reason about appearance frame by frame;
  r2plus1d_18  every 3 x 3 x 3 conv factored into a spatial 1 x 3 x 3 conv to M channels, BN, ReLU,
               then a temporal 3 x 1 x 1 conv: twice the nonlinearities at the same parameter count,
               with M = floor(27 N_in N_out / (9 N_in + 3 N_out)) (the (2+1)D block's own N_in, N_out).

Layout (torchvision/models/video/resnet.py; widths 64, 128, 256, 512; every conv without bias,
each followed by BatchNorm3d; a block is conv1 (BN, ReLU), conv2 (BN), + shortcut, ReLU; the first
block of layer2..4 has stride 2 and a 1 x 1 x 1 conv + BN shortcut `downsample`):

    stem   r3d/mc3: 3 x 7 x 7 conv, stride (1, 2, 2), padding (1, 3, 3), BN, ReLU
           r2plus1d: 1 x 7 x 7 conv to 45 (stride (1, 2, 2)), BN, ReLU, 3 x 1 x 1 conv, BN, ReLU
    layer1..layer4 (2 BasicBlocks each), adaptive average pool to 1 x 1 x 1, flatten, fc.

Shapes (paper, 16 x 112 x 112): (N, 3, 16, 112, 112) -> stem (N, 64, 16, 56, 56) -> layer1
(N, 64, 16, 56, 56) -> layer2 (N, 128, 8, 28, 28) -> layer3 (N, 256, 4, 14, 14) -> layer4
(N, 512, 2, 7, 7) -> avgpool (N, 512, 1, 1, 1) -> flatten (N, 512) -> fc (N, 400).  mc3_18 never
strides in time after layer1: layer2 (N, 128, 16, 28, 28) ... layer4 (N, 512, 16, 7, 7).
Parameters with 400 classes, as torchvision's: r3d_18 33,371,472; mc3_18 11,695,440;
r2plus1d_18 31,505,325.  The tiny preset keeps this layout with widths 4, 8, 16, 32 (the
r2plus1d stem's middle width 3) on 16 x 32 x 32 clips: stem (N, 4, 16, 16, 16) -> ... -> layer4
(N, 32, 2, 2, 2).  The pool is adaptive, so any clip (any T, H, W >= 1) works.

What it sees in time: r3d_18 and r2plus1d_18 widen the temporal receptive field by 2 frames (times
the stride so far) at every conv: 11 frames after layer1, 25 after layer2 -- the whole 16-frame
clip -- so the late layers can model motion and order.  mc3_18 sees 11 frames (the stem and
layer1's four 3D convs) and no more: layer2..4 work on each of the 16 time steps alone.  All three
average over time before fc, so the decision is about the clip as a whole, not about when in it
something happened.

State-dict keys are torchvision's (`stem.0.weight`, `stem.1.running_mean`,
`layer1.0.conv1.0.weight`, `layer1.0.conv1.1.*` (BN), `layer2.0.downsample.0/1`, r2plus1d's
`layer1.0.conv1.0.0/1/3` inside the (2+1)D conv, `fc.weight`, with `num_batches_tracked`), so a
torchvision state dict converts with only its values changed:
`convert_state_dict('torchvision', name, state_dict)` (models/convert.py).
"""
import tensorlite.nn as nn

from ._common import check_clip
from .convert import register_conversion
from .registry import register_model


class Conv3DSimple(nn.Conv3d):
    """A full 3 x 3 x 3 conv (stride s in time and space, padding 1, no bias).
    (N, C_in, T, H, W) -> (N, C_out, ceil(T/s), ceil(H/s), ceil(W/s))."""

    def __init__(self, in_planes, out_planes, midplanes=None, stride=1, padding=1):
        super().__init__(in_planes, out_planes, (3, 3, 3), stride=stride, padding=padding,
                         bias=False)

    @staticmethod
    def get_downsample_stride(stride):
        return stride, stride, stride


class Conv3DNoTemporal(nn.Conv3d):
    """A 2D conv in a 3D network: 1 x 3 x 3, stride (1, s, s), padding (0, 1, 1), no bias.
    (N, C_in, T, H, W) -> (N, C_out, T, ceil(H/s), ceil(W/s))."""

    def __init__(self, in_planes, out_planes, midplanes=None, stride=1, padding=1):
        super().__init__(in_planes, out_planes, (1, 3, 3), stride=(1, stride, stride),
                         padding=(0, padding, padding), bias=False)

    @staticmethod
    def get_downsample_stride(stride):
        return 1, stride, stride


class Conv2Plus1D(nn.Sequential):
    """A (2+1)D conv: 1 x 3 x 3 (stride (1, s, s)) to `midplanes`, BN, ReLU, then 3 x 1 x 1
    (stride (s, 1, 1)); no biases.  (N, C_in, T, H, W) -> (N, M, T, H/s, W/s) ->
    (N, C_out, T/s, H/s, W/s)."""

    def __init__(self, in_planes, out_planes, midplanes, stride=1, padding=1):
        super().__init__(
            nn.Conv3d(in_planes, midplanes, (1, 3, 3), stride=(1, stride, stride),
                      padding=(0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), stride=(stride, 1, 1),
                      padding=(padding, 0, 0), bias=False))

    @staticmethod
    def get_downsample_stride(stride):
        return stride, stride, stride


CONV_BUILDERS = {'3d': Conv3DSimple, 'no_temporal': Conv3DNoTemporal, '2plus1d': Conv2Plus1D}


def midplanes(in_planes, planes):
    """The middle width of a (2+1)D conv replacing a 3 x 3 x 3 conv in_planes -> planes with the
    same number of weights: 27 N_in N_out = M (9 N_in + 3 N_out), rounded down (torchvision
    computes it once per block from the block's in_planes and uses it for both convs)."""
    return (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)


class BasicBlock(nn.Module):
    """conv1 (conv, BN, ReLU) -> conv2 (conv, BN), plus the identity or `downsample` (1 x 1 x 1 conv
    with the conv's stride, BN), ReLU.  (N, C_in, T, H, W) -> (N, planes, T', H/s, W/s), T' = T/s
    unless the conv builder keeps time (Conv3DNoTemporal)."""

    def __init__(self, in_planes, planes, conv_builder, stride=1, downsample=None):
        super().__init__()
        mid = midplanes(in_planes, planes)
        self.conv1 = nn.Sequential(conv_builder(in_planes, planes, mid, stride),
                                   nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        return self.relu(out + residual)


class BasicStem(nn.Sequential):
    """3 x 7 x 7 conv, stride (1, 2, 2), padding (1, 3, 3), BN, ReLU.
    (N, C, T, H, W) -> (N, width, T, H/2, W/2)."""

    def __init__(self, width=64, mid_width=None, in_channels=3):
        super().__init__(
            nn.Conv3d(in_channels, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3),
                      bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True))


class R2Plus1dStem(nn.Sequential):
    """The stem factored as (2+1)D: 1 x 7 x 7 conv to mid_width (stride (1, 2, 2)), BN, ReLU, then
    3 x 1 x 1 conv, BN, ReLU.  (N, C, T, H, W) -> (N, mid, T, H/2, W/2) -> (N, width, T, H/2, W/2).
    torchvision fixes mid_width at 45 (not the midplanes formula, which would give 83)."""

    def __init__(self, width=64, mid_width=45, in_channels=3):
        super().__init__(
            nn.Conv3d(in_channels, mid_width, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3),
                      bias=False),
            nn.BatchNorm3d(mid_width),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_width, width, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0),
                      bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True))


STEMS = {'basic': BasicStem, 'r2plus1d': R2Plus1dStem}


class VideoResNet(nn.Module):
    """torchvision's VideoResNet with BasicBlocks for clips (N, in_channels, T, H, W) -> logits
    (N, num_classes).  convs: one CONV_BUILDERS key per stage; stem: a STEMS key; layers: blocks
    per stage; widths: the stages' widths (the stem's output is widths[0]); stem_mid_width: the
    R(2+1)D stem's middle width."""

    def __init__(self, num_classes, convs=('3d',) * 4, stem='basic', layers=(2, 2, 2, 2),
                 widths=(64, 128, 256, 512), stem_mid_width=45, in_channels=3, name='video_resnet'):
        super().__init__()
        if len(convs) != 4 or len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"VideoResNet: convs, layers and widths must have 4 entries (one per "
                             f"stage), got {tuple(convs)}, {tuple(layers)} and {tuple(widths)}")
        for c in convs:
            if c not in CONV_BUILDERS:
                raise ValueError(f"VideoResNet: a stage's conv must be one of "
                                 f"{', '.join(CONV_BUILDERS)}, got {c!r}")
        if stem not in STEMS:
            raise ValueError(f"VideoResNet: stem must be one of {', '.join(STEMS)}, got {stem!r}")
        self.name, self.in_channels = name, in_channels
        self.stem = STEMS[stem](widths[0], stem_mid_width, in_channels)
        in_planes = widths[0]
        for i, (conv, blocks, planes) in enumerate(zip(convs, layers, widths)):
            builder, stride = CONV_BUILDERS[conv], 1 if i == 0 else 2
            downsample = None
            if stride != 1 or in_planes != planes:
                downsample = nn.Sequential(
                    nn.Conv3d(in_planes, planes, 1, stride=builder.get_downsample_stride(stride),
                              bias=False),
                    nn.BatchNorm3d(planes))
            stage = [BasicBlock(in_planes, planes, builder, stride, downsample)]
            stage += [BasicBlock(planes, planes, builder) for _ in range(1, blocks)]
            setattr(self, f'layer{i + 1}', nn.Sequential(*stage))
            in_planes = planes
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():                  # torchvision's initialization
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x):
        """(N, C, T, H, W) -> (N, w4, T/8, H/16, W/16) (mc3: T): the stem and the four stages."""
        x = self.stem(x)                          # (N, w1, T, H/2, W/2)
        x = self.layer1(x)                        # (N, w1, T, H/2, W/2)
        x = self.layer2(x)                        # (N, w2, T/2, H/4, W/4)   mc3: T
        x = self.layer3(x)                        # (N, w3, T/4, H/8, W/8)   mc3: T
        return self.layer4(x)                     # (N, w4, T/8, H/16, W/16) mc3: T

    def forward(self, x):
        check_clip(self.name, x, channels=self.in_channels)
        x = self.avgpool(self.features(x))        # (N, w4, 1, 1, 1)
        return self.fc(x.flatten(1))              # (N, num_classes)


VIDEO_RESNET_PRESETS = {
    'paper': dict(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), stem_mid_width=45),
    # tiny: torchvision's widths / 16 (the stem's 45 / 16 -> 3), on 16 x 32 x 32 clips
    'tiny': dict(layers=(2, 2, 2, 2), widths=(4, 8, 16, 32), stem_mid_width=3),
}

# (conv builder per stage, stem) of each torchvision model
VIDEO_RESNETS = {
    'r3d_18': (('3d',) * 4, 'basic'),
    'mc3_18': (('3d',) + ('no_temporal',) * 3, 'basic'),
    'r2plus1d_18': (('2plus1d',) * 4, 'r2plus1d'),
}


def _video_resnet(name, num_classes, preset, overrides):
    convs, stem = VIDEO_RESNETS[name]
    return VideoResNet(num_classes, **{'convs': convs, 'stem': stem, 'name': name,
                                       **VIDEO_RESNET_PRESETS[preset], **overrides})


# paper_clip: torchvision's Kinetics-400 weights take 16-frame clips cropped to 112 x 112 (the pool
# is adaptive: any clip works)
@register_model('r3d_18', paper_num_classes=400, paper_clip=(16, 112))
def r3d_18(num_classes, preset='tiny', **overrides):
    """R3D-18: 'paper' = torchvision's r3d_18 (33,371,472 parameters with 400 classes); 'tiny' =
    widths 4, 8, 16, 32.  Overrides are VideoResNet's arguments (layers=, widths=, ...)."""
    return _video_resnet('r3d_18', num_classes, preset, overrides)


@register_model('mc3_18', paper_num_classes=400, paper_clip=(16, 112))
def mc3_18(num_classes, preset='tiny', **overrides):
    """MC3-18: 'paper' = torchvision's mc3_18 (11,695,440 parameters with 400 classes); 'tiny' =
    widths 4, 8, 16, 32.  Overrides are VideoResNet's arguments."""
    return _video_resnet('mc3_18', num_classes, preset, overrides)


@register_model('r2plus1d_18', paper_num_classes=400, paper_clip=(16, 112))
def r2plus1d_18(num_classes, preset='tiny', **overrides):
    """R(2+1)D-18: 'paper' = torchvision's r2plus1d_18 (31,505,325 parameters with 400 classes);
    'tiny' = widths 4, 8, 16, 32 and stem middle width 3.  Overrides are VideoResNet's arguments."""
    return _video_resnet('r2plus1d_18', num_classes, preset, overrides)


for _name in VIDEO_RESNETS:
    register_conversion('torchvision', _name, head='fc.weight')

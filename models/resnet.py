"""A 2D bottleneck ResNet (He et al. 2016), the image network I3D is inflated from.

    from tensorlite.models.resnet import resnet2d
    net = resnet2d(num_classes=1000, preset='resnet50')    # torchvision's resnet50 layout
    logits = net(images)                                   # (N, 3, H, W) -> (N, 1000)

Module names follow torchvision's `resnet50` (conv1, bn1, maxpool, layer1..layer4 of Bottlenecks
with conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/.1, fc), so a torchvision ImageNet state dict
converted to NumPy arrays loads unchanged (`load_state_dict`), and stride 2 sits on the 3x3 conv
(ResNet v1.5, as torchvision and PyTorchVideo).  The only addition is a parameter-free `dropout`
before `fc` (p=0 by default), which I3D's head uses.

The forward is "inflation-ready" (models/inflate.py): it calls only submodules, elementwise ops and
`flatten(1)` after the global pool, so the same code runs on images (N, C, H, W) and, after
`inflate_2d_to_3d`, on clips (N, C, T, H, W).

This is an image model: it is not in the video-model registry.  Presets:
  'resnet50'  blocks (3, 4, 6, 3), stem 64, bottleneck widths 64, 128, 256, 512 (x4 out):
              25,557,032 parameters with 1000 classes, as torchvision's.
  'tiny'      blocks (1, 1, 1, 1), stem 8, widths 4, 8, 16, 32 (x4 out: 16, 32, 64, 128).
"""
import tensorlite.nn as nn

RESNET_PRESETS = {
    'resnet50': dict(layers=(3, 4, 6, 3), stem_width=64, widths=(64, 128, 256, 512)),
    'tiny': dict(layers=(1, 1, 1, 1), stem_width=8, widths=(4, 8, 16, 32)),
}


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand (x4), BN after each conv, ReLU after
    the first two, identity or downsample shortcut added, ReLU.  (N, in, H, W) -> (N, 4w, H/s, W/s).
    """
    expansion = 4

    def __init__(self, in_channels, width, stride=1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet2d(nn.Module):
    """Stem (7x7/2 conv -- stem_kernel -- BN, ReLU, 3x3/2 max pool), four stages of Bottlenecks (stage k > 1 halves
    H and W in its first block), global average pool, dropout, fc.
    (N, 3, H, W) -> stem (N, stem, H/4, W/4) -> layer1 (N, 4 w1, H/4, W/4) -> ... -> layer4
    (N, 4 w4, H/32, W/32) -> avgpool (N, 4 w4, 1, 1) -> flatten (N, 4 w4) -> fc (N, num_classes).
    """

    def __init__(self, num_classes, layers=(3, 4, 6, 3), stem_width=64, widths=(64, 128, 256, 512),
                 in_channels=3, dropout=0.0, stem_kernel=7):
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"ResNet2d: layers and widths must have 4 entries (one per stage), "
                             f"got {tuple(layers)} and {tuple(widths)}")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, stem_width, stem_kernel, stride=2,
                               padding=stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = stem_width
        for i, (blocks, width) in enumerate(zip(layers, widths)):
            stage = []
            for b in range(blocks):
                stride = 2 if (i > 0 and b == 0) else 1
                stage.append(Bottleneck(channels, width, stride))
                channels = width * Bottleneck.expansion
            setattr(self, f'layer{i + 1}', nn.Sequential(*stage))
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():                 # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def features(self, x):
        """(N, C, [T,] H, W) -> (N, 4 w4, [T',] H/32, W/32): the stem and the four stages."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        """(N, C, H, W) images -> (N, num_classes); after inflation (N, C, T, H, W) clips."""
        if x.ndim not in (4, 5) or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet2d: expected images (N, {self.in_channels}, H, W) (or clips "
                             f"(N, {self.in_channels}, T, H, W) once inflated), got shape "
                             f"{tuple(x.shape)}")
        x = self.avgpool(self.features(x))       # (N, C, 1, 1) or, inflated, (N, C, 1, 1, 1)
        x = x.flatten(1)                         # (N, C)
        return self.fc(self.dropout(x))


def resnet2d(num_classes, preset='tiny', **overrides):
    """The 2D ResNet at a preset ('tiny' or 'resnet50'); overrides are ResNet2d's arguments."""
    if preset not in RESNET_PRESETS:
        raise ValueError(f"resnet2d: preset must be one of {tuple(RESNET_PRESETS)}, got {preset!r}")
    return ResNet2d(num_classes, **{**RESNET_PRESETS[preset], **overrides})

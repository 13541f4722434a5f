"""I3D (Carreira & Zisserman 2017): a 3D ResNet-50 made by inflating a 2D one.

    from tensorlite.models import build_model
    net = build_model('i3d', num_classes=400, preset='paper')   # PyTorchVideo's i3d_r50 layout,
                                                                 # torchvision's 2D names
    net = I3D(resnet2d_imagenet)                                 # start from 2D weights

The lesson's idea: instead of learning a 3D network from scratch, take a 2D image network and give
every filter a time axis (models/inflate.py: the 2D kernel repeated t times and divided by t).  On
a video whose frames are all the same the inflated network computes what the 2D network computes on
one frame; training then only has to learn motion.  I3D-ResNet-50 (PyTorchVideo's `i3d_r50`,
../shared/REFERENCES.md section 2) inflates only some filters in time:

    stem conv 7x7 -> 5x7x7 (stride 1 in time); max pool 1x3x3
    res2 (3 blocks): conv_a temporal kernels 3, 3, 3; then a temporal max pool 2x1x1 stride 2
    res3 (4 blocks): 3, 1, 3, 1      res4 (6 blocks): 3, 1, 3, 1, 3, 1      res5 (3 blocks): 1, 3, 1
    every other conv (the 3x3 conv_b, the 1x1 conv_c and the shortcuts) has temporal kernel 1.
    head: global average pool over (T, H, W), dropout 0.5, fc.

Shapes (paper, 8 x 224 x 224): (N, 3, 8, 224, 224) -> stem (N, 64, 8, 56, 56) -> res2
(N, 256, 8, 56, 56) -> pool2 (N, 256, 4, 56, 56) -> res3 (N, 512, 4, 28, 28) -> res4
(N, 1024, 4, 14, 14) -> res5 (N, 2048, 4, 7, 7) -> avgpool (N, 2048, 1, 1, 1) -> flatten
(N, 2048) -> fc (N, 400).  28,043,472 parameters with 400 classes, as i3d_r50.

What it sees in time: every block with a 3-frame conv widens the temporal receptive field, so the
late layers see the whole 8-frame clip and can model motion and order; the one temporal
downsampling (pool2) halves T.  The head averages over time, so the final decision is about the
clip as a whole, not about when within it something happens.

State-dict keys are the 2D ResNet's (torchvision names: conv1, bn1, layer1.0.conv1, ...,
layer1.0.downsample.0, fc), not PyTorchVideo's (blocks.0.conv, blocks.1.res_blocks.0.branch2.conv_a,
...), so that ImageNet 2D weights inflate into it.  The same network under PyTorchVideo's own names
is the model 'i3d_r50' (models/ptv_resnet.py); a hub i3d_r50 checkpoint loads into either:
convert_state_dict('pytorchvideo', 'i3d_r50', sd) as it is, convert_state_dict('pytorchvideo',
'i3d', sd) renamed by `pytorchvideo_key`.  The head's average pool is adaptive
(PyTorchVideo fixes it at 4x7x7), so any T >= 2 and any H, W >= 1 work; T is not fixed.

`time_padding_mode='replicate'` (see models/inflate.py) makes the boring-video property exact
at every T; the default 'zeros' is PyTorchVideo's (exact only away from the temporal borders).
"""
import re

import tensorlite.nn as nn

from ._common import check_clip
from .convert import register_conversion
from .inflate import inflate_2d_to_3d
from .registry import register_model
from .resnet import resnet2d

# conv_a temporal kernel of each block, stage by stage (res2..res5), as PyTorchVideo's i3d_r50.
I3D_R50_TIME_KERNELS = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))


def i3d_time_kernel(stem_time_kernel=5, block_time_kernels=I3D_R50_TIME_KERNELS):
    """The callable for inflate_2d_to_3d: stem conv1 -> stem_time_kernel, layer{s}.{b}.conv1 ->
    block_time_kernels[s-1][b] (cycled when a stage has more blocks), every other conv -> 1."""
    block = re.compile(r'layer(\d)\.(\d+)\.conv1$')

    def time_kernel(name, module):
        if name == 'conv1':
            return stem_time_kernel
        m = block.match(name)
        if m:
            stage = block_time_kernels[int(m.group(1)) - 1]
            return stage[int(m.group(2)) % len(stage)]
        return 1
    return time_kernel


class I3D(nn.Module):
    """An inflated 2D ResNet (models/resnet.py) with I3D's temporal kernels and a temporal max pool
    after res2.  Input (N, 3, T, H, W) with T >= temporal_pool, output (N, num_classes)."""

    def __init__(self, resnet, stem_time_kernel=5, block_time_kernels=I3D_R50_TIME_KERNELS,
                 temporal_pool=2, time_padding_mode='zeros'):
        super().__init__()
        net3d = inflate_2d_to_3d(resnet, time_kernel=i3d_time_kernel(stem_time_kernel,
                                                                     block_time_kernels),
                                 time_padding_mode=time_padding_mode)
        self.in_channels = resnet.in_channels
        self.temporal_pool = temporal_pool
        for name, child in net3d.named_children():      # the ResNet's names, in its order
            self.add_module(name, child)
            if name == 'layer1':
                self.pool2 = nn.MaxPool3d((temporal_pool, 1, 1), stride=(temporal_pool, 1, 1))
        self.train(resnet.training)

    def features(self, x):
        """(N, 3, T, H, W) -> (N, 4 w4, T/2, H/32, W/32): the stem and the four stages."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # (N, stem, T, H/4, W/4)
        x = self.pool2(self.layer1(x))                          # (N, 4 w1, T/2, H/4, W/4)
        return self.layer4(self.layer3(self.layer2(x)))         # (N, 4 w4, T/2, H/32, W/32)

    def forward(self, x):
        check_clip('i3d', x, channels=self.in_channels)
        if x.shape[2] < self.temporal_pool:
            raise ValueError(f"i3d: needs at least {self.temporal_pool} frames (temporal max pool "
                             f"{self.temporal_pool}x1x1 after res2), input (N, {self.in_channels}, "
                             f"T>={self.temporal_pool}, H, W), got shape {tuple(x.shape)}")
        x = self.avgpool(self.features(x))                      # (N, 4 w4, 1, 1, 1)
        x = x.flatten(1)                                        # (N, 4 w4)
        return self.fc(self.dropout(x))


_PYTORCHVIDEO_NAMES = [
    (r'^blocks\.0\.conv\.', 'conv1.'), (r'^blocks\.0\.norm\.', 'bn1.'),
    (r'^blocks\.6\.proj\.', 'fc.'),
    (r'\.branch1_conv\.', '.downsample.0.'), (r'\.branch1_norm\.', '.downsample.1.'),
    (r'\.branch2\.conv_a\.', '.conv1.'), (r'\.branch2\.norm_a\.', '.bn1.'),
    (r'\.branch2\.conv_b\.', '.conv2.'), (r'\.branch2\.norm_b\.', '.bn2.'),
    (r'\.branch2\.conv_c\.', '.conv3.'), (r'\.branch2\.norm_c\.', '.bn3.'),
]


def pytorchvideo_key(key):
    """The key in this model's state dict of a PyTorchVideo i3d_r50 key:
    'blocks.3.res_blocks.1.branch2.conv_a.weight' -> 'layer2.1.conv1.weight'."""
    m = re.match(r'^blocks\.([1345])\.res_blocks\.(\d+)\.(.*)$', key)
    if m:                          # blocks: 0 stem, 1 res2, 2 pool2, 3 res3, 4 res4, 5 res5, 6 head
        stage = {'1': 1, '3': 2, '4': 3, '5': 4}[m.group(1)]
        key = f'layer{stage}.{m.group(2)}.{m.group(3)}'
    for pattern, repl in _PYTORCHVIDEO_NAMES:
        key = re.sub(pattern, repl, key)
    return key


I3D_PRESETS = {
    'paper': dict(resnet='resnet50', dropout=0.5),
    # tiny: a 5 x 3 x 3 stem instead of 5 x 7 x 7 (the 7 x 7 stem on 16 frames of 32^2 was 94 % of
    # the tiny net's multiply-adds), and no dropout (one block per stage, nothing to regularize)
    'tiny': dict(resnet='tiny', dropout=0.0, stem_kernel=3),
}


@register_model('i3d', paper_num_classes=400, paper_clip=(8, 224))     # any clip: adaptive pool
def i3d(num_classes, preset='tiny', dropout=None, time_padding_mode='zeros', stem_time_kernel=5,
        block_time_kernels=I3D_R50_TIME_KERNELS, temporal_pool=2, init='random',
        **resnet_overrides):
    """I3D-ResNet: 'paper' = PyTorchVideo i3d_r50 (ResNet-50 widths, 28,043,472 parameters with
    400 classes); 'tiny' = one block per stage, widths 4, 8, 16, 32 (x4), stem 8 with a 5 x 3 x 3 kernel, no dropout.
    resnet_overrides go to ResNet2d (layers=, widths=, stem_width=, stem_kernel=).

    init: 'random' (default) gives every Conv3d a fresh He-normal init (fan_out, as PyTorchVideo's
    c2_msra_fill), the init for training from scratch; 'inflate' keeps the inflated weights of the
    randomly initialized 2D ResNet.  Inflating random 2D weights gives filters that are constant
    over time, so the network starts exactly blind to the order of frames (a clip and its reverse
    get the same output, to 1e-8) and training on the 'order' family stays at chance: inflation is
    for trained 2D weights -- build I3D(trained_resnet2d, ...) for that."""
    if init not in ('random', 'inflate'):
        raise ValueError(f"i3d: init must be 'random' or 'inflate', got {init!r}")
    cfg = dict(I3D_PRESETS[preset])
    p = cfg.pop('dropout') if dropout is None else dropout
    cfg.pop('dropout', None)
    net2d = resnet2d(num_classes, cfg.pop('resnet'), dropout=p, **{**cfg, **resnet_overrides})
    net = I3D(net2d, stem_time_kernel, block_time_kernels, temporal_pool, time_padding_mode)
    if init == 'random':
        for m in net.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
    return net


register_conversion('pytorchvideo', 'i3d', head='fc.weight', rename=pytorchvideo_key)

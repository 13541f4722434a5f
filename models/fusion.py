"""late_fusion and early_fusion: the two cheapest ways to let an image CNN see more than one frame.

Late fusion runs the same 2D CNN on every frame independently and pools the per-frame features
before the classifier:

    clip (N, 3, T, H, W) -> frames (N*T, 3, H, W) -> conv stage -> (N*T, D) -> (N, T, D)
        pooling 'mean' (default) or 'max' over T -> (N, D)      | fc6, fc7 -> fc8 -> (N, classes)
        pooling 'concat' -> (N, T*D), frame-major               |

It sees more of the clip than single_frame, but with 'mean' or 'max' the pooled feature is the
same for any order of the frames: a hand reaching then grasping is the clip played backwards as
far as the model can tell (the synthetic 'order' family separates exactly these).  It learns no
temporal dynamics: whatever 'motion' it catches comes from single frames.  'concat' keeps each
frame's features in its slot, so fc6 can compare frames; it fixes T (fc6 reads T*D numbers), and
its only temporal modelling is that one fully connected layer.

Early fusion stacks the T frames along the channels before the first conv:

    clip (N, 3, T, H, W) -> (N, T, 3, H, W) -> (N, 3T, H, W) -> 2D CNN -> fc8 -> (N, classes)

Channel t*3 + c is colour c of frame t.  conv1's filters span all T frames at once, so the first
layer sees raw motion at every position, but only that layer: after it time is collapsed into
channels, deeper layers have no per-frame structure, and T is fixed by conv1's weights.

Presets ('paper' follows Karpathy et al. 2014, Large-scale video classification with CNNs; the
layers and the choices the paper leaves open are in cnn2d.py, 'karpathy'):
- late_fusion 'paper': the single-frame network's conv stage per frame, its pool5 features (9216)
  pooled, fc6/fc7/fc8.  late_fusion_concat 'paper' is the paper's late fusion: two frames (sample
  them 15 frames apart), their pool5 features concatenated into fc6 (frames=2).
- early_fusion 'paper': T = 10 frames (about a third of a second), conv1 11 x 11 x 3T at stride 3.
- 'tiny': cnn2d's tiny net; late_fusion_concat and early_fusion fix T = 16.
Keys: `cnn.conv1.weight`, ..., `cnn.fc7.bias`, `fc8.weight` (Caffe layer names), as single_frame.
"""
import tensorlite.nn as nn

from ._common import check_clip
from .cnn2d import frame_cnn
from .registry import register_model

POOLINGS = ('mean', 'max', 'concat')


class LateFusion(nn.Module):
    """The same 2D CNN on every frame, per-frame conv features pooled over time ('mean', 'max') or
    concatenated ('concat', which fixes T = frames), then the fc stage and fc8.
    forward(x): x (N, C, T, H, W) -> logits (N, num_classes)."""

    name = 'late_fusion'

    def __init__(self, cnn, num_classes, pooling='mean', frames=None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"late_fusion: pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling == 'concat' and frames is None:
            raise ValueError("late_fusion: pooling='concat' needs frames (fc6 reads T * D "
                             "features)")
        self.cnn = cnn
        self.fc8 = nn.Linear(cnn.out_dim, num_classes)
        self.pooling, self.frames = pooling, frames

    def forward(self, x):
        C, S = self.cnn.in_channels, self.cnn.input_size
        check_clip(self.name, x, channels=C, frames=self.frames, size=S)
        N, _, T, H, W = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)   # (N*T, C, H, W), clip-major
        z = self.cnn.forward_features(frames).reshape(N, T, -1)      # (N, T, D)
        if self.pooling == 'mean':
            z = z.mean(dim=1)                                        # (N, D)
        elif self.pooling == 'max':
            z = z.max(dim=1).values                                  # (N, D)
        else:
            z = z.reshape(N, -1)                                     # (N, T*D), frame t at t*D
        return self.fc8(self.cnn.forward_fc(z))                      # (N, num_classes)


class EarlyFusion(nn.Module):
    """Frames stacked along the channels (C*T) into the first conv of a 2D CNN; T = frames fixed.
    forward(x): x (N, C, T, H, W) -> logits (N, num_classes)."""

    name = 'early_fusion'

    def __init__(self, cnn, num_classes, frames, channels=3):
        super().__init__()
        if cnn.in_channels != channels * frames:
            raise ValueError(f"early_fusion: the CNN must take channels * frames = "
                             f"{channels * frames} input channels, it takes {cnn.in_channels}")
        self.cnn = cnn
        self.fc8 = nn.Linear(cnn.out_dim, num_classes)
        self.frames, self.channels = frames, channels

    def forward(self, x):
        C, T, S = self.channels, self.frames, self.cnn.input_size
        check_clip(self.name, x, channels=C, frames=T, size=S)
        N, _, _, H, W = x.shape
        stacked = x.permute(0, 2, 1, 3, 4).reshape(N, T * C, H, W)  # (N, T*C, H, W), frame-major
        return self.fc8(self.cnn(stacked))                           # (N, num_classes)


def _arch(preset):
    return 'tiny' if preset == 'tiny' else 'karpathy'


def _late_fusion(num_classes, preset, pooling, frames=None, **overrides):
    if pooling == 'concat' and frames is None:
        frames = 16 if preset == 'tiny' else 2
    cnn = frame_cnn(_arch(preset), fc_inputs=frames if pooling == 'concat' else 1, **overrides)
    return LateFusion(cnn, num_classes, pooling=pooling, frames=frames)


@register_model('late_fusion')
def late_fusion(num_classes, preset='tiny', pooling='mean', frames=None, **overrides):
    """Late fusion, mean pooling by default (pooling='max' or 'concat' as overrides).  frames: T
    for 'concat' (16 tiny, 2 paper); with 'mean'/'max' any T works and frames=None.  Other
    overrides go to cnn2d.frame_cnn."""
    return _late_fusion(num_classes, preset, pooling, frames, **overrides)


@register_model('late_fusion_max')
def late_fusion_max(num_classes, preset='tiny', frames=None, **overrides):
    """Late fusion with max pooling of the per-frame features over time."""
    return _late_fusion(num_classes, preset, 'max', frames, **overrides)


@register_model('late_fusion_concat')
def late_fusion_concat(num_classes, preset='tiny', frames=None, **overrides):
    """Late fusion by concatenation: fc6 reads the T frames' features side by side (T fixed: 16
    tiny; 2 paper, Karpathy et al.'s late fusion of two frames 15 apart)."""
    return _late_fusion(num_classes, preset, 'concat', frames, **overrides)


@register_model('early_fusion')
def early_fusion(num_classes, preset='tiny', frames=None, channels=3, **overrides):
    """Early fusion: T = frames (16 tiny, 10 paper) stacked into conv1's channels.  Other
    overrides go to cnn2d.frame_cnn."""
    if frames is None:
        frames = 16 if preset == 'tiny' else 10
    cnn = frame_cnn(_arch(preset), in_channels=channels * frames, **overrides)
    return EarlyFusion(cnn, num_classes, frames, channels)

"""late_fusion and early_fusion: the two cheapest ways to let an image CNN see more than one frame.

Late fusion runs the same 2D CNN on every frame independently and combines them at the end,
either the frames' class scores (fuse='scores': the lesson's "combine predictions at the end", and
TSN's average consensus) or their conv features before the fc stage (fuse='features': Karpathy et
al.'s late fusion, which merges the towers in the first fully connected layer):

    clip (N, 3, T, H, W) -> frames (N*T, 3, H, W) -> conv stage -> (N*T, D) -> (N, T, D)
      'scores':   fc6, fc7 -> fc8 per frame -> (N, T, classes) -> 'mean' / 'max' over T
      'features': pooling 'mean' (default) or 'max' over T -> (N, D)  | fc6, fc7 -> fc8
                  pooling 'concat' -> (N, T*D), frame-major            |   -> (N, classes)

It sees more of the clip than single_frame: on the synthetic 'occluded' family, where each frame
shows the scene only through a window (or not at all), pooling every frame's evidence tells the
scene when one frame cannot.  With 'mean' or 'max' the result is the same for any order of the
frames: a hand reaching then grasping is the clip played backwards as far as the model can tell
(the 'order' family separates exactly these).  Pooled *features* still see where things were: the
tiny net's features are a flattened spatial map (cnn2d.py), so their mean over time is the trail
of a moving object, and on 'motion' late fusion by features learns the axis of the motion (49 %,
4 directions; the trail of 'left' is the trail of 'right') though never its direction.  Pooled
*scores* do not (25 %, chance): the tiny preset fuses scores, the lesson's late fusion.  'concat'
keeps each frame's features in its slot, so fc6 can compare frames; it fixes T (fc6 reads T*D
numbers), and its only temporal modelling is that one fully connected layer.

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
- 'tiny': cnn2d's tiny net; late_fusion and late_fusion_max fuse class scores;
  late_fusion_concat and early_fusion fix T = 16.
Keys: `cnn.conv1.weight`, ..., `cnn.fc7.bias`, `fc8.weight` (Caffe layer names), as single_frame.
"""
import tensorlite.nn as nn

from ._common import check_clip
from .cnn2d import frame_cnn
from .registry import register_model

POOLINGS = ('mean', 'max', 'concat')
FUSES = ('features', 'scores')


class LateFusion(nn.Module):
    """The same 2D CNN on every frame.  fuse='features': the per-frame conv features pooled over
    time ('mean', 'max') or concatenated ('concat', which fixes T = frames), then the fc stage and
    fc8.  fuse='scores': every frame classified on its own (conv stage, fc stage, fc8), its class
    scores pooled over time ('mean', 'max').
    forward(x): x (N, C, T, H, W) -> logits (N, num_classes)."""

    name = 'late_fusion'

    def __init__(self, cnn, num_classes, pooling='mean', frames=None, fuse='features'):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"late_fusion: pooling must be one of {POOLINGS}, got {pooling!r}")
        if fuse not in FUSES:
            raise ValueError(f"late_fusion: fuse must be one of {FUSES}, got {fuse!r}")
        if pooling == 'concat' and frames is None:
            raise ValueError("late_fusion: pooling='concat' needs frames (fc6 reads T * D "
                             "features)")
        if pooling == 'concat' and fuse == 'scores':
            raise ValueError("late_fusion: fuse='scores' pools each frame's class scores, so it "
                             "needs pooling 'mean' or 'max', got 'concat'")
        self.cnn = cnn
        self.fc8 = nn.Linear(cnn.out_dim, num_classes)
        self.pooling, self.frames, self.fuse = pooling, frames, fuse

    def forward(self, x):
        C, S = self.cnn.in_channels, self.cnn.input_size
        check_clip(self.name, x, channels=C, frames=self.frames, size=S)
        N, _, T, H, W = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)   # (N*T, C, H, W), clip-major
        if self.fuse == 'scores':                 # every frame classified, its scores pooled
            scores = self.fc8(self.cnn(frames)).reshape(N, T, -1)    # (N, T, num_classes)
            return scores.mean(dim=1) if self.pooling == 'mean' else scores.max(dim=1).values
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


def _late_fusion(num_classes, preset, pooling, frames=None, fuse=None, **overrides):
    if pooling == 'concat' and frames is None:
        frames = 16 if preset == 'tiny' else 2
    if fuse is None:
        fuse = 'scores' if preset == 'tiny' and pooling != 'concat' else 'features'
    cnn = frame_cnn(_arch(preset), fc_inputs=frames if pooling == 'concat' else 1, **overrides)
    return LateFusion(cnn, num_classes, pooling=pooling, frames=frames, fuse=fuse)


def _size_only(frames, size):
    return {'input_size': size}                      # fc6 reads a map of the frame size; any T


def _frames_and_size(frames, size):
    return {'frames': frames, 'input_size': size}    # T fixed too: fc6 or conv1 reads T frames


# paper: Karpathy et al. 2014 on Sports-1M (487 classes), 170 x 170 frames; late fusion by mean or
# max reads any T (15 here: the span of the paper's late fusion), by concatenation 2 frames, early
# fusion 10
_SPORTS_1M = 487


@register_model('late_fusion', paper_num_classes=_SPORTS_1M, paper_clip=(15, 170),
                clip_arguments=_size_only)
def late_fusion(num_classes, preset='tiny', pooling='mean', frames=None, fuse=None,
                **overrides):
    """Late fusion, mean pooling by default (pooling='max' or 'concat' as overrides).  frames: T
    for 'concat' (16 tiny, 2 paper); with 'mean'/'max' any T works and frames=None.  fuse:
    'scores' (pool every frame's class scores; the tiny default) or 'features' (pool the conv
    features before the fc stage; the paper default and 'concat''s only way).  Other overrides go
    to cnn2d.frame_cnn."""
    return _late_fusion(num_classes, preset, pooling, frames, fuse, **overrides)


@register_model('late_fusion_max', paper_num_classes=_SPORTS_1M, paper_clip=(15, 170),
                clip_arguments=_size_only)
def late_fusion_max(num_classes, preset='tiny', frames=None, fuse=None, **overrides):
    """Late fusion with max pooling over time (of the class scores, tiny; of the features,
    paper)."""
    return _late_fusion(num_classes, preset, 'max', frames, fuse, **overrides)


@register_model('late_fusion_concat', paper_num_classes=_SPORTS_1M, paper_clip=(2, 170),
                clip_arguments=_frames_and_size)
def late_fusion_concat(num_classes, preset='tiny', frames=None, **overrides):
    """Late fusion by concatenation: fc6 reads the T frames' features side by side (T fixed: 16
    tiny; 2 paper, Karpathy et al.'s late fusion of two frames 15 apart)."""
    return _late_fusion(num_classes, preset, 'concat', frames, **overrides)


@register_model('early_fusion', paper_num_classes=_SPORTS_1M, paper_clip=(10, 170),
                clip_arguments=_frames_and_size)
def early_fusion(num_classes, preset='tiny', frames=None, channels=3, **overrides):
    """Early fusion: T = frames (16 tiny, 10 paper) stacked into conv1's channels.  Other
    overrides go to cnn2d.frame_cnn."""
    if frames is None:
        frames = 16 if preset == 'tiny' else 10
    cnn = frame_cnn(_arch(preset), in_channels=channels * frames, **overrides)
    return EarlyFusion(cnn, num_classes, frames, channels)

"""single_frame: the baseline the lesson says to always run.

Take one frame of the clip, classify it with an image CNN, discard the rest of the video.  Many
action benchmarks are largely solvable from one well-chosen frame (a swimming pool says
"swimming"); a video model that does not beat this baseline by a comfortable margin is not
learning anything temporal.

    clip (N, 3, T, H, W) --pick one frame--> (N, 3, H, W) --FrameCNN--> (N, D) --fc8--> (N, classes)

Which frame: the middle one (T // 2) in evaluation; in training an independent random frame per
clip (tensorlite's generator, so tl.manual_seed reproduces it), a cheap temporal augmentation; or
a chosen index in both modes (`frame=` at build time, or `model(x, frame=k)`).

What it sees in time: nothing.  One frame, so no motion, no order, no duration: on the synthetic
'motion' and 'order' families it is at chance by construction; on 'scene' it is the model to beat.

Presets: 'tiny' is cnn2d's tiny net (32 x 32 frames); 'paper' is the single-frame network of
Karpathy et al. 2014 on 170 x 170 frames (see cnn2d.py for the layers and the assumptions the paper
leaves open), fc8 reading fc7's 4096 features.  Keys: `cnn.conv1.weight`, ..., `cnn.fc7.bias`,
`fc8.weight`, `fc8.bias` (Caffe layer names), the same as late_fusion's with 'mean' or 'max'
pooling, so weights move between the two unchanged.
"""
import tensorlite.nn as nn

from ._common import check_clip
from .cnn2d import frame_cnn, pick_frame
from .registry import register_model


class SingleFrame(nn.Module):
    """A 2D CNN on one frame of the clip.  forward(x, frame=None): x (N, C, T, H, W) -> logits
    (N, num_classes); `frame` overrides the model's own `frame` attribute for this call."""

    name = 'single_frame'

    def __init__(self, cnn, num_classes, frame=None):
        super().__init__()
        self.cnn = cnn
        self.fc8 = nn.Linear(cnn.out_dim, num_classes)
        self.frame = frame

    def forward(self, x, frame=None):
        C, S = self.cnn.in_channels, self.cnn.input_size
        check_clip(self.name, x, channels=C, size=S)
        image = pick_frame(self.name, x, self.frame if frame is None else frame,
                           self.training)                       # (N, C, H, W)
        return self.fc8(self.cnn(image))                        # (N, D) -> (N, num_classes)


def _clip(frames, size):
    return {'input_size': size}                      # fc6 reads a map of the frame size; any T


# paper: Karpathy et al. 2014 on Sports-1M (487 classes), one 170 x 170 frame
@register_model('single_frame', paper_num_classes=487, paper_clip=(1, 170), clip_arguments=_clip)
def single_frame(num_classes, preset='tiny', frame=None, **overrides):
    """tiny: cnn2d 'tiny' on 32 x 32 frames; paper: Karpathy et al. 2014's single-frame network on
    170 x 170.  Overrides go to cnn2d.frame_cnn (input_size, fc_dims, dropout, widths, ...)."""
    cnn = frame_cnn('tiny' if preset == 'tiny' else 'karpathy', **overrides)
    return SingleFrame(cnn, num_classes, frame=frame)

"""two_stream: Simonyan & Zisserman 2014 -- appearance and motion in two separate CNNs, fused late.

One network looks at what is in the frame, the other at what is moving:

    spatial stream   one RGB frame (N, 3, H, W), picked from the clip (N, 3, T, H, W) as
                     single_frame picks it (middle frame in evaluation, a random frame per clip in
                     training, or `frame=`)                     -> CNN -> (N, D)
    temporal stream  a stack of L optical flows (N, 2L, H, W), channels dx_0, dy_0, dx_1, dy_1, ...
                     (tensorlite.data.flow.flows_to_stack)        -> CNN -> (N, D)

    fusion 'mean' (default): each stream's fc8 -> softmax; the two probability vectors averaged,
        as the paper's "fusion by averaging".  forward returns log(mean of the softmaxes), a
        (N, num_classes) tensor of log-probabilities: they are valid logits (softmax of them gives
        the averaged probabilities back, argmax is the fused prediction) and cross-entropy on them
        is the negative log-likelihood of the averaged distribution.  `forward_streams` returns the
        two streams' own logits, to train each stream on its own as the paper did.
    fusion 'concat': the two D-dim features (fc7) concatenated, one fc8 on the 2D numbers.

What it sees in time: the temporal stream sees motion over the L + 1 frames its flow stack spans
(L = 10 in the paper), in a fixed window, through precomputed flow -- optical flow is not free, its
per-frame cost comes before the network.  Order within the window is visible (the flows have
channels per step); beyond it, nothing.  The spatial stream sees one frame.  On the synthetic
'motion' family the temporal stream does the work; on 'scene', the spatial one.

Presets: 'paper' streams are CNN-M-2048 on 224 x 224 (cnn2d.py), the temporal one without its second
LRN and with dropout 0.9 (spatial 0.5), L = 10: spatial 90,627,813 and temporal 90,707,781
parameters with 101 classes (REFERENCES.md section 6).  'tiny': cnn2d's tiny net for both streams
on 32 x 32, L = 10 (override flow_length; 16-frame clips give 15 flows).
Keys: `spatial.cnn.conv1.weight`, ..., `spatial.fc8.weight`, `temporal.cnn.conv1.weight`, ...,
`temporal.fc8.weight` (per-stream Caffe names; a single_frame state dict loads into `spatial` when
the CNNs match); with 'concat', `fc8.weight` on top and no per-stream fc8.
"""
import math

import tensorlite.functional as F
import tensorlite.nn as nn

from ._common import check_clip
from .cnn2d import frame_cnn, pick_frame
from .registry import register_model

FUSIONS = ('mean', 'concat')


class Stream(nn.Module):
    """One stream: a FrameCNN and (unless the fusion concatenates features) its own fc8.
    forward(images (N, C, H, W)) -> (N, num_classes) logits, or (N, D) features without fc8."""

    def __init__(self, cnn, num_classes=None):
        super().__init__()
        self.cnn = cnn
        if num_classes is not None:
            self.fc8 = nn.Linear(cnn.out_dim, num_classes)
        else:
            self.fc8 = None

    def forward(self, images):
        z = self.cnn(images)                                    # (N, D)
        return z if self.fc8 is None else self.fc8(z)


def check_flow(model, flow, channels, size):
    """flow must be (N, 2L, size, size): else a ValueError naming the expected shape."""
    expected = f"(N, {channels}, {size}, {size})"
    if flow.ndim != 4 or tuple(flow.shape[1:]) != (channels, size, size):
        raise ValueError(f"{model}: expected a flow stack {expected} (2L = {channels} channels "
                         f"dx_0, dy_0, ..., one stack per clip), got shape {tuple(flow.shape)}")


class TwoStream(nn.Module):
    """Spatial stream on one RGB frame, temporal stream on a flow stack, fused late.
    forward(rgb, flow, frame=None): rgb (N, 3, T, H, W), flow (N, 2L, H', W') -> (N, num_classes):
    log of the averaged softmaxes ('mean') or the logits of fc8 on concatenated features."""

    name = 'two_stream'

    def __init__(self, spatial_cnn, temporal_cnn, num_classes, flow_length, fusion='mean',
                 frame=None):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"two_stream: fusion must be one of {FUSIONS}, got {fusion!r}")
        if temporal_cnn.in_channels != 2 * flow_length:
            raise ValueError(f"two_stream: the temporal CNN must take 2L = {2 * flow_length} "
                             f"channels, it takes {temporal_cnn.in_channels}")
        per_stream = num_classes if fusion == 'mean' else None
        self.spatial = Stream(spatial_cnn, per_stream)
        self.temporal = Stream(temporal_cnn, per_stream)
        if fusion == 'concat':
            self.fc8 = nn.Linear(spatial_cnn.out_dim + temporal_cnn.out_dim, num_classes)
        self.fusion, self.flow_length, self.frame = fusion, flow_length, frame

    def forward_streams(self, rgb, flow, frame=None):
        """The two streams' outputs before fusion: ((N, K) spatial, (N, K) temporal), logits with
        'mean' fusion, features with 'concat'."""
        s_cnn, t_cnn = self.spatial.cnn, self.temporal.cnn
        check_clip(self.name, rgb, channels=s_cnn.in_channels, size=s_cnn.input_size)
        check_flow(self.name, flow, t_cnn.in_channels, t_cnn.input_size)
        image = pick_frame(self.name, rgb, self.frame if frame is None else frame,
                           self.training)                       # (N, 3, H, W)
        return self.spatial(image), self.temporal(flow)

    def forward(self, rgb, flow, frame=None):
        spatial, temporal = self.forward_streams(rgb, flow, frame)
        if self.fusion == 'concat':
            return self.fc8(F.cat([spatial, temporal], dim=1))  # (N, 2D) -> (N, num_classes)
        # log((softmax(s) + softmax(t)) / 2), computed in the log domain so nothing underflows
        both = F.stack([F.log_softmax(spatial, dim=1), F.log_softmax(temporal, dim=1)])  # (2, N, K)
        return F.logsumexp(both, dim=0) - math.log(2.0)         # (N, K)


def _two_stream(num_classes, preset, fusion, flow_length=10, frame=None, input_size=None,
                spatial_dropout=None, temporal_dropout=None, **overrides):
    if preset == 'tiny':
        spatial = frame_cnn('tiny', input_size=input_size, dropout=spatial_dropout, **overrides)
        temporal = frame_cnn('tiny', in_channels=2 * flow_length, input_size=input_size,
                             dropout=temporal_dropout, **overrides)
    else:
        spatial = frame_cnn('cnn_m_2048', input_size=input_size,
                            dropout=0.5 if spatial_dropout is None else spatial_dropout,
                            **overrides)
        temporal = frame_cnn('cnn_m_2048', in_channels=2 * flow_length, input_size=input_size,
                             dropout=0.9 if temporal_dropout is None else temporal_dropout,
                             norm2=False, **overrides)
    return TwoStream(spatial, temporal, num_classes, flow_length, fusion=fusion, frame=frame)


def _clip(frames, size):
    """The flow stack spans L + 1 frames of the clip: Simonyan & Zisserman's L = 10 if it fits."""
    if frames < 2:
        raise ValueError(f"two_stream: the temporal stream needs at least 2 frames (one flow), "
                         f"got {frames}")
    return {'input_size': size, 'flow_length': min(10, frames - 1)}


# paper: UCF101 (101 classes), 224 x 224, a flow stack of L = 10 flows over 11 frames (section 6)
@register_model('two_stream', paper_num_classes=101, paper_clip=(11, 224), clip_arguments=_clip)
def two_stream(num_classes, preset='tiny', fusion='mean', **overrides):
    """Two-stream network, late fusion by averaging the softmax scores (fusion='concat' for
    concatenated features + fc8).  Overrides: flow_length (L, 10), frame, input_size,
    spatial_dropout, temporal_dropout, and cnn2d.frame_cnn options (fc_dims, widths, ...)."""
    return _two_stream(num_classes, preset, fusion, **overrides)


@register_model('two_stream_concat', paper_num_classes=101, paper_clip=(11, 224),
                clip_arguments=_clip)
def two_stream_concat(num_classes, preset='tiny', **overrides):
    """Two-stream network fused by concatenating the two streams' fc7 features into one fc8."""
    return _two_stream(num_classes, preset, 'concat', **overrides)

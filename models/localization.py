"""snippet_localizer: temporal action localization with snippet scores and temporal convolution.

A long untrimmed video holds a few action instances among background frames.  The simplest
localizer classifies every frame, background included, and turns runs of confident frames into
segments:

    clip (N, 3, T, H, W)
      --backbone: 3D conv + BatchNorm blocks, pooling space, and time by 4-->  (N, D, T/4, h, w)
      --mean over space-->                         (N, D, T/4)       one feature per 4-frame snippet
      --temporal head: dilated Conv1d stack-->     (N, num_classes + 1, T/4)
      --each snippet's scores repeated over its frames--> (N, num_classes + 1, T)  per-frame logits
      --softmax, segments_from_scores, temporal_nms--> [(start, end, label, score), ...]

Channel 0 of the scores is the background class; action a (0 <= a < num_classes, the dataset's
labels) is channel a + 1 (`frame_targets` builds the per-frame targets that way, and `localize`
maps channels back to dataset labels).  Training is per-frame cross entropy:
`F.cross_entropy(scores, targets)` with scores (N, C + 1, T) and targets (N, T) int64.

Why 3D convs with BatchNorm: one frame of the synthetic 'localization' videos cannot tell its
action (the motion and order families hide the label in motion), so the features must see
neighbouring frames; BatchNorm keeps a small object's features from starting out tiny.  Why
dilated temporal convolutions: an 'order' instance (horizontal then vertical) is only
recognisable over most of its up to 32 frames; on 4-frame snippets, kernels of 3 with dilations
1, 2, 4 see 15 snippets (60 frames) at the cost of three layers.

This model is not in the registry: the registry's contract is a clip in and (N, num_classes)
clip logits out, while this model outputs per-frame scores.  Import it from here:

    from tensorlite.models.localization import SnippetLocalizer, frame_targets, localize
"""
import numpy as np

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
from tensorlite.train.localization import segments_from_scores, temporal_nms

from ._common import check_clip

__all__ = ['SnippetLocalizer', 'frame_targets', 'localize']


class SnippetLocalizer(nn.Module):
    """Per-frame action scores over a long clip.

    num_classes: the number of action classes (background is added as class 0).
    Backbone: `blocks` (>= 2) 3D conv blocks, each Conv3d 3x3x3 ('same' padding) + BatchNorm3d +
    ReLU, all but the last followed by a max-pool: 2 x 2 over space, and also 2 over time in the
    blocks 2 .. 1 + log2(time_stride) (ceil mode).  width: channels of the first block, 2 * width
    after.  The map is averaged over space: one feature per snippet of time_stride frames.
    Temporal head: dilated Conv1d layers over the snippets (hidden channels; odd kernel_size,
    'same' padding), then a 1 x 1 classifier; each snippet's logits are repeated over its
    time_stride frames, so the output is per frame.  batch_norm: a BatchNorm after every conv but
    the classifier (default).

    Why this backbone: a 3 x 3 x 3 kernel sees the direction of motion between neighbouring
    frames directly, where a per-frame 2D backbone must leave it to later layers, and BatchNorm
    keeps the responses to a small object on a flat background from being small and nearly alike
    at initialisation (examples/localize.py measures the result).  Why snippets: pooling time widens each feature's view of the
    motion (an 'order' instance lasts up to 32 frames) at a fraction of the work, and the head
    then sees far with few layers; the price is that boundaries fall on snippet edges (at most
    time_stride - 1 frames off; the instances last 16 to 32 frames).

    forward(x): x (N, in_channels, T, H, W) -> scores (N, num_classes + 1, T), logits with the
    background in channel 0 and action a in channel a + 1.
    """

    name = 'snippet_localizer'

    def __init__(self, num_classes, width=16, hidden=32, kernel_size=3, dilations=(1, 2, 4),
                 in_channels=3, batch_norm=True, blocks=4, time_stride=4):
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"SnippetLocalizer: num_classes must be a positive int, "
                             f"got {num_classes!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"SnippetLocalizer: kernel_size must be odd (same padding keeps T), "
                             f"got {kernel_size}")
        if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 2:
            raise ValueError(f"SnippetLocalizer: blocks must be an int >= 2, got {blocks!r}")
        time_pools = {1: 0, 2: 1, 4: 2, 8: 3}.get(time_stride)
        if time_pools is None or time_pools > blocks - 2:
            raise ValueError(f"SnippetLocalizer: time_stride must be 1, 2, 4 or 8 and at most "
                             f"2 ** (blocks - 2) = {2 ** (blocks - 2)}, got {time_stride!r}")
        self.num_classes, self.in_channels, self.time_stride = num_classes, in_channels, time_stride

        def norm(kind, channels):                            # a BatchNorm, or nothing
            return [kind(channels)] if batch_norm else []

        layers, channels = [], in_channels
        for b in range(blocks):
            out = width if b == 0 else 2 * width
            layers += [nn.Conv3d(channels, out, 3, padding=1), *norm(nn.BatchNorm3d, out),
                       nn.ReLU()]
            if b < blocks - 1:                               # the first block sees full-rate time
                layers.append(nn.MaxPool3d((2 if 1 <= b <= time_pools else 1, 2, 2),
                                           ceil_mode=True))
            channels = out
        self.backbone = nn.Sequential(*layers)
        layers = []
        for d in dilations:
            layers += [nn.Conv1d(channels, hidden, kernel_size, padding=d * (kernel_size // 2),
                                 dilation=d), *norm(nn.BatchNorm1d, hidden), nn.ReLU()]
            channels = hidden
        self.temporal = nn.Sequential(*layers)
        self.classifier = nn.Conv1d(channels, num_classes + 1, 1)

    def snippet_features(self, x):
        """x (N, in_channels, T, H, W) -> features (N, D, ceil(T / time_stride)), one per snippet
        of time_stride frames (the last one may be shorter)."""
        check_clip(self.name, x, channels=self.in_channels, min_size=4)
        return self.backbone(x).mean(dim=(3, 4))              # (N, D, t)

    def forward(self, x):
        T = x.shape[2]
        scores = self.classifier(self.temporal(self.snippet_features(x)))   # (N, C + 1, t)
        N, C, t = scores.shape
        s = self.time_stride
        if s > 1:                                # frame i gets snippet i // s's scores
            scores = scores.unsqueeze(3).expand(N, C, t, s).reshape(N, C, t * s)[:, :, :T]
        return scores                                         # (N, C + 1, T)


def frame_targets(annotations, num_frames):
    """Per-frame class indices from segment annotations.

    annotations: (K, 3) int rows (start, end_exclusive, label), as SyntheticActions('localization')
    gives them; K may be 0.  Returns int64 (num_frames,): 0 for background, label + 1 inside
    [start, end).  Overlapping segments: the later row wins (the synthetic videos have none).
    """
    rows = np.asarray(annotations, dtype=np.int64)
    if rows.size == 0:
        rows = rows.reshape(0, 3)                            # no instance: all background
    if rows.ndim != 2 or rows.shape[1] != 3:
        raise ValueError(f"frame_targets: expected (K, 3) rows (start, end, label), got shape "
                         f"{rows.shape}")
    targets = np.zeros(num_frames, dtype=np.int64)
    for start, end, label in rows:
        if not 0 <= start <= end <= num_frames:
            raise ValueError(f"frame_targets: segment ({start}, {end}) is outside the "
                             f"{num_frames} frames [0, {num_frames}]")
        if label < 0:
            raise ValueError(f"frame_targets: labels must be >= 0, got {label}")
        targets[start:end] = label + 1
    return targets


def localize(model, clip, threshold=0.5, nms_iou=0.5, min_length=1):
    """Action segments of one clip: [(start, end, label, score), ...], highest score first.

    clip: (C, T, H, W) or (1, C, T, H, W), a NumPy array or Tensor.  The model's per-frame logits
    (1, num_classes + 1, T) go through a softmax over classes; for each action class, runs of frames
    whose probability exceeds `threshold` (at least `min_length` frames) become segments scored by
    their mean probability (`segments_from_scores`), then `temporal_nms` drops same-class segments
    overlapping a better one by tIoU > nms_iou.  label is the dataset's label (channel - 1);
    start and end are frame indices, end exclusive.  Runs in eval mode without gradients and
    restores the model's mode.
    """
    x = clip if isinstance(clip, tl.Tensor) else tl.tensor(np.asarray(clip, dtype=np.float32))
    if x.ndim == 4:
        x = x.reshape((1,) + tuple(x.shape))
    if x.ndim != 5 or x.shape[0] != 1:
        raise ValueError(f"localize: expected one clip (C, T, H, W) or (1, C, T, H, W), got shape "
                         f"{tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        with tl.no_grad():
            scores = model(x)                                # (1, num_classes + 1, T)
    finally:
        model.train(was_training)
    if scores.ndim != 3 or scores.shape[0] != 1:
        raise ValueError(f"localize: the model must return (1, num_classes + 1, T) scores, got "
                         f"{tuple(scores.shape)}")
    probs = F.softmax(scores, 1)[0].T                        # (T, num_classes + 1)
    segments = segments_from_scores(probs, threshold, min_length=min_length,
                                    ignore_index=0)
    segments = [(s, e, label - 1, score) for s, e, label, score in segments]
    return temporal_nms(segments, nms_iou)

"""snippet_localizer: temporal action localization with per-frame scores and temporal convolution.

A long untrimmed video holds a few action instances among background frames.  The simplest
localizer classifies every frame, background included, and turns runs of confident frames into
segments:

    clip (N, 3, T, H, W)
      --backbone: two 3D convs, stride 1 in time-->  (N, D, T, H/4, W/4)   local motion per frame
      --mean over space-->                            (N, D, T)             one feature per frame
      --temporal head: dilated Conv1d stack-->        (N, num_classes + 1, T)  per-frame logits
      --softmax, segments_from_scores, temporal_nms--> [(start, end, label, score), ...]

Channel 0 of the scores is the background class; action a (0 <= a < num_classes, the dataset's
labels) is channel a + 1 (`frame_targets` builds the per-frame targets that way, and `localize`
maps channels back to dataset labels).  Training is per-frame cross entropy:
`F.cross_entropy(scores, targets)` with scores (N, C + 1, T) and targets (N, T) int64.

Why 3D convs first: one frame of the synthetic 'localization' videos cannot tell its action (the
motion and order families hide the label in motion), so the per-frame feature must already see a
few neighbouring frames (3 x 3 x 3 kernels, receptive field 5 frames).  Why dilated temporal
convolutions: an 'order' instance (horizontal then vertical) is only recognisable over most of its
up to 32 frames; kernels of 3 with dilations 1, 2, 4, 8 see 31 frames of features (35 frames of
video) at the cost of four layers.  Time is never downsampled, so scores stay per frame.

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
    width: channels of the first 3D conv (the second has 2 * width); hidden: channels of the
    temporal head; kernel_size and dilations: its dilated Conv1d layers (odd kernel, 'same' padding,
    so T is kept).  batch_norm: a BatchNorm after every conv but the classifier (default).  Without
    it the per-frame features of a small object on a flat background are small and nearly alike,
    and training crawls: while examples/localize.py was built, its per-frame loss was still about
    0.85 after 240 Adam steps without (32 x 32 frames, lr 3e-3), and 0.56 after 50 steps with
    (16 x 16 frames, lr 1e-2; not a controlled comparison, but the gap is large).

    forward(x): x (N, in_channels, T, H, W) -> scores (N, num_classes + 1, T), logits with the
    background in channel 0 and action a in channel a + 1.
    """

    name = 'snippet_localizer'

    def __init__(self, num_classes, width=8, hidden=32, kernel_size=3, dilations=(1, 2, 4, 8),
                 in_channels=3, batch_norm=True):
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"SnippetLocalizer: num_classes must be a positive int, "
                             f"got {num_classes!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"SnippetLocalizer: kernel_size must be odd (same padding keeps T), "
                             f"got {kernel_size}")
        self.num_classes, self.in_channels = num_classes, in_channels
        # stride 2 in space shrinks the work, stride 1 in time keeps one feature per frame
        def norm(kind, channels):                            # a BatchNorm, or nothing
            return [kind(channels)] if batch_norm else []

        self.backbone = nn.Sequential(
            nn.Conv3d(in_channels, width, 3, stride=(1, 2, 2), padding=1),
            *norm(nn.BatchNorm3d, width), nn.ReLU(),
            nn.Conv3d(width, 2 * width, 3, stride=(1, 2, 2), padding=1),
            *norm(nn.BatchNorm3d, 2 * width), nn.ReLU())
        layers, channels = [], 2 * width
        for d in dilations:
            layers += [nn.Conv1d(channels, hidden, kernel_size, padding=d * (kernel_size // 2),
                                 dilation=d), *norm(nn.BatchNorm1d, hidden), nn.ReLU()]
            channels = hidden
        self.temporal = nn.Sequential(*layers)
        self.classifier = nn.Conv1d(channels, num_classes + 1, 1)

    def forward(self, x):
        check_clip(self.name, x, channels=self.in_channels, min_size=4)
        features = self.backbone(x).mean(dim=(3, 4))         # (N, 2 * width, T)
        return self.classifier(self.temporal(features))      # (N, num_classes + 1, T)


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

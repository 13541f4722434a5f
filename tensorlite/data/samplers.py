"""Temporal samplers: which frames of a video become a clip.

Raw frame counts are enormous (one minute at 30 fps is 1,800 frames, about 270 million values at
224 x 224 RGB), and no model takes them all, so sampling is essential. A temporal sampler is a
small callable

    sampler(num_frames_in_video, rng=None) -> int64 indices

that looks only at the video's frame count and says which frames to decode; the decoder then reads
only those. `MultiClip` returns a list of index arrays (one per clip) and `TwoRate` a pair
(slow, fast). Every index is in range [0, num_frames_in_video).

Short videos. A clip of `num_frames` frames at `stride` spans (num_frames - 1) * stride + 1 frames.
When the video is shorter than that span the clip starts at frame 0 and, with `pad='loop'` (the
default), wraps around to the start of the video; with `pad='last'` it repeats the last frame
instead (indices then stay non-decreasing).

Randomness. A random sampler draws from the NumPy Generator passed as `rng`; without one it draws
from `sample_generator()`, the generator of the sample being loaded. `DataLoader` sets that to a
generator seeded by (seed, epoch, dataset index) around each `dataset[index]`, so a dataset that
calls `sampler(n)` gets the same frames for the same seed whichever worker process loads it. Outside
a loader it is an unseeded module generator; `using_generator(rng)` replaces it for a block.

Training and evaluation. Samplers that are random in training (`SegmentSampler`,
`RandomTemporalCrop`, `TwoRate`) take `training=True` and have `.train()` / `.eval()` as
`nn.Module` does; in evaluation they return the deterministic, centred choice.
"""
import contextlib

import numpy as np

PAD_MODES = ('loop', 'last')

_generator = np.random.default_rng()


def sample_generator():
    """The NumPy Generator random samplers and transforms draw from when called without `rng`."""
    return _generator


@contextlib.contextmanager
def using_generator(rng):
    """Within the block, `sample_generator()` is `rng` (a numpy.random.Generator); restored after.

    The loader wraps each `dataset[index]` in this with a generator seeded by (seed, epoch, index).
    Per process, not per thread: do not load samples from several threads of one process."""
    global _generator
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"using_generator expects a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    previous, _generator = _generator, rng
    try:
        yield rng
    finally:
        _generator = previous


def resolve_rng(rng):
    """`rng` if given, else the current sample generator."""
    if rng is None:
        return _generator
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {type(rng).__name__}")
    return rng


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_pad(pad):
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    return pad


def _check_video_length(n):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"a sampler needs the video's frame count, a positive integer; got {n!r}")
    return int(n)


def clip_indices(start, num_frames, stride, n, pad='loop'):
    """The `num_frames` indices start, start + stride, ... brought into [0, n): wrapped around the
    video with pad='loop', clamped to the last frame with pad='last'. int64, shape (num_frames,)."""
    idx = start + stride * np.arange(num_frames, dtype=np.int64)
    if pad == 'loop':
        return idx % n
    return np.minimum(idx, n - 1)


class _FixedClip:
    """Shared parts of the samplers that take `num_frames` frames `stride` apart."""

    def __init__(self, num_frames, stride, pad):
        self.num_frames = _positive_int('num_frames', num_frames)
        self.stride = _positive_int('stride', stride)
        self.pad = _check_pad(pad)

    @property
    def span(self):
        """How many frames of the video one clip covers, first to last inclusive."""
        return (self.num_frames - 1) * self.stride + 1


class _TrainEval:
    training = True

    def train(self, mode=True):
        """Random choices (training); returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Deterministic centred choices (evaluation); returns self."""
        return self.train(False)


class UniformStride(_FixedClip):
    """Uniform sampling: every `stride`-th frame, `num_frames` of them, from the video's centre.

    The lesson's "pick every k-th frame (e.g. 1 in 8) to bring the input down to a manageable size":
    a fixed, deterministic clip. It starts at (n - span) // 2, so the clip is centred; a video
    shorter than the span starts at 0 and loops (pad='loop') or repeats its last frame
    (pad='last').
    With `num_frames=None` it returns every `stride`-th frame of the whole video, 0, stride, ...,
    whose count depends on the video (such clips cannot be batched together).

    UniformStride(8, stride=4)(100) -> [35 39 43 47 51 55 59 63]   (span 29, start (100 - 29) // 2)
    """

    def __init__(self, num_frames, stride=1, pad='loop'):
        if num_frames is None:
            self.num_frames = None
            self.stride = _positive_int('stride', stride)
            self.pad = _check_pad(pad)
        else:
            super().__init__(num_frames, stride, pad)

    def __call__(self, n, rng=None):
        n = _check_video_length(n)
        if self.num_frames is None:
            return np.arange(0, n, self.stride, dtype=np.int64)
        start = max(n - self.span, 0) // 2
        return clip_indices(start, self.num_frames, self.stride, n, self.pad)

    def __repr__(self):
        return (f"UniformStride(num_frames={self.num_frames}, stride={self.stride}, "
                f"pad={self.pad!r})")


class SegmentSampler(_TrainEval):
    """Evenly spaced segments, one frame from each (TSN, Wang et al. 2016).

    The video is cut into `num_segments` equal segments [k n / S, (k + 1) n / S); in training one
    frame is drawn uniformly from each segment, in evaluation the frame at each segment's centre.
    The clip covers the whole video however long it is, at the cost of a frame rate that varies
    from video to video. Indices are non-decreasing; a video with fewer frames than segments gives
    repeated frames (a frame then spans several segments). Returns int64 (num_segments,).
    """

    def __init__(self, num_segments, training=True):
        self.num_segments = _positive_int('num_segments', num_segments)
        self.training = bool(training)

    def __call__(self, n, rng=None):
        n = _check_video_length(n)
        length = n / self.num_segments
        if self.training:
            offset = resolve_rng(rng).random(self.num_segments)
        else:
            offset = np.full(self.num_segments, 0.5)
        idx = np.floor((np.arange(self.num_segments) + offset) * length).astype(np.int64)
        # floor((k + u) n / S) < n for u < 1, but rounding of u near 1 could reach n
        return np.minimum(idx, n - 1)

    def __repr__(self):
        return f"SegmentSampler(num_segments={self.num_segments}, training={self.training})"


class RandomTemporalCrop(_FixedClip, _TrainEval):
    """Random temporal crop: a contiguous chunk of `num_frames` frames at `stride`, starting at a
    random position (training), or the centred chunk (evaluation, the same as UniformStride).

    The lesson's "randomly sample a contiguous chunk (e.g. 64 frames starting at a random position)
    from a longer clip": each epoch sees a different part of every video. The start is uniform on
    [0, n - span]; a video shorter than the span starts at 0 and loops or pads (see the module doc).
    Returns int64 (num_frames,).
    """

    def __init__(self, num_frames, stride=1, training=True, pad='loop'):
        super().__init__(num_frames, stride, pad)
        self.training = bool(training)

    def start(self, n, rng=None):
        """Where the clip starts in a video of n frames."""
        room = max(n - self.span, 0)
        if self.training:
            return int(resolve_rng(rng).integers(room + 1))
        return room // 2

    def __call__(self, n, rng=None):
        n = _check_video_length(n)
        return clip_indices(self.start(n, rng), self.num_frames, self.stride, n, self.pad)

    def __repr__(self):
        return (f"RandomTemporalCrop(num_frames={self.num_frames}, stride={self.stride}, "
                f"training={self.training}, pad={self.pad!r})")


class MultiClip(_FixedClip):
    """Multi-clip evaluation: `num_clips` clips of `num_frames` frames at `stride`, spread evenly
    over the video; a model's predictions are averaged over them.

    The lesson's "at evaluation, average predictions over multiple chunks". Starts are
    round(linspace(0, n - span, num_clips)), so the first clip begins at frame 0 and the last ends
    at the last frame; one clip is the centred clip. A video shorter than the span gives num_clips
    identical clips (starting at 0, looped or padded). Returns a list of num_clips int64 arrays of
    shape (num_frames,).
    """

    def __init__(self, num_clips, num_frames, stride=1, pad='loop'):
        super().__init__(num_frames, stride, pad)
        self.num_clips = _positive_int('num_clips', num_clips)

    def __call__(self, n, rng=None):
        n = _check_video_length(n)
        room = max(n - self.span, 0)
        if self.num_clips == 1:
            starts = [room // 2]
        else:
            starts = np.round(np.linspace(0, room, self.num_clips)).astype(np.int64)
        return [clip_indices(int(s), self.num_frames, self.stride, n, self.pad) for s in starts]

    def __repr__(self):
        return (f"MultiClip(num_clips={self.num_clips}, num_frames={self.num_frames}, "
                f"stride={self.stride}, pad={self.pad!r})")


class TwoRate(RandomTemporalCrop):
    """SlowFast's two sampling rates from one clip (Feichtenhofer et al. 2019).

    The fast pathway gets `num_frames` frames at `stride` (many frames: temporal detail), the slow
    pathway every `alpha`-th of those, fast[::alpha] (few frames, which the network can afford to
    look at with more spatial detail). The fast clip starts at random in training and is centred in
    evaluation, as RandomTemporalCrop. `num_frames` must be a multiple of alpha, so that the slow
    clip has exactly num_frames // alpha frames and the pathways' time axes line up.
    Returns (slow, fast): int64 arrays of shapes (num_frames // alpha,) and (num_frames,).
    """

    def __init__(self, alpha, num_frames, stride=1, training=True, pad='loop'):
        super().__init__(num_frames, stride, training, pad)
        self.alpha = _positive_int('alpha', alpha)
        if self.num_frames % self.alpha:
            raise ValueError(f"TwoRate needs num_frames to be a multiple of alpha so the slow clip "
                             f"has num_frames // alpha frames; got num_frames={self.num_frames}, "
                             f"alpha={self.alpha}")

    def __call__(self, n, rng=None):
        fast = super().__call__(n, rng)
        return fast[::self.alpha].copy(), fast

    def __repr__(self):
        return (f"TwoRate(alpha={self.alpha}, num_frames={self.num_frames}, stride={self.stride}, "
                f"training={self.training}, pad={self.pad!r})")

"""Clip transforms: the same spatial transform for every frame of a clip.

A clip is a NumPy array of frames, channels last, (T, H, W, C): uint8 RGB as decoded (C = 3), or a
float flow clip (C = 2: dx, dy) or flow stack (C = 2L: dx_1, dy_1, ..., dx_L, dy_L, as Simonyan &
Zisserman stack them). The spatial transforms (Resize, CenterCrop, RandomResizedCrop,
RandomHorizontalFlip) read H and W from axes -3 and -2, so a single image (H, W, C) or several clips
(K, T, H, W, C) work too. A random transform draws its parameters once per call and applies them to
every frame: cropping frame 3 somewhere else than frame 2 would invent motion that is not in the
video. A tuple or list of clips with the same H and W (RGB and flow, SlowFast's slow and fast
clips) gets one draw for all of them and comes back as the same kind of sequence.

`ToTensor` then moves channels first, (C, T, H, W) float32, and `Normalize` works on that layout.
Both return NumPy arrays, not tensorlite Tensors: datasets run in DataLoader worker processes,
and the loader's collate turns the batch into Tensors once.

Randomness: each transform is called as `transform(clip, rng=None)`; a random one draws from `rng`
(a numpy.random.Generator) or, without one, from `samplers.sample_generator()`, which the
DataLoader seeds per sample from (seed, epoch, index). `Compose` passes its `rng` on.

Resizing is bilinear, written here in NumPy: PyTorch's `interpolate(mode='bilinear',
align_corners=False, antialias=False)`. There is no antialiasing, so shrinking by more than 2x skips
pixels and can alias fine texture; torchvision's default (antialias=True) averages them instead.
"""
import math
import numbers

import numpy as np

from .samplers import resolve_rng


# ---- bilinear resizing --------------------------------------------------------------------------

def _bilinear_taps(in_size, out_size, dtype):
    """For each output position: the two input positions it reads and the weight of the second.

    Half-pixel centres (align_corners=False): output pixel i covers input coordinate
    (i + 0.5) * in/out - 0.5. Coordinates left of the first pixel centre clamp to it, as in
    PyTorch."""
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(src.astype(np.intp), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0).astype(dtype)
    return i0, i1, w1


def resize(clip, size, flow=False):
    """Bilinear resize of every frame of `clip` (..., H, W, C) to `size` = (h, w): (..., h, w, C).

    uint8 in, uint8 out (rounded half up); float in, float out (float64 stays float64, other
    floats are computed in float32). Separable: rows first, then columns, each a
    gather of two neighbours and a weighted sum, vectorized over frames and channels. With
    flow=True the channels are (dx, dy) pairs in pixels, and they are scaled by w / W and h / H so
    that they stay displacements in pixels of the resized frame."""
    clip = _check_frames(clip, 'resize')
    h, w = _pair(size, 'size')
    H, W = clip.shape[-3], clip.shape[-2]
    if flow:
        _check_flow_channels(clip, 'resize')
    if clip.dtype != np.uint8 and clip.dtype.kind != 'f':
        raise TypeError(f"resize expects uint8 frames or float arrays, got dtype {clip.dtype}")
    if (h, w) == (H, W):
        return clip.copy()
    work = np.float64 if clip.dtype == np.float64 else np.float32
    y0, y1, wy = _bilinear_taps(H, h, work)
    x0, x1, wx = _bilinear_taps(W, w, work)
    # rows: out = top + wy * (bottom - top), in place, so no clip-sized temporaries pile up
    top = np.take(clip, y0, axis=-3).astype(work)                  # (..., h, W, C)
    bottom = np.take(clip, y1, axis=-3).astype(work)
    bottom -= top
    bottom *= wy[:, None, None]
    top += bottom
    # then columns of the result, the same way
    out = np.take(top, x0, axis=-2)                                 # (..., h, w, C)
    right = np.take(top, x1, axis=-2)
    right -= out
    right *= wx[:, None]
    out += right
    if flow:
        out[..., 0::2] *= w / W
        out[..., 1::2] *= h / H
    if clip.dtype == np.uint8:
        # a convex combination of values in [0, 255]: adding 0.5 and truncating rounds it
        out += 0.5
        return out.astype(np.uint8)
    return out.astype(clip.dtype, copy=False)


# ---- argument checks ----------------------------------------------------------------------------

def _pair(size, name):
    """An int or a pair of ints -> (h, w), each >= 1."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                       for s in size)):
        raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, "
                         f"got {size!r}")
    return int(size[0]), int(size[1])


def _check_frames(clip, who):
    if not isinstance(clip, np.ndarray):
        raise TypeError(f"{who} expects a NumPy array of frames (..., H, W, C), "
                        f"got {type(clip).__name__}")
    if clip.ndim < 3:
        raise ValueError(f"{who} expects frames (..., H, W, C) with at least 3 dims, "
                         f"got shape {clip.shape}")
    if clip.shape[-3] == 0 or clip.shape[-2] == 0:
        raise ValueError(f"{who} got empty frames of shape {clip.shape}")
    return clip


def _check_flow_channels(clip, who):
    if clip.shape[-1] % 2 or clip.dtype.kind != 'f':
        raise ValueError(f"{who} with flow=True expects float (dx, dy) channel pairs, "
                         f"(..., H, W, 2L); got dtype {clip.dtype}, shape {clip.shape}")


def _clips(clip):
    """(list of clips, rebuild function): a tuple/list of clips shares one random draw."""
    if isinstance(clip, (tuple, list)):
        if not clip:
            raise ValueError("a transform got an empty sequence of clips")
        return list(clip), type(clip)
    return [clip], None


def _rebuild(out, kind):
    return out[0] if kind is None else kind(out)


class _SpatialTransform:
    """Draw parameters once from the frame size, apply them to every frame of every clip given.

    Subclasses define `params(height, width, rng)` and `apply(clip, params)`."""
    random = False

    def __call__(self, clip, rng=None):
        clips, kind = _clips(clip)
        who = type(self).__name__
        for c in clips:
            _check_frames(c, who)
        sizes = {c.shape[-3:-1] for c in clips}
        if len(sizes) > 1:
            raise ValueError(f"{who} got clips of different frame sizes {sorted(sizes)}; "
                             f"clips transformed together must share (H, W)")
        (height, width), = sizes
        p = self.params(height, width, resolve_rng(rng) if self.random else None)
        return _rebuild([self.apply(c, p) for c in clips], kind)


# ---- spatial transforms -------------------------------------------------------------------------

class Resize(_SpatialTransform):
    """Resize every frame: an int `size` scales the short side to `size` and the long side in
    proportion (int(size * long / short), as torchvision); a pair (h, w) gives that size exactly.
    (..., H, W, C) -> (..., h, w, C), bilinear (see `resize`; no antialiasing). With flow=True the
    (dx, dy) channels are scaled with the frame."""

    def __init__(self, size, flow=False):
        short_side = isinstance(size, numbers.Integral) and not isinstance(size, bool)
        self.size = _pair(size, 'size')[0] if short_side else _pair(size, 'size')
        self.flow = bool(flow)

    def params(self, height, width, rng):
        if not isinstance(self.size, numbers.Integral):
            return self.size
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def apply(self, clip, size):
        return resize(clip, size, flow=self.flow)

    def __repr__(self):
        return f"Resize(size={self.size}, flow={self.flow})"


def _crop(clip, top, left, height, width):
    return clip[..., top:top + height, left:left + width, :]


class CenterCrop(_SpatialTransform):
    """The central `size` = h x w (or size x size) region of every frame: (..., h, w, C). Top-left
    corner at (round((H - h) / 2), round((W - w) / 2)), as torchvision. A crop larger than the frame
    pads it with zeros, centred, first (as torchvision)."""

    def __init__(self, size):
        self.size = _pair(size, 'size')

    def params(self, height, width, rng):
        return self.size

    def apply(self, clip, size):
        h, w = size
        H, W = clip.shape[-3], clip.shape[-2]
        if h > H or w > W:
            pad_h, pad_w = max(h - H, 0), max(w - W, 0)
            pads = [(0, 0)] * (clip.ndim - 3) + [(pad_h // 2, (pad_h + 1) // 2),
                                                 (pad_w // 2, (pad_w + 1) // 2), (0, 0)]
            clip = np.pad(clip, pads)
            H, W = clip.shape[-3], clip.shape[-2]
        top, left = int(round((H - h) / 2.0)), int(round((W - w) / 2.0))
        return _crop(clip, top, left, h, w).copy()

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class RandomResizedCrop(_SpatialTransform):
    """Inception-style crop: a random region covering a fraction `scale` of the frame's area with
    aspect ratio (w / h) in `ratio` (drawn log-uniformly), resized to `size`; the same region for
    every frame. (..., H, W, C) -> (..., h, w, C).

    Same draw as torchvision: up to 10 tries for a region that fits; failing that, the largest
    central crop whose ratio is clamped into `ratio`. With flow=True the (dx, dy) channels are
    scaled by the resize."""
    random = True

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flow=False):
        self.size = _pair(size, 'size')
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1]):
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {scale!r}")
        if not (len(ratio) == 2 and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.flow = bool(flow)

    def params(self, height, width, rng):
        """(top, left, h, w) of the region to crop."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(self, clip, region):
        # crop first (a view), so only the region is interpolated
        return resize(_crop(clip, *region), self.size, flow=self.flow)

    def __repr__(self):
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"flow={self.flow})")


class RandomHorizontalFlip(_SpatialTransform):
    """Mirror every frame left-right with probability p (one coin per clip).

    With flow=True the input holds (dx, dy) channel pairs (a flow clip (T, H, W, 2) or a stack
    (..., H, W, 2L)): mirroring the image reverses horizontal motion, so every dx is negated too;
    dy is unchanged. Returns a new array either way."""
    random = True

    def __init__(self, p=0.5, flow=False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.flow = bool(flow)

    def params(self, height, width, rng):
        return bool(rng.random() < self.p)

    def apply(self, clip, flip):
        if self.flow:
            _check_flow_channels(clip, 'RandomHorizontalFlip')
        if not flip:
            return clip.copy()
        out = clip[..., ::-1, :].copy()
        if self.flow:
            out[..., 0::2] *= -1
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p}, flow={self.flow})"


# ---- layout and values --------------------------------------------------------------------------

class ToTensor:
    """Frames, channels last, to the model's channels-first float32 layout, as a NumPy array.

    (T, H, W, C) -> (C, T, H, W); (K, T, H, W, C) -> (K, C, T, H, W); an image (H, W, C) ->
    (C, H, W).
    uint8 values are divided by 255 (to [0, 1]); float input (flow, in pixels) keeps its values.
    The name is torchvision's; the result is a contiguous NumPy float32 array, not a tensorlite
    Tensor (the DataLoader's collate makes the batch a Tensor)."""

    def __call__(self, clip, rng=None):
        clips, kind = _clips(clip)
        return _rebuild([self._one(c) for c in clips], kind)

    @staticmethod
    def _one(clip):
        _check_frames(clip, 'ToTensor')
        if clip.dtype == np.uint8:
            values = clip.astype(np.float32) * np.float32(1 / 255)
        elif clip.dtype.kind == 'f':
            values = clip.astype(np.float32, copy=False)
        else:
            raise TypeError(f"ToTensor expects uint8 frames or float flow, got dtype {clip.dtype}")
        channel_to = 0 if clip.ndim == 3 else -4
        return np.ascontiguousarray(np.moveaxis(values, -1, channel_to))

    def __repr__(self):
        return "ToTensor()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a channels-first float array: (C, T, H, W),
    (C, H, W) or (K, C, T, H, W) (channel axis -4 for 4 or more dims). Returns float32."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.size != self.std.size:
            raise ValueError(f"mean and std need one value per channel each; got {self.mean.size} "
                             f"means and {self.std.size} stds")
        if np.any(self.std == 0):
            raise ValueError(f"std must be non-zero, got {self.std.tolist()}")

    def __call__(self, clip, rng=None):
        clips, kind = _clips(clip)
        return _rebuild([self._one(c) for c in clips], kind)

    def _one(self, x):
        if not isinstance(x, np.ndarray) or x.dtype.kind != 'f' or x.ndim < 3:
            raise TypeError(f"Normalize expects a float channels-first array (C, T, H, W) "
                            f"(after ToTensor), got {type(x).__name__} "
                            f"{getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
        axis = 0 if x.ndim == 3 else x.ndim - 4
        channels = x.shape[axis]
        if self.mean.size not in (1, channels):
            raise ValueError(f"Normalize has {self.mean.size} means for an input with {channels} "
                             f"channels (shape {x.shape}, channel axis {axis})")
        shape = [1] * x.ndim
        shape[axis] = -1
        return ((x - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32,
                                                                                  copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply transforms in order: Compose([Resize(128), RandomResizedCrop(112), ToTensor()]).

    `rng`, when given, is passed to every transform (so each must accept it); without it each random
    transform draws from the sample generator the loader seeded, so plain callables work too."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose expects callables, got {type(t).__name__}")

    def __call__(self, clip, rng=None):
        for t in self.transforms:
            clip = t(clip) if rng is None else t(clip, rng=rng)
        return clip

    def __repr__(self):
        inner = ''.join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"

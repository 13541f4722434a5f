r"""Dense optical flow, written by hand: Farnebäck's polynomial-expansion method, coarse to fine.

The temporal stream of a two-stream network (Simonyan & Zisserman 2014) does not look at frames: it
looks at the motion between them, a displacement per pixel.  This module computes that motion,
draws it, stacks it for the network, and keeps it on disk, because optical flow is not free.

Convention
----------
`optical_flow(prev, next)` returns `flow` (H, W, 2) float32, `flow[y, x] = (dx, dy)` in pixels, with

    prev(y, x)  ~  next(y + dy, x + dx)

(x to the right, y down): a texture that moves right between the frames has dx > 0.  OpenCV's
`calcOpticalFlowFarneback` uses the same convention (its flow[..., 0] is dx).

Frames are grayscale (H, W) or RGB (H, W, 3), uint8 or float.  They are turned into luminance
Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as OpenCV's RGB2GRAY) on the uint8 scale [0, 255]:
uint8 frames as they are, float frames read as [0, 1] and multiplied by 255 (so a float frame equal
to a uint8 frame / 255 gives the same flow).  The scale matters only through the regularizers
`reg` and `reg_prior` below, which are in the units of G on that scale.

1. Polynomial expansion
-----------------------
Around every pixel p the image is approximated, in a least-squares sense with Gaussian weights
a(u) = exp(-|u|^2 / (2 sigma^2)) over a (2n+1)^2 window (n = `poly_n`, sigma = `poly_sigma`), by a
quadratic polynomial of the offset u = (u_x, u_y):

    f(p + u)  ~  u^T A(p) u + b(p)^T u + c(p),  A = [[a_xx, a_xy/2], [a_xy/2, a_yy]], b = (b_x, b_y)

The normal equations are (B^T W B) r = B^T W f, with the basis B = {1, x, y, x^2, y^2, xy} sampled
over the window and W = diag(a).  Because a(u) = g(u_x) g(u_y) is separable and symmetric, every
odd moment vanishes and the Gram matrix B^T W B splits: with m_k = sum_t t^k g(t),

    b_x = <x, f> / (m0 m2),   b_y = <y, f> / (m0 m2),   a_xy = <xy, f> / m2^2,

and (c, a_xx, a_yy) come from the 3x3 block of {1, x^2, y^2}.  The six moments <p, f> are separable
correlations: three along x (with g(t), t g(t), t^2 g(t)), then six combinations along y.  Frames
are first smoothed with a Gaussian of std `presmooth`, which makes the quadratic model fit better.

2. Displacement of a quadratic
------------------------------
If the next frame is the previous one moved by d, f2(x) = f1(x - d), the expansions agree in A and
b2 = b1 - 2 A d: the displacement is d = -A^{-1} (b2 - b1) / 2.  With a current estimate d~ (from
the coarser level or the previous iteration), the second expansion is read at the displaced point
p + d~ (bicubic interpolation), and

    A(p) = (A1(p) + A2(p + d~)) / 2,     dB(p) = A(p) d~(p) - (b2(p + d~) - b1(p)) / 2,

so that A(p) d = dB(p) (Farnebäck 2003, with the prior displacement).  One pixel cannot
determine d (a 1-D texture only constrains the normal component), so d is the weighted
least-squares solution over a window w (a Gaussian of std `window_sigma`, `winsize` wide):

    G = sum_q w(q - p) A(q)^T A(q),      h = sum_q w(q - p) A(q)^T dB(q),
    d(p) = (G + (reg + reg_prior) I)^{-1} (h + reg_prior d~(p)).

The products A^T A (3 numbers) and A^T dB (2 numbers) are formed per pixel, smoothed by the window
(a separable blur of 5 channels), and the 2x2 system is solved per pixel.  Where the texture
does not determine d -- a flat region, or a one-dimensional texture whose tangential component is
free (the aperture problem) -- the two small Tikhonov terms decide: `reg` pulls d towards 0 (a
static scene, OpenCV's behaviour), `reg_prior` towards the coarser level's flow d~ (which fills a
flat moving object with its motion, but also keeps the halo that the coarse level's wide windows
spread around it; benchmarks/bench_flow.py measures both).  Pixels
whose displaced point leaves the image drop out of the sums, and pixels within `border` of the
edge, where the expansion saw replicated pixels, are down-weighted.

3. Coarse to fine
-----------------
The expansion only holds over a few pixels, so both frames are down-sampled into a pyramid
(`levels` coarser levels, each `pyr_scale` times the previous size, Gaussian anti-aliasing of std
(1/pyr_scale - 1)/2, bilinear resampling; a level with a side under 32 pixels is not built, as in
OpenCV).  The flow starts at 0 on the coarsest level, runs `iterations` displacement steps there,
is up-sampled bilinearly (and its values multiplied by the size ratio) to the next level as d~, and
so on to the full resolution.

Kernels
-------
The per-pixel stages -- polynomial expansion, separable blur, bilinear resize, the normal equations
with bicubic warping, the 2x2 solve -- are Numba kernels with CPU and CUDA twins
(tensorlite/kernels/cpu/flow.py, tensorlite/kernels/cuda/flow.py).  This file calls them through
`kernels.twin('flow', array)`, so NumPy frames run on the CPU and CuPy frames on the GPU, on the
same code path.  Accuracy and speed against OpenCV's Farnebäck: benchmarks/bench_flow.py.
"""
import hashlib
import json
import math
import os
import warnings
import zipfile

import numpy as np

from .. import backend, kernels
from .._atomic import atomic_write

#: Bump when a change to the algorithm changes its output: cached flows of other versions are
#: not reused (the version is part of every cache key).
ALGORITHM_VERSION = 1

#: Default parameters of `optical_flow` (see the module docstring for each symbol).
DEFAULT_PARAMS = {
    'levels': 3,            # coarser pyramid levels above the full resolution
    'pyr_scale': 0.5,       # size ratio between consecutive levels
    'winsize': 15,          # width of the window that averages the normal equations
    'window_sigma': 2.5,    # std of its Gaussian weights, pixels
    'iterations': 3,        # displacement steps per level
    'poly_n': 5,            # half-width of the polynomial-expansion window (2n+1 pixels)
    'poly_sigma': 1.2,      # std of its Gaussian applicability, pixels
    'presmooth': 1.0,       # std of the Gaussian that smooths each frame first, pixels (0: none)
    'reg': 1e-3,            # pull towards 0 where the texture is weak
    'reg_prior': 0.0,       # pull towards the coarser level's flow there
    'border': 5,            # pixels next to the edge whose weight ramps down
}

MIN_LEVEL_SIZE = 32         # a pyramid level smaller than this (either side) is not built: a
                            # coarser one spreads a small object's motion over its surroundings

# ITU-R BT.601 luma weights (OpenCV's RGB2GRAY)
LUMA = (0.299, 0.587, 0.114)


# ==================================================================================================
# frames and parameters
# ==================================================================================================

def flow_params(**params):
    """The full, checked parameter dict of `optical_flow`: DEFAULT_PARAMS updated by `params`.
    An unknown name or an out-of-range value raises an error that names it."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise TypeError(f"optical_flow: unknown parameter(s) {', '.join(unknown)}; expected some "
                        f"of {', '.join(DEFAULT_PARAMS)}")
    p = dict(DEFAULT_PARAMS, **params)
    ints = {'levels': 0, 'winsize': 1, 'iterations': 1, 'poly_n': 1, 'border': 0}
    for name, low in ints.items():
        v = p[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"optical_flow: {name} must be an int >= {low}, got {v!r}")
        p[name] = int(v)
    if p['winsize'] % 2 == 0:
        raise ValueError(f"optical_flow: winsize must be odd (a centred window), got "
                         f"{p['winsize']}")
    positive = {'window_sigma': (0, math.inf), 'poly_sigma': (0, math.inf),
                'pyr_scale': (0, 1)}
    for name, (low, high) in positive.items():
        v = p[name]
        if not (isinstance(v, (int, float, np.number)) and low < float(v) < high):
            raise ValueError(f"optical_flow: {name} must be a number in ({low}, {high}), "
                             f"got {v!r}")
        p[name] = float(v)
    for name in ('presmooth', 'reg', 'reg_prior'):
        v = p[name]
        if not (isinstance(v, (int, float, np.number)) and 0 <= float(v) < math.inf):
            raise ValueError(f"optical_flow: {name} must be a finite number >= 0, got {v!r}")
        p[name] = float(v)
    return p


def luminance(frame, name='frame'):
    """frame (H, W), (H, W, 1) or (H, W, 3), uint8 or float -> float32 (H, W) luminance on the
    uint8 scale [0, 255] (float frames are read as [0, 1]).  NumPy or CuPy, as the frame."""
    xp = backend.array_module(frame)
    shape = tuple(frame.shape)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))):
        raise ValueError(f"optical_flow: {name} must be grayscale (H, W) or (H, W, 1), or RGB "
                         f"(H, W, 3); got shape {shape}")
    if frame.dtype == np.uint8:
        scale = 1.0
    elif frame.dtype.kind == 'f':
        scale = 255.0
    else:
        raise TypeError(f"optical_flow: {name} has dtype {frame.dtype}, expected uint8 (0..255) "
                        f"or float (0..1)")
    if 0 in shape:
        raise ValueError(f"optical_flow: {name} is empty (shape {shape})")
    f = frame.astype(xp.float32)
    if len(shape) == 3 and shape[2] == 3:
        gray = (LUMA[0] * scale) * f[..., 0] + (LUMA[1] * scale) * f[..., 1] \
            + (LUMA[2] * scale) * f[..., 2]
    else:
        gray = f.reshape(shape[:2]) * scale
    return xp.ascontiguousarray(gray, dtype=xp.float32)


def gaussian_taps(sigma, half_width=None):
    """A normalized Gaussian filter of std `sigma`, float32 (2 half_width + 1,); half_width
    defaults to ceil(3 sigma), at least 1."""
    if half_width is None:
        half_width = max(1, int(math.ceil(3.0 * sigma)))
    t = np.arange(-half_width, half_width + 1, dtype=np.float64)
    g = np.exp(-t * t / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


# ==================================================================================================
# the pyramid of polynomial expansions of one frame, and the flow between two of them
# ==================================================================================================

def pyramid_sizes(H, W, levels, pyr_scale):
    """[(h, w)] from the full resolution down: `levels` coarser levels, stopping before one with a
    side below MIN_LEVEL_SIZE."""
    sizes = [(H, W)]
    for _ in range(levels):
        h, w = sizes[-1]
        h2, w2 = int(round(h * pyr_scale)), int(round(w * pyr_scale))
        if min(h2, w2) < MIN_LEVEL_SIZE:
            break
        sizes.append((h2, w2))
    return sizes


def expand_frame(gray, params):
    """gray (H, W) float32 -> [coeffs (5, h, w) float32] from the coarsest level to the full
    resolution: the polynomial expansion of each level of the frame's pyramid."""
    xp = backend.array_module(gray)
    K = kernels.twin('flow', gray)
    level = gray[None]                                      # (1, H, W): kernels take planes
    if params['presmooth'] > 0:
        smoothed = xp.empty_like(level)
        K.separable_blur(level, xp.asarray(gaussian_taps(params['presmooth'])), smoothed)
        level = smoothed
    sizes = pyramid_sizes(gray.shape[0], gray.shape[1], params['levels'], params['pyr_scale'])
    anti_alias = xp.asarray(gaussian_taps(0.5 * (1.0 / params['pyr_scale'] - 1.0)))
    expansions = []
    for i, (h, w) in enumerate(sizes):
        if i > 0:
            blurred = xp.empty_like(level)
            K.separable_blur(level, anti_alias, blurred)
            level = xp.empty((1, h, w), xp.float32)
            K.resize_bilinear(blurred, 1.0, level)
        coeffs = xp.empty((5, h, w), xp.float32)
        K.poly_expansion(level[0], params['poly_n'], params['poly_sigma'], coeffs)
        expansions.append(coeffs)
    return expansions[::-1]


def flow_between(expansions0, expansions1, params):
    """The flow (2, H, W) float32 (dx, dy planes) from two frames' expansion pyramids
    (expand_frame), coarse to fine."""
    c0 = expansions0[0]
    xp = backend.array_module(c0)
    K = kernels.twin('flow', c0)
    window = xp.asarray(gaussian_taps(params['window_sigma'], params['winsize'] // 2))
    flow = None
    for coeffs0, coeffs1 in zip(expansions0, expansions1):
        _, h, w = coeffs0.shape
        if flow is None:
            flow = xp.zeros((2, h, w), xp.float32)
        else:
            # the coarser flow is the prior d~: resampled, and rescaled from coarse pixels to fine
            finer = xp.empty((2, h, w), xp.float32)
            K.resize_bilinear(flow[0:1], w / flow.shape[2], finer[0:1])
            K.resize_bilinear(flow[1:2], h / flow.shape[1], finer[1:2])
            flow = finer
        matrices = xp.empty((5, h, w), xp.float32)
        averaged = xp.empty_like(matrices)
        for _ in range(params['iterations']):
            K.update_matrices(coeffs0, coeffs1, flow, params['border'], matrices)
            K.separable_blur(matrices, window, averaged)
            K.solve_flow(averaged, params['reg'], params['reg_prior'], flow)
    return flow


def _check_pair(prev, next):
    if tuple(prev.shape) != tuple(next.shape):
        raise ValueError(f"optical_flow: prev and next must have the same shape, got "
                         f"{tuple(prev.shape)} and {tuple(next.shape)}")
    if backend.is_cupy_array(prev) != backend.is_cupy_array(next):
        raise TypeError(f"optical_flow: prev and next must be on one device, got "
                        f"{type(prev).__name__} and {type(next).__name__}")


def optical_flow(prev, next, **params):
    """Dense flow from `prev` to `next`: (H, W, 2) float32 (dx, dy) with
    prev(y, x) ~ next(y + dy, x + dx) (see the module docstring).

    prev, next: (H, W) grayscale or (H, W, 3) RGB, uint8 or float in [0, 1], NumPy or CuPy (the
    result is on the same device).  params: any of DEFAULT_PARAMS."""
    _check_pair(prev, next)
    p = flow_params(**params)
    g0, g1 = luminance(prev, 'prev'), luminance(next, 'next')
    flow = flow_between(expand_frame(g0, p), expand_frame(g1, p), p)
    return backend.array_module(flow).ascontiguousarray(flow.transpose(1, 2, 0))


def clip_flows(frames, **params):
    """frames (T, H, W) or (T, H, W, 3), uint8 or float, T >= 2 -> flows (T-1, H, W, 2) float32,
    flows[t] = optical_flow(frames[t], frames[t + 1]).  Each frame's pyramid and expansion is
    computed once and serves both pairs it belongs to."""
    if frames.ndim not in (3, 4) or frames.shape[0] < 2:
        raise ValueError(f"clip_flows: frames must be (T, H, W) or (T, H, W, 3) with T >= 2, got "
                         f"shape {tuple(frames.shape)}")
    p = flow_params(**params)
    xp = backend.array_module(frames)
    T, H, W = frames.shape[:3]
    flows = xp.empty((T - 1, H, W, 2), xp.float32)
    previous = expand_frame(luminance(frames[0], 'frames[0]'), p)
    for t in range(1, T):
        current = expand_frame(luminance(frames[t], f'frames[{t}]'), p)
        flows[t - 1] = flow_between(previous, current, p).transpose(1, 2, 0)
        previous = current
    return flows


# ==================================================================================================
# flow stacks for the temporal stream
# ==================================================================================================

def flows_to_stack(flows, start, L, subtract_mean=False):
    """flows (T-1, H, W, 2) -> the temporal stream's input (2L, H, W) float32 from the L
    consecutive flows starting at pair `start`: channels dx_0, dy_0, dx_1, dy_1, ..., with
    dx_k = flows[start + k, ..., 0] (Simonyan & Zisserman's "optical flow stacking").

    subtract_mean: subtract each channel's mean, their simple compensation of camera motion."""
    xp = backend.array_module(flows)
    if flows.ndim != 4 or flows.shape[-1] != 2:
        raise ValueError(f"flows_to_stack: flows must be (T-1, H, W, 2), got shape "
                         f"{tuple(flows.shape)}")
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"flows_to_stack: L must be an int >= 1, got {L!r}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0 \
            or start + L > flows.shape[0]:
        raise ValueError(f"flows_to_stack: pairs start..start+L-1 = {start}..{start + L - 1} must "
                         f"lie in the {flows.shape[0]} flows 0..{flows.shape[0] - 1}")
    H, W = flows.shape[1:3]
    chosen = flows[start:start + L].astype(xp.float32)             # (L, H, W, 2)
    stack = xp.ascontiguousarray(chosen.transpose(0, 3, 1, 2)).reshape(2 * L, H, W)
    if subtract_mean:
        stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    return stack


def flow_stack(frames, start, L, subtract_mean=False, **params):
    """frames (T, H, W[, 3]) -> (2L, H, W) float32: the flows of the L pairs (start, start+1),
    ..., (start+L-1, start+L), stacked as flows_to_stack (channels dx_0, dy_0, dx_1, ...).  Only
    those L+1 frames are read.  With a FlowCache, use flows_to_stack on its flows instead."""
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0 \
            or isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1 \
            or start + L >= frames.shape[0]:
        raise ValueError(f"flow_stack: L = {L!r} pairs from frame start = {start!r} need frames "
                         f"start..start+L within the {frames.shape[0]} frames")
    flows = clip_flows(frames[start:start + L + 1], **params)
    return flows_to_stack(flows, 0, L, subtract_mean)


# ==================================================================================================
# drawing: the Middlebury colour wheel
# ==================================================================================================

def middlebury_colorwheel():
    """The 55 colours (55, 3) uint8 of the Middlebury flow colour wheel (Baker et al. 2011):
    red-yellow 15, yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13, magenta-red 6
    steps, chosen so that equal angles look about equally different."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for n, start, end in segments:
        ramp = np.floor(255 * np.arange(n) / n)            # the reference code's floor steps
        seg = np.empty((n, 3))
        for c in range(3):
            seg[:, c] = start[c] + np.sign(end[c] - start[c]) * ramp
        rows.append(seg)
    return np.concatenate(rows).astype(np.uint8)


def flow_to_color(flow, max_flow=None):
    """flow (H, W, 2) -> uint8 (H, W, 3) RGB with the Middlebury colour code: the hue is the
    direction (from the colour wheel; +x is red, +y (down) orange-yellow, -x cyan-blue, -y
    violet), the saturation the magnitude |d| / max_flow (max_flow defaults to the largest
    magnitude in the flow); beyond max_flow the colour is darkened to 75 %.  Non-finite flow is
    drawn black.  NumPy or CuPy, as the flow."""
    xp = backend.array_module(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow_to_color: flow must be (H, W, 2), got shape {tuple(flow.shape)}")
    u = flow[..., 0].astype(xp.float64)
    v = flow[..., 1].astype(xp.float64)
    bad = ~(xp.isfinite(u) & xp.isfinite(v))
    u = xp.where(bad, 0.0, u)
    v = xp.where(bad, 0.0, v)
    rad = xp.sqrt(u * u + v * v)
    if max_flow is None:
        max_flow = float(rad.max()) if rad.size else 0.0
    elif not max_flow > 0:
        raise ValueError(f"flow_to_color: max_flow must be > 0, got {max_flow!r}")
    scale = 1.0 / max(float(max_flow), np.finfo(np.float64).eps)
    u, v, rad = u * scale, v * scale, rad * scale
    wheel = xp.asarray(middlebury_colorwheel(), dtype=xp.float64) / 255.0
    ncols = wheel.shape[0]
    angle = xp.arctan2(-v, -u) / math.pi                    # in [-1, 1]; +x gives -1 or 1: red
    fk = (angle + 1.0) / 2.0 * (ncols - 1)
    k0 = xp.floor(fk).astype(xp.int64)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]                # (H, W, 3)
    inside = (rad <= 1)[..., None]
    col = xp.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    col = xp.where(bad[..., None], 0.0, col)
    return xp.floor(255 * col).astype(xp.uint8)


# ==================================================================================================
# the on-disk cache
# ==================================================================================================

class CorruptCacheFile(ValueError):
    """A cache file that cannot be read, or whose contents are not the flows it should hold."""


def _write_npz(fileobj, arrays, compress):
    (np.savez_compressed if compress else np.savez)(fileobj, **arrays)


class FlowCache:
    """Flows of whole videos on disk, so a temporal stream computes each video's flow once, not
    every epoch.

        cache = FlowCache('flow_cache/')
        flows = cache.get_or_compute('videos/v_001.mp4', lambda: D.read_video(path)[0])
        x = flows_to_stack(flows, start, L)

    The key is the video and the flow parameters: for a `video_key` naming an existing file, its
    absolute path, size and modification time (an edited video misses); any other string is a
    key of the user's own.  With it, the full parameter dict (DEFAULT_PARAMS updated by `params`),
    ALGORITHM_VERSION and the storage dtype, as canonical JSON (sorted keys), hashed with SHA-256:
    the file is `<directory>/flow-<hash>.npz`, holding `flows` and the JSON `key` it was made for.

    Storage dtype: float16 (default) halves the disk and the read time; its step is 2^-10 times
    the value's power of two, under 0.001 px for |d| < 2 and 0.016 px for |d| < 32, well below the
    method's own error (benchmarks/bench_flow.py); float32 keeps the computed values exactly.
    Flows are returned as float32 NumPy arrays either way.

    Files are written to a temporary file in the same directory and moved into place with
    os.replace (atomic on one filesystem): a crash leaves the old file or none, never a partial
    one.  Reading uses allow_pickle=False; a file that cannot be read or does not hold what its
    key says is reported (a warning naming the file) and recomputed, never used.
    """

    def __init__(self, directory, dtype='float16', compress=True):
        if np.dtype(dtype) not in (np.float16, np.float32):
            raise ValueError(f"FlowCache: dtype must be float16 or float32, got {dtype!r}")
        self.directory = os.fspath(directory)
        self.dtype = np.dtype(dtype).name
        self.compress = bool(compress)
        os.makedirs(self.directory, exist_ok=True)
        self.hits = self.misses = self.recomputed = 0

    def key(self, video_key, params=None):
        """The canonical JSON string of what the flows depend on (see the class docstring)."""
        if isinstance(video_key, (str, os.PathLike)) and os.path.isfile(video_key):
            st = os.stat(video_key)
            video = {'path': os.path.abspath(os.fspath(video_key)), 'size': st.st_size,
                     'mtime_ns': st.st_mtime_ns}
        elif isinstance(video_key, (str, os.PathLike)):
            video = {'key': os.fspath(video_key)}
        else:
            raise TypeError(f"FlowCache: video_key must be a path or a string, got "
                            f"{type(video_key).__name__}")
        return json.dumps({'algorithm': 'farneback', 'version': ALGORITHM_VERSION,
                           'params': flow_params(**(params or {})), 'video': video,
                           'dtype': self.dtype}, sort_keys=True, separators=(',', ':'))

    def path(self, video_key, params=None):
        """The file that holds (or will hold) this video's flows for these parameters."""
        digest = hashlib.sha256(self.key(video_key, params).encode()).hexdigest()[:32]
        return os.path.join(self.directory, f'flow-{digest}.npz')

    def get_or_compute(self, video_key, frames_or_loader, params=None):
        """flows (T-1, H, W, 2) float32 NumPy for the video: read from the cache, or computed by
        clip_flows(frames, **params) and stored.  frames_or_loader: the frames (T, H, W[, 3]), or
        a callable returning them (called only on a miss, so a hit decodes nothing)."""
        key = self.key(video_key, params)
        path = self.path(video_key, params)
        if os.path.exists(path):
            try:
                flows = self._read(path, key)
                self.hits += 1
                return flows
            except CorruptCacheFile as e:
                warnings.warn(f"FlowCache: {path} is unusable ({e}); recomputing it",
                              RuntimeWarning, stacklevel=2)
                self.recomputed += 1
        else:
            self.misses += 1
        frames = frames_or_loader() if callable(frames_or_loader) else frames_or_loader
        flows = clip_flows(frames, **(params or {}))
        flows = flows.get() if backend.is_cupy_array(flows) else flows   # the cache is on disk
        stored = flows.astype(self.dtype)
        self._write(path, key, stored)
        # the values as stored: the first epoch sees what every later epoch will read
        return stored.astype(np.float32)

    def _read(self, path, key):
        try:
            with np.load(path, allow_pickle=False) as z:
                if set(z.files) != {'flows', 'key'}:
                    raise CorruptCacheFile(f"holds {sorted(z.files)}, expected ['flows', 'key']")
                stored_key, flows = str(z['key']), z['flows']
        except (OSError, EOFError, KeyError, zipfile.BadZipFile, ValueError) as e:
            if isinstance(e, CorruptCacheFile):
                raise
            raise CorruptCacheFile(f"cannot be read: {type(e).__name__}: {e}") from e
        if stored_key != key:
            raise CorruptCacheFile("was written for another video or other parameters")
        if flows.ndim != 4 or flows.shape[-1] != 2 or flows.dtype != self.dtype:
            raise CorruptCacheFile(f"flows have shape {flows.shape} and dtype {flows.dtype}, "
                                   f"expected (T-1, H, W, 2) {self.dtype}")
        if not np.isfinite(flows).all():
            raise CorruptCacheFile("flows hold non-finite values")
        return flows.astype(np.float32)

    def _write(self, path, key, flows):
        with atomic_write(path) as tmp, open(tmp, 'wb') as f:
            _write_npz(f, {'flows': flows, 'key': np.array(key)}, self.compress)

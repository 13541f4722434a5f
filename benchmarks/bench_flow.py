"""Optical flow: endpoint error and frames per second of tensorlite's Farnebäck
(tensorlite.data.flow) against OpenCV's cv2.calcOpticalFlowFarneback with its usual parameters
(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0), on the same
uint8 grayscale frames.  Without opencv-python-headless, tensorlite alone.

    python benchmarks/bench_flow.py            # the tables of docs/data.md
    python benchmarks/bench_flow.py --quick    # fewer frames and repeats

Frames with known flow:

- translation: a random texture with a Gaussian spectrum (std 0.12 cycles/px) shifted by
  (0.3, -0.7), (1.5, 0.25), (2.2, -1.8) px through its Fourier transform (exact sub-pixel
  translation, periodic), quantized to uint8; EPE over the pixels at least 16 from the border.
- objects: two textured squares (side H/4, sums of random plane waves, their own brightness) each
  translated by a random sub-pixel vector in [-3, 3]^2 px over a static textured background; the
  coverage of each pixel by a square is computed exactly (antialiased edges); true flow = the
  square's motion where it covers at least half of the pixel in the first frame, else 0; EPE over
  the pixels at least 8 from the border ('all') and over the squares' pixels ('moving').
- synthetic motion: pairs of consecutive frames of tensorlite.data.synthetic.SyntheticActions
  ('motion', return_flow=True), with its ground-truth flow; same two EPEs.

EPE (endpoint error) = mean over pixels of |flow - true flow|, in pixels.  Speed: one frame pair
(optical_flow) and one pair of a 16-frame clip (clip_flows, which expands each frame once), medians
of interleaved runs (benchmarks/_timing.py), OpenCV limited to one thread as tensorlite's kernels
are serial.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))

from _timing import interleaved_medians  # noqa: E402

from tensorlite.data import flow as F  # noqa: E402

try:
    import cv2
except ImportError:
    cv2 = None

SHIFTS = [(0.3, -0.7), (1.5, 0.25), (2.2, -1.8)]
CV_PARAMS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                 flags=0)


def opencv_flow(prev, nxt):
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, **CV_PARAMS)


def to_uint8(a):
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


# ---- frames with known flow ----------------------------------------------------------------------

def translated_pair(H, W, shift, seed):
    """uint8 prev, next (H, W) with next(p) = prev(p - shift), and the true flow (H, W, 2)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((H, W)))
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.fftfreq(W)[None, :]
    spectrum *= np.exp(-(fx ** 2 + fy ** 2) / (2 * 0.12 ** 2))
    prev = np.real(np.fft.ifft2(spectrum))
    nxt = np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * shift[0] + fy * shift[1]))))
    lo, hi = prev.min(), prev.max()
    scale = lambda a: 30 + 195 * (a - lo) / (hi - lo)  # noqa: E731
    truth = np.broadcast_to(np.asarray(shift, np.float32), (H, W, 2))
    return to_uint8(scale(prev)), to_uint8(scale(nxt)), truth


def plane_waves(rng, n=40, fmax=0.18):
    """A band-limited texture defined everywhere: f(y, x) = sum of n random plane waves."""
    f = rng.uniform(0.02, fmax, n)
    theta, phase = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    ky, kx = 2 * np.pi * f * np.sin(theta), 2 * np.pi * f * np.cos(theta)
    amp = rng.uniform(0.5, 1.0, n) / np.sqrt(n)
    return lambda y, x: sum(amp[i] * np.cos(ky[i] * y + kx[i] * x + phase[i]) for i in range(n))


def coverage(lo, hi, centres):
    """The fraction of the pixels centred at `centres` (width 1) that [lo, hi) covers."""
    return np.clip(np.minimum(hi, centres + 0.5) - np.maximum(lo, centres - 0.5), 0, 1)


def moving_squares(H, W, seed, count=2):
    """uint8 prev, next and the true flow: `count` textured squares translated by random sub-pixel
    vectors over a static textured background (see the module doc)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    background = plane_waves(rng)(yy, xx) * 0.6
    frames = [background.copy(), background.copy()]
    truth = np.zeros((H, W, 2), np.float32)
    side = H // 4
    for _ in range(count):
        texture, level = plane_waves(rng), rng.uniform(-0.5, 0.5)
        x0, y0 = rng.uniform(side / 2, W - 1.5 * side), rng.uniform(side / 2, H - 1.5 * side)
        v = rng.uniform(-3, 3, 2)
        for k, frame in enumerate(frames):
            ox, oy = x0 + k * v[0], y0 + k * v[1]
            alpha = coverage(oy, oy + side, yy) * coverage(ox, ox + side, xx)
            frame[:] = alpha * (texture(yy - oy, xx - ox) + level) + (1 - alpha) * frame
            if k == 0:
                truth[alpha > 0.5] = v
    return to_uint8(frames[0] * 70 + 128), to_uint8(frames[1] * 70 + 128), truth


def synthetic_motion_pairs(size, clips):
    """Consecutive frame pairs of SyntheticActions('motion') with their true flow."""
    from tensorlite.data.synthetic import SyntheticActions
    dataset = SyntheticActions('motion', clips, num_frames=4, size=size, seed=0,
                               return_flow=True)
    pairs = []
    for i in range(clips):
        clip, _, flow = dataset[i]
        frames = to_uint8(255 * clip.transpose(1, 2, 3, 0))          # (T, H, W, 3)
        gray = [to_uint8(F.luminance(f)) for f in frames]             # what both methods read
        pairs += [(gray[t], gray[t + 1], flow[t]) for t in range(len(gray) - 1)]
    return pairs


# ---- measurements --------------------------------------------------------------------------------

def endpoint_errors(flow, truth, margin, moving_only=False):
    err = np.sqrt(((flow - truth) ** 2).sum(-1))[margin:-margin, margin:-margin]
    if moving_only:
        moving = (np.abs(truth).sum(-1) > 0)[margin:-margin, margin:-margin]
        return float(err[moving].mean()) if moving.any() else float('nan')
    return float(err.mean())


def epe_rows(name, pairs, margin, with_moving):
    """[(case, method, EPE all, EPE moving)] averaged over `pairs`."""
    methods = [('tensorlite', F.optical_flow),
               ('tensorlite, reg_prior=0.01', lambda p, n: F.optical_flow(p, n, reg_prior=0.01))]
    methods += [('OpenCV', opencv_flow)] if cv2 else []
    rows = []
    for method, fn in methods:
        flows = [fn(p, n) for p, n, _ in pairs]
        all_ = np.mean([endpoint_errors(f, t, margin) for f, (_, _, t) in zip(flows, pairs)])
        moving = np.nanmean([endpoint_errors(f, t, margin, True)
                             for f, (_, _, t) in zip(flows, pairs)]) if with_moving else None
        rows.append((name, method, all_, moving))
    return rows


def speed_rows(sizes, repeats):
    rows = []
    for size in sizes:
        prev, nxt, _ = translated_pair(size, size, (1.5, 0.25), 0)
        clip = np.stack([translated_pair(size, size, (0.4 * t, 0.2 * t), 1)[1] for t in range(16)])
        cases = [(('tensorlite', 'pair'), lambda: F.optical_flow(prev, nxt)),
                 (('tensorlite', 'clip'), lambda: F.clip_flows(clip))]
        if cv2:
            cases.append((('OpenCV', 'pair'), lambda: opencv_flow(prev, nxt)))
        medians = interleaved_medians(cases, repeats)
        for (method, how), seconds in medians.items():
            per_pair = seconds / (15 if how == 'clip' else 1)
            rows.append((size, method, how, per_pair * 1e3, 1.0 / per_pair))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='fewer frames and repeats')
    args = parser.parse_args()
    if cv2:
        cv2.setNumThreads(1)
    seeds = range(1 if args.quick else 3)
    print(f"OpenCV: {cv2.__version__ if cv2 else 'not installed (tensorlite alone)'}\n")
    print("| frames | method | EPE all (px) | EPE moving (px) |")
    print("| --- | --- | --- | --- |")
    for size in (112, 224):
        pairs = [translated_pair(size, size, s, seed) for s in SHIFTS for seed in seeds]
        rows = epe_rows(f'translation {size}²', pairs, 16, False)
        pairs = [moving_squares(size, size, seed) for seed in range(2 if args.quick else 8)]
        rows += epe_rows(f'moving squares {size}²', pairs, 8, True)
        pairs = synthetic_motion_pairs(size, 2 if args.quick else 8)
        if pairs:
            rows += epe_rows(f'SyntheticActions motion {size}²', pairs, 8, True)
        for case, method, all_, moving in rows:
            moving = '' if moving is None else f'{moving:.4f}'
            print(f"| {case} | {method} | {all_:.4f} | {moving} |")
    print("\n| size | method | ms per pair | frames/s |")
    print("| --- | --- | --- | --- |")
    for size, method, how, ms, fps in speed_rows((112, 224), 5 if args.quick else 15):
        label = f'{method} ({"one pair" if how == "pair" else "16-frame clip"})'
        print(f"| {size}² | {label} | {ms:.1f} | {fps:.0f} |")


if __name__ == '__main__':
    main()

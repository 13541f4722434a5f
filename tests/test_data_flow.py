"""Optical flow (tensorlite/data/flow.py): endpoint error on known sub-pixel translations and on a
moving object, the sign convention, input kinds, the Middlebury colours, flow stacks, the on-disk
cache, the CUDA twins against the CPU twins (under NUMBA_ENABLE_CUDASIM=1 when there is no GPU),
and bad input.

The translated frames are exact: a random texture with a Gaussian spectrum (std 0.12 cycles per
pixel, so nothing near the Nyquist frequency) is shifted by multiplying its Fourier transform by
exp(-2 pi i (f_x dx + f_y dy)): next(p) = prev(p - d) for any sub-pixel d, periodic at the borders,
which is why the error is measured away from them.
"""
import os

import numpy as np
import pytest

from tensorlite import kernels
from tensorlite.data import flow as F
from tensorlite.kernels.cpu import flow as cpu_flow
from tensorlite.kernels.cuda import flow as cuda_flow

SIZE = 64
MARGIN = 12         # pixels next to the (periodic, hence inconsistent) border left out of the EPE

# Measured with the default parameters on these 64x64 frames (seeds 0-2): EPE 0.009-0.013 px for
# every shift below.  The bound leaves about 2x for other seeds and platforms' rounding while
# staying 25x under the smallest shift (|(0.3, -0.7)| = 0.76 px): a flow with a wrong sign, a
# missing pyramid level, a misplaced half pixel or a wrong scale factor misses it by far.
# (OpenCV's Farnebäck on the same kind of frames: benchmarks/bench_flow.py.)
EPE_BOUND = 0.03


def texture(H, W, seed=0, cutoff=0.12):
    """The Fourier transform of a smooth random texture and its frequency grids."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((H, W)))
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.fftfreq(W)[None, :]
    return spectrum * np.exp(-(fx ** 2 + fy ** 2) / (2 * cutoff ** 2)), fy, fx


def translated(shift, H=SIZE, W=SIZE, seed=0):
    """prev, next float32 (H, W) in [0.1, 0.9] with next(p) = prev(p - shift), shift = (dx, dy)."""
    spectrum, fy, fx = texture(H, W, seed)
    prev = np.real(np.fft.ifft2(spectrum))
    nxt = np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * shift[0] + fy * shift[1]))))
    lo, hi = prev.min(), prev.max()
    to_unit = lambda a: (0.1 + 0.8 * (a - lo) / (hi - lo)).astype(np.float32)  # noqa: E731
    return to_unit(prev), to_unit(nxt)


def epe(flow, truth, margin=MARGIN):
    """Mean endpoint error |flow - truth| over the pixels at least `margin` from the border."""
    err = np.sqrt(((flow - truth) ** 2).sum(-1))
    return float(err[margin:-margin, margin:-margin].mean())


# ==================================================================================================
# accuracy and convention
# ==================================================================================================

@pytest.mark.parametrize('shift', [(0.3, -0.7), (1.5, 0.25), (2.2, -1.8)])
def test_translation_endpoint_error(shift):
    prev, nxt = translated(shift)
    flow = F.optical_flow(prev, nxt)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    assert epe(flow, np.array(shift)) < EPE_BOUND


def test_pyramid_recovers_a_shift_beyond_the_expansion():
    """(5.5, -4) px is beyond what one level's polynomial model can see; the pyramid finds it
    (128x128: levels of 128, 64 and 32 pixels, the smallest one built)."""
    prev, nxt = translated((5.5, -4.0), 128, 128)
    assert epe(F.optical_flow(prev, nxt), np.array((5.5, -4.0))) < EPE_BOUND
    assert epe(F.optical_flow(prev, nxt, levels=0), np.array((5.5, -4.0))) > 1.0


def test_moving_square_over_a_static_background():
    """A textured square moved by (1.6, -1.2) over a still texture: the flow is the square's
    motion inside it and 0 on the background, away from the square's edges."""
    H = W = SIZE
    background, _ = translated((0, 0), seed=1)
    obj, _ = translated((0, 0), seed=2)
    v = (1.6, -1.2)
    yy, xx = np.mgrid[0:H, 0:W]
    prev, nxt = background.copy(), background.copy()
    inside = (yy >= 20) & (yy < 44) & (xx >= 20) & (xx < 44)
    prev[inside] = obj[inside]
    # the square in `next`: the object's texture moved by v, sampled exactly from its spectrum
    spectrum, fy, fx = texture(H, W, seed=2)
    moved = np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (fx * v[0] + fy * v[1]))))
    lo, hi = np.real(np.fft.ifft2(spectrum)).min(), np.real(np.fft.ifft2(spectrum)).max()
    moved = (0.1 + 0.8 * (moved - lo) / (hi - lo)).astype(np.float32)
    # the square [20, 44) moved by v covers [21.6, 45.6) x [18.8, 42.8): whole pixels 22..45, 19..42
    moved_inside = (yy >= 19) & (yy < 43) & (xx >= 22) & (xx < 46)
    nxt[moved_inside] = moved[moved_inside]
    flow = F.optical_flow(prev, nxt)
    core = (yy >= 26) & (yy < 38) & (xx >= 26) & (xx < 38)
    far = ((yy < 12) | (yy >= 52) | (xx < 12) | (xx >= 52)) & (yy >= 4) & (yy < 60) \
        & (xx >= 4) & (xx < 60)
    np.testing.assert_allclose(np.median(flow[core], axis=0), v, atol=0.1)
    np.testing.assert_allclose(np.median(flow[far], axis=0), (0, 0), atol=0.05)


def test_identical_frames_give_zero_flow():
    prev, _ = translated((0, 0))
    assert np.array_equal(F.optical_flow(prev, prev), np.zeros((SIZE, SIZE, 2), np.float32))
    flat = np.full((20, 24), 0.5, np.float32)           # no texture at all: still exactly 0
    assert np.array_equal(F.optical_flow(flat, flat), np.zeros((20, 24, 2), np.float32))


@pytest.mark.parametrize('axis, sign', [(0, 1), (0, -1), (1, 1), (1, -1)])
def test_sign_convention(axis, sign):
    """A texture moved right (+x) gives dx > 0, moved down (+y) dy > 0: prev(y, x) ~
    next(y + dy, x + dx), OpenCV's convention."""
    shift = [0.0, 0.0]
    shift[axis] = 2.0 * sign
    prev, nxt = translated(shift)
    # an integer shift is a roll of the pixels, checked against the construction itself
    assert np.allclose(np.roll(prev, (int(shift[1]), int(shift[0])), axis=(0, 1)), nxt,
                       atol=1e-5)
    mean = F.optical_flow(prev, nxt)[MARGIN:-MARGIN, MARGIN:-MARGIN].mean(axis=(0, 1))
    np.testing.assert_allclose(mean, shift, atol=0.02)


# ==================================================================================================
# input kinds: grayscale / RGB, uint8 / float, NumPy / the CUDA twins
# ==================================================================================================

def test_rgb_gray_uint8_float_agree():
    prev, nxt = translated((1.5, 0.25))
    gray = F.optical_flow(prev, nxt)
    # RGB with three equal channels is the same luminance (the BT.601 weights sum to 1)
    rgb = F.optical_flow(np.repeat(prev[..., None], 3, -1), np.repeat(nxt[..., None], 3, -1))
    np.testing.assert_allclose(rgb, gray, atol=1e-3)
    np.testing.assert_allclose(F.optical_flow(prev[..., None], nxt[..., None]), gray, atol=1e-6)
    # uint8 frames are the float frames * 255: the same flow up to the rounding to integers
    p8, n8 = (np.round(prev * 255).astype(np.uint8), np.round(nxt * 255).astype(np.uint8))
    np.testing.assert_allclose(F.optical_flow(p8, n8),
                               F.optical_flow(p8 / np.float32(255), n8 / np.float64(255)),
                               atol=1e-3)
    assert epe(F.optical_flow(p8, n8), np.array((1.5, 0.25))) < EPE_BOUND


def test_rgb_uses_luminance():
    """A colour pair gives the flow of its luminance 0.299 R + 0.587 G + 0.114 B."""
    rng = np.random.default_rng(3)
    weights = rng.random(3)
    prev, nxt = translated((0.8, -0.4))
    mix = lambda g: np.stack([g * weights[0], g ** 2, 1 - g], -1).astype(np.float32)  # noqa
    luma = lambda c: (0.299 * c[..., 0] + 0.587 * c[..., 1] + 0.114 * c[..., 2])  # noqa
    np.testing.assert_allclose(F.optical_flow(mix(prev), mix(nxt)),
                               F.optical_flow(luma(mix(prev)), luma(mix(nxt))), atol=1e-3)


def test_clip_flows_match_pairwise_flows():
    frames = np.stack([translated((0.5 * t, -0.3 * t), 40, 48)[1] for t in range(4)])
    flows = F.clip_flows(frames)
    assert flows.shape == (3, 40, 48, 2) and flows.dtype == np.float32
    for t in range(3):
        np.testing.assert_array_equal(flows[t], F.optical_flow(frames[t], frames[t + 1]))


# ==================================================================================================
# drawing
# ==================================================================================================

def test_colorwheel_segments():
    wheel = F.middlebury_colorwheel()
    assert wheel.shape == (55, 3) and wheel.dtype == np.uint8
    # segment starts: red, yellow, green, cyan, blue, magenta after 15, 6, 4, 11, 13 steps
    for index, colour in zip([0, 15, 21, 25, 36, 49],
                             [(255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255),
                              (0, 0, 255), (255, 0, 255)]):
        assert tuple(wheel[index]) == colour


@pytest.mark.parametrize('direction, check', [
    ((1, 0), lambda c: c[0] == 255 and c[1] < 40 and c[2] < 40),        # +x: red
    ((0, 1), lambda c: c[0] == 255 and 150 < c[1] < 255 and c[2] < 40),  # +y (down): orange-yellow
    ((-1, 0), lambda c: c[0] < 40 and c[1] > 150 and c[2] == 255),      # -x: cyan-blue
    ((0, -1), lambda c: 40 < c[0] < 150 and c[1] < 40 and c[2] == 255),  # -y (up): violet
])
def test_flow_to_color_directions(direction, check):
    flow = np.zeros((3, 4, 2), np.float32)
    flow[1, 2] = direction
    image = F.flow_to_color(flow)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    assert check(tuple(int(v) for v in image[1, 2])), image[1, 2]
    assert (image[0, 0] == 255).all()                                   # no motion: white


def test_flow_to_color_saturation():
    flow = np.zeros((1, 3, 2), np.float32)
    flow[0, 1] = (1, 0)
    flow[0, 2] = (4, 0)
    # with max_flow 2: half saturation, then beyond the wheel (darkened to 75 %)
    image = F.flow_to_color(flow, max_flow=2.0).astype(int)
    assert tuple(image[0, 1]) == (255, 127, 127)
    assert tuple(image[0, 2]) == (191, 0, 0)
    # default max_flow: the largest magnitude is fully saturated
    assert tuple(F.flow_to_color(flow)[0, 2]) == (255, 0, 0)
    assert tuple(F.flow_to_color(np.full((1, 1, 2), np.nan, np.float32))[0, 0]) == (0, 0, 0)


# ==================================================================================================
# flow stacks for the temporal stream
# ==================================================================================================

def test_flows_to_stack_channel_order():
    T1, H, W = 6, 3, 5
    flows = np.zeros((T1, H, W, 2), np.float32)
    flows[..., 0] = 10 * np.arange(T1)[:, None, None]
    flows[..., 1] = 10 * np.arange(T1)[:, None, None] + 1
    stack = F.flows_to_stack(flows, start=2, L=3)
    assert stack.shape == (6, H, W) and stack.dtype == np.float32
    # channels dx_0, dy_0, dx_1, dy_1, dx_2, dy_2 of pairs 2, 3, 4
    np.testing.assert_array_equal(stack[:, 0, 0], [20, 21, 30, 31, 40, 41])
    flows[2, 1, 3] = (7.0, -7.0)
    stack = F.flows_to_stack(flows, start=2, L=3)
    assert stack[0, 1, 3] == 7.0 and stack[1, 1, 3] == -7.0
    centred = F.flows_to_stack(flows, start=0, L=6, subtract_mean=True)
    np.testing.assert_allclose(centred.mean(axis=(1, 2)), 0, atol=1e-5)


def test_flow_stack_from_frames():
    shifts = [(0.0, 0.0), (1.0, 0.5), (1.5, 0.0), (2.5, -0.5)]       # cumulative positions
    frames = np.stack([translated(s, 40, 48, seed=4)[1] for s in shifts])
    stack = F.flow_stack(frames, start=1, L=2)
    assert stack.shape == (4, 40, 48)
    means = stack[:, MARGIN:-MARGIN, MARGIN:-MARGIN].mean(axis=(1, 2))
    # pair 1 -> 2 moved (0.5, -0.5), pair 2 -> 3 moved (1.0, -0.5)
    np.testing.assert_allclose(means, [0.5, -0.5, 1.0, -0.5], atol=0.05)
    with pytest.raises(ValueError, match='L = 3 pairs from frame start = 1'):
        F.flow_stack(frames, start=1, L=3)


# ==================================================================================================
# the cache
# ==================================================================================================

class Loader:
    """Frames on demand, counting how often they were asked for."""

    def __init__(self, seed=0):
        self.calls = 0
        self.frames = np.stack([translated((0.7 * t, 0.4 * t), 24, 28, seed)[1]
                                for t in range(3)])

    def __call__(self):
        self.calls += 1
        return self.frames


def test_cache_hit_and_miss_on_parameter_change(tmp_path):
    cache = F.FlowCache(tmp_path)
    load = Loader()
    flows = cache.get_or_compute('clip-0', load)
    assert flows.shape == (2, 24, 28, 2) and flows.dtype == np.float32 and load.calls == 1
    np.testing.assert_allclose(flows, F.clip_flows(load.frames), atol=2e-3)   # float16 storage
    again = cache.get_or_compute('clip-0', load)
    assert load.calls == 1 and cache.hits == 1                      # read, not recomputed
    np.testing.assert_array_equal(again, flows)
    other = cache.get_or_compute('clip-0', load, {'iterations': 2})
    assert load.calls == 2 and cache.misses == 2
    assert len(list(tmp_path.glob('flow-*.npz'))) == 2
    np.testing.assert_allclose(other, F.clip_flows(load.frames, iterations=2), atol=2e-3)
    exact = F.FlowCache(tmp_path / 'f32', dtype='float32').get_or_compute('clip-0', load)
    np.testing.assert_array_equal(exact, F.clip_flows(load.frames))


def test_cache_key_follows_the_video_file(tmp_path):
    video = tmp_path / 'clip.bin'
    video.write_bytes(b'pretend video')
    cache = F.FlowCache(tmp_path / 'cache')
    load = Loader()
    cache.get_or_compute(video, load)
    cache.get_or_compute(str(video), load)
    assert load.calls == 1
    os.utime(video, ns=(0, video.stat().st_mtime_ns + 10**9))      # the video was edited
    cache.get_or_compute(video, load)
    assert load.calls == 2


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    def failing_write(fileobj, arrays, compress):
        fileobj.write(b'PK\x03\x04 half a zip')
        raise OSError('disk full')

    monkeypatch.setattr(F, '_write_npz', failing_write)
    cache = F.FlowCache(tmp_path)
    with pytest.raises(OSError, match='disk full'):
        cache.get_or_compute('clip-0', Loader())
    assert list(tmp_path.iterdir()) == []                           # no partial file, no temp file


@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'wrong_key'])
def test_corrupt_cache_file_is_reported_and_recomputed(tmp_path, damage):
    cache = F.FlowCache(tmp_path)
    load = Loader()
    good = cache.get_or_compute('clip-0', load)
    path = cache.path('clip-0')
    if damage == 'garbage':
        with open(path, 'wb') as f:
            f.write(b'not a zip file at all')
    elif damage == 'truncated':
        data = open(path, 'rb').read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    else:                                   # a valid npz made for another key
        np.savez(path, flows=np.zeros((2, 24, 28, 2), np.float16), key=np.array('{}'))
    with pytest.warns(RuntimeWarning, match=os.path.basename(path)):
        recomputed = cache.get_or_compute('clip-0', load)
    assert load.calls == 2 and cache.recomputed == 1
    np.testing.assert_array_equal(recomputed, good)
    cache.get_or_compute('clip-0', load)                            # repaired: a hit again
    assert load.calls == 2


# ==================================================================================================
# CUDA twins against CPU twins (the simulator is slow: tiny shapes)
# ==================================================================================================

H, W = 8, 10


def kernel_cases(rng):
    image = (255 * rng.random((H, W))).astype(np.float32)
    coeffs0 = np.empty((5, H, W), np.float32)
    cpu_flow.poly_expansion(image, 2, 1.0, coeffs0)
    coeffs1 = (coeffs0 + rng.standard_normal((5, H, W))).astype(np.float32)
    planes = rng.standard_normal((3, H, W)).astype(np.float32)
    flow = (2.5 * rng.standard_normal((2, H, W))).astype(np.float32)   # some point outside
    matrices = np.empty((5, H, W), np.float32)
    cpu_flow.update_matrices(coeffs0, coeffs1, flow, 2, matrices)
    taps = rng.random(5).astype(np.float32)
    return {
        'poly_expansion': ((image, 2, 1.0), np.empty((5, H, W), np.float32)),
        'separable_blur': ((planes, taps), np.empty((3, H, W), np.float32)),
        'resize_down': ((planes, 0.5), np.empty((3, 5, 6), np.float32)),
        'resize_up': ((planes, 2.0), np.empty((3, 11, 13), np.float32)),
        'update_matrices': ((coeffs0, coeffs1, flow, 2), np.empty((5, H, W), np.float32)),
        'solve_flow': ((matrices, 0.5, 0.25), flow.copy()),
    }


@pytest.mark.parametrize('case', ['poly_expansion', 'separable_blur', 'resize_down', 'resize_up',
                                  'update_matrices', 'solve_flow'])
def test_cuda_twin_matches_cpu_twin(case):
    args, out = kernel_cases(np.random.default_rng(5))[case]
    name = case.split('_down')[0].split('_up')[0]
    name = 'resize_bilinear' if name == 'resize' else name
    cpu_out, cuda_out = out.copy(), out.copy()
    getattr(cpu_flow, name)(*args, cpu_out)
    getattr(cuda_flow, name)(*args, cuda_out)
    scale = max(1.0, float(np.abs(cpu_out).max()))
    np.testing.assert_allclose(cuda_out, cpu_out, rtol=0, atol=1e-5 * scale)


def test_optical_flow_on_the_cuda_twins(monkeypatch):
    """The whole driver, run with the CUDA twins (the array-type dispatch picks the CPU ones for
    NumPy arrays, so it is redirected here), matches the CPU run."""
    prev, nxt = translated((0.6, -0.4), 16, 18)
    params = {'levels': 1, 'iterations': 2, 'winsize': 5, 'window_sigma': 1.5, 'poly_n': 2,
              'presmooth': 0.8}
    expected = F.optical_flow(prev, nxt, **params)
    real_twin = kernels.twin
    monkeypatch.setattr(kernels, 'twin', lambda family, a: (
        cuda_flow if family == 'flow' else real_twin(family, a)))
    np.testing.assert_allclose(F.optical_flow(prev, nxt, **params), expected, atol=1e-4)


# ==================================================================================================
# bad input
# ==================================================================================================

def test_bad_frames_are_named():
    a = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match=r'same shape.*\(16, 16\) and \(16, 18\)'):
        F.optical_flow(a, np.zeros((16, 18), np.float32))
    with pytest.raises(ValueError, match=r'prev must be grayscale.*\(2, 16, 16, 3\)'):
        F.optical_flow(np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 16, 3)))
    with pytest.raises(ValueError, match=r'\(16, 16, 4\)'):
        F.optical_flow(np.zeros((16, 16, 4)), np.zeros((16, 16, 4)))
    with pytest.raises(TypeError, match='prev has dtype int32, expected uint8'):
        F.optical_flow(a.astype(np.int32), a.astype(np.int32))
    with pytest.raises(TypeError, match='unknown parameter.*win_size'):
        F.optical_flow(a, a, win_size=15)
    with pytest.raises(ValueError, match='winsize must be odd'):
        F.optical_flow(a, a, winsize=14)
    with pytest.raises(ValueError, match='pyr_scale must be a number in'):
        F.optical_flow(a, a, pyr_scale=1.5)
    with pytest.raises(ValueError, match=r'clip_flows: .*shape \(1, 16, 16\)'):
        F.clip_flows(a[None])
    with pytest.raises(ValueError, match=r'flow must be \(H, W, 2\), got shape \(16, 16\)'):
        F.flow_to_color(a)
    with pytest.raises(ValueError, match='4 flows'):
        F.flows_to_stack(np.zeros((4, 2, 2, 2)), start=3, L=2)


@pytest.mark.parametrize('module', [cpu_flow, cuda_flow], ids=['cpu', 'cuda'])
def test_kernel_launch_checks_name_the_argument(module):
    coeffs = np.zeros((5, H, W), np.float32)
    flow = np.zeros((2, H, W), np.float32)
    with pytest.raises(TypeError, match='update_matrices: flow has dtype float64'):
        module.update_matrices(coeffs, coeffs, flow.astype(np.float64), 2, coeffs.copy())
    with pytest.raises(ValueError, match=r'update_matrices: coeffs1 has shape \(5, 8, 9\)'):
        module.update_matrices(coeffs, coeffs[:, :, :9].copy(), flow, 2, coeffs.copy())
    with pytest.raises(ValueError, match='solve_flow: flow .* is not C-contiguous'):
        module.solve_flow(coeffs, 0.1, 0.0, np.zeros((2, W, H), np.float32).transpose(0, 2, 1))
    with pytest.raises(ValueError, match='separable_blur: taps must be .* odd length'):
        module.separable_blur(flow, np.ones(4, np.float32), flow.copy())
    with pytest.raises(ValueError, match=r'poly_expansion: image has shape \(2, 8, 10\)'):
        module.poly_expansion(flow, 2, 1.0, coeffs)

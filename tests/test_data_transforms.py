"""Clip transforms: one draw per clip (all frames stay aligned), shapes, values against direct NumPy
computations, bilinear resizing against a per-pixel reference, flow flips and flow scaling."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tensorlite.data.samplers import using_generator
from tensorlite.data.transforms import (CenterCrop, Compose, Normalize, RandomHorizontalFlip,
                                        RandomResizedCrop, Resize, ToTensor, resize)


def bilinear_reference(image, h, w):
    """PyTorch's bilinear (align_corners=False, no antialias), one output pixel at a time, float64.
    image (H, W, C) -> (h, w, C)."""
    H, W = image.shape[:2]
    out = np.zeros((h, w, image.shape[2]))
    for i in range(h):
        y = max((i + 0.5) * H / h - 0.5, 0.0)
        y0 = min(int(y), H - 1)
        y1, fy = min(y0 + 1, H - 1), y - y0
        for j in range(w):
            x = max((j + 0.5) * W / w - 0.5, 0.0)
            x0 = min(int(x), W - 1)
            x1, fx = min(x0 + 1, W - 1), x - x0
            out[i, j] = ((1 - fy) * ((1 - fx) * image[y0, x0] + fx * image[y0, x1])
                         + fy * ((1 - fx) * image[y1, x0] + fx * image[y1, x1]))
    return out


def offset_clip(rng, T=4, H=20, W=26, C=3):
    """Frame t = base + 10 t: any spatial transform applied alike to all frames keeps
    out[t] - out[0] == 10 t at every pixel (bilinear resizing is linear, crops and flips move
    pixels); a different crop or flip for one frame breaks it."""
    base = rng.random((H, W, C))
    return base[None] + 10.0 * np.arange(T)[:, None, None, None]


sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))


@given(sizes, sizes, st.integers(0, 2 ** 31))
def test_resize_matches_per_pixel_reference(src, dst, seed):
    rng = np.random.default_rng(seed)
    clip = rng.random((2, *src, 3))
    out = resize(clip, dst)
    assert out.shape == (2, *dst, 3) and out.dtype == np.float64
    for t in range(2):
        np.testing.assert_allclose(out[t], bilinear_reference(clip[t], *dst), atol=1e-12)


def test_resize_uint8_rounds_the_float_result():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    out = resize(clip, (9, 31))
    assert out.dtype == np.uint8
    expected = [np.rint(bilinear_reference(frame.astype(np.float64), 9, 31)) for frame in clip]
    # float32 arithmetic can land a .5 tie on the other side
    assert np.abs(out.astype(int) - np.array(expected)).max() <= 1
    assert np.mean(out == np.array(expected)) > 0.99


def test_resize_scales_flow_vectors_with_the_frame():
    flow = np.empty((2, 8, 10, 4), dtype=np.float32)
    flow[..., 0::2], flow[..., 1::2] = 1.0, 2.0           # two (dx, dy) pairs
    out = resize(flow, (16, 5), flow=True)                # twice as tall, half as wide
    np.testing.assert_allclose(out[..., 0::2], 0.5)
    np.testing.assert_allclose(out[..., 1::2], 4.0)
    np.testing.assert_allclose(resize(flow, (16, 5))[..., 1::2], 2.0)   # flow=False: untouched


@pytest.mark.parametrize("frame, size, expected", [
    ((30, 40), 15, (15, 20)), ((40, 30), 15, (20, 15)), ((30, 30), 7, (7, 7)),
    ((25, 40), 16, (16, 25)), ((30, 40), (11, 13), (11, 13)),
])
def test_resize_short_side_or_exact_size(frame, size, expected):
    clip = np.zeros((3, *frame, 3), dtype=np.uint8)
    assert Resize(size)(clip).shape == (3, *expected, 3)


def test_center_crop_is_the_central_slice_and_pads_when_too_small():
    clip = np.arange(2 * 9 * 12 * 3, dtype=np.uint8).reshape(2, 9, 12, 3)
    np.testing.assert_array_equal(CenterCrop((5, 6))(clip), clip[:, 2:7, 3:9])
    padded = CenterCrop(11)(clip)              # 9 x 12 -> 11 x 11: pad rows, crop columns
    assert padded.shape == (2, 11, 11, 3)
    np.testing.assert_array_equal(padded[:, 1:10], clip[:, :, 0:11])
    assert not padded[:, 0].any() and not padded[:, 10].any()


@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2 ** 31))
def test_random_resized_crop_region_follows_scale_and_ratio(H, W, seed):
    t = RandomResizedCrop(8, scale=(0.2, 0.9), ratio=(0.5, 2.0))
    top, left, h, w = t.params(H, W, np.random.default_rng(seed))
    assert 0 <= top and top + h <= H and 0 <= left and left + w <= W and h >= 1 and w >= 1
    out = t(np.zeros((2, H, W, 3), dtype=np.uint8), rng=np.random.default_rng(seed))
    assert out.shape == (2, 8, 8, 3)


def test_random_resized_crop_is_crop_then_resize():
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    t = RandomResizedCrop((16, 20))
    for seed in range(5):
        top, left, h, w = t.params(40, 50, np.random.default_rng(seed))
        expected = resize(clip[:, top:top + h, left:left + w], (16, 20))
        np.testing.assert_array_equal(t(clip, rng=np.random.default_rng(seed)), expected)
    # the regions it draws have the areas and ratios asked for (no fallback needed at this size)
    regions = [t.params(40, 50, rng) for _ in range(300)]
    area = np.array([h * w for _, _, h, w in regions]) / (40 * 50)
    ratio = np.array([w / h for _, _, h, w in regions])
    assert area.min() > 0.06 and area.max() <= 1.0 and area.max() > 0.5
    assert ratio.min() > 0.7 and ratio.max() < 1.4


@pytest.mark.parametrize("seed", range(6))
def test_random_transforms_keep_all_frames_aligned(seed):
    rng = np.random.default_rng(seed)
    clip = offset_clip(rng)
    t = Compose([RandomResizedCrop((11, 9), scale=(0.1, 0.6)), RandomHorizontalFlip(),
                 Resize(15), CenterCrop(12)])
    out = t(clip, rng=np.random.default_rng(seed))
    assert out.shape == (4, 12, 12, 3)
    for k in range(4):
        np.testing.assert_allclose(out[k] - out[0], 10.0 * k, atol=1e-9)


def test_a_tuple_of_clips_gets_one_draw():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)
    slow_fast = (rgb[::2], rgb)
    t = Compose([RandomResizedCrop(16), RandomHorizontalFlip()])
    for seed in range(4):
        slow, fast = t(slow_fast, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(slow, fast[::2])
    with pytest.raises(ValueError, match="different frame sizes"):
        t((rgb, rgb[:, :20]))


def test_horizontal_flip_mirrors_every_frame():
    clip = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(clip), clip[:, :, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(clip), clip)
    rng = np.random.default_rng(1)
    flips = [RandomHorizontalFlip(0.3)(clip, rng=rng)[0, 0, 0, 0] != clip[0, 0, 0, 0]
             for _ in range(400)]
    assert 0.2 < np.mean(flips) < 0.4


@pytest.mark.parametrize("shape", [(3, 6, 8, 2), (6, 8, 10)])   # flow clip; stack of 5 pairs
def test_flipping_flow_negates_the_horizontal_component(shape):
    flow = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = RandomHorizontalFlip(p=1.0, flow=True)(flow)
    mirrored = flow[..., ::-1, :]
    np.testing.assert_array_equal(out[..., 0::2], -mirrored[..., 0::2])     # dx
    np.testing.assert_array_equal(out[..., 1::2], mirrored[..., 1::2])      # dy
    with pytest.raises(ValueError, match="float .*channel pairs"):
        RandomHorizontalFlip(p=1.0, flow=True)(np.zeros((2, 4, 4, 3), dtype=np.float32))


def test_to_tensor_layout_and_scale():
    clip = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    x = ToTensor()(clip)
    assert x.shape == (3, 4, 5, 6) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, clip.transpose(3, 0, 1, 2) / 255.0, rtol=1e-6)
    flow = np.random.default_rng(1).standard_normal((4, 5, 6, 2)).astype(np.float32) * 7
    np.testing.assert_array_equal(ToTensor()(flow), flow.transpose(3, 0, 1, 2))   # unscaled
    assert ToTensor()(clip[None].repeat(2, 0)).shape == (2, 3, 4, 5, 6)           # (K, C, T, H, W)
    assert ToTensor()(clip[0]).shape == (3, 5, 6)                                 # an image
    with pytest.raises(TypeError, match="uint8 frames or float flow, got dtype int32"):
        ToTensor()(clip.astype(np.int32))


def test_normalize_per_channel():
    x = np.random.default_rng(0).random((3, 4, 5, 6)).astype(np.float32)
    mean, std = [0.45, 0.4, 0.35], [0.2, 0.25, 0.3]
    out = Normalize(mean, std)(x)
    for c in range(3):
        np.testing.assert_allclose(out[c], (x[c] - mean[c]) / std[c], rtol=1e-5)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="3 means for an input with 2 channels"):
        Normalize(mean, std)(x[:2])
    with pytest.raises(TypeError, match=r"after ToTensor"):
        Normalize(mean, std)(np.zeros((4, 5, 6, 3), dtype=np.uint8))


def test_compose_reproducible_from_rng_or_sample_generator():
    clip = np.random.default_rng(0).integers(0, 256, (4, 32, 40, 3), dtype=np.uint8)
    t = Compose([Resize(24), RandomResizedCrop(16), RandomHorizontalFlip(), ToTensor(),
                 Normalize([0.5] * 3, [0.25] * 3)])
    a = t(clip, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, t(clip, rng=np.random.default_rng(5)))
    assert a.shape == (3, 4, 16, 16)
    with using_generator(np.random.default_rng(9)):
        b = t(clip)
    with using_generator(np.random.default_rng(9)):
        np.testing.assert_array_equal(b, t(clip))
    draws = {t(clip, rng=np.random.default_rng(s)).tobytes() for s in range(4)}
    assert len(draws) == 4


@pytest.mark.parametrize("call, error, message", [
    (lambda: Resize(0), ValueError, "positive int or a pair"),
    (lambda: CenterCrop((3, 4))(np.zeros((4, 4))), ValueError,
     r"\(\.\.\., H, W, C\).*got shape \(4, 4\)"),
    (lambda: Resize(4)([np.zeros((2, 4, 4, 3))][0].tolist()), TypeError, "got list"),
    (lambda: RandomResizedCrop(4, scale=(0.5, 0.1)), ValueError, "0 < min <= max"),
    (lambda: RandomHorizontalFlip(p=2), ValueError, r"probability in \[0, 1\], got 2"),
])
def test_bad_inputs_say_what_was_expected(call, error, message):
    with pytest.raises(error, match=message):
        call()

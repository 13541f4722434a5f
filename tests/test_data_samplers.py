"""Temporal samplers: count, range, order, stride and short videos, as properties over video
lengths and clip shapes (hypothesis), plus the exact positions each sampler documents; and
clip_numbers, the input scale that makes sampling necessary."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tensorlite.data.samplers import (MultiClip, RandomTemporalCrop, SegmentSampler, TwoRate,
                                      UniformStride, sample_generator, using_generator)
from tensorlite.data.scale import clip_numbers, human, human_bytes, main as scale_main

lengths = st.integers(1, 300)
frames = st.integers(1, 16)
strides = st.integers(1, 8)
pads = st.sampled_from(['loop', 'last'])
seeds = st.integers(0, 2 ** 32 - 1)


def span(num_frames, stride):
    return (num_frames - 1) * stride + 1


def check_clip(idx, n, num_frames, stride, pad):
    """What every fixed-length clip satisfies, for long and short videos alike."""
    assert idx.dtype == np.int64 and idx.shape == (num_frames,)
    assert idx.min() >= 0 and idx.max() < n
    if n >= span(num_frames, stride):
        assert np.all(np.diff(idx) == stride)
    elif pad == 'loop':
        # starts at 0 and wraps around the video
        np.testing.assert_array_equal(idx, (stride * np.arange(num_frames)) % n)
    else:
        np.testing.assert_array_equal(idx, np.minimum(stride * np.arange(num_frames), n - 1))
        assert np.all(np.diff(idx) >= 0)


@given(lengths, frames, strides, pads)
def test_uniform_stride_is_the_centred_clip(n, num_frames, stride, pad):
    idx = UniformStride(num_frames, stride, pad=pad)(n)
    check_clip(idx, n, num_frames, stride, pad)
    if n >= span(num_frames, stride):
        assert idx[0] == (n - span(num_frames, stride)) // 2
        # centred: the frames left out before and after differ by at most one
        assert abs(idx[0] - (n - 1 - idx[-1])) <= 1


@given(lengths, strides)
def test_uniform_stride_whole_video(n, stride):
    np.testing.assert_array_equal(UniformStride(None, stride)(n), np.arange(0, n, stride))


def test_uniform_stride_documented_example():
    np.testing.assert_array_equal(UniformStride(8, stride=4)(100), [35, 39, 43, 47, 51, 55, 59, 63])


@given(lengths, st.integers(1, 20), seeds)
def test_segment_sampler_one_frame_per_segment(n, segments, seed):
    sampler = SegmentSampler(segments)
    idx = sampler(n, rng=np.random.default_rng(seed))
    assert idx.dtype == np.int64 and idx.shape == (segments,)
    assert idx.min() >= 0 and idx.max() < n
    assert np.all(np.diff(idx) >= 0)
    # frame k lies in segment k: [k n / S, (k + 1) n / S)
    k = np.arange(segments)
    assert np.all(idx >= np.floor(k * n / segments))
    assert np.all(idx < np.maximum((k + 1) * n / segments, np.floor(k * n / segments) + 1))
    np.testing.assert_array_equal(idx, sampler(n, rng=np.random.default_rng(seed)))


@given(lengths, st.integers(1, 20))
def test_segment_sampler_evaluation_takes_centres(n, segments):
    idx = SegmentSampler(segments, training=False)(n)
    np.testing.assert_array_equal(idx, np.floor((np.arange(segments) + 0.5) * n / segments))
    np.testing.assert_array_equal(idx, SegmentSampler(segments).eval()(n))


def test_segment_sampler_draws_differ_in_training():
    sampler, rng = SegmentSampler(8), np.random.default_rng(0)
    draws = {tuple(sampler(1000, rng=rng)) for _ in range(5)}
    assert len(draws) == 5


@given(lengths, frames, strides, pads, seeds)
def test_random_temporal_crop(n, num_frames, stride, pad, seed):
    crop = RandomTemporalCrop(num_frames, stride, pad=pad)
    idx = crop(n, rng=np.random.default_rng(seed))
    check_clip(idx, n, num_frames, stride, pad)
    if n >= span(num_frames, stride):
        assert 0 <= idx[0] <= n - span(num_frames, stride)
    np.testing.assert_array_equal(crop.eval()(n), UniformStride(num_frames, stride, pad=pad)(n))


def test_random_temporal_crop_covers_every_start():
    # 64-frame video, 8 x 4 crop: span 29, so starts 0..35 should all appear
    crop, rng = RandomTemporalCrop(8, 4), np.random.default_rng(1)
    starts = {int(crop(64, rng=rng)[0]) for _ in range(2000)}
    assert starts == set(range(36))


@given(lengths, st.integers(1, 6), frames, strides, pads)
def test_multi_clip_spreads_clips(n, clips, num_frames, stride, pad):
    out = MultiClip(clips, num_frames, stride, pad=pad)(n)
    assert isinstance(out, list) and len(out) == clips
    for idx in out:
        check_clip(idx, n, num_frames, stride, pad)
    starts = [int(idx[0]) for idx in out]
    assert starts == sorted(starts)
    if n >= span(num_frames, stride):
        if clips > 1:
            assert out[0][0] == 0 and out[-1][-1] == n - 1
        else:
            np.testing.assert_array_equal(out[0], UniformStride(num_frames, stride)(n))


@given(lengths, st.integers(1, 4), st.integers(1, 4), strides, pads, seeds, st.booleans())
def test_two_rate_slow_is_every_alpha_th_fast_frame(n, alpha, slow_frames, stride, pad, seed,
                                                   training):
    num_frames = alpha * slow_frames
    slow, fast = TwoRate(alpha, num_frames, stride, training=training, pad=pad)(
        n, rng=np.random.default_rng(seed))
    check_clip(fast, n, num_frames, stride, pad)
    assert slow.shape == (slow_frames,) and slow.dtype == np.int64
    np.testing.assert_array_equal(slow, fast[::alpha])


def test_two_rate_needs_a_multiple_of_alpha():
    with pytest.raises(ValueError, match="multiple of alpha.*num_frames=6, alpha=4"):
        TwoRate(4, 6)


def test_without_rng_samplers_draw_from_the_sample_generator():
    crop = RandomTemporalCrop(4, 2)
    with using_generator(np.random.default_rng(7)):
        a = [crop(500) for _ in range(3)]
    with using_generator(np.random.default_rng(7)):
        b = [crop(500) for _ in range(3)]
    np.testing.assert_array_equal(a, b)
    outer = sample_generator()
    with using_generator(np.random.default_rng(0)):
        assert sample_generator() is not outer
    assert sample_generator() is outer


@pytest.mark.parametrize("make, message", [
    (lambda: UniformStride(0, 2), "num_frames must be a positive integer, got 0"),
    (lambda: RandomTemporalCrop(4, 2.5), "stride must be a positive integer, got 2.5"),
    (lambda: MultiClip(3, 4, pad='mirror'), "pad must be one of .*'mirror'"),
    (lambda: SegmentSampler(8)(0), "frame count, a positive integer; got 0"),
    (lambda: RandomTemporalCrop(4)(10, rng=3), "numpy.random.Generator or None, got int"),
])
def test_bad_arguments_say_what_was_expected(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# ---- the input scale that makes sampling necessary (tensorlite/data/scale.py) -----------------

@pytest.mark.parametrize("dims, count, rounded", [
    ((1, 224, 224, 3), 150_528, "150 k"),                  # one image
    ((32, 224, 224, 3), 4_816_896, "4.8 M"),               # the lesson's 32-frame example
    ((64, 224, 224, 3), 9_633_792, "9.6 M"),               # "about 9.6 million numbers"
    ((60 * 30, 224, 224, 3), 270_950_400, "270 M"),        # a minute at 30 fps: "around 270 M"
])
def test_clip_numbers_are_the_lessons(dims, count, rounded):
    numbers = clip_numbers(*dims)
    assert numbers.count == count and numbers.shape == dims
    assert numbers.float32_bytes == 4 * count
    assert f"= {count:,} values (~{rounded})" in str(numbers)


def test_clip_numbers_rounding_and_errors():
    assert clip_numbers(16, 112, 112).count == 16 * 112 * 112 * 3
    assert clip_numbers(8, 10, 10, C=2).text.startswith("8 x 10 x 10 x 2 = 1,600 values (~1.6 k)")
    assert human(999_999) == "1.0 M" and human(512) == "512" and human_bytes(2 ** 30) == "1.0 GiB"
    # no int64 overflow for absurd sizes
    assert clip_numbers(10 ** 6, 10 ** 5, 10 ** 5, 10 ** 3).count == 10 ** 19
    with pytest.raises(ValueError, match="positive integer sizes; H = 0"):
        clip_numbers(8, 0, 4)


def test_scale_module_prints_the_lessons_examples(capsys):
    scale_main()
    out = capsys.readouterr().out
    assert "one minute at 30 fps" in out and "270,950,400" in out and "9,633,792" in out

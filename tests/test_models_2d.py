"""The architectures built on a per-frame 2D CNN: single_frame, late/early fusion, two_stream,
cnn_lstm (LRCN), their shared FrameCNN, and LocalResponseNorm.

Forward + backward of every tiny preset, float64 gradchecks on miniature instances, the paper
presets' exact parameter counts (REFERENCES.md section 6; built, never run), wrong-shape errors, and
what each family can and cannot see in time."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite.models import build_model, paper_num_classes
from tensorlite.models.cnn2d import conv_output_shape, frame_cnn
from tensorlite.nn.local_response_norm import LocalResponseNorm

NAMES = ('single_frame', 'late_fusion', 'late_fusion_max', 'late_fusion_concat', 'early_fusion',
         'two_stream', 'two_stream_concat', 'cnn_lstm', 'cnn_lstm_mean')
CLIP_ONLY = tuple(n for n in NAMES if not n.startswith('two_stream'))
TWO_STREAM = ('two_stream', 'two_stream_concat')
FIXED_T = ('late_fusion_concat', 'early_fusion')          # models whose weights fix T


def count(model):
    return sum(p.numel() for p in model.parameters())


def clip(rng, *shape, dtype=np.float32):
    return tl.tensor(rng.standard_normal(shape).astype(dtype))


def run(model, x, flow=None):
    return model(x) if flow is None else model(x, flow)


# ---- LocalResponseNorm ---------------------------------------------------------------------------

def lrn_reference(a, size, alpha, beta, k):
    """b_c = a_c / (k + alpha/size * sum of a^2 over channels c - size//2 .. c + (size-1)//2)
    ** beta, written from the formula."""
    C = a.shape[1]
    out = np.empty_like(a)
    for c in range(C):
        lo, hi = max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)
        s = (a[:, lo:hi] ** 2).sum(axis=1)
        out[:, c] = a[:, c] / (k + alpha / size * s) ** beta
    return out


@pytest.mark.parametrize('shape', [(2, 7, 5, 4), (2, 3, 4), (1, 6, 2, 3, 4)])
@pytest.mark.parametrize('size', [1, 2, 3, 5])
def test_lrn_matches_numpy_reference(rng, shape, size):
    a = rng.standard_normal(shape) * 3
    y = LocalResponseNorm(size, alpha=0.3, beta=0.75, k=2.0)(tl.tensor(a))
    np.testing.assert_allclose(y.numpy(), lrn_reference(a, size, 0.3, 0.75, 2.0), rtol=1e-12,
                               atol=1e-12)
    y32 = LocalResponseNorm(size)(tl.tensor(a.astype(np.float32)))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.numpy(), lrn_reference(a, size, 1e-4, 0.75, 1.0), rtol=1e-5)


@pytest.mark.parametrize('size', [2, 3])
def test_lrn_gradcheck(rng, size):
    x = tl.tensor(rng.standard_normal((2, 5, 3, 2)), requires_grad=True)
    lrn = LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.0)
    assert tl.gradcheck(lrn, (x,))
    assert tl.gradgradcheck(lrn, (x,))


def test_lrn_errors():
    with pytest.raises(ValueError, match='size'):
        LocalResponseNorm(0)
    with pytest.raises(ValueError, match='at least 3 dims'):
        LocalResponseNorm(3)(tl.ones(2, 4))
    assert list(LocalResponseNorm(5).parameters()) == []


# ---- FrameCNN ------------------------------------------------------------------------------------

def test_frame_cnn_shapes_match_forward(rng):
    cnn = frame_cnn('tiny', in_channels=5, widths=(3, 4, 6), input_size=24, fc_dims=(7, 6))
    assert cnn.feature_shape == (6, 3, 3) and cnn.feature_dim == 54 and cnn.out_dim == 6
    x = clip(rng, 2, 5, 24, 24)
    assert tuple(cnn.forward_features(x).shape) == (2, 54)
    assert tuple(cnn(x).shape) == (2, 6)
    with pytest.raises(ValueError, match='too small'):
        frame_cnn('tiny', input_size=4)


@pytest.mark.parametrize('arch, size, expected', [
    ('karpathy', 170, (256, 6, 6)),         # 170 -> 54 -> 27 -> 27 -> 13 -> 13 -> 6
    ('cnn_m_2048', 224, (512, 6, 6)),       # ceil-mode pools: 109 -> 54 -> 26 -> 13 -> 6
    ('caffenet_zf', 227, (384, 6, 6)),      # 111 -> 55 -> 26 -> 13 -> 13 -> 6
])
def test_paper_conv_stage_shapes(arch, size, expected):
    cnn = frame_cnn(arch, fc_dims=(1,))                     # the conv stage, without the big fc6
    assert cnn.input_size == size and cnn.feature_shape == expected


def test_conv_output_shape_ceil_mode():
    # Caffe's rounding: a 3/2 pool on 26 gives 13 (ceil), PyTorch's default 12 (floor)
    layers = [('pool', tl.nn.MaxPool2d(3, 2, ceil_mode=True))]
    assert conv_output_shape(layers, 4, 26) == (4, 13, 13)
    assert conv_output_shape([('pool', tl.nn.MaxPool2d(3, 2))], 4, 26) == (4, 12, 12)


# ---- every tiny preset: forward and backward -----------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_tiny_forward_backward(rng, name):
    tl.manual_seed(0)
    model = build_model(name, num_classes=5)
    assert 2_000 <= count(model) <= 600_000
    x = clip(rng, 2, 3, 16, 32, 32)
    flow = clip(rng, 2, 20, 32, 32) if name in TWO_STREAM else None
    y = run(model, x, flow)
    assert tuple(y.shape) == (2, 5) and y.dtype == np.float32
    y.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert np.isfinite(p.grad.numpy()).all(), f"{name}: non-finite gradient for {pname}"


# ---- float64 gradcheck on miniature instances ----------------------------------------------------

MINI = dict(widths=(2, 3), fc_dims=(4,), input_size=8)


def mini(name):
    extra = {}
    if name in FIXED_T:
        extra['frames'] = 3
    if name in TWO_STREAM:
        extra['flow_length'] = 1
    if name.startswith('cnn_lstm'):
        extra['hidden_size'] = 3
    return build_model(name, num_classes=3, **MINI, **extra).double().eval()


@pytest.mark.parametrize('name', NAMES)
def test_gradcheck_miniature(rng, name):
    tl.manual_seed(0)
    model = mini(name)
    x = clip(rng, 2, 3, 3, 8, 8, dtype=np.float64)
    x.requires_grad_(True)
    params = tuple(model.parameters())
    if name in TWO_STREAM:
        flow = clip(rng, 2, 2, 8, 8, dtype=np.float64)
        flow.requires_grad_(True)
        assert tl.gradcheck(lambda x, f, *p: model(x, f), (x, flow) + params, fast_mode=True)
    else:
        assert tl.gradcheck(lambda x, *p: model(x), (x,) + params, fast_mode=True)


# ---- paper presets: exact parameter counts (built, never run) ------------------------------------

def conv(cin, cout, k, groups=1):
    return cout * (cin // groups) * k * k + cout


def fc(i, o):
    return i * o + o


KARPATHY_CONVS_AFTER_1 = (conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3)
                          + conv(384, 256, 3))
KARPATHY_FC = fc(4096, 4096) + fc(4096, 101)


@pytest.mark.parametrize('name', ['cnn_lstm', 'cnn_lstm_mean'])
def test_paper_lrcn_fc6_count(name):
    assert paper_num_classes(name) == 101
    model = build_model(name, paper_num_classes(name), preset='paper')
    assert count(model) == 65_422_309                        # REFERENCES.md section 6, nn.LSTM
    assert count(model.cnn) == 60_937_856
    assert count(model.lstm) == 4_458_496
    assert model.cnn.fc6.in_features == 13_824 and model.lstm.hidden_size == 256
    assert model.cnn.drop6.p == 0.9 and model.drop.p == 0.5
    keys = list(model.state_dict())
    assert keys[:2] == ['cnn.conv1.weight', 'cnn.conv1.bias']
    assert {'lstm.weight_ih_l0', 'lstm.weight_hh_l0', 'lstm.bias_ih_l0', 'lstm.bias_hh_l0',
            'fc8.weight', 'fc8.bias', 'cnn.fc6.weight'} <= set(keys)


def test_paper_two_stream_counts():
    assert paper_num_classes('two_stream') == 101
    model = build_model('two_stream', paper_num_classes('two_stream'), preset='paper')
    assert count(model.spatial) == 90_627_813                # REFERENCES.md section 6
    assert count(model.temporal) == 90_707_781
    assert count(model) == 90_627_813 + 90_707_781
    assert model.temporal.cnn.conv1.in_channels == 20        # 2L, L = 10
    assert model.spatial.cnn.fc6.in_features == 18_432       # 512 * 6 * 6 with ceil-mode pools
    assert hasattr(model.spatial.cnn, 'norm2') and not hasattr(model.temporal.cnn, 'norm2')
    assert model.temporal.cnn.drop6.p == 0.9 and model.spatial.cnn.drop6.p == 0.5


@pytest.mark.parametrize('name, expected', [
    ('single_frame', conv(3, 96, 11) + KARPATHY_CONVS_AFTER_1 + fc(9216, 4096) + KARPATHY_FC),
    ('late_fusion', conv(3, 96, 11) + KARPATHY_CONVS_AFTER_1 + fc(9216, 4096) + KARPATHY_FC),
    ('late_fusion_concat', conv(3, 96, 11) + KARPATHY_CONVS_AFTER_1 + fc(2 * 9216, 4096)
     + KARPATHY_FC),
    ('early_fusion', conv(30, 96, 11) + KARPATHY_CONVS_AFTER_1 + fc(9216, 4096) + KARPATHY_FC),
])
def test_paper_karpathy_counts(name, expected):
    model = build_model(name, 101, preset='paper')
    assert count(model) == expected
    assert count(model) == {'single_frame': 58_695_141, 'late_fusion': 58_695_141,
                            'late_fusion_concat': 96_443_877, 'early_fusion': 59_008_773}[name]


# ---- wrong shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_wrong_shapes_name_the_expected_shape(name):
    model = build_model(name, num_classes=4)
    flow = tl.zeros(2, 20, 32, 32) if name in TWO_STREAM else None
    T = 16
    with pytest.raises(ValueError, match=r'\(N, 3, '):
        run(model, tl.zeros(2, 3, 32, 32), flow)                       # 4-D: one frame, no T
    with pytest.raises(ValueError, match='3 channels'):
        run(model, tl.zeros(2, 1, T, 32, 32), flow)
    with pytest.raises(ValueError, match=r'32x32 frames.*\(N, 3, (T|16), 32, 32\)'):
        run(model, tl.zeros(2, 3, T, 24, 24), flow)
    if name in FIXED_T:
        with pytest.raises(ValueError, match=r'built for 16 frames.*\(N, 3, 16, 32, 32\)'):
            run(model, tl.zeros(2, 3, 8, 32, 32), flow)
    if name in TWO_STREAM:
        with pytest.raises(ValueError, match=r'\(N, 20, 32, 32\)'):
            model(tl.zeros(2, 3, T, 32, 32), tl.zeros(2, 10, 32, 32))
        with pytest.raises(ValueError, match=r'\(N, 20, 32, 32\)'):
            model(tl.zeros(2, 3, T, 32, 32), tl.zeros(2, 20, 1, 32, 32))


def test_bad_options():
    with pytest.raises(ValueError, match='pooling'):
        build_model('late_fusion', 4, pooling='median')
    with pytest.raises(ValueError, match="fuse must be one of \\('features', 'scores'\\), got 'logits'"):
        build_model('late_fusion', 4, fuse='logits')
    with pytest.raises(ValueError, match="fuse='scores'.*got 'concat'"):
        build_model('late_fusion', 4, pooling='concat', fuse='scores')
    with pytest.raises(ValueError, match='readout'):
        build_model('cnn_lstm', 4, readout='first')
    with pytest.raises(ValueError, match='fusion'):
        build_model('two_stream', 4, fusion='svm')
    model = build_model('single_frame', 4).eval()
    with pytest.raises(ValueError, match=r'frame must be None or an int in \[-16, 16\)'):
        model(tl.zeros(1, 3, 16, 32, 32), frame=16)


# ---- what each family sees in time ---------------------------------------------------------------

def reverse_time(x):
    return tl.tensor(np.ascontiguousarray(x.numpy()[:, :, ::-1]))


def test_late_fusion_fuses_scores_tiny_and_features_paper(rng):
    """tiny: every frame's class scores (the single-frame network's) pooled over time; paper and
    fuse='features': the conv features pooled before the fc stage."""
    tl.manual_seed(2)
    single = build_model('single_frame', 4).double().eval()
    x = clip(rng, 2, 3, 5, 32, 32, dtype=np.float64)
    per_frame = np.stack([single(x, frame=t).numpy() for t in range(5)], axis=1)   # (N, T, 4)
    for name, pooled in (('late_fusion', per_frame.mean(axis=1)),
                         ('late_fusion_max', per_frame.max(axis=1))):
        late = build_model(name, 4).double().eval()
        assert late.fuse == 'scores'
        late.load_state_dict(single.state_dict())
        np.testing.assert_allclose(late(x).numpy(), pooled, rtol=1e-12, atol=1e-12)
    features = build_model('late_fusion', 4, fuse='features').double().eval()
    features.load_state_dict(single.state_dict())
    z = features.cnn.forward_features(
        tl.tensor(np.ascontiguousarray(x.numpy().transpose(0, 2, 1, 3, 4).reshape(10, 3, 32, 32))))
    expected = features.fc8(features.cnn.forward_fc(
        tl.tensor(z.numpy().reshape(2, 5, -1).mean(axis=1)))).numpy()
    np.testing.assert_allclose(features(x).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert build_model('late_fusion', 4, preset='paper').fuse == 'features'
    assert build_model('late_fusion_concat', 4).fuse == 'features'


@pytest.mark.parametrize('name,fuse', [('late_fusion', None), ('late_fusion_max', None),
                                       ('late_fusion', 'features'),
                                       ('late_fusion_max', 'features')])
def test_late_fusion_cannot_tell_a_clip_from_its_reverse(rng, name, fuse):
    tl.manual_seed(1)
    model = build_model(name, 4, fuse=fuse).double().eval()
    x = clip(rng, 3, 3, 16, 32, 32, dtype=np.float64)
    np.testing.assert_allclose(model(reverse_time(x)).numpy(), model(x).numpy(), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize('name', ['cnn_lstm', 'cnn_lstm_mean', 'early_fusion',
                                  'late_fusion_concat'])
def test_order_aware_models_see_the_reverse(rng, name):
    tl.manual_seed(1)
    model = build_model(name, 4).eval()
    x = clip(rng, 3, 3, 16, 32, 32)
    forward, backward = model(x).numpy(), model(reverse_time(x)).numpy()
    assert np.abs(forward - backward).max() > 1e-4


def test_single_frame_uses_the_middle_frame_in_eval(rng):
    tl.manual_seed(2)
    model = build_model('single_frame', 4).eval()
    x = rng.standard_normal((2, 3, 16, 32, 32)).astype(np.float32)
    y = model(tl.tensor(x)).numpy()
    others = x.copy()
    others[:, :, np.arange(16) != 8] = rng.standard_normal((2, 3, 15, 32, 32))
    np.testing.assert_array_equal(model(tl.tensor(others)).numpy(), y)
    middle = x.copy()
    middle[:, :, 8] += 1.0
    assert np.abs(model(tl.tensor(middle)).numpy() - y).max() > 1e-4
    # a chosen frame, at build time or per call
    np.testing.assert_array_equal(model(tl.tensor(x), frame=8).numpy(), y)
    chosen = build_model('single_frame', 4, frame=-1).eval()
    chosen.load_state_dict(model.state_dict())
    last = x.copy()
    last[:, :, :15] = 0
    np.testing.assert_array_equal(chosen(tl.tensor(x)).numpy(), chosen(tl.tensor(last)).numpy())


def test_single_frame_trains_on_a_random_frame_per_clip(rng):
    model = build_model('single_frame', 4).train()
    N, T = 6, 16
    x = rng.standard_normal((N, 3, T, 32, 32)).astype(np.float32)
    tl.manual_seed(7)
    y = model(tl.tensor(x)).numpy()
    picked = np.random.default_rng(7).integers(0, T, size=N)   # tensorlite's generator, same seed
    assert len(set(picked.tolist())) > 1
    still = np.repeat(x[np.arange(N), :, picked][:, :, None], T, axis=2)   # clip n = its frame
    np.testing.assert_allclose(model(tl.tensor(still), frame=0).numpy(), y, rtol=1e-5, atol=1e-6)


def test_two_stream_mean_fusion_averages_the_softmaxes(rng):
    tl.manual_seed(3)
    model = build_model('two_stream', 5).double().eval()
    x = clip(rng, 3, 3, 16, 32, 32, dtype=np.float64)
    flow = clip(rng, 3, 20, 32, 32, dtype=np.float64)
    fused = model(x, flow).numpy()
    s, t = (v.numpy() for v in model.forward_streams(x, flow))

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(np.exp(fused), (softmax(s) + softmax(t)) / 2, rtol=1e-12)
    np.testing.assert_allclose(np.exp(fused).sum(axis=1), 1.0, rtol=1e-12)
    # the spatial stream reads the middle RGB frame only; the temporal stream reads the flow
    others = x.numpy().copy()
    others[:, :, :8] = 0
    np.testing.assert_array_equal(model(tl.tensor(others), flow).numpy(), fused)
    assert np.abs(model(x, flow * 2.0).numpy() - fused).max() > 1e-6


def test_state_dict_keys_and_weight_sharing_between_families(rng):
    tl.manual_seed(4)
    single = build_model('single_frame', 4).eval()
    keys = list(single.state_dict())
    assert keys[:2] == ['cnn.conv1.weight', 'cnn.conv1.bias'] and keys[-2:] == ['fc8.weight',
                                                                               'fc8.bias']
    assert 'cnn.bn1.running_mean' in keys
    # a single-frame checkpoint loads into late fusion; on a one-frame clip they agree
    late = build_model('late_fusion', 4).eval()
    late.load_state_dict(single.state_dict())
    x = clip(rng, 2, 3, 1, 32, 32)
    np.testing.assert_allclose(late(x).numpy(), single(x).numpy(), rtol=1e-5, atol=1e-6)
    # ... and into the spatial stream of a two-stream network
    two = build_model('two_stream', 4).eval()
    assert {'spatial.cnn.conv1.weight', 'spatial.fc8.weight', 'temporal.cnn.conv1.weight',
            'temporal.fc8.weight'} <= set(two.state_dict())
    two.spatial.load_state_dict(single.state_dict())
    concat = build_model('two_stream_concat', 4)
    assert 'fc8.weight' in concat.state_dict() and 'spatial.fc8.weight' not in concat.state_dict()

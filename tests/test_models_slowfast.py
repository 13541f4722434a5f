"""SlowFast (models/slowfast.py): parameter counts of the paper preset, the two pathways' frame
rates and widths, the lateral connections' shapes, gradients, wrong shapes."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.models import build_model, list_models, paper_num_classes
from tensorlite.models.slowfast import FuseFastToSlow, SlowFast


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def clip(rng, shape, dtype=np.float32):
    return tl.tensor(rng.standard_normal(shape).astype(dtype))


def laterals(model):
    """The lateral connections in order (after stem, res2, res3, res4)."""
    return [m for m in model.modules() if isinstance(m, FuseFastToSlow)]


# ---- paper preset: exact parameter counts (REFERENCES.md section 3), no forward ------------------

@pytest.mark.parametrize('fusion_kernel, count', [
    (5, 34_480_216),     # SlowFast-R50 4x16, PySlowFast SLOWFAST_4x16_R50.yaml
    (7, 34_566_488),     # PyTorchVideo hub slowfast_r50, lateral kernel 7x1x1
])
def test_paper_parameter_count(fusion_kernel, count):
    overrides = {} if fusion_kernel == 5 else dict(fusion_kernel=7)
    assert paper_num_classes('slowfast') == 400
    model = build_model('slowfast', paper_num_classes('slowfast'), 'paper', **overrides)
    assert n_params(model) == count
    # alpha = 8 and beta = 1/8 in the modules themselves: stems 64 | 8 channels, laterals
    # C -> 2C with kernel k x 1 x 1, stride 8 x 1 x 1, no bias; head on 2048 + 256 features.
    assert (model.alpha, model.beta_inv) == (8, 8)
    stems = model.blocks[0].multipathway_blocks
    assert stems[0].conv.weight.shape == (64, 3, 1, 7, 7)
    assert stems[1].conv.weight.shape == (8, 3, 5, 7, 7)
    convs = [f.conv_fast_to_slow for f in laterals(model)]
    assert [c.weight.shape for c in convs] == [(2 * c, c, fusion_kernel, 1, 1)
                                               for c in (8, 32, 64, 128)]
    assert all(tuple(c.stride) == (8, 1, 1) and c.bias is None for c in convs)
    assert model.blocks[6].proj.weight.shape == (400, 2304)
    assert model.blocks[1].multipathway_blocks[0].res_blocks[0].branch2.conv_a.weight.shape == \
        (64, 80, 1, 1, 1)                                      # slow res2 input 64 + 2 * 8


def test_state_dict_keys_follow_pytorchvideo():
    keys = set(build_model('slowfast', 4).state_dict())
    for k in ['blocks.0.multipathway_blocks.0.conv.weight',
              'blocks.0.multipathway_blocks.1.norm.running_var',
              'blocks.0.multipathway_fusion.conv_fast_to_slow.weight',
              'blocks.0.multipathway_fusion.norm.bias',
              'blocks.1.multipathway_blocks.0.res_blocks.0.branch1_conv.weight',
              'blocks.1.multipathway_blocks.1.res_blocks.0.branch1_norm.weight',
              'blocks.2.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight',
              'blocks.4.multipathway_blocks.1.res_blocks.0.branch2.norm_c.running_mean',
              'blocks.3.multipathway_fusion.conv_fast_to_slow.weight',
              'blocks.6.proj.weight', 'blocks.6.proj.bias']:
        assert k in keys, k
    assert not any(k.startswith('blocks.4.multipathway_fusion') for k in keys)   # none after res5
    assert 'slowfast' in list_models()


# ---- tiny preset: forward, backward, gradcheck ---------------------------------------------------

def test_tiny_forward_backward(rng):
    model = build_model('slowfast', 4)
    assert 1_000 <= n_params(model) <= 300_000
    y = model(clip(rng, (2, 3, 16, 32, 32)))
    assert y.shape == (2, 4) and y.dtype == np.float32
    (y * tl.tensor(rng.standard_normal((2, 4)).astype(np.float32))).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert np.isfinite(p.grad.data).all(), name


def test_gradcheck_miniature(rng):
    model = SlowFast(3, alpha=2, beta_inv=2, depths=(1, 1, 1, 1), widths=(2, 2, 2, 2),
                     stem_width=4, stem_spatial_kernel=3).double().eval()
    # Eval-mode BN with random statistics and positive shifts: deterministic, not the identity,
    # and the ReLUs stay away from their kink.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.weight.data = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data = rng.uniform(0.1, 0.3, m.num_features)
            m.running_mean.data = rng.uniform(-0.1, 0.1, m.num_features)
            m.running_var.data = rng.uniform(0.5, 1.5, m.num_features)
    x = tl.tensor(rng.standard_normal((1, 3, 4, 8, 8)), requires_grad=True)
    params = list(model.parameters())
    assert tl.gradcheck(lambda x_, *ps: model(x_), [x] + params, fast_mode=True)


# ---- alpha, beta and the lateral connections -----------------------------------------------------

@pytest.mark.parametrize('alpha, beta_inv, frames', [(4, 4, 16), (2, 8, 8), (8, 2, 16)])
def test_lateral_shapes(alpha, beta_inv, frames, rng):
    model = build_model('slowfast', 4, alpha=alpha, beta_inv=beta_inv, widths=(8, 16, 32, 64),
                        stem_width=16)
    assert (model.alpha, model.beta_inv) == (alpha, beta_inv)
    x = clip(rng, (2, 3, frames, 32, 32))
    shapes = model.pathway_shapes(x)
    assert [s['stage'] for s in shapes] == ['stem', 'res2', 'res3', 'res4', 'res5']
    for s in shapes:
        (n, cs, ts, hs, ws), (_, cf, tf, hf, wf) = s['slow'], s['fast']
        assert n == 2 and ts == frames // alpha and tf == frames     # no temporal downsampling
        assert (hs, ws) == (hf, wf)
        assert cf * beta_inv == cs                                  # fast channels = beta * slow
        if s['stage'] == 'res5':
            assert s['lateral'] is None and s['fused_slow'] == s['slow']
        else:
            assert s['lateral'] == (n, 2 * cf, ts, hs, ws)          # C -> 2C, T -> T / alpha
            assert s['fused_slow'] == (n, cs + 2 * cf, ts, hs, ws)
    assert [s['slow'][3] for s in shapes] == [8, 8, 4, 2, 1]       # spatial stride 2 at res3/4/5

    # The same lateral shapes seen by forward hooks during an ordinary forward.
    seen = []
    handles = [f.conv_fast_to_slow.register_forward_hook(
        lambda m, inp, out: seen.append((tuple(inp[0].shape), tuple(out.shape))))
        for f in laterals(model)]
    model(x)
    for h in handles:
        h.remove()
    assert [out for _, out in seen] == [s['lateral'] for s in shapes[:4]]
    assert [inp for inp, _ in seen] == [s['fast'] for s in shapes[:4]]


def test_slow_pathway_takes_every_alpha_th_frame(rng):
    model = build_model('slowfast', 4).eval()
    assert (model.alpha, model.beta_inv) == (4, 4)                 # the tiny preset
    inputs = []
    stems = model.blocks[0].multipathway_blocks
    handles = [s.register_forward_pre_hook(lambda m, a: inputs.append(a[0].data.copy()))
               for s in stems]
    x = clip(rng, (1, 3, 16, 32, 32))
    model(x)
    for h in handles:
        h.remove()
    np.testing.assert_array_equal(inputs[0], x.data[:, :, ::4])    # slow: 4 frames 0, 4, 8, 12
    np.testing.assert_array_equal(inputs[1], x.data)               # fast: all 16


def test_fast_pathway_reaches_the_slow_one(rng):
    """Without laterals the slow pathway would ignore frames 1, 2, 3, 5, ...; with them, changing
    only a frame the slow pathway never sees changes its features (eval mode, deterministic)."""
    model = build_model('slowfast', 4).eval()
    x = clip(rng, (1, 3, 16, 32, 32))
    x2 = tl.tensor(x.data.copy())
    x2.data[:, :, 1] += 1.0
    with tl.no_grad():
        slow_a = model.blocks[0](model.split_pathways(x))[0].data
        slow_b = model.blocks[0](model.split_pathways(x2))[0].data
    cs = model.blocks[0].multipathway_blocks[0].conv.weight.shape[0]
    np.testing.assert_array_equal(slow_a[:, :cs], slow_b[:, :cs])   # slow stem: frame 1 unseen
    assert not np.allclose(slow_a[:, cs:], slow_b[:, cs:])          # lateral: frame 1 seen


# ---- wrong shapes and bad configurations ---------------------------------------------------------

@pytest.mark.parametrize('shape, match', [
    ((2, 3, 16, 32), r'\(N, 3, T, H, W\)'),                          # 4-D
    ((2, 1, 16, 32, 32), r'\(N, 3, T, H, W\)'),                      # channels
    ((2, 3, 10, 32, 32),                                             # T not a multiple of alpha
     r'multiple of alpha = 4.*\(N, 3, T = k \* 4, H, W\).*\(2, 3, 10, 32, 32\)'),
])
def test_wrong_shapes(shape, match):
    model = build_model('slowfast', 4)
    with pytest.raises(ValueError, match=match):
        model(tl.zeros(*shape))


def test_bad_configuration():
    with pytest.raises(ValueError, match='odd'):
        build_model('slowfast', 4, fusion_kernel=4)
    with pytest.raises(ValueError, match='4 entries'):
        build_model('slowfast', 4, depths=(1, 1, 1))
    with pytest.raises(ValueError, match='beta_inv'):
        build_model('slowfast', 4, beta_inv=64)

"""Video transformers (models/timesformer.py, models/vivit.py): forward and backward of every
variant on tiny clips, float64 gradcheck of a miniature of each, the exact parameter counts of the
paper presets (../shared/REFERENCES.md sections 4 and 5), wrong input shapes, and what each variant
lets a token see: divided attention equals joint attention when T = 1 and differs otherwise, the
factorized encoder never mixes frames in its spatial encoder, model 4 attends along a cross of its
frame and its patch position, late fusion (space-only) cannot tell a clip from its reverse."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite.models import build_model, list_models, paper_num_classes
from tensorlite.models.timesformer import from_official_state_dict

TIMESFORMERS = ['timesformer', 'timesformer_divided', 'timesformer_joint', 'timesformer_space_only']
VIVITS = ['vivit', 'vivit_joint', 'vivit_factorized_encoder', 'vivit_factorized_self_attention',
          'vivit_factorized_dot_product']
ALL = TIMESFORMERS + VIVITS

# miniatures for gradcheck and the token-influence tests: 2 frames x 4 patches (TimeSformer),
# 2 tubelet frames x 4 patches (ViViT), width 8, 2 heads
MINI_TIMESFORMER = dict(frames=2, img_size=8, patch_size=4, embed_dim=8, depth=2, num_heads=2,
                        mlp_dim=16, stem=None, pool='cls')
MINI_VIVIT = dict(frames=4, img_size=8, tubelet=(2, 4, 4), embed_dim=8, depth=1,
                  temporal_depth=1, num_heads=2, mlp_dim=16, stem=None, pool=None,
                  pos_embed_std=0.02)
# the tiny presets are hybrids (conv stem, max readout); these overrides give the papers' design
# at tiny size: linear patch / tubelet embedding and class-token (ViViT 3, 4: mean) readout
PLAIN_TIMESFORMER = dict(stem=None, pool='cls', patch_size=8)
PLAIN_VIVIT = dict(stem=None, pool=None, tubelet=(2, 8, 8), pos_embed_std=0.02)


def mini(name, **overrides):
    """A float64 miniature of `name` with every parameter random (the zero-initialized ones too:
    ViViT's head, TimeSformer's time_embed and temporal_fc), so nothing is trivially zero."""
    config = dict(MINI_TIMESFORMER if name.startswith('timesformer') else MINI_VIVIT)
    config.update(overrides)
    tl.manual_seed(0)
    model = build_model(name, 3, **config).double().eval()
    randomize(model)
    return model


def randomize(model, seed=1, scale=0.3):
    rng = np.random.default_rng(seed)
    for _, p in sorted(model.named_parameters()):
        p.data[...] = rng.standard_normal(p.shape) * scale
        if p.ndim == 1 and _is_norm_weight(model, p):
            p.data[...] += 1.0


def _is_norm_weight(model, p):
    return any(m.weight is p for m in model.modules() if isinstance(m, tl.nn.LayerNorm))


def clip(rng, shape):
    return tl.tensor(rng.standard_normal(shape))


def test_registered_names():
    names = list_models()
    for name in ALL:
        assert name in names


@pytest.mark.parametrize('name', ALL)
def test_tiny_forward_backward(name, rng):
    """The tiny preset on 16 x 32 x 32 clips: (N, num_classes) logits, a finite gradient for every
    parameter and for the clip."""
    tl.manual_seed(0)
    model = build_model(name, 5)
    x = tl.tensor(rng.standard_normal((2, 3, 16, 32, 32)).astype(np.float32), requires_grad=True)
    y = model(x)
    assert y.shape == (2, 5) and y.dtype == np.float32
    (y * tl.tensor(rng.standard_normal((2, 5)).astype(np.float32))).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert np.isfinite(p.grad.numpy()).all(), pname
    assert np.isfinite(x.grad.numpy()).all()
    n = sum(p.numel() for p in model.parameters())
    assert 5_000 <= n <= 200_000


@pytest.mark.parametrize('name', ['timesformer', 'timesformer_joint', 'timesformer_space_only',
                                  'vivit_joint', 'vivit_factorized_encoder',
                                  'vivit_factorized_self_attention',
                                  'vivit_factorized_dot_product'])
def test_gradcheck_miniature(name, rng):
    """float64 fast-mode gradcheck with respect to the clip and every parameter."""
    model = mini(name)
    frames = MINI_TIMESFORMER['frames'] if name.startswith('timesformer') else MINI_VIVIT['frames']
    x = tl.tensor(rng.standard_normal((2, 3, frames, 8, 8)), requires_grad=True)
    params = [p for _, p in model.named_parameters()]
    assert tl.gradcheck(lambda x, *ps: model(x), [x] + params, fast_mode=True)


# ---- exact parameter counts of the paper presets (REFERENCES.md sections 4 and 5) --------------

def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name, exact, no_head', [
    ('timesformer', 121_566_352, 121_258_752),
    ('timesformer_divided', 121_566_352, 121_258_752),
    ('timesformer_joint', 86_112_400, 85_804_800),
    ('timesformer_space_only', 86_106_256, 85_798_656),
])
def test_timesformer_paper_counts(name, exact, no_head):
    """TimeSformer-Base 8 x 224^2 with 400 classes, exactly; the published 121.4M / 85.9M are the
    same networks with a 174-class (SSv2) head."""
    assert paper_num_classes(name) == 400
    model = build_model(name, paper_num_classes(name), preset='paper')
    n = count(model)
    assert n == exact
    assert n - 769 * 400 == no_head
    published_174 = {'timesformer': 121_392_558, 'timesformer_divided': 121_392_558,
                     'timesformer_joint': 85_938_606,
                     'timesformer_space_only': 85_932_462}[name]
    assert no_head + 769 * 174 == published_174
    if name == 'timesformer_space_only':
        assert 'time_embed' not in model.state_dict()
    else:
        assert model.time_embed.shape == (1, 8, 768)
    assert model.pos_embed.shape == (1, 197, 768)


@pytest.mark.parametrize('name, exact', [
    ('vivit', 115_062_928),
    ('vivit_factorized_encoder', 115_062_928),
    ('vivit_joint', 88_954_000),
    ('vivit_factorized_self_attention', 117_319_312),
    ('vivit_factorized_dot_product', 88_952_464),
])
def test_vivit_paper_counts(name, exact):
    """ViViT-B/16x2 on 32 x 224^2 (16 x 14 x 14 tokens) with 400 classes."""
    assert paper_num_classes(name) == 400
    model = build_model(name, paper_num_classes(name), preset='paper')
    assert count(model) == exact
    if name in ('vivit', 'vivit_factorized_encoder'):
        assert model.spatial_transformer.pos_embed.shape == (1, 197, 768)
        assert model.temporal_transformer.pos_embed.shape == (1, 17, 768)
        assert len(model.spatial_transformer.blocks) == 12
        assert len(model.temporal_transformer.blocks) == 4
    else:
        tokens = 16 * 14 * 14 + (name == 'vivit_joint')
        assert model.transformer.pos_embed.shape == (1, tokens, 768)


# ---- wrong input shapes --------------------------------------------------------------------------

@pytest.mark.parametrize('name', ALL)
@pytest.mark.parametrize('shape, expected', [
    ((2, 3, 32, 32), r'\(N, 3, 16, 32, 32\)'),            # a batch of images, not clips
    ((2, 1, 16, 32, 32), r'\(N, 3, 16, 32, 32\)'),        # wrong channels
    ((2, 3, 8, 32, 32), r'16 frames.*\(N, 3, 16, 32, 32\)'),  # wrong frame count
    ((2, 3, 16, 48, 32), r'\(N, 3, 16, 32, 32\)'),        # wrong frame size
])
def test_wrong_shapes_name_the_expected_shape(name, shape, expected):
    model = build_model(name, 4)
    with pytest.raises(ValueError, match=expected):
        model(tl.zeros(*shape))


# ---- TimeSformer ---------------------------------------------------------------------------------

def test_timesformer_init_and_names():
    """Official initialization and state-dict keys: temporal_fc zero in every block but the first,
    time_embed zero, keys of facebookresearch/TimeSformer's VisionTransformer."""
    model = build_model('timesformer', 4, depth=3, **PLAIN_TIMESFORMER)
    assert np.abs(model.blocks[0].temporal_fc.weight.numpy()).sum() > 0
    for blk in list(model.blocks)[1:]:
        assert not blk.temporal_fc.weight.numpy().any() and not blk.temporal_fc.bias.numpy().any()
    assert not model.time_embed.numpy().any()
    keys = set(model.state_dict())
    for k in ['cls_token', 'pos_embed', 'time_embed', 'patch_embed.proj.weight', 'norm.weight',
              'head.weight', 'blocks.0.norm1.weight', 'blocks.0.attn.qkv.weight',
              'blocks.0.attn.qkv.bias', 'blocks.0.attn.proj.weight', 'blocks.0.temporal_norm1.bias',
              'blocks.0.temporal_attn.qkv.weight', 'blocks.0.temporal_attn.proj.bias',
              'blocks.0.temporal_fc.weight', 'blocks.0.norm2.weight', 'blocks.0.mlp.fc1.weight',
              'blocks.2.mlp.fc2.bias']:
        assert k in keys, k
    space_only = set(build_model('timesformer_space_only', 4, **PLAIN_TIMESFORMER).state_dict())
    assert 'time_embed' not in space_only
    assert not any('temporal' in k for k in space_only)
    # an official checkpoint's keys carry the wrapper's 'model.' prefix
    official = {'model.' + k: v.numpy() for k, v in model.state_dict().items()}
    other = build_model('timesformer', 4, depth=3, **PLAIN_TIMESFORMER)
    other.load_state_dict(from_official_state_dict(official))
    x = tl.randn(1, 3, 16, 32, 32)
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def _divided_and_joint(frames):
    """A divided model with random weights and temporal_fc = 0 everywhere, and a joint model with
    the same remaining weights (every joint key is a divided key)."""
    divided = mini('timesformer', frames=frames)
    for blk in divided.blocks:
        blk.temporal_fc.weight.data[...] = 0
        blk.temporal_fc.bias.data[...] = 0
    joint = build_model('timesformer_joint', 3, **dict(MINI_TIMESFORMER, frames=frames)).double()
    state = divided.state_dict()
    joint.load_state_dict({k: state[k] for k in joint.state_dict()})
    return divided, joint


def test_divided_equals_joint_when_one_frame(rng):
    """T = 1: attention over time is over one token, so with temporal_fc = 0 it adds nothing, and
    attention over the patches of the only frame (with the class token) is joint attention."""
    divided, joint = _divided_and_joint(frames=1)
    x = clip(rng, (3, 3, 1, 8, 8))
    np.testing.assert_allclose(divided(x).numpy(), joint(x).numpy(), rtol=1e-10, atol=1e-12)
    # the temporal sublayer contributes when temporal_fc is not zero (not a constant: every
    # LayerNorm downstream removes a shift by the same amount in all D channels)
    divided.blocks[0].temporal_fc.weight.data[...] = rng.standard_normal((8, 8))
    assert np.abs(divided(x).numpy() - joint(x).numpy()).max() > 1e-3


def test_divided_differs_from_joint_with_several_frames(rng):
    """T = 2, same weights: divided attention (temporal_fc = 0, so frames meet only through the
    averaged class token) is not joint attention, where every patch reads the other frame."""
    divided, joint = _divided_and_joint(frames=2)
    x = clip(rng, (3, 3, 2, 8, 8))
    assert np.abs(divided(x).numpy() - joint(x).numpy()).max() > 1e-3


@pytest.mark.parametrize('name, sees_order', [
    ('timesformer', True), ('timesformer_joint', True), ('timesformer_space_only', False),
    ('vivit_joint', True), ('vivit_factorized_encoder', True),
    ('vivit_factorized_self_attention', True), ('vivit_factorized_dot_product', True),
])
def test_order_of_frames(name, sees_order, rng):
    """Reversing the clip in time: space-only TimeSformer averages per-frame class tokens (late
    fusion) and cannot tell; every model with a time embedding and attention across time can.
    (ViViT reverses whole tubelets so that each tubelet's content is reversed too: only order
    across tokens is tested.)"""
    model = mini(name, frames=4)
    x = rng.standard_normal((2, 3, 4, 8, 8))
    reverse = x[:, :, ::-1].copy() if name.startswith('timesformer') else \
        x.reshape(2, 3, 2, 2, 8, 8)[:, :, ::-1].reshape(2, 3, 4, 8, 8).copy()
    gap = np.abs(model(tl.tensor(x)).numpy() - model(tl.tensor(reverse)).numpy()).max()
    if sees_order:
        assert gap > 1e-4
    else:
        assert gap < 1e-12


# ---- ViViT: which tokens influence which --------------------------------------------------------

def _perturbed_tubelet(rng, x, t, s, tubelet=(2, 4, 4), width=2):
    """x with the tubelet at token (t, s) changed (s row-major over a grid `width` wide)."""
    x = x.copy()
    kt, kh, kw = tubelet
    i, j = divmod(s, width)
    x[:, :, t * kt:(t + 1) * kt, i * kh:(i + 1) * kh, j * kw:(j + 1) * kw] += \
        rng.standard_normal((x.shape[0], x.shape[1], kt, kh, kw))
    return x


def _changed_tokens(encode, x, y):
    """(T, S) boolean: which output tokens of `encode` differ between inputs x and y."""
    a, b = encode(tl.tensor(x)).numpy(), encode(tl.tensor(y)).numpy()
    return (np.abs(a - b) > 1e-12).any(axis=(0, -1))


def test_vivit_shapes_tiny():
    """Tokens at each stage of 16 x 32 x 32 clips in 2 x 8 x 8 tubelets (the papers' design)."""
    x = tl.randn(2, 3, 16, 32, 32)
    fe = build_model('vivit', 4, **PLAIN_VIVIT)
    tokens = fe.embedding(x)
    assert tokens.shape == (2, 8, 16, 32)                              # (N, T', S, D)
    frames, cls = fe.spatial_transformer(tokens.reshape(16, 1, 16, 32))
    assert frames.shape == (16, 1, 16, 32) and cls.shape == (16, 32)   # a class token a frame
    _, cls = fe.temporal_transformer(cls.reshape(2, 1, 8, 32))
    assert cls.shape == (2, 32)
    for name in ['vivit_joint', 'vivit_factorized_self_attention', 'vivit_factorized_dot_product']:
        model = build_model(name, 4, **PLAIN_VIVIT)
        out, cls = model.transformer(model.embedding(x))
        assert out.shape == (2, 8, 16, 32)
        assert (cls is None) == (name != 'vivit_joint')
        assert model(x).shape == (2, 4)


def test_vivit_factorized_encoder_spatial_encoder_never_mixes_frames(rng):
    """Model 2: changing one tubelet changes the spatial encoder's class token of that frame only;
    the temporal encoder then carries it to the logits."""
    model = mini('vivit_factorized_encoder', frames=6)                 # T' = 3 frames of 4 tokens
    x = rng.standard_normal((2, 3, 6, 8, 8))
    y = _perturbed_tubelet(rng, x, t=1, s=2)

    def per_frame_cls(v):
        tokens = model.embedding(v)                                    # (N, 3, 4, D)
        N, T, S, D = tokens.shape
        _, cls = model.spatial_transformer(tokens.reshape(N * T, 1, S, D))
        return cls.reshape(N, T, 1, D)
    changed = _changed_tokens(per_frame_cls, x, y)[:, 0]
    np.testing.assert_array_equal(changed, [False, True, False])
    assert np.abs(model(tl.tensor(x)).numpy() - model(tl.tensor(y)).numpy()).max() > 1e-6


def test_vivit_joint_mixes_every_token(rng):
    """Model 1, one layer: every token reads every token of the clip."""
    model = mini('vivit_joint', frames=6)
    x = rng.standard_normal((2, 3, 6, 8, 8))
    y = _perturbed_tubelet(rng, x, t=2, s=3)
    changed = _changed_tokens(lambda v: model.transformer(model.embedding(v))[0], x, y)
    assert changed.all()


def test_vivit_factorized_dot_product_attends_along_a_cross(rng):
    """Model 4, one layer: half the heads read the token's frame, half its patch position, so a
    change at token (t, s) reaches exactly the tokens of frame t and of position s."""
    model = mini('vivit_factorized_dot_product', frames=6)             # 3 x 4 tokens
    x = rng.standard_normal((2, 3, 6, 8, 8))
    y = _perturbed_tubelet(rng, x, t=1, s=2)
    changed = _changed_tokens(lambda v: model.transformer(model.embedding(v))[0], x, y)
    cross = np.zeros((3, 4), dtype=bool)
    cross[1, :] = True
    cross[:, 2] = True
    np.testing.assert_array_equal(changed, cross)


@pytest.mark.parametrize('silenced, reach', [('spatial', 'position'), ('temporal', 'frame')])
def test_vivit_factorized_self_attention_time_then_space(silenced, reach, rng):
    """Model 3, one layer: with the spatial sublayer silenced (its output projection zero) a change
    at token (t, s) reaches only position s across time; with the temporal one silenced, only
    frame t.  Both on: everything (time then space, two hops)."""
    model = mini('vivit_factorized_self_attention', frames=6)
    x = rng.standard_normal((2, 3, 6, 8, 8))
    y = _perturbed_tubelet(rng, x, t=1, s=2)
    encode = lambda v: model.transformer(model.embedding(v))[0]        # noqa: E731
    assert _changed_tokens(encode, x, y).all()
    proj = getattr(model.transformer.blocks[0], f'{silenced}_attn').proj
    proj.weight.data[...] = 0
    proj.bias.data[...] = 0
    expected = np.zeros((3, 4), dtype=bool)
    if reach == 'position':
        expected[:, 2] = True
    else:
        expected[1, :] = True
    np.testing.assert_array_equal(_changed_tokens(encode, x, y), expected)


def test_vivit_init_and_names():
    """scenic's zero head and zero class tokens; keys mirror scenic's module tree."""
    model = build_model('vivit', 4, **PLAIN_VIVIT)
    assert not model.head.weight.numpy().any() and not model.head.bias.numpy().any()
    assert not model.spatial_transformer.cls_token.numpy().any()
    keys = set(model.state_dict())
    for k in ['embedding.weight', 'embedding.bias', 'spatial_transformer.cls_token',
              'spatial_transformer.pos_embed', 'spatial_transformer.blocks.0.attn.qkv.weight',
              'spatial_transformer.blocks.1.mlp.fc2.bias', 'spatial_transformer.norm.weight',
              'temporal_transformer.cls_token', 'temporal_transformer.blocks.0.norm1.weight',
              'temporal_transformer.norm.bias', 'head.weight']:
        assert k in keys, k
    assert model.embedding.weight.shape == (32, 3, 2, 8, 8)
    fsa = set(build_model('vivit_factorized_self_attention', 4, **PLAIN_VIVIT).state_dict())
    for k in ['transformer.pos_embed', 'transformer.blocks.0.temporal_norm.weight',
              'transformer.blocks.0.temporal_attn.qkv.weight',
              'transformer.blocks.0.spatial_norm.bias',
              'transformer.blocks.0.spatial_attn.proj.weight',
              'transformer.blocks.0.norm2.weight', 'transformer.blocks.0.mlp.fc1.weight',
              'transformer.norm.weight']:
        assert k in fsa, k
    assert 'transformer.cls_token' not in fsa
    assert 'transformer.cls_token' in set(build_model('vivit_joint', 4, **PLAIN_VIVIT).state_dict())


# ---- the tiny presets' hybrid: conv stem and max readout -----------------------------------------

def test_tiny_presets_are_hybrids_and_paper_presets_are_not():
    """Tiny: ConvStem (8, 16) -> 16 x 8 x 8 maps -> 8 time steps x 16 tokens, max readout, no class
    token; paper: no stem, class token."""
    x = tl.randn(2, 3, 16, 32, 32)
    ts = build_model('timesformer', 4)
    assert ts.stem.widths == (8, 16) and ts.cls_token is None and ts.pool == 'max'
    assert ts.stem(x).shape == (2, 16, 8, 8, 8)
    assert ts.patch_embed(ts.stem(x)).shape == (2, 8, 16, 32)
    assert ts.time_embed.shape == (1, 8, 32) and ts.pos_embed.shape == (1, 16, 32)
    vv = build_model('vivit', 4)
    assert vv.stem.widths == (8, 16) and vv.spatial_transformer.cls_token is None
    assert vv.embedding(vv.stem(x)).shape == (2, 8, 16, 32) and vv.tokens == (8, 16)
    assert abs(float(vv.temporal_transformer.pos_embed.numpy().std()) - 1.0) < 0.3
    for name in ('timesformer', 'vivit'):
        paper = build_model(name, 4, preset='paper')
        assert paper.stem is None and paper.pool == 'cls'


MINI_STEM = dict(stem=(2, 3), pool='max')          # 4 x 8 x 8 clips -> (3, 2, 2, 2) stem maps


@pytest.mark.parametrize('name, config', [
    ('timesformer', dict(MINI_TIMESFORMER, frames=4, patch_size=1, **MINI_STEM)),
    ('timesformer_joint', dict(MINI_TIMESFORMER, frames=4, patch_size=1, stem=(2, 3),
                               pool='mean')),
    ('vivit_factorized_encoder', dict(MINI_VIVIT, tubelet=(1, 1, 1), **MINI_STEM)),
    ('vivit_joint', dict(MINI_VIVIT, tubelet=(1, 1, 1), stem=(2, 3), pool='mean')),
    ('vivit_factorized_self_attention', dict(MINI_VIVIT, tubelet=(1, 1, 1), **MINI_STEM)),
])
def test_gradcheck_hybrid_miniature(name, config, rng):
    """float64 gradcheck through the stem (BatchNorm in eval mode) and the mean / max readout."""
    tl.manual_seed(0)
    model = build_model(name, 3, **config).double().eval()
    randomize(model)
    for m in model.modules():                       # running statistics away from 0 / 1 too
        if isinstance(m, tl.nn.BatchNorm3d):
            m.running_mean.data[...] = rng.standard_normal(m.running_mean.shape) * 0.1
            m.running_var.data[...] = 1 + rng.random(m.running_var.shape)
    x = tl.tensor(rng.standard_normal((2, 3, 4, 8, 8)), requires_grad=True)
    params = [p for _, p in model.named_parameters()]
    assert tl.gradcheck(lambda x, *ps: model(x), [x] + params, fast_mode=True)


def test_pool_tokens_against_numpy(rng):
    from tensorlite.models._transformer import pool_tokens
    x = rng.standard_normal((2, 3, 5, 4))
    np.testing.assert_allclose(pool_tokens(tl.tensor(x), 'mean').numpy(),
                               x.reshape(2, 15, 4).mean(1), rtol=1e-12)
    np.testing.assert_array_equal(pool_tokens(tl.tensor(x), 'max').numpy(),
                                  x.reshape(2, 15, 4).max(1))


def test_hybrid_sees_order_and_bad_options_are_named(rng):
    model = build_model('vivit', 3, **dict(MINI_VIVIT, tubelet=(1, 1, 1), **MINI_STEM)).double()
    x = rng.standard_normal((2, 3, 4, 8, 8))
    randomize(model)
    gap = model(tl.tensor(x)).numpy() - model(tl.tensor(x[:, :, ::-1].copy())).numpy()
    assert np.abs(gap).max() > 1e-4
    with pytest.raises(ValueError, match=r"pool must be one of.*'avg'"):
        build_model('timesformer', 3, pool='avg')
    with pytest.raises(ValueError, match=r"factorized_self_attention.*\('mean', 'max'\).*'cls'"):
        build_model('vivit_factorized_self_attention', 3, pool='cls')
    with pytest.raises(ValueError, match=r"8 x 8 x 8 \(the stem \(8, 16\).s maps of 16 x 32 x 32 "
                                         r"clips\) must be multiples of the tubelet \(1, 3, 3\)"):
        build_model('vivit', 3, tubelet=(1, 3, 3))
    with pytest.raises(ValueError, match=r"4 x patch_size \(3\)"):
        build_model('timesformer', 3, patch_size=3)

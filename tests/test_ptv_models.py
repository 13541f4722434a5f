"""PyTorchVideo's hub models under their own names: slowfast_r50 (models/slowfast.py), i3d_r50,
slow_r50, c2d_r50 (models/ptv_resnet.py).  Always: the paper presets' exact parameter counts and
state-dict keys, the tiny presets' shapes, and an i3d_r50 state dict converted into 'i3d' (the
same network under torchvision's names) giving i3d_r50's logits.  With PyTorchVideo installed:
each hub model with random weights and random BatchNorm statistics, its state dict converted, the
float64 logits on one clip at the hub's input size equal to 1e-9 of their scale."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.models import build_model, convert_state_dict, paper_num_classes, preset_clip
from tensorlite.models.i3d import pytorchvideo_key

from reference_models import pytorchvideo_hub_or_skip, randomize_batch_norm

# name: (parameters with 400 classes, state-dict keys, the classifier's key), PyTorchVideo 0.1.5
PAPER = {
    'slowfast_r50': (34_566_488, 662, 'blocks.6.proj.weight'),
    'i3d_r50': (28_043_472, 320, 'blocks.6.proj.weight'),
    'slow_r50': (32_454_096, 320, 'blocks.5.proj.weight'),
    'c2d_r50': (24_327_632, 320, 'blocks.6.proj.weight'),
}
NAMES = tuple(PAPER)
RES = 'res_blocks.0.branch2.conv_a.weight'

# A few keys of each paper model with their shapes, as the hub builds them.
KEYS = {
    'slowfast_r50': {
        'blocks.0.multipathway_blocks.1.conv.weight': (8, 3, 5, 7, 7),
        'blocks.0.multipathway_fusion.conv_fast_to_slow.weight': (16, 8, 7, 1, 1),
        'blocks.3.multipathway_fusion.conv_fast_to_slow.weight': (256, 128, 7, 1, 1),
        'blocks.1.multipathway_blocks.0.' + RES: (64, 80, 1, 1, 1),
    },
    'i3d_r50': {
        'blocks.0.conv.weight': (64, 3, 5, 7, 7),
        'blocks.1.res_blocks.0.branch1_conv.weight': (256, 64, 1, 1, 1),
        'blocks.1.' + RES: (64, 64, 3, 1, 1),
        'blocks.3.res_blocks.1.branch2.conv_a.weight': (128, 512, 1, 1, 1),
        'blocks.5.res_blocks.1.branch2.conv_a.weight': (512, 2048, 3, 1, 1),
        'blocks.5.res_blocks.2.branch2.norm_c.running_var': (2048,),
    },
    'slow_r50': {
        'blocks.0.conv.weight': (64, 3, 1, 7, 7),
        'blocks.2.' + RES: (128, 256, 1, 1, 1),            # res3: no time pool before it
        'blocks.3.res_blocks.5.branch2.conv_a.weight': (256, 1024, 3, 1, 1),
        'blocks.4.res_blocks.0.branch2.conv_b.weight': (512, 512, 1, 3, 3),
    },
    'c2d_r50': {
        'blocks.0.conv.weight': (64, 3, 1, 7, 7),
        'blocks.3.' + RES: (128, 256, 1, 1, 1),
        'blocks.5.res_blocks.1.branch2.conv_a.weight': (512, 2048, 1, 1, 1),
    },
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def arrays(state):
    return {k: np.asarray(v.numpy() if hasattr(v, 'numpy') else v) for k, v in state.items()}


def randomize_statistics(model, seed=0):
    """Random running statistics and affine parameters in every BatchNorm of a tensorlite model."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            n = m.num_features
            for t, v in ((m.running_mean, rng.standard_normal(n) * 0.1),
                         (m.running_var, rng.random(n) + 0.5), (m.weight, rng.random(n) + 0.5),
                         (m.bias, rng.standard_normal(n) * 0.1)):
                t.data[...] = v
    return model


def relative_difference(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


# ---- paper presets: exact counts and keys, no forward ------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_paper_parameter_count_and_keys(name):
    count, n_keys, head = PAPER[name]
    assert paper_num_classes(name) == 400 and preset_clip(name, 'paper')[1] == 224
    state = build_model(name, 400, preset='paper').state_dict()
    assert n_params(build_model(name, 400, preset='paper')) == count
    assert len(state) == n_keys
    assert tuple(state[head].shape) == (400, 2304 if name == 'slowfast_r50' else 2048)
    for key, shape in KEYS[name].items():
        assert tuple(state[key].shape) == shape, key


def test_slowfast_r50_is_the_8x8_configuration_and_slowfast_the_4x16():
    r50, paper = build_model('slowfast_r50', 400, 'paper'), build_model('slowfast', 400, 'paper')
    assert (r50.alpha, r50.beta_inv, r50.fusion_kernel) == (4, 8, 7)
    assert (paper.alpha, paper.beta_inv, paper.fusion_kernel) == (8, 8, 5)
    assert preset_clip('slowfast_r50', 'paper') == (32, 224)
    assert n_params(paper) == 34_480_216
    assert build_model('slowfast_r50', 10).fusion_kernel == 7        # tiny: slowfast's, kernel 7


@pytest.mark.parametrize('name, pool', [('i3d_r50', True), ('c2d_r50', True), ('slow_r50', False)])
def test_the_time_pool_keeps_its_block_index(name, pool):
    model = build_model(name, 400, 'paper')
    assert isinstance(model.blocks[2], nn.MaxPool3d) == pool
    assert len(model.blocks) == (7 if pool else 6)
    if pool:
        assert model.blocks[2].kernel_size == (2, 1, 1) and model.blocks[2].stride == (2, 1, 1)
        assert not any(k.startswith('blocks.2.') for k in model.state_dict())


# ---- tiny presets: shapes ----------------------------------------------------------------------

@pytest.mark.parametrize('name, features', [
    ('i3d_r50', (2, 128, 8, 1, 1)), ('c2d_r50', (2, 128, 8, 1, 1)),
    ('slow_r50', (2, 128, 16, 1, 1)), ('slowfast_r50', (2, 320, 1, 1, 1)),
])
def test_tiny_forward_shapes(name, features, rng):
    tl.manual_seed(0)
    model = build_model(name, 5).eval()
    x = tl.tensor(rng.standard_normal((2, 3, 16, 32, 32)).astype(np.float32))
    with tl.no_grad():
        assert tuple(model.features(x).shape) == features
        assert tuple(model(x).shape) == (2, 5)


def test_tiny_i3d_r50_is_tiny_i3d_under_other_names():
    ours, theirs = build_model('i3d', 5).state_dict(), build_model('i3d_r50', 5).state_dict()
    assert {pytorchvideo_key(k): tuple(v.shape) for k, v in theirs.items()} == \
        {k: tuple(v.shape) for k, v in ours.items()}


def test_c2d_r50_cannot_tell_a_clip_from_its_reverse_but_i3d_r50_can(rng):
    x = rng.standard_normal((2, 3, 16, 32, 32)).astype(np.float32)
    for name, blind in (('c2d_r50', True), ('i3d_r50', False)):
        tl.manual_seed(0)
        model = build_model(name, 5).eval()
        with tl.no_grad():
            a, b = model(tl.tensor(x)).numpy(), model(tl.tensor(x[:, :, ::-1].copy())).numpy()
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6) == blind, name


@pytest.mark.parametrize('name', ['i3d_r50', 'c2d_r50'])
def test_one_frame_is_refused_naming_the_time_pool(name):
    x = tl.tensor(np.zeros((1, 3, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=rf"{name}: needs at least 2 frames .*T>=2"):
        build_model(name, 5)(x)


# ---- an i3d_r50 state dict into 'i3d' (torchvision's names) -------------------------------------

def test_i3d_r50_state_dict_converts_into_i3d_with_the_same_logits(rng):
    """tensorlite's own i3d_r50 state dict is a valid PyTorchVideo one: renamed into 'i3d' it gives
    i3d_r50's float64 logits (the same function under other names)."""
    tl.manual_seed(1)
    ptv = randomize_statistics(build_model('i3d_r50', 400, 'paper')).double().eval()
    state = arrays(ptv.state_dict())
    same = convert_state_dict('pytorchvideo', 'i3d_r50', state)
    assert list(same) == list(state)
    renamed = convert_state_dict('pytorchvideo', 'i3d', state)
    i3d = build_model('i3d', 400, 'paper').double().eval()
    assert list(renamed) == list(i3d.state_dict())
    i3d.load_state_dict(renamed)
    x = tl.tensor(rng.standard_normal((1, 3, 4, 64, 64)))
    with tl.no_grad():
        ref, out = ptv(x).numpy(), i3d(x).numpy()
    assert out.dtype == np.float64
    assert relative_difference(out, ref) <= 1e-12


# ---- against PyTorchVideo (optional) ------------------------------------------------------------

@pytest.mark.optional
@pytest.mark.parametrize('name, target', [
    ('slowfast_r50', 'slowfast_r50'), ('i3d_r50', 'i3d_r50'), ('slow_r50', 'slow_r50'),
    ('c2d_r50', 'c2d_r50'), ('i3d_r50', 'i3d'),
])
def test_logits_equal_pytorchvideos_in_float64(name, target):
    """The hub model with random weights and BatchNorm statistics, eval mode, float64; its state
    dict converted into `target`; logits on one random clip at the hub's input size (slowfast_r50:
    32 x 224 x 224, the slow pathway every 4th frame; the others 8 x 224 x 224).  Measured
    max |difference| / max |logit|: 1.4e-15 slowfast_r50, 9.2e-16 i3d_r50 (and into i3d), 1.4e-15
    slow_r50, 1.0e-15 c2d_r50; 6 to 25 s each on 2 cores."""
    hub = pytorchvideo_hub_or_skip()
    import torch
    torch.manual_seed(0)
    ref_model = randomize_batch_norm(getattr(hub, name)(pretrained=False)).double().eval()
    model = build_model(target, 400, 'paper').double().eval()
    model.load_state_dict(convert_state_dict('pytorchvideo', target, ref_model.state_dict()))
    frames, size = preset_clip(target if target != 'i3d' else name, 'paper')
    x = np.random.default_rng(0).standard_normal((1, 3, frames, size, size))
    clip = torch.from_numpy(x)
    with torch.no_grad():
        ref = ref_model([clip[:, :, ::4], clip] if name == 'slowfast_r50' else clip).numpy()
    with tl.no_grad():
        out = model(tl.tensor(x)).numpy()
    assert out.shape == ref.shape == (1, 400) and out.dtype == np.float64
    assert relative_difference(out, ref) <= 1e-9

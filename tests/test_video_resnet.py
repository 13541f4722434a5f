"""torchvision's video ResNets (r3d_18, mc3_18, r2plus1d_18, models/video_resnet.py): the paper
presets' exact parameter counts and torchvision's state-dict layout (written out here from
torchvision's module tree, so it is checked without torchvision), the tiny presets, what each sees
in time, conversion errors -- and, when torch and torchvision are installed, float64 logits equal
to torchvision's on a random 16 x 112 x 112 clip after convert_state_dict."""
import time

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.models import (ConversionError, build_model, convert_state_dict,
                               paper_num_classes, preset_clip, summary)
from tensorlite.models.video_resnet import midplanes

from reference_models import randomize_batch_norm, torchvision_video_or_skip

NAMES = ('r3d_18', 'mc3_18', 'r2plus1d_18')
PAPER_PARAMS = {'r3d_18': 33_371_472, 'mc3_18': 11_695_440, 'r2plus1d_18': 31_505_325}


@pytest.fixture(autouse=True)
def _seed():
    tl.manual_seed(0)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ---- torchvision's layout, written out -----------------------------------------------------------

BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def torchvision_keys(name):
    """The state-dict keys of torchvision's `name`, in order: stem (Sequential), layer1..4 of two
    BasicBlocks (conv1 = Sequential(conv, BN, ReLU), conv2 = Sequential(conv, BN), then downsample
    in the first block of layer2..4), fc.  r2plus1d's conv is itself Sequential(conv, BN, ReLU,
    conv), and its stem two convs with their BNs."""
    def conv(p):
        return [f'{p}.weight']

    def bn(p):
        return [f'{p}.{s}' for s in BN]
    two_plus_one = name == 'r2plus1d_18'
    keys = conv('stem.0') + bn('stem.1')
    if two_plus_one:
        keys += conv('stem.3') + bn('stem.4')
    for layer in range(1, 5):
        for block in range(2):
            p = f'layer{layer}.{block}'
            for c in ('conv1', 'conv2'):
                if two_plus_one:
                    keys += conv(f'{p}.{c}.0.0') + bn(f'{p}.{c}.0.1') + conv(f'{p}.{c}.0.3')
                else:
                    keys += conv(f'{p}.{c}.0')
                keys += bn(f'{p}.{c}.1')
            if layer > 1 and block == 0:
                keys += conv(f'{p}.downsample.0') + bn(f'{p}.downsample.1')
    return keys + ['fc.weight', 'fc.bias']


# A few shapes that tell the three apart (torchvision's, 400 classes).
PAPER_SHAPES = {
    'r3d_18': {'stem.0.weight': (64, 3, 3, 7, 7), 'layer1.0.conv1.0.weight': (64, 64, 3, 3, 3),
               'layer2.0.conv1.0.weight': (128, 64, 3, 3, 3),
               'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1),
               'layer4.1.conv2.0.weight': (512, 512, 3, 3, 3), 'layer4.1.conv2.1.running_var': (512,),
               'stem.1.num_batches_tracked': (), 'fc.weight': (400, 512), 'fc.bias': (400,)},
    'mc3_18': {'stem.0.weight': (64, 3, 3, 7, 7), 'layer1.1.conv2.0.weight': (64, 64, 3, 3, 3),
               'layer2.0.conv1.0.weight': (128, 64, 1, 3, 3),
               'layer4.1.conv2.0.weight': (512, 512, 1, 3, 3), 'fc.weight': (400, 512)},
    # midplanes: 64 -> 64: 144; 64 -> 128: 230 (conv2 of that block keeps 230); 128 -> 128: 288
    'r2plus1d_18': {'stem.0.weight': (45, 3, 1, 7, 7), 'stem.3.weight': (64, 45, 3, 1, 1),
                    'layer1.0.conv1.0.0.weight': (144, 64, 1, 3, 3),
                    'layer1.0.conv1.0.1.running_mean': (144,),
                    'layer1.0.conv1.0.3.weight': (64, 144, 3, 1, 1),
                    'layer2.0.conv1.0.0.weight': (230, 64, 1, 3, 3),
                    'layer2.0.conv2.0.0.weight': (230, 128, 1, 3, 3),
                    'layer2.0.conv2.0.3.weight': (128, 230, 3, 1, 1),
                    'layer2.1.conv1.0.0.weight': (288, 128, 1, 3, 3),
                    'layer2.0.downsample.0.weight': (128, 64, 1, 1, 1),
                    'fc.weight': (400, 512)},
}


@pytest.mark.parametrize('name', NAMES)
def test_paper_preset_is_torchvisions_model(name):
    """torchvision's parameter count with 400 classes, its keys in its order, its shapes."""
    assert paper_num_classes(name) == 400 and preset_clip(name, 'paper') == (16, 112)
    net = build_model(name, 400, preset='paper')
    assert n_params(net) == PAPER_PARAMS[name]
    state = net.state_dict()
    assert list(state) == torchvision_keys(name)
    assert len(state) == {'r3d_18': 122, 'mc3_18': 122, 'r2plus1d_18': 224}[name]
    for key, shape in PAPER_SHAPES[name].items():
        assert tuple(state[key].shape) == shape, key
    assert state['stem.1.num_batches_tracked'].dtype == np.int64


def test_midplanes_keep_the_3d_convs_weights():
    """A (2+1)D conv N_in -> M -> N_out has M (9 N_in + 3 N_out) weights, at most the 3 x 3 x 3
    conv's 27 N_in N_out and less than one more middle channel's worth below it."""
    for n_in, n_out in [(64, 64), (64, 128), (128, 128), (128, 256), (256, 512), (512, 512),
                        (4, 8), (3, 5)]:
        m = midplanes(n_in, n_out)
        full, factored = 27 * n_in * n_out, m * (9 * n_in + 3 * n_out)
        assert full - (9 * n_in + 3 * n_out) < factored <= full
    assert [midplanes(64, 64), midplanes(64, 128), midplanes(128, 128)] == [144, 230, 288]


# ---- tiny presets --------------------------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_tiny_forward_backward(name, rng):
    model = build_model(name, 5)
    model.train()
    x = tl.tensor(rng.standard_normal((2, 3, 16, 32, 32)).astype(np.float32))
    y = model(x)
    assert y.shape == (2, 5) and y.dtype == tl.float32
    tl.functional.cross_entropy(y, tl.tensor(np.array([1, 3]))).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), pname


@pytest.mark.parametrize('name, layer4', [('r3d_18', (1, 32, 2, 2, 2)),
                                          ('mc3_18', (1, 32, 16, 2, 2)),
                                          ('r2plus1d_18', (1, 32, 2, 2, 2))])
def test_tiny_shapes_and_costs(name, layer4):
    """16 x 32 x 32 clips: the stem halves space only, layer2..4 halve T, H, W (mc3: H, W only);
    parameters and multiply-adds in the range of the other tiny presets."""
    s = summary(build_model(name, 4), (1, 3, 16, 32, 32))
    rows = {r.name: r for r in s.rows}
    assert rows['stem'].shape == (1, 4, 16, 16, 16)
    assert rows['layer1'].shape == (1, 4, 16, 16, 16)
    assert rows['layer4'].shape == layer4
    assert 20_000 < s.total_params < 250_000 and 0.005e9 < s.total_macs < 0.05e9


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('shape', [(1, 3, 5, 20, 28), (2, 3, 1, 1, 1), (1, 3, 9, 33, 17)])
def test_any_clip(name, shape, rng):
    """The pool is adaptive: any T, H, W >= 1."""
    model = build_model(name, 3).eval()
    assert model(tl.tensor(rng.standard_normal(shape).astype(np.float32))).shape == (shape[0], 3)


@pytest.mark.parametrize('name', NAMES)
def test_a_few_steps_lower_the_loss(name, rng):
    model = build_model(name, 4).train()
    x = tl.tensor(rng.standard_normal((4, 3, 8, 32, 32)).astype(np.float32))
    target = tl.tensor(np.arange(4))
    opt = tl.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = tl.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


@pytest.mark.parametrize('name, changed_steps', [('r3d_18', [True, True]),
                                                 ('mc3_18', [True] * 6 + [False] * 10),
                                                 ('r2plus1d_18', [True, True])])
def test_what_it_sees_in_time(name, changed_steps, rng):
    """Change frame 0 of a 16-frame clip: in mc3_18 only layer4's time steps 0..5 change (the stem
    and layer1's four 3D convs see 11 frames, the rest is 2D, T stays 16); in r3d_18 and
    r2plus1d_18 both of layer4's time steps (8 frames each) do (layer2 already sees 25 frames)."""
    model = build_model(name, 4).double().eval()
    x = rng.standard_normal((1, 3, 16, 32, 32))
    y = x.copy()
    y[:, :, 0] += 1.0
    with tl.no_grad():
        fx, fy = model.features(tl.tensor(x)).numpy(), model.features(tl.tensor(y)).numpy()
    changed = np.abs(fx - fy).max(axis=(0, 1, 3, 4)) > 1e-12          # per time step of layer4
    assert changed.tolist() == changed_steps


def test_four_d_input_is_refused_naming_the_shape():
    with pytest.raises(ValueError, match=r'r2plus1d_18: expected a batch of clips \(N, 3, T, H, W\)'):
        build_model('r2plus1d_18', 4)(tl.tensor(np.zeros((1, 3, 32, 32), np.float32)))


def test_bad_configuration_errors():
    with pytest.raises(ValueError, match=r"a stage's conv must be one of 3d, no_temporal, 2plus1d"):
        build_model('r3d_18', 4, convs=('3d', '3d', '3d', '4d'))
    with pytest.raises(ValueError, match=r'must have 4 entries'):
        build_model('mc3_18', 4, widths=(4, 8, 16))


# ---- conversion: every problem listed ------------------------------------------------------------

def source_state_dict(source):
    """r3d_18's state dict as a source: torchvision's own, or tensorlite's paper model's (named as
    torchvision's, so it is one too)."""
    if source == 'torchvision':
        return torchvision_video_or_skip().r3d_18().state_dict()
    return build_model('r3d_18', 400, preset='paper').state_dict()


@pytest.mark.parametrize('source', ['tensorlite', 'torchvision'])
def test_conversion_lists_every_problem(source):
    state = dict(source_state_dict(source))
    converted = convert_state_dict('torchvision', 'r3d_18', state)
    assert list(converted) == torchvision_keys('r3d_18')
    assert all(isinstance(v, np.ndarray) for v in converted.values())
    assert np.array_equal(converted['layer3.1.conv1.0.weight'],
                          np.asarray(state['layer3.1.conv1.0.weight']))
    del state['layer2.0.downsample.1.running_var']
    state['layer5.0.conv1.0.weight'] = state['layer4.0.conv1.0.weight']
    state['layer1.0.conv1.0.weight'] = state['layer1.0.conv1.0.weight'][:, :, :1]
    with pytest.raises(ConversionError) as info:
        convert_state_dict('torchvision', 'r3d_18', state)
    message = str(info.value)
    assert "1 key(s) with no place in 'r3d_18': layer5.0.conv1.0.weight" in message
    assert "1 key(s) of 'r3d_18' missing: layer2.0.downsample.1.running_var" in message
    assert "layer1.0.conv1.0.weight (64, 64, 1, 3, 3) (expected (64, 64, 3, 3, 3))" in message


def test_conversion_takes_the_checkpoints_classes():
    state = build_model('mc3_18', 101, preset='paper').state_dict()
    converted = convert_state_dict('torchvision', 'mc3_18', state)
    assert converted['fc.weight'].shape == (101, 512)
    build_model('mc3_18', 101, preset='paper').load_state_dict(converted)


# ---- torchvision's logits, float64 ---------------------------------------------------------------

@pytest.mark.parametrize('name', NAMES)
def test_logits_equal_torchvisions(name, rng):
    """torchvision's model with random weights and random BatchNorm statistics, converted: float64
    logits on a random (1, 3, 16, 112, 112) clip equal to 1e-9 of their scale (measured: about
    5e-16), in eval mode."""
    video = torchvision_video_or_skip()
    import torch
    torch.manual_seed(0)
    reference = randomize_batch_norm(getattr(video, name)()).double().eval()
    assert sum(p.numel() for p in reference.parameters()) == PAPER_PARAMS[name]
    net = build_model(name, 400, preset='paper').double().eval()
    net.load_state_dict(convert_state_dict('torchvision', name, reference.state_dict()))
    x = rng.standard_normal((1, 3, 16, 112, 112))
    start = time.perf_counter()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    middle = time.perf_counter()
    with tl.no_grad():
        got = net(tl.tensor(x)).numpy()
    end = time.perf_counter()
    assert got.dtype == np.float64 and got.shape == expected.shape == (1, 400)
    scale = np.abs(expected).max()
    relative = np.abs(got - expected).max() / scale
    print(f"{name}: max |tensorlite - torchvision| / max |logit| = {relative:.2e} (scale "
          f"{scale:.3g}); forward torchvision {middle - start:.1f} s, tensorlite "
          f"{end - middle:.1f} s")
    assert scale > 0.1 and relative <= 1e-9

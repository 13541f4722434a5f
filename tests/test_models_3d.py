"""C3D, I3D and inflate_2d_to_3d: shapes, gradients, exact paper parameter counts, the boring-video
property of inflation, and wrong-shape errors."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.models import build_model, paper_num_classes
from tensorlite.models.c3d import C3D
from tensorlite.models.i3d import I3D, pytorchvideo_key
from tensorlite.models.inflate import ReplicateTimeConv3d, inflate_2d_to_3d
from tensorlite.models.resnet import resnet2d


@pytest.fixture(autouse=True)
def _seed():
    tl.manual_seed(0)                      # the models' initial weights


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def randomize_batch_norms(net, rng):
    """Non-trivial affine parameters and running statistics, so eval-mode BN is not the identity."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c, dt = m.num_features, m.weight.dtype
            m.weight.data = rng.uniform(0.5, 1.5, c).astype(dt)
            m.bias.data = rng.normal(0.0, 0.3, c).astype(dt)
            m.running_mean.data = rng.normal(0.0, 0.3, c).astype(dt)
            m.running_var.data = rng.uniform(0.5, 1.5, c).astype(dt)
    return net


def boring_video(frame, frames):
    """(N, C, H, W) -> (N, C, T, H, W): the same frame T times."""
    return np.repeat(frame[:, :, None], frames, axis=2)


def small_cnn():
    """conv + BN + ReLU + max pool + conv + BN + ReLU + adaptive avg pool + flatten + linear."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1, bias=False),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5))


class Block(nn.Module):
    """A residual block with a ModuleDict of layers and a projection given from outside (shared)."""

    def __init__(self, c, shared):
        super().__init__()
        self.layers = nn.ModuleDict({'conv': nn.Conv2d(c, c, 3, padding=1, bias=False),
                                     'bn': nn.BatchNorm2d(c)})
        self.shared = shared
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.shared(self.layers['bn'](self.layers['conv'](x))))


class NestedNet(nn.Module):
    """A custom nested 2D network: Sequential stem, ModuleList of custom blocks sharing one conv,
    an AvgPool2d with divisor_override, a ModuleDict head; forward written for 4-D or 5-D."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.BatchNorm2d(4),
                                  nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        shared = nn.Conv2d(4, 4, 1)
        self.blocks = nn.ModuleList([Block(4, shared), Block(4, shared)])
        self.avg = nn.AvgPool2d(2, divisor_override=3)
        self.head = nn.ModuleDict({'pool': nn.AdaptiveAvgPool2d(1),
                                   'fc': nn.Linear(4, num_classes)})

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.head['pool'](self.avg(x)).flatten(1)     # (N, 4)
        return self.head['fc'](x)


def clip(rng, shape, dtype=np.float32):
    return tl.tensor(rng.standard_normal(shape).astype(dtype))


# ---- parameter counts of the paper presets (../shared/REFERENCES.md) -----------------------------

def test_c3d_paper_parameter_count():
    assert paper_num_classes('c3d') == 101                   # UCF101, MMAction2's configuration
    assert n_params(build_model('c3d', paper_num_classes('c3d'), preset='paper')) == 78_409_573


@pytest.fixture(scope='module')
def i3d_paper():
    assert paper_num_classes('i3d') == 400                   # Kinetics-400
    return build_model('i3d', paper_num_classes('i3d'), preset='paper')


def test_i3d_paper_parameter_count(i3d_paper):
    assert n_params(i3d_paper) == 28_043_472
    assert n_params(resnet2d(1000, 'resnet50')) == 25_557_032     # torchvision's resnet50


def test_i3d_paper_temporal_kernels(i3d_paper):
    """Stem 5x7x7; conv_a temporal kernels 3,3,3 | 3,1,3,1 | 3,1,3,1,3,1 | 1,3,1; all else 1."""
    sd = i3d_paper.state_dict()
    assert sd['conv1.weight'].shape == (64, 3, 5, 7, 7)
    expected = {1: (3, 3, 3), 2: (3, 1, 3, 1), 3: (3, 1, 3, 1, 3, 1), 4: (1, 3, 1)}
    for stage, kernels in expected.items():
        for b, t in enumerate(kernels):
            assert sd[f'layer{stage}.{b}.conv1.weight'].shape[2] == t
            assert sd[f'layer{stage}.{b}.conv2.weight'].shape[2:] == (1, 3, 3)
            assert sd[f'layer{stage}.{b}.conv3.weight'].shape[2:] == (1, 1, 1)
    assert isinstance(i3d_paper.pool2, nn.MaxPool3d) and i3d_paper.pool2.kernel_size == (2, 1, 1)


def test_i3d_pytorchvideo_key_map(i3d_paper):
    keys = set(i3d_paper.state_dict())
    theirs = ['blocks.0.conv.weight', 'blocks.0.norm.running_var',
              'blocks.1.res_blocks.0.branch1_conv.weight',
              'blocks.1.res_blocks.0.branch1_norm.bias',
              'blocks.3.res_blocks.3.branch2.conv_a.weight',
              'blocks.4.res_blocks.5.branch2.norm_b.weight',
              'blocks.5.res_blocks.2.branch2.conv_c.weight',
              'blocks.6.proj.weight', 'blocks.6.proj.bias']
    ours = [pytorchvideo_key(k) for k in theirs]
    assert ours[3] == 'layer1.0.downsample.1.bias' and ours[4] == 'layer2.3.conv1.weight'
    assert all(k in keys for k in ours), [k for k in ours if k not in keys]


# ---- tiny presets: forward, backward, gradcheck --------------------------------------------------

@pytest.mark.parametrize('name', ['c3d', 'i3d'])
def test_tiny_forward_backward(name, rng):
    model = build_model(name, 4)
    assert 1_000 <= n_params(model) <= 300_000
    y = model(clip(rng, (2, 3, 16, 32, 32)))
    assert y.shape == (2, 4) and y.dtype == np.float32
    (y * tl.tensor(rng.standard_normal((2, 4)).astype(np.float32))).sum().backward()
    for name_, p in model.named_parameters():
        assert p.grad is not None, name_
        assert np.isfinite(p.grad.data).all(), name_


def _gradcheck_model(model, x):
    params = [p for p in model.parameters()]
    assert tl.gradcheck(lambda x_, *ps: model(x_), [x] + params, fast_mode=True)


def test_c3d_gradcheck_miniature(rng):
    model = C3D(3, widths=(2,) * 8, fc_width=4, frames=16, size=16).double().eval()
    # Positive biases keep the ReLUs away from their kink: with zero biases and two channels a
    # whole layer can be dead, its pre-activation exactly 0, and central differences see half.
    for name, p in model.named_parameters():
        if name.endswith('bias'):
            p.data = rng.uniform(0.1, 0.3, p.shape)
    _gradcheck_model(model, tl.tensor(rng.standard_normal((1, 3, 16, 16, 16)), requires_grad=True))


def test_i3d_gradcheck_miniature(rng):
    net2d = resnet2d(3, 'tiny', stem_width=2, widths=(1, 1, 1, 1)).double()
    model = I3D(randomize_batch_norms(net2d, rng)).eval()
    _gradcheck_model(model, tl.tensor(rng.standard_normal((1, 3, 4, 16, 16)), requires_grad=True))


# ---- wrong shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize('name, shape, match', [
    ('c3d', (2, 3, 32, 32), r'\(N, 3, 16, H, W\)'),             # 4-D
    ('c3d', (2, 1, 16, 32, 32), r'\(N, 3, 16, H, W\)'),         # channels
    ('c3d', (2, 3, 8, 32, 32), r'built for 16 frames'),         # T fixed by fc6
    ('c3d', (2, 3, 16, 48, 48), r'\(N, 3, 16, 32, 32\)'),       # H, W fixed by fc6
    ('i3d', (2, 3, 32, 32), r'\(N, 3, T, H, W\)'),
    ('i3d', (2, 4, 8, 32, 32), r'\(N, 3, T, H, W\)'),
    ('i3d', (2, 3, 1, 32, 32), r'at least 2 frames'),
])
def test_wrong_shapes(name, shape, match):
    model = build_model(name, 4)
    with pytest.raises(ValueError, match=match):
        model(tl.zeros(*shape))


def test_c3d_sizes_too_small_and_paper_shape_message():
    with pytest.raises(ValueError, match='too small'):
        C3D(2, widths=(2,) * 8, fc_width=4, frames=8, size=32)
    model = C3D(2, widths=(2,) * 8, fc_width=4)                  # paper geometry, narrow widths
    assert model.pool5_shape == (2, 1, 4, 4)                      # pool5 (0, 1, 1): 7 -> 4
    with pytest.raises(ValueError, match=r'\(N, 3, 16, 112, 112\)'):
        model(tl.zeros(1, 3, 16, 128, 128))


@pytest.mark.parametrize('frames, time_kernels', [
    (16, (1, 2, 2, 2, 2)),                       # unchanged: the published geometry
    (8, (1, 2, 2, 2, 1)),                        # pool4 leaves one frame: pool5 pools space only
    (4, (1, 2, 2, 1, 1)),
])
def test_c3d_clamped_time_pools_take_short_clips(frames, time_kernels):
    model = C3D(2, widths=(2,) * 8, fc_width=4, frames=frames, size=32, clamp_time_pools=True)
    pools = [getattr(model, f'pool{k}') for k in range(1, 6)]
    kernels = tuple(p.kernel_size[0] for p in pools)
    assert kernels == time_kernels and tuple(p.stride[0] for p in pools) == time_kernels
    assert model.pool5_shape == (2, 1, 2, 2)
    assert model(tl.zeros(3, 3, frames, 32, 32)).shape == (3, 2)
    tl.manual_seed(0)
    plain = C3D(2, widths=(2,) * 8, fc_width=4, frames=16, size=32).eval()
    tl.manual_seed(0)
    clamped = C3D(2, widths=(2,) * 8, fc_width=4, frames=16, size=32, clamp_time_pools=True).eval()
    x = tl.tensor(np.random.default_rng(0).random((1, 3, 16, 32, 32), np.float32))
    np.testing.assert_array_equal(plain(x).numpy(), clamped(x).numpy())


# ---- inflation -----------------------------------------------------------------------------------

def test_inflated_conv_weights_are_repeated_and_divided():
    conv = nn.Conv2d(3, 4, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=1)
    conv3 = inflate_2d_to_3d(conv, time_kernel=4, time_stride=2)
    assert isinstance(conv3, nn.Conv3d)
    assert conv3.weight.shape == (4, 3, 4, 3, 5)
    assert conv3.stride == (2, 2, 2) and conv3.padding == (2, 1, 2)
    w3, w2 = conv3.weight.data, conv.weight.data
    assert np.allclose(w3, w2[:, :, None] / 4) and np.allclose(w3.sum(2), w2)
    assert np.array_equal(conv3.bias.data, conv.bias.data)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('time_kernel, frames', [(3, 1), (3, 6), (5, 4), (2, 5)])
@pytest.mark.parametrize('train', [False, True])
def test_boring_video_small_cnn(rng, dtype, time_kernel, frames, train):
    """With replicate temporal padding, a boring video gives the 2D network's logits (BN in eval
    mode, and in training mode too: the batch statistics of T copies are the frame's)."""
    net2d = randomize_batch_norms(small_cnn().to(dtype), rng).train(train)
    net3d = inflate_2d_to_3d(net2d, time_kernel=time_kernel, time_padding_mode='replicate')
    frame = rng.standard_normal((3, 3, 12, 12)).astype(dtype)
    y2 = net2d(tl.tensor(frame)).data
    y3 = net3d(tl.tensor(boring_video(frame, frames))).data
    assert y3.shape == y2.shape and y3.dtype == dtype
    np.testing.assert_allclose(y3, y2, rtol=0, atol=1e-5)


def test_boring_video_zero_padding_exact_away_from_borders(rng):
    """With zero temporal padding (Carreira & Zisserman, PyTorchVideo) the border frames see the
    zeros: frames farther than the receptive-field radius (1 + 1 here) from both ends are exact,
    the others and the globally pooled logits are not."""
    net2d = randomize_batch_norms(small_cnn().double(), rng).eval()
    net3d = inflate_2d_to_3d(net2d, time_kernel=3)
    frame = rng.standard_normal((2, 3, 12, 12))
    f2 = net2d[:7](tl.tensor(frame)).data                               # (N, 8, 6, 6)
    f3 = net3d[:7](tl.tensor(boring_video(frame, 8))).data              # (N, 8, 8, 6, 6)
    for t in range(2, 6):
        np.testing.assert_allclose(f3[:, :, t], f2, rtol=0, atol=1e-12)
    assert np.abs(f3[:, :, 0] - f2).max() > 1e-3
    assert np.abs(net3d(tl.tensor(boring_video(frame, 8))).data
                  - net2d(tl.tensor(frame)).data).max() > 1e-4


def test_boring_video_i3d_tiny(rng):
    """The I3D tiny preset's inflation of its 2D ResNet: logits equal the 2D logits with replicate
    padding; with zero padding (the default) the features equal at interior time steps."""
    net2d = randomize_batch_norms(resnet2d(4, 'tiny'), rng).eval()
    frame = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    y2 = net2d(tl.tensor(frame)).data
    i3d = I3D(net2d, time_padding_mode='replicate').eval()
    np.testing.assert_allclose(i3d(tl.tensor(boring_video(frame, 16))).data, y2, rtol=0, atol=1e-5)

    i3d_zeros = I3D(net2d).eval()               # as build_model('i3d', ..., init='inflate')
    f2 = net2d.features(tl.tensor(frame)).data                             # (N, 128, 1, 1)
    f3 = i3d_zeros.features(tl.tensor(boring_video(frame, 32))).data      # (N, 128, 16, 1, 1)
    # receptive-field radius in time: stem 2 + res2 1 (input frames), then after pool2 res3 and
    # res4 one pooled step each -> pooled steps 4..11 of 16 never see the zero padding.
    np.testing.assert_allclose(f3[:, :, 4:12], np.repeat(f2[:, :, None], 8, axis=2), rtol=0,
                               atol=1e-5)
    assert np.abs(f3[:, :, 0] - f2).max() > 1e-3


def test_inflate_custom_nested_network(rng):
    net2d = randomize_batch_norms(NestedNet(), rng).eval()
    before = {k: v.data.copy() for k, v in net2d.state_dict().items()}
    seen = []

    def time_kernel(name, module):
        seen.append(name)
        return 1 if name == 'blocks.0.shared' else 3

    net3d = inflate_2d_to_3d(net2d, time_kernel=time_kernel, time_padding_mode='replicate')
    # every 2D layer became 3D, at every depth, names and nesting kept
    kinds = {type(m).__name__ for _, m in net3d.named_modules()}
    assert not kinds & {'Conv2d', 'BatchNorm2d', 'MaxPool2d', 'AvgPool2d', 'AdaptiveAvgPool2d'}
    assert isinstance(net3d.stem[0], ReplicateTimeConv3d)
    assert isinstance(net3d.stem[1], nn.BatchNorm3d)
    assert isinstance(net3d.head['pool'], nn.AdaptiveAvgPool3d)
    assert isinstance(net3d.avg, nn.AvgPool3d)
    assert net3d.avg.divisor_override == 3
    assert list(net3d.state_dict()) == list(before)
    # the shared conv is converted once and stays shared
    assert net3d.blocks[0].shared is net3d.blocks[1].shared
    assert sorted(seen) == sorted(['stem.0', 'blocks.0.layers.conv', 'blocks.0.shared',
                                   'blocks.1.layers.conv'])
    assert net3d.blocks[0].shared.weight.shape == (4, 4, 1, 1, 1)
    assert net3d.blocks[1].layers['conv'].weight.shape == (4, 4, 3, 3, 3)
    # the 2D network is untouched
    assert isinstance(net2d.stem[0], nn.Conv2d)
    for k, v in net2d.state_dict().items():
        assert np.array_equal(v.data, before[k])
    # boring video -> the 2D logits; and the inflated network trains
    frame = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    y3 = net3d(tl.tensor(boring_video(frame, 4)))
    np.testing.assert_allclose(y3.data, net2d(tl.tensor(frame)).data, rtol=0, atol=1e-5)
    y3.sum().backward()
    assert all(p.grad is not None and np.isfinite(p.grad.data).all() for p in net3d.parameters())
    assert all(p.grad is None for p in net2d.parameters())


def test_inflate_pools_time_kernel_and_stride(rng):
    net2d = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.AvgPool2d(2))
    net3d = inflate_2d_to_3d(net2d, time_kernel=3, time_stride=1, pool_time_kernel=2)
    assert net3d[1].kernel_size == (2, 2, 2) and net3d[1].stride == (2, 2, 2)
    y = net3d(clip(rng, (1, 1, 8, 8, 8)))
    assert y.shape == (1, 2, 2, 2, 2)
    # even time kernel: padding t // 2 gives T + 1 frames; a time stride divides T
    conv = inflate_2d_to_3d(nn.Conv2d(1, 1, 3, padding=1), time_kernel=2)
    assert conv(clip(rng, (1, 1, 5, 4, 4))).shape == (1, 1, 6, 4, 4)
    conv = inflate_2d_to_3d(nn.Conv2d(1, 1, 3, padding=1), time_kernel=3, time_stride=2)
    assert conv(clip(rng, (1, 1, 5, 4, 4))).shape == (1, 1, 3, 4, 4)
    # adaptive pools keep T with adaptive_time_size=None
    pool = inflate_2d_to_3d(nn.AdaptiveAvgPool2d((2, 3)), adaptive_time_size=None)
    assert pool(clip(rng, (1, 1, 5, 4, 6))).shape == (1, 1, 5, 2, 3)


@pytest.mark.skipif(not hasattr(nn, 'AdaptiveMaxPool2d'),
                    reason='tensorlite.nn has no AdaptiveMaxPool2d yet')
def test_inflate_adaptive_max_pool(rng):
    pool = inflate_2d_to_3d(nn.AdaptiveMaxPool2d(1))
    assert isinstance(pool, nn.AdaptiveMaxPool3d)
    assert pool(clip(rng, (1, 2, 3, 4, 4))).shape == (1, 2, 1, 1, 1)


def test_inflate_bad_arguments():
    with pytest.raises(TypeError, match='nn.Module'):
        inflate_2d_to_3d(lambda x: x)
    with pytest.raises(ValueError, match='time_padding_mode'):
        inflate_2d_to_3d(small_cnn(), time_padding_mode='reflect')
    with pytest.raises(ValueError, match=r"time_kernel for '0' must be a positive int"):
        inflate_2d_to_3d(small_cnn(), time_kernel=lambda name, m: 0)


def test_i3d_init_random_breaks_time_symmetry_inflate_keeps_it(rng):
    """build_model('i3d') re-initializes its 3D convs (training from scratch); init='inflate'
    keeps the inflated random 2D filters, constant over time: a clip and its reverse then get the
    same logits, which is why that start cannot learn the order of frames."""
    clip = tl.tensor(rng.random((2, 3, 16, 32, 32)).astype(np.float32))
    backwards = tl.tensor(np.ascontiguousarray(clip.numpy()[:, :, ::-1]))
    for init, symmetric in (('inflate', True), ('random', False)):
        tl.manual_seed(0)
        net = build_model('i3d', 2, init=init, dropout=0.0).eval()
        gap = np.abs(net(clip).numpy() - net(backwards).numpy()).max()
        assert (gap < 1e-6) == symmetric, (init, gap)
    with pytest.raises(ValueError, match="init must be 'random' or 'inflate'"):
        build_model('i3d', 2, init='zeros')

"""The convolution, pooling and normalization layers: they call the functional ops with their own
parameters, keep PyTorch's state, and a PyTorch network's weights give PyTorch's outputs."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn


def _x(*shape, seed=0):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_conv_layers_call_the_functional_op_with_their_parameters():
    tl.manual_seed(0)
    x = _x(2, 4, 5, 6, 7)
    conv = nn.Conv3d(4, 6, (3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2)
    assert list(conv.state_dict()) == ['weight', 'bias']
    assert conv.weight.shape == (6, 2, 3, 1, 2) and conv.bias.shape == (6,)
    np.testing.assert_array_equal(
        conv(x).numpy(),
        F.conv3d(x, conv.weight, conv.bias, (1, 2, 1), (1, 0, 1), (2, 1, 1), 2).numpy())
    convt = nn.ConvTranspose3d(4, 6, 2, stride=2, output_padding=1, groups=2)
    np.testing.assert_array_equal(
        convt(x).numpy(),
        F.conv_transpose3d(x, convt.weight, convt.bias, 2, 0, 1, 2).numpy())
    conv2 = nn.Conv2d(4, 3, 3, padding='same', bias=False)
    assert conv2(x[:, :, 0]).shape == (2, 3, 6, 7) and conv2.bias is None
    conv1 = nn.Conv1d(4, 3, 3)
    assert conv1(x[:, :, 0, 0]).shape == (2, 3, 5)


def test_pool_layers_match_functional():
    x = _x(2, 3, 6, 8, 8)
    np.testing.assert_array_equal(nn.MaxPool3d(2)(x).numpy(), F.max_pool3d(x, 2).numpy())
    np.testing.assert_array_equal(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))(x).numpy(),
                                  F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1)).numpy())
    np.testing.assert_array_equal(nn.AvgPool3d(2, ceil_mode=True)(x).numpy(),
                                  F.avg_pool3d(x, 2, ceil_mode=True).numpy())
    assert nn.AdaptiveAvgPool3d(1)(x).shape == (2, 3, 1, 1, 1)
    assert nn.AdaptiveAvgPool3d((None, 2, 2))(x).shape == (2, 3, 6, 2, 2)
    assert nn.AdaptiveMaxPool3d((2, 2, 2))(x).shape == (2, 3, 2, 2, 2)
    assert nn.AdaptiveMaxPool2d((2, 1))(x[:, :, 0]).shape == (2, 3, 2, 1)
    assert nn.AdaptiveMaxPool1d(3)(x[:, :, 0, 0]).shape == (2, 3, 3)
    assert nn.MaxPool2d(2)(x[:, :, 0]).shape == (2, 3, 4, 4)
    assert nn.AvgPool1d(2)(x[:, :, 0, 0]).shape == (2, 3, 4)
    values, idx = nn.MaxPool3d(2, return_indices=True)(x)
    assert values.shape == idx.shape == (2, 3, 3, 4, 4)


def test_batchnorm_tracks_running_statistics_as_pytorch():
    bn = nn.BatchNorm3d(3, momentum=0.1)
    xs = [_x(4, 3, 2, 3, 3, seed=s) * (s + 1) + s for s in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for x in xs:
        y = bn(x)
        a = x.numpy().astype(np.float64)
        m = a.mean(axis=(0, 2, 3, 4))
        v = a.var(axis=(0, 2, 3, 4))
        n = a.size / 3
        mean = 0.9 * mean + 0.1 * m
        var = 0.9 * var + 0.1 * v * n / (n - 1)               # unbiased in the running estimate
        ref = (a - m[None, :, None, None, None]) / np.sqrt(v[None, :, None, None, None] + 1e-5)
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5, atol=1e-6)
    assert bn.num_batches_tracked.item() == 3
    bn.eval()
    x = xs[0]
    ref = (x.numpy() - mean[None, :, None, None, None]) / np.sqrt(var[None, :, None, None, None] + 1e-5)
    np.testing.assert_allclose(bn(x).numpy(), ref, rtol=1e-4, atol=1e-4)
    assert bn.num_batches_tracked.item() == 3


def test_batchnorm_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [_x(5, 2, seed=s) + 3 * s for s in range(4)]
    for x in xs:
        bn(x)
    means = [x.numpy().mean(0) for x in xs]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, 0), rtol=1e-5)


def test_batchnorm_refuses_the_wrong_rank():
    with pytest.raises(ValueError, match='expected a 5D input, got 4D input of shape'):
        nn.BatchNorm3d(3)(_x(2, 3, 4, 4))


def test_layernorm_and_groupnorm_layers_match_functional():
    x = _x(2, 4, 3, 5)
    ln = nn.LayerNorm([3, 5])
    np.testing.assert_array_equal(ln(x).numpy(), F.layer_norm(x, (3, 5), ln.weight, ln.bias).numpy())
    gn = nn.GroupNorm(2, 4)
    np.testing.assert_array_equal(gn(x).numpy(), F.group_norm(x, 2, gn.weight, gn.bias).numpy())


def _small_video_net(lib):
    m = lib.nn if hasattr(lib, 'nn') else lib
    return m.Sequential(m.Conv3d(3, 8, 3, padding=1), m.BatchNorm3d(8), m.ReLU(),
                        m.MaxPool3d((1, 2, 2)), m.Conv3d(8, 8, 3, padding=1, groups=2),
                        m.GroupNorm(2, 8), m.GELU(), m.AdaptiveAvgPool3d(1), m.Flatten(),
                        m.LayerNorm(8), m.Linear(8, 5))


@pytest.mark.optional
@pytest.mark.parametrize('train', [False, True])
def test_pytorch_weights_give_pytorchs_outputs_and_gradients(train):
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    tnet = _small_video_net(torch)
    net = _small_video_net(tl)
    net.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    tnet.train(train)
    net.train(train)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 8, 8)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = tnet(tx)
    y = net(tl.tensor(x, requires_grad=True))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    ty.sum().backward()
    y.sum().backward()
    for (name, p), (tname, tp) in zip(net.named_parameters(), tnet.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
    for k, v in tnet.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=k)


@pytest.mark.parametrize('make, message', [
    (lambda: nn.Conv3d(3, 4, 0), r'Conv3d: kernel_size must be ints >= 1, got \(0, 0, 0\)'),
    (lambda: nn.Conv3d(0, 4, 3), r'Conv3d: in_channels must be an int >= 1, got 0'),
    (lambda: nn.Conv2d(3, -4, 3), r'Conv2d: out_channels must be an int >= 1, got -4'),
    (lambda: nn.Conv1d(3, 4, 3, stride=0), r'Conv1d: stride must be an int >= 1, got \(0,\)'),
    (lambda: nn.Conv3d(3, 4, 3, dilation=(1, 0, 1)), r'Conv3d: dilation must be ints >= 1'),
    (lambda: nn.Conv3d(3, 4, 3, padding=-1), r'Conv3d: padding must be ints >= 0'),
    (lambda: nn.Conv3d(3, 4, 3, groups=0), r'Conv3d: groups must be an int >= 1, got 0'),
    (lambda: nn.ConvTranspose3d(3, 4, 0), r'ConvTranspose3d: kernel_size must be ints >= 1'),
    (lambda: nn.Linear(0, 3), r'Linear: in_features must be an int >= 1, got 0'),
    (lambda: nn.Linear(3, 2.5), r'Linear: out_features must be an int >= 1, got 2.5'),
    (lambda: nn.MultiheadAttention(8, 0), r'MultiheadAttention: num_heads must be an int >= 1'),
    (lambda: nn.MultiheadAttention(0, 1), r'MultiheadAttention: embed_dim must be an int >= 1'),
    (lambda: nn.MultiheadAttention(8, 3), r'embed_dim \(8\) must be divisible by num_heads \(3\)'),
    (lambda: nn.BatchNorm3d(0), r'BatchNorm3d: num_features must be an int >= 1, got 0'),
    (lambda: nn.LayerNorm((4, 0)), r'LayerNorm: normalized_shape must be ints >= 1'),
    (lambda: nn.GroupNorm(0, 4), r'GroupNorm: num_groups must be an int >= 1, got 0'),
    (lambda: nn.MaxPool3d(0), r'MaxPool3d: kernel_size must be an int >= 1, got 0'),
    (lambda: nn.AvgPool2d(2, stride=0), r'AvgPool2d: stride must be an int >= 1, got 0'),
    (lambda: nn.MaxPool2d(2, padding=-1), r'MaxPool2d: padding must be an int >= 0, got -1'),
])
def test_layers_refuse_sizes_below_one(make, message):
    with pytest.raises(ValueError, match=message):
        make()

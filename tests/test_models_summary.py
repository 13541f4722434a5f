"""tensorlite.models.summary: per-layer output shapes, parameters, multiply-adds and activation
memory, counted by hand here for small networks; the lesson's 81-against-27 weights."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.models import summary


def test_conv3d_costs_three_times_conv2d_per_output():
    """A 3x3x3 filter on RGB has 81 weights against 27 for 3x3 2D, and 3x the multiply-adds per
    output value."""
    s3 = summary(nn.Conv3d(3, 1, 3, padding=1, bias=False), (1, 3, 4, 8, 8))
    s2 = summary(nn.Conv2d(3, 1, 3, padding=1, bias=False), (1, 3, 8, 8))
    assert (s3.total_params, s2.total_params) == (81, 27)
    outputs3, outputs2 = 4 * 8 * 8, 8 * 8
    assert s3.total_macs / outputs3 == 81 and s2.total_macs / outputs2 == 27


def test_rows_shapes_params_macs_and_memory():
    net = nn.Sequential(nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 5))
    s = summary(net, (2, 3, 4, 8, 8))
    rows = {r.name: r for r in s.rows}
    assert rows['0'].shape == (2, 8, 4, 4, 4)
    assert rows['0'].params == 8 * 3 * 27 + 8
    assert rows['0'].macs == 2 * 8 * 4 * 4 * 4 * 3 * 27
    assert rows['4'].shape == (2, 5) and rows['4'].macs == 2 * 5 * 8
    assert rows['1'].activation_bytes == 2 * 8 * 4 * 4 * 4 * 4              # float32
    assert s.total_params == sum(p.numel() for p in net.parameters())
    assert s.total_macs == rows['0'].macs + rows['4'].macs
    assert s.total_activation_bytes == sum(r.activation_bytes for r in s.rows if r.leaf)
    text = str(s)
    assert 'Conv3d' in text and f"{s.total_params:,d}" in text


def test_recurrent_and_attention_macs():
    s = summary(nn.LSTM(5, 4, num_layers=2, bidirectional=True), (6, 2, 5))
    assert s.total_macs == 2 * 6 * 2 * 16 * (5 + 4) + 2 * 6 * 2 * 16 * (8 + 4)
    s = summary(nn.GRU(5, 4), (6, 2, 5))
    assert s.total_macs == 6 * 2 * 12 * (5 + 4)

    class Attend(nn.Module):
        def forward(self, x):
            return tl.functional.scaled_dot_product_attention(x, x, x)
    s = summary(Attend(), (3, 7, 4))
    assert s.total_macs == 3 * 7 * 7 * (4 + 4)
    mha = summary(nn.MultiheadAttention(8, 2, batch_first=True), [(2, 5, 8)] * 3)
    projections = 3 * 2 * 5 * 8 * 8 + 2 * 5 * 8 * 8
    assert mha.total_macs == projections + 2 * 2 * 5 * 5 * 4 * 2     # QK^T and PV, weights path


def test_model_state_is_restored():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    net.train()
    summary(net, (2, 4))
    assert net.training and 'forward' not in net.__dict__
    assert all('forward' not in m.__dict__ for m in net.modules())
    x = tl.randn(2, 4)
    net.eval()
    np.testing.assert_array_equal(net(x).numpy(), net[0](x).numpy())


def test_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, x, y):
            return self.a(x) + self.b(y)
    s = summary(Two(), [(5, 3), (5, 4)])
    assert s.total_macs == 5 * 2 * 3 + 5 * 2 * 4
    with pytest.raises(TypeError):
        summary(Two(), (5, 3))

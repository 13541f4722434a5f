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


# ---- a module that runs more than once in one forward --------------------------------------------

def test_a_module_called_twice_counts_both_outputs():
    """Activation memory adds every output a module produces: one ReLU after two layers of
    different widths keeps both outputs for backward."""
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Linear(4, 6), nn.Linear(6, 3), nn.ReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))           # act: (5, 6), then (5, 3)
    s = summary(Shared(), (5, 4))
    rows = {r.name: r for r in s.rows}
    assert rows['act'].calls == 2 and rows['a'].calls == 1
    assert rows['act'].activation_bytes == (5 * 6 + 5 * 3) * 4
    assert rows['act'].shape == (5, 6)                               # the first call's
    assert s.total_activation_bytes == (5 * 6 + 5 * 3 + 5 * 6 + 5 * 3) * 4
    assert 'ReLU x2' in str(s)


def test_c3d_shared_relu_is_counted_per_call():
    from tensorlite.models import build_model
    s = summary(build_model('c3d', 4), (2, 3, 16, 32, 32))
    rows = {r.name: r for r in s.rows}
    fc = rows['fc6'].activation_bytes                                # (2, 128) float32
    assert fc == 2 * 128 * 4 and rows['fc7'].activation_bytes == fc
    assert rows['relu'].calls == 2 and rows['relu'].activation_bytes == 2 * fc


# ---- published classes, preset clips, other clips: model_summary ---------------------------------

# The classes of the configuration each 'paper' preset reproduces: REFERENCES.md's counts are with
# these (C3D UCF101; I3D, SlowFast, TimeSformer, ViViT Kinetics-400; LRCN, two-stream UCF101);
# Karpathy et al.'s networks Sports-1M.
PAPER_CLASSES = {'c3d': 101, 'i3d': 400, 'slowfast': 400, 'cnn_lstm': 101, 'cnn_lstm_mean': 101,
                 'two_stream': 101, 'two_stream_concat': 101, 'single_frame': 487,
                 'late_fusion': 487, 'late_fusion_max': 487, 'late_fusion_concat': 487,
                 'early_fusion': 487,
                 'slowfast_r50': 400, 'i3d_r50': 400, 'slow_r50': 400, 'c2d_r50': 400,
                 'r3d_18': 400, 'mc3_18': 400, 'r2plus1d_18': 400}


def test_every_model_has_its_published_classes():
    from tensorlite.models import list_models, paper_num_classes
    for name in list_models():
        expected = 400 if name.startswith(('timesformer', 'vivit')) else PAPER_CLASSES[name]
        assert paper_num_classes(name) == expected, name
    with pytest.raises(ValueError, match=r"paper_num_classes: unknown model 'c4d'.*c3d"):
        paper_num_classes('c4d')


def test_preset_clips():
    from tensorlite.models import preset_clip
    assert preset_clip('c3d') == (16, 32) and preset_clip('vivit', 'tiny') == (16, 32)
    assert [preset_clip(n, 'paper') for n in ('c3d', 'i3d', 'slowfast', 'timesformer_joint',
                                              'vivit', 'cnn_lstm', 'two_stream', 'early_fusion')] \
        == [(16, 112), (8, 224), (32, 224), (8, 224), (32, 224), (16, 227), (11, 224), (10, 170)]
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_clip('c3d', 'huge')


def test_model_summary_builds_for_other_frames_and_size():
    """`tensorlite summary c3d --frames 8 --size 64`: C3D built for 8 x 64 x 64 (its fc6 reads the
    pool5 volume; below 16 frames the time pools that get one frame pool space only)."""
    from tensorlite.models import build_model, clip_overrides, model_summary
    s = model_summary('c3d', frames=8, size=64)
    assert s.input_shapes == [(1, 3, 8, 64, 64)]
    assert s.config == {'name': 'c3d', 'preset': 'tiny', 'num_classes': 10, 'frames': 8,
                        'size': 64, 'overrides': {'frames': 8, 'size': 64,
                                                  'clamp_time_pools': True}}
    assert clip_overrides('c3d', 8, 64) == s.config['overrides']
    same = summary(build_model('c3d', 10, frames=8, size=64, clamp_time_pools=True),
                   (1, 3, 8, 64, 64))
    assert (s.total_params, s.total_macs, s.total_activation_bytes) == \
        (same.total_params, same.total_macs, same.total_activation_bytes)
    default = model_summary('c3d')
    assert default.input_shapes == [(1, 3, 16, 32, 32)] and default.total_params != s.total_params
    assert str(s).startswith('c3d (tiny, 10 classes) on input (1, 3, 8, 64, 64)')


def test_model_summary_paper_defaults_to_the_published_classes():
    from tensorlite.models import build_model, model_summary
    s = model_summary('c3d', preset='paper', frames=8, size=32, batch=2)   # small: one forward
    assert s.config['num_classes'] == 101 and s.input_shapes == [(2, 3, 8, 32, 32)]
    model = build_model('c3d', 101, preset='paper', frames=8, size=32, clamp_time_pools=True)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert model_summary('c3d', num_classes=7, frames=8, size=32).config['num_classes'] == 7


@pytest.mark.parametrize('name', ['c3d', 'i3d', 'slowfast', 'timesformer', 'vivit_joint',
                                  'late_fusion_concat', 'early_fusion', 'single_frame',
                                  'cnn_lstm', 'two_stream'])
def test_model_summary_takes_the_clip_asked_for(name):
    from tensorlite.models import model_summary
    s = model_summary(name, frames=8, size=48)
    assert s.input_shapes[0] == (1, 3, 8, 48, 48)
    if name == 'two_stream':                                   # flow stack of min(10, 8 - 1) flows
        assert s.input_shapes[1] == (1, 14, 48, 48)
    assert s.total_macs > 0


def test_model_summary_errors():
    from tensorlite.models import clip_overrides, model_summary
    with pytest.raises(ValueError, match=r'two_stream: the temporal stream needs at least 2 fr'):
        model_summary('two_stream', frames=1)
    with pytest.raises(ValueError, match=r'C3D: a clip of 16 x 8 x 8 is too small'):
        model_summary('c3d', size=8)
    with pytest.raises(ValueError, match=r'frames must be a positive int, got 0'):
        clip_overrides('c3d', 0, 32)
    with pytest.raises(ValueError, match=r"unknown model 'c4d'"):
        model_summary('c4d')

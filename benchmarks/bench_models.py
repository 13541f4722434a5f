"""One training step of whole video models: tensorlite against the same networks in PyTorch CPU.

    python benchmarks/bench_models.py [--models c3d,i3d] [--preset tiny|paper|all] [--repeats 7]
                                      [--no-memory] [--json FILE] [--check-only [--float64]]

What is timed: one training step -- zero_grad(set_to_none=True), forward, cross-entropy, backward,
SGD(lr=0.01) step -- float32, of
  - the ten models of `tensorlite compare` (tensorlite/compare.py MODELS) at the tiny preset, as
    compare trains them: batches of 16 clips (3, 16, 32, 32), two-stream also with its stack of
    L = 10 flows (16, 20, 32, 32); 4 classes (the 'motion' family's; scene has 6, order 2);
  - C3D, I3D, SlowFast, TimeSformer and CNN+LSTM at preset='paper', batch 2, 400 classes, on the
    clips each preset is built for: C3D 16 x 112^2, I3D 8 x 224^2, SlowFast 32 x 224^2,
    TimeSformer 8 x 224^2, CNN+LSTM (LRCN) 16 x 227^2.
Inputs are standard-normal clips (and flows) with random labels, from a fixed seed.

The PyTorch side is the same network written here in torch.nn, module for module, with the same
state-dict keys as the tensorlite model (`torch_model` below; the key sets are asserted equal).
The weights are tensorlite's, copied across by name, and before a model is timed both sides take
two steps on the same batch: the first losses must agree to 1e-4 (relative, or absolute below 1),
and for the tiny presets the second (after one SGD step) to 1e-3.  A model that does not match is
reported loudly, is not timed, and makes the script exit with status 1.  The second loss of a
paper preset is printed, not checked: one step at lr 0.01 from a random init takes I3D's and
SlowFast's loss from ~6 to ~0.7, and float32 rounding, which differs between any two
implementations, moves where it lands by ~2 %.  `--check-only --float64` runs the check in float64
on both sides to 1e-8 (I3D paper: first losses within 6e-14, second within 3e-13).  The worst
relative difference of a parameter's gradient after the first step is printed too.

Made deterministic on both sides (and printed when a case runs):
  - BatchNorm is in training mode (batch statistics), as in training.
  - Dropout: every nn.Dropout with p > 0 is put in eval mode on both sides (the identity), the rest
    of the model stays in training mode.  Among the cases here that is slowfast tiny (head 0.5),
    C3D paper (fc6, fc7 0.5), I3D paper (head 0.5), SlowFast paper (head 0.5) and CNN+LSTM paper
    (fc6 0.9, before fc8 0.5); the dropout masks cost little next to the convolutions.
  - single_frame and two_stream pick the frame they look at at random per clip in training; both
    sides are built to take the middle frame, T // 2 = 8, in both modes (`frame=8`, the
    tensorlite models' own option).  late_fusion looks at every frame (the mean of the frames'
    class scores, the tiny preset's fusion).

Time: each side runs in a worker process of its own that imports only its own library (the
check above is made in this process, which imports both), on the same weights (tensorlite's, handed
over in an npz file) and the same batch.  The two libraries share one OpenMP runtime (libgomp),
which reads its wait policy once, when it is loaded: in one process the side imported first would
set it for both (tensorlite asks for the passive policy, backend.prepare_cpu_threads; PyTorch runs
with libgomp's default), and either side's idle threads would spin in the other's timing.  The
workers' steps are interleaved (tl, torch, tl, torch, ...) after one warm-up each, with a 50 ms
pause before every timed call; each worker times its own step, and the medians of --repeats are
compared.  PyTorch runs with torch.set_num_threads(2), tensorlite with 2 Numba threads
(numba.set_num_threads) and NumPy's BLAS at its default (one thread per core: 2 on the
development machines).  NumPy's float32 2048^3 matmul rate is measured in the same run (the GEMM
limit every convolution and linear layer of tensorlite reaches at best), and the load average is
printed: other jobs on the machine slow both sides, and not equally (a parallel region waits for
its slowest thread).

Memory: each side runs one more step in a fresh subprocess (--measure-memory) that imports only
its own library, after a warm-up step at batch 1 whose gradients are then dropped; the number is
the peak resident memory the step added above the resident set just before it (library, model and
inputs already there): activations, gradients and workspace at the step's peak.

--json FILE writes one record per model (the table's fields, the losses of both steps on both
sides, the dropout layers turned off), atomically (a temporary file in the same folder, then
os.replace).  --check-only builds, copies the weights and checks the losses, without timing: what
tests/test_bench_models.py runs on the tiny models.
"""
import argparse
import functools
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

import _timing

COMPARE_MODELS = ('single_frame', 'late_fusion', 'early_fusion', 'c3d', 'i3d', 'two_stream',
                  'slowfast', 'cnn_lstm', 'timesformer', 'vivit')       # tensorlite/compare.py
PAPER_MODELS = ('c3d', 'i3d', 'slowfast', 'timesformer', 'cnn_lstm')
LR = 0.01
FIRST_TOL, SECOND_TOL = 1e-4, 1e-3
I3D_R50_TIME_KERNELS = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))   # models/i3d.py

# (model, preset) -> batch, clip (C, T, H, W), flow (2L, H, W) or None, classes, build_model
# overrides, and the configuration of the PyTorch mirror (the numbers of the presets in
# models/*.py: a drift shows up as a key or shape mismatch, or as different losses).
TINY_CNN = dict(arch='tiny')
CASES = {
    ('single_frame', 'tiny'): dict(overrides=dict(frame=8), config=dict(cnn=TINY_CNN, frame=8)),
    ('late_fusion', 'tiny'): dict(config=dict(cnn=TINY_CNN, fuse='scores')),
    ('early_fusion', 'tiny'): dict(config=dict(cnn=dict(arch='tiny', in_channels=48), frames=16)),
    ('c3d', 'tiny'): dict(config=dict(widths=(8, 16, 32, 32, 32, 32, 32, 32), fc_width=128,
                                      batch_norm=True)),
    ('i3d', 'tiny'): dict(config=dict(layers=(1, 1, 1, 1), stem_width=8, widths=(4, 8, 16, 32),
                                      stem_kernel=3)),
    ('two_stream', 'tiny'): dict(flow=(20, 32, 32), overrides=dict(frame=8),
                                 config=dict(spatial=TINY_CNN,
                                             temporal=dict(arch='tiny', in_channels=20),
                                             frame=8)),
    ('slowfast', 'tiny'): dict(config=dict(alpha=4, beta_inv=4, depths=(1, 1, 1, 1),
                                           widths=(8, 16, 32, 64), stem_width=16,
                                           stem_spatial_kernel=3)),
    ('cnn_lstm', 'tiny'): dict(config=dict(cnn=TINY_CNN, hidden_size=64)),
    ('timesformer', 'tiny'): dict(config=dict(frames=16, img_size=32, patch_size=2, embed_dim=32,
                                              depth=2, num_heads=2, mlp_dim=128, stem=(8, 16),
                                              pool='max')),
    ('vivit', 'tiny'): dict(config=dict(tubelet=(1, 2, 2), embed_dim=32, depth=2,
                                        temporal_depth=2, num_heads=2, mlp_dim=128, stem=(8, 16),
                                        pool='max')),
    ('c3d', 'paper'): dict(clip=(3, 16, 112, 112),
                           config=dict(widths=(64, 128, 256, 256, 512, 512, 512, 512),
                                       fc_width=4096, size=112, dropout=0.5)),
    ('i3d', 'paper'): dict(clip=(3, 8, 224, 224),
                           config=dict(layers=(3, 4, 6, 3), stem_width=64,
                                       widths=(64, 128, 256, 512), stem_kernel=7, dropout=0.5)),
    ('slowfast', 'paper'): dict(clip=(3, 32, 224, 224),
                                config=dict(alpha=8, beta_inv=8, depths=(3, 4, 6, 3),
                                            widths=(64, 128, 256, 512), stem_width=64,
                                            stem_spatial_kernel=7)),
    ('timesformer', 'paper'): dict(clip=(3, 8, 224, 224),
                                   config=dict(frames=8, img_size=224, patch_size=16,
                                               embed_dim=768, depth=12, num_heads=12,
                                               mlp_dim=3072, stem=None, pool='cls')),
    ('cnn_lstm', 'paper'): dict(clip=(3, 16, 227, 227),
                                config=dict(cnn=dict(arch='caffenet_zf'), hidden_size=256,
                                            dropout=0.5)),
}
for (_model, _preset), _case in CASES.items():
    _case.setdefault('clip', (3, 16, 32, 32))
    _case.setdefault('flow', None)
    _case.setdefault('overrides', {})
    _case.setdefault('batch', 16 if _preset == 'tiny' else 2)
    _case.setdefault('num_classes', 4 if _preset == 'tiny' else 400)
    _case.update(model=_model, preset=_preset)


def select_cases(models=None, preset='all'):
    """The cases to run, in table order (tiny first), for a list of model names and a preset."""
    presets = ('tiny', 'paper') if preset == 'all' else (preset,)
    known = COMPARE_MODELS
    if models is not None:
        unknown = [m for m in models if m not in known]
        if unknown:
            raise SystemExit(f"bench_models: unknown model(s) {', '.join(unknown)}; the models "
                             f"are {', '.join(known)} (paper preset: {', '.join(PAPER_MODELS)})")
    return [CASES[m, p] for p in presets for m in (COMPARE_MODELS if p == 'tiny' else PAPER_MODELS)
            if (m, p) in CASES and (models is None or m in models)]


def case_arrays(case, batch=None, seed=0):
    """(clips, [flows,] labels) as NumPy arrays: standard-normal float32, labels int64."""
    n = case['batch'] if batch is None else batch
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((n,) + case['clip'], dtype=np.float32)]
    if case['flow'] is not None:
        arrays.append(rng.standard_normal((n,) + case['flow'], dtype=np.float32))
    arrays.append(rng.integers(0, case['num_classes'], size=n).astype(np.int64))
    return arrays


# ---- tensorlite -------------------------------------------------------------------------------

def tensorlite_model(case, seed=0):
    """The registered model, in training mode, with every Dropout of p > 0 in eval mode.
    Returns (model, names of the dropout modules turned off)."""
    import tensorlite as tl
    from tensorlite.models import build_model
    tl.manual_seed(seed)
    model = build_model(case['model'], num_classes=case['num_classes'], preset=case['preset'],
                        **case['overrides'])
    model.train()
    off = []
    for name, m in model.named_modules():
        if isinstance(m, tl.nn.Dropout) and m.p > 0:
            m.eval()
            off.append(f"{name} (p={m.p})")
        elif type(m).__name__ == 'SelfAttention' and m.dropout:
            raise MismatchError(f"bench_models: {case['model']} {case['preset']} has attention "
                               f"dropout {m.dropout} at {name}: not made deterministic here")
        elif isinstance(m, tl.nn.LSTM) and m.dropout and m.num_layers > 1:
            raise MismatchError(f"bench_models: {case['model']} {case['preset']} has LSTM dropout "
                               f"at {name}: not made deterministic here")
    return model, off


def tensorlite_threads():
    """Numba's threads for tensorlite's kernels: 2, as PyTorch's (fewer if Numba has fewer)."""
    import numba
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


def tensorlite_step(model, arrays):
    """step() -> loss Tensor: zero_grad, forward, cross_entropy, backward, SGD step."""
    import tensorlite as tl
    import tensorlite.functional as F
    tensorlite_threads()
    inputs = [tl.tensor(a) for a in arrays[:-1]]
    target = tl.tensor(arrays[-1])
    optimizer = tl.optim.SGD(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs), target)
        loss.backward()
        optimizer.step()
        return loss
    return step


# ---- PyTorch: the mirrors --------------------------------------------------------------------

_TORCH = {}


def _import_torch():
    try:
        import torch
    except ImportError:
        raise SystemExit("bench_models: PyTorch is not installed; it is the reference this "
                         "benchmark compares with (pip install -e '.[bench]')") from None
    torch.set_num_threads(2)
    return torch


def torch_classes():
    """The PyTorch mirrors of the tensorlite models, defined on first use so that this file imports
    torch only when the PyTorch side runs.  Every module has the tensorlite model's name for it."""
    if _TORCH:
        return _TORCH
    torch = _import_torch()
    nn, F = torch.nn, torch.nn.functional

    # -- models/cnn2d.py: FrameCNN ('tiny', 'caffenet_zf') --
    def tiny_conv(c, widths=(8, 16, 32)):
        layers = []
        for i, w in enumerate(widths, start=1):
            layers += [(f'conv{i}', nn.Conv2d(c, w, 3, padding=1)), (f'bn{i}', nn.BatchNorm2d(w)),
                       (f'relu{i}', nn.ReLU(inplace=True)), (f'pool{i}', nn.MaxPool2d(2))]
            c = w
        return layers

    def caffenet_zf_conv(c):
        relu = functools.partial(nn.ReLU, inplace=True)
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
        pool = dict(kernel_size=3, stride=2, ceil_mode=True)
        return [('conv1', nn.Conv2d(c, 96, 7, stride=2)), ('relu1', relu()),
                ('pool1', nn.MaxPool2d(**pool)), ('norm1', nn.LocalResponseNorm(**lrn)),
                ('conv2', nn.Conv2d(96, 384, 5, stride=2, groups=2)), ('relu2', relu()),
                ('pool2', nn.MaxPool2d(**pool)), ('norm2', nn.LocalResponseNorm(**lrn)),
                ('conv3', nn.Conv2d(384, 512, 3, padding=1)), ('relu3', relu()),
                ('conv4', nn.Conv2d(512, 512, 3, padding=1, groups=2)), ('relu4', relu()),
                ('conv5', nn.Conv2d(512, 384, 3, padding=1, groups=2)), ('relu5', relu()),
                ('pool5', nn.MaxPool2d(**pool))]

    ARCHS = {'tiny': (tiny_conv, 32, (64,), 0.0),                # conv stage, size, fc, dropout
             'caffenet_zf': (caffenet_zf_conv, 227, (4096,), 0.9)}

    class FrameCNN(nn.Module):
        def __init__(self, arch, in_channels=3):
            super().__init__()
            make_conv, size, fc_dims, dropout = ARCHS[arch]
            conv = make_conv(in_channels)
            for name, layer in conv:
                self.add_module(name, layer)
            self.conv_names = [name for name, _ in conv]
            self.in_channels, self.input_size = in_channels, size
            with torch.no_grad():              # eval: the dry run must not touch BN statistics
                probe = torch.zeros(1, in_channels, size, size)
                for name in self.conv_names:
                    probe = getattr(self, name).eval()(probe)
            d, self.fc_names = probe.numel(), []
            for i, width in enumerate(fc_dims, start=6):
                self.add_module(f'fc{i}', nn.Linear(d, width))
                self.add_module(f'relu{i}', nn.ReLU(inplace=True))
                self.fc_names += [f'fc{i}', f'relu{i}']
                if dropout:
                    self.add_module(f'drop{i}', nn.Dropout(dropout))
                    self.fc_names.append(f'drop{i}')
                d = width
            self.out_dim = d
            self.train()

        def forward_features(self, x):
            for name in self.conv_names:
                x = getattr(self, name)(x)
            return x.reshape(x.shape[0], -1)

        def forward_fc(self, z):
            for name in self.fc_names:
                z = getattr(self, name)(z)
            return z

        def forward(self, x):
            return self.forward_fc(self.forward_features(x))

    # -- models/single_frame.py, fusion.py, two_stream.py, cnn_lstm.py --
    class SingleFrame(nn.Module):
        def __init__(self, num_classes, cnn, frame):
            super().__init__()
            self.cnn = FrameCNN(**cnn)
            self.fc8 = nn.Linear(self.cnn.out_dim, num_classes)
            self.frame = frame

        def forward(self, x):
            return self.fc8(self.cnn(x[:, :, self.frame]))

    class LateFusion(nn.Module):
        def __init__(self, num_classes, cnn, fuse):
            super().__init__()
            self.cnn = FrameCNN(**cnn)
            self.fc8 = nn.Linear(self.cnn.out_dim, num_classes)
            self.fuse = fuse

        def forward(self, x):
            N, C, T, H, W = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)
            if self.fuse == 'scores':
                return self.fc8(self.cnn(frames)).reshape(N, T, -1).mean(dim=1)
            z = self.cnn.forward_features(frames).reshape(N, T, -1).mean(dim=1)
            return self.fc8(self.cnn.forward_fc(z))

    class EarlyFusion(nn.Module):
        def __init__(self, num_classes, cnn, frames):
            super().__init__()
            self.cnn = FrameCNN(**cnn)
            self.fc8 = nn.Linear(self.cnn.out_dim, num_classes)

        def forward(self, x):
            N, C, T, H, W = x.shape
            return self.fc8(self.cnn(x.permute(0, 2, 1, 3, 4).reshape(N, T * C, H, W)))

    class Stream(nn.Module):
        def __init__(self, cnn, num_classes):
            super().__init__()
            self.cnn = FrameCNN(**cnn)
            self.fc8 = nn.Linear(self.cnn.out_dim, num_classes)

        def forward(self, images):
            return self.fc8(self.cnn(images))

    class TwoStream(nn.Module):
        def __init__(self, num_classes, spatial, temporal, frame):
            super().__init__()
            self.spatial = Stream(spatial, num_classes)
            self.temporal = Stream(temporal, num_classes)
            self.frame = frame

        def forward(self, rgb, flow):
            s, t = self.spatial(rgb[:, :, self.frame]), self.temporal(flow)
            both = torch.stack([F.log_softmax(s, dim=1), F.log_softmax(t, dim=1)])
            return torch.logsumexp(both, dim=0) - math.log(2.0)   # log of the mean softmax

    class CNNLSTM(nn.Module):
        def __init__(self, num_classes, cnn, hidden_size, dropout=0.0):
            super().__init__()
            self.cnn = FrameCNN(**cnn)
            self.lstm = nn.LSTM(self.cnn.out_dim, hidden_size, batch_first=True)
            self.drop = nn.Dropout(dropout)
            self.fc8 = nn.Linear(hidden_size, num_classes)

        def forward(self, x):
            N, C, T, H, W = x.shape
            feats = self.cnn(x.permute(0, 2, 1, 3, 4).reshape(N * T, C, H, W)).reshape(N, T, -1)
            out, _ = self.lstm(feats)
            return self.fc8(self.drop(out[:, -1]))

    # -- models/c3d.py --
    class ConvModule(nn.Module):
        def __init__(self, c_in, c_out, batch_norm):
            super().__init__()
            self.conv = nn.Conv3d(c_in, c_out, 3, padding=1)
            self.bn = nn.BatchNorm3d(c_out) if batch_norm else None
            self.activate = nn.ReLU(inplace=True)

        def forward(self, x):
            x = self.conv(x)
            return self.activate(x if self.bn is None else self.bn(x))

    class C3D(nn.Module):
        def __init__(self, num_classes, widths, fc_width, frames=16, size=32, batch_norm=False,
                     dropout=0.0):
            super().__init__()
            pools = [((1, 2, 2), (0, 0, 0))] + [((2, 2, 2), (0, 0, 0))] * 3 \
                + [((2, 2, 2), (0, 1, 1))]
            names = iter(zip(('conv1a', 'conv2a', 'conv3a', 'conv3b', 'conv4a', 'conv4b',
                              'conv5a', 'conv5b'), widths))
            c, t, h = 3, frames, size
            for stage, n in enumerate((1, 1, 2, 2, 2)):
                for _ in range(n):
                    name, w = next(names)
                    setattr(self, name, ConvModule(c, w, batch_norm))
                    c = w
                k, p = pools[stage]
                setattr(self, f'pool{stage + 1}', nn.MaxPool3d(k, stride=k, padding=p))
                t, h = (t + 2 * p[0] - k[0]) // k[0] + 1, (h + 2 * p[1] - k[1]) // k[1] + 1
            self.fc6 = nn.Linear(c * t * h * h, fc_width)
            self.fc7 = nn.Linear(fc_width, fc_width)
            self.relu = nn.ReLU(inplace=True)
            self.dropout = nn.Dropout(dropout)
            self.head_dropout = nn.Dropout(dropout)
            self.fc_cls = nn.Linear(fc_width, num_classes)

        def forward(self, x):
            x = self.pool1(self.conv1a(x))
            x = self.pool2(self.conv2a(x))
            x = self.pool3(self.conv3b(self.conv3a(x)))
            x = self.pool4(self.conv4b(self.conv4a(x)))
            x = self.pool5(self.conv5b(self.conv5a(x))).flatten(1)
            x = self.dropout(self.relu(self.fc6(x)))
            x = self.relu(self.fc7(x))
            return self.fc_cls(self.head_dropout(x))

    # -- models/resnet.py inflated by models/inflate.py as models/i3d.py does --
    class Bottleneck3d(nn.Module):
        def __init__(self, c_in, width, stride, kt):
            super().__init__()
            out = width * 4
            self.conv1 = nn.Conv3d(c_in, width, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
            self.bn1 = nn.BatchNorm3d(width)
            self.conv2 = nn.Conv3d(width, width, (1, 3, 3), stride=(1, stride, stride),
                                   padding=(0, 1, 1), bias=False)
            self.bn2 = nn.BatchNorm3d(width)
            self.conv3 = nn.Conv3d(width, out, 1, bias=False)
            self.bn3 = nn.BatchNorm3d(out)
            self.relu = nn.ReLU(inplace=True)
            if stride != 1 or c_in != out:
                self.downsample = nn.Sequential(
                    nn.Conv3d(c_in, out, 1, stride=(1, stride, stride), bias=False),
                    nn.BatchNorm3d(out))
            else:
                self.downsample = None

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    class I3D(nn.Module):
        def __init__(self, num_classes, layers, stem_width, widths, stem_kernel, dropout=0.0,
                     stem_time_kernel=5, time_kernels=I3D_R50_TIME_KERNELS, temporal_pool=2):
            super().__init__()
            k, kt = stem_kernel, stem_time_kernel
            self.conv1 = nn.Conv3d(3, stem_width, (kt, k, k), stride=(1, 2, 2),
                                   padding=(kt // 2, k // 2, k // 2), bias=False)
            self.bn1 = nn.BatchNorm3d(stem_width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
            c = stem_width
            for i, (blocks, width) in enumerate(zip(layers, widths)):
                stage = []
                for b in range(blocks):
                    kts = time_kernels[i]
                    stage.append(Bottleneck3d(c, width, 2 if (i > 0 and b == 0) else 1,
                                              kts[b % len(kts)]))
                    c = width * 4
                setattr(self, f'layer{i + 1}', nn.Sequential(*stage))
            self.pool2 = nn.MaxPool3d((temporal_pool, 1, 1), stride=(temporal_pool, 1, 1))
            self.avgpool = nn.AdaptiveAvgPool3d(1)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(c, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.pool2(self.layer1(x))
            x = self.layer4(self.layer3(self.layer2(x)))
            return self.fc(self.dropout(self.avgpool(x).flatten(1)))

    # -- models/slowfast.py (PyTorchVideo's names) --
    class Stem(nn.Module):
        def __init__(self, c_in, width, kt, k):
            super().__init__()
            self.conv = nn.Conv3d(c_in, width, (kt, k, k), stride=(1, 2, 2),
                                  padding=(kt // 2, k // 2, k // 2), bias=False)
            self.norm = nn.BatchNorm3d(width)
            self.activation = nn.ReLU(inplace=True)
            self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

        def forward(self, x):
            return self.pool(self.activation(self.norm(self.conv(x))))

    class SFBottleneck(nn.Module):
        def __init__(self, c_in, inner, out, kt, s):
            super().__init__()
            self.conv_a = nn.Conv3d(c_in, inner, (kt, 1, 1), padding=(kt // 2, 0, 0), bias=False)
            self.norm_a = nn.BatchNorm3d(inner)
            self.act_a = nn.ReLU(inplace=True)
            self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, s, s), padding=(0, 1, 1),
                                    bias=False)
            self.norm_b = nn.BatchNorm3d(inner)
            self.act_b = nn.ReLU(inplace=True)
            self.conv_c = nn.Conv3d(inner, out, 1, bias=False)
            self.norm_c = nn.BatchNorm3d(out)

        def forward(self, x):
            x = self.act_a(self.norm_a(self.conv_a(x)))
            x = self.act_b(self.norm_b(self.conv_b(x)))
            return self.norm_c(self.conv_c(x))

    class ResBlock(nn.Module):
        def __init__(self, c_in, inner, out, kt, s):
            super().__init__()
            if c_in != out or s != 1:
                self.branch1_conv = nn.Conv3d(c_in, out, 1, stride=(1, s, s), bias=False)
                self.branch1_norm = nn.BatchNorm3d(out)
            else:
                self.branch1_conv = self.branch1_norm = None
            self.branch2 = SFBottleneck(c_in, inner, out, kt, s)
            self.activation = nn.ReLU(inplace=True)

        def forward(self, x):
            short = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
            return self.activation(short + self.branch2(x))

    class ResStage(nn.Module):
        def __init__(self, depth, c_in, inner, out, kt, s):
            super().__init__()
            self.res_blocks = nn.ModuleList([ResBlock(c_in if b == 0 else out, inner, out, kt,
                                                      s if b == 0 else 1) for b in range(depth)])

        def forward(self, x):
            for block in self.res_blocks:
                x = block(x)
            return x

    class FuseFastToSlow(nn.Module):
        def __init__(self, c, alpha, kernel, ratio):
            super().__init__()
            self.conv_fast_to_slow = nn.Conv3d(c, c * ratio, (kernel, 1, 1), stride=(alpha, 1, 1),
                                               padding=(kernel // 2, 0, 0), bias=False)
            self.norm = nn.BatchNorm3d(c * ratio)
            self.activation = nn.ReLU(inplace=True)

        def forward(self, pathways):
            slow, fast = pathways
            lateral = self.activation(self.norm(self.conv_fast_to_slow(fast)))
            return [torch.cat([slow, lateral], 1), fast]

    class MultiPathway(nn.Module):
        def __init__(self, slow, fast, fusion):
            super().__init__()
            self.multipathway_blocks = nn.ModuleList([slow, fast])
            self.multipathway_fusion = fusion

        def forward(self, pathways):
            return self.multipathway_fusion([b(x) for b, x in zip(self.multipathway_blocks,
                                                                    pathways)])

    class PoolConcat(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.ModuleList([nn.AdaptiveAvgPool3d(1), nn.AdaptiveAvgPool3d(1)])

        def forward(self, pathways):
            return torch.cat([pool(x) for pool, x in zip(self.pool, pathways)], 1)

    class Head(nn.Module):
        def __init__(self, d, num_classes, dropout):
            super().__init__()
            self.dropout = nn.Dropout(dropout)
            self.proj = nn.Linear(d, num_classes)

        def forward(self, x):
            return self.proj(self.dropout(x.flatten(1)))

    class SlowFast(nn.Module):
        def __init__(self, num_classes, alpha, beta_inv, depths, widths, stem_width,
                     stem_spatial_kernel, fusion_kernel=5, fusion_ratio=2,
                     slow_time_kernels=(1, 1, 3, 3), fast_time_kernels=(3, 3, 3, 3),
                     dropout=0.5):
            super().__init__()
            self.alpha = alpha
            fast_stem, fast_widths = stem_width // beta_inv, [w // beta_inv for w in widths]
            blocks = [MultiPathway(Stem(3, stem_width, 1, stem_spatial_kernel),
                                   Stem(3, fast_stem, 5, stem_spatial_kernel),
                                   FuseFastToSlow(fast_stem, alpha, fusion_kernel, fusion_ratio))]
            slow_in, fast_in = stem_width + fusion_ratio * fast_stem, fast_stem
            for i in range(4):
                slow_out, fast_out, s = widths[i] * 4, fast_widths[i] * 4, 1 if i == 0 else 2
                fusion = (FuseFastToSlow(fast_out, alpha, fusion_kernel, fusion_ratio) if i < 3
                          else nn.Identity())
                blocks.append(MultiPathway(
                    ResStage(depths[i], slow_in, widths[i], slow_out, slow_time_kernels[i], s),
                    ResStage(depths[i], fast_in, fast_widths[i], fast_out, fast_time_kernels[i],
                             s), fusion))
                slow_in, fast_in = slow_out + (fusion_ratio * fast_out if i < 3 else 0), fast_out
            blocks += [PoolConcat(), Head(slow_in + fast_in, num_classes, dropout)]
            self.blocks = nn.ModuleList(blocks)

        def forward(self, x):
            pathways = [x[:, :, ::self.alpha], x]
            for stage in self.blocks[:5]:
                pathways = stage(pathways)
            return self.blocks[6](self.blocks[5](pathways))

    # -- models/_transformer.py, tensorlite/nn/spacetime.py --
    class SelfAttention(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)

        def forward(self, x):                                    # (B, L, D)
            B, L, D = x.shape
            qkv = self.qkv(x).reshape(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])   # (B, H, L, d)
            return self.proj(out.transpose(1, 2).reshape(B, L, D))

    class MLP(nn.Module):
        def __init__(self, d, hidden, approximate):
            super().__init__()
            self.fc1 = nn.Linear(d, hidden)
            self.act = nn.GELU(approximate=approximate)
            self.fc2 = nn.Linear(hidden, d)
            self.drop = nn.Dropout(0.0)

        def forward(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def over_time(x, sublayer):                                  # (N, T, S, D)
        N, T, S, D = x.shape
        return sublayer(x.transpose(1, 2).reshape(N * S, T, D)).reshape(N, S, T, D).transpose(1, 2)

    class DividedBlock(nn.Module):
        def __init__(self, d, heads, mlp_dim, eps=1e-6, approximate='none'):
            super().__init__()
            self.temporal_norm1 = nn.LayerNorm(d, eps=eps)
            self.temporal_attn = SelfAttention(d, heads)
            self.temporal_fc = nn.Linear(d, d)
            self.norm1 = nn.LayerNorm(d, eps=eps)
            self.attn = SelfAttention(d, heads)
            self.norm2 = nn.LayerNorm(d, eps=eps)
            self.mlp = MLP(d, mlp_dim, approximate)

        def forward(self, x, cls=None):
            N, T, S, D = x.shape
            x = x + over_time(x, lambda s: self.temporal_fc(self.temporal_attn(
                self.temporal_norm1(s))))
            if cls is None:
                x = x + self.attn(self.norm1(x.reshape(N * T, S, D))).reshape(N, T, S, D)
                return x + self.mlp(self.norm2(x))
            c = cls.reshape(N, 1, 1, D).expand(N, T, 1, D).reshape(N * T, 1, D)
            y = self.attn(self.norm1(torch.cat([c, x.reshape(N * T, S, D)], 1)))
            x = x + y[:, 1:].reshape(N, T, S, D)
            cls = cls + y[:, 0].reshape(N, T, D).mean(1)
            return x + self.mlp(self.norm2(x)), cls + self.mlp(self.norm2(cls))

    class JointBlock(nn.Module):
        def __init__(self, d, heads, mlp_dim, eps=1e-6, approximate='none'):
            super().__init__()
            self.norm1 = nn.LayerNorm(d, eps=eps)
            self.attn = SelfAttention(d, heads)
            self.norm2 = nn.LayerNorm(d, eps=eps)
            self.mlp = MLP(d, mlp_dim, approximate)

        def forward(self, x):                                    # no class token: (N, T, S, D)
            N, T, S, D = x.shape
            seq = x.reshape(N, T * S, D)
            seq = seq + self.attn(self.norm1(seq))
            return (seq + self.mlp(self.norm2(seq))).reshape(N, T, S, D)

    class ConvStem(nn.Module):
        def __init__(self, c_in, widths):
            super().__init__()
            a, b = widths
            self.conv1 = nn.Conv3d(c_in, a, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm3d(a)
            self.pool1 = nn.MaxPool3d((1, 2, 2))
            self.conv2 = nn.Conv3d(a, b, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm3d(b)
            self.pool2 = nn.MaxPool3d((2, 2, 2))
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            x = self.pool1(self.relu(self.bn1(self.conv1(x))))
            return self.pool2(self.relu(self.bn2(self.conv2(x))))

    def pool_tokens(tokens, pool):                               # (N, T, S, D) -> (N, D)
        flat = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1])
        return flat.mean(1) if pool == 'mean' else flat.max(1).values

    class PatchEmbed(nn.Module):
        def __init__(self, c_in, d, p):
            super().__init__()
            self.proj = nn.Conv2d(c_in, d, p, stride=p)

        def forward(self, x):
            N, C, T, H, W = x.shape
            y = self.proj(x.transpose(1, 2).reshape(N * T, C, H, W))
            return y.reshape(N, T, y.shape[1], -1).transpose(2, 3)     # (N, T, S, D)

    class TimeSformer(nn.Module):
        def __init__(self, num_classes, frames, img_size, patch_size, embed_dim, depth,
                     num_heads, mlp_dim, stem, pool, eps=1e-6):
            super().__init__()
            step_t, step_s = (2, 4) if stem is not None else (1, 1)
            self.pool = pool
            self.stem = ConvStem(3, stem) if stem is not None else None
            S = (img_size // step_s // patch_size) ** 2
            self.patch_embed = PatchEmbed(stem[-1] if stem is not None else 3, embed_dim,
                                          patch_size)
            with_cls = pool == 'cls'
            if with_cls:
                self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            else:
                self.cls_token = None
            self.pos_embed = nn.Parameter(torch.zeros(1, int(with_cls) + S, embed_dim))
            self.time_embed = nn.Parameter(torch.zeros(1, frames // step_t, embed_dim))
            self.blocks = nn.ModuleList([DividedBlock(embed_dim, num_heads, mlp_dim, eps)
                                         for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=eps)
            self.head = nn.Linear(embed_dim, num_classes)

        def forward(self, x):
            if self.stem is not None:
                x = self.stem(x)
            tokens = self.patch_embed(x)
            N, T, S, D = tokens.shape
            space = self.pos_embed if self.cls_token is None else self.pos_embed[:, 1:]
            tokens = tokens + space.reshape(1, 1, S, D) + self.time_embed.reshape(1, T, 1, D)
            if self.cls_token is None:
                for blk in self.blocks:
                    tokens = blk(tokens)
                return self.head(pool_tokens(self.norm(tokens), self.pool))
            cls = (self.cls_token + self.pos_embed[:, :1]).reshape(1, D).expand(N, D)
            for blk in self.blocks:
                tokens, cls = blk(tokens, cls)
            return self.head(self.norm(cls))

    class Encoder(nn.Module):                                    # without class token
        def __init__(self, tokens, embed_dim, depth, num_heads, mlp_dim, eps=1e-6):
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))
            self.blocks = nn.ModuleList([JointBlock(embed_dim, num_heads, mlp_dim, eps, 'tanh')
                                         for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=eps)

        def forward(self, x):
            B, T, S, D = x.shape
            x = (x.reshape(B, T * S, D) + self.pos_embed).reshape(B, T, S, D)
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)

    class ViViTFactorizedEncoder(nn.Module):                     # models/vivit.py, pool 'max'
        def __init__(self, num_classes, tubelet, embed_dim, depth, temporal_depth, num_heads,
                     mlp_dim, stem, pool, frames=16, img_size=32):
            super().__init__()
            assert pool in ('mean', 'max')
            self.pool = pool
            self.stem = ConvStem(3, stem)
            t, ph, pw = tubelet
            T, S = frames // 2 // t, (img_size // 4 // ph) * (img_size // 4 // pw)
            self.embedding = nn.Conv3d(stem[-1], embed_dim, tubelet, stride=tubelet)
            self.spatial_transformer = Encoder(S, embed_dim, depth, num_heads, mlp_dim)
            self.temporal_transformer = Encoder(T, embed_dim, temporal_depth, num_heads, mlp_dim)
            self.head = nn.Linear(embed_dim, num_classes)

        def forward(self, x):
            y = self.embedding(self.stem(x))                     # (N, D, T', h, w)
            N, D, T, h, w = y.shape
            tokens = y.reshape(N, D, T, h * w).permute(0, 2, 3, 1)             # (N, T', S, D)
            frames = self.spatial_transformer(tokens.reshape(N * T, 1, h * w, D))
            cls = pool_tokens(frames, self.pool).reshape(N, 1, T, D)
            return self.head(pool_tokens(self.temporal_transformer(cls), self.pool))

    _TORCH.update(torch=torch, single_frame=SingleFrame, late_fusion=LateFusion,
                  early_fusion=EarlyFusion, c3d=C3D, i3d=I3D, two_stream=TwoStream,
                  slowfast=SlowFast, cnn_lstm=CNNLSTM, timesformer=TimeSformer,
                  vivit=ViViTFactorizedEncoder)
    return _TORCH


def torch_model(case, seed=0):
    """The PyTorch mirror of the case's tensorlite model, with its own initialization, in
    training mode."""
    classes = torch_classes()
    classes['torch'].manual_seed(seed)
    model = classes[case['model']](case['num_classes'], **case['config'])
    return model.train()


def torch_step(model, arrays):
    """step() -> loss tensor: zero_grad, forward, cross_entropy, backward, SGD step."""
    torch = _import_torch()
    F = torch.nn.functional
    inputs = [torch.from_numpy(a.copy()) for a in arrays[:-1]]
    target = torch.from_numpy(arrays[-1].copy())
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(*inputs), target)
        loss.backward()
        optimizer.step()
        return loss
    return step


# ---- the pair: weights across, dropout off, the losses checked ----------------------------------

class MismatchError(AssertionError):
    pass


def label(case):
    return f"{case['model']} {case['preset']} (batch {case['batch']})"


def check_relus(tl_model, th_model):
    """Every ReLU module has a ReLU of the same name in the mirror, in place where tensorlite's is
    (the same network, with the same memory behaviour)."""
    torch = _import_torch()
    theirs = dict(th_model.named_modules())
    for name, m in tl_model.named_modules():
        if type(m).__name__ == 'ReLU':
            mirror = theirs.get(name)
            if not isinstance(mirror, torch.nn.ReLU) or mirror.inplace != m.inplace:
                raise MismatchError(f"{name} is a ReLU(inplace={m.inplace}) in tensorlite, "
                                    f"{mirror!r} in the mirror")


def build_pair(case, seed=0):
    """(tl model, torch model, dropout modules turned off): the tensorlite weights copied into
    the mirror by state-dict name (the key sets must be equal), Dropout p > 0 in eval mode on both
    sides under the same names."""
    torch = _import_torch()
    tl_model, off = tensorlite_model(case, seed)
    th_model = torch_model(case, seed)
    ours = {k: np.array(v.numpy()) for k, v in tl_model.state_dict().items()}
    theirs = th_model.state_dict()
    if set(ours) != set(theirs):
        raise MismatchError(f"{label(case)}: the state-dict keys differ: only in tensorlite "
                            f"{sorted(set(ours) - set(theirs))}, only in the PyTorch mirror "
                            f"{sorted(set(theirs) - set(ours))}")
    shapes = [k for k in ours if tuple(ours[k].shape) != tuple(theirs[k].shape)]
    if shapes:
        raise MismatchError(f"{label(case)}: shapes differ: " + ', '.join(
            f"{k} {tuple(ours[k].shape)} vs {tuple(theirs[k].shape)}" for k in shapes))
    th_model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()}, strict=True)
    for entry in off:
        name = entry.split(' ')[0]
        m = th_model.get_submodule(name)
        if not isinstance(m, torch.nn.Dropout):
            raise MismatchError(f"{label(case)}: {name} is a Dropout in tensorlite, a "
                                f"{type(m).__name__} in the mirror")
        m.eval()
    check_relus(tl_model, th_model)
    th_dropouts = sorted(n for n, m in th_model.named_modules()
                         if isinstance(m, torch.nn.Dropout) and m.p > 0 and m.training)
    if th_dropouts:
        raise MismatchError(f"{label(case)}: the mirror has active dropout the tensorlite model "
                            f"has not: {th_dropouts}")
    return tl_model, th_model, off


def _close(a, b, tol):
    return abs(a - b) <= tol * max(1.0, abs(b))


def _grad_diff(tl_model, th_model):
    """(worst difference of a parameter's gradient after a step, relative to that gradient's norm
    or to 1e-4 of the whole gradient's norm when larger, and the parameter's name).  The floor:
    a conv bias right before a BatchNorm has a zero gradient up to rounding, on both sides."""
    theirs = dict(th_model.named_parameters())
    pairs = []
    for name, p in tl_model.named_parameters():
        q = theirs[name].grad
        g1 = np.zeros(p.shape, np.float32) if p.grad is None else p.grad.numpy()
        g2 = np.zeros(p.shape, np.float32) if q is None else q.numpy()
        pairs.append((name, float(np.linalg.norm(g1 - g2)), float(np.linalg.norm(g2))))
    floor = 1e-4 * math.sqrt(sum(n * n for _, _, n in pairs)) or 1e-30
    worst, where = 0.0, None
    for name, diff, norm in pairs:
        if diff / max(norm, floor) > worst:
            worst, where = diff / max(norm, floor), name
    return worst, where


def check_case(case, seed=0, steps=2, second_tol=SECOND_TOL, float64=False):
    """Build both sides, copy the weights and take `steps` (1 or 2) training steps on each with
    the same batch.  Returns a dict: the losses, the worst gradient difference after step 1, the
    dropout layers turned off, and the models and step functions (to time them further).

    Raises MismatchError when the first losses differ by more than 1e-4 (relative, or absolute
    below 1), or the second by more than second_tol (None: reported, not checked).  float64=True
    runs both sides in float64 with both tolerances 1e-8: the two implementations then agree to
    rounding, whatever the conditioning of the float32 step."""
    arrays = case_arrays(case, seed=seed)
    tl_model, th_model, off = build_pair(case, seed)
    tolerances = [FIRST_TOL, second_tol]
    if float64:
        tl_model, th_model = tl_model.double(), th_model.double()
        arrays = [a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays]
        tolerances = [1e-8, 1e-8]
    tl_step, th_step = tensorlite_step(tl_model, arrays), torch_step(th_model, arrays)
    out = dict(model=case['model'], preset=case['preset'], batch=case['batch'],
               dtype='float64' if float64 else 'float32', dropout_off=off, tl_model=tl_model,
               torch_model=th_model, tl_step=tl_step, torch_step=th_step,
               second_loss_checked=steps > 1 and tolerances[1] is not None)
    for k in range(steps):
        l_tl, l_th = float(tl_step().item()), float(th_step().item())
        which = ('first', 'second')[k]
        out[f'{which}_loss_tl'], out[f'{which}_loss_torch'] = l_tl, l_th
        if k == 0:
            out['grad_rel_diff'], out['grad_worst'] = _grad_diff(tl_model, th_model)
        tol = tolerances[k]
        if tol is not None and not (math.isfinite(l_tl) and _close(l_tl, l_th, tol)):
            raise MismatchError(f"{label(case)}: {which} loss tensorlite {l_tl:.7g} != PyTorch "
                                f"{l_th:.7g} (diff {abs(l_tl - l_th):.3g}, tolerance {tol:g}, "
                                f"{out['dtype']}); worst gradient after step 1: "
                                f"{out['grad_worst']} (relative difference "
                                f"{out['grad_rel_diff']:.3g})")
    return out


def describe_check(r):
    line = (f"{r['model']:>12s} {r['preset']:5s} batch {r['batch']:2d}: first loss tl "
            f"{r['first_loss_tl']:.7g} torch {r['first_loss_torch']:.7g} "
            f"(diff {abs(r['first_loss_tl'] - r['first_loss_torch']):.1e})")
    if 'second_loss_tl' in r:
        line += (f", second {r['second_loss_tl']:.7g} / {r['second_loss_torch']:.7g} "
                 f"(diff {abs(r['second_loss_tl'] - r['second_loss_torch']):.1e}"
                 f"{'' if r['second_loss_checked'] else ', not checked'})")
    line += (f"\n{'':19s}{r['dtype']}; gradients after step 1 within {r['grad_rel_diff']:.1e} "
             f"(relative; worst {r['grad_worst']})")
    if r['dropout_off']:
        line += f"\n{'':19s}dropout off on both sides (eval mode): {', '.join(r['dropout_off'])}"
    return line


# ---- time, in a worker process per side ----------------------------------------------------------

def side_model(side, case, state=None):
    """(model, step maker) of one side, importing only that side's library: tensorlite's model
    (Dropout p > 0 in eval mode) or the mirror (its Dropouts in eval mode, as build_pair leaves
    it), with the weights of `state` (name -> array) when given."""
    if side == 'tensorlite':
        import tensorlite as tl
        m, _ = tensorlite_model(case)
        if state is not None:
            m.load_state_dict({k: tl.tensor(v) for k, v in state.items()})
        return m, tensorlite_step
    torch = _import_torch()
    m = torch_model(case)
    if state is not None:
        m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    for mod in m.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.eval()
    return m, torch_step


def time_worker(side, model, preset, weights):
    """Run in a subprocess: build `side`'s model with the weights in the npz `weights`, then serve
    training steps (benchmarks/_timing.py, serve; its first call is the warm-up)."""
    case = CASES[model, preset]
    with np.load(weights, allow_pickle=False) as f:
        state = {k: f[k] for k in f.files}
    m, make_step = side_model(side, case, state)
    _timing.serve([make_step(m, case_arrays(case))])


def time_in_workers(tl_model, case, repeats):
    """{'tl': median seconds, 'torch': median seconds} of the two sides' steps, each side in a
    worker process of its own, interleaved (the module docstring says why)."""
    fd, path = tempfile.mkstemp(suffix='.npz', prefix='bench_models_weights_')
    os.close(fd)
    workers = []
    try:
        np.savez(path, **{k: np.array(v.numpy()) for k, v in tl_model.state_dict().items()})
        for key, side in (('tl', 'tensorlite'), ('torch', 'torch')):
            workers.append(_timing.Worker(key, __file__, '--time-worker', side, case['model'],
                                          case['preset'], path))
        for w in workers:
            w.read(expect='ready')
        return _timing.worker_medians(workers, 0, repeats)
    finally:
        for w in workers:
            w.close()
        os.unlink(path)


# ---- memory, in a fresh process per side ---------------------------------------------------------

def measure_memory(side, model, preset):
    """Run in a subprocess: the peak resident memory one training step added (JSON, last line).
    Imports only the side's own library; warms up with one step at batch 1, then drops its
    gradients, so that the number counts the step's gradients with its activations."""
    case = CASES[model, preset]
    m, make_step = side_model(side, case)
    make_step(m, case_arrays(case, batch=1))()        # imports, JIT, caches
    for p in m.parameters():                          # the step's gradients count as its own
        p.grad = None
    step = make_step(m, case_arrays(case))
    print(json.dumps(_timing.peak_added_mib(step)))


def memory_of(side, case):
    return _timing.memory_in_subprocess(__file__, side, case['model'], case['preset'])


# ---- the run ----------------------------------------------------------------------------------

def numpy_gemm_rate(repeats):
    a = np.random.default_rng(1).standard_normal((2048, 2048), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    ts = [_timing.timed(lambda: np.matmul(a, a, out=out), pause=0.05) for _ in range(repeats)]
    return 2 * 2048 ** 3 / statistics.median(ts) / 1e9


def write_json(path, records):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(records, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def loud(message):
    bar = '!' * 100
    print(f"\n{bar}\nMISMATCH: {message}\n{bar}\n", flush=True)


RECORD_FIELDS = ('model', 'preset', 'batch', 'dtype', 'first_loss_tl', 'first_loss_torch',
                 'second_loss_tl', 'second_loss_torch', 'second_loss_checked', 'grad_rel_diff',
                 'grad_worst', 'dropout_off')


def run(args):
    torch = _import_torch()
    cases = select_cases(args.models, args.preset)
    if not cases:
        raise SystemExit(f"bench_models: no case for models {args.models} at preset "
                         f"{args.preset!r} (paper presets: {', '.join(PAPER_MODELS)})")
    if args.models and args.preset in ('paper', 'all'):
        no_paper = [m for m in args.models if (m, 'paper') not in CASES]
        if no_paper:
            print(f"note: no paper-preset case for {', '.join(no_paper)} (those are "
                  f"{', '.join(PAPER_MODELS)})")
    records, failed = [], []
    if not args.check_only:
        gemm = numpy_gemm_rate(args.repeats)
        print(f"NumPy float32 GEMM (2048^3, median of {args.repeats}): {gemm:.0f} GFLOP/s; load "
              f"average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other jobs slow both "
              f"sides, unevenly)")
    tols = ('1e-8 (float64)', '1e-8 (float64)') if args.float64 else \
        (f'{FIRST_TOL:g}', f'{SECOND_TOL:g} (tiny presets)')
    print(f"one training step (forward, cross_entropy, backward, SGD lr={LR}); checks: first "
          f"loss to {tols[0]}, second to {tols[1]}; threads: tensorlite (Numba) "
          f"{tensorlite_threads()}, PyTorch {torch.get_num_threads()}\n", flush=True)
    for case in cases:
        try:
            # The second loss of a paper preset is reported, not checked: one SGD step at lr 0.01
            # from a random init moves the loss from ~6 to ~0.7, and float32 rounding (which
            # differs between any two implementations) changes where it lands by ~2 % (I3D and
            # SlowFast; in float64 the two sides agree to 1e-12: --check-only --float64).
            r = check_case(case, second_tol=SECOND_TOL if case['preset'] == 'tiny' else None,
                           float64=args.float64)
        except MismatchError as e:
            loud(str(e))
            failed.append(label(case))
            records.append(dict(model=case['model'], preset=case['preset'], batch=case['batch'],
                                matched=False, error=str(e)))
            continue
        print(describe_check(r), flush=True)
        record = {k: r[k] for k in RECORD_FIELDS}
        record['matched'] = True
        if not args.check_only:
            t = time_in_workers(r['tl_model'], case, args.repeats)
            record.update(tl_ms=t['tl'] * 1e3, torch_ms=t['torch'] * 1e3,
                          ratio=t['tl'] / t['torch'])
            print(f"{'':19s}tensorlite {record['tl_ms']:.1f} ms, PyTorch "
                  f"{record['torch_ms']:.1f} ms (median of {args.repeats})", flush=True)
        records.append(record)
        del r
        gc.collect()
    if not args.check_only and not args.no_memory:
        print("\npeak memory one step adds (a fresh process per side) ...", flush=True)
        for record in records:
            if record.get('matched'):
                case = CASES[record['model'], record['preset']]
                try:
                    mt, mp = memory_of('tensorlite', case), memory_of('torch', case)
                except subprocess.CalledProcessError as e:
                    loud(f"{label(case)}: the memory measurement failed (exit status "
                         f"{e.returncode}):\n{e.stderr[-2000:]}")
                    failed.append(f"{label(case)} (memory)")
                    continue
                record.update(tl_peak_mib=mt['added_mib'], torch_peak_mib=mp['added_mib'],
                              tl_process_peak_mib=mt['peak_mib'],
                              torch_process_peak_mib=mp['peak_mib'],
                              tl_baseline_mib=mt['baseline_mib'],
                              torch_baseline_mib=mp['baseline_mib'], memory_how=mt['how'])
    if not args.check_only:
        print(f"\n{'model':12s} {'preset':6s} {'batch':>5s} {'tl ms':>9s} {'torch ms':>9s} "
              f"{'tl/torch':>8s} {'tl MiB':>8s} {'torch MiB':>9s}")
        for r in records:
            if not r.get('matched'):
                print(f"{r['model']:12s} {r['preset']:6s} {r['batch']:5d}   NOT MATCHED: not timed")
                continue
            mem = (f"{r['tl_peak_mib']:8.0f} {r['torch_peak_mib']:9.0f}" if 'tl_peak_mib' in r
                   else f"{'-':>8s} {'-':>9s}")
            print(f"{r['model']:12s} {r['preset']:6s} {r['batch']:5d} {r['tl_ms']:9.1f} "
                  f"{r['torch_ms']:9.1f} {r['ratio']:8.2f} {mem}")
        print(f"(NumPy GEMM {gemm:.0f} GFLOP/s; tl/torch <= 1: tensorlite as fast or faster; MiB: "
              f"peak resident memory one step added)")
        for r in records:
            r.update(gemm_gflops=gemm, loadavg_end=os.getloadavg()[0])
    if args.json:
        write_json(args.json, records)
        print(f"wrote {args.json}")
    if failed:
        loud(f"{len(failed)} case(s) failed (a mismatch with PyTorch is not timed): "
             f"{', '.join(failed)}")
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--models', type=lambda s: [m.strip() for m in s.split(',') if m.strip()],
                   default=None, help='comma-separated model names (default: all)')
    p.add_argument('--preset', choices=('tiny', 'paper', 'all'), default='all')
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--no-memory', action='store_true')
    p.add_argument('--json', metavar='FILE')
    p.add_argument('--check-only', action='store_true',
                   help='build, copy the weights and check the losses; no timing')
    p.add_argument('--float64', action='store_true',
                   help='with --check-only: the check in float64 on both sides, to 1e-8')
    p.add_argument('--measure-memory', nargs=3, metavar=('SIDE', 'MODEL', 'PRESET'),
                   help=argparse.SUPPRESS)
    p.add_argument('--time-worker', nargs=4, metavar=('SIDE', 'MODEL', 'PRESET', 'WEIGHTS'),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure_memory:
        measure_memory(*args.measure_memory)
        return 0
    if args.time_worker:
        time_worker(*args.time_worker)
        return 0
    if args.float64 and not args.check_only:
        p.error('--float64 goes with --check-only (the timed step is float32)')
    return run(args)


if __name__ == '__main__':
    sys.exit(main())

"""fit / evaluate / temporal_diagnostic: exact resume, seeded reproducibility, the history files,
batch unpacking, multi-view averaging and the reversed/shuffled-frames diagnostic."""
import csv
import json
import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
import tensorlite.optim as optim
from tensorlite.data import DataLoader, DistributedSampler, SyntheticActions
from tensorlite.train.loop import (HISTORY_FIELDS, _frame_permutation, evaluate, fit,
                                   temporal_diagnostic, unpack_batch)


def tiny_model(num_classes=6, dropout=0.0):
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Dropout(dropout), nn.Linear(4, num_classes))


def scene_data():
    return SyntheticActions('scene', 32, num_frames=4, size=16, seed=0)


def run(epochs, checkpoint_dir=None, resume=False, init_seed=0, fit_seed=None, dropout=0.0):
    """A fresh model, optimizer, scheduler and loaders, as a new process would build them."""
    tl.manual_seed(init_seed)
    model = tiny_model(dropout=dropout)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train = DataLoader(scene_data(), batch_size=8, shuffle=True, seed=3)
    val = DataLoader(scene_data(), batch_size=16)
    history = fit(model, train, val, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                  checkpoint_dir=checkpoint_dir, resume=resume, progress=False, seed=fit_seed)
    return model, history


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ---- the training loop ---------------------------------------------------------------------------

def test_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path):
    straight, straight_history = run(3, fit_seed=1, dropout=0.25)
    run(1, checkpoint_dir=tmp_path, fit_seed=1, dropout=0.25)          # "interrupted" after epoch 0
    # a new model initialised differently: everything must come from the checkpoint
    resumed, resumed_history = run(3, checkpoint_dir=tmp_path, resume=True, init_seed=99,
                                   fit_seed=1, dropout=0.25)
    assert_same_weights(weights(straight), weights(resumed))
    assert [h['epoch'] for h in resumed_history] == [1, 2, 3]
    for a, b in zip(straight_history, resumed_history):
        for key in ('train_loss', 'train_accuracy', 'val_loss', 'val_accuracy', 'lr'):
            assert a[key] == b[key], key


def test_resuming_with_a_differently_seeded_loader_warns(tmp_path):
    run(1, checkpoint_dir=tmp_path)
    train = DataLoader(scene_data(), batch_size=8, shuffle=True, seed=4)
    model = tiny_model()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with pytest.warns(UserWarning, match='seeded 3'):
        fit(model, train, optimizer=optimizer, scheduler=scheduler, epochs=2,
            checkpoint_dir=tmp_path, resume=True, progress=False)


def test_resume_without_checkpoint_starts_fresh_and_resume_needs_a_directory(tmp_path):
    fresh, _ = run(1)
    resumed, history = run(1, checkpoint_dir=tmp_path / 'empty', resume=True)
    assert_same_weights(weights(fresh), weights(resumed))
    assert len(history) == 1 and (tmp_path / 'empty' / 'last.npz').exists()
    with pytest.raises(ValueError, match='checkpoint_dir'):
        fit(tiny_model(), DataLoader(scene_data(), 8), epochs=1, resume=True, progress=False)


def test_a_seeded_run_repeats_bit_for_bit_and_the_seed_matters():
    first, first_history = run(2, fit_seed=5, dropout=0.5)
    second, second_history = run(2, fit_seed=5, dropout=0.5)
    other, other_history = run(2, fit_seed=6, dropout=0.5)          # dropout masks differ
    assert_same_weights(weights(first), weights(second))
    assert [h['train_loss'] for h in first_history] == [h['train_loss'] for h in second_history]
    assert [h['train_loss'] for h in first_history] != [h['train_loss'] for h in other_history]


def test_history_fields_and_files(tmp_path):
    _, history = run(2, checkpoint_dir=tmp_path)
    assert [sorted(h) for h in history] == [sorted(HISTORY_FIELDS)] * 2
    assert [h['lr'] for h in history] == [0.1, 0.05]                  # StepLR halves per epoch
    for h in history:
        assert 0 <= h['train_accuracy'] <= 1 and 0 <= h['val_accuracy'] <= 1
        assert h['seconds'] > 0 and h['clips_per_second'] > 0
    with open(tmp_path / 'history.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [float(r['train_loss']) for r in rows] == [h['train_loss'] for h in history]
    assert list(rows[0]) == list(HISTORY_FIELDS)
    assert json.loads((tmp_path / 'history.json').read_text()) == history


def test_history_path_and_nonfinite_losses(tmp_path):
    from tensorlite.train.loop import write_history
    history = [{'epoch': 0, 'train_loss': math.nan, 'train_accuracy': None, 'val_loss': None,
                'val_accuracy': None, 'lr': 0.1, 'seconds': 1.0, 'clips_per_second': 2.0}]
    csv_path, json_path = write_history(history, tmp_path / 'sub' / 'run.json')
    assert csv_path.endswith('run.csv') and json_path.endswith('run.json')
    assert json.loads(open(json_path).read())[0]['train_loss'] is None
    assert open(csv_path).read().splitlines()[1].startswith('0,nan,,,,0.1')


def test_gradient_clipping_is_applied_between_backward_and_step():
    tl.manual_seed(0)
    model = tiny_model()
    before = weights(model)
    optimizer = optim.SGD(model.parameters(), lr=1.0)
    fit(model, DataLoader(scene_data(), batch_size=8), optimizer=optimizer, epochs=1,
        clip_grad_norm=1e-6, progress=False)
    moved = np.sqrt(sum(np.sum((before[k] - v) ** 2) for k, v in weights(model).items()))
    assert 0 < moved <= 4 * 1e-6 * (1 + 1e-3)                        # 4 steps of norm <= 1e-6


class TwoInputs(nn.Module):
    """A two-stream-like model: model(rgb, extra) with the label last in the batch."""

    def __init__(self):
        super().__init__()
        self.rgb = nn.Linear(3, 2)
        self.extra = nn.Linear(1, 2)

    def forward(self, rgb, extra):
        return self.rgb(rgb.mean(dim=(2, 3, 4))) + self.extra(extra)


def test_batches_unpack_as_inputs_then_target():
    rng = np.random.default_rng(0)
    data = [(rng.random((3, 2, 4, 4), dtype=np.float32), rng.random(1, dtype=np.float32), i % 2)
            for i in range(8)]
    history = fit(TwoInputs(), DataLoader(data, batch_size=4), DataLoader(data, batch_size=4),
                  epochs=1, progress=False)          # the default optimizer, SGD
    assert history[0]['val_accuracy'] is not None
    inputs, target = unpack_batch(('a', 'b', 'label'))
    assert inputs == ('a', 'b') and target == 'label'
    for bad in (tl.zeros(3), ('only one',), {'clip': 1, 'label': 0}):
        with pytest.raises(TypeError, match='target'):
            unpack_batch(bad)


def test_progress_bars_print_only_when_asked(capsys):
    tl.manual_seed(0)
    fit(tiny_model(), DataLoader(scene_data(), batch_size=16), epochs=1, progress=False)
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err == ''
    fit(tiny_model(), DataLoader(scene_data(), batch_size=16), epochs=1, progress=True, log_every=1)
    captured = capsys.readouterr()
    assert 'epoch 1/1' in captured.out + captured.err and 'clips/s' in captured.out + captured.err


# ---- evaluation ----------------------------------------------------------------------------------

class FixedScores(nn.Module):
    """Scores read from the clip: logits = clip[:, 0, 0, 0, :C] (so a test chooses them)."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        self.unused = nn.Linear(1, 1)

    def forward(self, clip):
        return clip[:, 0, 0, 0, :self.num_classes]


def clips_with_scores(scores):
    """(..., C) scores -> clips (..., 1, 1, 1, C) that FixedScores turns back into them."""
    return np.ascontiguousarray(np.asarray(scores, np.float32)[..., None, None, None, :])


def test_evaluate_matches_the_metrics_on_known_scores():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((10, 6)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    data = list(zip(clips_with_scores(scores), labels.tolist()))
    result = evaluate(FixedScores(6), DataLoader(data, batch_size=4))
    assert result['top1'] == np.mean(scores.argmax(1) == labels)
    top5 = np.mean([label in np.argsort(-s)[:5] for s, label in zip(scores, labels)])
    assert result['top5'] == top5
    expected_cm = np.zeros((6, 6), np.int64)
    for s, label in zip(scores, labels):
        expected_cm[label, s.argmax()] += 1
    assert np.array_equal(result['confusion_matrix'], expected_cm)
    recalls = [expected_cm[c, c] / expected_cm[c].sum() for c in range(6)]
    assert result['mean_class_accuracy'] == pytest.approx(np.mean(recalls))
    log_probs = scores - np.log(np.exp(scores).sum(1, keepdims=True))
    assert result['loss'] == pytest.approx(-log_probs[np.arange(10), labels].mean(), rel=1e-5)
    assert result['num_samples'] == 10
    three = evaluate(FixedScores(3), DataLoader(list(zip(clips_with_scores(scores[:, :3]),
                                                         (labels % 3).tolist())), batch_size=4))
    assert 'top5' not in three and 'top1' in three                   # 5 > 3 classes


def test_multi_view_batches_average_probabilities_over_views():
    # two videos, three views each; view scores chosen so that averaging probabilities and
    # averaging logits disagree on the first video
    views = np.array([[[3.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
                      [[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]]], np.float32)      # (N, K, C)
    labels = [1, 1]
    data = list(zip(clips_with_scores(views), labels))                         # (K, 1, 1, 1, C)
    batch_clips = DataLoader(data, batch_size=2)
    result = evaluate(FixedScores(2), batch_clips, topk=(1,))
    probs = np.exp(views) / np.exp(views).sum(2, keepdims=True)
    fused = probs.mean(1)                                                       # (N, C)
    assert fused[0].argmax() == 1 and views[0].mean(0).argmax() == 0           # the cases differ
    assert result['top1'] == 1.0
    assert result['loss'] == pytest.approx(-np.log(fused[[0, 1], labels]).mean(), rel=1e-5)


def test_multi_view_inputs_must_agree_on_the_number_of_views():
    class Two(nn.Module):
        def forward(self, a, b):
            return a[:, 0, 0, 0, :2] + b

    data = [(np.zeros((3, 1, 1, 1, 2), np.float32), np.zeros((2, 2), np.float32), 0)]
    with pytest.raises(ValueError, match='3 views'):
        evaluate(Two(), DataLoader(data, batch_size=1))


def test_evaluate_restores_the_training_mode():
    model = tiny_model()
    model.train()
    evaluate(model, DataLoader(scene_data(), batch_size=16))
    assert model.training
    model.eval()
    evaluate(model, DataLoader(scene_data(), batch_size=16))
    assert not model.training


# ---- the temporal diagnostic ---------------------------------------------------------------------

class BrighteningDetector(nn.Module):
    """Class 1 if the last frame is brighter than the first, else class 0: uses time."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)

    def forward(self, clip):
        d = (clip[:, :, -1] - clip[:, :, 0]).mean(dim=(1, 2, 3)).reshape(-1, 1)   # (N, 1)
        return F.cat([-d, d], dim=1)


class MeanBrightness(nn.Module):
    """Class 1 if the clip is bright on average: blind to the order of frames."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(1, 1)

    def forward(self, clip):
        m = clip.mean(dim=(1, 2, 3, 4)).reshape(-1, 1) - 0.5
        return F.cat([-m, m], dim=1)


def ramp_clips(n=16, frames=6):
    """Clips whose brightness ramps up (label 1) or down (label 0) over time, bright or dark."""
    data = []
    for i in range(n):
        ramp = np.linspace(0.1, 0.4, frames) + (0.5 if i % 4 < 2 else 0.0)
        if i % 2 == 0:
            ramp = ramp[::-1]
        clip = np.broadcast_to(ramp[None, :, None, None], (3, frames, 2, 2)).astype(np.float32)
        data.append((np.ascontiguousarray(clip), i % 2))
    return data


def test_temporal_diagnostic_separates_a_model_that_uses_time_from_one_that_does_not():
    loader = DataLoader(ramp_clips(), batch_size=5)
    uses_time = temporal_diagnostic(BrighteningDetector(), loader)
    assert uses_time['accuracy'] == 1.0 and uses_time['reversed_accuracy'] == 0.0
    assert uses_time['shuffled_accuracy'] < 1.0
    assert uses_time['chance'] == 0.5 and uses_time['num_samples'] == 16

    brightness = [(clip, int(i % 4 < 2)) for i, (clip, _) in enumerate(ramp_clips())]
    blind = temporal_diagnostic(MeanBrightness(), DataLoader(brightness, batch_size=5))
    assert blind['accuracy'] == blind['reversed_accuracy'] == blind['shuffled_accuracy'] == 1.0


def test_shuffled_frames_use_a_fixed_non_identity_permutation_per_clip():
    loader = DataLoader(ramp_clips(), batch_size=3)
    first = temporal_diagnostic(BrighteningDetector(), loader, seed=7)
    again = temporal_diagnostic(BrighteningDetector(), loader, seed=7)
    assert first == again
    for clip_index in range(50):
        order = _frame_permutation(7, clip_index, 2)
        assert list(order) == [1, 0]                    # the only non-identity order of 2 frames
    assert sorted(_frame_permutation(0, 3, 8)) == list(range(8))


@pytest.mark.parametrize('name', ['single_frame', 'late_fusion', 'early_fusion', 'cnn_lstm_mean',
                                  'timesformer_joint'])
def test_the_same_loop_trains_every_kind_of_model(name):
    from tensorlite.models import build_model
    data = SyntheticActions('order', 4, seed=0)
    tl.manual_seed(0)
    model = build_model(name, num_classes=data.num_classes)
    before = weights(model)
    history = fit(model, DataLoader(data, batch_size=2), epochs=1, progress=False)
    assert math.isfinite(history[0]['train_loss'])
    assert any(not np.array_equal(before[k], v) for k, v in weights(model).items())


class Recorded:
    """A dataset that notes every index it is asked for."""

    def __init__(self, dataset):
        self.dataset, self.visited = dataset, []

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        self.visited.append(index)
        return self.dataset[index]


def test_fit_sets_the_epoch_of_a_distributed_sampler_through_the_loader(tmp_path):
    def visits(epochs, resume=False):
        data = Recorded(scene_data())
        sampler = DistributedSampler(data, num_replicas=2, rank=1, seed=5)
        tl.manual_seed(0)
        fit(tiny_model(), DataLoader(data, batch_size=8, sampler=sampler, seed=3), epochs=epochs,
            checkpoint_dir=tmp_path, resume=resume, progress=False)
        return [data.visited[k:k + 16] for k in range(0, len(data.visited), 16)], sampler

    def expected(epoch):
        sampler = DistributedSampler(scene_data(), num_replicas=2, rank=1, seed=5)
        sampler.set_epoch(epoch)
        return list(sampler)

    first, sampler = visits(1)                                 # epoch 1 of 3, then "interrupted"
    assert first == [expected(0)] and sampler.epoch == 0
    resumed, sampler = visits(3, resume=True)                  # epochs 2 and 3 (indices 1, 2)
    assert resumed == [expected(1), expected(2)] and sampler.epoch == 2
    assert expected(1) != expected(2)


# ---- non-finite training -------------------------------------------------------------------------

def bn_model(num_classes=6):
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, num_classes))


class PoisonedLoader:
    """scene batches of 8 clips; in epoch `epoch`, batch `batch` has one NaN pixel."""

    def __init__(self, epoch, batch):
        self.clips, self.labels = scene_data().batch(np.arange(32))
        self.poison, self.epoch = (epoch, batch), 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __iter__(self):
        for b in range(4):
            clips = self.clips[8 * b:8 * b + 8].copy()
            if (self.epoch, b) == self.poison:
                clips[3, 1, 2, 5, 7] = np.nan
            yield tl.tensor(clips), tl.tensor(self.labels[8 * b:8 * b + 8])


def test_a_nan_pixel_stops_training_before_the_checkpoint(tmp_path):
    tl.manual_seed(0)
    model = bn_model()
    with pytest.raises(FloatingPointError) as info:
        fit(model, PoisonedLoader(1, 2), optimizer=optim.SGD(model.parameters(), lr=0.1),
            epochs=3, checkpoint_dir=tmp_path, progress=False)
    message = str(info.value)
    assert 'epoch 2, batch 3:' in message
    assert 'input 0 of the batch is not finite: 1 of its 24576 values' in message
    assert 'last.npz holds the last finite epoch' in message
    saved = tl.train.load_checkpoint(tmp_path / 'last.npz')
    assert saved['epoch'] == 1                               # epochs finished
    for name, array in saved['model'].items():
        assert np.isfinite(array).all(), name
    # the poisoned forward left no NaN in the running statistics of the model in memory
    for name, buffer in model.named_buffers():
        assert np.isfinite(buffer.numpy()).all(), name


def test_skip_counts_the_batch_and_takes_no_step_with_it():
    """nonfinite='skip': the poisoned batch is skipped (its BatchNorm statistics too), so the
    run equals one over a loader that never had that batch."""
    class Without(PoisonedLoader):
        def __iter__(self):
            for k, batch in enumerate(super().__iter__()):
                if (self.epoch, k) != self.poison:
                    yield batch

    results = []
    for loader, mode in ((PoisonedLoader(0, 1), 'skip'), (Without(0, 1), 'raise')):
        tl.manual_seed(0)
        model = bn_model()
        history = fit(model, loader, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2,
                      progress=False, nonfinite=mode)
        results.append((weights(model), history))
    (skipped, skipped_history), (clean, clean_history) = results
    assert_same_weights(skipped, clean)
    assert [h['nonfinite_batches'] for h in skipped_history] == [1, 0]
    assert [h['nonfinite_batches'] for h in clean_history] == [0, 0]
    assert skipped_history[0]['train_loss'] == clean_history[0]['train_loss']


def test_a_diverging_learning_rate_names_the_parameter_and_saves_nothing(tmp_path):
    tl.manual_seed(0)
    model = tiny_model()
    train = DataLoader(scene_data(), batch_size=8, shuffle=True, seed=3)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d+: the "
                                                 r"loss is nan: .*largest parameter value is "
                                                 r".*learning rate"):
        fit(model, train, optimizer=optim.SGD(model.parameters(), lr=1e30), epochs=2,
            checkpoint_dir=tmp_path, progress=False)
    assert not (tmp_path / 'last.npz').exists()
    # skipping: epoch 1 saves its (finite, huge) weights; epoch 2 skips every batch and stops
    tl.manual_seed(0)
    model = tiny_model()
    with pytest.raises(FloatingPointError, match=r"every one of the 4 batches of epoch 2"
                                                 r" had a non-finite loss or gradient.*last.npz "
                                                 r"holds the last finite epoch"):
        fit(model, train, optimizer=optim.SGD(model.parameters(), lr=1e30), epochs=3,
            checkpoint_dir=tmp_path, progress=False, nonfinite='skip')
    saved = tl.train.load_checkpoint(tmp_path / 'last.npz')
    assert saved['epoch'] == 1 and saved['extra']['history'][0]['nonfinite_batches'] >= 1
    assert all(np.isfinite(array).all() for array in saved['model'].values())


def test_an_epoch_never_saves_non_finite_parameters(tmp_path):
    class Poison(nn.Module):                   # a finite loss, then a parameter set to NaN
        def __init__(self):
            super().__init__()
            self.net = tiny_model()

        def forward(self, x):
            out = self.net(x)
            self.net[5].bias.data[0] = np.nan
            return out

    tl.manual_seed(0)
    model = Poison()
    with pytest.raises(FloatingPointError, match=r"after epoch 1 parameter "
                                                 r"'net.5.bias' is not finite.*not saved"):
        fit(model, DataLoader(scene_data(), batch_size=32), optimizer=optim.SGD(
            model.parameters(), lr=0.1), epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert not (tmp_path / 'last.npz').exists()


def test_a_non_finite_gradient_is_caught_before_the_step():
    class Overflow(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(tl.tensor(np.ones(1, np.float32)))
            self.net = tiny_model()

        def forward(self, x):
            # sqrt at 0: a finite loss whose gradient for `scale` is inf
            return self.net(x) + (self.scale - 1.0).abs().sqrt().sum()

    tl.manual_seed(0)
    model = Overflow()
    before = weights(model)
    with pytest.raises(FloatingPointError, match="batch 1: .*the gradient of parameter 'scale' is "
                                                 "not finite"):
        fit(model, DataLoader(scene_data(), batch_size=8), optimizer=optim.SGD(
            model.parameters(), lr=0.1), epochs=1, progress=False)
    assert_same_weights(before, weights(model))
    with pytest.raises(ValueError, match=r"nonfinite must be one of \('raise', 'skip'\), got 'warn'"):
        fit(model, DataLoader(scene_data(), batch_size=8), epochs=1, progress=False,
            nonfinite='warn')


# ---- kill -9 at random moments ------------------------------------------------------------------

_KILLABLE_RUN = '''
import sys, time
import numpy as np
import tensorlite as tl
import tensorlite.nn as nn
import tensorlite.optim as optim
from tensorlite.data import DataLoader, DistributedSampler, SyntheticActions
from tensorlite.train.loop import fit
out, epochs = sys.argv[1], int(sys.argv[2])
tl.manual_seed(0)
model = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                      nn.Flatten(), nn.Dropout(0.25), nn.Linear(8, 6))
optimizer = optim.AdamW(model.parameters(), lr=0.01)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
data = SyntheticActions('scene', 32, num_frames=4, size=16, seed=0)
print('fit', flush=True)
started = time.perf_counter()
fit(model, DataLoader(data, batch_size=8, shuffle=True, seed=3), optimizer=optimizer,
    scheduler=scheduler, epochs=epochs, checkpoint_dir=out, resume=True, progress=False, seed=1)
print('seconds', time.perf_counter() - started, flush=True)
np.savez(out + '/final.npz', **{k: v.numpy() for k, v in model.state_dict().items()})
'''


def test_kill_9_at_random_moments_then_resume_is_bit_exact(tmp_path):
    """A run killed with SIGKILL at random moments (before the first epoch ends, inside epochs,
    while a checkpoint is written), resumed each time, ends with exactly the weights of an unkilled
    run, and every checkpoint left behind loads. Kill k waits until the run has finished 0 or 1 more
    epochs (drawn at random) and then a random part of an epoch's time. TENSORLITE_KILLS sets how
    many kills (default 4)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from tensorlite.train import load_checkpoint
    script = tmp_path / 'run.py'
    script.write_text(_KILLABLE_RUN)
    kills = int(os.environ.get('TENSORLITE_KILLS', '4'))
    epochs = kills + 4

    def start(folder):
        return subprocess.Popen([sys.executable, str(script), str(folder), str(epochs)],
                                stdout=subprocess.PIPE, text=True)

    def epochs_done(folder):
        history = folder / 'history.csv'
        return max(len(history.read_text().splitlines()) - 1, 0) if history.exists() else 0

    straight = start(tmp_path / 'straight')
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0
    epoch_seconds = float(out.split('seconds')[1]) / epochs
    reference = dict(np.load(tmp_path / 'straight' / 'final.npz'))

    rng = np.random.default_rng(int(os.environ.get('TENSORLITE_KILL_SEED', '0')))
    folder = tmp_path / 'killed'
    saved = []                               # the epoch of last.npz after each kill
    for _ in range(kills):
        child = start(folder)
        try:
            assert child.stdout.readline() == 'fit\n'
            target = epochs_done(folder) + int(rng.integers(0, 2))
            deadline = time.monotonic() + 120
            while epochs_done(folder) < target and child.poll() is None:
                assert time.monotonic() < deadline, 'the run made no progress'
                time.sleep(0.002)
            time.sleep(rng.uniform(0, epoch_seconds))
            assert child.poll() is None, 'the run ended before it was killed'
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        last = folder / 'last.npz'
        saved.append(load_checkpoint(last)['epoch'] if last.exists() else None)
    finish = start(folder)
    finish.communicate(timeout=600)
    assert finish.returncode == 0
    resumed = dict(np.load(folder / 'final.npz'))
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert np.array_equal(reference[key], resumed[key]), (key, saved)
    print(f"{kills} kills survived; the epoch of last.npz after each: {saved}")


# ---- best.npz, epoch numbering, progress='epochs' -------------------------------------------------

def test_best_checkpoint_is_the_epoch_of_the_best_validation_accuracy(tmp_path):
    from tensorlite.train import load_checkpoint
    _, history = run(4, checkpoint_dir=tmp_path)
    best_epoch = max(history, key=lambda row: row['val_accuracy'])['epoch']   # first of ties
    best = load_checkpoint(tmp_path / 'best.npz')
    last = load_checkpoint(tmp_path / 'last.npz')
    assert [row['epoch'] for row in history] == [1, 2, 3, 4] and last['epoch'] == 4
    assert best['epoch'] == best_epoch
    assert best['extra']['history'][-1]['val_accuracy'] == max(r['val_accuracy'] for r in history)
    # without a validation loader there is no best
    other = tmp_path / 'no_val'
    tl.manual_seed(0)
    fit(tiny_model(), DataLoader(scene_data(), batch_size=8, seed=3), epochs=1,
        checkpoint_dir=other, progress=False)
    assert (other / 'last.npz').exists() and not (other / 'best.npz').exists()


def test_a_resumed_run_keeps_the_best_of_the_epochs_before_it(tmp_path):
    from tensorlite.train import load_checkpoint
    _, history = run(2, checkpoint_dir=tmp_path)
    before = load_checkpoint(tmp_path / 'best.npz')['epoch']
    _, history = run(3, checkpoint_dir=tmp_path, resume=True)
    best = max(history, key=lambda row: row['val_accuracy'])
    assert load_checkpoint(tmp_path / 'best.npz')['epoch'] == (
        best['epoch'] if best['val_accuracy'] > max(r['val_accuracy'] for r in history[:2])
        else before)


def test_a_checkpoint_that_counted_epochs_from_0_resumes_at_the_right_epoch(tmp_path):
    """Checkpoints written before epochs were counted from 1 hold the last epoch's index."""
    from tensorlite.train import load_checkpoint, save_checkpoint
    straight, _ = run(3, fit_seed=1)
    run(1, checkpoint_dir=tmp_path, fit_seed=1)
    info = load_checkpoint(tmp_path / 'last.npz')
    config = {k: v for k, v in info['config'].items() if k != 'epochs_finished'}
    history = [dict(row, epoch=row['epoch'] - 1) for row in info['extra']['history']]
    tl.manual_seed(0)
    model = tiny_model()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    load_checkpoint(tmp_path / 'last.npz', model, optimizer, scheduler)
    save_checkpoint(tmp_path / 'last.npz', model, optimizer, scheduler, epoch=0,
                    rng_state=info['rng_state'], config=config, extra={'history': history})
    resumed, resumed_history = run(3, checkpoint_dir=tmp_path, resume=True, fit_seed=1)
    assert [row['epoch'] for row in resumed_history] == [1, 2, 3]
    assert_same_weights(weights(straight), weights(resumed))


def test_progress_epochs_prints_one_line_per_epoch_and_no_bar(capsys):
    tl.manual_seed(0)
    fit(tiny_model(), DataLoader(scene_data(), batch_size=8, seed=3), epochs=2, progress='epochs')
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    assert [line.split()[:2] for line in lines] == [['epoch', '1/2'], ['epoch', '2/2']]
    assert 'batch/s' not in captured.err and '%|' not in captured.err
    with pytest.raises(ValueError, match="progress must be True, False or 'epochs'"):
        fit(tiny_model(), DataLoader(scene_data(), batch_size=8), epochs=1, progress='bars')

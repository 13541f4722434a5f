"""Temporal action localization with SnippetLocalizer: shapes, per-frame targets, segments from
hand-set scores, and a short training run on the synthetic 'localization' videos."""
import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
from tensorlite.data.synthetic import SyntheticActions
from tensorlite.models import list_models
from tensorlite.models.localization import SnippetLocalizer, frame_targets, localize
from tensorlite.optim import Adam
from tensorlite.train.localization import mean_average_precision


@pytest.fixture(autouse=True)
def _seed():
    tl.manual_seed(0)                      # the models' initial weights


@pytest.mark.parametrize('shape', [(2, 3, 12, 16, 16), (1, 3, 7, 20, 12)])
@pytest.mark.parametrize('num_classes', [1, 6])
def test_scores_are_per_frame_with_a_background_channel(shape, num_classes):
    model = SnippetLocalizer(num_classes, width=4, hidden=8)
    x = tl.tensor(np.random.default_rng(0).random(shape, dtype=np.float32))
    scores = model(x)
    assert scores.shape == (shape[0], num_classes + 1, shape[2])
    assert scores.dtype == np.float32


def test_gradients_reach_every_parameter():
    model = SnippetLocalizer(3, width=4, hidden=8)
    x = tl.tensor(np.random.default_rng(1).random((2, 3, 10, 16, 16), dtype=np.float32))
    target = tl.tensor(np.random.default_rng(2).integers(0, 4, (2, 10)))
    F.cross_entropy(model(x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad.data).sum() > 0, name


@pytest.mark.parametrize('time_stride', [1, 2, 4])
def test_frames_of_one_snippet_share_their_scores(time_stride):
    # T = 10 is not a multiple of 4: the last snippet is shorter and the output is still 10 frames
    model = SnippetLocalizer(2, width=4, hidden=8, time_stride=time_stride)
    model.eval()
    x = tl.tensor(np.random.default_rng(3).random((1, 3, 10, 16, 16), dtype=np.float32))
    scores = model(x).data[0]                                        # (3, 10)
    assert scores.shape == (3, 10)
    for start in range(0, 10, time_stride):
        block = scores[:, start:start + time_stride]
        np.testing.assert_array_equal(block, np.repeat(block[:, :1], block.shape[1], axis=1))
    # different snippets differ (the input is random)
    if time_stride < 10:
        assert np.abs(scores[:, 0] - scores[:, time_stride]).max() > 1e-6


@pytest.mark.parametrize('kwargs, match', [
    (dict(blocks=1), r'blocks must be an int >= 2, got 1'),
    (dict(time_stride=3), r'time_stride must be 1, 2, 4 or 8.*got 3'),
    (dict(blocks=3, time_stride=4), r'at most 2 \*\* \(blocks - 2\) = 2, got 4'),
    (dict(kernel_size=2), r'kernel_size must be odd'),
    (dict(num_classes=0), r'num_classes must be a positive int'),
])
def test_bad_arguments_are_named(kwargs, match):
    kwargs = dict(dict(num_classes=3), **kwargs)
    with pytest.raises(ValueError, match=match):
        SnippetLocalizer(**kwargs)


def test_wrong_input_shape_is_named():
    model = SnippetLocalizer(6)
    with pytest.raises(ValueError, match=r'snippet_localizer.*\(2, 3, 10, 16\)'):
        model(tl.tensor(np.zeros((2, 3, 10, 16), np.float32)))
    with pytest.raises(ValueError, match='3 channels'):
        model(tl.tensor(np.zeros((1, 1, 10, 16, 16), np.float32)))


def test_not_registered_as_a_clip_classifier():
    # the registry promises (N, num_classes) clip logits; this model gives per-frame scores
    assert 'snippet_localizer' not in list_models()


def test_frame_targets_by_hand():
    annotations = np.array([[1, 3, 0], [5, 8, 4]], dtype=np.int64)
    expected = np.array([0, 1, 1, 0, 0, 5, 5, 5, 0, 0])
    targets = frame_targets(annotations, 10)
    assert targets.dtype == np.int64
    np.testing.assert_array_equal(targets, expected)
    np.testing.assert_array_equal(frame_targets(np.zeros((0, 3), np.int64), 4), np.zeros(4))
    np.testing.assert_array_equal(frame_targets([[0, 4, 2]], 4), [3, 3, 3, 3])   # the whole clip


@pytest.mark.parametrize('annotations, match', [
    ([[2, 12, 0]], r'outside the 10 frames'),
    ([[5, 3, 0]], r'outside the 10 frames'),
    ([[1, 3, -1]], r'labels must be >= 0'),
    ([1, 3, 0], r'expected \(K, 3\).*\(3,\)'),
])
def test_frame_targets_rejects_bad_annotations(annotations, match):
    with pytest.raises(ValueError, match=match):
        frame_targets(annotations, 10)


class FixedScores(nn.Module):
    """A 'model' whose per-frame logits are set by hand; records its mode and grad state."""

    def __init__(self, logits):
        super().__init__()
        self.logits = np.asarray(logits, dtype=np.float32)      # (C + 1, T)
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, tl.is_grad_enabled(), tuple(x.shape)))
        return tl.tensor(self.logits[None])


def test_localize_groups_runs_and_maps_labels_back():
    # 10 frames, 2 actions (channels 1 and 2).  Background logit 0 everywhere.
    #   frames 2..4: channel 1 logit log 8, others 0 -> p = 8 / 10 = 0.8
    #   frames 6..8: channel 2 logit log 3           -> p = 3 / 5 = 0.6
    #   frame 9:     channel 2 logit log(4/3)        -> p = (4/3) / (10/3) = 0.4, below 0.5
    logits = np.zeros((3, 10))
    logits[1, 2:5] = math.log(8)
    logits[2, 6:9] = math.log(3)
    logits[2, 9] = math.log(4 / 3)
    model = FixedScores(logits)
    model.train()
    segments = localize(model, np.zeros((3, 10, 16, 16), np.float32), threshold=0.5, nms_iou=0.5)
    assert [s[:3] for s in segments] == [(2, 5, 0), (6, 9, 1)]          # highest score first
    np.testing.assert_allclose([s[3] for s in segments], [0.8, 0.6], rtol=1e-5)
    assert model.calls == [(False, False, (1, 3, 10, 16, 16))]          # eval, no graph, N = 1
    assert model.training                                               # mode restored
    # a lower threshold (above the 1/3 of the uniform frames) takes frame 9 into the second run:
    # mean of 0.6, 0.6, 0.6, 0.4
    segments = localize(model, np.zeros((1, 3, 10, 16, 16), np.float32), threshold=0.35)
    assert [s[:3] for s in segments] == [(2, 5, 0), (6, 10, 1)]
    np.testing.assert_allclose(segments[1][3], 0.55, rtol=1e-5)
    # min_length drops short runs
    assert localize(model, np.zeros((3, 10, 16, 16), np.float32), min_length=4) == []


def test_localize_rejects_a_batch():
    with pytest.raises(ValueError, match=r'one clip.*\(2, 3, 10, 16, 16\)'):
        localize(FixedScores(np.zeros((3, 10))), np.zeros((2, 3, 10, 16, 16), np.float32))


def test_short_training_run_lowers_the_per_frame_loss_and_mAP_runs():
    # the family's minimum length (104 frames, three 32-frame instances and gaps) at 16 x 16
    data = SyntheticActions('localization', 16, num_frames=104, size=16)
    clips, annotations = data.batch(range(len(data)))
    T = clips.shape[2]
    targets = np.stack([frame_targets(a, T) for a in annotations])    # (16, T)
    model = SnippetLocalizer(data.num_classes, width=8, hidden=32)
    optimizer = Adam(model.parameters(), lr=3e-3)

    def loss_on_all_clips():
        with tl.no_grad():
            return F.cross_entropy(model(tl.tensor(clips)), tl.tensor(targets)).item()

    before = loss_on_all_clips()
    for step in range(40):
        batch = np.arange(4 * step, 4 * step + 4) % len(data)
        loss = F.cross_entropy(model(tl.tensor(clips[batch])), tl.tensor(targets[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_on_all_clips()
    # about 2.1 -> 0.63 (seed 0), below the label prior's entropy (about 1.37 here): 40 steps
    # learn where the actions are, if not yet which; the test asks only that the loop lowers the
    # per-frame loss clearly
    assert after < 0.85 * before, (before, after)

    predictions = [(i, s, e, label, score) for i in range(len(data))
                   for s, e, label, score in localize(model, clips[i], threshold=0.2)]
    ground_truth = [(i, int(s), int(e), int(label)) for i, a in enumerate(annotations)
                    for s, e, label in a]
    result = mean_average_precision(predictions, ground_truth)
    assert set(result['mAP']) == {0.3, 0.5, 0.7}
    assert all(0.0 <= v <= 1.0 for v in result['mAP'].values())

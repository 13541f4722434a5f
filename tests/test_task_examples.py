"""The task examples (examples/localize.py, examples/caption.py) run end to end with --quick and
write their metrics: the right keys, finite values in [0, 1]."""
import importlib.util
import json
import math
import os

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples')


def load_example(name):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f'example_{name}',
                                                  os.path.join(EXAMPLES, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_scores(values, keys):
    assert set(keys) <= set(values), (sorted(values), keys)
    for key in keys:
        value = values[key]
        assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0, \
            (key, value)


def test_localize_quick_writes_map_metrics(tmp_path):
    path = tmp_path / 'out' / 'localize.json'
    report = load_example('localize').main(['--quick', '--json', str(path)])
    metrics = json.loads(path.read_text())
    keys = ['mAP@0.3', 'mAP@0.5', 'mAP@0.7', 'mAP_mean']
    assert_scores(metrics, keys + [f'class_agnostic_mAP@{t}' for t in (0.3, 0.5, 0.7)])
    assert metrics['mAP_mean'] == pytest.approx(
        (metrics['mAP@0.3'] + metrics['mAP@0.5'] + metrics['mAP@0.7']) / 3)
    assert metrics['steps'] == 4 and math.isfinite(metrics['final_loss'])
    assert {k: report[k] for k in keys} == {k: metrics[k] for k in keys}


def test_caption_quick_writes_bleu_metrics(tmp_path):
    path = tmp_path / 'caption.json'
    report = load_example('caption').main(['--quick', '--examples', '1', '--json', str(path)])
    metrics = json.loads(path.read_text())
    keys = ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4']
    for search in ('greedy', 'beam'):
        assert_scores(metrics[search], keys)
        assert metrics[search] == report[search]
    assert_scores(metrics, ['exact_greedy', 'exact_beam'])
    assert metrics['steps'] == 4 and math.isfinite(metrics['final_loss'])


def test_detect_groups_by_actionness_and_labels_after():
    # 10 frames, 2 classes.  Frames 2..5: p(background) 0.2, class 0 0.5, class 1 0.3, so the
    # actionness is 0.8 and p(class | action) = 0.625 and 0.375; neither class alone passes 0.5.
    # Frame 8 alone is an action too, but shorter than min_length.
    probs = np.zeros((10, 3))
    probs[:, 0] = 1.0
    probs[2:6] = [0.2, 0.5, 0.3]
    probs[8] = [0.1, 0.9, 0.0]
    detect = load_example('localize').detect
    segments = detect(probs, thresholds=(0.5,), top_labels=2, min_length=2)
    assert [s[:3] for s in segments] == [(2, 6, 0), (2, 6, 1)]
    np.testing.assert_allclose([s[3] for s in segments], [0.8 * 0.625, 0.8 * 0.375])
    assert [s[:3] for s in detect(probs, thresholds=(0.5,), top_labels=1, min_length=1)] == \
        [(8, 9, 0), (2, 6, 0)]
    # two thresholds propose the same run twice: NMS keeps one per class
    assert len(detect(probs, thresholds=(0.3, 0.5), top_labels=1, min_length=2)) == 1


def test_training_windows_hold_an_action_frame_when_asked():
    training_windows = load_example('localize').training_windows
    targets = np.zeros((3, 50), np.int64)
    targets[0, 40:44] = 2                      # one short action near the end
    targets[1, 0:3] = 1                        # one at the start
    rng = np.random.default_rng(0)             # video 2 has no action: a window anywhere
    for _ in range(20):
        windows = training_windows(targets, 12, rng, action_share=1.0)
        assert windows.shape == (3, 12)
        assert windows.min() >= 0 and windows.max() < 50
        np.testing.assert_array_equal(np.diff(windows, axis=1), 1)      # contiguous frames
        assert (targets[0, windows[0]] > 0).any() and (targets[1, windows[1]] > 0).any()
    # action_share=0: uniform placement, so the short action is often missed
    starts = [training_windows(targets, 12, rng, action_share=0.0)[0, 0] for _ in range(50)]
    assert not all((targets[0, s:s + 12] > 0).any() for s in starts)
    # a window as long as the video is the video
    np.testing.assert_array_equal(training_windows(targets, 50, rng), np.tile(np.arange(50), (3, 1)))


@pytest.mark.parametrize('name, argv, message', [
    ('localize', ['--steps', '0'], '--steps must be >= 1'),
    ('localize', ['--crop', '200'], r'--crop \(200\) must not exceed --frames \(192\)'),
    ('caption', ['--beam-size', '0'], '--beam-size must be >= 1'),
])
def test_bad_options_are_named(name, argv, message):
    with pytest.raises(SystemExit, match=message):
        load_example(name).parse_args(argv)

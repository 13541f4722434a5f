"""tensorlite.experiments (`tensorlite compare --experiment`): the 'event' family its 'sampling'
experiment stands on, each experiment at its quick size (the documented keys, claims computed from
the records), the conclusions on made-up records that go either way, the table, the plot, the
command line, and the clip loader."""
import json

import numpy as np
import pytest

from tensorlite import experiments as E
from tensorlite.data.samplers import MultiClip, RandomTemporalCrop, UniformStride
from tensorlite.data.synthetic import (DEFAULT_FRAMES, DIRECTIONS, EVENT_FRAMES, FAMILIES,
                                       MIN_FRAMES, SyntheticActions, _event_chunk, _render)


# ---- the event family ---------------------------------------------------------------------------

def test_event_is_appended_with_its_frames_and_classes():
    assert FAMILIES[-1] == 'event' and FAMILIES.index('occluded') == FAMILIES.index('event') - 1
    assert DEFAULT_FRAMES['event'] == 64 and MIN_FRAMES['event'] == EVENT_FRAMES[1]
    ds = SyntheticActions('event', 8)
    assert ds.num_frames == 64 and ds.classes == tuple(n for n, _, _ in DIRECTIONS)
    assert ds.num_classes == 4 and ds.chance == 0.25
    with pytest.raises(ValueError, match=r"'event' needs num_frames >= 12, got 11"):
        SyntheticActions('event', 8, num_frames=11)


def test_event_labels_are_balanced_and_clips_a_function_of_seed_and_index():
    ds = SyntheticActions('event', 40, num_frames=24)
    clips, labels = ds.batch(np.arange(40))
    np.testing.assert_array_equal(labels, np.arange(40) % 4)
    np.testing.assert_array_equal(ds[13][0], clips[13])                 # alone or in a batch
    np.testing.assert_array_equal(ds.batch([31, 13, 2])[0][1], clips[13])
    np.testing.assert_array_equal(SyntheticActions('event', 40, num_frames=24)[13][0], clips[13])
    assert not np.array_equal(SyntheticActions('event', 40, num_frames=24, seed=1)[13][0],
                              clips[13])


def saturated_frames(clip):
    """(3, T, H, W) -> (T,) bool: the frames in which the event's square shows (it is the only
    saturated thing: background and disc are grey, the background's tint at most 0.03)."""
    saturation = clip.max(axis=0) - clip.min(axis=0)
    return (saturation > 0.3).sum(axis=(1, 2)) >= 4


def test_the_event_shows_only_in_one_short_window_and_the_rest_is_the_render_without_it():
    idx = np.arange(48)
    ds = SyntheticActions('event', 48, return_flow=True)
    clips, labels, flows = ds.render(idx)
    background, layers, _ = _event_chunk(idx, 64, 32, 0)
    assert len(layers) == 2                                     # the wandering disc, the actor
    without = np.empty_like(clips)
    _render(without, background, layers[:1])                    # the same video, no event
    starts = []
    for clip, bare, label, flow, actor in zip(clips, without, labels, flows,
                                              layers[1].opacity):
        window = np.flatnonzero(actor)                          # the frames the actor is in
        assert EVENT_FRAMES[0] <= len(window) <= EVENT_FRAMES[1]
        assert np.array_equal(window, np.arange(window[0], window[-1] + 1))   # one window
        starts.append(window[0])
        outside = np.ones(64, bool)
        outside[window] = False
        np.testing.assert_array_equal(clip[:, outside], bare[:, outside])
        assert not np.array_equal(clip[:, window], bare[:, window])
        # the pixels agree: the saturated frames are the window (the square may wrap but is
        # always 6 to 8 pixels wide, so it shows in every frame of it)
        np.testing.assert_array_equal(saturated_frames(clip), ~outside)
        # the square moves in the labelled direction: the flow on its pixels
        solid = (clip.max(axis=0) - clip.min(axis=0)) > 0.55
        step = np.array([flow[t][solid[t]].mean(axis=0) for t in window[:-1]])
        dx, dy = DIRECTIONS[label][1:]
        assert np.all(np.sign(step[:, 0]) == dx) and np.all(np.sign(step[:, 1]) == dy)
    assert len(set(starts)) > 20 and min(starts) < 12 and max(starts) > 40  # spread over 64 frames


# ---- the clip loader ----------------------------------------------------------------------------

def test_video_clip_loader_crops_views_and_repeats_per_epoch():
    videos = np.arange(6 * 3 * 20 * 2 * 2, dtype=np.int64).reshape(6, 3, 20, 2, 2) % 251
    videos = videos.astype(np.uint8)
    labels = np.arange(6) % 2
    loader = E.VideoClipLoader(videos, labels, RandomTemporalCrop(4), 4, shuffle=True, seed=3)
    assert len(loader) == 2
    first = [(c.numpy(), y.numpy()) for c, y in loader]
    again = [(c.numpy(), y.numpy()) for c, y in loader]
    for (a, ya), (b, yb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ya, yb)
    assert first[0][0].shape == (4, 3, 4, 2, 2) and first[0][0].dtype == np.float32
    loader.set_epoch(1)
    other = [c.numpy() for c, _ in loader]
    assert not all(np.array_equal(a, b) for (a, _), b in zip(first, other))
    # every clip is 4 consecutive frames of its video, / 255
    order = np.random.default_rng([3, 1]).permutation(6)
    for row, video in zip(np.concatenate(other), order):
        frames = videos[video].astype(np.float32) / 255
        assert any(np.array_equal(row, frames[:, s:s + 4]) for s in range(17))
    views = E.VideoClipLoader(videos, labels, MultiClip(3, 4), 6)
    clips, _ = next(iter(views))
    assert clips.shape == (6, 3, 3, 4, 2, 2)                         # (N, K, C, t, H, W)
    np.testing.assert_array_equal(clips.numpy()[2, 2], videos[2][:, 16:20] / np.float32(255))
    with pytest.raises(ValueError, match=r"uint8 \(N, 3, T, H, W\), got float32"):
        E.VideoClipLoader(videos.astype(np.float32), labels, UniformStride(4), 2)
    with pytest.raises(ValueError, match="6 videos but 5 labels"):
        E.VideoClipLoader(videos, labels[:5], UniformStride(4), 2)


# ---- the experiments at their quick size --------------------------------------------------------

@pytest.fixture(scope='module')
def quick_results():
    return {name: E.run_experiment(name, quick=True, progress=False) for name in E.EXPERIMENTS}


@pytest.mark.parametrize('name', E.EXPERIMENTS)
def test_quick_run_has_the_documented_keys(quick_results, name):
    result = quick_results[name]
    assert set(result) == set(E.RESULT_KEYS) and result['experiment'] == name
    assert result['quick'] is True and result['seconds'] > 0
    json.dumps(result)                                                   # JSON-able as it is
    for r in result['records']:
        assert set(E.RECORD_KEYS[name]) <= set(r), set(E.RECORD_KEYS[name]) - set(r)
        assert r['experiment'] == name and r['train_seconds'] > 0 and r['params'] > 0
        assert r['steps'] == r['epochs'] * -(-r['train_clips'] // r['recipe']['batch_size'])
        assert 0 < r['train_ms_per_clip'] < 1e3 * r['train_seconds']
        for key in r:
            if key.endswith('accuracy'):
                assert 0.0 <= r[key] <= 1.0
    for claim, passed in result['claims']:
        assert isinstance(claim, str) and isinstance(passed, bool)
    assert result['findings'] and all(isinstance(f, str) for f in result['findings'])


def test_quick_sampling_cells(quick_results):
    records = quick_results['sampling']['records']
    assert [r['train_sampler'] for r in records] == ['random_crop', 'uniform_stride']
    crop, uniform = records
    assert (crop['stride'], uniform['stride']) == (1, 64 // 16)
    assert crop['views'] == 5 and crop['video_frames'] == 64 and crop['chance'] == 0.25
    assert uniform['event_in_centre'] == 1.0        # 16 frames at stride 4 span the whole video
    assert 0.0 < crop['event_in_centre'] < 1.0
    claims = quick_results['sampling']['claims']
    assert len(claims) == 1 and claims[0][1] == (
        crop['multi_clip_accuracy'] >= crop['centre_accuracy'] + E.SAMPLING_GAIN)


def test_quick_frames_cells(quick_results):
    records = quick_results['frames']['records']
    assert [(r['model'], r['frames']) for r in records] == [
        (m, t) for m in E.FRAMES_MODELS for t in E.FRAME_COUNTS]
    for model in E.FRAMES_MODELS:
        rows = [r for r in records if r['model'] == model]
        memory = [r['activation_bytes'] for r in rows]
        assert memory[0] < memory[1] < memory[2]                # summary's bytes, exactly
        assert [r['stride'] for r in rows] == [4, 2, 1] and rows[0]['video_frames'] == 16
        assert rows[0]['macs'] < rows[2]['macs']
    claims = dict(quick_results['frames']['claims'])
    assert claims['c3d: activation memory per clip grows with frames (4/8/16)'] is True
    assert len(claims) == 4


def test_quick_data_cells(quick_results):
    records = quick_results['data']['records']
    assert [(r['model'], r['train_clips']) for r in records] == [
        (m, n) for m in E.DATA_MODELS for n in E.QUICK_DATA_SIZES]
    for model in E.DATA_MODELS:
        steps = {r['steps'] for r in records if r['model'] == model}
        assert len(steps) == 1                                   # the same compute at every size
    assert [c for c, _ in quick_results['data']['claims']] == [
        'c3d >= 90 % on order with 64 clips', 'timesformer >= 90 % on order with 64 clips']


# ---- claims and findings on made-up records ------------------------------------------------------

def sampling_records(centre, multi, uniform):
    base = dict(experiment='sampling', model='c3d', family='event', chance=0.25, views=5,
                video_frames=64)
    return [dict(base, train_sampler='random_crop', stride=1, centre_accuracy=centre,
                 multi_clip_accuracy=multi, event_in_centre=0.4),
            dict(base, train_sampler='uniform_stride', stride=4, centre_accuracy=uniform,
                 multi_clip_accuracy=uniform, event_in_centre=1.0)]


def test_sampling_claim_needs_ten_points():
    claims, findings = E._sampling_conclusions(sampling_records(0.55, 0.70, 0.9))
    assert claims == [['c3d on random 16-frame crops: 5 clips averaged >= centre clip + 10 points',
                       True]]
    assert '+15.0 points' in findings[0] and '40%' in findings[0]
    assert 'beat' in findings[1]
    claims, findings = E._sampling_conclusions(sampling_records(0.55, 0.64, 0.5))
    assert claims[0][1] is False and 'fell' in findings[1]


def frames_records(accuracies, ms, memory, model='c3d'):
    return [dict(experiment='frames', model=model, frames=t, stride=16 // t, chance=0.5,
                 accuracy=a, train_ms_per_clip=m, activation_bytes=b, epochs=1, steps=128)
            for t, a, m, b in zip((4, 8, 16), accuracies, ms, memory)]


def test_frames_claims_and_findings_go_either_way():
    claims, findings = E._frames_conclusions(frames_records((0.6, 0.8, 0.95), (3, 5, 10),
                                                            (1, 2, 4)))
    assert claims == [['c3d: training ms per clip grows with frames (4/8/16)', True],
                      ['c3d: activation memory per clip grows with frames (4/8/16)', True]]
    assert 'lost 35.0 points' in findings[0] and '3.3x the training time' in findings[0]
    assert 'no model read the order from 4 frames 4 apart' in findings[0]
    claims, findings = E._frames_conclusions(frames_records((0.97, 0.96, 0.98), (3, 6, 5),
                                                            (1, 2, 4)))
    assert claims[0][1] is False and claims[1][1] is True
    assert 'did not depend on the frames' in findings[0]
    _, findings = E._frames_conclusions(frames_records((0.52, 0.5, 0.49), (3, 5, 10), (1, 2, 4)))
    assert 'at chance' in findings[0]
    _, findings = E._frames_conclusions(frames_records((0.95, 0.8, 0.7), (3, 5, 10), (1, 2, 4)))
    assert '25.0 points better' in findings[0]


def test_frames_finding_tells_a_lost_signal_from_a_model_that_did_not_learn_it():
    records = frames_records((0.5, 0.52, 0.99), (5, 11, 21), (1, 2, 4)) + \
        frames_records((0.965, 0.98, 0.996), (6, 10, 18), (1, 2, 4), model='timesformer')
    for r in records[3:]:
        r.update(epochs=4, steps=512)
    _, findings = E._frames_conclusions(records)
    assert 'but timesformer reached 96.5% on the same 4 frames (4 passes, 512 steps)' in findings[0]
    assert 'is what it learned in its own recipe (1 pass(es), 128 steps)' in findings[0]
    assert 'did not depend on the frames' in findings[1]


def data_records(curves):
    return [dict(experiment='data', model=m, train_clips=n, accuracy=a, chance=0.5, steps=128)
            for m, accuracies in curves.items() for n, a in zip(E.DATA_SIZES, accuracies)]


def test_data_findings_name_the_winner_and_the_steeper_curve():
    claims, findings = E._data_conclusions(data_records(
        {'c3d': (0.8, 0.9, 0.95, 0.99), 'timesformer': (0.5, 0.6, 0.9, 0.995)}))
    assert claims == [['c3d >= 90 % on order with 2,048 clips', True],
                      ['timesformer >= 90 % on order with 2,048 clips', True]]
    assert '256: c3d, 512: c3d, 1,024: tie, 2,048: tie' in findings[2]
    assert 'c3d wins or ties at every size' in findings[2]
    assert "timesformer's curve is the steeper (+49.5 points" in findings[2]
    _, findings = E._data_conclusions(data_records(
        {'c3d': (0.8, 0.85, 0.9, 0.9), 'timesformer': (0.6, 0.8, 0.95, 0.99)}))
    assert 'the ranking flips with the amount of data' in findings[2]
    claims, findings = E._data_conclusions(data_records(
        {'c3d': (0.5, 0.5, 0.6, 0.7), 'timesformer': (0.5, 0.52, 0.55, 0.72)}))
    assert claims[0][1] is False and 'rise alike' in findings[2]


# ---- the table, the plot, bad input -------------------------------------------------------------

def test_format_experiment(quick_results):
    text = E.format_experiment(quick_results['frames'])
    lines = text.splitlines()
    assert lines[0] == 'experiment frames (quick)'
    assert 'ms/clip' in lines[1] and 'act MiB/clip' in lines[1]
    assert sum(line.strip().startswith(('c3d', 'timesformer')) for line in lines) == 6
    claims = lines.index('claims:')
    assert all(line.startswith(('  yes  ', '  NO   ')) for line in lines[claims + 1:claims + 5])
    assert lines[claims + 5] == 'findings:'
    for name in ('sampling', 'data'):
        assert E.format_experiment(quick_results[name]).startswith(f'experiment {name} (quick)')
    with pytest.raises(ValueError, match=r"expected a run_experiment result with the keys"):
        E.format_experiment({'experiment': 'frames'})


def test_plot_experiment_writes_png(quick_results, tmp_path):
    pytest.importorskip('matplotlib')
    from PIL import Image
    from tensorlite import plots
    for name in E.EXPERIMENTS:
        path = tmp_path / f'{name}.png'
        assert plots.plot_experiment(quick_results[name], path) == path
        with open(path, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
        with Image.open(path) as image:
            assert min(image.size) >= 200
    with pytest.raises(ValueError, match=r"must be one of \['sampling', 'frames', 'data'\], "
                                         r"got 'speed'"):
        plots.plot_experiment({'experiment': 'speed', 'records': [{}]}, tmp_path / 'x.png')
    broken = dict(quick_results['data'], records=[{'model': 'c3d', 'accuracy': 0.5}])
    with pytest.raises(ValueError, match=r"records\[0\] lacks the key\(s\) \['train_clips'"):
        plots.plot_experiment(broken, tmp_path / 'x.png')
    record = dict(quick_results['data']['records'][0], accuracy=1.5)
    with pytest.raises(ValueError, match=r"is a fraction in \[0, 1\], got 1.5"):
        plots.plot_experiment(dict(quick_results['data'], records=[record]), tmp_path / 'x.png')
    with pytest.raises(ValueError, match=r"must end in '.png'"):
        plots.plot_experiment(quick_results['data'], tmp_path / 'x.jpg')


def test_bad_arguments_are_rejected_before_training():
    with pytest.raises(ValueError, match=r"unknown experiment 'speed'; expected one of "
                                         r"sampling, frames, data"):
        E.run_experiment('speed')
    with pytest.raises(ValueError, match=r"jobs must be a positive int, got 0"):
        E.run_experiment('frames', jobs=0)
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, got -1"):
        E.run_experiment('frames', seed=-1)


# ---- the command line and the worker processes ---------------------------------------------------

def test_cli_experiment_writes_json_and_says_quick_promises_nothing(tmp_path, capsys):
    from tensorlite.cli import main
    path = tmp_path / 'out' / 'frames.json'
    code = main(['compare', '--experiment', 'frames', '--quick', '--json', str(path),
                 '--no-progress', '--jobs', '2'])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(path.read_text())
    assert result['experiment'] == 'frames' and len(result['records']) == 6
    assert [r['frames'] for r in result['records']] == [4, 8, 16, 4, 8, 16]
    assert out.startswith('experiment frames (quick)')
    assert 'the quick run does not promise the claims' in out
    assert 'c3d: training ms per clip grows with frames (4/8/16)' in out


def test_cli_experiment_rejects_models_and_families(capsys):
    from tensorlite.cli import EXIT_USAGE, main
    assert main(['compare', '--experiment', 'data', '--models', 'c3d']) == EXIT_USAGE
    assert '--models and --families do not go with --experiment' in capsys.readouterr().err
    assert main(['compare', '--experiment', 'data', '--families', 'order']) == EXIT_USAGE
    assert main(['compare', '--experiment', 'speed']) == EXIT_USAGE
    assert "invalid choice: 'speed'" in capsys.readouterr().err

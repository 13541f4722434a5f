"""benchmarks/bench_models.py: the PyTorch mirrors of the ten `tensorlite compare` models (tiny
presets, batch 16, as the benchmark times them) take the tensorlite weights by state-dict name and
give the same first loss (1e-4) and, after one SGD step, the same second loss (1e-3).  ViViT's
head starts at zero (scenic's init), so its first loss is log(4) on both sides whatever the
features: its second loss is the check that counts.

Optional: skipped when PyTorch is not installed.  The paper presets are checked by hand
(`python benchmarks/bench_models.py --check-only --preset paper --models c3d`): too slow here."""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'benchmarks')


@pytest.fixture(scope='module')
def bench():
    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)                  # for its `import _timing`
    spec = importlib.util.spec_from_file_location('bench_models',
                                                  os.path.join(BENCHMARKS, 'bench_models.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ('single_frame', 'late_fusion', 'early_fusion', 'c3d', 'i3d', 'two_stream', 'slowfast',
        'cnn_lstm', 'timesformer', 'vivit')


def test_cases_cover_compare(bench):
    from tensorlite.compare import MODELS
    assert TINY == tuple(MODELS) == bench.COMPARE_MODELS
    assert [c['model'] for c in bench.select_cases(preset='tiny')] == list(MODELS)
    assert [c['model'] for c in bench.select_cases(['i3d', 'vivit'], 'paper')] == ['i3d']


@pytest.mark.optional
@pytest.mark.parametrize('model', TINY)
def test_tiny_model_matches_torch(bench, model):
    pytest.importorskip('torch')
    r = bench.check_case(bench.CASES[model, 'tiny'], steps=2)     # raises MismatchError itself
    assert r['batch'] == 16
    assert abs(r['first_loss_tl'] - r['first_loss_torch']) <= 1e-4 * max(1, r['first_loss_torch'])
    second = r['second_loss_torch']
    assert abs(r['second_loss_tl'] - second) <= 1e-3 * max(1, second)
    assert r['second_loss_tl'] != r['first_loss_tl']              # the step did change the model
    # a wrong backward shows as O(1); rounding stays below 1e-2 (the conv biases right before a
    # BatchNorm, whose true gradient is zero, are the worst: ~3e-3 of the floor)
    assert r['grad_rel_diff'] < 1e-2, (r['grad_worst'], r['grad_rel_diff'])


@pytest.mark.optional
def test_a_wrong_weight_is_caught(bench, monkeypatch):
    torch = pytest.importorskip('torch')
    build_pair = bench.build_pair

    def broken(case, seed=0):
        tl_model, th_model, off = build_pair(case, seed)
        with torch.no_grad():
            th_model.cnn.conv2.weight[0, 0, 1, 1] += 0.5       # one weight of the mirror differs
        return tl_model, th_model, off
    monkeypatch.setattr(bench, 'build_pair', broken)
    with pytest.raises(bench.MismatchError, match='single_frame tiny .*first loss'):
        bench.check_case(bench.CASES['single_frame', 'tiny'])


def test_json_is_written_whole(bench, tmp_path):
    path = tmp_path / 'out.json'
    bench.write_json(str(path), [{'model': 'c3d', 'tl_ms': 1.5}])
    assert json.loads(path.read_text()) == [{'model': 'c3d', 'tl_ms': 1.5}]
    assert os.listdir(tmp_path) == ['out.json']                     # no temporary file left
    with pytest.raises(TypeError):
        bench.write_json(str(path), [{'model': np.float32}])         # not JSON: the old file stays
    assert json.loads(path.read_text()) == [{'model': 'c3d', 'tl_ms': 1.5}]
    assert os.listdir(tmp_path) == ['out.json']

"""tensorlite compare: a small smoke run (two models, two families, quick recipes), the table, the
lesson's checks, and the pieces compare is built from (ArrayLoader, WithFlowStack, the derive hook
of temporal_diagnostic)."""
import json

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.data as D
from tensorlite import compare
from tensorlite.train import temporal_diagnostic


@pytest.fixture(scope='module')
def smoke_records():
    return compare.run_compare(models=['single_frame', 'late_fusion'], families=['scene', 'order'],
                               quick=True, progress=False)


def test_smoke_run_records(smoke_records):
    assert [(r['model'], r['family']) for r in smoke_records] == [
        ('single_frame', 'scene'), ('single_frame', 'order'),
        ('late_fusion', 'scene'), ('late_fusion', 'order')]
    for r in smoke_records:
        assert set(compare.RECORD_KEYS) <= set(r)
        for key in ('accuracy', 'reversed_accuracy', 'shuffled_accuracy'):
            assert 0.0 <= r[key] <= 1.0
        assert r['train_seconds'] > 0 and r['params'] > 0
        assert r['test_clips'] == compare.QUICK_TEST_CLIPS
        json.dumps(r)                                     # JSON-able as it is
    by = {(r['model'], r['family']): r for r in smoke_records}
    assert by[('single_frame', 'scene')]['chance'] == pytest.approx(1 / 6)
    assert by[('single_frame', 'order')]['chance'] == pytest.approx(1 / 2)
    # the lesson's shape, on the quick recipes: one frame tells the scene, never the order
    assert by[('single_frame', 'scene')]['accuracy'] >= 0.9
    assert abs(by[('single_frame', 'order')]['accuracy'] - 0.5) <= compare.NEAR_CHANCE
    # late fusion pools two frames symmetrically: a clip and its reverse get the same scores
    late = by[('late_fusion', 'order')]
    assert late['accuracy'] == pytest.approx(0.5) and late['reversed_accuracy'] == late['accuracy']


def test_table_and_checks(smoke_records):
    table = compare.format_table(smoke_records)
    lines = table.splitlines()
    assert lines[0].startswith('model') and 'scene' in lines[0] and 'order' in lines[0]
    assert {len(line) for line in lines[:-1]} == {len(lines[0])}       # the columns line up
    assert 'in/clip' in lines[0] and 'act MB' in lines[0]
    assert lines[2].startswith('single_frame') and lines[3].startswith('late_fusion')
    assert '49,152' in lines[2]                  # 3 x 16 x 32 x 32 numbers per clip
    assert 'chance' in lines[-1]
    checks = dict(compare.lesson_checks(smoke_records))
    assert set(checks) == {'single_frame >= 90 % on scene', 'late_fusion >= 90 % on scene',
                           'single_frame near chance on order',
                           'late_fusion near chance on order'}
    assert checks['single_frame >= 90 % on scene'] and checks['single_frame near chance on order']
    assert checks['late_fusion near chance on order']


def test_input_scale_of_the_records(smoke_records):
    for r in smoke_records:
        assert r['input_numbers'] == 3 * 16 * 32 * 32
        assert 0 < r['activation_mb'] < 50
        assert r['flow_clips'] == 0 and r['flow_seconds'] == 0.0
        assert r['network_ms_per_clip'] == pytest.approx(
            1e3 * r['train_seconds'] / (r['epochs'] * r['train_clips']))


def _record(model, family, accuracy, reversed_accuracy=None, chance=None):
    chance = {'scene': 1 / 6, 'occluded': 1 / 6, 'motion': 0.25, 'order': 0.5}[family] \
        if chance is None else chance
    return dict(model=model, family=family, accuracy=accuracy,
                reversed_accuracy=accuracy if reversed_accuracy is None else reversed_accuracy,
                shuffled_accuracy=chance, chance=chance)


def test_lesson_checks_fail_when_the_shape_is_wrong():
    claim = 'c3d >= 90 % on order, reversed clips >= 30 points lower'
    assert compare.lesson_checks([_record('c3d', 'order', 0.6, 0.4)]) == [(claim, False)]
    assert compare.lesson_checks([_record('c3d', 'order', 0.95, 0.05)]) == [(claim, True)]
    # a model that scores the reversed clips as well does not read the order
    assert compare.lesson_checks([_record('c3d', 'order', 0.95, 0.70)]) == [(claim, False)]
    assert compare.lesson_checks([_record('c3d', 'motion', 0.84)]) == \
        [('c3d >= 85 % on motion', False)]
    # near chance: within 12 points either way
    assert compare.lesson_checks([_record('late_fusion', 'motion', 0.38)]) == \
        [('late_fusion near chance on motion', False)]
    assert compare.lesson_checks([_record('late_fusion', 'motion', 0.36)]) == \
        [('late_fusion near chance on motion', True)]
    assert compare.lesson_checks([_record('single_frame', 'order', 0.37)]) == \
        [('single_frame near chance on order', False)]


def test_fusion_gain_needs_both_cells_and_15_points():
    late = _record('late_fusion', 'occluded', 0.90)
    assert dict(compare.lesson_checks([late])) == {'late_fusion >= 85 % on occluded': True}
    gain = 'late_fusion >= single_frame + 15 points on occluded'
    checks = dict(compare.lesson_checks([late, _record('single_frame', 'occluded', 0.74)]))
    assert checks[gain]
    checks = dict(compare.lesson_checks([late, _record('single_frame', 'occluded', 0.76)]))
    assert not checks[gain] and checks['late_fusion >= 85 % on occluded']


def test_every_claim_of_the_issue_is_there():
    claims = [what for what, _, _ in compare.CLAIMS]
    assert len(claims) == len(set(claims)) == 10 + 6 + 8 + 7
    for model in compare.MODELS:
        assert f'{model} >= 90 % on scene' in claims
    for model in compare.TIME_READERS:
        assert f'{model} >= 85 % on motion' in claims
    assert 'early_fusion' not in compare.ORDER_READERS and len(compare.ORDER_READERS) == 7


def test_findings_report_early_fusion_and_the_flow_cost():
    early = dict(_record('early_fusion', 'order', 0.5, 0.5), epochs=8)
    flow = dict(_record('two_stream', 'order', 0.95, 0.05), flow_seconds=3.0, flow_clips=1000,
                network_ms_per_clip=2.0, epochs=2, train_clips=500)
    lines = compare.lesson_findings([early, flow])
    assert lines[0].startswith('early_fusion on order: 50.0%') and 'did not learn' in lines[0]
    assert 'after 8 passes' in lines[0]
    assert 'optical flow 3.0 ms per clip' in lines[1] and 'network 2.0 ms' in lines[1]
    assert 'the flow is 60% of one pass' in lines[1]
    reads = compare.lesson_findings([dict(_record('early_fusion', 'order', 0.97, 0.03),
                                          epochs=8)])
    assert 'the whole clip' in reads[0]
    assert compare.lesson_findings([_record('c3d', 'order', 0.9)]) == []


def test_unknown_names_are_rejected_before_training():
    with pytest.raises(ValueError, match="unknown model 'c4d'.*single_frame"):
        compare.run_compare(models=['c4d'])
    with pytest.raises(ValueError, match="unknown family 'colour'.*scene, occluded, motion, order"):
        compare.run_compare(families=['colour'])


def test_recipes_are_per_model_and_quick_is_smaller():
    for model in compare.MODELS:
        for family in compare.FAMILIES:
            full = compare.recipe_for(model, family)
            quick = compare.recipe_for(model, family, quick=True)
            assert quick['clips'] < full['clips'] and quick['epochs'] >= full['epochs']
            assert full['clips'] == compare.FAMILY_CLIPS[family]
            assert 'families' not in full
            for r in (full, quick):      # epochs raised until there are min_steps steps
                batches = -(-r['clips'] // r['batch_size'])
                own = compare.RECIPES[model]
                wanted = own.get('families', {}).get(family, {}).get(
                    'epochs', own.get('epochs', compare.DEFAULT_RECIPE['epochs']))
                assert r['epochs'] == max(wanted, -(-r['min_steps'] // batches))
    assert compare.recipe_for('single_frame', 'scene')['epochs'] == 4      # 96 steps of 24 batches
    assert compare.recipe_for('early_fusion', 'motion')['epochs'] == 4     # a per-family change
    assert compare.recipe_for('early_fusion', 'order')['epochs'] == 8
    assert compare.recipe_for('early_fusion', 'scene')['epochs'] == 2
    assert compare.recipe_for('timesformer_joint', 'order') == compare.recipe_for('timesformer',
                                                                                  'order')
    assert compare.recipe_for('c3d', 'order', lr=0.5)['lr'] == 0.5
    with pytest.raises(ValueError, match="no recipe for model 'resnet'"):
        compare.recipe_for('resnet', 'order')
    with pytest.raises(ValueError, match="unknown family 'colour'"):
        compare.recipe_for('c3d', 'colour')


def test_array_loader_batches_and_reshuffles_per_epoch():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    loader = compare.ArrayLoader([x, y], batch_size=4, shuffle=True, seed=3)
    assert len(loader) == 3
    first = np.concatenate([b[1].numpy() for b in loader])
    again = np.concatenate([b[1].numpy() for b in loader])
    loader.set_epoch(1)
    other = np.concatenate([b[1].numpy() for b in loader])
    assert sorted(first) == list(range(10)) and (first == again).all()
    assert not (first == other).all() and sorted(other) == list(range(10))
    batch = next(iter(compare.ArrayLoader([x, y], 4)))
    assert (batch[0].numpy()[:, 0] == batch[1].numpy()).all()
    with pytest.raises(ValueError, match='different lengths'):
        compare.ArrayLoader([x, y[:5]], 2)


def test_with_flow_stack_items_and_errors():
    data = D.SyntheticActions('motion', 4, num_frames=12, size=32)
    wrapped = D.WithFlowStack(data, flow_length=4)
    clip, flow, label = wrapped[0]
    assert clip.shape == (3, 12, 32, 32) and flow.shape == (8, 32, 32) and label == 0
    assert flow.dtype == np.float32 and wrapped.num_classes == 4 and len(wrapped) == 4
    # the stack is the flow of the centred L + 1 frames: frames 3..7 of 12
    frames = np.moveaxis(clip, 0, -1)
    expected = D.flows_to_stack(D.clip_flows(frames[3:8]), 0, 4)
    np.testing.assert_array_equal(flow, expected)
    # 'right' moves by 1-2 px/frame: where the flow is large, it points right
    dx, dy = flow[0::2], flow[1::2]
    moving = np.hypot(dx, dy) > 0.5
    assert moving.sum() > 50 and dx[moving].mean() > max(0.5, 2 * abs(dy[moving].mean()))
    with pytest.raises(ValueError, match='needs 11 frames, the clip has 12|needs 13 frames'):
        D.WithFlowStack(data, flow_length=12)[0]
    with pytest.raises(ValueError, match='flow_length must be an int'):
        D.WithFlowStack(data, flow_length=0)
    with pytest.raises(ValueError, match=r'\(C, T, H, W\)'):
        D.centred_flow_stack(np.zeros((12, 16, 16), np.float32), 4)


class _SumsFlow(tl.nn.Module):
    """Scores from the flow input alone: (sum of the flow, 0): a negative sum says class 1."""

    def forward(self, clip, flow):
        s = flow.sum(dim=(1, 2, 3))
        return tl.stack([s, s * 0], dim=1)


def test_temporal_diagnostic_derive_recomputes_inputs_after_reordering():
    clips = np.random.default_rng(0).random((4, 1, 6, 2, 2)).astype(np.float32)
    flows = np.zeros((4, 1, 2, 2), np.float32)           # scores 0, 0 -> predicts class 0
    labels = np.array([1, 1, 1, 1])
    loader = compare.ArrayLoader([clips, flows, labels], 2)
    seen = []

    def derive(inputs):                                   # a 'flow' that says class 1
        seen.append(inputs[0].numpy().copy())
        return inputs[0], -tl.ones(inputs[0].shape[0], 1, 2, 2)
    result = temporal_diagnostic(_SumsFlow(), loader, derive=derive)
    assert result['accuracy'] == 0.0                      # the original pass is not derived
    assert result['reversed_accuracy'] == 1.0 and result['shuffled_accuracy'] == 1.0
    assert len(seen) == 4                                 # 2 batches x (reversed, shuffled)
    np.testing.assert_array_equal(seen[0], clips[:2, :, ::-1])


def test_cli_compare_writes_the_records_as_json(tmp_path, capsys):
    from tensorlite.cli import main
    path = tmp_path / 'out' / 'compare.json'
    code = main(['compare', '--quick', '--models', 'single_frame', '--families', 'scene',
                 '--json', str(path), '--no-progress'])
    out = capsys.readouterr().out
    assert code == 0
    records = json.loads(path.read_text())
    assert len(records) == 1 and records[0]['model'] == 'single_frame'
    for key in ('model', 'family', 'accuracy', 'reversed_accuracy', 'shuffled_accuracy', 'chance',
                'params', 'train_seconds'):
        assert key in records[0]
    assert out.splitlines()[0].startswith('model')
    assert "the lesson's claims (the quick run does not promise them" in out
    assert 'single_frame >= 90 % on scene' in out


def test_default_run_is_the_ten_models_on_the_four_families(monkeypatch):
    calls = []

    def fake(model, family, quick, seed, device, data):
        calls.append((model, family))
        return dict(model=model, family=family, accuracy=0.5, reversed_accuracy=0.5,
                    shuffled_accuracy=0.5, train_seconds=1.0)
    monkeypatch.setattr(compare, 'train_and_test',
                        lambda model, family, quick=False, seed=0, device='cpu', data=None:
                        fake(model, family, quick, seed, device, data))
    monkeypatch.setattr(compare, 'render_family', lambda family, n, seed: None)
    compare.run_compare(progress=False)
    assert calls == [(m, f) for m in compare.MODELS for f in compare.FAMILIES]
    calls.clear()
    compare.run_compare(models=['timesformer_joint'], families=['order'], progress=False)
    assert calls == [('timesformer_joint', 'order')]


def test_worker_processes_give_the_same_records(smoke_records):
    """jobs=2: the cells run in two spawned workers (each rendering its own copy of the data);
    records come back in model-major order with the accuracies of the in-process run."""
    records = compare.run_compare(models=['single_frame', 'late_fusion'],
                                  families=['scene', 'order'], quick=True, progress=False, jobs=2)
    assert [(r['model'], r['family']) for r in records] == \
        [(r['model'], r['family']) for r in smoke_records]
    for r, s in zip(records, smoke_records):
        for key in ('accuracy', 'reversed_accuracy', 'shuffled_accuracy'):
            assert abs(r[key] - s[key]) <= 2 / compare.QUICK_TEST_CLIPS, (r['model'], key)
        assert r['params'] == s['params'] and r['train_seconds'] > 0
    with pytest.raises(ValueError, match=r"jobs must be a positive int, got 0"):
        compare.run_compare(models=['single_frame'], families=['scene'], jobs=0)
    assert 1 <= compare.default_jobs() <= 4


def test_worker_run_gives_up_when_no_cell_finishes_in_time(monkeypatch):
    """Nothing waits forever: with no cell done within CELL_TIMEOUT the run raises, and the
    workers are terminated."""
    monkeypatch.setattr(compare, 'CELL_TIMEOUT', 0.05)
    with pytest.raises(TimeoutError, match=r'compare: no cell finished within 0.05 s'):
        compare.run_compare(models=['single_frame'], families=['scene', 'order'], quick=True,
                            progress=False, jobs=2)

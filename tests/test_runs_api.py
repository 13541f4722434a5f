"""The library behind `tensorlite train/eval` (tensorlite.train.run), the optimizer factory, the
class-stratified split and the JSON utility, called from Python without the command line."""
import json
import math

import numpy as np
import pytest

from tensorlite import data as D
from tensorlite import optim, utils
from tensorlite.train import RunError, RunFileError, evaluate_run, load_run, run_training
from tensorlite.train import run as R


def test_stratified_split_holds_out_part_of_every_class():
    targets = [0] * 10 + [1] * 5 + [2] * 2 + [3]
    train, val = D.stratified_split(targets, 0.2, seed=3)
    assert sorted(train + val) == list(range(len(targets)))
    assert not set(train) & set(val)
    held = np.bincount(np.asarray(targets)[val], minlength=4)
    assert held.tolist() == [2, 1, 1, 0]       # 20 %, at least one, never a whole class
    assert (train, val) == D.stratified_split(targets, 0.2, seed=3)
    assert (train, val) != D.stratified_split(targets, 0.2, seed=4)
    assert D.stratified_split(targets, 0, seed=0) == (list(range(len(targets))), [])
    with pytest.raises(ValueError, match=r'val_split must be in \[0, 1\), got 1'):
        D.stratified_split(targets, 1, seed=0)


class _Labelled:
    classes = ['b', 'd']
    targets = [0, 1, 1]
    bad_files = ['x.mp4']

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return f'clip{i}', self.targets[i]


def test_relabelled_maps_labels_by_class_name():
    r = D.Relabelled(_Labelled(), ['a', 'b', 'c', 'd'])
    assert r.targets == [1, 3, 3] and [r[i][1] for i in range(3)] == [1, 3, 3]
    assert r[0][0] == 'clip0' and len(r) == 3 and r.bad_files == ['x.mp4']
    with pytest.raises(ValueError, match=r"classes \['d'\] are not among \['a', 'b'\]"):
        D.Relabelled(_Labelled(), ['a', 'b'])


def _params():
    import tensorlite as tl
    return [tl.tensor(np.ones(3), requires_grad=True)]


def test_create_optimizer_and_scheduler_by_name():
    sgd = optim.create_optimizer('sgd', _params(), lr=0.1, weight_decay=0.01)
    assert type(sgd) is optim.SGD and sgd.param_groups[0]['momentum'] == 0.9
    assert sgd.param_groups[0]['weight_decay'] == 0.01
    adamw = optim.create_optimizer('adamw', _params(), lr=1e-3)          # its own default decay
    assert type(adamw) is optim.AdamW
    assert adamw.param_groups[0]['weight_decay'] == optim.AdamW(_params(), lr=1).defaults[
        'weight_decay']
    assert type(optim.create_optimizer('adam', _params(), lr=1e-3)) is optim.Adam
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam, adamw, got 'lion'"):
        optim.create_optimizer('lion', _params(), lr=1)

    assert optim.create_scheduler('none', sgd, epochs=5) is None
    opt = optim.create_optimizer('sgd', _params(), lr=1.0)
    schedule = optim.create_scheduler('step', opt, epochs=6)          # x0.1 every 2 epochs
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]['lr'])
        schedule.step()
    assert np.allclose(rates, [1, 1, 0.1, 0.1, 0.01, 0.01])
    opt = optim.create_optimizer('sgd', _params(), lr=1.0)
    schedule = optim.create_scheduler('cosine', opt, epochs=5, warmup_epochs=1)
    rates = []
    for _ in range(5):
        rates.append(opt.param_groups[0]['lr'])
        schedule.step()
    assert rates[0] == 0.5 and rates[1] == 1.0 and rates[1] > rates[2] > rates[3] > rates[4]
    with pytest.raises(ValueError, match="scheduler must be one of none, step, cosine"):
        optim.create_scheduler('linear', opt, epochs=3)


def test_to_json_and_write_json(tmp_path):
    value = {1: (np.float32(0.5), np.int64(3)), 'a': np.arange(2), 'nan': math.nan,
             'flag': np.bool_(True), 'other': object}
    plain = utils.to_json(value)
    assert plain == {'1': [0.5, 3], 'a': [0, 1], 'nan': None, 'flag': True,
                     'other': str(object)}
    path = utils.write_json(tmp_path / 'sub' / 'r.json', value)
    with open(path) as f:
        assert json.load(f) == plain


def test_run_training_evaluate_run_and_load_run_from_python(tmp_path, capsys):
    out = tmp_path / 'run'
    result = run_training('single_frame', 'synthetic:scene', out=str(out), epochs=1,
                          num_clips=32, val_clips=16, batch_size=8, progress=False)
    printed = capsys.readouterr().out
    assert 'recipe: adamw' in printed and 'validation: top-1' in printed
    assert set(result) == {'model', 'data', 'config', 'optimizer', 'epochs', 'checkpoint',
                           'history', 'final'}
    config = result['config']
    assert config['train']['epochs'] == 1 and config['train']['batch_size'] == 8
    assert config['classes'] == list(D.SyntheticActions('scene', 0).classes)
    model, loaded = load_run(str(out))
    assert loaded == json.loads(json.dumps(config))
    # the run's own validation clips again (same seed, same count): the same top-1
    again = evaluate_run(str(out), num_clips=16, progress=False)
    assert again['metrics']['top1'] == result['final']['top1']
    assert again['checkpoint'].endswith('best.npz') and again['model'] == 'single_frame'
    assert evaluate_run((model, loaded), num_clips=16, progress=False)['checkpoint'] is None
    with pytest.raises(RunError, match=r"already holds a run \(last.npz\)"):
        run_training('single_frame', 'synthetic:scene', out=str(out), epochs=1)


def test_run_errors_name_what_was_wrong(tmp_path):
    with pytest.raises(RunError, match="unknown model 'nope'; expected one of"):
        run_training('nope', out=str(tmp_path / 'a'))
    with pytest.raises(RunError, match='--data synthetic:FAMILY needs a family among'):
        run_training('c3d', 'synthetic:weather', out=str(tmp_path / 'b'))
    with pytest.raises(RunFileError, match='nor an existing folder'):
        run_training('c3d', str(tmp_path / 'missing'), out=str(tmp_path / 'c'))
    with pytest.raises(RunError, match='--resume needs --out'):
        run_training('c3d', resume=True)
    assert issubclass(RunError, ValueError) and issubclass(RunFileError, OSError)
    assert R.train_recipe('c3d', 'synthetic', 'scene')['optimizer'] == 'adamw'

"""Smoke tests of the examples: each one's main([..., '--quick']) runs in this process and its
returned results and printed lines are checked (train_on_folder.py, inflate_i3d.py,
gradcheck_custom_layer.py)."""
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
                                                  os.path.join(EXAMPLES, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def gradcheck_example():
    return load_example('gradcheck_custom_layer')


@pytest.fixture(scope='module')
def folder_example():
    return load_example('train_on_folder')


def test_gradcheck_custom_layer(gradcheck_example, tmp_path, capsys):
    out_json = tmp_path / 'grad.json'
    results = gradcheck_example.main(['--quick', '--json', str(out_json)])
    printed = capsys.readouterr().out
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(results))

    assert all(v < 1e-12 for v in results['reference_max_difference'].values())
    assert results['checks'] == {'gradcheck': True, 'gradcheck_fast': True,
                                 'gradgradcheck': True}
    # the wrong backward is right at beta = 1 and caught at random betas, with a useful message
    assert results['wrong_backward_passes_at_beta_1'] is True
    message = results['wrong_backward_error']
    assert message is not None and 'input 0' in message and 'analytic' in message
    assert 'tl.GradcheckError' in printed and message in printed
    assert len(results['losses']) == 3 and all(math.isfinite(x) for x in results['losses'])
    # the betas are parameters: Adam moved them away from their initial 1
    assert any(np.any(np.asarray(b) != 1.0) for b in results['betas'])


def test_gradcheck_custom_layer_op_rejects_bad_shapes(gradcheck_example):
    import tensorlite as tl
    with pytest.raises(ValueError, match=r'beta \(C,\)'):
        gradcheck_example.swish(tl.zeros((2, 3, 4)), tl.ones(4))


def test_inflate_i3d(tmp_path, capsys):
    example = load_example('inflate_i3d')
    out_json = tmp_path / 'inflate.json'
    results = example.main(['--quick', '--json', str(out_json)])
    printed = capsys.readouterr().out
    assert json.loads(out_json.read_text())['verdict'] == results['verdict']

    boring = results['boring_video_max_difference']
    assert boring['replicate'] < 1e-4                     # exact up to float32 rounding
    assert boring['zeros'] > boring['replicate']          # zero padding changes the border frames
    assert "max |3D logits - 2D logits|" in printed
    a, b = results['motion_accuracy_inflated'], results['motion_accuracy_scratch']
    assert 0 <= a <= 1 and 0 <= b <= 1
    expected = example.compare(a, b, 16)                    # --quick: 16 validation clips
    assert results['verdict'] == expected
    assert f"inflated {a:.3f}, scratch {b:.3f}: {expected}" in printed


@pytest.mark.parametrize('a, b, n, start', [
    (0.9, 0.3, 100, 'the inflated start wins by 0.600'),
    (0.3, 0.9, 100, 'training from scratch wins by 0.600'),
    (0.32, 0.27, 96, 'no clear winner: the difference +0.050'),   # within noise at n = 96
    (0.25, 0.25, 16, 'no clear winner'),
])
def test_inflate_i3d_verdict_accounts_for_noise(a, b, n, start):
    assert load_example('inflate_i3d').compare(a, b, n).startswith(start)


def test_train_on_folder_demo(folder_example, tmp_path, capsys):
    demo = tmp_path / 'demo'
    out_json = tmp_path / 'folder.json'
    results = folder_example.main(['--quick', '--no-progress', '--demo-dir', str(demo),
                                   '--checkpoint-dir', str(tmp_path / 'ckpt'),
                                   '--json', str(out_json)])
    printed = capsys.readouterr().out
    assert json.loads(out_json.read_text())['top1'] == results['top1']

    classes = results['classes']
    assert classes == sorted(e for e in os.listdir(demo) if (demo / e).is_dir())
    # the one file that is not a video is found, reported and left out of the split
    assert [os.path.basename(p) for p in results['unreadable']] == ['unreadable.mp4']
    assert 'unreadable.mp4' in printed
    # skip_bad=True on a dataset that has not probed its files: the next readable video instead
    skipped = results['skip_bad_demo']
    assert skipped['bad_files'] == results['unreadable']
    assert classes[skipped['label']] == 'pool'             # a video of pool/unreadable.mp4's class
    assert 'skip_bad=True: dataset[' in printed            # stands in for it
    per_class = 4                                          # --quick: 4 videos per class
    assert results['num_train'] + results['num_val'] == per_class * len(classes)
    # every 4th demo video is a folder of PNG frames, the others .mp4 files
    first = demo / classes[1]
    assert sum((first / e).is_dir() for e in os.listdir(first)) == 1
    matrix = np.asarray(results['confusion_matrix'])
    assert matrix.shape == (len(classes), len(classes))
    assert matrix.sum() == results['num_val'] and (matrix.sum(1) >= 1).all()
    assert 0 <= results['top1'] <= 1 and 0 <= results['multi_clip_top1'] <= 1
    assert results['checkpoint_epoch'] == 0 and (tmp_path / 'ckpt' / 'last.npz').exists()
    assert 'confusion matrix' in printed and '2 clips averaged' in printed
    # the same settings reuse the folder instead of writing it again
    assert folder_example.write_demo_folder(str(demo), 'scene', per_class, seed=0) == 0


def test_train_on_folder_split_is_stratified(folder_example):
    targets = [0] * 5 + [1] * 3 + [2] * 2
    train, val = folder_example.stratified_split(targets, 0.25, seed=0, exclude=[0])
    assert sorted(train + val) == list(range(1, 10))       # index 0 excluded, nothing lost
    assert sorted(targets[i] for i in val) == [0, 1, 2]    # one of each class
    assert set(train).isdisjoint(val)


@pytest.mark.parametrize('argv, expected', [
    (['--val-fraction', '1.5'], '--val-fraction must be in (0, 1)'),
    (['--frames', '0'], '--frames must be >= 1'),
])
def test_train_on_folder_rejects_bad_arguments(folder_example, capsys, argv, expected):
    with pytest.raises(SystemExit):
        folder_example.parse_args(argv)
    assert expected in capsys.readouterr().err


def test_train_on_folder_names_an_unknown_model(folder_example):
    with pytest.raises(SystemExit, match="cannot build model 'no_such_net'"):
        folder_example.build_for_clips('no_such_net', 3, 8, 32)


def test_profile_step_lists_the_kernels_of_one_step(tmp_path, capsys):
    example = load_example('profile_step')
    trace = tmp_path / 'step.json'
    example.main(['--model', 'c3d', '--rows', '40', '--trace', str(trace)])
    printed = capsys.readouterr().out
    assert 'kernel launches on the cpu twin(s)' in printed
    for name in ('conv.vol2col', 'Conv ', 'ConvBackward', 'pool.max_pool_fwd'):
        assert name in printed
    assert json.loads(trace.read_text())['traceEvents']

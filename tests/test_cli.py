"""The `tensorlite` command line: exit codes, error messages and the --json files of each command.

Runs `main([...])` in-process on tiny data (16 synthetic clips of 8 x 32 x 32, one epoch)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.data as D
from tensorlite import bench, cli, gradcheck_suite, utils
from tensorlite.autograd import Function
from tensorlite.models import list_models

TINY = ['--num-clips', '16', '--epochs', '1', '--frames', '8', '--size', '32', '--batch-size', '8',
        '--no-progress']


def read_json(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    assert 'NaN' not in text and 'Infinity' not in text
    return json.loads(text)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One tiny training run shared by the train and eval tests: (run folder, train --json)."""
    root = tmp_path_factory.mktemp('run')
    code = cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion',
                     '--out', str(root / 'run'), '--json', str(root / 'train.json')] + TINY)
    assert code == 0
    return root / 'run', read_json(root / 'train.json')


def test_train_json_and_checkpoint(trained):
    run, result = trained
    assert sorted(result) == ['checkpoint', 'config', 'data', 'epochs', 'final', 'history',
                              'model', 'optimizer']
    assert result['model'] == 'single_frame' and result['data'] == 'synthetic:motion'
    config = result['config']
    assert config['family'] == 'motion' and config['num_classes'] == 4
    assert config['classes'] == ['right', 'left', 'down', 'up']
    assert (config['frames'], config['size'], config['preset']) == (8, 32, 'tiny')
    (row,) = result['history']
    assert row['epoch'] == 1 and isinstance(row['train_loss'], float)
    assert 0 <= row['val_accuracy'] <= 1
    final = result['final']
    assert final['num_samples'] == 4                  # val = num_clips / 4, another seed
    assert np.asarray(final['confusion_matrix']).shape == (4, 4)
    assert final['top1'] == pytest.approx(row['val_accuracy'])
    assert {'last.npz', 'history.csv', 'history.json'} <= set(os.listdir(run))
    assert result['checkpoint'] == str(run / 'last.npz')


def test_eval_rebuilds_the_model_from_the_checkpoint(trained, tmp_path):
    run, _ = trained
    out = tmp_path / 'eval.json'
    code = cli.main(['eval', '--checkpoint', str(run / 'last.npz'), '--num-clips', '6',
                     '--views', '2', '--video-frames', '12', '--temporal', '--no-progress',
                     '--json', str(out)])
    assert code == 0
    result = read_json(out)
    assert sorted(result) == ['checkpoint', 'classes', 'data', 'metrics', 'model', 'temporal',
                              'views']
    assert result['model'] == 'single_frame' and result['views'] == 2
    metrics = result['metrics']
    assert metrics['num_samples'] == 6
    assert {'loss', 'top1', 'mean_class_accuracy', 'confusion_matrix'} <= set(metrics)
    assert np.asarray(metrics['confusion_matrix']).sum() == 6
    temporal = result['temporal']
    assert temporal['chance'] == pytest.approx(0.25)
    assert temporal['accuracy'] == pytest.approx(metrics['top1'])
    for key in ('reversed_accuracy', 'shuffled_accuracy'):
        assert 0 <= temporal[key] <= 1


def test_eval_refuses_data_with_other_classes(trained, capsys):
    run, _ = trained
    code = cli.main(['eval', '--checkpoint', str(run / 'last.npz'), '--data', 'synthetic:order'])
    assert code == 2
    assert 'right' in capsys.readouterr().err


def test_two_stream_trains_on_flow_stacks(tmp_path):
    code = cli.main(['train', '--model', 'two_stream', '--data', 'synthetic:scene', '--num-clips',
                     '8', '--epochs', '1', '--frames', '6', '--size', '32', '--batch-size', '4',
                     '--no-progress', '--json', str(tmp_path / 't.json'),
                     '--out', str(tmp_path / 'run')])
    assert code == 0
    config = read_json(tmp_path / 't.json')['config']
    assert config['flow_length'] == 5                 # L + 1 frames must fit in the clip


def test_unknown_model_is_a_usage_error_listing_the_models(capsys):
    assert cli.main(['train', '--model', 'no_such_net']) == 2
    err = capsys.readouterr().err
    assert err.startswith("tensorlite train: error: unknown model 'no_such_net'")
    for name in list_models():
        assert name in err


@pytest.mark.parametrize('argv, needle', [
    (['train', '--model', 'c3d', '--data', 'synthetic:juggling'], 'synthetic:juggling'),
    (['train', '--model', 'c3d', '--epochs', 'many'], '--epochs'),
    (['train', '--model', 'c3d', '--optimizer', 'rmsprop'], 'rmsprop'),
    (['train', '--model', 'c3d', '--size', '8', '--num-clips', '4'], '16 frames of 8x8'),
    (['train', '--model', 'c3d', '--resume'], '--resume needs --out'),
    (['train', '--model', 'c3d', '--lr', 'inf'], "--lr must be a finite number > 0, got 'inf'"),
    (['train', '--model', 'c3d', '--lr', 'nan'], "--lr must be a finite number > 0, got 'nan'"),
    (['train', '--model', 'c3d', '--weight-decay', 'nan'],
     "--weight-decay must be a finite number >= 0, got 'nan'"),
    (['train', '--model', 'c3d', '--weight-decay', '-1'], "--weight-decay must be a finite"),
    (['summary', 'c3d', '--preset', 'huge'], 'huge'),
    (['summary', 'c3d', '--input-shape', '1,3,16'], 'N,C,T,H,W'),
    (['summary', 'c3d', '--input-shape', '1,3,16,8,8'], 'too small for the five pools'),
    (['summary', 'c3d', '--input-shape', '1,1,16,32,32'], 'clips are RGB (C = 3)'),
    (['summary', 'c3d', '--frames', '8', '--input-shape', '1,3,8,32,32'], 'not both'),
    (['compare', '--models', 'c3d,nope'], "unknown model 'nope'"),
    (['compare', '--families', 'scene,captioning'], 'captioning'),
    (['compare', '--device', 'tpu'], 'tpu'),
    (['gradcheck', 'no-op-has-this-name'], 'no op name contains'),
    (['bench', 'no_such_bench'], 'no_such_bench'),
    (['nonsense'], 'nonsense'),
    ([], 'COMMAND'),
])
def test_bad_arguments_exit_2(argv, needle, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)            # a command that wrongly went on would save under runs/
    assert cli.main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / 'runs').exists()


def test_cuda_without_cupy_or_gpu_exits_2(monkeypatch, capsys):
    from tensorlite import backend

    def missing():
        raise RuntimeError("device 'cuda' needs CuPy, which is not installed")
    monkeypatch.setattr(backend, 'check_cuda', missing)
    assert cli.main(['train', '--model', 'c3d', '--device', 'cuda']) == 2
    assert 'needs CuPy' in capsys.readouterr().err


@pytest.mark.parametrize('argv_of', [
    lambda p: ['eval', '--checkpoint', p],
    lambda p: ['flow', p, '-o', p + '.png'],
    lambda p: ['train', '--model', 'c3d', '--data', p],
])
def test_missing_file_exits_3_and_names_it(argv_of, tmp_path, capsys):
    path = str(tmp_path / 'not_there.mp4')
    assert cli.main(argv_of(path)) == 3
    assert path in capsys.readouterr().err


def test_unreadable_checkpoint_exits_3(tmp_path, capsys):
    bad = tmp_path / 'last.npz'
    bad.write_bytes(b'not a zip file')
    assert cli.main(['eval', '--checkpoint', str(bad)]) == 3
    assert 'not a checkpoint' in capsys.readouterr().err


def test_summary_json(tmp_path, capsys):
    out = tmp_path / 's.json'
    assert cli.main(['summary', 'c3d', '--num-classes', '5', '--json', str(out)]) == 0
    assert capsys.readouterr().out.startswith('c3d (tiny, 5 classes) on input (1, 3, 16, 32, 32)')
    result = read_json(out)
    assert sorted(result) == ['frames', 'input_shapes', 'layers', 'model', 'num_classes', 'preset',
                              'size', 'total_activation_bytes', 'total_macs', 'total_params']
    assert result['input_shapes'] == [[1, 3, 16, 32, 32]]      # tiny c3d's own clip
    layers = result['layers']
    assert sorted(layers[0]) == ['activation_bytes', 'calls', 'leaf', 'macs', 'name',
                                 'output_shape', 'params', 'type']
    assert sum(r['params'] for r in layers) == result['total_params']
    assert sum(r['macs'] for r in layers) == result['total_macs']
    assert layers[-1]['name'] == 'fc_cls' and layers[-1]['output_shape'] == [1, 5]


def test_summary_paper_classes_and_another_clip(tmp_path, capsys):
    out = tmp_path / 'p.json'
    assert cli.main(['summary', 'c3d', '--preset', 'paper', '--json', str(out)]) == 0
    result = read_json(out)
    assert result['num_classes'] == 101 and result['total_params'] == 78_409_573
    assert result['input_shapes'] == [[1, 3, 16, 112, 112]]
    assert cli.main(['summary', 'c3d', '--frames', '8', '--size', '64', '--json', str(out)]) == 0
    result = read_json(out)
    assert result['input_shapes'] == [[1, 3, 8, 64, 64]] and result['num_classes'] == 10
    relu = [r for r in result['layers'] if r['name'] == 'relu']
    assert relu and relu[0]['calls'] > 1               # C3D's shared relu, counted per call


def test_summary_two_stream_feeds_a_flow_stack(tmp_path):
    out = tmp_path / 's.json'
    assert cli.main(['summary', 'two_stream', '--json', str(out)]) == 0
    assert read_json(out)['input_shapes'] == [[1, 3, 16, 32, 32], [1, 20, 32, 32]]


def test_gradcheck_json(tmp_path):
    out = tmp_path / 'g.json'
    assert cli.main(['gradcheck', 'gelu', '--json', str(out)]) == 0
    result = read_json(out)
    assert result['checked'] == 2 and result['failed'] == []
    assert [r['op'] for r in result['rows']] == ['gelu', 'gelu (tanh)']
    for row in result['rows']:
        assert (row['full'], row['fast'], row['second']) == ('ok', 'ok', 'ok')
        assert 0 <= row['worst_relative_error'] < 1e-6 and row['seconds'] > 0


class WrongSquare(Function):
    """x**2 with the backward wrong by a factor of 2 (x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, gy):
        (x,) = ctx.saved_tensors
        return gy * x


def test_gradcheck_failure_exits_1(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(gradcheck_suite.OPS, 'wrong square',
                        (WrongSquare.apply, lambda: (gradcheck_suite.t(3),)))
    out = tmp_path / 'g.json'
    assert cli.main(['gradcheck', 'wrong square', '--json', str(out)]) == 1
    err = capsys.readouterr().err
    assert 'wrong square' in err and '1 of 1 ops failed' in err
    (row,) = read_json(out)['rows']
    assert row['full'] == 'FAIL' and row['failed'] and row['errors']
    assert row['worst_relative_error'] > 0.1


def test_info_json(tmp_path):
    out = tmp_path / 'i.json'
    assert cli.main(['info', '--json', str(out)]) == 0
    info = read_json(out)
    assert sorted(info) == ['cpu_count', 'cpu_threads', 'cuda_available',
                            'cuda_unavailable_reason', 'cupy_importable', 'models', 'numba',
                            'numba_threads', 'numpy', 'platform', 'python', 'synthetic_families',
                            'tensorlite', 'usable_cpus']
    assert sorted(info['cpu_threads']) == ['gomp_spincount', 'in_effect', 'omp_wait_policy',
                                           'set_by_tensorlite']
    assert info['models'] == list_models()
    assert info['synthetic_families']['order'] == list(D.SyntheticActions('order', 0).classes)
    assert info['numpy'] == np.__version__ and isinstance(info['cpu_count'], int)
    assert info['cuda_available'] == (info['cuda_unavailable_reason'] is None)


@pytest.mark.parametrize('ext', ['.png', '.gif'])
def test_flow_writes_an_image(tmp_path, ext, capsys):
    from PIL import Image
    frames = D.SyntheticActions('motion', 1, num_frames=6, size=32).frames(0)
    video = D.write_video(str(tmp_path / 'clip.gif'), frames, fps=8)
    out = tmp_path / f'flow{ext}'
    assert cli.main(['flow', video, '-o', str(out), '--frames', '1:5', '--columns', '2']) == 0
    assert '3 flows of frames 1..4' in capsys.readouterr().out
    if ext == '.png':                      # 720p-like frames stay within 2,000 px
        big = D.write_video(str(tmp_path / 'big.mp4'), np.repeat(np.repeat(frames, 20, 1), 20, 2)[
            :, :720, :1280], fps=8)
        assert cli.main(['flow', big, '-o', str(tmp_path / 'big.png'), '--frames', '0:6']) == 0
        with Image.open(tmp_path / 'big.png') as image:
            assert image.size[0] <= 2000
    with Image.open(out) as image:
        image.load()
        if ext == '.png':                  # a figure in rows (plots.plot_flow), at most 2,000 px
            assert image.size[0] <= 2000
        else:
            assert image.size == (64, 32) and image.n_frames == 3    # frame | flow, per flow


def test_bench_list_and_missing_folder(monkeypatch, tmp_path, capsys):
    assert cli.main(['bench', '--list']) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    on_disk = sorted(p[len('bench_'):-3] for p in os.listdir(bench.benchmarks_folder())
                     if p.startswith('bench_') and p.endswith('.py'))
    assert listed == on_disk and 'conv' in listed
    monkeypatch.setattr(bench, 'benchmarks_folder', lambda: tmp_path / 'benchmarks')
    assert cli.main(['bench', '--list']) == 3
    assert str(tmp_path / 'benchmarks') in capsys.readouterr().err


def test_bench_passes_arguments_after_double_dash(monkeypatch, tmp_path, capsys):
    folder = tmp_path / 'benchmarks'
    folder.mkdir()
    (folder / 'bench_echo.py').write_text('"""Echo."""\nimport sys\nprint("args", sys.argv[1:])\n'
                                          'sys.exit(3 if "--fail" in sys.argv else 0)\n')
    monkeypatch.setattr(bench, 'benchmarks_folder', lambda: folder)
    assert cli.main(['bench', 'echo', '--', '--repeats', '2']) == 0
    assert cli.main(['bench', 'echo', '--', '--fail']) == 1
    assert 'echo (exit 3)' in capsys.readouterr().err


def test_a_benchmark_that_hangs_is_killed_after_its_timeout(monkeypatch, tmp_path, capsys):
    import time
    folder = tmp_path / 'benchmarks'
    folder.mkdir()
    (folder / 'bench_hang.py').write_text('"""Hangs."""\nimport time\ntime.sleep(600)\n')
    monkeypatch.setattr(bench, 'benchmarks_folder', lambda: folder)
    started = time.monotonic()
    assert cli.main(['bench', 'hang', '--timeout', '1']) == 1
    assert time.monotonic() - started < 30
    assert 'hang (killed after --timeout 1 s)' in capsys.readouterr().err


def test_unexpected_error_exits_1_without_traceback(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError('the disk caught fire')
    monkeypatch.setattr(utils, 'collect_info', lambda: broken(None))
    assert cli.main(['info']) == 1
    err = capsys.readouterr().err
    assert 'tensorlite info: error: RuntimeError: the disk caught fire' in err
    assert 'Traceback' not in err
    assert cli.main(['info', '--traceback']) == 1
    assert 'Traceback' in capsys.readouterr().err


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(utils, 'collect_info', interrupted)
    assert cli.main(['info']) == 130
    assert 'interrupted' in capsys.readouterr().err


def test_help_lists_commands_and_exit_codes(capsys):
    assert cli.main(['--help']) == 0
    out = capsys.readouterr().out
    for command in ('train', 'eval', 'compare', 'summary', 'gradcheck', 'flow', 'bench', 'info'):
        assert command in out
    assert '130' in out
    assert cli.main(['train', '--help']) == 0
    assert '--checkpoint' not in capsys.readouterr().out


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, '-m', 'tensorlite', 'summary', 'nope'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "tensorlite summary: error: unknown model 'nope'" in done.stderr


def test_json_is_written_atomically_and_without_nan(tmp_path):
    path = utils.write_json(tmp_path / 'sub' / 'x.json',
                          {'a': float('nan'), 'b': np.float32(1.5), 'c': (np.int64(2),),
                           'd': np.arange(3)})
    assert read_json(path) == {'a': None, 'b': 1.5, 'c': [2], 'd': [0, 1, 2]}
    assert os.listdir(tmp_path / 'sub') == ['x.json']


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)          # import matplotlib fails
    code = cli.main(['train', '--model', 'single_frame', '--out', str(tmp_path / 'run'),
                     '--plot', str(tmp_path / 'curves.png')] + TINY)
    assert code == 2
    assert 'pip install -e ".[plot]"' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_train_with_a_diverging_learning_rate_exits_1_and_saves_nothing(tmp_path, capsys):
    out = tmp_path / 'run'
    code = cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion',
                     '--out', str(out), '--lr', '1e30'] + TINY)
    err = capsys.readouterr().err
    assert code == 1
    assert 'FloatingPointError: fit: epoch 1, batch' in err and 'loss is' in err
    assert not (out / 'last.npz').exists()


def _weights(path):
    info = tl.train.load_checkpoint(path)
    return info['model']


def test_train_seed_repeats_bit_for_bit(tmp_path):
    """--seed seeds everything before the model is built: two runs give the same weights."""
    runs = []
    for name in ('a', 'b'):
        assert cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:order', '--seed', '3',
                         '--out', str(tmp_path / name)] + TINY) == 0
        runs.append(_weights(tmp_path / name / 'last.npz'))
    assert runs[0].keys() == runs[1].keys()
    for key in runs[0]:
        assert np.array_equal(runs[0][key], runs[1][key]), key


def test_train_without_out_saves_under_runs_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion'] + TINY) == 0
    out = capsys.readouterr().out
    folders = list((tmp_path / 'runs' / 'single_frame').iterdir())
    assert len(folders) == 1 and (folders[0] / 'last.npz').exists()
    assert f"saving the run to {os.path.join('runs', 'single_frame', folders[0].name)}" in out
    # an --out that holds a run, without --resume: exit 2, nothing touched
    before = (folders[0] / 'last.npz').read_bytes()
    names = sorted(p.name for p in folders[0].iterdir())
    code = cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion',
                     '--out', str(folders[0])] + TINY)
    err = capsys.readouterr().err
    assert code == 2 and 'already holds a run (last.npz); pass --resume' in err
    assert (folders[0] / 'last.npz').read_bytes() == before
    assert sorted(p.name for p in folders[0].iterdir()) == names
    # --resume continues it
    assert cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion',
                     '--out', str(folders[0]), '--resume'] + TINY) == 0


def test_resume_from_an_unreadable_checkpoint_exits_3(tmp_path, capsys):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'last.npz').write_bytes(b'not a checkpoint at all')
    code = cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:motion',
                     '--out', str(run), '--resume'] + TINY)
    assert code == 3 and 'not a checkpoint' in capsys.readouterr().err
    assert (run / 'last.npz').read_bytes() == b'not a checkpoint at all'


def test_skip_bad_trains_and_evaluates_past_an_unreadable_video(tmp_path, capsys):
    root = tmp_path / 'videos'
    for cls, offset in (('a', 10), ('b', 120)):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            frames = np.zeros((8, 32, 32, 3), np.uint8)
            frames[..., 0] = offset + 10 * k + np.arange(8)[:, None, None]
            D.write_video(str(root / cls / f'{k}.gif'), frames, fps=8)
    (root / 'a' / 'broken.mp4').write_text('<html>404 Not Found</html>')   # a failed download
    argv = ['train', '--model', 'single_frame', '--data', str(root), '--frames', '4',
            '--size', '32', '--epochs', '1', '--batch-size', '4', '--val-split', '0',
            '--no-progress']
    code = cli.main(argv + ['--out', str(tmp_path / 'strict')])
    assert code == 1 and 'broken.mp4' in capsys.readouterr().err
    assert cli.main(argv + ['--out', str(tmp_path / 'run'), '--skip-bad', '--workers', '2']) == 0
    out = capsys.readouterr().out
    assert 'training: skipped 1 unreadable video' in out and 'broken.mp4' in out
    assert cli.main(['eval', '--checkpoint', str(tmp_path / 'run' / 'last.npz'), '--data',
                     str(root), '--skip-bad', '--no-progress']) == 0
    assert 'evaluation: skipped 1 unreadable video' in capsys.readouterr().out


def test_resume_says_what_it_keeps_and_refuses_what_it_cannot(tmp_path, capsys):
    run = str(tmp_path / 'run')
    base = ['train', '--data', 'synthetic:motion', '--out', run] + TINY
    assert cli.main(base + ['--model', 'single_frame', '--lr', '0.01']) == 0
    before = (tmp_path / 'run' / 'last.npz').read_bytes()
    capsys.readouterr()
    # another model, or other clips: another run
    assert cli.main(base + ['--model', 'late_fusion', '--resume']) == 2
    err = capsys.readouterr().err
    assert "name: the run has 'single_frame', this command 'late_fusion'" in err
    assert cli.main(['train', '--data', 'synthetic:motion', '--out', run, '--model',
                     'single_frame', '--resume', '--num-clips', '16', '--epochs', '1',
                     '--frames', '8', '--size', '16', '--batch-size', '8', '--no-progress']) == 2
    assert 'size: the run has 32, this command 16' in capsys.readouterr().err
    assert cli.main(base + ['--model', 'single_frame', '--resume', '--optimizer', 'adam']) == 2
    assert 'trained with optimizer adamw, this command asks for adam' in capsys.readouterr().err
    assert (tmp_path / 'run' / 'last.npz').read_bytes() == before          # nothing touched
    # a new learning rate is ignored, and said to be; so are epochs already done
    assert cli.main(base + ['--model', 'single_frame', '--resume', '--lr', '0.5']) == 0
    out = capsys.readouterr().out
    assert "keeps the run's lr 0.01 from the checkpoint (--lr 0.5 is ignored)" in out
    assert 'already trained 1 epoch(s); --epochs 1 is reached, nothing more to train' in out

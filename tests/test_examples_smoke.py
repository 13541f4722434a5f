"""Smoke tests of the examples: each one's main([..., '--quick']) runs in this process and its
returned results and printed lines are checked (train_on_folder.py, inflate_i3d.py,
gradcheck_custom_layer.py); and no example imports a private (underscore) name of tensorlite."""
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
    from tensorlite import cli
    demo, out, out_json = tmp_path / 'demo', tmp_path / 'run', tmp_path / 'folder.json'
    # --quick: 4 videos per class, --epochs 1 --frames 8; the other options go to tensorlite train
    results = folder_example.main(['--quick', '--no-progress', '--demo-dir', str(demo),
                                   '--out', str(out), '--json', str(out_json),
                                   '--batch-size', '8', '--lr', '0.002', '--val-split', '0.25'])
    printed = capsys.readouterr().out
    assert json.loads(out_json.read_text()) == json.loads(json.dumps(results))

    classes = results['classes']
    assert classes == sorted(e for e in os.listdir(demo) if (demo / e).is_dir())
    # every 4th demo video is a folder of PNG frames, the others .mp4 files
    first = demo / classes[1]
    assert sorted((first / e).is_dir() for e in os.listdir(first)) == [False] * 3 + [True]
    # the file that is not a video is skipped by tensorlite train --skip-bad, and reported
    assert [os.path.basename(p) for p in results['unreadable']] == ['unreadable.mp4']
    skipped = [line for line in printed.splitlines() if 'skipped 1 unreadable video' in line]
    assert skipped and 'unreadable.mp4' in skipped[0]

    # the run folder is tensorlite train's, with the options passed through
    assert results['checkpoints'] == ['best.npz', 'last.npz']
    assert [row['epoch'] for row in results['history']] == [1]
    from tensorlite.train import load_run
    _, config = load_run(str(out))
    assert (config['frames'], config['val_split'], config['data_path']) == (8, 0.25, str(demo))
    assert (config['train']['batch_size'], config['train']['lr']) == (8, 0.002)
    assert results['eval']['num_samples'] == len(classes)   # one held-out video per class
    assert 0 <= results['eval']['top1'] <= 1
    # ... which the docstring's commands accept as they stand (the demo's unreadable file falls in
    # the training part of the split, so eval needs no --skip-bad)
    assert cli.main(['eval', str(out), '--no-progress']) == 0
    video = results['predictions'][0]['video']
    assert cli.main(['predict', str(out), video, '--topk', '3']) == 0
    assert 'top-1' in capsys.readouterr().out

    # predictions of one held-out video per class, printed with their top 3 classes
    assert len(results['predictions']) == len(classes)
    for item in results['predictions']:
        labels = [p['label'] for p in item['predictions']]
        probabilities = [p['probability'] for p in item['predictions']]
        assert len(labels) == 3 and set(labels) <= set(classes)
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1
        shown = ', '.join(f"{p['label']} {p['probability']:.3f}" for p in item['predictions'])
        assert f"{os.path.relpath(item['video'], demo)}: {shown}" in printed
    assert f"tensorlite eval {out}" in printed and f"tensorlite predict {out}" in printed
    # the same settings reuse the folder instead of writing it again
    assert folder_example.write_demo_folder(str(demo), videos_per_class=4) == 0


def test_train_on_folder_passes_options_through(folder_example):
    args, root, options = folder_example.parse_args(['videos', '--epochs', '3', '--quick',
                                                     '--model', 'c3d', '--scheduler', 'cosine'])
    assert (root, args.model, args.videos_per_class) == ('videos', 'c3d', 4)
    # --quick adds --frames 8 and --epochs 1 only where the command line gave none
    assert options == ['--epochs', '3', '--scheduler', 'cosine', '--frames', '8']
    args, root, options = folder_example.parse_args(['--epochs', '3'])
    assert (root, options) == (None, ['--epochs', '3'])    # no ROOT: the demo


def test_train_on_folder_reports_tensorlite_train_errors(folder_example, tmp_path, capsys):
    (tmp_path / 'videos' / 'jump').mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        folder_example.main([str(tmp_path / 'videos'), '--model', 'no_such_net',
                             '--out', str(tmp_path / 'run')])
    assert exit_.value.code == 2                            # tensorlite's exit code
    assert "no_such_net" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        folder_example.parse_args(['videos', '--data', 'other'])
    assert 'the data is ROOT' in capsys.readouterr().err


# ---- examples use public names only --------------------------------------------------------------

def private_imports(source):
    """Where `source` imports, or reads through an imported name, an underscore-prefixed name of
    tensorlite or models (dunder names such as __version__ are public): ['line N: name', ...]."""
    import ast

    def private(name):
        return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))

    def ours(module):
        return module is not None and module.split('.')[0] in ('tensorlite', 'models')

    found, imported = [], set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if ours(alias.name):
                    imported.add(alias.asname or alias.name.split('.')[0])
                    found += [f"line {node.lineno}: {alias.name}"
                              for part in alias.name.split('.') if private(part)][:1]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and ours(node.module):
            if any(private(part) for part in node.module.split('.')):
                found.append(f"line {node.lineno}: {node.module}")
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if private(alias.name):
                    found.append(f"line {node.lineno}: {node.module}.{alias.name}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in imported:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize('source, expected', [
    ('from tensorlite._atomic import atomic_write', ['line 1: tensorlite._atomic']),
    ('from tensorlite.cli import write_json, _plain', ['line 1: tensorlite.cli._plain']),
    ('import tensorlite.data._io as io', ['line 1: tensorlite.data._io']),
    ('import tensorlite.data as D\nD._probe(p)', ['line 2: D._probe']),
    ('import tensorlite\ntensorlite.cli._plain(1)', ['line 2: tensorlite.cli._plain']),
    ('from models import _common', ['line 1: models._common']),
    ('from tensorlite import __version__, cli\ncli.main([])', []),
    ('import numpy as np\nnp._x\nmodel._modules', []),   # not tensorlite's names
])
def test_private_imports_finds_underscore_names(source, expected):
    assert private_imports(source) == expected


@pytest.mark.parametrize('name', sorted(n for n in os.listdir(EXAMPLES) if n.endswith('.py')))
def test_examples_import_no_private_names(name):
    with open(os.path.join(EXAMPLES, name), encoding='utf-8') as f:
        assert private_imports(f.read()) == [], f"examples/{name} uses private names"


def test_profile_step_lists_the_kernels_of_one_step(tmp_path, capsys):
    example = load_example('profile_step')
    trace = tmp_path / 'step.json'
    example.main(['--model', 'c3d', '--rows', '40', '--trace', str(trace)])
    printed = capsys.readouterr().out
    assert 'kernel launches on the cpu twin(s)' in printed
    for name in ('conv.vol2col', 'Conv ', 'ConvBackward', 'pool.max_pool_fwd'):
        assert name in printed
    assert json.loads(trace.read_text())['traceEvents']


def test_finetune_pretrained_quick(tmp_path, capsys):
    import tensorlite as tl
    from tensorlite.models import build_model
    example = load_example('finetune_pretrained')
    demo = str(tmp_path / 'demo')
    # without --weights: random stand-in weights, and it says so
    results = example.main(['--quick', '--demo-dir', demo])
    printed = capsys.readouterr().out
    assert 'weights: NONE GIVEN' in printed and '(stand-in weights)' in printed
    classes = results['classes']
    assert not results['pretrained'] and len(classes) >= 2
    # only the new head trains: 512 features (r3d_18) to the folder's classes
    assert results['trained_parameters'] == 512 * len(classes) + len(classes)
    assert [row['epoch'] for row in results['history']] == [1]
    assert 0 <= results['val']['top1'] <= 1 and results['val']['num_samples'] == len(classes)
    # with --weights: a converted checkpoint (here the paper model's own state dict) is loaded
    weights = str(tmp_path / 'r3d_18.npz')
    tl.save(build_model('r3d_18', 400, preset='paper').state_dict(), weights)
    results = example.main(['--quick', '--demo-dir', demo, '--weights', weights])
    printed = capsys.readouterr().out
    assert f'weights: {weights}' in printed and 'stand-in' not in printed
    assert results['pretrained']

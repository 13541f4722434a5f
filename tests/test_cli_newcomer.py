"""A newcomer's path through the CLI (issue 18): defaults that learn, the run's start, best.npz,
eval of a run folder, predict, --version, --help."""
import json

import numpy as np
import pytest

import tensorlite
import tensorlite.data as D
from tensorlite import cli
from tensorlite.train import run as train_run
from tensorlite.train import load_run, predict, resolve_checkpoint

FOLDER_TINY = ['--frames', '4', '--size', '32', '--batch-size', '4', '--no-progress']


def make_folder(root, classes=('left', 'right', 'still'), per_class=4):
    """GIF videos whose class is a bright bar's motion: left, right, or none."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            frames = np.full((8, 32, 32, 3), 20 + 10 * k, np.uint8)
            for t in range(8):
                x = {0: 28 - 3 * t, 1: 3 * t, 2: 14}[c]
                frames[t, :, x:x + 4] = 250
            D.write_video(str(root / name / f'{k}.gif'), frames, fps=8)
    return root


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(['--version'])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"tensorlite {tensorlite.__version__}"


def test_every_option_shows_its_default_and_every_command_has_examples(capsys):
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        text = sub.format_help()
        assert 'examples:\n  tensorlite ' + name in text, name
        for action in sub._actions:
            if action.option_strings and action.nargs != 0 and action.dest != 'help':
                assert action.help and 'default' in sub._get_formatter()._get_help_string(
                    action).lower(), (name, action.option_strings)


def test_train_defaults_are_the_model_recipe_and_single_frame_learns_scene(tmp_path, capsys):
    run = tmp_path / 'run'
    assert cli.main(['train', '--model', 'single_frame', '--data', 'synthetic:scene', '--out',
                     str(run), '--no-progress', '--json', str(tmp_path / 'run.json')]) == 0
    out = capsys.readouterr().out
    assert 'data: synthetic:scene: 6 classes: pool, forest, kitchen, field, beach, night' in out
    assert 'train: 384 clips (pool 64, forest 64,' in out and 'val: 96 clips' in out
    assert 'recipe: adamw lr 0.003, weight decay 0.0001, batch 16' in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith('epoch ')] == \
        ['1/4', '2/4', '3/4', '4/4']                     # one line per epoch without bars
    result = json.loads((tmp_path / 'run.json').read_text())
    assert result['final']['top1'] >= 0.9
    assert result['config']['train']['optimizer'] == 'adamw'
    assert (run / 'best.npz').exists() and (run / 'last.npz').exists()


def test_train_clip_grad_norm_scheduler_and_warmup(tmp_path, capsys):
    base = ['train', '--model', 'single_frame', '--data', 'synthetic:motion', '--num-clips', '16',
            '--frames', '4', '--size', '16', '--batch-size', '8', '--no-progress', '--lr', '0.01']
    assert cli.main(base + ['--out', str(tmp_path / 'a'), '--epochs', '4', '--scheduler',
                            'cosine', '--warmup-epochs', '1', '--clip-grad-norm', '0.5',
                            '--json', str(tmp_path / 'a.json')]) == 0
    history = json.loads((tmp_path / 'a.json').read_text())['history']
    rates = [row['lr'] for row in history]
    assert rates[0] == pytest.approx(0.005) and rates[1] == pytest.approx(0.01)   # warmup
    assert rates[2:] == pytest.approx([0.0075, 0.0025])              # cosine over 3 epochs
    assert 'gradient norm clipped at 0.5' in capsys.readouterr().out
    assert cli.main(base + ['--out', str(tmp_path / 'b'), '--epochs', '2', '--warmup-epochs',
                            '2']) == 2
    assert '--warmup-epochs 2 must be fewer' in capsys.readouterr().err


def test_i3d_recipe_clips_its_gradients():
    recipe = train_run.train_recipe('i3d', 'synthetic', 'motion')
    assert recipe['clip_grad_norm'] == 5.0 and recipe['optimizer'] == 'adamw'
    # a folder: the same number of optimizer steps as compare's 'scene' run, over its videos
    scene = train_run.train_recipe('c3d', 'synthetic', 'scene')
    steps = scene['epochs'] * -(-scene['clips'] // 16)
    folder = train_run.train_recipe('c3d', 'folder', num_train=40)
    assert folder['epochs'] == -(-steps // 3)


@pytest.fixture(scope='module')
def folder_run(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp('videos'))
    run = root.parent / 'run'
    code = cli.main(['train', '--model', 'single_frame', '--data', str(root), '--out', str(run),
                     '--epochs', '3', '--val-split', '0.25', '--lr', '0.01'] + FOLDER_TINY)
    assert code == 0
    return root, run


def test_a_folder_run_says_its_classes_and_split(folder_run, tmp_path, capsys):
    root, _ = folder_run
    assert cli.main(['train', '--model', 'single_frame', '--data', str(root), '--out',
                     str(tmp_path / 'r'), '--epochs', '1'] + FOLDER_TINY) == 0
    out = capsys.readouterr().out
    assert f'data: {root}: 3 classes: left, right, still' in out
    assert 'train: 9 clips (left 3, right 3, still 3)' in out
    assert 'val: 3 clips (left 1, right 1, still 1)' in out


def test_eval_takes_a_run_folder_and_prefers_best(folder_run, capsys):
    _, run = folder_run
    assert resolve_checkpoint(run) == str(run / 'best.npz')
    assert cli.main(['eval', str(run), '--no-progress']) == 0
    out = capsys.readouterr().out
    assert f'evaluating {run / "best.npz"}' in out and '(3 clips, 1 view)' in out
    assert cli.main(['eval', '--checkpoint', str(run / 'last.npz'), '--no-progress']) == 0
    assert cli.main(['eval', '--no-progress']) == 2
    assert 'which run?' in capsys.readouterr().err
    assert cli.main(['eval', str(run / 'nothing_here')]) == 3


def test_eval_on_a_folder_with_some_of_the_classes_and_on_one_video(folder_run, tmp_path, capsys):
    root, run = folder_run
    other = make_folder(tmp_path / 'other', classes=('still', 'left'), per_class=2)
    assert cli.main(['eval', str(run), '--data', str(other), '--no-progress',
                     '--json', str(tmp_path / 'e.json')]) == 0
    metrics = json.loads((tmp_path / 'e.json').read_text())['metrics']
    assert metrics['num_samples'] == 4 and len(metrics['confusion_matrix']) == 3
    # labels matched by name: 'still' is the run's class 2, 'left' its class 0
    assert np.asarray(metrics['confusion_matrix']).sum(axis=1).tolist() == [2, 0, 2]
    unknown = make_folder(tmp_path / 'unknown', classes=('jump',), per_class=1)
    assert cli.main(['eval', str(run), '--data', str(unknown)]) == 2
    assert "['jump'] are not among them" in capsys.readouterr().err
    assert cli.main(['eval', str(run), '--data', str(root / 'right' / '0.gif'),
                     '--no-progress', '--json', str(tmp_path / 'one.json')]) == 0
    assert json.loads((tmp_path / 'one.json').read_text())['metrics']['num_samples'] == 1
    assert cli.main(['eval', str(run), '--data', str(tmp_path / 'unknown' / 'jump' / '0.gif')]) == 2
    assert 'use tensorlite predict' in capsys.readouterr().err


def test_eval_of_a_run_without_validation_says_it_scores_training_videos(folder_run, tmp_path,
                                                                          capsys):
    root, _ = folder_run
    run = tmp_path / 'all'
    assert cli.main(['train', '--model', 'single_frame', '--data', str(root), '--out', str(run),
                     '--epochs', '1', '--val-split', '0'] + FOLDER_TINY) == 0
    assert 'val: none (--val-split 0' in capsys.readouterr().out
    assert cli.main(['eval', str(run), '--no-progress']) == 0
    assert 'these are its training videos' in capsys.readouterr().out


def test_predict_prints_and_writes_the_top_classes(folder_run, tmp_path, capsys):
    root, run = folder_run
    videos = [str(root / 'left' / '0.gif'), str(root / 'still' / '1.gif')]
    assert cli.main(['predict', str(run)] + videos + ['--topk', '2', '--json',
                                                      str(tmp_path / 'p.json')]) == 0
    out = capsys.readouterr().out
    assert all(v in out for v in videos)
    written = json.loads((tmp_path / 'p.json').read_text())
    assert [item['video'] for item in written] == videos
    for item in written:
        probabilities = [p['probability'] for p in item['predictions']]
        assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)
        assert {p['label'] for p in item['predictions']} <= {'left', 'right', 'still'}
    # the Python function gives the same, from the folder or from a loaded run
    assert predict(run, videos, topk=2) == written
    model, config = load_run(run)
    assert predict((model, config), videos[0], topk=5)[0]['predictions'][0] == \
        written[0]['predictions'][0]
    three = predict(run, videos[:1], topk=3, views=3)[0]['predictions']
    assert sum(p['probability'] for p in three) == pytest.approx(1.0, abs=1e-5)
    assert cli.main(['predict', str(run), str(tmp_path / 'missing.mp4')]) == 3
    with pytest.raises(ValueError, match='topk'):
        predict(run, videos, topk=0)


def test_readme_path_train_on_a_folder_with_every_default_then_predict(tmp_path, capsys):
    """The README's first five minutes on one's own videos: train with nothing but --model,
    --data and --out, then predict on video files."""
    root = make_folder(tmp_path / 'my_videos')
    run = tmp_path / 'runs' / 'mine'
    assert cli.main(['train', '--model', 'single_frame', '--data', str(root), '--out', str(run),
                     '--no-progress']) == 0
    out = capsys.readouterr().out
    assert 'recipe: adamw lr 0.003' in out and (run / 'best.npz').exists()
    videos = [str(root / c / '3.gif') for c in ('left', 'right', 'still')]
    assert cli.main(['predict', str(run)] + videos) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(':')[0] for line in printed[1:]] == videos

"""Data-parallel training end to end (issue 19): `mpiexec -n 2 tensorlite train` against one
process with twice the batch, rank-0-only files, validation over every rank's clips, exact
resume, and compare's cells spread over the ranks."""
import json
import sys

import numpy as np
import pytest

from mpi_helpers import needs_mpi, run_ranks
from tensorlite.train import load_checkpoint

TRAIN = ['train', '--model', 'c3d', '--data', 'synthetic:order', '--num-clips', '32',
         '--val-clips', '12', '--frames', '8', '--size', '16', '--optimizer', 'sgd', '--lr', '0.01',
         '--no-shuffle', '--sync-bn', '--no-progress']

CLI = '''
import sys
from tensorlite import cli
code = cli.main({argv!r})
report(code=code)
sys.exit(code)
'''


def cli_on_ranks(tmp_path, argv, n=2):
    return run_ranks(tmp_path, CLI.format(argv=argv), n=n)


def cli_alone(argv):
    import subprocess
    done = subprocess.run([sys.executable, '-m', 'tensorlite'] + argv, capture_output=True,
                          text=True, timeout=300, env=_one_thread())
    assert done.returncode == 0, done.stderr
    return done


def _one_thread():
    import os
    return dict(os.environ, OMP_NUM_THREADS='1', NUMBA_NUM_THREADS='1')


@needs_mpi
def test_two_ranks_equal_one_process_with_twice_the_batch(tmp_path):
    """No shuffling and SyncBatchNorm: 2 ranks with batches of 4 see, step for step, the clips of
    one process's batches of 8, and must end with the same weights (float32 tolerance). SGD: with
    Adam, a conv bias just before BatchNorm (true gradient 0) takes steps of about the learning
    rate from rounding noise, which differs with the order of summation, even in one process."""
    cli_on_ranks(tmp_path, TRAIN + ['--batch-size', '4', '--epochs', '2',
                                    '--out', str(tmp_path / 'ranks'), '--json',
                                    str(tmp_path / 'ranks.json')])
    cli_alone(TRAIN + ['--batch-size', '8', '--epochs', '2', '--out', str(tmp_path / 'alone'),
                       '--json', str(tmp_path / 'alone.json')])
    ranks = load_checkpoint(tmp_path / 'ranks' / 'last.npz')
    alone = load_checkpoint(tmp_path / 'alone' / 'last.npz')
    assert ranks['model'].keys() == alone['model'].keys()
    for key, value in alone['model'].items():
        np.testing.assert_allclose(ranks['model'][key], value, rtol=2e-4, atol=2e-5,
                                   err_msg=key)
    a, b = (json.loads((tmp_path / f'{name}.json').read_text()) for name in ('ranks', 'alone'))
    # validation over every rank's clips: the whole validation set, the same metrics
    assert a['final']['num_samples'] == b['final']['num_samples'] == 12
    assert a['final']['top1'] == pytest.approx(b['final']['top1'])
    for x, y in zip(a['history'], b['history']):
        assert x['train_loss'] == pytest.approx(y['train_loss'], rel=1e-4)
        assert x['val_accuracy'] == pytest.approx(y['val_accuracy'])


@needs_mpi
def test_only_rank_0_writes_and_a_resumed_run_is_exact(tmp_path):
    straight = tmp_path / 'straight'
    cli_on_ranks(tmp_path, TRAIN + ['--batch-size', '4', '--epochs', '2', '--out', str(straight)])
    files = sorted(p.name for p in straight.iterdir())
    assert files == ['best.npz', 'history.csv', 'history.json', 'last.npz'], files
    resumed = tmp_path / 'resumed'
    cli_on_ranks(tmp_path, TRAIN + ['--batch-size', '4', '--epochs', '1', '--out', str(resumed)])
    cli_on_ranks(tmp_path, TRAIN + ['--batch-size', '4', '--epochs', '2', '--out', str(resumed),
                                    '--resume'])
    a = load_checkpoint(straight / 'last.npz')['model']
    b = load_checkpoint(resumed / 'last.npz')['model']
    for key in a:
        assert np.array_equal(a[key], b[key]), key


@needs_mpi
def test_compare_spreads_its_cells_over_the_ranks(tmp_path):
    argv = ['compare', '--quick', '--models', 'single_frame,early_fusion', '--families',
            'scene,motion', '--no-progress', '--json', str(tmp_path / 'ranks.json')]
    done = cli_on_ranks(tmp_path, argv)
    records = json.loads((tmp_path / 'ranks.json').read_text())
    assert [(r['model'], r['family']) for r in records] == [
        ('single_frame', 'scene'), ('single_frame', 'motion'), ('early_fusion', 'scene'),
        ('early_fusion', 'motion')]
    assert done.stdout.count('single_frame |') == 1          # one table, from rank 0
    alone = tmp_path / 'alone.json'
    cli_alone(argv[:-1] + [str(alone), '--jobs', '1'])
    for r, s in zip(records, json.loads(alone.read_text())):
        assert r['accuracy'] == s['accuracy'] and r['params'] == s['params']

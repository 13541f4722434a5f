"""tensorlite.distributed: the collectives on 2 MPI ranks (mpiexec -n 2, one thread each), a
world of one without mpiexec, and the errors."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.distributed as dist
from mpi_helpers import needs_mpi, results, run_ranks


@pytest.fixture
def fresh_group():
    """Each test starts and ends without a process group."""
    if dist.is_initialized():
        dist.destroy_process_group()
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_process_without_mpiexec_is_a_world_of_one(fresh_group, monkeypatch):
    """Without mpi4py (the test process itself never initializes MPI: a singleton run with
    mpi4py is the next test)."""
    monkeypatch.setattr(dist, 'is_mpi_available', lambda: False)
    t = tl.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(RuntimeError, match='init_process_group'):
        dist.all_reduce(t)
    assert dist.get_rank() == 0 and dist.get_world_size() == 1 and not dist.is_initialized()
    dist.init_process_group()
    assert dist.is_initialized() and dist.get_world_size() == 1
    dist.all_reduce(t)
    dist.broadcast(t, src=0)
    out = [tl.zeros(2, 3, dtype=t.dtype)]
    dist.all_gather(out, t)
    assert np.array_equal(t.numpy(), np.arange(6.0).reshape(2, 3))
    assert np.array_equal(out[0].numpy(), t.numpy())
    assert dist.all_reduce(t, async_op=True).wait()
    dist.barrier()
    with pytest.raises(RuntimeError, match='already initialized'):
        dist.init_process_group()
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(t, op='mean')
    with pytest.raises(ValueError, match='src must be a rank in 0..0'):
        dist.broadcast(t, src=1)
    with pytest.raises(ValueError, match='must hold 1 Tensors'):
        dist.all_gather([], t)
    with pytest.raises(TypeError, match='takes a tensorlite Tensor'):
        dist.all_reduce(np.zeros(3))
    dist.destroy_process_group()
    with pytest.raises(ValueError, match='backend must be one of'):
        dist.init_process_group('gloo')


@needs_mpi
def test_with_mpi4py_but_without_mpiexec_a_world_of_one(tmp_path):
    import subprocess
    import sys
    script = tmp_path / 'single.py'
    script.write_text(
        "import numpy as np, tensorlite as tl, tensorlite.distributed as dist\n"
        "dist.init_process_group()\n"
        "t = tl.tensor(np.arange(3.0)); dist.all_reduce(t); dist.broadcast(t, 0)\n"
        "print(dist.get_rank(), dist.get_world_size(), t.numpy().tolist())\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '0 1 [0.0, 1.0, 2.0]'


def test_mpiexec_without_mpi4py_is_refused(fresh_group, monkeypatch):
    monkeypatch.setattr(dist, 'is_mpi_available', lambda: False)
    monkeypatch.setenv('PMI_RANK', '1')
    with pytest.raises(RuntimeError, match='started by mpiexec but mpi4py is not installed'):
        dist.init_process_group()


COLLECTIVES = '''
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 2
x = tl.tensor(np.arange(6.0).reshape(2, 3) + 10 * rank)
s = tl.tensor(x.numpy().copy()); dist.all_reduce(s)
a = tl.tensor(x.numpy().copy()); dist.all_reduce(a, op='avg')
m = tl.tensor(x.numpy().copy()); dist.all_reduce(m, op='max')
w = tl.tensor(x.numpy().astype(np.float32)); work = dist.all_reduce(w, async_op=True); work.wait()
i = tl.tensor(np.array([rank + 1, 7], np.int64)); dist.all_reduce(i, op='product')
b = tl.tensor(x.numpy().copy()); dist.broadcast(b, src=1)
out = [tl.zeros(2, 3, dtype=tl.float64) for _ in range(world)]; dist.all_gather(out, x)
report(**{name: t.numpy().ravel().tolist() for name, t in
          (('sum', s), ('avg', a), ('max', m), ('async', w), ('prod', i), ('bcast', b))})
report(gather=[o.numpy().ravel().tolist() for o in out])
errors = []
try:
    dist.all_reduce(tl.zeros(2 + rank, 3))
except ValueError as e:
    errors.append(str(e))
try:
    dist.broadcast(tl.zeros(3, dtype=tl.float32 if rank else tl.float64), src=0)
except ValueError as e:
    errors.append(str(e))
report(errors=errors)
names = ['mine %d' % rank, rank]
dist.broadcast_object_list(names, src=1)
gathered = [None, None]
dist.all_gather_object(gathered, {'rank': rank})
report(objects=names, gathered=gathered)
dist.barrier()
'''


@needs_mpi
def test_collectives_on_two_ranks(tmp_path):
    run_ranks(tmp_path, COLLECTIVES)
    got = results(tmp_path)
    assert sorted(got) == [0, 1]
    x = [np.arange(6.0) + 10 * r for r in range(2)]
    expected = {'sum': x[0] + x[1], 'avg': (x[0] + x[1]) / 2, 'max': x[1],
                'async': x[0] + x[1], 'prod': np.array([2, 49]), 'bcast': x[1]}
    for name, values in expected.items():
        for r in (0, 1):
            assert np.allclose(got[r][name], values), (name, r, got[r][name])
    for r in (0, 1):
        assert np.allclose(got[r]['gather'], [x[0], x[1]])
        messages = got[r]['errors']
        assert len(messages) == 2, messages
        assert 'different tensors' in messages[0] and 'shape (2, 3) float32' in messages[0] \
            and 'shape (3, 3) float32' in messages[0]
        assert 'float32' in messages[1] and 'float64' in messages[1]
        assert got[r]['objects'] == ['mine 1', 1]
        assert got[r]['gathered'] == [{'rank': 0}, {'rank': 1}]


CUDA_SIMULATED = '''
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
dist.init_process_group()
rank = dist.get_rank()
t = tl.tensor(np.full(4, rank + 1.0, np.float32)).to('cuda')
dist.all_reduce(t)
work = dist.all_reduce(t, op='avg', async_op=True); work.wait()
report(device=str(t.device), values=t.to('cpu').numpy().tolist())
'''


@needs_mpi
def test_cuda_tensors_go_through_host_copies(tmp_path):
    run_ranks(tmp_path, CUDA_SIMULATED, env={'TENSORLITE_SIMULATE_CUDA': '1',
                                             'NUMBA_ENABLE_CUDASIM': '1'})
    got = results(tmp_path)
    for r in (0, 1):
        assert got[r]['device'] == 'cuda' and got[r]['values'] == [3.0] * 4


@needs_mpi
def test_a_rank_that_raises_ends_the_job_without_a_hang(tmp_path):
    """Rank 1 raises before a collective rank 0 waits in: mpiexec must end the job, non-zero,
    well within the timeout."""
    import time
    started = time.monotonic()
    done = run_ranks(tmp_path, '''
        import tensorlite as tl
        import tensorlite.distributed as dist
        dist.init_process_group()
        if dist.get_rank() == 1:
            raise RuntimeError('rank 1 fails')
        dist.all_reduce(tl.zeros(3))
        ''', check=False, timeout=120)
    assert done.returncode != 0 and 'rank 1 fails' in done.stderr
    assert time.monotonic() - started < 60


def test_ranks_on_one_machine_share_its_cores(monkeypatch):
    """Under mpiexec every rank would start thread pools as large as the machine (4 min 14 s for
    what takes 13 s with the cores shared): the variables the user left unset are cores // ranks.
    The test works on a copy of the environment: the test process's own must not change (Numba
    refuses another NUMBA_NUM_THREADS once its pool runs)."""
    import os
    from tensorlite import _rank_threads
    environment = {k: v for k, v in os.environ.items()
                   if k not in _rank_threads.THREAD_VARIABLES + (
                       'PMI_SIZE', 'MPI_LOCALNRANKS', 'OMPI_COMM_WORLD_SIZE',
                       'OMPI_COMM_WORLD_LOCAL_SIZE', 'PMIX_SIZE')}
    monkeypatch.setattr(os, 'environ', environment)
    monkeypatch.setattr(_rank_threads, '_decided', {})
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(8)), raising=False)
    assert _rank_threads.share_cores_between_ranks() == {}           # not under mpiexec
    environment.update(PMI_SIZE='8', MPI_LOCALNRANKS='2')            # 2 of the 8 on this machine
    environment['OPENBLAS_NUM_THREADS'] = '3'                        # the user's choice stays
    decided = _rank_threads.share_cores_between_ranks()
    assert decided == {'OMP_NUM_THREADS': '4', 'MKL_NUM_THREADS': '4', 'NUMBA_NUM_THREADS': '4'}
    assert environment['OPENBLAS_NUM_THREADS'] == '3' and environment['NUMBA_NUM_THREADS'] == '4'
    monkeypatch.setattr(_rank_threads, '_decided', {})
    for name in _rank_threads.THREAD_VARIABLES:
        environment.pop(name, None)
    environment['MPI_LOCALNRANKS'] = '16'                            # more ranks than cores
    assert set(_rank_threads.share_cores_between_ranks().values()) == {'1'}

"""Running a test's script on 2 MPI ranks: `mpiexec -n 2 python script.py`, with a timeout, one
thread per rank, and each rank's output kept apart."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

try:
    import mpi4py  # noqa: F401
    HAVE_MPI = True
except ImportError:
    HAVE_MPI = False

needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason='mpi4py is not installed (pip install -e ".[dist]")')

@pytest.fixture
def world_of_one(monkeypatch):
    """A process group of one rank, without MPI in the test process (which never initializes MPI:
    2-rank tests run through run_ranks)."""
    from tensorlite import distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    monkeypatch.setattr(dist, 'is_mpi_available', lambda: False)
    dist.init_process_group()
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


MPI_TIMEOUT = 240               # seconds a 2-rank test may take before mpiexec is killed


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    return beside if os.path.exists(beside) else shutil.which('mpiexec')


def run_ranks(tmp_path, code, n=2, timeout=MPI_TIMEOUT, env=None, check=True):
    """Run `code` (a script's text, dedented) on n ranks; returns the CompletedProcess (stdout and
    stderr as text). check=True fails the test, showing both, when the job exits non-zero."""
    script = tmp_path / 'rank_script.py'
    script.write_text(REPORT + textwrap.dedent(code))
    environment = dict(os.environ, OMP_NUM_THREADS='1', NUMBA_NUM_THREADS='1',
                       PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(__file__))]
                                                  + os.environ.get('PYTHONPATH', '').split(os.pathsep)))
    environment.update(env or {})
    command = [mpiexec(), '-n', str(n), sys.executable, str(script)]
    # a session of its own: mpiexec, its proxy and the ranks share one process group, killed
    # whole on a timeout and after the job (nothing of it may outlive the test)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, cwd=str(tmp_path), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} did not finish in {timeout} s:\n{out}\n{err}")
    finally:
        _kill_group(proc)
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    if check and done.returncode != 0:
        pytest.fail(f"mpiexec -n {n} exited with {done.returncode}:\nstdout:\n{done.stdout}\n"
                    f"stderr:\n{done.stderr}")
    return done


def _kill_group(proc):
    import signal
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# The ranks' stdout reaches mpiexec through pipes and may interleave mid-line, so a rank's
# results go to a file of its own: a script calls report(key=value, ...) (JSON-able values) and
# the test reads results(tmp_path) -> {rank: {key: value}}.
REPORT = """
import json as _json, os as _os
def report(**values):
    from tensorlite import distributed as _dist
    path = 'result_%d.json' % _dist.get_rank()
    old = _json.load(open(path)) if _os.path.exists(path) else {}
    old.update(values)
    with open(path + '.tmp', 'w') as f:
        _json.dump(old, f)
    _os.replace(path + '.tmp', path)
"""


def results(tmp_path):
    import json
    return {int(p.stem.split('_')[1]): json.loads(p.read_text())
            for p in tmp_path.glob('result_*.json')}

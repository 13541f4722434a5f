"""Test configuration.

CUDA twins run under Numba's CUDA simulator when this machine has no GPU: the variable must be set
before numba.cuda is first imported, which is why it is set here, at collection time.
"""
import os
import shutil
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings


def _has_gpu():
    return shutil.which('nvidia-smi') is not None or os.path.exists('/dev/nvidia0')


if not _has_gpu():
    os.environ.setdefault('NUMBA_ENABLE_CUDASIM', '1')
    if 'numba' in sys.modules:                  # numba reads its config at import: read it again
        assert 'numba.cuda' not in sys.modules, 'numba.cuda was imported before the simulator was set'
        from numba.core import config
        config.reload_config()
    # every simulated launch (the twin tests' NumPy arrays and the simulated device's arrays): the
    # __cuda_array_interface__ hand-off, a short thread switch interval, race-free shared arrays
    from numba.core import config as _numba_config
    if _numba_config.ENABLE_CUDASIM:
        from tensorlite.testing import simcupy
        simcupy.patch_numba_simulator()
        if os.environ.get('TENSORLITE_RECORD_LAUNCHES'):    # the gpu-report's signatures
            from tensorlite.kernels.cuda import _launches
            _launches.record_to(os.environ['TENSORLITE_RECORD_LAUNCHES'])

# Small, deterministic property tests: the suite must stay fast on 2 cores.
settings.register_profile('default', max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile('thorough', max_examples=200, deadline=None)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'default'))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _sigint_left_as_found():
    """A test must not leave the test process ignoring Ctrl-C: child processes inherit SIG_IGN, and
    a Python child that starts with SIGINT ignored never raises KeyboardInterrupt."""
    import signal
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test changed the SIGINT handler from {before!r} to {after!r}")


def _processes_left_behind(since):
    """Running (not zombie) processes that are children of this test process, or orphans of it:
    re-parented to init, in this process group, started after `since` (clock ticks since boot).
    {pid: command line}. Linux only (empty elsewhere)."""
    if not os.path.isdir('/proc/self'):
        return {}
    me, group, found = os.getpid(), os.getpgid(0), {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            state, ppid, pgid, start = fields[0], int(fields[1]), int(fields[2]), int(fields[19])
            if state == 'Z' or not (ppid == me or (ppid == 1 and pgid == group and start >= since)):
                continue
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                found[int(entry)] = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
        except (OSError, IndexError, ValueError):     # the process ended while we looked
            continue
    return found


def _start_ticks():
    try:
        with open('/proc/self/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


_SESSION_START = _start_ticks()


_MULTIPROCESSING_HELPERS = ('multiprocessing.resource_tracker', 'multiprocessing.forkserver')


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """A test must not leave a process running: an ffmpeg, a DataLoader worker, a child Python
    (an orphan re-parented to init counts too). The ones already there before the test are not its
    doing, and multiprocessing's own helpers (its resource tracker and forkserver, one per test
    process, which exit with it) are not left behind; the new ones get two seconds to finish
    exiting."""
    import time
    before = _processes_left_behind(_SESSION_START)
    yield
    deadline = time.monotonic() + 2.0
    while True:
        left = {p: c for p, c in _processes_left_behind(_SESSION_START).items()
                if p not in before and not any(helper in c for helper in _MULTIPROCESSING_HELPERS)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        pytest.fail(f"the test left {len(left)} process(es) running: "
                    + '; '.join(f"pid {p}: {c[:120]}" for p, c in left.items()))

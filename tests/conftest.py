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

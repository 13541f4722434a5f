"""OpenMP's wait policy: tensorlite asks for PASSIVE before Numba starts its pool (backend.py), keeps
a user's own choice, and says when it came too late.  Each case is a fresh interpreter, because
libgomp reads the environment once, when it is loaded."""
import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
if sys.argv[1] == 'gomp-first':
    import ctypes, ctypes.util
    ctypes.CDLL(ctypes.util.find_library('gomp') or 'libgomp.so.1')
import numpy as np, numba
import tensorlite as tl
@numba.njit(parallel=True)
def touch(a):
    for i in numba.prange(a.size):
        a[i] += 1
touch(np.zeros(4))
print(json.dumps(dict(tl.backend.cpu_threads(), layer=numba.threading_layer())))
"""


def probe(mode='plain', **env):
    base = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    out = subprocess.run([sys.executable, '-c', PROBE, mode], env={**base, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_passive_policy_is_set_before_numba_starts_its_pool():
    info = probe()
    assert info['omp_wait_policy'] == 'PASSIVE' and info['set_by_tensorlite']
    if info['layer'] == 'omp' and sys.platform.startswith('linux'):
        assert info['in_effect'] is True


@pytest.mark.parametrize('env', [{'OMP_WAIT_POLICY': 'ACTIVE'}, {'GOMP_SPINCOUNT': '1000'}])
def test_a_users_own_policy_is_kept(env):
    info = probe(**env)
    assert not info['set_by_tensorlite']
    assert info['omp_wait_policy'] == env.get('OMP_WAIT_POLICY')
    assert info['gomp_spincount'] == env.get('GOMP_SPINCOUNT')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc/self/maps')
def test_too_late_when_libgomp_was_loaded_first():
    try:
        info = probe('gomp-first')
    except AssertionError as e:
        if 'gomp' in str(e):
            pytest.skip(f'no libgomp to load here: {e}')
        raise
    assert info['in_effect'] is False

"""Devices and array modules.

'cpu' means NumPy (plus Numba's @njit kernels); 'cuda' means CuPy (plus Numba's @cuda.jit kernels).
Everything above this file asks `array_module(x)` for the module that owns an array and never
imports CuPy itself, so one code path serves both devices.

With `TENSORLITE_SIMULATE_CUDA=1` in the environment, device 'cuda' is simulated: its module is the
NumPy-backed stand-in `tensorlite.testing.simcupy` and its kernels run in Numba's CUDA simulator
(docs/gpu.md says what that proves).  The flag is read when device 'cuda' is asked for, so a test
can switch it on with `monkeypatch.setenv`; Numba's simulator itself must be chosen before
`numba.cuda` is imported, which `prepare_simulation()` does when tensorlite is imported.
"""
import os
import sys

import numpy as np

DEVICES = ('cpu', 'cuda')
SIMULATE_FLAG = 'TENSORLITE_SIMULATE_CUDA'

_cupy = None            # the cupy module once imported successfully
_cupy_error = None      # why importing it failed, kept for the error message
_modules = {}           # device array type -> its array module (cupy and/or the stand-in)


def simulation_requested():
    """True when TENSORLITE_SIMULATE_CUDA is set to anything but '' or '0'."""
    return os.environ.get(SIMULATE_FLAG, '') not in ('', '0')


def prepare_simulation():
    """Under the simulation flag, select Numba's CUDA simulator before numba.cuda is imported.
    Returns False when it is too late (numba.cuda already imported for real hardware)."""
    if not simulation_requested():
        return True
    os.environ.setdefault('NUMBA_ENABLE_CUDASIM', '1')
    if 'numba' in sys.modules:
        from numba.core import config
        if not config.ENABLE_CUDASIM:
            if 'numba.cuda' in sys.modules:
                return False
            config.reload_config()
    return True


# ---- CPU threads: OpenMP's wait policy ---------------------------------------------------------
# Numba's parallel kernels run on OpenMP (libgomp) and alternate with OpenBLAS's GEMMs all through
# a training step.  With libgomp's default (active) policy its idle workers spin for a while after
# every parallel region and hold the core the next GEMM's thread needs: a tiny I3D step (batch 16)
# takes 189 ms with the active policy against 89 ms with the passive one (docs/performance.md,
# "Whole-model training steps", lever 1).  So tensorlite asks for the passive policy, which
# libgomp reads once, when it is loaded: before Numba's first parallel launch.
OMP_POLICY_VARIABLES = ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')
_omp_policy = {'policy': None, 'set_by_tensorlite': False, 'libgomp_loaded_before': None}


def _libgomp_loaded():
    """True/False when /proc/self/maps says whether libgomp is mapped; None where it cannot."""
    try:
        with open('/proc/self/maps') as f:
            return 'libgomp' in f.read()
    except OSError:
        return None


def prepare_cpu_threads():
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy (OMP_WAIT_POLICY or
    GOMP_SPINCOUNT in the environment).  Too late, and said so by `cpu_threads()`, when libgomp was
    loaded before tensorlite (e.g. by importing torch first): it read the environment then."""
    _omp_policy['libgomp_loaded_before'] = _libgomp_loaded()
    if not any(name in os.environ for name in OMP_POLICY_VARIABLES):
        os.environ['OMP_WAIT_POLICY'] = 'PASSIVE'
        _omp_policy['set_by_tensorlite'] = True
    _omp_policy['policy'] = os.environ.get('OMP_WAIT_POLICY')


def cpu_threads():
    """How the CPU kernels' threads wait: {'omp_wait_policy', 'gomp_spincount',
    'set_by_tensorlite', 'in_effect'}; in_effect is False when libgomp was loaded before tensorlite
    set the policy (it then keeps the policy it started with), None when that cannot be told."""
    loaded_before = _omp_policy['libgomp_loaded_before']
    return {'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
            'gomp_spincount': os.environ.get('GOMP_SPINCOUNT'),
            'set_by_tensorlite': _omp_policy['set_by_tensorlite'],
            'in_effect': None if loaded_before is None else not loaded_before}


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy
            _cupy = cupy
            _modules[cupy.ndarray] = cupy
        except Exception as e:          # ImportError, or a CUDA library missing at import time
            _cupy_error = e
    return _cupy


def _simulated_module():
    """The stand-in module, with Numba's simulator taught the array hand-off; raises RuntimeError
    when the simulator was not selected in time."""
    from .testing import simcupy
    if not prepare_simulation():
        raise RuntimeError(f"{SIMULATE_FLAG}=1 needs Numba's CUDA simulator, but numba.cuda was "
                           "imported for real hardware first: set the variable before importing "
                           "tensorlite or numba")
    simcupy.patch_numba_simulator()
    _modules[simcupy.ndarray] = simcupy
    return simcupy


def cupy_available():
    """True when CuPy imports (not a statement about a GPU being present)."""
    return _import_cupy() is not None


def gpu_count():
    """GPUs CuPy sees (1 under simulation)."""
    if simulation_requested():
        return 1
    cp = _import_cupy()
    if cp is None:
        return 0
    try:
        return cp.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def unavailable_reason():
    """None when device 'cuda' can be used; else one line saying what is missing."""
    if simulation_requested():
        try:
            _simulated_module()
        except RuntimeError as e:
            return str(e)
        return None
    if _import_cupy() is None:
        return (f"CuPy is not installed or failed to import ({_cupy_error!r}): install it with "
                "pip install -e '.[gpu]' on a machine with an NVIDIA GPU, or set "
                f"{SIMULATE_FLAG}=1 to simulate device 'cuda'")
    if gpu_count() == 0:
        return (f"CuPy is installed but found no CUDA device (set {SIMULATE_FLAG}=1 to simulate "
                "device 'cuda')")
    return None


def check_cuda():
    """Raise a RuntimeError that says which part of the CUDA stack is missing."""
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"device 'cuda' is not available: {reason}")


def cuda_module():
    """The array module of device 'cuda': CuPy, or the stand-in under simulation."""
    check_cuda()
    return _simulated_module() if simulation_requested() else _cupy


def normalize_device(device):
    """'cpu', 'cuda', 'cuda:0' or None -> 'cpu' | 'cuda'; anything else is refused by name.
    tensorlite places everything on one CUDA device, the current one: 'cuda:1' and above are
    refused (CUDA_VISIBLE_DEVICES picks which GPU that is)."""
    if device is None:
        return 'cpu'
    name = str(getattr(device, 'type', device))
    if not isinstance(device, str) and isinstance(getattr(device, 'index', None), int):
        # a device object (torch.device-like): its type and index
        name = f"{name}:{device.index}"
    if name.startswith('cuda:') and name[5:].isdigit():
        if int(name[5:]) != 0:
            raise ValueError(f"device {device!r}: tensorlite uses one CUDA device, 'cuda' (= "
                             f"'cuda:0', the current one); choose the GPU with "
                             f"CUDA_VISIBLE_DEVICES={name[5:]} instead")
        name = 'cuda'
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return name


def is_cupy_array(x):
    """True for an array of device 'cuda' (CuPy's, or the simulated stand-in's)."""
    t = type(x)
    if t in _modules:
        return True
    # a CuPy array made by the user before tensorlite needed CuPy: register CuPy now
    return (t is not np.ndarray and t.__module__.startswith('cupy') and _import_cupy() is not None
            and t in _modules)


def array_module(x):
    """NumPy or CuPy, whichever owns the array `x` (DeZero's get_array_module)."""
    return _modules.get(type(x), np)


def device_of(x):
    return 'cuda' if type(x) in _modules else 'cpu'


def xp_for(device):
    return cuda_module() if device == 'cuda' else np


def to_device(array, device):
    """Copy an array to 'cpu' or 'cuda' (no copy if already there)."""
    if device == 'cuda':
        xp = cuda_module()
        if type(array) in _modules and _modules[type(array)] is not xp:
            array = as_numpy(array)         # from a simulated device to a real one, or back
        return xp.asarray(array)
    return as_numpy(array)


def synchronize():
    """Wait for the real GPU's queued work (CuPy's and Numba's launches are asynchronous); nothing
    to wait for on the CPU or the simulated device, whose calls finish before they return."""
    if _cupy is not None and not simulation_requested() and gpu_count() > 0:
        _cupy.cuda.runtime.deviceSynchronize()


def as_numpy(x):
    xp = _modules.get(type(x))
    return xp.asnumpy(x) if xp is not None else np.asarray(x)

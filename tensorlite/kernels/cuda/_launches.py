"""The argument types every CUDA kernel is launched with, recorded from the simulated test run.

`tensorlite gpu-report` compiles each `@cuda.jit` kernel with NVIDIA's compilers for the argument
types the project really passes, not guessed ones.  Those types are recorded here: with
`TENSORLITE_RECORD_LAUNCHES=FILE` set, tests/conftest.py calls `record_to(FILE)`, which wraps the
simulator's kernel launch; every launch adds its kernel name ('conv._vol2col') and argument types
to FILE when the test run ends.  The list lives in launch_signatures.json next to the kernels;
renew it after changing a kernel's arguments:

    TENSORLITE_RECORD_LAUNCHES=tensorlite/kernels/cuda/launch_signatures.json \\
        python -m pytest tests/test_kernels_activation.py tests/test_conv.py ...  (see docs/gpu.md)

A type is a JSON value: an array is ["array", dtype, ndim, layout] (layout 'C', 'F' or 'A', as
Numba types an array of that contiguity), a scalar is its Numba name ('float32', 'int64', 'bool').
"""
import atexit
import importlib
import json
import os
import pkgutil

import numpy as np

SIGNATURES = os.path.join(os.path.dirname(__file__), 'launch_signatures.json')
_recorded = {}


def kernel_name(fn):
    """'conv._vol2col' for the kernel function `_vol2col` of tensorlite/kernels/cuda/conv.py."""
    return fn.__module__.rsplit('.', 1)[-1] + '.' + fn.__name__


def arg_type(arg):
    """The JSON type of one launch argument (see the module docstring)."""
    import numba
    if hasattr(arg, '_ary'):                        # the simulator's device array (cuda.to_device)
        arg = arg._ary
    elif not isinstance(arg, np.ndarray) and hasattr(arg, '__cuda_array_interface__'):
        from ...testing.simcupy import host_view
        arg = host_view(arg)
    ty = numba.typeof(arg)
    if isinstance(ty, numba.types.Array):
        return ['array', str(ty.dtype), ty.ndim, ty.layout]
    return str(ty)


def numba_type(spec):
    """The Numba type of a JSON type."""
    from numba import types
    if isinstance(spec, list):
        _, dtype, ndim, layout = spec
        return types.Array(numba_type(dtype), ndim, layout)
    return types.boolean if spec == 'bool' else getattr(types, spec)


def record_to(path):
    """Record every simulated kernel launch of this process; write them to `path` at exit, merged
    with what the file already holds (so several test runs add up)."""
    from numba.cuda.simulator.kernel import FakeCUDAKernel
    launch = FakeCUDAKernel.__call__

    def call(kernel, *args):
        if not kernel._device:
            signature = json.dumps([arg_type(a) for a in args])
            _recorded.setdefault(kernel_name(kernel.fn), set()).add(signature)
        return launch(kernel, *args)

    FakeCUDAKernel.__call__ = call
    atexit.register(_write, path)


def _write(path):
    merged = load(path) if os.path.exists(path) else {}
    for name, signatures in _recorded.items():
        known = {json.dumps(s) for s in merged.get(name, [])}
        merged[name] = [json.loads(s) for s in sorted(known | signatures)]
    with open(path, 'w') as f:
        json.dump(dict(sorted(merged.items())), f, indent=1)
        f.write('\n')


def load(path=SIGNATURES):
    """{kernel name: [signature, ...]}, a signature being a list of JSON types."""
    with open(path) as f:
        return json.load(f)


def kernels():
    """{kernel name: the @cuda.jit kernel object} for every kernel (not device function) defined in
    tensorlite/kernels/cuda/, under the simulator or the real CUDA target."""
    from . import __name__ as package, __path__ as path
    found = {}
    for info in pkgutil.iter_modules(path):
        if info.name.startswith('_'):
            continue
        module = importlib.import_module(package + '.' + info.name)
        for obj in vars(module).values():
            fn = getattr(obj, 'py_func', None) or getattr(obj, 'fn', None)
            if fn is None or getattr(fn, '__module__', None) != module.__name__:
                continue
            device = getattr(obj, '_device', None)
            if device is None:
                device = getattr(obj, 'targetoptions', {}).get('device', False)
            if not device:
                found[kernel_name(fn)] = obj
    return dict(sorted(found.items()))

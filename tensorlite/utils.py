"""Small public utilities: results as JSON, and what this machine has.

    from tensorlite.utils import write_json, to_json, collect_info
    write_json('results/run.json', {'top1': np.float32(0.75), 'curve': np.arange(3)})
    collect_info()['numba_threads']
"""
import json
import math
import os
import platform

import numpy as np

__all__ = ['to_json', 'write_json', 'collect_info']


def to_json(value):
    """A JSON-able copy of `value`: NumPy scalars and arrays to Python numbers and lists, tuples to
    lists, dict keys to strings, non-finite floats to None (JSON has no NaN), anything else to its
    str()."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json(path, value):
    """Write `value` (made JSON-able by `to_json`) to `path` atomically, creating the parent
    folder; returns the path."""
    from ._atomic import atomic_write
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(to_json(value), indent=1, allow_nan=False) + '\n'
    with atomic_write(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
    return path


def collect_info():
    """Versions, CPUs, threads, CuPy and CUDA, the registered models and the synthetic families'
    classes, as a dict (what `tensorlite info` prints)."""
    import numba

    from . import __version__, backend, cuda
    from .data.synthetic import SyntheticActions
    from .models import list_models
    from .train.run import CLASS_FAMILIES
    reason = cuda.unavailable_reason()
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        usable_cpus = os.cpu_count()
    return {'tensorlite': __version__, 'numpy': np.__version__, 'numba': numba.__version__,
            'python': platform.python_version(), 'platform': platform.platform(),
            'cpu_count': os.cpu_count(), 'usable_cpus': usable_cpus,
            'cupy_importable': backend.cupy_available(), 'cuda_available': reason is None,
            'cuda_unavailable_reason': reason, 'cpu_threads': backend.cpu_threads(),
            'numba_threads': numba.get_num_threads(), 'models': list_models(),
            'synthetic_families': {f: list(SyntheticActions(f, 0).classes)
                                   for f in CLASS_FAMILIES}}

"""`tl.profiler.profile()`: which ops and kernels one step runs, on which twin, and what they cost.

    with tl.profiler.profile() as prof:
        loss = F.cross_entropy(model(clip), labels)
        loss.backward()
    print(prof.table(sort_by='self_cpu_time_total', row_limit=15))
    prof.export_chrome_trace('step.json')          # open in chrome://tracing or ui.perfetto.dev

Three kinds of event are recorded, nested as they ran:

- `forward`: every Function's forward (name `Conv`, `MatMul`, ...), with its input shapes;
- `backward`: every graph node's backward (name `ConvBackward`, ...); the Functions it calls
  show up inside it as forward events (a backward is written with differentiable ops);
- `kernel`: every launch of a kernel twin (name `conv.vol2col`, ...), with the twin that ran
  (`cpu`: the @njit one; `cuda`: the @cuda.jit one).

Each event has its wall time; `self` time leaves out the events nested in it.  On a real GPU the
device is synchronized before and after each event, so a time covers the work, not the
asynchronous launch (this makes the profiled run slower than an unprofiled one, as CUDA's own
`CUDA_LAUNCH_BLOCKING=1` would).  Under the simulated device times are the simulator's.

FLOPs are known for the Functions whose arithmetic dominates (2 x the multiply-adds of
convolution and its weight gradient, linear, matmul, attention and the fused LSTM/GRU:
`forward_macs`), and None for the rest.  Bytes are the sizes of the arrays an event was given and returned: what it must read and
write at least once.

To act on every Function forward instead of timing it (tensorlite.models.summary counts
multiply-adds per layer this way), use the hook:

    with tl.profiler.observe_forwards(lambda fn, args, outs: print(fn.__name__)):
        model(clip)
"""
import json
import math
import threading
import time

import numpy as np

from . import _recorder, backend
from ._atomic import atomic_write


def forward_macs(fn, args, outs):
    """Multiply-adds of one Function forward (`args` as forward received them, `outs` a tuple of
    arrays), or 0 for the Functions not counted: elementwise ops, norms and pools are
    memory-bound, and multiply-adds are the measure of compute."""
    name = fn.__name__
    if name == 'Conv':
        return outs[0].size * math.prod(args[1].shape[1:])
    if name == 'ConvTranspose':
        return args[0].size * math.prod(args[1].shape[1:])
    if name == 'ConvWeightGrad':                     # Conv's weight gradient: gy against x
        return args[1].size * math.prod(outs[0].shape[1:])
    if name == 'Linear':
        return outs[0].size * args[1].shape[1]
    if name == 'MatMul':
        a = args[0]
        return outs[0].size * (a.shape[-1] if a.ndim > 1 else a.shape[0])
    if name in ('PlainAttention', 'BlockwiseAttention'):
        pb = args[4]
        return pb.B * pb.L * pb.S * (pb.E + pb.Ev)
    if name in ('LSTMSequence', 'GRUSequence'):
        x, w_ih, w_hh = args[0], args[3 if name == 'LSTMSequence' else 2], \
            args[4 if name == 'LSTMSequence' else 3]
        T, N = x.shape[0], x.shape[1]
        return T * N * w_ih.shape[0] * (w_ih.shape[1] + w_hh.shape[1])
    if name in ('LSTMCellFunction', 'GRUCellFunction'):
        x = args[0]
        w_ih, w_hh = (args[3], args[4]) if name == 'LSTMCellFunction' else (args[2], args[3])
        return x.shape[0] * w_ih.shape[0] * (w_ih.shape[1] + w_hh.shape[1])
    return 0


def _is_array(a):
    return isinstance(a, np.ndarray) or backend.is_cupy_array(a)


def _shapes(values):
    return tuple(tuple(a.shape) for a in values if _is_array(a))


def _nbytes(values):
    return sum(int(a.nbytes) for a in values if _is_array(a))


class Event:
    """One recorded call: `name`, `kind` ('forward' | 'backward' | 'kernel'), `device` (the twin
    or device it ran on: 'cpu' | 'cuda'), `input_shapes`, `start_us`, `duration_us`, `self_us`
    (minus nested events), `flops` (None when not known), `bytes`, `depth` (nesting level)."""
    __slots__ = ('name', 'kind', 'device', 'input_shapes', 'start_us', 'duration_us', 'self_us',
                 'flops', 'bytes', 'depth', '_children_us')

    def __init__(self, name, kind, device, input_shapes, depth):
        self.name, self.kind, self.device = name, kind, device
        self.input_shapes, self.depth = input_shapes, depth
        self.start_us = self.duration_us = self.self_us = 0.0
        self.flops, self.bytes, self._children_us = None, 0, 0.0

    def __repr__(self):
        return (f"Event({self.name!r}, {self.kind}, {self.device}, {self.duration_us:.1f} us, "
                f"shapes={self.input_shapes})")


class _KernelTwin:
    """Stands for a kernel twin module while a profiler records: its public functions report
    each call; everything else (constants, helpers) is the module's own."""

    def __init__(self, recorder, family, side, module):
        self._recorder, self._family, self._side, self._module = recorder, family, side, module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if name.startswith('_') or not callable(value) or \
                getattr(value, '__module__', None) != self._module.__name__:
            return value
        recorder, label, side = self._recorder, f'{self._family}.{name}', self._side

        def launch(*args, **kwargs):
            return recorder.record_kernel(label, side, value, args, kwargs)
        return launch


class observe_forwards:
    """Context manager: `callback(fn, args, outs)` runs after every Function forward that the
    thread which entered it makes -- `fn` the Function class, `args` as forward received them
    (arrays for Tensors, other arguments unchanged), `outs` a tuple of the arrays it returned.
    Nothing is timed.  It nests, in itself and inside a `profile()` (which goes on recording);
    a `profile()` cannot be started inside it.  Leave it in the order entered."""

    def __init__(self, callback):
        self.callback = callback
        self._outer, self._thread = None, None

    def __enter__(self):
        self._outer, self._thread = _recorder.active, threading.get_ident()
        _recorder.active = self
        return self

    def __exit__(self, *exc):
        _recorder.active = self._outer
        return False

    # what autograd and the kernel dispatch call while this is the active recorder: the outer
    # recorder's (a profile's) or the plain call, and the callback after each forward
    def record_forward(self, fn, ctx, args, arrays, device):
        outer = self._outer
        raw = (fn._forward(ctx, args, arrays) if outer is None else
               outer.record_forward(fn, ctx, args, arrays, device))
        if threading.get_ident() == self._thread:
            self.callback(fn, arrays, raw if isinstance(raw, tuple) else (raw,))
        return raw

    def record_backward(self, node, grads):
        if self._outer is None:
            return node.fn.backward(node, *grads)
        return self._outer.record_backward(node, grads)

    def kernel_twin(self, family, side, module):
        return module if self._outer is None else self._outer.kernel_twin(family, side, module)


class profile:
    """Context manager recording every Function forward and backward and every kernel launch made
    by the thread that entered it (see the module docstring).  `record_shapes` and `with_flops`
    as torch.profiler.profile's; one profiler records at a time."""

    def __init__(self, record_shapes=True, with_flops=True):
        self.record_shapes, self.with_flops = record_shapes, with_flops
        self._events, self._stack = [], []
        self._thread, self._t0 = None, None

    # ---- recording ---------------------------------------------------------------------------
    def __enter__(self):
        if isinstance(_recorder.active, observe_forwards):
            raise RuntimeError("profile: cannot start inside observe_forwards; enter the profile "
                               "first and observe_forwards inside it")
        if _recorder.active is not None:
            raise RuntimeError("profile: another profiler is already recording; nest nothing")
        self._events, self._stack = [], []
        self._thread = threading.get_ident()
        self._t0 = time.perf_counter_ns()
        _recorder.active = self
        return self

    def __exit__(self, *exc):
        _recorder.active = None
        return False

    def _begin(self, name, kind, device, values):
        if device == 'cuda':
            backend.synchronize()
        ev = Event(name, kind, device, _shapes(values) if self.record_shapes else (),
                   len(self._stack))
        self._stack.append(ev)
        ev.start_us = (time.perf_counter_ns() - self._t0) / 1e3
        return ev

    def _end(self, ev):
        if ev.device == 'cuda':
            backend.synchronize()
        ev.duration_us = (time.perf_counter_ns() - self._t0) / 1e3 - ev.start_us
        ev.self_us = ev.duration_us - ev._children_us
        self._stack.pop()
        if self._stack:
            self._stack[-1]._children_us += ev.duration_us
        self._events.append(ev)

    def _mine(self):
        return threading.get_ident() == self._thread

    def record_forward(self, fn, ctx, args, arrays, device):
        if not self._mine():
            return fn._forward(ctx, args, arrays)
        ev = self._begin(fn.__name__, 'forward', device, arrays)
        try:
            raw = fn._forward(ctx, args, arrays)
        finally:
            self._end(ev)
        outs = raw if isinstance(raw, tuple) else (raw,)
        ev.bytes = _nbytes(arrays) + _nbytes(outs)
        if self.with_flops:
            macs = forward_macs(fn, arrays, outs)
            ev.flops = 2 * int(macs) if macs else None
        return raw

    def record_backward(self, node, grads):
        if not self._mine():
            return node.fn.backward(node, *grads)
        device = 'cuda' if any(m[2] is not np for m in node.output_meta) else 'cpu'
        data = [g.data for g in grads]
        ev = self._begin(f'{node.name}Backward', 'backward', device, data)
        try:
            results = node.fn.backward(node, *grads)
        finally:
            self._end(ev)
        out = results if isinstance(results, tuple) else (results,)
        ev.bytes = _nbytes(data) + _nbytes([getattr(r, 'data', r) for r in out if r is not None])
        return results

    def record_kernel(self, label, side, fn, args, kwargs):
        if not self._mine():
            return fn(*args, **kwargs)
        ev = self._begin(label, 'kernel', side, args)
        try:
            return fn(*args, **kwargs)
        finally:
            self._end(ev)
            ev.bytes = _nbytes(args)

    def kernel_twin(self, family, side, module):
        return _KernelTwin(self, family, side, module)

    # ---- results -------------------------------------------------------------------------------
    def events(self):
        """Every recorded event, in the order they finished."""
        return list(self._events)

    def key_averages(self, group_by_input_shape=False):
        """One row per (name, kind, device[, input shapes]): dicts with calls, total_us, self_us,
        avg_us, flops (None if unknown), bytes."""
        rows = {}
        for ev in self._events:
            key = (ev.name, ev.kind, ev.device) + ((ev.input_shapes,) if group_by_input_shape else ())
            r = rows.get(key)
            if r is None:
                r = rows[key] = {'name': ev.name, 'kind': ev.kind, 'device': ev.device,
                                 'input_shapes': ev.input_shapes if group_by_input_shape else None,
                                 'calls': 0, 'total_us': 0.0, 'self_us': 0.0, 'flops': None,
                                 'bytes': 0}
            r['calls'] += 1
            r['total_us'] += ev.duration_us
            r['self_us'] += ev.self_us
            r['bytes'] += ev.bytes
            if ev.flops is not None:
                r['flops'] = (r['flops'] or 0) + ev.flops
        for r in rows.values():
            r['avg_us'] = r['total_us'] / r['calls']
        return list(rows.values())

    # torch.profiler's sort keys, and plain ones; times are wall times on the host (synchronized
    # with the GPU on a real one), so the cpu_ and cuda_ keys sort by the same numbers
    SORT_KEYS = {'self_cpu_time_total': 'self_us', 'self_cuda_time_total': 'self_us',
                 'self_time': 'self_us', 'cpu_time_total': 'total_us',
                 'cuda_time_total': 'total_us', 'total_time': 'total_us', 'count': 'calls',
                 'calls': 'calls', 'flops': 'flops', 'bytes': 'bytes', 'name': 'name'}

    def table(self, sort_by='self_cpu_time_total', row_limit=100, group_by_input_shape=False):
        """A text table of `key_averages()`, like torch.profiler's, sorted by `sort_by`
        (largest first; 'name' sorts alphabetically)."""
        if sort_by not in self.SORT_KEYS:
            raise ValueError(f"table: sort_by must be one of {', '.join(self.SORT_KEYS)}, "
                             f"got {sort_by!r}")
        field = self.SORT_KEYS[sort_by]
        rows = self.key_averages(group_by_input_shape)
        if field == 'name':
            rows.sort(key=lambda r: r['name'])
        else:
            rows.sort(key=lambda r: -(r[field] or 0))
        shown = rows if row_limit is None or row_limit < 0 else rows[:row_limit]
        top = sum(ev.duration_us for ev in self._events if ev.depth == 0) or 1.0
        width = max([len('Name')] + [len(r['name']) for r in shown])
        head = (f"{'Name':<{width}}  {'Kind':<8}  {'Device':<6}  {'Self %':>7}  {'Self':>10}  "
                f"{'Total %':>7}  {'Total':>10}  {'Avg':>10}  {'Calls':>6}  {'FLOPs':>8}  "
                f"{'Bytes':>8}")
        if group_by_input_shape:
            head += '  Input shapes'
        rule = '-' * len(head)
        lines = [rule, head, rule]
        for r in shown:
            flops = '' if r['flops'] is None else _count(r['flops'], 1000, '')
            line = (f"{r['name']:<{width}}  {r['kind']:<8}  {r['device']:<6}  "
                    f"{100 * r['self_us'] / top:6.2f}%  {_time(r['self_us']):>10}  "
                    f"{100 * r['total_us'] / top:6.2f}%  {_time(r['total_us']):>10}  "
                    f"{_time(r['avg_us']):>10}  {r['calls']:>6}  {flops:>8}  "
                    f"{_count(r['bytes'], 1024, 'B'):>8}")
            if group_by_input_shape:
                line += '  ' + str(list(r['input_shapes']))
            lines.append(line)
        lines.append(rule)
        lines.append(f"Self time total: {_time(top)}  ({len(self._events)} events; "
                     f"{len(rows) - len(shown)} rows not shown)")
        return '\n'.join(lines)

    def export_chrome_trace(self, path):
        """Write the events as a Chrome trace (JSON, 'X' events in microseconds), atomically."""
        trace = [{'name': ev.name, 'cat': ev.kind, 'ph': 'X', 'ts': round(ev.start_us, 3),
                  'dur': round(ev.duration_us, 3), 'pid': 'tensorlite', 'tid': 'host',
                  'args': {'device': ev.device, 'input_shapes': [list(s) for s in ev.input_shapes],
                           'flops': ev.flops, 'bytes': ev.bytes}}
                 for ev in sorted(self._events, key=lambda e: (e.start_us, e.depth))]
        with atomic_write(str(path), suffix='.json') as tmp:
            with open(tmp, 'w') as f:
                json.dump({'traceEvents': trace, 'displayTimeUnit': 'ms'}, f)


def _count(n, base, unit):
    """1234567 -> '1.23M' (base 1000) or '1.18MB' (base 1024, unit 'B')."""
    for prefix in ('', 'K', 'M', 'G', 'T'):
        if abs(n) < base or prefix == 'T':
            return f'{n:.0f}{unit}' if prefix == '' else f'{n:.2f}{prefix}{unit}'
        n /= base


def _time(us):
    if us >= 1e6:
        return f'{us / 1e6:.3f}s'
    if us >= 1e3:
        return f'{us / 1e3:.3f}ms'
    return f'{us:.3f}us'

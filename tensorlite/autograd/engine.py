"""The graph walk: from the roots back to the leaves, without recursion.

1. Seed each root's node with its gradient.
2. Count, for every node reachable from the roots, how many edges point at it (an explicit stack,
   no recursion, so an LSTM unrolled over 10,000 steps is fine).
3. Kahn's algorithm: a node runs once every consumer of its outputs has sent its gradient, so each
   node's backward runs exactly once with the complete sum of its outputs' gradients.
4. After a node has run, its saved arrays are freed unless `retain_graph=True`.

`backward()` accumulates into leaves' `.grad`; `grad()` returns the gradients instead.

Two notifications, for DistributedDataParallel and anyone who needs to act while backward runs:
- `Tensor.register_post_accumulate_grad_hook(hook)`: hook(leaf) once the leaf's `.grad` holds its
  whole gradient for this backward. Step 2 also counts each hooked leaf's incoming edges; the hooks
  run when the last contribution has been accumulated. Only when such a hook exists anywhere.
- `queue_callback(fn)`, called during a backward: fn() runs when that backward has finished.
"""
import threading

import numpy as np

from .. import _recorder, backend
from . import tensor as _tensor
from .grad_mode import set_grad_enabled
from .tensor import Tensor, _wrap

_local = threading.local()            # .callbacks: one list per backward in progress (nesting)


def queue_callback(fn):
    """Run fn() once the backward (or `grad`) in progress has finished, after every leaf's `.grad`
    is final, in the order queued (PyTorch's `Variable._execution_engine.queue_callback`). Only
    valid while a backward runs -- from a hook. A backward that raises drops its callbacks."""
    frames = getattr(_local, 'callbacks', None)
    if not frames:
        raise RuntimeError("queue_callback: no backward is in progress (call it from a hook that "
                           "runs during backward)")
    frames[-1].append(fn)


class _CallbackFrame:
    """`with _CallbackFrame():` around one backward: callbacks queued inside run at its end."""

    def __enter__(self):
        frames = getattr(_local, 'callbacks', None)
        if frames is None:
            frames = _local.callbacks = []
        self.callbacks = []
        frames.append(self.callbacks)

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None:
                k = 0
                while k < len(self.callbacks):        # a callback may queue another
                    self.callbacks[k]()
                    k += 1
        finally:
            _local.callbacks.pop()


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(sum of tensors · grad_tensors)/d(leaf) into each leaf's `.grad` (only into
    `inputs` when given)."""
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    grads = _root_grads(tensors, grad_tensors)
    keep = create_graph if retain_graph is None else retain_graph
    handed = _Handed(grads)
    with _CallbackFrame():
        if inputs is None:
            _run(tensors, grads, keep, create_graph, targets=None, handed=handed)
            return
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        captured = _run(tensors, grads, keep, create_graph, targets=inputs, handed=handed)
        for t, g in zip(inputs, captured):
            if g is not None:
                _accumulate_leaf(t, g, create_graph, handed)
                if t._post_accumulate_hooks:
                    _run_post_accumulate_hooks(t)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of `outputs` with respect to `inputs`, as a tuple; `.grad` is untouched."""
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad: input {k} does not require grad")
    grads = _root_grads(outputs, grad_outputs)
    keep = create_graph if retain_graph is None else retain_graph
    with _CallbackFrame():
        result = _run(outputs, grads, keep, create_graph, targets=inputs, handed=_Handed(grads))
    for k, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {k} (shape {tuple(inputs[k].shape)}) is not part of the "
                               "graph of the outputs; pass allow_unused=True to get None for it")
    return tuple(result)


def _root_grads(tensors, grad_tensors):
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    elif not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"backward: {len(tensors)} tensors but {len(grad_tensors)} gradients")
    out = []
    for k, (t, g) in enumerate(zip(tensors, grad_tensors)):
        if not isinstance(t, Tensor):
            raise TypeError(f"backward: element {k} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"backward: element {k} (shape {tuple(t.shape)}) does not require grad "
                               "and has no grad_fn; nothing to differentiate")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(
                    f"backward: the gradient can be implied only for a one-element output, this one "
                    f"has shape {tuple(t.shape)}; pass gradient= (a tensor of that shape)")
            xp = backend.array_module(t.data)
            g = Tensor(xp.ones(t.shape, dtype=t.dtype))
        else:
            g = _wrap(g, t)
            if tuple(g.shape) != tuple(t.shape):
                raise ValueError(f"backward: gradient has shape {tuple(g.shape)} but its tensor has "
                                 f"shape {tuple(t.shape)}")
            if g.dtype != t.dtype:
                g = g.to(t.dtype)
        out.append(g)
    return out


def _add(a, b):
    return b if a is None else a + b


class _Handed:
    """Arrays someone else can already reach: the root gradients, what a hook saw, what a leaf
    already holds.  A leaf's new `.grad` takes a backward's result without copying only when it is
    none of these and owns its memory -- e.g. Add hands one array to both of its inputs, and two
    leaves must not share a gradient array that an optimizer may then change in place."""

    def __init__(self, tensors=()):
        self._arrays = {}                      # id -> array (kept alive so ids stay unique)
        for t in tensors:
            self.add(t.data)

    def add(self, a):
        self._arrays[id(a)] = a

    def own(self, a):
        if a.base is None and getattr(a.flags, 'writeable', True) and id(a) not in self._arrays:
            self.add(a)
            return a
        c = a.copy()
        self.add(c)
        return c


def _run_hooks(hooks, g, handed):
    handed.add(g.data)
    for hook in list(hooks):
        r = hook(g)
        if r is not None:
            g = r
            handed.add(g.data)
    return g


def _run_post_accumulate_hooks(t):
    for hook in list(t._post_accumulate_hooks):
        if hook(t) is not None:
            raise RuntimeError(f"a post-accumulate-grad hook must return None, {hook!r} returned "
                               "a value (it may change tensor.grad in place instead)")


def _accumulate_leaf(t, g, create_graph, handed):
    if not create_graph:
        if t.grad is None:
            t.grad = Tensor(handed.own(g.data))
        else:
            total = t.grad.data + g.data
            # a 0-d sum is a NumPy scalar: a Tensor holds arrays
            t.grad.data = total if not isinstance(total, np.generic) else np.asarray(total)
    else:
        t.grad = g if t.grad is None else t.grad + g


def _run(roots, root_grads, keep_graph, create_graph, targets, handed):
    leaf_slot = node_slot = captured = None
    if targets is not None:
        leaf_slot = {id(t): k for k, t in enumerate(targets) if t.grad_fn is None}
        node_slot = {(id(t.grad_fn), t._out_idx): k for k, t in enumerate(targets)
                     if t.grad_fn is not None}
        captured = [None] * len(targets)

    def deliver_leaf(t, g):
        if t._hooks:
            g = _run_hooks(t._hooks, g, handed)
        if targets is None:
            _accumulate_leaf(t, g, create_graph, handed)
        elif id(t) in leaf_slot:
            k = leaf_slot[id(t)]
            captured[k] = _add(captured[k], g)

    # id(leaf) -> contributions still to come, for leaves with post-accumulate hooks (accumulating
    # backward only); stays empty, and costs nothing, while no such hook exists
    pending = {}
    track = targets is None and _tensor.post_accumulate_hooks_alive > 0

    def leaf_arrived(t):
        n = pending.get(id(t))
        if n is None:
            return
        if n > 1:
            pending[id(t)] = n - 1
        else:
            del pending[id(t)]
            _run_post_accumulate_hooks(t)

    with set_grad_enabled(create_graph):
        buffers, root_nodes, root_leaves = {}, [], []
        for t, g in zip(roots, root_grads):
            if t.grad_fn is None:
                root_leaves.append((t, g))
                continue
            node = t.grad_fn
            buf = buffers.setdefault(node, [None] * len(node.output_meta))
            buf[t._out_idx] = _add(buf[t._out_idx], g)
            root_nodes.append(node)
        root_nodes = list(dict.fromkeys(root_nodes))

        deps, seen, stack = {}, set(root_nodes), list(root_nodes)
        while stack:
            node = stack.pop()
            for e in node.edges:
                if type(e) is tuple:
                    child = e[0]
                    deps[child] = deps.get(child, 0) + 1
                    if child not in seen:
                        seen.add(child)
                        stack.append(child)
                elif track and e is not None and e._post_accumulate_hooks:
                    pending[id(e)] = pending.get(id(e), 0) + 1
        if track:
            for t, _ in root_leaves:
                if t._post_accumulate_hooks:
                    pending[id(t)] = pending.get(id(t), 0) + 1
        for t, g in root_leaves:
            deliver_leaf(t, g)
            if pending:
                leaf_arrived(t)

        ready = [n for n in root_nodes if deps.get(n, 0) == 0]
        while ready:
            node = ready.pop()
            grads = buffers.pop(node)
            for j, g in enumerate(grads):
                if g is None:
                    continue
                if node._hooks and node._hooks.get(j):
                    grads[j] = g = _run_hooks(node._hooks[j], g, handed)
                if node_slot is not None and (id(node), j) in node_slot:
                    k = node_slot[(id(node), j)]
                    captured[k] = _add(captured[k], g)
            results = _call_backward(node, grads) if any(g is not None for g in grads) else None
            for i, e in enumerate(node.edges):
                if e is None:
                    continue
                g = None if results is None else results[i]
                if type(e) is tuple:
                    child, idx = e
                    if g is not None:
                        cb = buffers.setdefault(child, [None] * len(child.output_meta))
                        cb[idx] = _add(cb[idx], g)
                    deps[child] -= 1
                    if deps[child] == 0:
                        buffers.setdefault(child, [None] * len(child.output_meta))
                        ready.append(child)
                else:
                    if g is not None:
                        deliver_leaf(e, g)
                    if pending:
                        leaf_arrived(e)
            if not keep_graph:
                node._free()
    return captured


def _call_backward(node, grads):
    """Run one node's backward with materialized output gradients; check what comes back."""
    if node._freed:
        node.saved_tensors         # raises the "backward through the graph a second time" error
    full = []
    for j, g in enumerate(grads):
        if g is None:
            shape, dtype, xp = node.output_meta[j]
            g = Tensor(xp.zeros(shape, dtype=dtype))
        full.append(g)
    recorder = _recorder.active
    if recorder is None:
        results = node.fn.backward(node, *full)
    else:
        results = recorder.record_backward(node, full)
    if not isinstance(results, tuple):
        results = (results,)
    n = len(node.input_meta)
    if len(results) < n or any(r is not None for r in results[n:]):
        raise RuntimeError(f"{node.name}.backward returned {len(results)} gradients, expected {n} "
                           "(one per argument of forward, None for non-tensors)")
    checked = []
    for i, (g, meta, need) in enumerate(zip(results, node.input_meta, node.needs_input_grad)):
        if g is None or not need:
            checked.append(None)
            continue
        if not isinstance(g, Tensor):
            g = Tensor(g)
        shape, dtype = meta
        if tuple(g.shape) != tuple(shape):
            raise RuntimeError(f"{node.name}.backward returned a gradient of shape {tuple(g.shape)} "
                               f"for input {i}, whose shape is {tuple(shape)}")
        if g.dtype != dtype:
            g = g.to(dtype)
        checked.append(g)
    return checked

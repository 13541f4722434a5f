"""`Function`: one differentiable operation; `Context`: the graph node it leaves behind.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):              # raw arrays in, raw arrays out
            y = array_module(x).exp(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, gy):            # Tensors in, Tensors out: differentiable in turn
            (y,) = ctx.saved_tensors
            return gy * y

`Exp.apply(t)` unwraps the Tensors, runs `forward`, wraps the outputs and -- when recording --
links them to `ctx`, which remembers where each input's gradient must go.  Arguments that are not
Tensors (an axis, a flag) pass through to `forward` unchanged and get `None` as their gradient.
"""
import numpy as np

from .. import _recorder, backend
from .grad_mode import is_grad_enabled
from .tensor import Tensor


class Context:
    """The graph node of one Function call.

    `edges[i]` says where input i's gradient goes: `(node, out_idx)` for a tensor made by another
    Function, the leaf Tensor itself for a leaf, None when nobody needs it.  Saved arrays become
    `_saved` records at the end of `apply`, once the outputs are known.
    """

    def __init__(self, fn, args, needs_input_grad=None):
        self.fn = fn
        self.needs_input_grad = (needs_input_grad if needs_input_grad is not None else
                                 tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        self.edges = ()
        self.input_meta = ()        # (shape, dtype) of each Tensor argument, None otherwise
        self.output_meta = ()       # (shape, dtype, array module) of each output
        self._to_save = ()
        self._saved = None
        self._freed = False
        self._hooks = None          # {out_idx: [hook, ...]} for non-leaf tensors' hooks
        self._non_differentiable = ()

    @property
    def name(self):
        return self.fn.__name__

    def __repr__(self):
        return f'<{self.name}Backward>'

    # ---- what forward calls ----------------------------------------------------------------------
    def save_for_backward(self, *arrays):
        """Keep these arrays for backward, the only way a Function keeps an array: `saved_tensors`
        gives them back in this order.  An input or output array comes back as the graph's own
        Tensor (so a second derivative flows through it); any other array -- a mask, an index
        array, a statistic -- comes back as a constant Tensor on that very array (`.data` is the
        array); None comes back as None.  The graph walk drops them all after backward, and the
        inputs and outputs among them are checked against in-place writes.  Attributes set on
        `ctx` hold shapes and flags only (tests/test_ctx_saved.py)."""
        self._to_save = arrays

    def mark_non_differentiable(self, *arrays):
        """Outputs that never carry a gradient (indices, masks): their Tensors get requires_grad=False."""
        self._non_differentiable = arrays

    # ---- what backward calls -----------------------------------------------------------------------
    @property
    def saved_tensors(self):
        if self._freed:
            raise RuntimeError(
                f"{self.name}: trying to backward through the graph a second time (or to read saved "
                "tensors after they were freed). Saved arrays are freed after backward; pass "
                "retain_graph=True to the first backward() if you need to backward twice.")
        out = []
        for rec in self._saved:
            kind = rec[0]
            if kind == 'input':
                _, i, t, data, fn, idx, vc, version = rec
                if vc.value != version:
                    raise RuntimeError(
                        f"{self.name}: input {i} (shape {tuple(data.shape)}) saved for backward was "
                        f"modified by an in-place operation after it was saved (version {version}, "
                        f"now {vc.value}); use an out-of-place operation or clone() it first")
                # a leaf comes back as itself (gradients must reach it); a non-leaf as a tensor on
                # the array it had when saved, still produced by the node that produced it then
                out.append(t if fn is None else Tensor(data, _grad_fn=fn, _out_idx=idx, _vc=vc))
            elif kind == 'output':
                _, j, data, vc, version = rec
                if vc.value != version:
                    raise RuntimeError(
                        f"{self.name}: output {j} (shape {tuple(data.shape)}) saved for backward was "
                        f"modified by an in-place operation (version {version}, now {vc.value}); "
                        "use an out-of-place operation or clone() it first")
                out.append(Tensor(data, _grad_fn=self, _out_idx=j, _vc=vc)
                           if self.output_requires_grad(j) else Tensor(data, _vc=vc))
            else:
                out.append(None if rec[1] is None else Tensor(rec[1]))
        return tuple(out)

    def output_requires_grad(self, j):
        return j not in self._non_diff_idx

    # ---- bookkeeping used by apply and the engine ------------------------------------------------------
    def _output_hooks(self, idx):
        if self._hooks is None:
            self._hooks = {}
        return self._hooks.setdefault(idx, [])

    def _free(self):
        self._saved = None
        self._to_save = ()
        self._freed = True


class Function:
    """Subclass with static `forward(ctx, *args)` (raw arrays) and `backward(ctx, *grads)` (Tensors);
    call `.apply(*args)`."""

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        # one pass over the arguments collects what forward and the graph need (the per-op cost
        # of the engine: docs/performance.md, "Whole-model training steps", lever 6)
        device = None
        arrays, needs, edges, meta = [], [], [], []
        for a in args:
            if isinstance(a, Tensor):
                d = a._data
                dev = 'cpu' if type(d) is np.ndarray else backend.device_of(d)
                if device is None:
                    device = dev
                elif dev != device:
                    raise RuntimeError(f"{cls.__name__}: expected all tensors on one device, "
                                       f"found {device} and {dev}")
                arrays.append(d)
                need = a._requires_grad
                needs.append(need)
                meta.append((d.shape, d.dtype))
                edges.append(None if not need else
                             (a if a.grad_fn is None else (a.grad_fn, a._out_idx)))
            else:
                arrays.append(a)
                needs.append(False)
                meta.append(None)
                edges.append(None)
        ctx = Context(cls, args, tuple(needs))
        recorder = _recorder.active
        if recorder is None:
            raw = cls._forward(ctx, args, arrays)
        else:
            raw = recorder.record_forward(cls, ctx, args, arrays, device or 'cpu')
        is_tuple = isinstance(raw, tuple)
        outs = raw_outs = raw if is_tuple else (raw,)
        for o in outs:
            if type(o) is not np.ndarray:               # NumPy scalars, CuPy arrays
                xp = backend.xp_for(device) if device else np
                outs = tuple(o if backend.is_cupy_array(o) or type(o) is np.ndarray
                             else xp.asarray(o) for o in outs)
                break
        if not (True in needs and is_grad_enabled()):
            results = tuple(Tensor(o) for o in outs)
            return results if is_tuple else results[0]

        nd_ids = {id(a) for a in ctx._non_differentiable}
        ctx._non_diff_idx = {j for j, o in enumerate(outs)
                             if id(o) in nd_ids or o.dtype.kind != 'f'}
        ctx._non_differentiable = ()            # the node keeps indices, not the arrays
        ctx.edges, ctx.input_meta = tuple(edges), tuple(meta)
        ctx.output_meta = tuple((o.shape, o.dtype, backend.array_module(o)) for o in outs)
        results = tuple(Tensor(o) if j in ctx._non_diff_idx else Tensor(o, _grad_fn=ctx, _out_idx=j)
                        for j, o in enumerate(outs))
        ctx._saved = _resolve_saved(ctx, args, arrays, raw_outs, outs, results)
        ctx._to_save = ()
        return results if is_tuple else results[0]

    @classmethod
    def _forward(cls, ctx, args, arrays):
        """`forward` on the raw arrays; a ValueError gets the op's name and the input shapes."""
        try:
            return cls.forward(ctx, *arrays)
        except ValueError as e:
            shapes = ', '.join(str(tuple(a.shape)) for a in args if isinstance(a, Tensor))
            msg = str(e)
            if not msg.startswith(cls.__name__.lower()) and not msg.startswith(cls.__name__):
                msg = f"{cls.__name__}: {msg} (input shapes {shapes})"
            raise ValueError(msg) from None


def _resolve_saved(ctx, args, arrays, raw_outs, outs, results):
    """Turn saved arrays into records: ('input', i, leaf-or-None, array, grad_fn, out_idx, vc,
    version), ('output', j, array, vc, version) -- outputs are kept as arrays to avoid a
    node -> output -> node cycle -- or ('const', array).  The version counter is the one the tensor
    had when saved: an in-place write bumps it, a history rebase gives the tensor a new one."""
    records = []
    for s in ctx._to_save:
        rec = None
        if s is not None:
            for i, a in enumerate(arrays):
                t = args[i]
                if a is s and isinstance(t, Tensor):
                    fn = t.grad_fn
                    rec = ('input', i, t if fn is None else None, a, fn, t._out_idx, t._vc,
                           t._vc.value)
                    break
            else:
                for j, (o, r) in enumerate(zip(outs, raw_outs)):
                    if o is s or r is s:        # r: what forward returned (maybe a NumPy scalar)
                        rec = ('output', j, o, results[j]._vc, results[j]._vc.value)
                        break
        if rec is None and s is not None and (isinstance(s, np.generic) or not hasattr(s, 'shape')):
            s = np.asarray(s)                   # a NumPy scalar or number saved as a constant
        records.append(rec or ('const', s))
    return records


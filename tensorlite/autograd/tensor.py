"""The Tensor: an array (NumPy or CuPy) plus what autograd needs to send gradients back to it.

A Tensor made by a user is a *leaf*: `grad_fn` is None and gradients accumulate in `.grad`.
A Tensor made by an operation while recording holds `grad_fn`, the graph node (a `Context`) of the
Function that produced it, and `_out_idx`, which of that Function's outputs it is.  Operators and
methods only call `tensorlite.functional`; nothing numeric happens in this file.
"""
import numbers

import numpy as np

from .. import backend, dtypes
from .grad_mode import is_grad_enabled


class VersionCounter:
    """Bumped by every in-place write; shared by a Tensor and the copies autograd rebuilds of it,
    so a saved tensor modified after it was saved is detected in backward."""
    __slots__ = ('value',)

    def __init__(self):
        self.value = 0


def increment_version(tensor):
    """Record that `tensor`'s array was written in place outside tensorlite's in-place methods (a
    fused optimizer kernel, `tensor.data[...] = ...`): bump its version counter, so a backward that
    saved the old values raises instead of using the new ones.  PyTorch's
    `torch.autograd.graph.increment_version`; `tensor._version` reads the counter."""
    tensor._vc.value += 1


class RemovableHandle:
    """Returned by `register_hook`; `.remove()` takes the hook out again."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
            return True
        return False


# How many post-accumulate-grad hooks are registered and not removed: while none is, the engine
# does not count leaves' incoming edges at all.
post_accumulate_hooks_alive = 0


class _PostAccumulateHandle(RemovableHandle):
    def remove(self):
        global post_accumulate_hooks_alive
        if super().remove():
            post_accumulate_hooks_alive -= 1


_SUPPORTED = frozenset(dtypes.SUPPORTED)
_UFUNCS = {'add': 'add', 'sub': 'subtract', 'mul': 'multiply', 'div': 'true_divide'}


def _check_array(data):
    if type(data) is np.ndarray and data.dtype in _SUPPORTED:       # the common case, fast
        return
    if not isinstance(data, np.ndarray) and not backend.is_cupy_array(data):
        raise TypeError(f"Tensor data must be a NumPy or CuPy array, got {type(data).__name__}")
    if data.dtype not in dtypes.SUPPORTED:
        dtypes.normalize_dtype(data.dtype)     # raises, naming the dtype and the supported ones


class Tensor:
    """A multi-dimensional array that can record the operations applied to it.

    Use `tl.tensor(...)` or the factories to make one; `Tensor(array)` wraps an existing NumPy or
    CuPy array without copying.
    """
    __array_ufunc__ = None          # ndarray (op) Tensor defers to Tensor's reflected operator
    __array_priority__ = 1000
    _post_accumulate_hooks = ()     # a leaf's own list once one is registered

    def __init__(self, data, requires_grad=False, *, _grad_fn=None, _out_idx=0, _vc=None):
        _check_array(data)
        self._data = data
        self.grad = None
        self.grad_fn = _grad_fn
        self._out_idx = _out_idx
        self._vc = _vc if _vc is not None else VersionCounter()
        self._hooks = []            # hooks of a leaf; a non-leaf's live on its grad_fn
        self._requires_grad = _grad_fn is not None      # a Function's float output: no check needed
        if requires_grad and _grad_fn is None:
            self.requires_grad = True

    # ---- attributes -------------------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, Tensor):
            value = value._data
        _check_array(value)
        self._data = value

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if flag and not dtypes.is_floating(self._data.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, "
                            f"this one has dtype {self._data.dtype}")
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; "
                               "use .detach() to get a tensor outside the graph")
        self._requires_grad = flag

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def shape(self):
        return self._data.shape

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        return backend.device_of(self._data)

    @property
    def is_cuda(self):
        return self.device == 'cuda'

    @property
    def _version(self):
        return self._vc.value

    def numel(self):
        return int(self._data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ---- conversion -------------------------------------------------------------------------
    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape "
                             f"{tuple(self.shape)} ({self._data.size} elements)")
        return self._data.reshape(()).item()

    def tolist(self):
        return backend.as_numpy(self._data).tolist()

    def numpy(self):
        """The data as a NumPy array (shared memory on the CPU, like `torch.Tensor.numpy`)."""
        if self.device != 'cpu':
            raise TypeError("numpy() needs a CPU tensor: call .cpu() first to copy it from 'cuda'")
        return self._data

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in 'iu' or self._data.size != 1:
            raise TypeError("only a one-element integer tensor can be used as an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise ValueError(f"the truth value of a tensor with {self._data.size} elements is "
                             "ambiguous; use .any() or .all()")
        return bool(self.item())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    __hash__ = object.__hash__

    def detach(self):
        """A new leaf sharing this tensor's data, outside the graph."""
        return Tensor(self._data, _vc=self._vc)

    def detach_(self):
        self.grad_fn = None
        self._requires_grad = False
        return self

    def clone(self):
        return F.clone(self)

    def contiguous(self):
        return self if self._data.flags.c_contiguous else F.clone(self)

    def to(self, *args, dtype=None, device=None):
        """`to('cuda')`, `to(tl.float64)`, `to('cpu', tl.float32)`; differentiable."""
        for a in args:
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif isinstance(a, str) and a.split(':')[0] in backend.DEVICES:
                device = a
            else:
                try:
                    dtype = dtypes.normalize_dtype(a)
                except TypeError:
                    raise ValueError(f"to: {a!r} is neither a device ({', '.join(backend.DEVICES)}) "
                                     f"nor a supported dtype") from None
        out = self
        if device is not None:
            out = F.to_device(out, backend.normalize_device(device))
        if dtype is not None:
            out = F.cast(out, dtypes.normalize_dtype(dtype))
        return out

    def cpu(self):
        return self.to('cpu')

    def cuda(self):
        return self.to('cuda')

    def float(self):
        return self.to(dtypes.float32)

    def double(self):
        return self.to(dtypes.float64)

    def half(self):
        return self.to(dtypes.float16)

    def long(self):
        return self.to(dtypes.int64)

    def int(self):
        return self.to(dtypes.int32)

    def bool(self):
        return self.to(dtypes.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Compute the gradient of this tensor with respect to the graph's leaves and accumulate
        it into their `.grad`.  `retain_graph` defaults to `create_graph`, as in PyTorch."""
        from .engine import backward
        backward([self], None if gradient is None else [gradient], retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs)

    def register_hook(self, hook):
        """`hook(grad) -> Tensor or None` runs when this tensor's gradient has been computed; a
        returned tensor replaces the gradient.  Returns a handle with `.remove()`."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        hooks = self._hooks if self.grad_fn is None else self.grad_fn._output_hooks(self._out_idx)
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """`hook(tensor) -> None` runs once per backward, after this leaf's `.grad` holds its whole
        gradient for that backward (every contribution accumulated: a parameter used twice gets one
        call, after the sum). Not run by `tl.autograd.grad`, which accumulates nothing. Returns a
        handle with `.remove()`."""
        global post_accumulate_hooks_alive
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self.grad_fn is not None:
            raise RuntimeError("post-accumulate-grad hooks can only be registered on leaf tensors "
                               "(this one was made by an operation)")
        if '_post_accumulate_hooks' not in self.__dict__:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        post_accumulate_hooks_alive += 1
        return _PostAccumulateHandle(self._post_accumulate_hooks, hook)

    def retain_grad(self):
        """Keep the gradient of a non-leaf tensor in `.grad` after backward."""
        if self.grad_fn is None or getattr(self, '_retains_grad', False):
            return
        import weakref
        ref = weakref.ref(self)

        def keep(grad):
            t = ref()
            if t is not None:
                t.grad = grad if t.grad is None else t.grad + grad
        self.register_hook(keep)
        self._retains_grad = True

    # ---- in-place writes (bump the version counter) -----------------------------------------
    def _check_inplace(self, name):
        if is_grad_enabled() and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{name}: a leaf tensor that requires grad cannot be modified in "
                               "place while recording; wrap the update in `with tl.no_grad():`")

    def _write_inplace(self, name, result, shares_memory=False):
        """Make this tensor hold `result` (a Tensor of this shape).

        Not recording: the values are written into this tensor's array and its version counter is
        bumped, so a backward that saved the old values raises.  Recording: this tensor takes over
        `result`'s array and place in the graph (PyTorch's history rebase); the old array is left
        as it was, so Functions that saved it stay correct.  shares_memory=True: `result` was
        already computed over this tensor's memory (an in-place kernel), so the old values are gone
        and the version counter is bumped in both cases."""
        self._check_inplace(name)
        if tuple(result.shape) != tuple(self.shape):
            raise ValueError(f"{name}: the result has shape {tuple(result.shape)} but an in-place "
                             f"write needs this tensor's shape {tuple(self.shape)}")
        if shares_memory:
            self._vc.value += 1
        if is_grad_enabled() and result.requires_grad:
            if result.dtype != self.dtype:
                result = F.cast(result, self.dtype)
            self._data, self._vc = result._data, result._vc
            self.grad_fn, self._out_idx = result.grad_fn, result._out_idx
            self._requires_grad = True
            return self
        if not shares_memory:
            xp = backend.array_module(self._data)
            self._data[...] = xp.asarray(result._data, dtype=self._data.dtype)
            self._vc.value += 1
        return self

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        self._check_inplace('fill_')
        self._data[...] = value
        self._vc.value += 1
        return self

    def copy_(self, src):
        """Write `src` (a Tensor, an array or a number, broadcast to this shape and cast to this
        dtype) into this tensor.  Under `tl.no_grad()` the values go into this tensor's own array
        and its version counter is bumped (how init and load_state_dict fill parameters); while
        recording, as every in-place op (see `_write_inplace`)."""
        return self._write_inplace('copy_', F.broadcast_to(_wrap(src, self), self.shape))

    def _arith_(self, name, op, other):
        """self (op)= other.  Recording: out of place, then a history rebase.  Not recording (an
        optimizer step under no_grad): one ufunc writing into this tensor's array, no temporary."""
        if is_grad_enabled() and (self.requires_grad or getattr(other, 'requires_grad', False)):
            return self._write_inplace(name, getattr(F, op)(self, other))
        o = other._data if isinstance(other, Tensor) else other
        xp = backend.array_module(self._data)
        try:
            getattr(xp, _UFUNCS[op])(self._data, o, out=self._data)
        except ValueError as e:                # the result would need another shape, or read-only
            raise ValueError(f"{name}: cannot write the result into this tensor of shape "
                             f"{tuple(self.shape)} ({e})") from None
        self._vc.value += 1
        return self

    def add_(self, other, alpha=1):
        return self._arith_('add_', 'add', other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        return self._arith_('sub_', 'sub', other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return self._arith_('mul_', 'mul', other)

    def div_(self, other):
        return self._arith_('div_', 'div', other)

    def clamp_(self, min=None, max=None):
        return self._write_inplace('clamp_', F.clamp(self, min, max))

    def __iadd__(self, other): return self.add_(other)
    def __isub__(self, other): return self.sub_(other)
    def __imul__(self, other): return self.mul_(other)
    def __itruediv__(self, other): return self.div_(other)

    def __setitem__(self, key, value):
        self._write_inplace('__setitem__', F.index_put(self, key, _wrap(value, self)))

    # ---- operators ----------------------------------------------------------------------------
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __neg__(self): return F.neg(self)
    def __pos__(self): return self
    def __abs__(self): return F.abs(self)

    # comparisons: no gradient, bool results
    def __eq__(self, other): return _compare(np.equal, self, other)
    def __ne__(self, other): return _compare(np.not_equal, self, other)
    def __lt__(self, other): return _compare(np.less, self, other)
    def __le__(self, other): return _compare(np.less_equal, self, other)
    def __gt__(self, other): return _compare(np.greater, self, other)
    def __ge__(self, other): return _compare(np.greater_equal, self, other)

    def __invert__(self):
        if self.dtype != dtypes.bool_:
            raise TypeError(f"~ needs a bool tensor, got dtype {self.dtype}")
        return Tensor(~self._data)

    def __and__(self, other): return _compare(np.logical_and, self, other)
    def __or__(self, other): return _compare(np.logical_or, self, other)

    def __getitem__(self, key):
        return F.getitem(self, key)

    # ---- methods that PyTorch's Tensor has ------------------------------------------------------
    def add(self, other): return F.add(self, other)
    def sub(self, other): return F.sub(self, other)
    def mul(self, other): return F.mul(self, other)
    def div(self, other): return F.div(self, other)
    def neg(self): return F.neg(self)
    def pow(self, exponent): return F.pow(self, exponent)
    def reciprocal(self): return F.reciprocal(self)
    def abs(self): return F.abs(self)
    def sqrt(self): return F.sqrt(self)
    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def maximum(self, other): return F.maximum(self, other)
    def minimum(self, other): return F.minimum(self, other)
    def clamp(self, min=None, max=None): return F.clamp(self, min, max)
    clip = clamp
    def matmul(self, other): return F.matmul(self, other)
    def sum(self, dim=None, keepdim=False): return F.sum(self, dim, keepdim)
    def mean(self, dim=None, keepdim=False): return F.mean(self, dim, keepdim)
    def var(self, dim=None, unbiased=True, keepdim=False): return F.var(self, dim, unbiased, keepdim)
    def std(self, dim=None, unbiased=True, keepdim=False): return F.std(self, dim, unbiased, keepdim)
    def max(self, dim=None, keepdim=False): return F.max(self, dim, keepdim)
    def min(self, dim=None, keepdim=False): return F.min(self, dim, keepdim)
    def logsumexp(self, dim, keepdim=False): return F.logsumexp(self, dim, keepdim)
    def argmax(self, dim=None, keepdim=False): return F.argmax(self, dim, keepdim)
    def argmin(self, dim=None, keepdim=False): return F.argmin(self, dim, keepdim)
    def any(self): return Tensor(np.asarray(self._data.any()))
    def all(self): return Tensor(np.asarray(self._data.all()))
    def reshape(self, *shape): return F.reshape(self, *shape)
    def view(self, *shape): return F.reshape(self, *shape)
    def view_as(self, other): return F.reshape(self, other.shape)
    def reshape_as(self, other): return F.reshape(self, other.shape)
    def transpose(self, dim0, dim1): return F.transpose(self, dim0, dim1)
    def permute(self, *dims): return F.permute(self, *dims)
    def flatten(self, start_dim=0, end_dim=-1): return F.flatten(self, start_dim, end_dim)
    def squeeze(self, dim=None): return F.squeeze(self, dim)
    def unsqueeze(self, dim): return F.unsqueeze(self, dim)
    def expand(self, *sizes): return F.expand(self, *sizes)
    def expand_as(self, other): return F.broadcast_to(self, other.shape)
    def repeat(self, *sizes): return F.repeat(self, *sizes)
    def split(self, split_size_or_sections, dim=0): return F.split(self, split_size_or_sections, dim)
    def chunk(self, chunks, dim=0): return F.chunk(self, chunks, dim)
    def gather(self, dim, index): return F.gather(self, dim, index)
    def masked_fill(self, mask, value): return F.masked_fill(self, mask, value)
    def where(self, condition, other): return F.where(condition, self, other)
    def erf(self): return F.erf(self)
    def relu(self): return F.relu(self)
    def relu_(self): return F.relu_(self)
    def sigmoid(self): return F.sigmoid(self)
    def tanh(self): return F.tanh(self)
    def softmax(self, dim): return F.softmax(self, dim)
    def log_softmax(self, dim): return F.log_softmax(self, dim)

    @property
    def T(self):
        return F.permute(self, *reversed(range(self.ndim)))

    @property
    def mT(self):
        return F.transpose(self, -2, -1)

    # ---- printing ----------------------------------------------------------------------------------
    def __repr__(self):
        data = backend.as_numpy(self._data)
        body = np.array2string(data, separator=', ', prefix='tensor(', precision=4,
                               threshold=1000, edgeitems=3)
        extras = []
        if self.device != 'cpu':
            extras.append(f"device='{self.device}'")
        if data.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_) or data.size == 0:
            extras.append(f'dtype=tl.{data.dtype.name}')
        if self.grad_fn is not None:
            extras.append(f'grad_fn=<{self.grad_fn.name}Backward>')
        elif self.requires_grad:
            extras.append('requires_grad=True')
        return 'tensor(' + body + ''.join(', ' + e for e in extras) + ')'


def _wrap(value, like):
    """A Tensor for `value` (Tensor, array or Python number) on `like`'s device and, for numbers,
    with `like`'s dtype."""
    if isinstance(value, Tensor):
        return value
    xp = backend.array_module(like._data)
    if isinstance(value, numbers.Number) and not isinstance(value, np.generic):
        return Tensor(xp.asarray(value, dtype=_scalar_dtype(value, like.dtype)))
    return Tensor(xp.asarray(value))


def _scalar_dtype(value, dtype):
    """The dtype a Python number takes beside a tensor of `dtype` (PyTorch's promotion for a
    0-d 'wrapped number': it never widens a float tensor; a float next to an int becomes float32)."""
    if isinstance(value, bool):
        return dtype
    if isinstance(value, numbers.Integral):
        return dtype
    if dtypes.is_floating(dtype):
        return dtype
    return dtypes.DEFAULT_FLOAT


def _compare(ufunc, a, b):
    if not isinstance(a, Tensor):
        a, b = _wrap(a, b), b
    b = _wrap(b, a)
    if a.device != b.device:
        raise RuntimeError(f"{ufunc.__name__}: tensors on two devices, {a.device} and {b.device}")
    xp = backend.array_module(a._data)
    try:
        return Tensor(getattr(xp, ufunc.__name__)(a._data, b._data))
    except ValueError:
        raise ValueError(f"{ufunc.__name__}: shapes {tuple(a.shape)} and {tuple(b.shape)} "
                         "cannot be broadcast together") from None


from .. import functional as F  # noqa: E402  (methods call ops; ops need Tensor defined first)

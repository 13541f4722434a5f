"""`Module` and `Parameter`, as PyTorch's: a module owns parameters, buffers and submodules by
attribute name, and those names (joined with dots) are the keys of its state dict, so a PyTorch
state dict converted to NumPy arrays loads unchanged."""
import collections
import itertools
import numbers

import numpy as np

from .. import backend, dtypes
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor


def check_size(owner, name, value, low=1):
    """`value` as an int, or ValueError naming `owner` and `name`: a layer's size (features,
    channels, kernel, stride, heads) must be an int >= low (1 unless a zero means something, as a
    padding does).  Tuples are checked element by element."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise ValueError(f"{owner}: {name} must be {'an int' if len(values) == 1 else 'ints'}"
                             f" >= {low}, got {value!r}")
    return tuple(int(v) for v in values) if isinstance(value, (tuple, list)) else int(value)


class Parameter(Tensor):
    """A Tensor that a Module registers as a parameter when assigned as an attribute.
    `Parameter(tensor_or_array, requires_grad=True)` shares the data, it does not copy."""

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtype=dtypes.DEFAULT_FLOAT)
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return 'Parameter containing:\n' + super().__repr__()


_IncompatibleKeys = collections.namedtuple('IncompatibleKeys', ['missing_keys', 'unexpected_keys'])


class Module:
    """Base class of every layer and model.  Subclasses set parameters, buffers and submodules as
    attributes in `__init__` (after calling `super().__init__()`) and define `forward`."""

    training: bool

    def __init__(self):
        object.__setattr__(self, 'training', True)
        object.__setattr__(self, '_parameters', {})
        object.__setattr__(self, '_buffers', {})
        object.__setattr__(self, '_non_persistent_buffers', set())
        object.__setattr__(self, '_modules', {})
        object.__setattr__(self, '_forward_hooks', {})
        object.__setattr__(self, '_forward_pre_hooks', {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            r = hook(self, args, out)
            if r is not None:
                out = r
        return out

    # ---- attribute bookkeeping ------------------------------------------------------------------
    def __setattr__(self, name, value):
        if '_parameters' not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called "
                                 f"(call super().__init__() first in {type(self).__name__})")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} of "
                                f"{type(self).__name__} (a Parameter or None is expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as submodule {name!r} of "
                                f"{type(self).__name__} (a Module or None is expected)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} of "
                                f"{type(self).__name__} (a Tensor or None is expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name):
        for d in (self._parameters, self._buffers, self._modules):
            d.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ('_parameters', '_buffers', '_modules'):
            if key in d and name in d[key]:
                return d[key][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters or name in self._buffers or name in self._modules:
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._check_name(name)
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A Tensor that is state but not a parameter (running statistics): moved by `to()`, saved
        in the state dict unless persistent=False, never given to an optimizer."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, got "
                            f"{type(tensor).__name__}")
        self._check_name(name)
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        self._check_name(name)
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    @staticmethod
    def _check_name(name):
        if not isinstance(name, str) or not name or '.' in name:
            raise KeyError(f"a parameter, buffer or module name must be a non-empty string without "
                           f"'.', got {name!r}")

    # ---- walking the tree -------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix='', remove_duplicate=True):
        """(name, module) for this module and every descendant, depth first, each module once."""
        memo = set() if memo is None else memo
        stack = [(prefix, self)]
        while stack:                         # iterative: a 10,000-layer Sequential is fine
            name, m = stack.pop()
            if remove_duplicate:
                if id(m) in memo:
                    continue
                memo.add(id(m))
            yield name, m
            children = [(name + ('.' if name else '') + k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def get_submodule(self, target):
        """The submodule at the dotted path `target` ('' is this module), as PyTorch's:
        model.get_submodule('blocks.6.proj').  AttributeError naming the part that is missing."""
        module = self
        for part in target.split('.') if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule "
                                     f"{part!r} (in {target!r})")
            module = child
        return module

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, get, prefix='', recurse=True, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mname, m in mods:
            for k, v in get(m):
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mname + ('.' if mname else '') + k, v

    def named_parameters(self, prefix='', recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix='', recurse=True, remove_duplicate=True):
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """fn(module) on every submodule (children first), then on this one; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes, devices, dtypes ---------------------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, 'training', mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def _apply(self, convert):
        """Replace the array of every parameter, buffer and gradient by convert(array), keeping the
        Parameter objects (an optimizer holding them stays valid)."""
        for m in self.modules():
            for p in m._parameters.values():
                if p is None:
                    continue
                p.data = convert(p.data)
                if p.grad is not None:
                    p.grad.data = convert(p.grad.data)
            for k, b in m._buffers.items():
                if b is not None:
                    b.data = convert(b.data)
        return self

    def to(self, *args, dtype=None, device=None):
        """`to('cuda')`, `to(tl.float64)`, `to('cpu', tl.float32)`.  Dtype changes apply to
        floating-point tensors only (an integer buffer such as num_batches_tracked stays integer)."""
        for a in args:
            if isinstance(a, str) and a.split(':')[0] in backend.DEVICES:
                device = a
            else:
                dtype = a
        if device is not None:
            dev = backend.normalize_device(device)
            backend.xp_for(dev)                   # says what is missing before anything moves
            self._apply(lambda a: backend.to_device(a, dev))
        if dtype is not None:
            dt = dtypes.normalize_dtype(dtype)
            if not dtypes.is_floating(dt):
                raise TypeError(f"Module.to: only floating-point dtypes are allowed, got {dt}")
            self._apply(lambda a: a.astype(dt) if a.dtype.kind == 'f' else a)
        return self

    def cpu(self):
        return self.to('cpu')

    def cuda(self):
        return self.to('cuda')

    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    def half(self):
        return self.to(dtypes.float16)

    # ---- state dict ---------------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix='', keep_vars=False):
        """An ordered dict name -> Tensor of every parameter and persistent buffer, with PyTorch's
        dotted names ('layer1.0.conv1.weight').  Tensors are detached unless keep_vars=True."""
        out = collections.OrderedDict() if destination is None else destination
        for mname, m in self.named_modules(prefix=prefix.rstrip('.')):
            base = mname + '.' if mname else ''
            for k, p in m._parameters.items():
                if p is not None:
                    out[base + k] = p if keep_vars else p.detach()
            for k, b in m._buffers.items():
                if b is not None and k not in m._non_persistent_buffers:
                    out[base + k] = b if keep_vars else b.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy arrays or Tensors) into the parameters and buffers of the same names.
        A shape mismatch is always an error; missing and unexpected keys are with strict=True.
        The error lists every problem at once.  Returns (missing_keys, unexpected_keys)."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, converted = [], {}
        for k, target in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            arr = v.data if isinstance(v, Tensor) else v
            if not hasattr(arr, 'shape'):
                arr = np.asarray(arr)
            if tuple(arr.shape) != tuple(target.shape):
                mismatched.append(f"{k}: checkpoint {tuple(arr.shape)}, model {tuple(target.shape)}")
            else:
                converted[k] = arr
        problems = []
        if mismatched:
            problems.append('shape mismatch for ' + '; '.join(mismatched))
        if strict and missing:
            problems.append('missing keys: ' + ', '.join(missing))
        if strict and unexpected:
            problems.append('unexpected keys: ' + ', '.join(unexpected))
        if problems:
            raise RuntimeError(f"load_state_dict for {type(self).__name__}: " + '. '.join(problems))
        with no_grad():
            for k, arr in converted.items():
                target = own[k]
                target.copy_(backend.to_device(backend.as_numpy(arr), target.device)
                             .astype(target.dtype, copy=False))
        return _IncompatibleKeys(missing, unexpected)

    # ---- printing ---------------------------------------------------------------------------------------
    def extra_repr(self):
        return ''

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split('\n')
        for name, m in self._modules.items():
            body = repr(m).replace('\n', '\n  ')
            lines.append(f'({name}): {body}')
        head = type(self).__name__ + '('
        if not lines:
            return head + ')'
        if len(lines) == 1 and not self._modules:
            return head + lines[0] + ')'
        return head + '\n  ' + '\n  '.join(lines) + '\n)'

    # ---- hooks ------------------------------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """hook(module, inputs, output) after forward; a returned value replaces the output."""
        return _HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """hook(module, inputs) before forward; a returned value replaces the inputs."""
        return _HookHandle(self._forward_pre_hooks, hook)


class _HookHandle:
    _ids = itertools.count()

    def __init__(self, registry, hook):
        self.id = next(self._ids)
        self._registry = registry
        registry[self.id] = hook

    def remove(self):
        self._registry.pop(self.id, None)

"""`Optimizer`, the base of every optimizer, as PyTorch's: parameter groups with their own options,
per-parameter state, `zero_grad`, `step` and a state dict that names parameters by their position.

A step changes each parameter's array in place (the Parameter objects and every view of their
arrays stay valid) and bumps the tensor's version counter, so a backward that saved the old values
raises instead of using the new ones.  For float32 and float64 parameters the whole update of one
parameter is one fused kernel (kernels/{cpu,cuda}/optim.py, chosen by the array's device), one
pass over its memory; other dtypes (float16 after `Module.half()`) and non-contiguous arrays take
the NumPy expressions of the update rule, through `Tensor.add_`/`sub_`/`mul_` under `no_grad`.

The per-parameter state (momentum buffers, moment estimates) is held as raw arrays (NumPy or CuPy,
on the parameter's device and in its dtype, C-contiguous), not Tensors: it never enters a graph,
and arrays go into a `.npz` checkpoint as they are.  The step count is a Python int.  A gradient of
another dtype than its parameter's is cast to the parameter's before a fused update, so the state
stays in the parameter's dtype.
"""
import collections
import copy
import math

import numpy as np

from .. import backend
from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.tensor import Tensor, increment_version
from ..kernels._launch import FLOAT_DTYPES


class _RequiredParameter:
    """The default of an option that every parameter group must set (PyTorch's `required`)."""

    def __repr__(self):
        return '<required parameter>'


required = _RequiredParameter()


_UNORDERED = ("parameters must be given in an ordered collection, not a set: a set's order changes "
              "between runs, and the state dict names parameters by their order")


def check_hyperparameter(owner, name, value, low=0.0, high=None, high_inclusive=False):
    """`value` as a float, or ValueError naming `owner`, `name`, the range and what came: a
    hyper-parameter must be a real number, finite, >= low and below (or up to) high.  PyTorch's
    wording ('Invalid learning rate') starts the message."""
    label = {'lr': 'learning rate', 'eps': 'epsilon value'}.get(name, f'{name} value')
    if name.startswith('betas['):
        label = f"beta parameter at index {name[6:-1]}"      # PyTorch's words
    bound = f">= {low:g}" + ('' if high is None else
                             f" and {'<=' if high_inclusive else '<'} {high:g}")
    try:
        number = float(value)
        valid = not isinstance(value, (bool, str)) and math.isfinite(number)
    except (TypeError, ValueError):
        valid = False
    if valid:
        valid = number >= low and (high is None or number < high
                                   or (high_inclusive and number == high))
    if not valid:
        raise ValueError(f"Invalid {label}: {owner}: {name} must be a finite number {bound}, got "
                         f"{value!r}")
    return number


def _as_python(value):
    """A 0-d array or NumPy scalar (a group option read back from a `.npz`) as a Python number."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value.item()
    return value


def _is_array(value):
    return isinstance(value, np.ndarray) or backend.is_cupy_array(value)


class Optimizer:
    """Base class of the optimizers.

    `params` is an iterable of Tensors (usually `model.parameters()`) or of dicts, each a parameter
    group: `{'params': [...], 'lr': 0.01, ...}`; options a group does not set come from `defaults`.
    Subclasses implement `_update_group(group)`, called by `step()` under `no_grad` for each group:
    it reads the group's options and keeps per-parameter state in `self.state[p]`.
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = collections.defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params should be an iterable of Tensors or of dicts, but got a "
                            "Tensor; pass [tensor] or model.parameters()")
        if isinstance(params, (set, frozenset)):
            raise TypeError(_UNORDERED)
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{'params': groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters with its own options (e.g. a new layer to fine-tune); options
        it does not set take the optimizer's defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get('params')
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(_UNORDERED)
        elif params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"an optimizer can only optimize Tensors, but parameter {i} of the "
                                f"group is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"cannot optimize a non-leaf Tensor (parameter {i} of the group "
                                 "was computed by an operation); optimize the leaf it came from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter twice; it would be "
                             "updated twice per step")
        group['params'] = params

        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name!r}")
            group.setdefault(name, default)

        seen = {id(p) for g in self.param_groups for p in g['params']}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # ---- the training-loop calls -----------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients of every parameter: drop them (`set_to_none=True`, the default,
        as PyTorch's) or fill them with zeros."""
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:       # a gradient made with create_graph=True
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient.  `closure`, if given, re-evaluates the
        model and returns the loss (it runs with gradients enabled); its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group):
        """Update the parameters of one group: the optimizer's own rule, written by subclasses."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update_group")

    @staticmethod
    def _params_with_grad(group):
        """(parameter, gradient array) for each parameter of the group that has a gradient."""
        for p in group['params']:
            if p.grad is not None:
                yield p, p.grad.data

    # One kernel call per parameter, not one per group over typed lists of its arrays: on whole
    # training steps the two cannot be told apart (tiny TimeSformer, AdamW: 199 and 204 ms a step),
    # and building a numba.typed.List of a group's gradients costs about 100 us for 54 arrays, so
    # one call per group wins only with lists cached across steps, which must then follow every
    # new array (a loaded state, `p.data = ...`).  See docs/performance.md, "The optimizer update".
    @staticmethod
    def _fused_grad(p, grad):
        """The gradient array as the fused kernels take it -- C-contiguous, in p's dtype (a copy
        only when it is not already) -- or None when p itself cannot be updated by them (a dtype
        other than float32/float64, or an array that is not C-contiguous)."""
        data = p.data
        if data.dtype not in FLOAT_DTYPES or not data.flags.c_contiguous:
            return None
        if grad.dtype == data.dtype and grad.flags.c_contiguous:
            return grad
        return backend.array_module(data).ascontiguousarray(grad, dtype=data.dtype)

    # Record that a kernel wrote p's array in place (`_written(p)`): bump its version counter, as
    # `Tensor.sub_` does, so a backward that saved the old values raises.
    _written = staticmethod(increment_version)

    # ---- state dict ------------------------------------------------------------------------------
    def state_dict(self):
        """The optimizer's state in PyTorch's layout:

            {'state': {index: {'step': int, 'exp_avg': array, ...}},
             'param_groups': [{'lr': ..., ..., 'params': [index, ...]}, ...]}

        Parameters are named by their position across the groups (0, 1, ...), so the dict loads into
        an optimizer built the same way on another copy of the model.  The arrays are the
        optimizer's own, as in PyTorch: save them or `copy.deepcopy` the dict to keep a snapshot.
        """
        index = {}
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != 'params'}
            for p in group['params']:
                index.setdefault(id(p), len(index))
            packed['params'] = [index[id(p)] for p in group['params']]
            packed_groups.append(packed)
        packed_state = {}
        for group in self.param_groups:
            for p in group['params']:
                if p in self.state:
                    packed_state[index[id(p)]] = dict(self.state[p])
        return {'state': packed_state, 'param_groups': packed_groups}

    def load_state_dict(self, state_dict):
        """Restore the state saved by `state_dict()` of an optimizer of the same type built on
        parameters of the same shapes, in the same groups and order.  The group options (lr,
        momentum, ...) are the saved ones; state arrays are copied into each parameter's dtype and
        device.  A mismatch (group count, parameters per group, a state array's shape, a missing
        option) raises ValueError naming it, and leaves this optimizer unchanged."""
        for key in ('state', 'param_groups'):
            if key not in state_dict:
                raise ValueError(f"the optimizer state dict has no {key!r} entry (it has "
                                 f"{sorted(state_dict)})")
        groups, saved_groups = self.param_groups, state_dict['param_groups']
        if len(saved_groups) != len(groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter group(s), but "
                             f"this {type(self).__name__} has {len(groups)}")
        where = {}                               # saved index -> (parameter, group number)
        new_groups = []
        for g, (group, saved) in enumerate(zip(groups, saved_groups)):
            if len(saved['params']) != len(group['params']):
                raise ValueError(f"parameter group {g}: the loaded state dict has "
                                 f"{len(saved['params'])} parameters, this optimizer's group has "
                                 f"{len(group['params'])}")
            missing = [k for k in self.defaults if k not in saved]
            if missing:
                raise ValueError(f"parameter group {g} of the loaded state dict has no "
                                 f"{', '.join(map(repr, missing))}: was it saved from another "
                                 f"optimizer than {type(self).__name__}?")
            for i, p in zip(saved['params'], group['params']):
                where[int(i)] = (p, g)
            new = {k: _as_python(v) for k, v in saved.items() if k != 'params'}
            new['params'] = group['params']
            new_groups.append(new)

        new_state = collections.defaultdict(dict)
        for i, saved_state in state_dict['state'].items():
            i = int(i)                           # keys come back as strings from JSON
            if i not in where:
                raise ValueError(f"the loaded state dict has state for parameter {i}, but its "
                                 f"param_groups name only parameters {sorted(where)}")
            p, g = where[i]
            new_state[p] = {k: self._cast_state(k, v, p, i, g) for k, v in saved_state.items()}

        self.param_groups = new_groups
        self.state = new_state

    @staticmethod
    def _cast_state(key, value, p, i, g):
        """One saved state value, made ready for parameter `p` (number `i`, in group `g`)."""
        if isinstance(value, Tensor):
            value = value.data
        if key == 'step':
            return int(_as_python(value))
        if not _is_array(value):
            return copy.deepcopy(value)
        if tuple(value.shape) != tuple(p.shape):
            raise ValueError(f"state {key!r} of parameter {i} (group {g}) has shape "
                             f"{tuple(value.shape)}, but the parameter has shape {tuple(p.shape)}")
        # a copy, so the loaded dict and this optimizer never share an array
        array = backend.to_device(value, p.device)
        xp = backend.array_module(array)
        return xp.array(array, dtype=p.dtype, copy=True, order='C')      # as the kernels take it

    def __repr__(self):
        lines = [f'{type(self).__name__} (']
        for g, group in enumerate(self.param_groups):
            lines.append(f'Parameter Group {g}')
            for key in sorted(k for k in group if k != 'params'):
                lines.append(f'    {key}: {group[key]}')
        lines.append(')')
        return '\n'.join(lines)


"""A Function keeps arrays only through `ctx.save_for_backward` (docs/autograd.md, section 2).

Every Function of tensorlite is run (forward, then backward with create_graph=True down to the
adjoint Functions that only a backward builds) and every graph node it leaves is checked:

- no attribute a Function set on its ctx holds an array or a Tensor (looked for in tuples, lists,
  dicts and the attributes of plain objects such as attention's `_Problem`): attributes hold
  shapes and flags;
- after a plain `backward()` every node has released what it saved, so that no array is
  reachable from the node any more (the issue's example: `relu(x).sum().backward()` on a
  1000 x 1000 input must not leave a 4 MB mask on the node).

A Function nobody drives here fails `test_every_function_is_covered`, so a new op cannot slip by.
"""
import gc
import importlib
import pkgutil
import types

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import backend
from tensorlite.autograd.function import Context, Function
from tensorlite.autograd.tensor import Tensor
from tensorlite.functional import attention as ATT
from tensorlite.gradcheck_suite import OPS


def _import_everything():
    """Import every module of tensorlite (and tensorlite.models), so that every Function subclass
    exists; optional dependencies that are missing only skip their module."""
    for pkg_name in ('tensorlite', 'tensorlite.models'):
        pkg = importlib.import_module(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, pkg_name + '.'):
            if '.kernels.cuda' in info.name or info.name.endswith('__main__'):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:           # noqa: BLE001 (an optional dependency, a GPU-only module)
                pass


def _all_functions():
    """The concrete Function subclasses defined in tensorlite (bases such as _Extremum, which have
    subclasses of their own, are covered through them)."""
    _import_everything()
    found, stack = set(), [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return {c for c in found if c.__module__.startswith('tensorlite') and not c.__subclasses__()}


# What the Context sets itself: the engine's bookkeeping, not a Function's attributes.
_ENGINE_ATTRS = frozenset(vars(Context(Function, ())).keys()) | {'_non_diff_idx'}

# Objects that hold tables computed from shapes alone (a few ints per output position of one
# axis), the same whatever the data: geometry, which a ctx may keep like a shape.
_GEOMETRY = ('PoolGeometry', 'ResampleTable')


def _is_array(v):
    return isinstance(v, (np.ndarray, Tensor)) or backend.is_cupy_array(v)


def _arrays_in(value, path, seen=None):
    """[(path, type name)] of every array or Tensor in `value`, looking into tuples, lists, dicts
    and the attributes of plain objects."""
    seen = set() if seen is None else seen
    if id(value) in seen or value is None or isinstance(value, (str, bytes, int, float, complex,
                                                                 bool, np.generic, np.dtype,
                                                                 type, types.ModuleType,
                                                                 types.FunctionType)):
        return []
    seen.add(id(value))
    if _is_array(value):
        return [(path, type(value).__name__)]
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _arrays_in(v, f'{path}[{k!r}]', seen)
    elif isinstance(value, (tuple, list, set, frozenset)):
        for k, v in enumerate(value):
            found += _arrays_in(v, f'{path}[{k}]', seen)
    elif type(value).__name__ not in _GEOMETRY:
        attrs = getattr(value, '__dict__', None) or {}
        for k, v in attrs.items():
            found += _arrays_in(v, f'{path}.{k}', seen)
    return found


def _function_attrs(node):
    """{name: value} of the attributes the Function itself set on its ctx."""
    return {k: v for k, v in vars(node).items() if k not in _ENGINE_ATTRS}


def _nodes(tensors):
    """Every graph node reachable from `tensors` (iterative: no recursion limit)."""
    seen, order = set(), []
    stack = [t.grad_fn for t in tensors if isinstance(t, Tensor) and t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        for e in node.edges:
            if isinstance(e, tuple):
                stack.append(e[0])
    return order


def _tensors_of(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors_of(o)]
    return [t for t in vars(out).values() if isinstance(t, Tensor)] if hasattr(out, '__dict__') \
        else []


def _loss(tensors):
    """A scalar from every float output that carries a gradient: sum(w t^2) with fixed weights w,
    so that the gradient depends on the inputs (a linear op's adjoint then gets a node of its own
    when differentiated with create_graph=True)."""
    total = None
    for t in tensors:
        if t.requires_grad and t.dtype.kind == 'f':
            w = Tensor(np.linspace(0.5, 1.5, t.numel()).reshape(t.shape).astype(t.dtype))
            term = (t * t * w).sum()
            total = term if total is None else total + term
    return total


# ---- the cases: the gradcheck table, and what it does not reach --------------------------------------

def _leaf(*shape, seed=0, low=None):
    a = np.random.default_rng(seed).standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    return tl.tensor(a, requires_grad=True)


def _setitem(x):
    y = x * 1.0
    y[np.array([0, 2])] = tl.tensor(np.ones(4))
    return y


def _sync_batch_norm(x, w, b):
    from tensorlite.nn.sync_batch_norm import sync_batch_norm
    return sync_batch_norm(x, None, None, w, b)


EXTRA = {
    # dropout inside attention: the keep-mask; masks (bool, and float with a gradient)
    'plain attention (dropout, bool mask)': (
        lambda q, k, v: (tl.manual_seed(0), ATT.plain_attention(
            q, k, v, attn_mask=tl.tensor(np.tril(np.ones((4, 5), bool))), dropout_p=0.3))[1],
        lambda: (_leaf(2, 4, 3), _leaf(2, 5, 3, seed=1), _leaf(2, 5, 2, seed=2))),
    'plain attention (float mask with a gradient)': (
        lambda q, k, v, m: ATT.plain_attention(q, k, v, attn_mask=m),
        lambda: (_leaf(2, 4, 3), _leaf(2, 5, 3, seed=1), _leaf(2, 5, 2, seed=2),
                 _leaf(4, 5, seed=3))),
    'max_pool2d (return_indices)': (
        lambda x: F.max_pool2d(x, 2, return_indices=True)[0], lambda: (_leaf(1, 2, 4, 4),)),
    'clamp (min only)': (lambda x: F.clamp(x, min=0.1), lambda: (_leaf(6),)),
    'setitem (integer array)': (_setitem, lambda: (_leaf(3, 4),)),
    'clone': (lambda x: x.clone(), lambda: (_leaf(3),)),
    'cast': (lambda x: x.to(tl.float32), lambda: (_leaf(3),)),
    'to device (same device)': (lambda x: F.shape.ToDevice.apply(x, 'cpu'), lambda: (_leaf(3),)),
    'sum_to': (lambda x: F.shape.sum_to(x, (1, 3)), lambda: (_leaf(2, 3),)),
    'embedding (padding_idx)': (
        lambda w: F.embedding(tl.tensor([[0, 2], [2, 1]]), w, padding_idx=2), lambda: (_leaf(3, 4),)),
    'sync_batch_norm (one process)': (_sync_batch_norm, lambda: (_leaf(3, 2, 4), _leaf(2), _leaf(2))),
    'interpolate (nearest)': (lambda x: F.interpolate(x, scale_factor=2, mode='nearest'),
                              lambda: (_leaf(1, 1, 3, 3),)),
    'relu (in place)': (lambda x: F.relu(x * 1.0, inplace=True), lambda: (_leaf(6),)),
}

CASES = {**OPS, **EXTRA}

def _cases():
    return sorted(CASES)


def _run_case(name):
    """Forward, then up to three rounds of tl.autograd.grad with create_graph=True (where the op
    has a second derivative): the nodes of every graph built, each checked before the graph is
    differentiated.  Returns (Function classes seen, [(node, path, type)] of arrays found)."""
    fn, make = CASES[name]
    inputs = make()
    seen, bad = set(), []

    def check(tensors):
        for node in _nodes(tensors):
            seen.add(node.fn)
            for k, v in _function_attrs(node).items():
                bad.extend((node.name, p, tn) for p, tn in _arrays_in(v, f'ctx.{k}'))

    outs = _tensors_of(fn(*inputs))
    check(outs)
    loss = _loss(outs)
    for _ in range(3):
        if loss is None or not loss.requires_grad:
            break
        try:
            grads = tl.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
        except NotImplementedError:             # a fused backward without a second derivative
            tl.autograd.grad(loss, inputs, allow_unused=True)
            break
        grads = [g for g in grads if g is not None]
        check(grads)
        loss = _loss(grads)
    return seen, bad


@pytest.mark.parametrize('name', _cases())
def test_no_array_on_ctx(name):
    _, bad = _run_case(name)
    assert not bad, (f"{name}: Functions keep arrays as ctx attributes instead of through "
                     f"save_for_backward: {bad}")


@pytest.mark.parametrize('name', _cases())
def test_backward_releases_saved_arrays(name):
    fn, make = CASES[name]
    inputs = make()
    outs = _tensors_of(fn(*inputs))
    nodes = _nodes(outs)
    loss = _loss(outs)
    loss.backward()
    held = []
    for node in nodes:
        assert node._freed and node._saved is None and node._to_save == (), node
        for k, v in vars(node).items():
            if k not in ('edges', 'fn'):        # edges: the inputs, which their owner holds
                held += [(node.name, p, tn) for p, tn in _arrays_in(v, f'ctx.{k}')]
    assert not held, f"{name}: arrays still held by graph nodes after backward: {held}"


def test_every_function_is_covered():
    """Every Function of tensorlite is reached by some case above: a new one needs a case (in
    gradcheck_suite.OPS, which also gradchecks it, or in EXTRA here)."""
    seen = set()
    for name in CASES:
        seen |= _run_case(name)[0]
    missing = sorted(f'{c.__module__}.{c.__qualname__}' for c in _all_functions() - seen)
    assert not missing, f"Functions with no case in tests/test_ctx_saved.py: {missing}"


def _reachable_arrays(root, skip):
    """Every NumPy array reachable from `root` through references, not entering `skip` objects,
    classes, modules and functions (which reach everything)."""
    stop = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    found, seen, stack = [], {id(s) for s in skip}, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, stop):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            found.append(obj)
        stack.extend(gc.get_referents(obj))
    return found


def test_relu_mask_is_released_after_backward():
    """The issue's example: after relu(x).sum().backward() on 1000 x 1000, the node holds no 4 MB
    array (neither a mask nor the saved output)."""
    x = tl.tensor(np.random.default_rng(0).standard_normal((1000, 1000)).astype(np.float32),
                  requires_grad=True)
    y = F.relu(x)
    node = y.grad_fn
    big = [a for a in _reachable_arrays(node, [x, node.edges]) if a.nbytes >= 4_000_000]
    assert big, "before backward the node must hold what backward needs"
    y.sum().backward()
    big = [a for a in _reachable_arrays(node, [x, node.edges]) if a.nbytes >= 4_000_000]
    assert not big, f"after backward the ReLU node still holds {[(a.shape, a.dtype) for a in big]}"


@pytest.mark.parametrize('name, make', [
    ('leaky_relu', lambda x: F.leaky_relu(x, 0.1)),
    ('abs', F.abs),
    ('maximum', lambda x: F.maximum(x, x * 0.5)),
    ('softplus', F.softplus),
    ('dropout', lambda x: F.dropout(x, 0.5)),
    ('clamp', lambda x: F.clamp(x, -0.5, 0.5)),
])
def test_masks_are_released_after_backward(name, make):
    """The issue's list: each node's mask goes with the free step after backward."""
    x = tl.tensor(np.random.default_rng(0).standard_normal((500, 500)), requires_grad=True)
    y = make(x)
    node = y.grad_fn
    y.sum().backward()
    big = [a for a in _reachable_arrays(node, [x, node.edges]) if a.nbytes >= 500 * 500]
    assert not big, f"{name}: the node still holds {[(a.shape, a.dtype) for a in big]}"


def test_saved_constant_comes_back_as_a_constant_tensor():
    """An array that is neither an input nor an output (a mask) comes back as a Tensor on that very
    array, outside the graph; None stays None."""
    class Masked(Function):
        @staticmethod
        def forward(ctx, x):
            mask = (x > 0).astype(x.dtype)
            ctx.save_for_backward(mask, None)
            ctx.mask_id = id(mask)
            return x * mask

        @staticmethod
        def backward(ctx, gy):
            mask, nothing = ctx.saved_tensors
            assert nothing is None and id(mask.data) == ctx.mask_id
            assert mask.grad_fn is None and not mask.requires_grad
            return gy * mask

    x = tl.tensor(np.array([-1.0, 2.0]), requires_grad=True)
    Masked.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0])

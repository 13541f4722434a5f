"""The engine: graph walk, accumulation, freeing, retain/create graph, hooks, grad modes, the
version counter, the Function API and its error messages."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.autograd import Function


def leaf(*shape, seed=0):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_simple_gradient_matches_hand_derivative():
    x = leaf(3, 4)
    y = (x * x * 3 + x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy() + 1)


def test_gradients_accumulate_in_leaves():
    x = leaf(5)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(5, 5.0))


def test_a_leaf_used_twice_gets_both_contributions():
    x = leaf(4)
    y = (x * x + x * 3).sum()        # x reaches y along three edges
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_leaves_sharing_a_gradient_array_do_not_alias():
    a, b = leaf(3), leaf(3, seed=1)
    (a + b).sum().backward()        # Add hands the same gradient to both
    a.grad.zero_()
    np.testing.assert_allclose(b.grad.numpy(), np.ones(3))


def test_deep_chain_backprops_without_recursion_error():
    x = tl.tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0
    del y                             # freeing a 100,000-node chain must not overflow the C stack


def test_second_backward_through_freed_graph_says_retain_graph():
    x = leaf(3)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match='retain_graph=True'):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_saved_arrays_are_freed_after_backward():
    x = leaf(3)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node._saved is None and node._freed


def test_create_graph_gives_second_and_third_derivatives():
    x = tl.tensor(np.array([0.5, -1.3, 2.0]), requires_grad=True)
    (g,) = tl.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (gg,) = tl.autograd.grad(g.sum(), x, create_graph=True)
    (ggg,) = tl.autograd.grad(gg.sum(), x)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())
    np.testing.assert_allclose(ggg.numpy(), np.full(3, 6.0))


def test_backward_create_graph_leaves_a_differentiable_grad():
    x = leaf(4)
    x.tanh().sum().backward(create_graph=True)
    assert x.grad.requires_grad and x.grad.grad_fn is not None
    g = x.grad
    x.grad = None
    g.sum().backward()
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t * t))


def test_grad_does_not_touch_dot_grad_and_reports_unused_inputs():
    x, z = leaf(3), leaf(3, seed=1)
    (g,) = tl.autograd.grad((x * 2).sum(), x)
    assert x.grad is None
    np.testing.assert_allclose(g.numpy(), 2.0)
    with pytest.raises(RuntimeError, match='allow_unused'):
        tl.autograd.grad((x * 2).sum(), [x, z])
    gx, gz = tl.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None


def test_grad_with_respect_to_an_intermediate_tensor():
    x = leaf(3)
    h = x * 2
    y = (h * h).sum()
    (gh,) = tl.autograd.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())


def test_backward_inputs_argument_accumulates_only_there():
    x, z = leaf(3), leaf(3, seed=1)
    (x * z).sum().backward(inputs=[x])
    np.testing.assert_allclose(x.grad.numpy(), z.numpy())
    assert z.grad is None


def test_non_scalar_backward_needs_gradient():
    x = leaf(2, 3)
    y = x * 2
    with pytest.raises(RuntimeError, match=r'shape \(2, 3\).*gradient='):
        y.backward()
    y.backward(gradient=tl.ones(2, 3, dtype=tl.float64))
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_gradient_of_the_wrong_shape_is_refused():
    y = leaf(2, 3) * 2
    with pytest.raises(ValueError, match=r'\(3, 2\).*\(2, 3\)'):
        y.backward(gradient=tl.ones(3, 2, dtype=tl.float64))


def test_backward_on_a_tensor_without_grad_is_refused():
    with pytest.raises(RuntimeError, match='does not require grad'):
        tl.ones(3).sum().backward()


@pytest.mark.parametrize('mode', ['context', 'decorator'])
def test_no_grad_records_nothing(mode):
    x = leaf(3)
    if mode == 'context':
        with tl.no_grad():
            y = x * 2
    else:
        y = tl.no_grad()(lambda t: t * 2)(x)
    assert not y.requires_grad and y.grad_fn is None
    assert tl.is_grad_enabled()


def test_enable_grad_inside_no_grad():
    x = leaf(3)
    with tl.no_grad():
        with tl.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad

    @tl.enable_grad()
    def f(t):
        return t * 2
    with tl.no_grad():
        assert f(x).requires_grad


def test_hook_can_print_and_change_a_gradient():
    x = leaf(3)
    seen = []
    h = x * 1
    handle = h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    (h * 2).sum().backward()
    np.testing.assert_allclose(seen[0], 2.0)
    np.testing.assert_allclose(x.grad.numpy(), 20.0)
    handle.remove()
    x.grad = None
    h2 = x * 1
    (h2 * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_hook_on_a_leaf_runs_before_accumulation():
    x = leaf(3)
    x.register_hook(lambda g: g * 0.5)
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf(3)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


# ---- post-accumulate-grad hooks and end-of-backward callbacks ------------------------------------

def _record_grads(t, log, tag=None):
    """A post-accumulate hook that logs (tag, a copy of t.grad) each time it runs."""
    return t.register_post_accumulate_grad_hook(
        lambda u: log.append((tag, u.grad.numpy().copy())))


def test_post_accumulate_hook_runs_once_after_the_sum_of_every_contribution():
    x, w = leaf(4), leaf(4, seed=1)
    log = []
    _record_grads(x, log)
    y = (x * x + x * 3 + w * x).sum()          # x reaches y along four edges, from three nodes
    y.backward()
    assert len(log) == 1
    np.testing.assert_allclose(log[0][1], 2 * x.numpy() + 3 + w.numpy())


def test_post_accumulate_hook_waits_for_the_last_contribution():
    x, w = leaf(3), leaf(3, seed=1)
    log = []
    _record_grads(x, log, 'x')
    w.register_post_accumulate_grad_hook(lambda u: log.append(('w', x.grad is not None)))
    h = x
    for i in range(10):                      # x is used first and last: its two contributions
        h = h * 1.1                          # arrive at both ends of backward, w's in between
        if i == 5:
            h = h * w
    (h + x).sum().backward()
    assert [tag for tag, _ in log] == ['w', 'x']
    assert log[0][1]                         # x already had a part of its gradient, no hook yet
    np.testing.assert_allclose(log[1][1], 1.1 ** 10 * w.numpy() + 1)


def test_post_accumulate_hook_with_retain_graph_and_accumulating_backwards():
    x = leaf(3)
    log = []
    handle = _record_grads(x, log)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()                               # the hook sees the accumulated .grad
    (x * 5).sum().backward()
    assert len(log) == 3
    np.testing.assert_allclose(log[0][1], 2 * x.numpy())
    np.testing.assert_allclose(log[1][1], 4 * x.numpy())
    np.testing.assert_allclose(log[2][1], 4 * x.numpy() + 5)
    handle.remove()
    (x * 1).sum().backward()
    assert len(log) == 3


def test_post_accumulate_hook_on_a_root_leaf_and_with_backward_inputs():
    x, w = leaf(3), leaf(3, seed=1)
    log = []
    _record_grads(x, log, 'x')
    _record_grads(w, log, 'w')
    x.backward(gradient=tl.ones(3, dtype=tl.float64))
    assert [tag for tag, _ in log] == ['x']
    (x * w).sum().backward(inputs=[w])         # only w accumulates, so only w's hook runs
    assert [tag for tag, _ in log] == ['x', 'w']
    np.testing.assert_allclose(log[1][1], x.numpy())


def test_post_accumulate_hooks_do_not_run_for_autograd_grad():
    x = leaf(3)
    log = []
    _record_grads(x, log)
    tl.autograd.grad((x * x).sum(), x)
    assert log == [] and x.grad is None


def test_post_accumulate_hook_errors():
    x = leaf(3)
    with pytest.raises(RuntimeError, match='only be registered on leaf tensors'):
        (x * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match='does not require grad'):
        tl.zeros(3).register_post_accumulate_grad_hook(lambda t: None)
    handle = x.register_post_accumulate_grad_hook(lambda t: t.grad)
    with pytest.raises(RuntimeError, match='must return None'):
        x.sum().backward()
    handle.remove()


def test_without_a_live_post_accumulate_hook_the_engine_never_looks_for_one(monkeypatch):
    from tensorlite.autograd import tensor as tensor_module
    x = leaf(3)
    handle = x.register_post_accumulate_grad_hook(lambda t: None)
    alive = tensor_module.post_accumulate_hooks_alive
    handle.remove()
    handle.remove()                            # a second remove changes nothing
    assert tensor_module.post_accumulate_hooks_alive == alive - 1

    def looked(t):
        raise AssertionError('the engine looked for post-accumulate hooks')
    monkeypatch.setattr(tensor_module, 'post_accumulate_hooks_alive', 0)
    monkeypatch.setattr(tl.Tensor, '_post_accumulate_hooks', property(looked))
    w = leaf(3, seed=1)
    (x * w + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), w.numpy() + 1)


def test_queue_callback_runs_at_the_end_of_backward_in_order():
    from tensorlite.autograd.engine import queue_callback
    a, b = leaf(3), leaf(3, seed=1)
    log = []

    def hook(t):
        log.append('hook')
        if len(log) == 1:
            queue_callback(lambda: log.append(('first', a.grad is not None, b.grad is not None)))
            queue_callback(lambda: queue_callback(lambda: log.append('queued by a callback')))
    handles = [t.register_post_accumulate_grad_hook(hook) for t in (a, b)]
    (a * b).sum().backward()
    assert log == ['hook', 'hook', ('first', True, True), 'queued by a callback']
    log.clear()
    (a * b).sum().backward()                  # the callbacks belonged to the previous backward
    assert log.count('queued by a callback') == 1
    for h in handles:
        h.remove()
    with pytest.raises(RuntimeError, match='no backward is in progress'):
        queue_callback(lambda: None)


def test_a_backward_that_raises_drops_its_callbacks():
    from tensorlite.autograd.engine import queue_callback
    x = leaf(3)
    log = []

    def hook(t):
        queue_callback(lambda: log.append('ran'))
        raise ValueError('hook fails')
    handle = x.register_post_accumulate_grad_hook(hook)
    with pytest.raises(ValueError, match='hook fails'):
        x.sum().backward()
    handle.remove()
    x.sum().backward()
    assert log == []


def test_in_place_change_of_a_saved_input_is_detected_and_names_the_op():
    x = leaf(3)
    b = x * 2
    d = b * b                      # Mul saves b
    with tl.no_grad():
        b.add_(1)
    with pytest.raises(RuntimeError, match=r'Mul.*in-place'):
        d.sum().backward()


def test_in_place_change_of_a_saved_output_is_detected_and_names_the_op():
    x = leaf(3)
    y = x.exp()                    # Exp saves its output
    with tl.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match=r'Exp.*in-place'):
        y.sum().backward()


def test_in_place_on_a_leaf_that_requires_grad_is_refused_while_recording():
    x = leaf(3)
    with pytest.raises(RuntimeError, match='no_grad'):
        x.add_(1)
    with tl.no_grad():
        x -= 1                       # what an optimizer step does
    assert x.is_leaf and x.requires_grad


def test_in_place_on_a_non_leaf_rebases_history():
    x = leaf(3)
    y = x * 1
    y.mul_(3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0)


def test_setitem_on_a_non_leaf_is_differentiable():
    x = leaf(4)
    v = tl.tensor(np.array(5.0), requires_grad=True)
    y = x * 1
    y[1] = v * 2
    (y * y).sum().backward()
    expected = 2 * x.numpy()
    expected[1] = 0
    np.testing.assert_allclose(x.grad.numpy(), expected)
    np.testing.assert_allclose(v.grad.item(), 2 * 2 * 10.0)


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match='int64'):
        tl.tensor([1, 2, 3], requires_grad=True)
    t = tl.arange(3)
    with pytest.raises(TypeError, match='floating'):
        t.requires_grad = True


# ---- the Function API -----------------------------------------------------------------------------

class Scale(Function):
    """y = x * k for a Python number k; records what backward asked for."""
    calls = []

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, gy):
        Scale.calls.append(ctx.needs_input_grad)
        return gy * ctx.k, None


def test_function_with_non_tensor_arguments_and_needs_input_grad():
    x = leaf(3)
    y = Scale.apply(x, 4.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 4.0)
    assert Scale.calls[-1] == (True, False)


class Cube(Function):
    """Saves its output and its input: both come back as the graph's own tensors."""

    @staticmethod
    def forward(ctx, x):
        y = x ** 3
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, y = ctx.saved_tensors
        return gy * 3 * y / x


def test_saved_output_carries_the_second_derivative():
    x = tl.tensor(np.array([0.7, 1.9]), requires_grad=True)
    (g,) = tl.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    (gg,) = tl.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.numpy())
    assert tl.gradgradcheck(Cube.apply, (x,))


class WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, gy):
        return gy.sum()


def test_a_gradient_of_the_wrong_shape_names_the_op():
    x = leaf(3)
    with pytest.raises(RuntimeError, match=r'WrongShape.*shape \(\).*input 0.*\(3,\)'):
        WrongShape.apply(x).sum().backward()


class TooFewGrads(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, gy):
        return (gy,)


def test_a_wrong_number_of_gradients_names_the_op():
    with pytest.raises(RuntimeError, match='TooFewGrads.*expected 2'):
        TooFewGrads.apply(leaf(2), leaf(2, seed=1)).sum().backward()


class MaxWithIndex(Function):
    @staticmethod
    def forward(ctx, x):
        idx = x.argmax(keepdims=True)
        ctx.mark_non_differentiable(idx)
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return x.max(keepdims=True), idx

    @staticmethod
    def backward(ctx, gy, gidx):
        (idx,) = ctx.saved_tensors              # the output, without a gradient of its own
        assert not idx.requires_grad
        g = np.zeros(ctx.shape)
        g[idx.data] = gy.numpy()
        return tl.Tensor(g)


def test_multi_output_function_with_a_non_differentiable_output():
    x = tl.tensor(np.array([1.0, 5.0, 2.0]), requires_grad=True)
    value, index = MaxWithIndex.apply(x)
    assert value.requires_grad and not index.requires_grad
    value.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0, 1, 0])


def test_ndarray_on_the_left_of_an_operator_gives_a_tensor():
    x = leaf(3)
    y = np.ones(3) * x
    assert isinstance(y, tl.Tensor) and y.requires_grad
    z = np.ones(3) - x
    np.testing.assert_allclose(z.numpy(), 1 - x.numpy())


def test_float32_gradient_of_a_float32_leaf_mixed_with_float64():
    a = tl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    b = tl.tensor(np.ones(3), requires_grad=True)
    y = a * b
    assert y.dtype == tl.float64
    y.sum().backward()
    assert a.grad.dtype == tl.float32 and b.grad.dtype == tl.float64


def test_to_dot_shows_ops_shapes_and_dtypes():
    x = leaf(2, 3)
    w = leaf(4, 3, seed=1)
    dot = tl.viz.to_dot(F.relu(F.linear(x, w)).sum())
    assert dot.startswith('digraph') and dot.rstrip().endswith('}')
    for word in ('Sum', 'ReLU', 'Linear', '(2, 3) float64', '(4, 3) float64'):
        assert word in dot


def test_in_place_arithmetic_without_recording_writes_into_the_same_array():
    x = tl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    buf = x.data
    with tl.no_grad():
        x -= tl.tensor(np.full(3, 0.5))           # float64 into float32, as PyTorch allows
        x *= 4
        x += 1
        x /= 2
    assert x.data is buf and x.dtype == tl.float32 and x._version == 4
    np.testing.assert_allclose(x.numpy(), 1.5)
    with pytest.raises(ValueError, match=r'add_.*shape \(3,\)'):
        with tl.no_grad():
            x.add_(tl.ones(2, 3))


def test_a_leaf_gradient_never_aliases_the_root_gradient_or_what_a_hook_saw():
    x = leaf(3)
    g = tl.ones(3, dtype=tl.float64)
    (x + 0).backward(g)                       # Add passes the caller's array straight through
    g.data[...] = 7
    np.testing.assert_array_equal(x.grad.numpy(), 1.0)
    x.grad = None
    h = x + 0
    h.retain_grad()
    (h + 0).sum().backward()
    assert not np.shares_memory(h.grad.numpy(), x.grad.numpy())


class Doubler(Function):
    """y = 2x; remembers the gradient array its backward makes."""
    made = []

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, gy):
        a = gy.data * 2
        Doubler.made.append(a)
        return tl.Tensor(a)


def test_a_fresh_gradient_array_is_adopted_without_a_copy():
    x = leaf(4)
    Doubler.apply(x).sum().backward()
    assert x.grad.data is Doubler.made[-1]


def test_a_zero_dim_leaf_used_twice_accumulates_into_an_array():
    """NumPy's sum of two 0-d arrays is a scalar; the leaf's .grad must stay a 0-d array."""
    p = tl.tensor(np.float32(3.0), requires_grad=True)
    (p * p).backward()
    (p * p).backward()
    assert isinstance(p.grad.data, np.ndarray) and p.grad.shape == ()
    assert p.grad.item() == 12.0

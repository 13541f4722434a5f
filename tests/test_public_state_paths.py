"""Internal state changes through public paths (issue 21, item 1): `Tensor.copy_` under
`no_grad` and `tl.autograd.increment_version` for in-place writes (used by nn.init,
Module.load_state_dict and the optimizers), and `tl.profiler.observe_forwards` for code that acts
on every Function forward (models.summary)."""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import nn
from tensorlite.autograd import function as _function

MODIFIED = 'modified by an in-place operation'


# ---- copy_ ---------------------------------------------------------------------------------------

def test_copy_under_no_grad_writes_into_the_same_array_and_bumps_the_version():
    w = tl.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    buf, version = w.data, w._version
    with tl.no_grad():
        out = w.copy_(np.arange(6.0).reshape(2, 3))           # float64 in, cast to float32
    assert out is w and w.data is buf and w.dtype == tl.float32
    np.testing.assert_array_equal(w.numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert w._version == version + 1 and w.is_leaf and w.requires_grad


@pytest.mark.parametrize('src', [2.5, np.array([1.0, 2.0, 3.0]), tl.tensor([1.0, 2.0, 3.0])])
def test_copy_broadcasts_numbers_arrays_and_tensors(src):
    x = tl.zeros(2, 3)
    with tl.no_grad():
        x.copy_(src)
    want = np.broadcast_to(src.numpy() if isinstance(src, tl.Tensor) else np.asarray(src), (2, 3))
    np.testing.assert_array_equal(x.numpy(), want.astype(np.float32))


def test_copy_into_a_saved_tensor_makes_backward_raise():
    w = tl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()                            # Mul saves w
    with tl.no_grad():
        w.copy_(np.array([5.0, 6.0]))
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_copy_of_a_leaf_that_requires_grad_is_refused_while_recording():
    w = tl.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(RuntimeError, match='no_grad'):
        w.copy_(np.ones(2))


# ---- increment_version ---------------------------------------------------------------------------

def test_increment_version_bumps_the_counter_and_the_saved_check_sees_it():
    w = tl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    version = w._version
    w.data[...] = 0.0                               # a write autograd cannot see ...
    tl.autograd.increment_version(w)                # ... until it is told
    assert w._version == version + 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_optimizer_step_bumps_the_version_through_increment_version():
    w = nn.Parameter(tl.tensor(np.ones(3, np.float32)))
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    version = w._version
    tl.optim.SGD([w], lr=0.1).step()
    assert w._version == version + 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


# ---- nn.init and load_state_dict --------------------------------------------------------------------

@pytest.mark.parametrize('init', [
    lambda t: nn.init.uniform_(t, -1, 1), lambda t: nn.init.normal_(t),
    lambda t: nn.init.constant_(t, 0.5), lambda t: nn.init.kaiming_uniform_(t),
    lambda t: nn.init.xavier_normal_(t), nn.init.zeros_, nn.init.ones_,
])
def test_init_writes_in_place_and_bumps_the_version(init):
    w = nn.Parameter(tl.tensor(np.full((4, 3), 7.0, np.float32)))
    loss = (w * w).sum()
    buf, version = w.data, w._version
    assert init(w) is w
    assert w.data is buf and w._version > version and w.requires_grad and w.is_leaf
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_init_values_are_the_generators():
    """_fill through copy_ writes exactly the values drawn (no other rounding)."""
    tl.manual_seed(3)
    w = nn.init.normal_(tl.zeros(5, 4, dtype=tl.float64), 0.0, 2.0)
    tl.manual_seed(3)
    want = tl.random.generator().normal(0.0, 2.0, (5, 4))
    np.testing.assert_array_equal(w.numpy(), want)


def test_load_state_dict_copies_into_the_same_arrays_and_bumps_versions():
    lin = nn.Linear(3, 2)
    loss = lin(tl.ones(1, 3)).sum()
    buffers = {k: v.data for k, v in lin.state_dict(keep_vars=True).items()}
    versions = {k: v._version for k, v in lin.state_dict(keep_vars=True).items()}
    state = {'weight': np.arange(6.0).reshape(2, 3), 'bias': tl.tensor(np.array([1.0, -1.0]))}
    lin.load_state_dict(state)
    for k, v in lin.state_dict(keep_vars=True).items():
        assert v.data is buffers[k] and v.dtype == tl.float32 and v._version == versions[k] + 1
    np.testing.assert_array_equal(lin.weight.numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(lin.bias.numpy(), np.array([1.0, -1.0], np.float32))
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()


def test_nothing_outside_autograd_writes_the_version_counter():
    """The issue's rule, on the source: only tensorlite/autograd touches `_vc`."""
    import pathlib
    root = pathlib.Path(tl.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob('*.py')
                 if '_vc' in p.read_text() and p.parent.name != 'autograd']
    assert not offenders


# ---- observe_forwards ------------------------------------------------------------------------------

def test_observe_forwards_sees_every_forward_with_its_arrays():
    seen = []
    x = tl.tensor(np.ones((2, 3)), requires_grad=True)
    with tl.profiler.observe_forwards(lambda fn, args, outs: seen.append((fn, args, outs))):
        y = F.relu(x @ tl.ones(3, 4, dtype=tl.float64))
    assert [fn.__name__ for fn, _, _ in seen] == ['MatMul', 'ReLU']
    fn, args, outs = seen[0]
    assert args[0] is x.data and isinstance(outs, tuple) and outs[0].shape == (2, 4)
    assert tl.profiler.forward_macs(fn, args, outs) == 2 * 4 * 3
    assert seen[1][2][0] is y.data
    n = len(seen)
    F.relu(x)                                       # after the block: nothing more
    assert len(seen) == n and tl._recorder.active is None


def test_observe_forwards_nests_inside_a_profile_which_goes_on_recording():
    names = []
    with tl.profiler.profile() as prof:
        with tl.profiler.observe_forwards(lambda fn, args, outs: names.append(fn.__name__)):
            with tl.profiler.observe_forwards(lambda fn, args, outs: names.append('inner')):
                y = F.gelu(tl.ones(4, requires_grad=True)).sum()
            y.backward()
    # the outer callback runs first (the inner observer calls through it), then the inner one;
    # backward's forwards (if any) reach the outer one only
    assert names[:4] == ['GELU', 'inner', 'Sum', 'inner'] and 'inner' not in names[4:]
    kinds = {(e.name, e.kind) for e in prof.events()}
    assert ('GELU', 'forward') in kinds and ('GELUBackward', 'backward') in kinds
    assert any(e.kind == 'kernel' for e in prof.events())
    with tl.profiler.observe_forwards(lambda *a: None):
        with pytest.raises(RuntimeError, match='observe_forwards'):
            tl.profiler.profile().__enter__()
    assert tl._recorder.active is None


def test_observe_forwards_ignores_other_threads():
    import threading
    seen = []
    with tl.profiler.observe_forwards(lambda fn, args, outs: seen.append(fn.__name__)):
        t = threading.Thread(target=lambda: F.relu(tl.ones(3)))
        t.start()
        t.join()
    assert seen == []


def test_forward_observers_list_is_gone():
    assert not hasattr(_function, 'forward_observers')

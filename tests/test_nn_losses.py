"""The loss modules (nn.CrossEntropyLoss, NLLLoss, MSELoss, L1Loss, BCEWithLogitsLoss) and
F.one_hot, as PyTorch's: arguments and defaults, values against NumPy references written here on
hypothesis-drawn shapes, float64 gradcheck and gradgradcheck through each module, weights as
buffers, repr, and the errors."""
import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn

from helpers import away_from, check_grads, leaf, shapes

REDUCTIONS = ('none', 'mean', 'sum')


def reduce_np(loss, reduction, denominator=None):
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    with np.errstate(invalid='ignore'):
        return np.float64(loss.sum() / (loss.size if denominator is None else denominator))


def assert_close(out, expected):
    expected = np.asarray(expected)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


# ---- NumPy references (nothing shared with tensorlite) -------------------------------------------

def np_log_softmax(a):
    m = a.max(axis=1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=1, keepdims=True))


def np_cross_entropy(a, target, weight, ignore_index, smoothing, reduction):
    """PyTorch's formula for class-index targets over dim 1 of (N, C, d...)."""
    C = a.shape[1]
    logp = np_log_softmax(a)
    w = np.ones(C) if weight is None else weight
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    w_target = w[safe] * valid
    picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    w_classes = w.reshape((1, C) + (1,) * (a.ndim - 2))
    loss = (1 - smoothing) * -w_target * picked + smoothing / C * -(logp * w_classes).sum(1) * valid
    return reduce_np(loss, reduction, w_target.sum())


def np_nll(a, target, weight, ignore_index, reduction):
    w = np.ones(a.shape[1]) if weight is None else weight
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    w_target = w[safe] * valid
    loss = -w_target * np.take_along_axis(a, safe[:, None], axis=1)[:, 0]
    return reduce_np(loss, reduction, w_target.sum())


def np_bce_with_logits(a, t, weight, pos_weight, reduction):
    sig = 1 / (1 + np.exp(-a))
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * t * np.log(sig) + (1 - t) * np.log(1 - sig))
    return reduce_np(loss if weight is None else loss * weight, reduction)


# ---- CrossEntropyLoss and NLLLoss ----------------------------------------------------------------

@st.composite
def class_problems(draw):
    """(input (N, C, d...), index target with some ignored, weight or None, ignore_index)."""
    n, c = draw(st.integers(1, 4), label='N'), draw(st.integers(1, 5), label='C')
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2), label='d...'))
    rng = np.random.default_rng(n * 100 + c * 10 + len(extra))
    a = 2 * rng.standard_normal((n, c) + extra)
    ignore_index = draw(st.sampled_from([-100, -1] + ([c - 1] if c > 1 else [])),
                        label='ignore_index')
    target = rng.integers(0, c, (n,) + extra)
    target[rng.random(target.shape) < 0.3] = ignore_index
    target.flat[0] = 0                                  # never all ignored (their mean is 0/0)
    weight = rng.random(c) + 0.5 if draw(st.booleans(), label='weight') else None
    return a, target, weight, ignore_index


@pytest.mark.parametrize('reduction', REDUCTIONS)
@given(problem=class_problems(), smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_loss(reduction, problem, smoothing):
    a, target, weight, ignore_index = problem
    criterion = nn.CrossEntropyLoss(weight=None if weight is None else tl.tensor(weight),
                                    ignore_index=ignore_index, reduction=reduction,
                                    label_smoothing=smoothing)
    fn = lambda x: criterion(x, tl.tensor(target))                    # noqa: E731
    x = leaf(a)
    assert_close(fn(x), np_cross_entropy(a, target, weight, ignore_index, smoothing, reduction))
    check_grads(fn, [x])


@pytest.mark.parametrize('reduction', REDUCTIONS)
@given(problem=class_problems())
def test_nll_loss_module(reduction, problem):
    a, target, weight, ignore_index = problem
    a = np_log_softmax(a)
    criterion = nn.NLLLoss(weight=None if weight is None else tl.tensor(weight),
                           ignore_index=ignore_index, reduction=reduction)
    fn = lambda x: criterion(x, tl.tensor(target))                    # noqa: E731
    x = leaf(a)
    assert_close(fn(x), np_nll(a, target, weight, ignore_index, reduction))
    check_grads(fn, [x])


def test_cross_entropy_loss_probability_target():
    rng = np.random.default_rng(1)
    a, p = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), 3)
    x = leaf(a)
    criterion = nn.CrossEntropyLoss()
    assert_close(criterion(x, tl.tensor(p)), np.float64(-(np_log_softmax(a) * p).sum(1).mean()))
    check_grads(lambda x: criterion(x, tl.tensor(p)), [x])


def test_class_weight_is_a_buffer():
    criterion = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    assert list(criterion.state_dict()) == ['weight']
    assert criterion.weight.dtype == tl.float32
    assert criterion.double().weight.dtype == tl.float64          # cast with the module
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=[2.0]).state_dict()) == ['pos_weight']
    assert list(nn.NLLLoss(weight=tl.ones(3)).state_dict()) == ['weight']


# ---- MSELoss, L1Loss -----------------------------------------------------------------------------

@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('module, ref', [(nn.MSELoss, lambda d: d * d), (nn.L1Loss, np.abs)],
                         ids=['MSELoss', 'L1Loss'])
@given(shape=shapes(min_dims=1, min_side=1))
def test_regression_loss_modules(module, ref, reduction, shape):
    rng = np.random.default_rng(sum(shape) + len(shape))
    a = rng.standard_normal(shape)
    b = a + away_from(rng.standard_normal(shape), [0.0])             # |d| has a kink at 0
    criterion = module(reduction=reduction)
    x, t = leaf(a), leaf(b)
    assert_close(criterion(x, t), reduce_np(ref(a - b), reduction))
    check_grads(lambda x, t: criterion(x, t), [x, t])


# ---- BCEWithLogitsLoss ---------------------------------------------------------------------------

@pytest.mark.parametrize('reduction', REDUCTIONS)
@given(shape=shapes(min_dims=1, min_side=1), use_weight=st.booleans(),
       use_pos_weight=st.booleans())
def test_bce_with_logits_loss(reduction, shape, use_weight, use_pos_weight):
    rng = np.random.default_rng(sum(shape) * 7 + len(shape))
    a, t = 2 * rng.standard_normal(shape), rng.random(shape)
    weight = rng.random(shape) + 0.5 if use_weight else None
    pos_weight = 3 * rng.random(shape[-1:]) if use_pos_weight else None
    as_tensor = lambda w: None if w is None else tl.tensor(w)          # noqa: E731
    criterion = nn.BCEWithLogitsLoss(weight=as_tensor(weight), reduction=reduction,
                                     pos_weight=as_tensor(pos_weight))
    x, target = leaf(a), leaf(t)
    assert_close(criterion(x, target), np_bce_with_logits(a, t, weight, pos_weight, reduction))
    check_grads(lambda x, target: criterion(x, target), [x, target])


# ---- PyTorch's arguments, defaults and repr ------------------------------------------------------

TORCH_SIGNATURES = {       # torch.nn's, without the deprecated size_average and reduce
    nn.CrossEntropyLoss: [('weight', None), ('ignore_index', -100), ('reduction', 'mean'),
                          ('label_smoothing', 0.0)],
    nn.NLLLoss: [('weight', None), ('ignore_index', -100), ('reduction', 'mean')],
    nn.MSELoss: [('reduction', 'mean')],
    nn.L1Loss: [('reduction', 'mean')],
    nn.BCEWithLogitsLoss: [('weight', None), ('reduction', 'mean'), ('pos_weight', None)],
}


@pytest.mark.parametrize('module', list(TORCH_SIGNATURES), ids=lambda m: m.__name__)
def test_arguments_and_defaults_are_pytorchs(module):
    params = list(inspect.signature(module).parameters.values())
    assert [(p.name, p.default) for p in params] == TORCH_SIGNATURES[module]
    assert repr(module()) == f"{module.__name__}()"                     # PyTorch's repr
    with pytest.raises(ValueError, match=rf"{module.__name__}: reduction must be one of .*'avg'"):
        module(reduction='avg')


def test_repr_names_what_differs_from_the_defaults():
    assert repr(nn.MSELoss(reduction='sum')) == "MSELoss(reduction='sum')"
    assert (repr(nn.CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1))
            == "CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1)")
    assert repr(nn.CrossEntropyLoss(weight=tl.ones(400))) == "CrossEntropyLoss(weight=<(400,)>)"
    assert repr(nn.BCEWithLogitsLoss(pos_weight=[3.0])) == "BCEWithLogitsLoss(pos_weight=[3.0])"


def test_loss_errors():
    with pytest.raises(ValueError, match=r'label_smoothing must be in \[0, 1\], got 1.5'):
        nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(IndexError, match='target value 7 is out of range for 3 classes'):
        nn.CrossEntropyLoss()(tl.zeros(2, 3), tl.tensor([0, 7]))
    with pytest.raises(ValueError, match=r'weight must have shape \(3,\), got \(2,\)'):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])(tl.zeros(2, 3), tl.tensor([0, 1]))


def test_a_training_step_with_a_loss_module():
    tl.manual_seed(0)
    net, criterion = nn.Linear(4, 3), nn.CrossEntropyLoss()
    x, y = tl.randn(8, 4), tl.tensor(np.arange(8) % 3)
    loss = criterion(net(x), y)
    loss.backward()
    np.testing.assert_allclose(loss.item(), F.cross_entropy(net(x), y).item())
    assert net.weight.grad is not None and net.weight.grad.shape == (3, 4)


# ---- F.one_hot -----------------------------------------------------------------------------------

@given(shape=shapes(max_dims=3), classes=st.integers(1, 6), infer=st.booleans())
def test_one_hot_against_numpy(shape, classes, infer):
    rng = np.random.default_rng(len(shape) * 10 + classes)
    idx = rng.integers(0, classes, shape)
    if infer and idx.size == 0:
        infer = False                                   # nothing to infer from (an error, below)
    num_classes = int(idx.max()) + 1 if infer else classes
    out = F.one_hot(tl.tensor(idx), -1 if infer else classes)
    expected = np.eye(num_classes, dtype=np.int64)[idx]
    assert out.dtype == tl.int64 and tuple(out.shape) == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    assert not out.requires_grad


def test_one_hot_defaults_and_inputs():
    assert list(inspect.signature(F.one_hot).parameters) == ['tensor', 'num_classes']
    assert inspect.signature(F.one_hot).parameters['num_classes'].default == -1
    np.testing.assert_array_equal(F.one_hot(tl.tensor([2, 0])).numpy(), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(F.one_hot(tl.tensor(1), 3).numpy(), [0, 1, 0])      # 0-d
    np.testing.assert_array_equal(F.one_hot(np.array([1], np.uint8), 2).numpy(), [[0, 1]])
    assert F.one_hot(tl.tensor(np.zeros((2, 0), np.int64)), 4).shape == (2, 0, 4)


@pytest.mark.parametrize('values, num_classes, error, message', [
    ([[0, 1], [-2, 1]], -1, ValueError, r'non-negative, got -2 at index \(1, 0\)'),
    ([0, 5, 2], 4, ValueError, r'smaller than num_classes=4, got 5 at index \(1,\)'),
    ([0, 3], 3, ValueError, r'smaller than num_classes=3, got 3'),
    ([0.0, 1.0], -1, TypeError, r'integer tensor, got dtype float32'),
    (np.zeros(0, np.int64), -1, ValueError, r'cannot infer num_classes from an empty tensor'),
    ([0, 1], -2, ValueError, r'num_classes must be -1 \(infer\) or a non-negative int, got -2'),
    ([0, 1], 2.5, ValueError, r'got 2.5'),
])
def test_one_hot_errors_name_the_values(values, num_classes, error, message):
    with pytest.raises(error, match=message):
        F.one_hot(tl.tensor(values), num_classes)

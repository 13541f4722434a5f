"""gradcheck must catch a backward wrong by a sign, by a factor of 2 and by a missing transpose, in
both modes, and say where; it must pass correct backwards and check second derivatives."""
import warnings

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.autograd import Function
from tensorlite.functional import matmul


class ExpWrongSign(Function):
    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, gy):
        (y,) = ctx.saved_tensors
        return -(gy * y)


class MulWrongFactor(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return gy * b, 2 * gy * a              # b's gradient is twice what it should be


class MatMulMissingTranspose(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        return matmul(gy, b), matmul(a.mT, gy)  # should be gy @ b^T


class CubeWrongSecondDerivative(Function):
    """Right first derivative 3x^2, but computed from a constant, so its own derivative is 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.copy())         # a copy: it comes back as a constant
        return x ** 3

    @staticmethod
    def backward(ctx, gy):
        (x_const,) = ctx.saved_tensors
        return gy * 3 * x_const ** 2


def _leaf(shape, seed):
    return tl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


WRONG = [
    ('sign', ExpWrongSign.apply, [(3, 2)], 0),
    ('factor', MulWrongFactor.apply, [(4,), (4,)], 1),
    ('transpose', MatMulMissingTranspose.apply, [(3, 3), (3, 3)], 0),
]


@pytest.mark.parametrize('fast_mode', [False, True], ids=['full', 'fast'])
@pytest.mark.parametrize('name,fn,shapes,bad_input', WRONG, ids=[w[0] for w in WRONG])
def test_wrong_backward_is_caught_and_located(name, fn, shapes, bad_input, fast_mode):
    inputs = [_leaf(s, k) for k, s in enumerate(shapes)]
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(fn, inputs, fast_mode=fast_mode)
    msg = str(info.value)
    assert f'input {bad_input}' in msg
    for word in ('element (', 'analytic', 'numeric', 'abs error', 'rel error'):
        assert word in msg, msg


@pytest.mark.parametrize('fast_mode', [False, True], ids=['full', 'fast'])
def test_wrong_sign_reports_the_numbers(fast_mode):
    x = tl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(ExpWrongSign.apply, (x,), fast_mode=fast_mode)
    msg = str(info.value)
    if not fast_mode:           # worst element: x = 1 with analytic -e and numeric e
        assert 'element (1,)' in msg and 'analytic -2.718281' in msg and 'numeric 2.718281' in msg


@pytest.mark.parametrize('fast_mode', [False, True], ids=['full', 'fast'])
def test_correct_backwards_pass(fast_mode):
    a, b = _leaf((3, 4), 0), _leaf((4, 2), 1)
    assert tl.gradcheck(lambda x, y: (x @ y).tanh() * 2, (a, b), fast_mode=fast_mode)


def test_raise_exception_false_returns_false():
    with pytest.warns(UserWarning):
        assert tl.gradcheck(ExpWrongSign.apply, (_leaf((2,), 0),), raise_exception=False) is False


def test_gradgradcheck_catches_a_wrong_second_derivative():
    x = _leaf((3,), 0)
    assert tl.gradcheck(CubeWrongSecondDerivative.apply, (x,))
    with pytest.raises(tl.GradcheckError):
        tl.gradgradcheck(CubeWrongSecondDerivative.apply, (x,))
    assert tl.gradgradcheck(lambda t: t ** 3, (x,))


def test_float32_input_warns():
    x = tl.tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match='float64'):
        tl.gradcheck(lambda t: t * 2, (x,), atol=1e-2, rtol=1e-2, eps=1e-3)


def test_gradcheck_leaves_inputs_unchanged_and_rng_untouched():
    x = _leaf((3, 3), 0)
    before = x.numpy().copy()
    tl.manual_seed(5)
    expected = tl.rand(2).numpy()
    tl.manual_seed(5)
    tl.gradcheck(lambda t: t.exp(), (x,), fast_mode=True)
    tl.gradcheck(lambda t: t.exp(), (x,))
    np.testing.assert_array_equal(x.numpy(), before)
    np.testing.assert_array_equal(tl.rand(2).numpy(), expected)


def test_no_input_requiring_grad_is_refused():
    with pytest.raises(ValueError, match='requires grad'):
        tl.gradcheck(lambda t: t * 2, (tl.ones(2, dtype=tl.float64),))


def test_non_tensor_inputs_pass_through():
    x = _leaf((2, 3), 0)
    assert tl.gradcheck(lambda t, d: t.sum(d), (x, 1))
    assert tl.gradgradcheck(lambda t, d: (t * t).sum(d), (x, 1))


def test_empty_input_passes():
    x = tl.tensor(np.zeros((0, 3)), requires_grad=True)
    assert tl.gradcheck(lambda t: t * 2, (x,))
    assert tl.gradcheck(lambda t: t * 2, (x,), fast_mode=True)


def test_warning_free_on_float64():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        tl.gradcheck(lambda t: t * 2, (_leaf((2,), 0),))

"""Math ops: elementwise arithmetic, matmul / einsum / linear, reductions.

Every differentiable op is checked on hypothesis shapes (broadcasting, size-1 and empty dims) three
ways: its forward against a NumPy reference written here, its backward by float64 gradcheck (full
Jacobian and fast mode) and its double backward by gradgradcheck.  Inputs stay away from kinks
(abs at 0, maximum ties, clamp bounds) and domain edges (log, sqrt, pow bases are positive).
"""
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F
import helpers
from helpers import away_from, broadcast_pair, leaf, randn, shapes

seeds = st.integers(0, 2**32 - 1)


def check_grads(fn, inputs):
    """helpers.check_grads; but gradcheck's fast mode cannot perturb a 0-d input (`orig + eps * u`
    is a NumPy scalar, which Tensor.data refuses), so there a 0-d input enters as (1,) and is
    reshaped back to () before `fn` sees it.  Slow mode and gradgradcheck see it as it is."""
    inputs = tuple(inputs)
    if all(t.ndim for t in inputs):
        return helpers.check_grads(fn, inputs)
    assert tl.gradcheck(fn, inputs)
    lifted = tuple(leaf(t.numpy().reshape(1)) if t.ndim == 0 else t for t in inputs)
    assert tl.gradcheck(lambda *ts: fn(*(u.reshape(()) if t.ndim == 0 else u
                                         for u, t in zip(ts, inputs))), lifted, fast_mode=True)
    assert tl.gradgradcheck(fn, inputs)


def _signed(rng, shape, low=0.5):
    """Values with |v| >= low and random signs (divisors, negative powers)."""
    return randn(rng, shape, low=low) * rng.choice([-1.0, 1.0], size=shape)


def _untied_pair(rng, sa, sb):
    """Two arrays whose broadcast elements differ by at least 0.3: a on the integers, b on the
    half-integers, each jittered by at most 0.1 (maximum/minimum have a kink at a == b)."""
    a = rng.integers(-3, 4, sa) + rng.uniform(-0.1, 0.1, sa)
    b = rng.integers(-3, 3, sb) + 0.5 + rng.uniform(-0.1, 0.1, sb)
    return a, b


def _assert_forward(y, expected):
    expected = np.asarray(expected)
    assert tuple(y.shape) == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


# ---- elementwise, two operands -------------------------------------------------------------------

def _plain(rng, sa, sb):
    return randn(rng, sa), randn(rng, sb)


def _nonzero_b(rng, sa, sb):
    return randn(rng, sa), _signed(rng, sb)


def _positive_base(rng, sa, sb):
    return randn(rng, sa, low=0.3), 0.7 * randn(rng, sb)


# name: (tensorlite op, NumPy reference, input maker)
BINARY = {
    'add': (F.add, np.add, _plain),
    'sub': (F.sub, np.subtract, _plain),
    'mul': (F.mul, np.multiply, _plain),
    'div': (F.div, np.divide, _nonzero_b),
    'pow': (F.pow, np.power, _positive_base),
    'maximum': (F.maximum, np.maximum, _untied_pair),
    'minimum': (F.minimum, np.minimum, _untied_pair),
}


@pytest.mark.parametrize('name', BINARY)
@given(pair=broadcast_pair(), seed=seeds)
@example(pair=((2, 0, 3), (3,)), seed=0)                 # empty, broadcast against a vector
@example(pair=((4, 1), (1, 3)), seed=1)                  # both sides broadcast
@example(pair=((), (2, 3)), seed=2)                      # 0-d against a matrix
def test_binary_op_forward_and_gradients(name, pair, seed):
    op, ref, make = BINARY[name]
    a, b = make(np.random.default_rng(seed), *pair)
    ta, tb = leaf(a), leaf(b)
    _assert_forward(op(ta, tb), ref(a, b))
    check_grads(op, (ta, tb))


def test_add_and_sub_alpha():
    a, b = leaf([1.0, 2.0]), leaf([[3.0], [4.0]])
    _assert_forward(F.add(a, b, alpha=2), np.array([1.0, 2.0]) + 2 * np.array([[3.0], [4.0]]))
    _assert_forward(F.sub(a, b, alpha=2), np.array([1.0, 2.0]) - 2 * np.array([[3.0], [4.0]]))
    check_grads(lambda x, y: F.sub(x, y, alpha=-1.5), (a, b))


@given(shapes3=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4), seed=seeds)
def test_where_forward_and_gradients(shapes3, seed):
    sc, sa, sb = shapes3.input_shapes
    rng = np.random.default_rng(seed)
    cond = rng.random(sc) < 0.5
    a, b = randn(rng, sa), randn(rng, sb)
    ta, tb = leaf(a), leaf(b)
    _assert_forward(tl.where(tl.tensor(cond), ta, tb), np.where(cond, a, b))
    check_grads(lambda x, y: tl.where(tl.tensor(cond), x, y), (ta, tb))


def test_where_with_a_number_branch_and_an_array_condition():
    x = leaf([[1.0, -2.0, 3.0]])
    cond = np.array([True, False, True])
    y = tl.where(cond, x, 0.5)
    _assert_forward(y, [[1.0, 0.5, 3.0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 0.0, 1.0]])
    with pytest.raises(TypeError, match='where: condition must be a bool'):
        tl.where(np.array([1, 0, 1]), x, 0.5)


# ---- elementwise, one operand --------------------------------------------------------------------

CLAMP_LO, CLAMP_HI = -0.4, 0.7

# name: (tensorlite op, NumPy reference, input maker from (rng, shape))
UNARY = {
    'neg': (F.neg, np.negative, lambda rng, s: randn(rng, s)),
    'reciprocal': (F.reciprocal, np.reciprocal, _signed),
    'abs': (F.abs, np.abs, lambda rng, s: away_from(randn(rng, s), [0.0])),
    'sqrt': (F.sqrt, np.sqrt, lambda rng, s: randn(rng, s, low=0.2)),
    'exp': (F.exp, np.exp, lambda rng, s: randn(rng, s)),
    'log': (F.log, np.log, lambda rng, s: randn(rng, s, low=0.2)),
    'clamp_min': (lambda x: F.clamp(x, min=CLAMP_LO), lambda x: np.where(x < CLAMP_LO, CLAMP_LO, x),
                  lambda rng, s: away_from(randn(rng, s), [CLAMP_LO])),
    'clamp_max': (lambda x: F.clamp(x, max=CLAMP_HI), lambda x: np.where(x > CLAMP_HI, CLAMP_HI, x),
                  lambda rng, s: away_from(randn(rng, s), [CLAMP_HI])),
    'clamp_both': (lambda x: F.clamp(x, CLAMP_LO, CLAMP_HI),
                   lambda x: np.where(x < CLAMP_LO, CLAMP_LO, np.where(x > CLAMP_HI, CLAMP_HI, x)),
                   lambda rng, s: away_from(randn(rng, s), [CLAMP_LO, CLAMP_HI])),
}


@pytest.mark.parametrize('name', UNARY)
@given(shape=shapes(), seed=seeds)
@example(shape=(), seed=0)
@example(shape=(3, 0), seed=0)
def test_unary_op_forward_and_gradients(name, shape, seed):
    op, ref, make = UNARY[name]
    x = make(np.random.default_rng(seed), shape)
    tx = leaf(x)
    _assert_forward(op(tx), ref(x))
    check_grads(op, (tx,))


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match='clamp'):
        F.clamp(leaf([1.0]))


# exponent: signed base allowed (integer exponents) or base kept positive
POW_EXPONENTS = [(2, True), (3, True), (-1, True), (-2, True), (0, True), (1, True), (0.5, False),
                 (-1.5, False), (2.7, False)]


@pytest.mark.parametrize('p, signed', POW_EXPONENTS)
@given(shape=shapes(), seed=seeds)
def test_pow_with_a_number_exponent(p, signed, shape, seed):
    rng = np.random.default_rng(seed)
    x = _signed(rng, shape) if signed else randn(rng, shape, low=0.3)
    tx = leaf(x)
    _assert_forward(tx ** p, np.power(x, float(p)))
    check_grads(lambda t: F.pow(t, p), (tx,))


@pytest.mark.parametrize('base', [2.0, 0.5, 3])
@given(shape=shapes(), seed=seeds)
def test_number_to_the_power_of_a_tensor(base, shape, seed):
    x = randn(np.random.default_rng(seed), shape)
    tx = leaf(x)
    _assert_forward(base ** tx, np.power(float(base), x))
    check_grads(lambda t: base ** t, (tx,))


# ---- operator and method forms -------------------------------------------------------------------
# The same ops through Tensor operators and methods: (tensorlite form, NumPy reference) on
# a (2, 3) and b (3,), both positive and untied.

FORMS = {
    'a + b': (lambda a, b: a + b, lambda a, b: a + b),
    '1.5 + a': (lambda a, b: 1.5 + a, lambda a, b: 1.5 + a),
    'a - b': (lambda a, b: a - b, lambda a, b: a - b),
    '2 - b': (lambda a, b: 2 - b, lambda a, b: 2 - b),
    'a * b': (lambda a, b: a * b, lambda a, b: a * b),
    '3 * a': (lambda a, b: 3 * a, lambda a, b: 3 * a),
    'a / b': (lambda a, b: a / b, lambda a, b: a / b),
    '1 / b': (lambda a, b: 1 / b, lambda a, b: 1 / b),
    'a ** b': (lambda a, b: a ** b, lambda a, b: a ** b),
    'a ** 2': (lambda a, b: a ** 2, lambda a, b: a ** 2),
    '2 ** a': (lambda a, b: 2 ** a, lambda a, b: 2.0 ** a),
    '-a': (lambda a, b: -a, lambda a, b: -a),
    'abs(a - b)': (lambda a, b: abs(a - b), lambda a, b: np.abs(a - b)),
    'a @ b': (lambda a, b: a @ b, lambda a, b: a @ b),
    'a.add(b)': (lambda a, b: a.add(b), np.add),
    'a.sub(b)': (lambda a, b: a.sub(b), np.subtract),
    'a.mul(b)': (lambda a, b: a.mul(b), np.multiply),
    'a.div(b)': (lambda a, b: a.div(b), np.divide),
    'a.pow(b)': (lambda a, b: a.pow(b), np.power),
    'a.pow(0.5)': (lambda a, b: a.pow(0.5), lambda a, b: a ** 0.5),
    'a.neg()': (lambda a, b: a.neg(), lambda a, b: -a),
    'a.reciprocal()': (lambda a, b: a.reciprocal(), lambda a, b: 1 / a),
    'a.abs()': (lambda a, b: a.abs(), lambda a, b: np.abs(a)),
    'a.sqrt()': (lambda a, b: a.sqrt(), lambda a, b: np.sqrt(a)),
    'a.exp()': (lambda a, b: a.exp(), lambda a, b: np.exp(a)),
    'a.log()': (lambda a, b: a.log(), lambda a, b: np.log(a)),
    'a.maximum(b)': (lambda a, b: a.maximum(b), np.maximum),
    'a.minimum(b)': (lambda a, b: a.minimum(b), np.minimum),
    'a.clamp(1.4, 2.6)': (lambda a, b: a.clamp(1.4, 2.6), lambda a, b: np.clip(a, 1.4, 2.6)),
    'a.clip(max=2.6)': (lambda a, b: a.clip(max=2.6), lambda a, b: np.minimum(a, 2.6)),
    'a.matmul(b)': (lambda a, b: a.matmul(b), np.matmul),
    'a.sum(1)': (lambda a, b: a.sum(1), lambda a, b: a.sum(1)),
    'a.sum()': (lambda a, b: a.sum(), lambda a, b: a.sum()),
    'a.mean(-1, keepdim=True)': (lambda a, b: a.mean(-1, keepdim=True),
                                 lambda a, b: a.mean(-1, keepdims=True)),
    'a.var(0)': (lambda a, b: a.var(0), lambda a, b: a.var(0, ddof=1)),
    'a.std(unbiased=False)': (lambda a, b: a.std(unbiased=False), lambda a, b: a.std()),
    'a.max()': (lambda a, b: a.max(), lambda a, b: a.max()),
    'a.min(1).values': (lambda a, b: a.min(1).values, lambda a, b: a.min(1)),
    'a.logsumexp(1)': (lambda a, b: a.logsumexp(1), lambda a, b: np.log(np.exp(a).sum(1))),
}


@pytest.mark.parametrize('form', FORMS)
def test_operator_and_method_forms(form):
    tl_form, ref = FORMS[form]
    a = np.array([[1.1, 2.3, 1.7], [2.9, 1.2, 2.2]])
    b = np.array([1.9, 1.6, 2.5])
    ta, tb = leaf(a), leaf(b)
    _assert_forward(tl_form(ta, tb), ref(a, b))
    check_grads(tl_form, (ta, tb))              # an operand a form ignores gets a zero gradient


# ---- matmul --------------------------------------------------------------------------------------

MATMUL_KINDS = ['1d@1d', '1d@2d', '2d@1d', '2d@2d', 'batched', 'batched@1d', '1d@batched']


@st.composite
def matmul_shapes(draw, kind):
    n, k, m = (draw(st.integers(0, 3)) for _ in range(3))
    ba, bb = draw(broadcast_pair(min_dims=1, max_dims=2, max_side=3)) if 'batched' in kind \
        else ((), ())
    left, right = kind.split('@') if '@' in kind else (kind, kind)
    sa = (k,) if left == '1d' else tuple(ba) + (n, k)
    sb = (k,) if right == '1d' else tuple(bb) + (k, m)
    return sa, sb


def _matmul_reference(a, b):
    """Products written as sums over the shared index, with NumPy's 1-D promotion."""
    a2 = a[None, :] if a.ndim == 1 else a                       # (..., n, k)
    b2 = b[:, None] if b.ndim == 1 else b                       # (..., k, m)
    y = (a2[..., :, :, None] * b2[..., None, :, :]).sum(axis=-2)  # (..., n, m)
    if a.ndim == 1:
        y = y[..., 0, :]
    if b.ndim == 1:
        y = y[..., 0]
    return y


@pytest.mark.parametrize('kind', MATMUL_KINDS)
@given(data=st.data(), seed=seeds)
def test_matmul_forward_and_gradients(kind, data, seed):
    sa, sb = data.draw(matmul_shapes(kind))
    rng = np.random.default_rng(seed)
    a, b = randn(rng, sa), randn(rng, sb)
    ta, tb = leaf(a), leaf(b)
    _assert_forward(F.matmul(ta, tb), _matmul_reference(a, b))
    _assert_forward(ta @ tb, np.matmul(a, b))
    check_grads(F.matmul, (ta, tb))


# ---- einsum --------------------------------------------------------------------------------------

# equation: independent NumPy reference (no np.einsum)
EINSUM = {
    'ij,jk->ik': lambda a, b: a @ b,
    'bij,bjk->bik': lambda a, b: a @ b,
    'ij,jk': lambda a, b: a @ b,                                       # implicit output
    'ik,jk->ij': lambda a, b: a @ b.T,
    '...ij,...jk->...ik': np.matmul,                                   # ellipsis broadcasts
    '...ij,...jk': np.matmul,
    'ii->i': np.diagonal,
    'ii': np.trace,
    'ij->': np.sum,
    'i,j->ij': np.outer,
    'ij,k->ik': lambda a, b: a.sum(1)[:, None] * b[None, :],           # j summed inside a only
    'ij,jk,kl->il': lambda a, b, c: a @ b @ c,
    'i,ij,j->': lambda a, m, b: a @ m @ b,
}


@st.composite
def einsum_shapes(draw, equation):
    """Operand shapes for `equation`: a size in 0..3 per letter, broadcastable batch shapes for
    '...'."""
    subs = equation.split('->')[0].split(',')
    letters = sorted(set(''.join(subs)) - {'.'})
    size = dict(zip(letters, draw(st.lists(st.integers(0, 3), min_size=len(letters),
                                           max_size=len(letters)))))
    batch = iter(draw(broadcast_pair(max_dims=2, max_side=3)) if '...' in equation else ())
    out = []
    for s in subs:
        lead = tuple(next(batch)) if '...' in s else ()
        out.append(lead + tuple(size[c] for c in s.replace('...', '')))
    return out


@pytest.mark.parametrize('equation', EINSUM)
@given(data=st.data(), seed=seeds)
def test_einsum_forward_and_gradients(equation, data, seed):
    operand_shapes = data.draw(einsum_shapes(equation))
    rng = np.random.default_rng(seed)
    arrays = [randn(rng, s) for s in operand_shapes]
    tensors = [leaf(a) for a in arrays]
    _assert_forward(tl.einsum(equation, *tensors), EINSUM[equation](*arrays))
    check_grads(lambda *ts: tl.einsum(equation, *ts), tensors)


def test_einsum_accepts_spaces_and_a_list_of_operands():
    a, b = leaf(np.arange(6.0).reshape(2, 3)), leaf(np.ones((3, 2)))
    _assert_forward(tl.einsum('ij, jk -> ik', [a, b]),
                    np.arange(6.0).reshape(2, 3) @ np.ones((3, 2)))


# ---- linear --------------------------------------------------------------------------------------

@pytest.mark.parametrize('bias', [True, False], ids=['bias', 'no_bias'])
@pytest.mark.parametrize('in_ndim', [1, 2, 3])
@given(batch=shapes(min_dims=2, max_dims=2, max_side=3), features=shapes(2, 2, max_side=3),
       seed=seeds)
@example(batch=(2, 3), features=(0, 2), seed=0)          # no input features
@example(batch=(2, 3), features=(3, 0), seed=0)          # no output features
def test_linear_forward_and_gradients(in_ndim, bias, batch, features, seed):
    n_in, n_out = features
    rng = np.random.default_rng(seed)
    x = randn(rng, tuple(batch[:in_ndim - 1]) + (n_in,))
    w, b = randn(rng, (n_out, n_in)), randn(rng, (n_out,))
    tensors = [leaf(x), leaf(w)] + ([leaf(b)] if bias else [])
    expected = (x[..., None, :] * w).sum(-1) + (b if bias else 0)   # (..., out)
    _assert_forward(F.linear(*tensors), expected)
    check_grads(F.linear, tensors)


def test_a_stack_times_a_matrix_is_one_product_and_keeps_strided_inputs():
    """matmul and linear run a (..., n, k) stack against a (k, m) matrix as one GEMM over every
    row; a permuted (non-contiguous) stack, as the temporal tokens of divided attention are,
    gives what NumPy gives, with gradients."""
    rng = np.random.default_rng(3)
    a = randn(rng, (2, 5, 3, 4)).transpose(0, 2, 1, 3)        # (2, 3, 5, 4), strided
    w, b = randn(rng, (6, 4)), randn(rng, (6,))
    x = leaf(a)
    _assert_forward(F.linear(x, leaf(w), leaf(b)), a @ w.T + b)
    _assert_forward(tl.matmul(x, leaf(w.T.copy())), a @ w.T)
    check_grads(lambda t, u: F.linear(t.permute(0, 2, 1, 3), u), [leaf(a.transpose(0, 2, 1, 3)),
                                                                     leaf(w)])
    empty = leaf(np.zeros((0, 3, 4)))
    assert tuple(F.linear(empty, leaf(w)).shape) == (0, 3, 6)


# ---- reductions ----------------------------------------------------------------------------------

@st.composite
def reduce_args(draw, allow_none=True):
    """(shape, dim, keepdim): dim None, an int or a tuple of distinct dims, negative ones
    included."""
    shape = draw(shapes())
    n = max(len(shape), 1)                      # a 0-d tensor takes dim 0 or -1, as in PyTorch
    one = st.integers(-n, n - 1)
    several = st.lists(one, min_size=1, max_size=n, unique_by=lambda d: d % n).map(tuple)
    dim = draw(st.one_of(st.none(), one, several) if allow_none else st.one_of(one, several))
    return shape, dim, draw(st.booleans())


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, tuple) else (dim,)
    return tuple(sorted(d % ndim for d in dims)) if ndim else ()


def _count(shape, axes):
    return int(np.prod([shape[d] for d in axes]))


def _var_reference(x, axes, keepdim, ddof):
    n = _count(x.shape, axes)
    centred = x - x.sum(axis=axes, keepdims=True) / n
    return (centred ** 2).sum(axis=axes, keepdims=keepdim) / max(n - ddof, 0)    # N <= ddof: NaN


# name: (op(x, dim, keepdim), reference(x, axes, keepdim), fewest reduced elements for a gradient)
REDUCTIONS = {
    'sum': (lambda x, d, k: F.sum(x, d, k), lambda x, a, k: x.sum(axis=a, keepdims=k), 0),
    'mean': (lambda x, d, k: F.mean(x, d, k),
             lambda x, a, k: x.sum(axis=a, keepdims=k) / _count(x.shape, a), 0),
    'var_unbiased': (lambda x, d, k: F.var(x, d, True, k),
                     lambda x, a, k: _var_reference(x, a, k, 1), 2),
    'var_biased': (lambda x, d, k: F.var(x, d, False, k),
                   lambda x, a, k: _var_reference(x, a, k, 0), 1),
    'std_unbiased': (lambda x, d, k: F.std(x, d, True, k),
                     lambda x, a, k: np.sqrt(_var_reference(x, a, k, 1)), 2),
    'std_biased': (lambda x, d, k: F.std(x, d, False, k),
                   lambda x, a, k: np.sqrt(_var_reference(x, a, k, 0)), 2),
}


@pytest.mark.parametrize('name', REDUCTIONS)
@given(args=reduce_args(), seed=seeds)
@example(args=((2, 3, 4), None, False), seed=0)
@example(args=((2, 3, 4), 1, True), seed=0)
@example(args=((2, 3, 4), -1, False), seed=0)
@example(args=((2, 3, 4), (0, -1), True), seed=0)
@example(args=((4, 1, 3), (-2, 0), False), seed=0)       # a size-1 dim among the reduced ones
@example(args=((3, 0, 2), (1,), False), seed=0)          # an empty reduced dim
@example(args=((3, 0, 2), 2, True), seed=0)              # an empty kept dim
@example(args=((), -1, True), seed=0)
def test_reduction_forward_and_gradients(name, args, seed):
    shape, dim, keepdim = args
    op, ref, fewest = REDUCTIONS[name]
    x = randn(np.random.default_rng(seed), shape)
    tx = leaf(x)
    axes = _axes(dim, len(shape))
    with np.errstate(divide='ignore', invalid='ignore'):      # empty means and N - ddof <= 0: NaN
        expected = ref(x, axes, keepdim)
    _assert_forward(op(tx, dim, keepdim), expected)
    # var/std need N > ddof (and std N >= 2: std = 0 has no derivative); an empty x has no gradient
    if x.size == 0 or _count(shape, axes) >= fewest:
        check_grads(lambda t: op(t, dim, keepdim), (tx,))


@given(args=reduce_args(allow_none=False), seed=seeds)
@example(args=((2, 3, 4), (0, -1), True), seed=0)
@example(args=((0, 3), 0, False), seed=0)                # the log of an empty sum: -inf
@example(args=((), 0, False), seed=0)
def test_logsumexp_forward_and_gradients(args, seed):
    shape, dim, keepdim = args
    x = randn(np.random.default_rng(seed), shape)
    tx = leaf(x)
    with np.errstate(divide='ignore'):                        # the log of an empty sum is -inf
        expected = np.log(np.exp(x).sum(axis=_axes(dim, len(shape)), keepdims=keepdim))
    _assert_forward(F.logsumexp(tx, dim, keepdim), expected)
    _assert_forward(tx.logsumexp(dim, keepdim=keepdim), expected)
    check_grads(lambda t: F.logsumexp(t, dim, keepdim), (tx,))


def test_logsumexp_is_stable_for_large_and_minus_infinite_inputs():
    x = leaf([[1000.0, 1000.0], [-np.inf, 0.0], [-np.inf, -np.inf]])
    y = F.logsumexp(x, 1)
    _assert_forward(y, [1000.0 + np.log(2.0), 0.0, -np.inf])
    with np.errstate(invalid='ignore'):
        y.sum().backward()          # the all -inf row's gradient is -inf - -inf: NaN, as in PyTorch
    np.testing.assert_allclose(x.grad.numpy()[:2], [[0.5, 0.5], [0.0, 1.0]])


@st.composite
def extremum_args(draw):
    """(shape, dim, keepdim) with the reduced dim non-empty (other dims may be empty)."""
    shape = list(draw(shapes(min_dims=0)))
    n = max(len(shape), 1)
    dim = draw(st.integers(-n, n - 1))
    if shape:
        shape[dim] = max(shape[dim], 1)
    return tuple(shape), dim, draw(st.booleans())


@pytest.mark.parametrize('name', ['max', 'min'])
@given(args=extremum_args(), seed=seeds)
@example(args=((3, 4), -1, False), seed=0)
@example(args=((2, 1, 3), 1, True), seed=0)
@example(args=((2, 0), 0, True), seed=0)                 # a non-empty dim of an empty tensor
@example(args=((), 0, False), seed=0)
def test_max_min_along_a_dim_give_values_and_indices(name, args, seed):
    shape, dim, keepdim = args
    x = randn(np.random.default_rng(seed), shape)        # continuous values: no ties
    tx = leaf(x)
    values, indices = getattr(F, name)(tx, dim, keepdim)
    axis = dim % x.ndim if x.ndim else None
    expected_idx = getattr(np, 'arg' + name)(x, axis=axis, keepdims=keepdim and x.ndim > 0)
    _assert_forward(values, getattr(np, name)(x, axis=axis, keepdims=keepdim and x.ndim > 0))
    assert indices.dtype == np.int64 and not indices.requires_grad
    np.testing.assert_array_equal(indices.numpy(), expected_idx)
    method = getattr(tx, name)(dim, keepdim=keepdim)
    np.testing.assert_array_equal(method.values.numpy(), values.numpy())
    check_grads(lambda t: getattr(F, name)(t, dim, keepdim).values, (tx,))


@pytest.mark.parametrize('name', ['max', 'min'])
@given(shape=shapes(min_side=1), seed=seeds)
def test_full_max_min(name, shape, seed):
    x = randn(np.random.default_rng(seed), shape)
    tx = leaf(x)
    _assert_forward(getattr(tx, name)(), getattr(np, name)(x))
    _assert_forward(getattr(tl, name)(tx), getattr(np, name)(x))
    check_grads(lambda t: getattr(t, name)(), (tx,))


TIES = np.array([[1.0, 3.0, 3.0], [-2.0, 0.5, -2.0]])


@pytest.mark.parametrize('name, dim, expected', [
    ('max', 1, [[0, 1, 0], [0, 1, 0]]),
    ('min', 1, [[1, 0, 0], [1, 0, 0]]),
    ('max', 0, [[1, 1, 1], [0, 0, 0]]),
    ('max', None, [[0, 0.5, 0.5], [0, 0, 0]]),      # full reduction: split between ties
    ('min', None, [[0, 0, 0], [0.5, 0, 0.5]]),
])
def test_max_min_gradient_on_ties_as_pytorch(name, dim, expected):
    """Along a dim the first tied element gets it all; over everything it is split evenly."""
    x = leaf(TIES)
    y = getattr(x, name)() if dim is None else getattr(x, name)(dim).values
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), expected)


@pytest.mark.parametrize('name', ['argmax', 'argmin'])
@given(args=extremum_args(), seed=seeds)
@example(args=((3,), 0, False), seed=0)
@example(args=((2, 3, 4), -2, True), seed=0)
@example(args=((2, 0), 0, False), seed=0)
@example(args=((), -1, True), seed=0)
def test_argmax_argmin(name, args, seed):
    shape, dim, keepdim = args
    x = randn(np.random.default_rng(seed), shape)
    tx = leaf(x)
    ref = getattr(np, name)
    if x.size:
        whole = getattr(tx, name)()
        assert whole.dtype == np.int64 and not whole.requires_grad
        np.testing.assert_array_equal(whole.numpy(), ref(x))
    along = getattr(F, name)(tx, dim, keepdim)
    assert along.dtype == np.int64 and not along.requires_grad
    expected = ref(x, axis=dim % x.ndim, keepdims=keepdim) if x.ndim else 0
    np.testing.assert_array_equal(along.numpy(), expected)


@pytest.mark.parametrize('reduce', [lambda x: x.argmax(), lambda x: x.argmin(0), lambda x: x.max(),
                                    lambda x: x.min(0)],
                         ids=['argmax', 'argmin(0)', 'max', 'min(0)'])
def test_argmax_and_max_over_nothing_are_refused(reduce):
    with pytest.raises(ValueError, match=r'(max|min).*\(0, 3\)'):
        reduce(leaf(np.zeros((0, 3))))


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize('op, name', [
    (F.add, 'add'), (F.sub, 'sub'), (F.mul, 'mul'), (F.div, 'div'), (F.pow, 'pow'),
    (F.maximum, 'maximum'), (F.minimum, 'minimum'),
    (lambda a, b: a + b, 'add'), (lambda a, b: a * b, 'mul'), (lambda a, b: a ** b, 'pow'),
    (lambda a, b: tl.where(tl.tensor(np.ones((2, 3), bool)), a, b), 'where'),
])
def test_incompatible_shapes_name_the_op_and_both_shapes(op, name):
    a, b = leaf(np.ones((2, 3))), leaf(np.ones(4))
    with pytest.raises(ValueError, match=rf'{name}.*\(2, 3\).*\(4,\)'):
        op(a, b)


@pytest.mark.parametrize('sa, sb', [((2, 3), (4, 5)), ((3,), (4,)), ((3,), (2, 4)), ((2, 3), (2,)),
                                    ((2, 2, 3), (3, 3, 4))])
def test_matmul_mismatch_names_the_op_and_both_shapes(sa, sb):
    a, b = leaf(np.ones(sa)), leaf(np.ones(sb))
    pattern = rf'matmul.*{tuple(sa)}.*{tuple(sb)}'.replace('(', r'\(').replace(')', r'\)')
    with pytest.raises(ValueError, match=pattern):
        a @ b


def test_matmul_refuses_0d_operands():
    with pytest.raises(ValueError, match='matmul'):
        F.matmul(leaf(2.0), leaf(np.ones(3)))


@pytest.mark.parametrize('equation, shapes_, message', [
    ('ij,jk->ik', [(2, 3), (4, 5)], "subscript 'j' has size 3"),
    ('ij,jk->ik', [(2, 3)], 'has 2 operands, 1 were given'),
    ('ijk->i', [(2, 3)], "do not fit operand of shape"),
    ('i1->i', [(2, 3)], 'not letters'),
])
def test_einsum_bad_input(equation, shapes_, message):
    with pytest.raises(ValueError, match=message):
        tl.einsum(equation, *[leaf(np.ones(s)) for s in shapes_])


@pytest.mark.parametrize('sx, sw, sb', [((2, 3), (4, 5), None), ((2, 3), (4, 3), (5,)),
                                        ((3,), (3,), None)])
def test_linear_mismatch_names_the_shapes(sx, sw, sb):
    args = [leaf(np.ones(sx)), leaf(np.ones(sw))] + ([leaf(np.ones(sb))] if sb else [])
    with pytest.raises(ValueError, match='linear'):
        F.linear(*args)


@pytest.mark.parametrize('op', [F.sum, F.mean, F.var, F.std, F.logsumexp, F.max, F.argmax])
def test_reduction_dim_out_of_range(op):
    with pytest.raises(IndexError, match=rf'{op.__name__}: dim 2'):
        op(leaf(np.ones((2, 3))), 2)


# ---- mixed dtypes --------------------------------------------------------------------------------

@pytest.mark.parametrize('op', [F.add, F.mul, F.div, F.pow, F.maximum, F.matmul,
                                lambda a, b: tl.where(np.array([True, False, True]), a, b)],
                         ids=['add', 'mul', 'div', 'pow', 'maximum', 'matmul', 'where'])
def test_float32_with_float64_gives_float64_and_each_gradient_its_input_dtype(op):
    a32 = np.array([[1.5, 2.0, 0.7], [0.9, 1.2, 2.2]], np.float32)
    a, b = tl.tensor(a32, requires_grad=True), leaf([1.3, 0.6, 1.9])
    y = op(a, b)
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    a64, b64 = leaf(a32), leaf(b.numpy())                # the same values, all in float64
    op(a64, b64).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), a64.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), b64.grad.numpy(), rtol=1e-12)


# ---- against PyTorch -----------------------------------------------------------------------------

def _compare_with_torch(torch, tl_fn, torch_fn, arrays, rng):
    """Forward and gradients (for one random upstream gradient) of tensorlite and PyTorch agree."""
    ours = [leaf(a) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = tl_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    y.backward(tl.tensor(g))
    yt.backward(torch.tensor(g))
    for t, tt in zip(ours, theirs):
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.optional
@pytest.mark.parametrize('sa, sb', [((2, 1, 3, 4), (5, 4, 2)), ((4,), (3, 4, 2)), ((2, 3, 4), (4,)),
                                    ((1, 3, 4), (2, 1, 4, 5)), ((4,), (4,))])
def test_matmul_matches_torch(sa, sb, rng):
    torch = pytest.importorskip('torch')
    _compare_with_torch(torch, F.matmul, torch.matmul, [rng.standard_normal(sa),
                                                        rng.standard_normal(sb)], rng)


@pytest.mark.optional
@pytest.mark.parametrize('equation, shapes_', [
    ('...ij,...jk->...ik', [(2, 1, 3, 4), (5, 4, 2)]),
    ('bij,bjk->bik', [(2, 3, 4), (2, 4, 5)]),
    ('ii->i', [(3, 3)]),
    ('ii', [(3, 3)]),
    ('ij,k->ik', [(2, 3), (4,)]),
    ('ij,jk,kl->il', [(2, 3), (3, 4), (4, 2)]),
    ('bhqd,bhkd->bhqk', [(2, 3, 4, 5), (2, 3, 6, 5)]),
])
def test_einsum_matches_torch(equation, shapes_, rng):
    torch = pytest.importorskip('torch')
    _compare_with_torch(torch, lambda *ts: tl.einsum(equation, *ts),
                        lambda *ts: torch.einsum(equation, *ts),
                        [rng.standard_normal(s) for s in shapes_], rng)


@pytest.mark.optional
@pytest.mark.parametrize('name', ['var', 'std'])
@pytest.mark.parametrize('unbiased', [True, False])
@pytest.mark.parametrize('dim, keepdim', [(None, False), (1, False), (-1, True), ((0, 2), False),
                                          ((-3, 1), True)])
def test_var_std_match_torch(name, unbiased, dim, keepdim, rng):
    torch = pytest.importorskip('torch')
    correction = int(unbiased)
    _compare_with_torch(torch, lambda t: getattr(F, name)(t, dim, unbiased, keepdim),
                        lambda t: getattr(torch, name)(t, dim=dim, correction=correction,
                                                       keepdim=keepdim),
                        [rng.standard_normal((3, 4, 5))], rng)

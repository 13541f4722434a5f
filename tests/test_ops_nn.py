"""Shape ops, indexing, activations, losses and dropout.

Every differentiable op is checked the same way: shapes from hypothesis (size-1 and empty dims
included), the forward against a NumPy reference written here, and float64 gradcheck in both modes
plus gradgradcheck (`helpers.check_grads`).  Bad input must raise an error that names what was
expected and what came.  The `optional` tests compare with PyTorch when it is installed.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.functional as F

from helpers import away_from, broadcast_pair, check_grads, leaf, randn, shapes

REDUCTIONS = ('none', 'mean', 'sum')


def assert_close(out, expected, rtol=1e-10, atol=1e-12):
    """A Tensor equal, shape and values, to a NumPy reference."""
    expected = np.asarray(expected)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol)


def assert_all_close(outs, expected):
    outs = list(outs)
    assert len(outs) == len(expected)
    for o, e in zip(outs, expected):
        assert_close(o, e)


def rng_for(shape):
    return np.random.default_rng(len(shape) * 31 + int(np.prod(shape)))


def maybe_negative(data, d, ndim, label):
    """dim `d` written as given or counted from the end (PyTorch accepts both)."""
    return d - ndim if data.draw(st.booleans(), label=label) else d


# ==================================================================================================
# shape ops: each case draws a shape and arguments and returns (arrays, tensorlite fn, NumPy ref)
# ==================================================================================================

SHAPE_CASES = {}


def shape_case(fn):
    SHAPE_CASES[fn.__name__] = fn
    return fn


@shape_case
def reshape(data):
    shape = data.draw(shapes(), label='shape')
    n = math.prod(shape)
    targets = [(-1,), shape[::-1], (1,) + shape + (1,)]
    targets += [(d, -1) for d in range(1, n + 1) if n % d == 0]
    target = data.draw(st.sampled_from(targets), label='target')
    how = data.draw(st.sampled_from(['method', 'view', 'function']), label='how')
    fns = {'method': lambda x: x.reshape(*target), 'view': lambda x: x.view(target),
           'function': lambda x: tl.reshape(x, target)}
    return [randn(rng_for(shape), shape)], fns[how], lambda a: a.reshape(target)


@shape_case
def transpose(data):
    shape = data.draw(shapes(min_dims=1), label='shape')
    d0, d1 = (data.draw(st.integers(-len(shape), len(shape) - 1), label='dim') for _ in range(2))
    return ([randn(rng_for(shape), shape)], lambda x: x.transpose(d0, d1),
            lambda a: np.swapaxes(a, d0, d1))


@shape_case
def permute(data):
    shape = data.draw(shapes(), label='shape')
    perm = data.draw(st.permutations(range(len(shape))), label='perm')
    dims = [maybe_negative(data, d, len(shape), 'negative') for d in perm]
    return ([randn(rng_for(shape), shape)], lambda x: tl.permute(x, *dims),
            lambda a: a.transpose(perm))


@shape_case
def flatten(data):
    shape = data.draw(shapes(), label='shape')
    nd = len(shape)
    if nd == 0:
        return [randn(rng_for(shape), shape)], lambda x: x.flatten(), lambda a: a.reshape(1)
    s = data.draw(st.integers(0, nd - 1), label='start')
    e = data.draw(st.integers(s, nd - 1), label='end')
    start, end = maybe_negative(data, s, nd, 'neg start'), maybe_negative(data, e, nd, 'neg end')
    target = shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
    return ([randn(rng_for(shape), shape)], lambda x: tl.flatten(x, start, end),
            lambda a: a.reshape(target))


def _shape_with_a_one(data):
    shape = data.draw(shapes(), label='shape')
    pos = data.draw(st.integers(0, len(shape)), label='pos of the 1')
    return shape[:pos] + (1,) + shape[pos:]


@shape_case
def squeeze_all(data):
    shape = _shape_with_a_one(data)
    return [randn(rng_for(shape), shape)], lambda x: x.squeeze(), np.squeeze


@shape_case
def squeeze_one_dim(data):
    shape = _shape_with_a_one(data)
    d = data.draw(st.integers(-len(shape), len(shape) - 1), label='dim')  # size 1 or not
    ref = (lambda a: np.squeeze(a, d)) if shape[d] == 1 else (lambda a: a)
    return [randn(rng_for(shape), shape)], lambda x: tl.squeeze(x, d), ref


@shape_case
def squeeze_two_dims(data):
    """A size-1 dim and (when there is one) a dim of another size: only the first goes."""
    shape = _shape_with_a_one(data)
    one = shape.index(1)
    others = ([i for i, s in enumerate(shape) if s != 1]
              or [i for i in range(len(shape)) if i != one])
    dims = (one,) + ((data.draw(st.sampled_from(others), label='other'),) if others else ())
    ref_dims = tuple(d for d in dims if shape[d] == 1)
    return ([randn(rng_for(shape), shape)], lambda x: x.squeeze(dims),
            lambda a: np.squeeze(a, ref_dims))


@shape_case
def unsqueeze(data):
    shape = data.draw(shapes(), label='shape')
    d = data.draw(st.integers(-len(shape) - 1, len(shape)), label='dim')
    return [randn(rng_for(shape), shape)], lambda x: x.unsqueeze(d), lambda a: np.expand_dims(a, d)


@shape_case
def expand(data):
    shape = data.draw(shapes(max_side=3), label='shape')
    lead = data.draw(st.lists(st.integers(0, 3), max_size=2), label='new leading sizes')
    sizes = list(lead)
    for s in shape:
        choices = [-1, 0, 1, 2, 3] if s == 1 else [-1, s]
        sizes.append(data.draw(st.sampled_from(choices), label='size'))
    resolved = tuple(lead) + tuple(s if z == -1 else z for s, z in zip(shape, sizes[len(lead):]))
    return ([randn(rng_for(shape), shape)], lambda x: x.expand(*sizes),
            lambda a: np.broadcast_to(a, resolved))


@shape_case
def broadcast_to(data):
    s1, s2 = data.draw(broadcast_pair(), label='shapes')
    target = np.broadcast_shapes(s1, s2)
    return ([randn(rng_for(s1), s1)], lambda x: tl.broadcast_to(x, target),
            lambda a: np.broadcast_to(a, target))


@shape_case
def cat(data):
    base = data.draw(shapes(min_dims=1, max_side=3), label='shape')
    d = data.draw(st.integers(-len(base), len(base) - 1), label='dim')
    sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3), label='sizes along dim')
    arrays = []
    for k, n in enumerate(sizes):
        shape = list(base)
        shape[d] = n
        arrays.append(randn(np.random.default_rng(k), tuple(shape)))
    return arrays, lambda *xs: tl.cat(xs, d), lambda *a: np.concatenate(a, d)


@shape_case
def stack(data):
    shape = data.draw(shapes(max_side=3), label='shape')
    k = data.draw(st.integers(1, 3), label='count')
    d = data.draw(st.integers(-len(shape) - 1, len(shape)), label='dim')
    arrays = [randn(np.random.default_rng(i), shape) for i in range(k)]
    return arrays, lambda *xs: tl.stack(list(xs), d), lambda *a: np.stack(a, d)


def _pieces(a, sizes, d):
    bounds = np.cumsum([0] + list(sizes))
    return [np.take(a, np.arange(lo, hi), axis=d) for lo, hi in zip(bounds[:-1], bounds[1:])]


@shape_case
def split_size(data):
    shape = data.draw(shapes(min_dims=1, max_side=5), label='shape')
    d = data.draw(st.integers(-len(shape), len(shape) - 1), label='dim')
    size = data.draw(st.integers(1, 5), label='split size')
    n = shape[d]
    sizes = [min(size, n - i) for i in range(0, n, size)] or [0]     # PyTorch: (x,) when n == 0
    return ([randn(rng_for(shape), shape)], lambda x: x.split(size, d),
            lambda a: _pieces(a, sizes, d))


@shape_case
def split_sections(data):
    shape = data.draw(shapes(min_dims=1, max_side=5), label='shape')
    d = data.draw(st.integers(-len(shape), len(shape) - 1), label='dim')
    n = shape[d]
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3), label='cuts'))
    sizes = np.diff([0] + cuts + [n]).tolist()                      # zero-size pieces included
    return ([randn(rng_for(shape), shape)], lambda x: tl.split(x, sizes, d),
            lambda a: _pieces(a, sizes, d))


@shape_case
def chunk(data):
    shape = data.draw(shapes(min_dims=1, max_side=5), label='shape')
    d = data.draw(st.integers(-len(shape), len(shape) - 1), label='dim')
    chunks = data.draw(st.integers(1, 5), label='chunks')
    n = shape[d]
    size = -(-n // chunks)
    sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0] * chunks
    return ([randn(rng_for(shape), shape)], lambda x: x.chunk(chunks, d),
            lambda a: _pieces(a, sizes, d))


@shape_case
def repeat(data):
    shape = data.draw(shapes(max_dims=2, max_side=3), label='shape')
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape) + 2),
                     label='reps')                                  # more reps than dims too
    return [randn(rng_for(shape), shape)], lambda x: x.repeat(*reps), lambda a: np.tile(a, reps)


def np_pad(a, pad, value):
    """PyTorch's constant pad written out: output index o of a dim reads input index o - left."""
    widths = [(0, 0)] * a.ndim
    for k in range(len(pad) // 2):
        widths[a.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    out = np.full([s + lo + hi for s, (lo, hi) in zip(a.shape, widths)], value, dtype=a.dtype)
    src, dst = [], []
    for s, o, (lo, _) in zip(a.shape, out.shape, widths):
        i0, o0 = max(0, -lo), max(0, lo)
        count = max(0, min(s - i0, o - o0))
        src.append(slice(i0, i0 + count))
        dst.append(slice(o0, o0 + count))
    out[tuple(dst)] = a[tuple(src)]
    return out


def _draw_pad(data, shape, torch_valid=False):
    """(left, right) pairs for the last dims, growing or cropping; PyTorch crops the input first,
    so with torch_valid the crops alone must fit in the dim."""
    pairs = data.draw(st.integers(1, len(shape)), label='pairs')
    pad = []
    for k in range(pairs):
        s = shape[len(shape) - 1 - k]
        left = data.draw(st.integers(-s, 2), label='left')
        low = -(s + min(left, 0)) if torch_valid else -(s + left)
        right = data.draw(st.integers(low, 2), label='right')
        pad += [left, right]
    return tuple(pad)


@shape_case
def pad(data):
    shape = data.draw(shapes(min_dims=1), label='shape')
    amounts = _draw_pad(data, shape)
    value = data.draw(st.sampled_from([0.0, -1.5]), label='value')
    return ([randn(rng_for(shape), shape)], lambda x: F.pad(x, amounts, value=value),
            lambda a: np_pad(a, amounts, value))


@shape_case
def gather(data):
    """The index may be smaller than the input outside `dim` (PyTorch); repeats scatter-add back."""
    shape = data.draw(shapes(min_dims=1), label='shape')
    d = data.draw(st.integers(0, len(shape) - 1), label='dim')
    ishape = tuple(data.draw(st.integers(0, s) if i != d else st.integers(0, 4 if s else 0),
                             label='index size') for i, s in enumerate(shape))
    index = np.random.default_rng(1).integers(0, max(shape[d], 1), ishape)

    def ref(a):
        out = np.empty(ishape)
        for pos in np.ndindex(*ishape):
            src = list(pos)
            src[d] = index[pos]
            out[pos] = a[tuple(src)]
        return out
    dim = maybe_negative(data, d, len(shape), 'negative')
    return [randn(rng_for(shape), shape)], lambda x: x.gather(dim, tl.tensor(index)), ref


@pytest.mark.parametrize('case', SHAPE_CASES.values(), ids=SHAPE_CASES.keys())
@given(data=st.data())
def test_shape_op_matches_numpy_and_gradchecks(case, data):
    arrays, fn, ref = case(data)
    inputs = [leaf(a) for a in arrays]
    out, expected = fn(*inputs), ref(*arrays)
    if isinstance(out, (tuple, list)):
        assert_all_close(out, expected)
    else:
        assert_close(out, expected)
    check_grads(fn, inputs)


# The cases the brief names, pinned so that no draw of hypothesis can miss them:
# (input shape, tensorlite fn, NumPy reference)
GATHER_INDEX = np.array([[0, 0, 3], [2, 2, 2], [1, 0, 1]])
PINNED = {
    'view_minus_one': ((2, 3, 4), lambda x: x.view(-1, 4), lambda a: a.reshape(-1, 4)),
    'flatten_middle': ((2, 3, 4, 1), lambda x: x.flatten(1, -2), lambda a: a.reshape(2, 12, 1)),
    'squeeze_non_1_dim_is_noop': ((2, 1, 3), lambda x: x.squeeze(0), lambda a: a),
    'squeeze_1_and_non_1': ((2, 1, 3), lambda x: x.squeeze((0, 1)), lambda a: a.reshape(2, 3)),
    'unsqueeze_minus_one': ((2, 3), lambda x: x.unsqueeze(-1), lambda a: a[..., None]),
    'unsqueeze_minus_ndim_minus_one': ((2, 3), lambda x: x.unsqueeze(-3), lambda a: a[None]),
    'expand_new_leading_and_minus_one': ((3, 1), lambda x: x.expand(2, -1, 4),
                                         lambda a: np.broadcast_to(a, (2, 3, 4))),
    'chunk_uneven': ((5, 2), lambda x: x.chunk(3), lambda a: [a[:2], a[2:4], a[4:]]),
    'chunk_fewer_pieces_than_asked': ((5,), lambda x: x.chunk(4), lambda a: [a[:2], a[2:4], a[4:]]),
    'split_int_uneven': ((2, 5), lambda x: x.split(2, -1),
                         lambda a: [a[:, :2], a[:, 2:4], a[:, 4:]]),
    'split_list': ((6, 2), lambda x: x.split([1, 0, 5]), lambda a: [a[:1], a[1:1], a[1:]]),
    'repeat_more_reps_than_dims': ((2, 3), lambda x: x.repeat(2, 1, 3),
                                   lambda a: np.tile(a, (2, 1, 3))),
    'pad_last_dim_first_with_value': ((2, 3), lambda x: F.pad(x, (1, 2, 0, 1), value=-3.0),
                                      lambda a: np.pad(a, ((0, 1), (1, 2)), constant_values=-3.0)),
    'pad_negative_crops': ((3, 5), lambda x: F.pad(x, (-1, -2, 2, -1), value=4.0),
                           lambda a: np.pad(a[:-1, 1:-2], ((2, 0), (0, 0)), constant_values=4.0)),
    'gather_repeated_index': ((3, 4), lambda x: x.gather(1, tl.tensor(GATHER_INDEX)),
                              lambda a: np.take_along_axis(a, GATHER_INDEX, 1)),
    'cat_negative_dim': ((2, 3), lambda x: tl.cat([x, x * 2], -1),
                         lambda a: np.concatenate([a, 2 * a], -1)),
    'stack_negative_dim': ((2, 3), lambda x: tl.stack([x, x * 2], -1),
                           lambda a: np.stack([a, 2 * a], -1)),
}


@pytest.mark.parametrize('shape, fn, ref', PINNED.values(), ids=PINNED.keys())
def test_pinned_shape_cases(shape, fn, ref):
    a = randn(rng_for(shape), shape)
    out = fn(leaf(a))
    if isinstance(out, (tuple, list)):
        assert_all_close(out, ref(a))
    else:
        assert_close(out, ref(a))
    check_grads(fn, [leaf(a)])


def test_split_gradient_puts_each_piece_back():
    x = leaf(np.arange(10.0))
    pieces = x.split([3, 0, 7])
    (pieces[0] * 1 + 0).sum().backward()              # only the first piece is used
    assert_close(x.grad, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])


# ==================================================================================================
# indexing
# ==================================================================================================

def _np_key(key):
    """The same key with Tensors turned into NumPy arrays, for the reference."""
    if isinstance(key, tuple):
        return tuple(_np_key(k) for k in key)
    return key.numpy() if isinstance(key, tl.Tensor) else key


def _check_getitem(shape, key):
    a = randn(rng_for(shape), shape)
    x = leaf(a)
    assert_close(x[key], a[_np_key(key)])
    check_grads(lambda t: t[key], [x])


@given(data=st.data())
def test_getitem_basic(data):
    """ints (negative too), slices with any step, None and Ellipsis."""
    shape = data.draw(shapes(), label='shape')
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label='key')
    _check_getitem(shape, key)


@given(data=st.data())
def test_getitem_integer_arrays(data):
    """Integer arrays (repeated indices scatter-add in backward), negative indices included."""
    shape = data.draw(shapes(min_dims=1, min_side=1), label='shape')
    key = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)), label='key')
    _check_getitem(shape, key)


@given(data=st.data())
def test_getitem_bool_mask(data):
    shape = data.draw(shapes(min_dims=1), label='shape')
    k = data.draw(st.integers(1, len(shape)), label='mask dims')
    mask = data.draw(hnp.arrays(np.bool_, shape[:k]), label='mask')
    _check_getitem(shape, tl.tensor(mask) if data.draw(st.booleans(), label='as tensor') else mask)


NAMED_KEYS = {
    'int': lambda s: 1,
    'negative_int': lambda s: -1,
    'negative_step': lambda s: slice(None, None, -2),
    'int_and_negative_step': lambda s: (-2, slice(-1, 0, -2)),
    'none_ellipsis_step': lambda s: (None, Ellipsis, slice(None, None, 2)),
    'repeated_int_array': lambda s: np.array([0, 2, 0, 0]),
    'list': lambda s: [2, 0],
    'empty_list': lambda s: [],
    'nested_list': lambda s: [[0, 1], [2, 2]],
    'slice_and_list': lambda s: (slice(1, None), [0, 2]),
    'two_lists': lambda s: ([0, 2, 2], [1, 1, -1]),
    'ellipsis_and_repeated_list': lambda s: (Ellipsis, [1, 1]),
    'int_tensor': lambda s: tl.tensor([2, 0, 2]),
    'mask': lambda s: np.random.default_rng(2).random(s) > 0.5,
    'mask_on_dim1': lambda s: (slice(None), np.random.default_rng(3).random(s[1]) > 0.5),
}


@pytest.mark.parametrize('make_key', NAMED_KEYS.values(), ids=NAMED_KEYS.keys())
@given(shape=shapes(min_dims=2, min_side=3))
def test_getitem_named_keys(make_key, shape):
    _check_getitem(shape, make_key(shape))


def test_repeated_indices_add_up_in_the_gradient():
    x = leaf(np.zeros((3, 2)))
    x[[0, 2, 0, 0]].sum().backward()
    assert_close(x.grad, [[3, 3], [0, 0], [1, 1]])


def np_sum_to(a, shape):
    """Reduce a broadcast array back to `shape` (leading 1s of `shape` included)."""
    while a.ndim > len(shape):
        a = a.sum(0)
    a = a.reshape((1,) * (len(shape) - a.ndim) + a.shape)
    return a.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True)


# key (from x's shape), value shape (from the shape of x[key])
SETITEM_CASES = {
    'int': (lambda s: 0, lambda slot: slot),
    'int_broadcast_value': (lambda s: 0, lambda slot: slot[-1:]),
    'value_with_leading_ones': (lambda s: 0, lambda slot: (1,) + slot),
    'negative_step_slice': (lambda s: (slice(None, None, -2), -1), lambda slot: slot),
    'scalar_value': (lambda s: (1, slice(1, 3)), lambda slot: ()),
    'int_array': (lambda s: [2, 0], lambda slot: slot),
    'mask': (lambda s: np.random.default_rng(4).random(s) > 0.5, lambda slot: ()),
}


def _setitem(key):
    def fn(x, v):
        y = x * 1
        y[key] = v
        return y
    return fn


@pytest.mark.parametrize('case', SETITEM_CASES.values(), ids=SETITEM_CASES.keys())
@given(shape=shapes(min_dims=2, min_side=3))
def test_setitem_on_non_leaf(case, shape):
    """y = x * 1; y[key] = v: the gradient reaches v (summed where v was broadcast) and x (zero
    where it was overwritten)."""
    make_key, make_vshape = case
    key = make_key(shape)
    vshape = make_vshape(np.empty(shape)[key].shape)
    rng = rng_for(shape)
    a, b, g = randn(rng, shape), randn(rng, vshape), randn(rng, shape)
    x, v = leaf(a), leaf(b)
    y = _setitem(key)(x, v)
    expected = a.copy()
    expected[key] = b
    assert_close(y, expected)
    y.backward(tl.tensor(g))
    gx = g.copy()
    gx[key] = 0
    assert_close(x.grad, gx)
    assert_close(v.grad, np_sum_to(g[key], vshape))
    check_grads(_setitem(key), [leaf(a), leaf(b)])


def test_setitem_python_number():
    x = leaf(np.arange(6.0).reshape(2, 3))
    y = x * 1
    y[:, 1] = 7.0
    assert_close(y, [[0, 7, 2], [3, 7, 5]])
    y.sum().backward()
    assert_close(x.grad, [[1, 0, 1], [1, 0, 1]])


# ==================================================================================================
# activations
# ==================================================================================================

np_erf = np.vectorize(math.erf, otypes=[np.float64])
SQRT_2PI = math.sqrt(2 * math.pi)
TANH_K, TANH_C = math.sqrt(2 / math.pi), 0.044715


def np_gelu(a, approximate):
    if approximate == 'tanh':
        return 0.5 * a * (1 + np.tanh(TANH_K * (a + TANH_C * a ** 3)))
    return 0.5 * a * (1 + np_erf(a / math.sqrt(2)))


def np_gelu_d1(a, approximate):
    if approximate == 'tanh':
        t = np.tanh(TANH_K * (a + TANH_C * a ** 3))
        return 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * TANH_K * (1 + 3 * TANH_C * a * a)
    return 0.5 * (1 + np_erf(a / math.sqrt(2))) + a * np.exp(-a * a / 2) / SQRT_2PI


def np_gelu_d2(a, approximate):
    if approximate == 'tanh':
        t = np.tanh(TANH_K * (a + TANH_C * a ** 3))
        u1, u2 = TANH_K * (1 + 3 * TANH_C * a * a), 6 * TANH_K * TANH_C * a
        return (1 - t * t) * (u1 - a * t * u1 * u1 + 0.5 * a * u2)
    return np.exp(-a * a / 2) / SQRT_2PI * (2 - a * a)


def np_softplus(a, beta=1.0, threshold=20.0):
    return np.where(beta * a > threshold, a, np.logaddexp(0, beta * a) / beta)


def np_sigmoid(a):
    return np.exp(-np.logaddexp(0, -a))


# name: (tensorlite fn, NumPy reference, kinks to keep away from, scale of the inputs)
ACTIVATIONS = {
    'relu': (F.relu, lambda a: np.maximum(a, 0), [0.0], 1),
    'relu_method': (lambda x: x.relu(), lambda a: np.maximum(a, 0), [0.0], 1),
    'leaky_relu': (F.leaky_relu, lambda a: np.where(a > 0, a, 0.01 * a), [0.0], 1),
    'leaky_relu_slope': (lambda x: F.leaky_relu(x, negative_slope=0.3),
                         lambda a: np.where(a > 0, a, 0.3 * a), [0.0], 1),
    'gelu': (F.gelu, lambda a: np_gelu(a, 'none'), [], 2),
    'gelu_tanh': (lambda x: F.gelu(x, approximate='tanh'), lambda a: np_gelu(a, 'tanh'), [], 2),
    'erf': (F.erf, np_erf, [], 1),
    'sigmoid': (F.sigmoid, np_sigmoid, [], 3),
    'tl_sigmoid': (tl.sigmoid, np_sigmoid, [], 3),
    'tanh': (F.tanh, np.tanh, [], 2),
    'softplus': (F.softplus, np_softplus, [20.0], 15),          # both sides of the threshold
    'softplus_beta_threshold': (lambda x: F.softplus(x, beta=2.0, threshold=1.5),
                                lambda a: np_softplus(a, 2.0, 1.5), [0.75], 2),
    'silu': (F.silu, lambda a: a * np_sigmoid(a), [], 3),
}


@pytest.mark.parametrize('layout', ['contiguous', 'transposed'])
@pytest.mark.parametrize('case', ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
@given(shape=shapes())
def test_activation_matches_numpy_and_gradchecks(case, layout, shape):
    """`transposed` feeds the op a non-contiguous view (kernels copy it, the graph must not lose
    it)."""
    fn, ref, kinks, scale = case
    a = away_from(scale * randn(rng_for(shape), shape), kinks)
    if layout == 'transposed':
        fn, ref = (lambda f: lambda x: f(x.T))(fn), (lambda r: lambda v: r(v.T))(ref)
    x = leaf(a)
    assert_close(fn(x), ref(a))
    check_grads(fn, [x])


@pytest.mark.parametrize('case', ACTIVATIONS.values(), ids=ACTIVATIONS.keys())
def test_activation_float32_keeps_dtype(case):
    fn, ref, kinks, scale = case
    a = away_from(scale * randn(np.random.default_rng(5), (3, 4)), kinks)
    out = fn(tl.tensor(a.astype(np.float32)))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), ref(a.astype(np.float32).astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('approximate', ['none', 'tanh'])
@given(shape=shapes())
def test_gelu_fused_and_differentiable_backward_match_reference(approximate, shape):
    """First-order backward runs the fused kernel; with create_graph=True it runs Tensor ops.
    Both give gelu'(x) * g, and the second path's own derivative is gelu''(x) * g."""
    rng = rng_for(shape)
    a, g = 2 * randn(rng, shape), randn(rng, shape)
    x = leaf(a)
    (fused,) = tl.autograd.grad(F.gelu(x, approximate), [x], [tl.tensor(g)])
    assert fused.grad_fn is None
    assert_close(fused, g * np_gelu_d1(a, approximate))
    (graph,) = tl.autograd.grad(F.gelu(x, approximate), [x], [tl.tensor(g)], create_graph=True)
    assert_close(graph, g * np_gelu_d1(a, approximate))
    if graph.numel():
        (second,) = tl.autograd.grad(graph.sum(), [x])
        assert_close(second, g * np_gelu_d2(a, approximate))


def test_relu_inplace_writes_over_its_input_and_takes_its_place_in_the_graph():
    a = away_from(randn(np.random.default_rng(1), (3, 5)), [0.0])
    x = leaf(a)
    h = x * 2.0
    memory = h.data
    r = F.relu(h, inplace=True)
    assert r is h and np.shares_memory(h.data, memory)              # no new array
    np.testing.assert_array_equal(memory, np.maximum(2 * a, 0))
    assert h.grad_fn.name == 'ReLU'
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.where(a > 0, 2.0, 0.0))
    # the fused first-order backward and the Tensor-op backward agree, and gradcheck passes
    check_grads(lambda t: F.relu(t * 1.0, inplace=True), [leaf(a)])
    check_grads(lambda t: nn_relu_inplace(t * 1.0) * t, [leaf(a)])


def nn_relu_inplace(t):
    return tl.nn.ReLU(inplace=True)(t)


def test_relu_inplace_over_a_saved_tensor_fails_at_backward_like_pytorch():
    x = leaf(np.array([-1.0, 0.5, 2.0]))
    y = x.exp()                         # Exp saves its output y for backward
    F.relu_(y)
    with pytest.raises(RuntimeError, match='Exp: output 0 .*modified by an in-place operation'):
        y.sum().backward()
    with pytest.raises(RuntimeError, match='relu_: a leaf tensor that requires grad'):
        F.relu(leaf(np.ones(2)), inplace=True)


def test_relu_inplace_without_a_graph_bumps_the_version():
    t = tl.tensor(np.array([-1.0, 3.0]))
    before = t._version
    assert t.relu_() is t
    np.testing.assert_array_equal(t.numpy(), [0.0, 3.0])
    assert t._version == before + 1
    assert repr(tl.nn.ReLU(inplace=True)) == 'ReLU(inplace=True)' and repr(tl.nn.ReLU()) == 'ReLU()'
    ints = tl.tensor(np.array([-2, 5]))                     # no kernel: NumPy's maximum, in place
    assert F.relu(ints, inplace=True).numpy().tolist() == [0, 5] and ints.numpy().tolist() == [0, 5]


def test_softplus_threshold_switches_to_identity():
    a = np.array([-30.0, -1.0, 0.0, 19.5, 20.5, 40.0])
    x = leaf(a)
    y = F.softplus(x)
    assert_close(y, np_softplus(a))
    assert y.numpy()[-1] == 40.0 and y.numpy()[-2] == 20.5
    y.sum().backward()
    assert_close(x.grad, np.where(a > 20, 1.0, np_sigmoid(a)))


def np_softmax(a, dim):
    e = np.exp(a - a.max(axis=dim, keepdims=True)) if a.size else a
    return e / e.sum(axis=dim, keepdims=True) if a.size else a


def np_log_softmax(a, dim):
    if not a.size:
        return a
    z = a - a.max(axis=dim, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=dim, keepdims=True))


SOFTMAXES = {'softmax': (F.softmax, np_softmax), 'log_softmax': (F.log_softmax, np_log_softmax),
             'softmax_method': (lambda x, d: x.softmax(d), np_softmax),
             'log_softmax_method': (lambda x, d: x.log_softmax(d), np_log_softmax)}


@pytest.mark.parametrize('case', SOFTMAXES.values(), ids=SOFTMAXES.keys())
@given(data=st.data())
def test_softmax_matches_numpy_and_gradchecks(case, data):
    fn, ref = case
    shape = data.draw(shapes(), label='shape')
    n = max(len(shape), 1)
    dim = data.draw(st.integers(-n, n - 1), label='dim')
    a = 3 * randn(rng_for(shape), shape)
    x = leaf(a)
    assert_close(fn(x, dim), ref(a, dim if shape else None))
    check_grads(lambda t: fn(t, dim), [x])


BIG = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, -1000.0]])
BIG_SOFTMAX = np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]])
LOG2, LOG3 = math.log(2), math.log(3)
BIG_LOG_SOFTMAX = np.array([[0, -2000, -1000], [-LOG3] * 3, [-LOG2, -LOG2, -2000 - LOG2]])


@pytest.mark.parametrize('fn, expected',
                         [(F.softmax, BIG_SOFTMAX), (F.log_softmax, BIG_LOG_SOFTMAX)],
                         ids=['softmax', 'log_softmax'])
@pytest.mark.parametrize('dim', [1, 0])
def test_softmax_is_stable_for_large_inputs(fn, expected, dim):
    a = BIG if dim == 1 else BIG.T.copy()
    x = leaf(a)
    y = fn(x, dim)
    assert np.isfinite(y.numpy()).all()
    assert_close(y, expected if dim == 1 else expected.T)
    y.backward(tl.tensor(np.random.default_rng(6).standard_normal(a.shape)))
    assert np.isfinite(x.grad.numpy()).all()


# ==================================================================================================
# losses
# ==================================================================================================

def np_log_softmax1(a):
    return a - np.logaddexp.reduce(a, axis=1, keepdims=True) if a.size else a


def np_cross_entropy(a, target, weight=None, ignore_index=-100, label_smoothing=0.0,
                     reduction='mean'):
    """PyTorch's cross_entropy over dim 1, written out; `target` class indices or probabilities."""
    C = a.shape[1]
    logp = np_log_softmax1(a)
    w = np.ones(C) if weight is None else weight
    wb = w.reshape((1, C) + (1,) * (a.ndim - 2))
    with np.errstate(invalid='ignore'):
        if target.dtype.kind == 'f':
            p = target * (1 - label_smoothing) + label_smoothing / C
            loss = -(logp * p * wb).sum(1)
            denom = loss.size
        else:
            valid = target != ignore_index
            safe = np.where(valid, target, 0)
            wt = w[safe] * valid
            nll = -wt * np.take_along_axis(logp, safe[:, None], 1)[:, 0]
            smooth = -(logp * wb).sum(1) * valid
            loss = (1 - label_smoothing) * nll + label_smoothing / C * smooth
            denom = wt.sum()
        if reduction == 'none':
            return loss
        return loss.sum() if reduction == 'sum' else np.float64(loss.sum() / denom)


def _class_problem(data, rng, max_n=3, max_c=4):
    """(input, index target, weight, ignore_index) for input (N, C, d...) with some targets ignored
    but never all of them (their mean would be 0/0)."""
    n = data.draw(st.integers(0, max_n), label='N')
    c = data.draw(st.integers(1, max_c), label='C')
    extra = tuple(data.draw(st.lists(st.integers(0, 2), max_size=2), label='d...'))
    shape = (n, c) + extra
    a = 2 * randn(rng, shape)
    ignore_index = data.draw(st.sampled_from([-100, -1] + ([0] if c > 1 else [])), label='ignore')
    target = rng.integers(0, c, (n,) + extra)
    target[rng.random(target.shape) < 0.3] = ignore_index
    if target.size and target.flat[0] == ignore_index:
        target.flat[0] = c - 1
    weight = rng.random(c) + 0.5 if data.draw(st.booleans(), label='weight') else None
    return a, target, weight, ignore_index


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('kind', ['index', 'probability'])
@given(data=st.data())
def test_cross_entropy(kind, reduction, data):
    rng = np.random.default_rng(7)
    a, target, weight, ignore_index = _class_problem(data, rng)
    if kind == 'probability':
        target = np.exp(np_log_softmax1(randn(rng, a.shape)))
        ignore_index = -100                          # the only one allowed with probabilities
    smoothing = data.draw(st.sampled_from([0.0, 0.25]), label='label_smoothing')
    kw = dict(weight=None if weight is None else tl.tensor(weight), ignore_index=ignore_index,
              label_smoothing=smoothing, reduction=reduction)

    def fn(x):
        return F.cross_entropy(x, tl.tensor(target), **kw)
    x = leaf(a)
    assert_close(fn(x), np_cross_entropy(a, target, weight, ignore_index, smoothing, reduction))
    check_grads(fn, [x])


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('target', [2, tl.tensor(0), np.array([0.1, 0.2, 0.3, 0.4]),
                                    tl.tensor(np.array([0.5, 0.0, 0.5, 0.0]))],
                         ids=['int', 'int_tensor', 'probabilities', 'probability_tensor'])
def test_cross_entropy_unbatched(target, reduction):
    """Input (C,) is a batch of one with the batch dim dropped."""
    a = randn(np.random.default_rng(8), (4,))
    t = target.numpy() if isinstance(target, tl.Tensor) else np.asarray(target)
    x = leaf(a)
    expected = np_cross_entropy(a[None], t[None], reduction=reduction)
    assert_close(F.cross_entropy(x, target, reduction=reduction),
                 expected[0] if reduction == 'none' else expected)
    check_grads(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=0.1), [x])


@pytest.mark.parametrize('reduction', REDUCTIONS)
@given(data=st.data())
def test_nll_loss(reduction, data):
    rng = np.random.default_rng(9)
    a, target, weight, ignore_index = _class_problem(data, rng)
    kw = dict(weight=None if weight is None else tl.tensor(weight), ignore_index=ignore_index,
              reduction=reduction)
    fn = lambda x: F.nll_loss(x, tl.tensor(target), **kw)            # noqa: E731
    x = leaf(a)
    with np.errstate(invalid='ignore'):
        valid = target != ignore_index
        wt = (np.ones(a.shape[1]) if weight is None else weight)[np.where(valid, target, 0)] * valid
        loss = -wt * np.take_along_axis(a, np.where(valid, target, 0)[:, None], 1)[:, 0]
        expected = {'none': loss, 'sum': loss.sum(), 'mean': loss.sum() / wt.sum()}[reduction]
    assert_close(fn(x), expected)
    check_grads(fn, [x])


def test_nll_loss_unbatched():
    a = randn(np.random.default_rng(10), (5,))
    x = leaf(a)
    assert_close(F.nll_loss(x, 3), -a[3])
    assert_close(F.nll_loss(x, 3, reduction='none'), -a[3])
    check_grads(lambda x: F.nll_loss(x, 3), [x])


def _np_mean(v):
    with np.errstate(invalid='ignore'):
        return np.float64(v.sum() / v.size)


NP_REDUCE = {'none': lambda v: v, 'sum': np.sum, 'mean': _np_mean}


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('loss, ref', [(F.mse_loss, lambda d: d * d), (F.l1_loss, np.abs)],
                         ids=['mse_loss', 'l1_loss'])
@given(shape=shapes())
def test_regression_losses(loss, ref, reduction, shape):
    rng = rng_for(shape)
    a = randn(rng, shape)
    b = a + away_from(randn(rng, shape), [0.0])            # |input - target| has a kink at 0
    x, t = leaf(a), leaf(b)
    assert_close(loss(x, t, reduction=reduction), NP_REDUCE[reduction](ref(a - b)))
    check_grads(lambda x, t: loss(x, t, reduction=reduction), [x, t])


def np_bce_with_logits(a, t, weight=None, pos_weight=None):
    log_weight = 1 + (pos_weight - 1) * t if pos_weight is not None else 1
    loss = (1 - t) * a + log_weight * (np.log1p(np.exp(-np.abs(a))) + np.maximum(-a, 0))
    return loss if weight is None else loss * weight


@pytest.mark.parametrize('reduction', REDUCTIONS)
@given(data=st.data())
def test_binary_cross_entropy_with_logits(reduction, data):
    shape = data.draw(shapes(min_dims=1), label='shape')
    rng = rng_for(shape)
    a, t = 3 * randn(rng, shape), rng.random(shape)
    weight = data.draw(st.sampled_from([None, shape[-1:], shape]), label='weight shape')
    weight = None if weight is None else rng.random(weight) + 0.5
    use_pos_weight = data.draw(st.booleans(), label='pos_weight')
    pos_weight = rng.random(shape[-1:]) * 3 if use_pos_weight else None
    kw = dict(weight=None if weight is None else tl.tensor(weight), reduction=reduction,
              pos_weight=None if pos_weight is None else tl.tensor(pos_weight))

    def fn(x, target):
        return F.binary_cross_entropy_with_logits(x, target, **kw)
    x, target = leaf(a), leaf(t)
    assert_close(fn(x, target), NP_REDUCE[reduction](np_bce_with_logits(a, t, weight, pos_weight)))
    check_grads(fn, [x, target])


def test_binary_cross_entropy_with_logits_is_stable():
    a = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    t = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    x = leaf(a)
    y = F.binary_cross_entropy_with_logits(x, tl.tensor(t), reduction='none')
    assert_close(y, np_bce_with_logits(a, t))
    y.sum().backward()
    assert_close(x.grad, np_sigmoid(a) - t)


# ==================================================================================================
# dropout
# ==================================================================================================

@pytest.mark.parametrize('p, training', [(0.5, False), (0.0, True), (0.0, False)])
def test_dropout_identity(p, training):
    a = randn(np.random.default_rng(11), (4, 5))
    x = leaf(a)
    y = F.dropout(x, p, training)
    assert_close(y, a)
    y.backward(tl.tensor(np.full(a.shape, 2.0)))
    assert_close(x.grad, np.full(a.shape, 2.0))


@pytest.mark.parametrize('p', [0.1, 0.5, 0.8])
def test_dropout_scales_kept_elements_and_zeroes_a_fraction_p(p):
    tl.manual_seed(0)
    a = randn(np.random.default_rng(12), (200, 300), low=0.5)       # nonzero: zero means dropped
    x = leaf(a)
    y = F.dropout(x, p)
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], a[kept] / (1 - p), rtol=1e-12)
    sigma = math.sqrt(p * (1 - p) / a.size)
    assert abs((1 - kept.mean()) - p) < 6 * sigma
    g = randn(np.random.default_rng(13), a.shape)
    y.backward(tl.tensor(g))
    assert_close(x.grad, g * kept / (1 - p))                       # the same mask, same scale


def test_dropout_p1_zeroes_everything():
    x = leaf(np.ones((3, 4)))
    y = F.dropout(x, 1.0)
    assert_close(y, np.zeros((3, 4)))
    y.sum().backward()
    assert_close(x.grad, np.zeros((3, 4)))


def test_dropout_is_reproducible_under_manual_seed():
    x = tl.tensor(np.ones((50, 40)))
    tl.manual_seed(123)
    first = F.dropout(x, 0.5).numpy().copy()
    tl.manual_seed(123)
    again = F.dropout(x, 0.5).numpy()
    other = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


@given(shape=shapes())
def test_dropout_gradchecks(shape):
    def fn(x):
        tl.manual_seed(0)                        # one mask for every evaluation of the check
        return F.dropout(x, 0.4)
    check_grads(fn, [leaf(randn(rng_for(shape), shape))])


# ==================================================================================================
# bad input: an error naming what was expected and what came
# ==================================================================================================

def _t(*shape):
    return tl.tensor(np.zeros(shape))


ERRORS = {
    'cat_mismatched_shapes': (lambda: tl.cat([_t(3, 4), _t(2, 3)]), ValueError,
                              r"\(2, 3\).*\(3, 4\)"),
    'cat_mismatched_ndim': (lambda: tl.cat([_t(3, 4), _t(3, 4, 1)], 1), ValueError,
                            r"\(3, 4, 1\).*\(3, 4\)"),
    'stack_mismatched_shapes': (lambda: tl.stack([_t(2, 3), _t(3, 2)]), ValueError,
                                r"\(3, 2\).*\(2, 3\)"),
    'reshape_wrong_size': (lambda: _t(3, 4).reshape(5, 2), ValueError, r"\(3, 4\).*12.*\(5, 2\)"),
    'view_wrong_size_with_minus_one': (lambda: _t(3, 4).view(5, -1), ValueError,
                                       r"\(3, 4\).*\(5, -1\)"),
    'expand_incompatible': (lambda: _t(3, 4).expand(2, 4), ValueError, r"\(3, 4\).*\(2, 4\)"),
    'expand_too_few_sizes': (lambda: _t(3, 4).expand(4), ValueError, r"1 sizes.*2 dims"),
    'split_sections_wrong_sum': (lambda: _t(5).split([2, 2]), ValueError, r"sum to 4.*size 5"),
    'permute_not_a_permutation': (lambda: _t(2, 3).permute(0, 0), ValueError, r"permutation"),
    'transpose_dim_out_of_range': (lambda: _t(2, 3).transpose(0, 2), IndexError, r"dim 2.*2 dim"),
    'pad_crops_too_much': (lambda: F.pad(_t(2, 3), (-2, -2)), ValueError, r"\(-2, -2\).*\(2, 3\)"),
    'pad_too_many_pairs': (lambda: F.pad(_t(3), (1, 1, 1, 1)), ValueError,
                           r"4 pad amounts.*1 dims"),
    'pad_mode': (lambda: F.pad(_t(3), (1, 1), mode='reflect'), NotImplementedError, r"reflect"),
    'gather_index_ndim': (lambda: _t(3, 4).gather(1, tl.tensor([0, 1])), ValueError,
                          r"\(2,\).*\(3, 4\)"),
    'gather_index_too_large': (lambda: _t(3, 4).gather(1, tl.tensor([[0]] * 4)), ValueError,
                               r"\(4, 1\).*\(3, 4\)"),
    'getitem_out_of_range': (lambda: _t(3, 4)[3], IndexError, r"3.*\(3, 4\)"),
    'getitem_float_index': (lambda: _t(3, 4)[np.array([0.5])], IndexError, r"float64"),
    'setitem_wrong_value_shape': (lambda: _setitem(0)(_t(3, 4), _t(3)), ValueError,
                                  r"\(3,\).*\(3, 4\)"),
    'softmax_dim_out_of_range': (lambda: F.softmax(_t(2, 3), 2), IndexError, r"dim 2"),
    'gelu_approximate': (lambda: F.gelu(_t(2), approximate='erf'), ValueError, r"'erf'"),
    'cross_entropy_target_shape': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, 1])), ValueError,
                                   r"cross_entropy.*\(3, 4\).*\(3,\).*\(2,\)"),
    'cross_entropy_target_shape_4d': (
        lambda: F.cross_entropy(_t(2, 4, 3, 5), tl.tensor(np.zeros((2, 5, 3), np.int64))),
        ValueError, r"\(2, 3, 5\).*\(2, 5, 3\)"),
    'cross_entropy_class_out_of_range': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, 4, 1])),
                                         IndexError, r"4 is out of range for 4 classes"),
    'cross_entropy_negative_class': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, -2, 1])),
                                     IndexError, r"-2 is out of range"),
    'cross_entropy_probability_target_shape': (
        lambda: F.cross_entropy(_t(3, 4), tl.tensor(np.zeros((3, 5)))), ValueError,
        r"\(3, 4\).*\(3, 5\)"),
    'cross_entropy_weight_shape': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, 1, 2]),
                                                           weight=tl.tensor(np.ones(3))),
                                   ValueError, r"\(4,\).*\(3,\)"),
    'cross_entropy_ignore_index_with_probabilities': (
        lambda: F.cross_entropy(_t(3, 4), tl.tensor(np.zeros((3, 4))), ignore_index=0), ValueError,
        r"ignore_index.*probabilities"),
    'cross_entropy_reduction': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, 1, 2]),
                                                        reduction='avg'), ValueError, r"'avg'"),
    'cross_entropy_label_smoothing': (lambda: F.cross_entropy(_t(3, 4), tl.tensor([0, 1, 2]),
                                                              label_smoothing=1.5),
                                      ValueError, r"1.5"),
    'nll_loss_float_target': (lambda: F.nll_loss(_t(3, 4), tl.tensor(np.zeros(3))), TypeError,
                              r"float64"),
    'mse_loss_shapes': (lambda: F.mse_loss(_t(3, 4), _t(2, 4)), ValueError, r"\(3, 4\).*\(2, 4\)"),
    'bce_target_shape': (lambda: F.binary_cross_entropy_with_logits(_t(3, 4), _t(4)), ValueError,
                         r"\(4,\).*\(3, 4\)"),
    'dropout_p': (lambda: F.dropout(_t(3), 1.5), ValueError, r"1.5"),
}


@pytest.mark.parametrize('call, error, match', ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ==================================================================================================
# PyTorch as the reference (optional)
# ==================================================================================================

def _torch_compare(tl_fn, torch_fn, arrays, grad_args=None, rtol=1e-10, atol=1e-12):
    """Same forward and same gradients (for a random output gradient) in tensorlite and PyTorch."""
    torch = pytest.importorskip('torch')
    grad_args = range(len(arrays)) if grad_args is None else grad_args
    xs = [leaf(a, requires_grad=i in grad_args) for i, a in enumerate(arrays)]
    ts = [torch.tensor(a, requires_grad=i in grad_args) for i, a in enumerate(arrays)]
    y, ty = tl_fn(*xs), torch_fn(*ts)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(14).standard_normal(ty.shape)
    y.backward(tl.tensor(g))
    ty.backward(torch.tensor(g))
    for i in grad_args:
        np.testing.assert_allclose(xs[i].grad.numpy(), ts[i].grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.optional
@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('kind', ['index', 'probability'])
@pytest.mark.parametrize('shape', [(5, 4), (2, 4, 3, 2), (4,)], ids=['NC', 'NCd1d2', 'C'])
def test_cross_entropy_matches_torch(shape, kind, reduction):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(15)
    a = 2 * rng.standard_normal(shape)
    c = shape[1] if len(shape) > 1 else shape[0]
    weight = rng.random(c) + 0.5
    if kind == 'index':
        target = rng.integers(0, c, shape[:1] + shape[2:]) if len(shape) > 1 else np.array(1)
        if target.ndim:
            target.flat[1] = 2                               # ignored
            target.flat[0] = 1
    else:
        target = np.exp(np_log_softmax1(rng.standard_normal(shape if len(shape) > 1 else (1, c))))
        target = target.reshape(shape)
    kw = dict(label_smoothing=0.2, reduction=reduction)
    if kind == 'index':
        kw['ignore_index'] = 2                              # PyTorch refuses it with probabilities
    _torch_compare(
        lambda x: F.cross_entropy(x, tl.tensor(target), weight=tl.tensor(weight), **kw),
        lambda x: torch.nn.functional.cross_entropy(x, torch.tensor(target),
                                                    weight=torch.tensor(weight), **kw),
        [a])


@pytest.mark.optional
@pytest.mark.parametrize('reduction', REDUCTIONS)
def test_binary_cross_entropy_with_logits_matches_torch(reduction):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(16)
    a, t = 4 * rng.standard_normal((3, 5)), rng.random((3, 5))
    weight, pos_weight = rng.random((3, 1)) + 0.5, 3 * rng.random(5)
    _torch_compare(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=tl.tensor(weight),
                                                        pos_weight=tl.tensor(pos_weight),
                                                        reduction=reduction),
        lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(
            x, y, weight=torch.tensor(weight), pos_weight=torch.tensor(pos_weight),
            reduction=reduction),
        [a, t])


@pytest.mark.optional
@pytest.mark.parametrize('approximate', ['none', 'tanh'])
@pytest.mark.parametrize('create_graph', [False, True], ids=['fused', 'differentiable'])
def test_gelu_matches_torch(approximate, create_graph):
    torch = pytest.importorskip('torch')
    a = 3 * np.random.default_rng(17).standard_normal((4, 6))
    x, tx = leaf(a), torch.tensor(a, requires_grad=True)
    y, ty = F.gelu(x, approximate), torch.nn.functional.gelu(tx, approximate=approximate)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    (g,) = tl.autograd.grad(y.sum(), [x], create_graph=create_graph)
    (tg,) = torch.autograd.grad(ty.sum(), [tx], create_graph=create_graph)
    np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
    if create_graph:
        (g2,) = tl.autograd.grad(g.sum(), [x])
        (tg2,) = torch.autograd.grad(tg.sum(), [tx])
        np.testing.assert_allclose(g2.numpy(), tg2.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.optional
@pytest.mark.parametrize('beta, threshold', [(1.0, 20.0), (2.0, 1.5), (0.5, 5.0)])
def test_softplus_matches_torch(beta, threshold):
    torch = pytest.importorskip('torch')
    a = np.concatenate([np.linspace(-30, 30, 41), [19.9, 20.1, 0.74, 0.76, 9.9, 10.1]])
    _torch_compare(lambda x: F.softplus(x, beta, threshold),
                   lambda x: torch.nn.functional.softplus(x, beta, threshold), [a])


@pytest.mark.optional
@pytest.mark.parametrize('amounts', [(-1, 2), (1, -2, -1, 0), (2, -3), (-3, 1, 1, 1),
                                     (0, -1, 2, -2, -1, 1)])
@pytest.mark.parametrize('value', [0.0, 2.5])
def test_pad_with_negative_amounts_matches_torch(amounts, value):
    torch = pytest.importorskip('torch')
    a = np.random.default_rng(18).standard_normal((2, 3, 4))
    _torch_compare(lambda x: F.pad(x, amounts, value=value),
                   lambda x: torch.nn.functional.pad(x, amounts, value=value), [a])


@pytest.mark.optional
@given(data=st.data())
def test_pad_matches_torch_on_generated_amounts(data):
    torch = pytest.importorskip('torch')
    shape = data.draw(shapes(min_dims=1), label='shape')
    amounts = _draw_pad(data, shape, torch_valid=True)
    _torch_compare(lambda x: F.pad(x, amounts, value=1.5),
                   lambda x: torch.nn.functional.pad(x, amounts, value=1.5),
                   [randn(rng_for(shape), shape)])

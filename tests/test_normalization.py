"""batch_norm, layer_norm, group_norm: forward and gradients against NumPy references written here,
float64 gradcheck (both modes) and gradgradcheck on hypothesis shapes, running statistics over
several steps, the fused kernels against the NumPy path, the CUDA twins against the CPU twins
(under NUMBA_ENABLE_CUDASIM=1 when there is no GPU), bad input, and PyTorch (optional).

The gradient references write out each group's Jacobian, d xhat / d x = rstd (I - 1/M - xhat
xhat^T / M), and multiply by it: a different computation from the closed form the library uses.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite.functional import normalization as N
from tensorlite.functional.normalization import batch_norm, group_norm, layer_norm
from tensorlite.kernels.cpu import norm as cpu_norm

from helpers import check_grads, leaf, shapes

EPS = 1e-5


def rng_for(shape, salt=0):
    return np.random.default_rng(len(shape) * 31 + math.prod(shape) + salt)


def assert_close(out, expected, rtol=1e-10, atol=1e-12):
    expected = np.asarray(expected)
    assert tuple(out.shape) == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=rtol, atol=atol)


# ==================================================================================================
# NumPy references: every norm as rows, one row per statistic
# ==================================================================================================

def np_standardize(rows, eps=EPS):
    """(K, M) -> xhat and rstd (K, 1), mean and biased variance along each row."""
    rstd = 1 / np.sqrt(rows.var(axis=1, keepdims=True) + eps)
    return (rows - rows.mean(axis=1, keepdims=True)) * rstd, rstd


def np_input_grad(rows, grows, eps=EPS):
    """The gradient of sum(grows * xhat(rows)), one Jacobian per row."""
    xhat, rstd = np_standardize(rows, eps)
    M = rows.shape[1]
    out = np.empty_like(rows)
    for k in range(rows.shape[0]):
        jac = rstd[k] * (np.eye(M) - 1.0 / M - np.outer(xhat[k], xhat[k]) / M)
        out[k] = jac.T @ grows[k]
    return out


def channels_first(a):
    """(N, C, *) -> (C, N * S) rows, and the function that puts rows back."""
    moved = np.moveaxis(a, 1, 0)
    return moved.reshape(a.shape[1], -1), lambda r: np.moveaxis(r.reshape(moved.shape), 0, 1)


def param_view(p, ndim):
    """A (C,) parameter broadcast along dim 1 of an ndim-D (N, C, *) array."""
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def np_norm(a, gy, w, b, rows_of, pview, param_axes, eps=EPS, fixed=None):
    """(y, dx, dw, db) of y = xhat * w + b, with xhat taken over the rows `rows_of(a)` gives, or
    with fixed (mean, var) per channel when `fixed` is given (batch_norm in eval)."""
    w_b = 1.0 if w is None else pview(w)
    g = gy * w_b
    if fixed is None:
        rows, back = rows_of(a)
        xhat = back(np_standardize(rows, eps)[0])
        dx = back(np_input_grad(rows, rows_of(g)[0], eps))
    else:
        mean, var = (pview(v) for v in fixed)
        xhat = (a - mean) / np.sqrt(var + eps)
        dx = g / np.sqrt(var + eps)
    y = xhat * w_b + (0.0 if b is None else pview(b))
    return y, dx, (gy * xhat).sum(axis=param_axes), gy.sum(axis=param_axes)


def np_batch_norm(a, gy, w, b, fixed=None):
    axes = (0,) + tuple(range(2, a.ndim))
    return np_norm(a, gy, w, b, channels_first, lambda p: param_view(p, a.ndim), axes,
                   fixed=fixed)


def np_layer_norm(a, gy, w, b, k):
    D = math.prod(a.shape[a.ndim - k:])
    return np_norm(a, gy, w, b, lambda v: (v.reshape(-1, D), lambda r: r.reshape(a.shape)),
                   lambda p: p, tuple(range(a.ndim - k)))


def np_group_norm(a, gy, w, b, groups):
    rows_of = lambda v: (v.reshape(a.shape[0] * groups, -1), lambda r: r.reshape(a.shape))  # noqa
    axes = (0,) + tuple(range(2, a.ndim))
    return np_norm(a, gy, w, b, rows_of, lambda p: param_view(p, a.ndim), axes)


# ==================================================================================================
# hypothesis cases: each returns (input shape, parameter shape, fn(x, weight, bias), reference)
# ==================================================================================================

def draw_batch_norm(data, training):
    shape = data.draw(shapes(min_dims=2, max_dims=5, min_side=1, max_side=3).filter(
        lambda s: not training or s[0] * math.prod(s[2:]) > 1), label='shape')
    rng = rng_for(shape, 1)
    C = shape[1]
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    # fresh running statistics for every call: gradcheck calls fn many times
    def fn(x, w, b):
        return batch_norm(x, tl.tensor(rm), tl.tensor(rv), w, b, training=training)
    ref = lambda a, gy, w, b: np_batch_norm(a, gy, w, b, None if training else (rm, rv))  # noqa
    return shape, (C,), fn, ref


def draw_layer_norm(data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, min_side=1, max_side=3), label='shape')
    k = data.draw(st.integers(1, len(shape)), label='normalized dims')
    normalized = shape[len(shape) - k:]
    as_int = k == 1 and data.draw(st.booleans(), label='normalized_shape as an int')
    fn = lambda x, w, b: layer_norm(x, normalized[0] if as_int else normalized, w, b)  # noqa
    return shape, normalized, fn, lambda a, gy, w, b: np_layer_norm(a, gy, w, b, k)


def draw_group_norm(data):
    groups = data.draw(st.integers(1, 3), label='groups')
    per_group = data.draw(st.integers(1, 3), label='channels per group')
    rest = data.draw(shapes(min_dims=0, max_dims=2, min_side=1, max_side=3), label='spatial')
    n = data.draw(st.integers(1, 3), label='N')
    shape = (n, groups * per_group) + rest
    if n * per_group * math.prod(rest) == 1:        # refused, as PyTorch: see test_bad_input
        shape = (2,) + shape[1:]
    fn = lambda x, w, b: group_norm(x, groups, w, b)  # noqa
    return shape, (shape[1],), fn, lambda a, gy, w, b: np_group_norm(a, gy, w, b, groups)


CASES = {
    'batch_norm_train': lambda data: draw_batch_norm(data, True),
    'batch_norm_eval': lambda data: draw_batch_norm(data, False),
    'layer_norm': draw_layer_norm,
    'group_norm': draw_group_norm,
}


@pytest.mark.parametrize('affine', [True, False], ids=['affine', 'no_affine'])
@pytest.mark.parametrize('case', CASES.values(), ids=CASES.keys())
@given(data=st.data())
def test_norm_matches_numpy_and_gradchecks(case, affine, data):
    shape, pshape, fn, ref = case(data)
    rng = rng_for(shape)
    a = 2 * rng.standard_normal(shape) + 1
    gy = rng.standard_normal(shape)
    w = rng.standard_normal(pshape) if affine else None
    b = rng.standard_normal(pshape) if affine else None
    x = leaf(a)
    params = [leaf(w), leaf(b)] if affine else [None, None]
    y = fn(x, *params)
    y_ref, dx_ref, dw_ref, db_ref = ref(a, gy, w, b)
    assert_close(y, y_ref)
    y.backward(tl.tensor(gy))
    assert_close(x.grad, dx_ref, atol=1e-10)
    if affine:
        assert_close(params[0].grad, dw_ref, atol=1e-10)
        assert_close(params[1].grad, db_ref, atol=1e-10)
        check_grads(fn, [leaf(a)] + [leaf(p) for p in (w, b)])
    else:
        check_grads(lambda v: fn(v, None, None), [leaf(a)])


@pytest.mark.parametrize('which', ['x', 'weight', 'bias', 'weight_bias'])
@pytest.mark.parametrize('create_graph', [False, True], ids=['arrays', 'differentiable'])
@pytest.mark.parametrize('case', ['batch_train', 'batch_eval', 'layer', 'group'])
def test_only_the_gradients_asked_for(case, create_graph, which):
    """Both backward paths give the gradients of exactly the inputs that require grad, and the
    differentiable one gives them with a graph."""
    shape = (3, 4, 5)
    rng = rng_for(shape, 2)
    a, gy = rng.standard_normal(shape), rng.standard_normal(shape)
    p = 5 if case == 'layer' else 4
    w, b = rng.standard_normal(p), rng.standard_normal(p)
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    fn, ref = {
        'batch_train': (lambda x, W, B: batch_norm(x, None, None, W, B, training=True),
                        lambda: np_batch_norm(a, gy, w, b)),
        'batch_eval': (lambda x, W, B: batch_norm(x, tl.tensor(rm), tl.tensor(rv), W, B),
                       lambda: np_batch_norm(a, gy, w, b, (rm, rv))),
        'layer': (lambda x, W, B: layer_norm(x, 5, W, B), lambda: np_layer_norm(a, gy, w, b, 1)),
        'group': (lambda x, W, B: group_norm(x, 2, W, B), lambda: np_group_norm(a, gy, w, b, 2)),
    }[case]
    x, W, B = leaf(a, 'x' in which), leaf(w, 'weight' in which), leaf(b, 'bias' in which)
    names = [n for n, t in zip(('x', 'weight', 'bias'), (x, W, B)) if t.requires_grad]
    # gy requiring grad: every gradient depends on it, so with create_graph each has a graph
    grads = tl.autograd.grad(fn(x, W, B), [t for t in (x, W, B) if t.requires_grad],
                             [leaf(gy, create_graph)], create_graph=create_graph)
    expected = dict(zip(('x', 'weight', 'bias'), ref()[1:]))
    assert len(grads) == len(names)
    for name, g in zip(names, grads):
        assert_close(g, expected[name], atol=1e-10)
        assert (g.grad_fn is not None) == create_graph


@pytest.mark.parametrize('case', ['batch_train', 'layer', 'group'])
def test_second_derivative_flows_through_the_statistics(case):
    """The gradient built with create_graph=True, and the gradient of its square, against the same
    norm written with elementary ops (each gradchecked in test_ops_math.py).  Had the differentiable
    path taken mean and rstd as constants, the second derivative would differ."""
    shape = (2, 4, 3)
    rng = rng_for(shape, 3)
    a, v = rng.standard_normal(shape), rng.standard_normal(shape)
    w = rng.standard_normal(4 if case != 'layer' else 3)
    if case == 'batch_train':
        norm_fn = lambda x: batch_norm(x, None, None, tl.tensor(w), None, training=True)  # noqa
        dims, wv = (0, 2), w.reshape(1, 4, 1)
        elementary = lambda x: _elementary_norm(x, dims) * tl.tensor(wv)  # noqa
    elif case == 'layer':
        norm_fn = lambda x: layer_norm(x, 3, tl.tensor(w))  # noqa
        elementary = lambda x: _elementary_norm(x, (2,)) * tl.tensor(w)  # noqa
    else:
        norm_fn = lambda x: group_norm(x, 2, tl.tensor(w))  # noqa
        elementary = lambda x: (_elementary_norm(x.reshape(2, 2, 6), (2,)).reshape(2, 4, 3)  # noqa
                                * tl.tensor(w.reshape(1, 4, 1)))
    results = []
    for fn in (norm_fn, elementary):
        x = leaf(a)
        (g,) = tl.autograd.grad(fn(x), [x], [tl.tensor(v)], create_graph=True)
        (gg,) = tl.autograd.grad((g * g).sum(), [x])
        results.append((g.numpy(), gg.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-10)
    assert np.abs(results[0][1]).max() > 1e-3


def _elementary_norm(x, dims):
    mean = x.mean(dims, keepdim=True)
    return (x - mean) / ((x - mean) * (x - mean)).mean(dims, keepdim=True).add(EPS).sqrt()


# ==================================================================================================
# running statistics
# ==================================================================================================

@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('momentum', [0.1, 0.5, None])
def test_running_statistics_follow_numpy_over_several_steps(momentum, dtype):
    """In place (same array, version bumped); unbiased variance; momentum=None: the average of
    every batch's statistics so far."""
    C = 3
    rng = np.random.default_rng(4)
    rm, rv = tl.zeros(C, dtype=dtype), tl.ones(C, dtype=dtype)
    arrays, version = (rm.data, rv.data), (rm._version, rv._version)
    ref_m, ref_v, seen_m, seen_v = np.zeros(C), np.ones(C), [], []
    for step in range(1, 6):
        a = (step * rng.standard_normal((step + 1, C, 2, 3)) + step).astype(dtype)
        count = tl.tensor(step, dtype=tl.int64) if step % 2 else step      # a Tensor or an int
        batch_norm(tl.tensor(a), rm, rv, training=True, momentum=momentum,
                   num_batches_tracked=count if momentum is None else None)
        a64 = a.astype(np.float64)
        bm, bv = a64.mean(axis=(0, 2, 3)), a64.var(axis=(0, 2, 3), ddof=1)
        seen_m.append(bm)
        seen_v.append(bv)
        if momentum is None:
            ref_m, ref_v = np.mean(seen_m, axis=0), np.mean(seen_v, axis=0)
        else:
            ref_m = (1 - momentum) * ref_m + momentum * bm
            ref_v = (1 - momentum) * ref_v + momentum * bv
    assert rm.data is arrays[0] and rv.data is arrays[1]
    assert rm._version > version[0] and rv._version > version[1]
    assert rm.dtype == dtype and rv.dtype == dtype
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(rm.numpy(), ref_m, **tol)
    np.testing.assert_allclose(rv.numpy(), ref_v, **tol)
    # eval then normalizes with them
    a = rng.standard_normal((2, C, 4)).astype(dtype)
    y = batch_norm(tl.tensor(a), rm, rv)
    expected = (a - rm.numpy()[:, None]) / np.sqrt(rv.numpy()[:, None] + EPS)
    np.testing.assert_allclose(y.numpy(), expected, **tol)


def test_running_statistics_get_no_gradient_and_no_update_in_eval():
    a = np.random.default_rng(5).standard_normal((4, 2, 3))
    rm, rv = leaf(np.zeros(2)), leaf(np.ones(2))
    x = leaf(a)
    batch_norm(x, rm, rv, training=False).sum().backward()
    assert rm.grad is None and rv.grad is None
    assert rm._version == 0 and rv._version == 0
    batch_norm(x, rm, rv, training=True)        # a leaf requiring grad is updated under no_grad
    assert rm._version > 0 and rm.grad_fn is None
    np.testing.assert_allclose(rm.numpy(), 0.1 * a.mean(axis=(0, 2)), rtol=1e-12)


def test_eval_backward_uses_the_statistics_of_its_forward():
    """A training step between an eval forward and its backward updates the running statistics
    in place; the eval backward must still use the values its forward normalized with."""
    rng = np.random.default_rng(18)
    a, gy = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    rm0, rv0 = rng.standard_normal(2), rng.random(2) + 0.5
    rm, rv = tl.tensor(rm0.copy()), tl.tensor(rv0.copy())
    x, w = leaf(a), leaf(np.ones(2))
    y = batch_norm(x, rm, rv, w, training=False)
    batch_norm(tl.tensor(5 * a + 3), rm, rv, training=True, momentum=0.5)
    assert not np.allclose(rm.numpy(), rm0) and not np.allclose(rv.numpy(), rv0)
    y.backward(tl.tensor(gy))
    xhat = (a - rm0[:, None]) / np.sqrt(rv0 + EPS)[:, None]
    assert_close(x.grad, gy / np.sqrt(rv0 + EPS)[:, None])
    assert_close(w.grad, (gy * xhat).sum(axis=(0, 2)))


def test_empty_batch_gives_an_empty_output_and_leaves_running_statistics_alone():
    rm, rv = tl.tensor(np.arange(3.0)), tl.tensor(np.arange(3.0) + 1)
    for shape in [(0, 3, 4), (2, 3, 0)]:
        x, w = leaf(np.zeros(shape)), leaf(np.ones(3))
        y = batch_norm(x, rm, rv, w, training=True)
        assert tuple(y.shape) == shape
        y.sum().backward()
        assert tuple(x.grad.shape) == shape
        np.testing.assert_array_equal(w.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(rm.numpy(), np.arange(3.0))
    np.testing.assert_array_equal(rv.numpy(), np.arange(3.0) + 1)
    assert rm._version == 0


@pytest.mark.parametrize('fn, shape', [
    (lambda x: layer_norm(x, 4), (0, 4)),
    (lambda x: layer_norm(x, (2, 0)), (3, 2, 0)),
    (lambda x: group_norm(x, 2), (0, 4, 3)),
    (lambda x: group_norm(x, 2, tl.ones(4, dtype=tl.float64)), (2, 4, 0)),
])
def test_empty_inputs_of_layer_and_group_norm(fn, shape):
    x = leaf(np.zeros(shape))
    y = fn(x)
    assert tuple(y.shape) == shape
    y.sum().backward()
    assert tuple(x.grad.shape) == shape


@pytest.mark.parametrize('case', ['batch', 'layer'])
def test_strided_input_is_normalized_like_its_copy(case):
    """The fused kernels need contiguous memory: a transposed input is copied, not misread."""
    a = np.random.default_rng(6).standard_normal((40, 8, 103))     # above FUSED_MIN_SIZE
    assert a.size >= N.FUSED_MIN_SIZE
    fn = (lambda x: batch_norm(x, None, None, training=True)) if case == 'batch' \
        else (lambda x: layer_norm(x, 40))
    x, xc = leaf(a), leaf(np.ascontiguousarray(a.transpose(2, 1, 0)))
    y, yc = fn(x.transpose(0, 2)), fn(xc)
    assert_close(y, yc.numpy())
    g = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(tl.tensor(g))
    yc.backward(tl.tensor(g))
    assert_close(x.grad, xc.grad.numpy().transpose(2, 1, 0))


@pytest.mark.parametrize('size', [5, 2048], ids=['numpy_path', 'kernel_path'])
@pytest.mark.parametrize('fn', [
    lambda x: batch_norm(x, None, None, tl.ones(4), tl.zeros(4), training=True),
    lambda x: batch_norm(x, tl.zeros(4), tl.ones(4), tl.ones(4), tl.zeros(4)),
    lambda x: layer_norm(x, (4, x.shape[-1])),
    lambda x: group_norm(x, 2, tl.ones(4), tl.zeros(4)),
], ids=['batch_train', 'batch_eval', 'layer', 'group'])
def test_float32_stays_float32(fn, size):
    a = np.random.default_rng(8).standard_normal((4, 4, size)).astype(np.float32)
    x = tl.tensor(a, requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ==================================================================================================
# the fused kernels against the NumPy path, and the CUDA twins against the CPU twins
# ==================================================================================================

FUSED = {
    'batch_train': (lambda s: N.batch_layout(s), (4, 3, 2, 5), True),
    'batch_eval': (lambda s: N.batch_layout(s), (4, 3, 10), False),
    'batch_nc': (lambda s: N.batch_layout(s), (6, 3), True),          # BatchNorm1d: S = 1
    'layer': (lambda s: N.layer_layout(s, 2), (3, 2, 4, 6), True),
    'layer_one_row': (lambda s: N.layer_layout(s, 1), (7,), True),
}


@pytest.mark.parametrize('affine', [True, False], ids=['affine', 'no_affine'])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', FUSED.values(), ids=FUSED.keys())
def test_fused_kernels_match_the_numpy_path(case, dtype, affine, monkeypatch):
    make, shape, batch_stats = case
    layout = make(shape)
    rng = np.random.default_rng(9)
    x = (3 * rng.standard_normal(shape) + 5).astype(dtype)      # a mean far from 0
    gy = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(layout.param).astype(dtype) if affine else None
    b = rng.standard_normal(layout.param).astype(dtype) if affine else None
    stats = None if batch_stats else (rng.standard_normal(3).astype(dtype),
                                      (rng.random(3) + 0.5).astype(dtype))
    launched = []
    twin = N.kernels.twin
    monkeypatch.setattr(N.kernels, 'twin', lambda *a: launched.append(a[0]) or twin(*a))
    fused = N.normalize_arrays(x, w, b, layout, EPS, stats, fused=True)
    assert launched == ['norm']
    plain = N.normalize_arrays(x, w, b, layout, EPS, stats, fused=False)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for f, p in zip(fused, plain):
        assert f.shape == p.shape and f.dtype == dtype
        np.testing.assert_allclose(f, p, **tol)
    _, mean, _, rstd = fused
    for needs in [(True, True, True), (True, False, False), (False, True, True)]:
        got = N.normalize_grad_arrays(x, gy, w, mean, rstd, layout, batch_stats, needs, fused=True)
        want = N.normalize_grad_arrays(x, gy, w, mean, rstd, layout, batch_stats, needs,
                                       fused=False)
        for g, h, need in zip(got, want, (needs[0], needs[1] and affine, needs[2])):
            assert (g is None) == (h is None) == (not need)
            if need:
                assert g.dtype == dtype
                np.testing.assert_allclose(g, h, rtol=1e-4 if dtype == np.float32 else 1e-11,
                                           atol=2e-4 if dtype == np.float32 else 1e-11)


@pytest.mark.parametrize('case', ['batch_train', 'batch_eval', 'layer'])
def test_public_functions_use_the_kernels_from_fused_min_size(case, monkeypatch):
    """Small inputs take the NumPy path (a parallel launch would cost more), large ones the
    kernels, forward and backward; on the kernel path, a float64 gradcheck along random directions
    (the full Jacobian is too large)."""
    C = 4
    rm, rv = tl.tensor(np.zeros(C)), tl.tensor(np.ones(C))
    fn = {'batch_train': lambda x, w, b: batch_norm(x, None, None, w, b, training=True),
          'batch_eval': lambda x, w, b: batch_norm(x, rm, rv, w, b),
          'layer': lambda x, w, b: layer_norm(x, C, w, b)}[case]
    launched = []
    twin = N.kernels.twin
    monkeypatch.setattr(N.kernels, 'twin', lambda *a: launched.append(a[0]) or twin(*a))
    rng = np.random.default_rng(17)
    for rows, expected in [(8, []), (N.FUSED_MIN_SIZE // C, ['norm', 'norm'])]:
        launched.clear()
        inputs = [leaf(rng.standard_normal((rows, C))), leaf(rng.standard_normal(C)),
                  leaf(rng.standard_normal(C))]
        fn(*inputs).sum().backward()
        assert launched == expected
    assert tl.gradcheck(fn, inputs, fast_mode=True)


def test_the_numpy_path_is_taken_without_a_kernel():
    """group_norm and float16 have no fused kernel."""
    layout = N.group_layout((2, 4, 3), 2)
    x = np.random.default_rng(10).standard_normal((2, 4, 3))
    assert not N._fused(layout, x)
    assert not N._fused(N.batch_layout((2, 4, 3)), x.astype(np.float16))
    y = layer_norm(tl.tensor(x.astype(np.float16)), 3)
    assert y.dtype == np.float16
    rows = x.astype(np.float16).astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(y.numpy().reshape(-1, 3), np_standardize(rows)[0], atol=5e-3)


cuda_norm = pytest.importorskip('tensorlite.kernels.cuda.norm')


def _run_batch_kernels(module, x, dy, w, b):
    C, dt = x.shape[1], x.dtype
    mean, var, rstd = (np.empty(C, dt) for _ in range(3))
    module.batch_norm_stats(x, EPS, mean, var, rstd)
    y = np.empty_like(x)
    module.batch_norm_apply(x, mean, w * rstd, b, y)
    sum_dy, sum_dy_xhat, dx = np.empty(C, dt), np.empty(C, dt), np.empty_like(x)
    module.batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat)
    module.batch_norm_input_grad(x, dy, mean, rstd, w, sum_dy, sum_dy_xhat, dx)
    return mean, var, rstd, y, sum_dy, sum_dy_xhat, dx


def _run_layer_kernels(module, x, dy, w, b):
    R, D = x.shape
    y, (mean, var, rstd) = np.empty_like(x), (np.empty(R, x.dtype) for _ in range(3))
    module.layer_norm_fwd(x, w, b, EPS, y, mean, var, rstd)
    dx, dw, db = np.empty_like(x), np.empty(D, x.dtype), np.empty(D, x.dtype)
    module.layer_norm_bwd(x, dy, mean, rstd, w, dx, dw, db)
    return y, mean, var, rstd, dx, dw, db


# S and D above the simulator's 32 threads per block: the strided loops run more than once
TWIN_CASES = [('batch', (2, 3, 37)), ('batch', (3, 1, 1)), ('layer', (3, 45)), ('layer', (1, 2))]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('kind, shape', TWIN_CASES)
def test_cuda_twins_match_cpu_twins(kind, shape, dtype):
    rng = np.random.default_rng(11)
    x = (2 * rng.standard_normal(shape) + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    p = shape[1] if kind == 'batch' else shape[-1]
    w, b = rng.standard_normal(p).astype(dtype), rng.standard_normal(p).astype(dtype)
    run = _run_batch_kernels if kind == 'batch' else _run_layer_kernels
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for c, g in zip(run(cpu_norm, x, dy, w, b), run(cuda_norm, x, dy, w, b)):
        np.testing.assert_allclose(g, c, **tol)


def test_cpu_batch_norm_kernels_match_numpy_formulas():
    """The kernels on their own, against the definitions in their docstrings."""
    rng = np.random.default_rng(12)
    x, dy = 4 * rng.standard_normal((3, 2, 7)) + 100, rng.standard_normal((3, 2, 7))
    w, b = rng.standard_normal(2), rng.standard_normal(2)
    mean, var, rstd, y, sum_dy, sum_dy_xhat, dx = _run_batch_kernels(cpu_norm, x, dy, w, b)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-13)
    np.testing.assert_allclose(var, x.var(axis=(0, 2)), rtol=1e-11)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.var(axis=(0, 2)) + EPS), rtol=1e-11)
    xhat = (x - mean[:, None]) * rstd[:, None]
    np.testing.assert_allclose(y, xhat * (w[:, None]) + b[:, None], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum_dy, dy.sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(sum_dy_xhat, (dy * xhat).sum(axis=(0, 2)), rtol=1e-11)
    rows, back = channels_first(x)
    expected = back(np_input_grad(rows, channels_first(dy * w[:, None])[0]))
    np.testing.assert_allclose(dx, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('module', [cpu_norm, cuda_norm], ids=['cpu', 'cuda'])
def test_kernel_launch_refuses_bad_arrays(module):
    x = np.ones((2, 3, 4))
    out = [np.empty(3) for _ in range(3)]
    with pytest.raises(ValueError, match=r'x .*not C-contiguous'):
        module.batch_norm_stats(np.ones((2, 3, 8))[:, :, ::2], EPS, *out)
    with pytest.raises(ValueError, match=r'mean has shape \(4,\), expected \(3,\)'):
        module.batch_norm_stats(x, EPS, np.empty(4), *out[1:])
    with pytest.raises(TypeError, match=r'var has dtype float32, x has float64'):
        module.batch_norm_stats(x, EPS, out[0], np.empty(3, np.float32), out[2])
    with pytest.raises(TypeError, match=r'int64, expected float32 or float64'):
        module.batch_norm_stats(np.ones((2, 3, 4), np.int64), EPS, *out)
    with pytest.raises(ValueError, match=r'non-empty 3-D array, got shape \(0, 3, 4\)'):
        module.batch_norm_stats(np.ones((0, 3, 4)), EPS, *out)
    with pytest.raises(ValueError, match=r'non-empty 2-D array, got shape \(2, 3, 4\)'):
        module.layer_norm_fwd(x, np.ones(4), np.ones(4), EPS, np.empty_like(x), *out)


# ==================================================================================================
# bad input
# ==================================================================================================

def _t(*shape, dtype=np.float64):
    return tl.tensor(np.random.default_rng(13).standard_normal(shape).astype(dtype))


ERRORS = {
    'bn_1d_input': (lambda: batch_norm(_t(3), _t(3), _t(3)), ValueError,
                    r"batch_norm: expected an input of shape \(N, C, \*\).*got shape \(3,\)"),
    'bn_integer_input': (lambda: batch_norm(tl.tensor(np.ones((2, 3), np.int64)), None, None,
                                            training=True), TypeError, r"int64"),
    'bn_weight_shape': (lambda: batch_norm(_t(2, 3), _t(3), _t(3), weight=_t(4)), ValueError,
                        r"weight has shape \(4,\), expected \(3,\) for an input of shape \(2, 3\)"),
    'bn_bias_shape': (lambda: batch_norm(_t(2, 3, 5), None, None, bias=_t(3, 1), training=True),
                      ValueError, r"bias has shape \(3, 1\), expected \(3,\)"),
    'bn_running_mean_shape': (lambda: batch_norm(_t(2, 3), _t(2), _t(3)), ValueError,
                              r"running_mean has shape \(2,\), expected \(3,\)"),
    'bn_running_var_shape': (lambda: batch_norm(_t(2, 3), _t(3), _t(4), training=True), ValueError,
                             r"running_var has shape \(4,\), expected \(3,\)"),
    'bn_weight_dtype': (lambda: batch_norm(_t(2, 3), _t(3), _t(3), weight=_t(3, dtype=np.float32)),
                        TypeError, r"weight has dtype float32, the input has float64"),
    'bn_weight_not_a_tensor': (lambda: batch_norm(_t(2, 3), _t(3), _t(3), weight=np.ones(3)),
                               TypeError, r"weight must be a Tensor or None, got ndarray"),
    'bn_eval_without_running': (lambda: batch_norm(_t(2, 3), None, None), ValueError,
                                r"running_mean and running_var are needed when training=False"),
    'bn_only_running_mean': (lambda: batch_norm(_t(2, 3), _t(3), None, training=True), ValueError,
                             r"got only running_mean"),
    'bn_one_value_per_channel': (lambda: batch_norm(_t(1, 3, 1), None, None, training=True),
                                 ValueError, r"Expected more than 1 value per channel when "
                                             r"training, got input of shape \(1, 3, 1\)"),
    'bn_one_value_per_channel_2d': (lambda: batch_norm(_t(1, 3), _t(3), _t(3), training=True),
                                    ValueError, r"more than 1 value per channel"),
    'bn_momentum_none_without_count': (
        lambda: batch_norm(_t(2, 3), _t(3), _t(3), training=True, momentum=None), ValueError,
        r"momentum=None .*needs num_batches_tracked"),
    'bn_count_zero': (lambda: batch_norm(_t(2, 3), _t(3), _t(3), training=True, momentum=None,
                                         num_batches_tracked=0), ValueError,
                      r"num_batches_tracked must be a positive integer.*got 0"),
    'bn_eps_zero_training': (lambda: batch_norm(_t(2, 3), None, None, training=True, eps=0.0),
                             ValueError, r"eps must be positive in training, got 0.0"),
    'bn_eps_negative_eval': (lambda: batch_norm(_t(2, 3), _t(3), _t(3), eps=-1.0), ValueError,
                             r"eps must be non-negative, got -1.0"),
    'ln_shape_mismatch': (lambda: layer_norm(_t(2, 3, 5), (4,)), ValueError,
                          r"normalized_shape \(4,\) expects an input of shape \(\*, 4\), got "
                          r"\(2, 3, 5\)"),
    'ln_too_many_dims': (lambda: layer_norm(_t(5), (1, 5)), ValueError,
                         r"expected an input of shape \(\*, 1, 5\) with at least 2 dimensions, "
                         r"got shape \(5,\)"),
    'ln_empty_normalized_shape': (lambda: layer_norm(_t(2, 3), ()), ValueError,
                                  r"at least one dimension, got \(\)"),
    'ln_weight_shape': (lambda: layer_norm(_t(2, 3, 4), (3, 4), weight=_t(4)), ValueError,
                        r"weight has shape \(4,\), expected \(3, 4\)"),
    'gn_not_divisible': (lambda: group_norm(_t(2, 6, 4), 4), ValueError,
                         r"divisible by num_groups, got input of shape \(2, 6, 4\) and "
                         r"num_groups=4"),
    'gn_zero_groups': (lambda: group_norm(_t(2, 6, 4), 0), ValueError,
                       r"num_groups must be a positive integer, got 0"),
    'gn_1d_input': (lambda: group_norm(_t(6), 3), ValueError,
                    r"group_norm: expected an input of shape \(N, C, \*\).*got shape \(6,\)"),
    'gn_weight_shape': (lambda: group_norm(_t(2, 6, 4), 3, weight=_t(3)), ValueError,
                        r"weight has shape \(3,\), expected \(6,\) for an input of shape "
                        r"\(2, 6, 4\)"),
    'gn_one_value': (lambda: group_norm(_t(1, 2, 1), 2), ValueError,
                     r"Expected more than 1 value per channel.*\(1, 2, 1\) with num_groups=2"),
}


@pytest.mark.parametrize('call, error, match', ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ==================================================================================================
# PyTorch as the reference (optional)
# ==================================================================================================

def _torch_pair(torch, arrays, dtype):
    ours = [None if a is None else tl.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    theirs = [None if a is None else torch.tensor(a.astype(dtype), requires_grad=True)
              for a in arrays]
    return ours, theirs


def _compare_with_torch(torch, ours, theirs, y, ty, gy, dtype, second=False):
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol)
    live = [(o, t) for o, t in zip(ours, theirs) if o is not None]
    gs = tl.autograd.grad(y, [o for o, _ in live], [tl.tensor(gy.astype(dtype))],
                          create_graph=second)
    tgs = torch.autograd.grad(ty, [t for _, t in live], torch.tensor(gy.astype(dtype)),
                              create_graph=second)
    for g, tg in zip(gs, tgs):
        np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), **tol)
    if second and not any(g.requires_grad for g in gs):
        # eval without weight: dx = dy rstd depends on no input, so no graph here; PyTorch records
        # one, whose derivative is zero
        tgg = torch.autograd.grad(sum((g * g).sum() for g in tgs), [t for _, t in live],
                                  allow_unused=True)
        assert all(g is None or not g.any() for g in tgg)
    elif second:
        # the bias gradient, sum(dy), depends on no input: its own gradient is None on both sides
        gg = tl.autograd.grad(sum((g * g).sum() for g in gs), [o for o, _ in live],
                              allow_unused=True)
        tgg = torch.autograd.grad(sum((g * g).sum() for g in tgs), [t for _, t in live],
                                  allow_unused=True)
        assert [g is None for g in gg] == [g is None for g in tgg]
        for g, tg in zip(gg, tgg):
            if g is not None:
                np.testing.assert_allclose(g.numpy(), tg.numpy(), rtol=1e-8, atol=1e-9)


# second derivatives are compared in float64 only
ORDERS = [(np.float64, False), (np.float32, False), (np.float64, True)]
ORDER_IDS = ['float64', 'float32', 'float64_second']


@pytest.mark.optional
@pytest.mark.parametrize('dtype, second', ORDERS, ids=ORDER_IDS)
@pytest.mark.parametrize('affine', [True, False], ids=['affine', 'no_affine'])
@pytest.mark.parametrize('training', [True, False], ids=['train', 'eval'])
def test_batch_norm_matches_torch(training, affine, dtype, second):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(14)
    shape = (4, 3, 2, 5)
    rm0, rv0 = rng.standard_normal(3), rng.random(3) + 0.5
    rm, rv = tl.tensor(rm0.astype(dtype)), tl.tensor(rv0.astype(dtype))
    trm, trv = torch.tensor(rm0.astype(dtype)), torch.tensor(rv0.astype(dtype))
    for step in range(3):                               # running statistics over several steps
        a = 2 * rng.standard_normal(shape) + step
        arrays = [a] + ([rng.standard_normal(3), rng.standard_normal(3)] if affine else [None] * 2)
        ours, theirs = _torch_pair(torch, arrays, dtype)
        y = batch_norm(ours[0], rm, rv, ours[1], ours[2], training=training, momentum=0.2)
        ty = torch.nn.functional.batch_norm(theirs[0], trm, trv, theirs[1], theirs[2],
                                            training=training, momentum=0.2)
        _compare_with_torch(torch, ours, theirs, y, ty, rng.standard_normal(shape), dtype, second)
        tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), **tol)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), **tol)


@pytest.mark.optional
def test_cumulative_average_matches_torch_batch_norm_with_momentum_none():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(15)
    layer = torch.nn.BatchNorm2d(3, momentum=None).double()
    rm, rv = tl.zeros(3, dtype=tl.float64), tl.ones(3, dtype=tl.float64)
    for step in range(1, 5):
        a = step * rng.standard_normal((2 + step, 3, 2, 2)) - step
        layer(torch.tensor(a))
        batch_norm(tl.tensor(a), rm, rv, training=True, momentum=None, num_batches_tracked=step)
    np.testing.assert_allclose(rm.numpy(), layer.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), layer.running_var.numpy(), rtol=1e-12)


@pytest.mark.optional
@pytest.mark.parametrize('dtype, second', ORDERS, ids=ORDER_IDS)
@pytest.mark.parametrize('affine', [True, False], ids=['affine', 'no_affine'])
@pytest.mark.parametrize('norm', ['layer', 'group'])
def test_layer_and_group_norm_match_torch(norm, affine, dtype, second):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(16)
    shape = (3, 4, 2, 5)
    pshape = (2, 5) if norm == 'layer' else (4,)
    arrays = [3 * rng.standard_normal(shape) - 2]
    arrays += [rng.standard_normal(pshape), rng.standard_normal(pshape)] if affine else [None] * 2
    ours, theirs = _torch_pair(torch, arrays, dtype)
    if norm == 'layer':
        y = layer_norm(ours[0], pshape, ours[1], ours[2], eps=1e-4)
        ty = torch.nn.functional.layer_norm(theirs[0], pshape, theirs[1], theirs[2], eps=1e-4)
    else:
        y = group_norm(ours[0], 2, ours[1], ours[2], eps=1e-4)
        ty = torch.nn.functional.group_norm(theirs[0], 2, theirs[1], theirs[2], eps=1e-4)
    _compare_with_torch(torch, ours, theirs, y, ty, rng.standard_normal(shape), dtype, second)


@pytest.mark.optional
@pytest.mark.parametrize('norm', ['batch_train', 'batch_eval', 'layer'])
def test_kernel_path_matches_torch_in_float32(norm):
    """Inputs above FUSED_MIN_SIZE, so forward and backward run the fused kernels."""
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(19)
    shape = (16, 8, 16, 16)
    assert math.prod(shape) >= N.FUSED_MIN_SIZE
    p = 16 if norm == 'layer' else 8
    arrays = [3 * rng.standard_normal(shape) + 2, rng.standard_normal(p), rng.standard_normal(p)]
    ours, theirs = _torch_pair(torch, arrays, np.float32)
    rm0, rv0 = rng.standard_normal(8).astype(np.float32), (rng.random(8) + 0.5).astype(np.float32)
    rm, rv, trm, trv = tl.tensor(rm0), tl.tensor(rv0), torch.tensor(rm0), torch.tensor(rv0)
    if norm == 'layer':
        y = layer_norm(ours[0], 16, ours[1], ours[2])
        ty = torch.nn.functional.layer_norm(theirs[0], (16,), theirs[1], theirs[2])
    else:
        training = norm == 'batch_train'
        y = batch_norm(ours[0], rm, rv, ours[1], ours[2], training=training)
        ty = torch.nn.functional.batch_norm(theirs[0], trm, trv, theirs[1], theirs[2],
                                            training=training)
    _compare_with_torch(torch, ours, theirs, y, ty, rng.standard_normal(shape), np.float32)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)

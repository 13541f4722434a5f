"""Pooling and resampling: tensorlite/functional/pool.py and kernels/{cpu,cuda}/pool.py.

- every op against a direct-loop NumPy reference written here (plain loops over output positions,
  each scanning its window), forward and gradient, float64 and float32, on hypothesis-drawn
  kernel sizes, strides, paddings, dilations, ceil_mode and count_include_pad;
- float64 gradcheck (both modes) and gradgradcheck (`helpers.check_grads`), on max-pool inputs
  free of ties (a permutation of distinct values), so that finite differences are valid;
- every CUDA twin against its CPU twin (under NUMBA_ENABLE_CUDASIM=1 when there is no GPU), and
  the launch checks;
- bad input raises an error naming the shapes and values;
- `optional`: the same cases against torch.nn.functional, indices included.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite.functional import pool as P
from tensorlite.kernels import twin
from tensorlite.kernels.cpu import pool as cpu

from helpers import check_grads, leaf

DTYPES = [np.float64, np.float32]


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def distinct_values(shape, seed=0):
    """A permutation of values 0.05 apart: no ties, so every window has one argmax and finite
    differences (eps 1e-6) never cross a switch of argmax."""
    n = math.prod(shape)
    return ((np.random.default_rng(seed).permutation(n) - n / 2) * 0.05).reshape(shape)


def run(fn, x, dtype, gy_seed=1):
    """fn on a leaf holding x in `dtype`; returns (output array(s), input gradient for a random
    output gradient, that output gradient)."""
    t = tl.tensor(np.asarray(x, dtype=dtype), requires_grad=True)
    out = fn(t)
    y = out[0] if isinstance(out, tuple) else out
    gy = np.random.default_rng(gy_seed).standard_normal(y.shape).astype(dtype)
    y.backward(tl.tensor(gy))
    arrays = tuple(o.numpy() for o in out) if isinstance(out, tuple) else y.numpy()
    return arrays, t.grad.numpy(), gy


# ==================================================================================================
# direct-loop references
# ==================================================================================================

def ref_out_size(n, k, s, p, d, ceil_mode):
    """The number of windows: floor (or ceil) of (n + 2p - span) / s, plus one; in ceil mode a last
    window that would start in the right padding is dropped."""
    span = d * (k - 1) + 1
    o = (math.ceil if ceil_mode else math.floor)((n + 2 * p - span) / s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _planes(x, nd):
    return x.reshape((-1,) + x.shape[x.ndim - nd:])


def ref_max(x, gy, windows):
    """Max over windows by direct loops.  windows(o) lists, per axis, the input positions output o
    reads.  Each window is scanned in flat (row-major) order keeping v when v > best or v is NaN,
    PyTorch's rule; an all -inf window keeps its first position; an empty one gives -inf and -1.
    Returns y, flat indices, and the gradient for output gradient gy (each gy to its argmax)."""
    nd = len(windows.out_size)
    size = x.shape[x.ndim - nd:]
    lead = x.shape[:x.ndim - nd]
    xs = _planes(x, nd)
    y = np.empty((len(xs),) + windows.out_size, dtype=x.dtype)
    idx = np.empty(y.shape, dtype=np.int64)
    gx = np.zeros(xs.shape)
    g = gy.reshape(y.shape)
    for b in range(len(xs)):
        for o in itertools.product(*[range(n) for n in windows.out_size]):
            best, arg = -np.inf, -1
            for pos in itertools.product(*windows(o)):
                v = xs[b][pos]
                flat = int(np.ravel_multi_index(pos, size))
                if arg == -1:
                    arg = flat
                if v > best or np.isnan(v):
                    best, arg = v, flat
            y[b][o], idx[b][o] = best, arg
            if arg >= 0:
                gx[b][np.unravel_index(arg, size)] += g[b][o]
    return y.reshape(lead + windows.out_size), idx.reshape(lead + windows.out_size), \
        gx.reshape(x.shape)


def ref_average(x, gy, windows, divisor):
    """Mean over windows by direct loops: y[o] = sum of the window / divisor(o); the gradient sends
    gy[o] / divisor(o) to every position of window o."""
    nd = len(windows.out_size)
    lead = x.shape[:x.ndim - nd]
    xs = _planes(x, nd)
    y = np.zeros((len(xs),) + windows.out_size)
    gx = np.zeros(xs.shape)
    g = gy.reshape(y.shape)
    for b in range(len(xs)):
        for o in itertools.product(*[range(n) for n in windows.out_size]):
            c = divisor(o)
            for pos in itertools.product(*windows(o)):
                y[b][o] += xs[b][pos] / c
                gx[b][pos] += g[b][o] / c
    return y.reshape(lead + windows.out_size), gx.reshape(x.shape)


class PoolWindows:
    """Output o reads, along axis a, positions o_a s_a - p_a + j d_a (j < k_a) that fall inside."""

    def __init__(self, size, k, s, p, d, ceil_mode):
        self.size, self.k, self.s, self.p, self.d = size, k, s, p, d
        self.ceil_mode = ceil_mode
        self.out_size = tuple(ref_out_size(*args, ceil_mode) for args in zip(size, k, s, p, d))

    def __repr__(self):        # what hypothesis prints for a failing case
        return (f"PoolWindows(size={self.size}, k={self.k}, s={self.s}, p={self.p}, d={self.d}, "
                f"ceil_mode={self.ceil_mode})")

    def __call__(self, o):
        return [[oa * sa - pa + j * da for j in range(ka) if 0 <= oa * sa - pa + j * da < n]
                for oa, n, ka, sa, pa, da in zip(o, self.size, self.k, self.s, self.p, self.d)]

    def divisor(self, count_include_pad, divisor_override):
        """PyTorch's divisor: the override; or the window's positions inside the input or its
        padding (a ceil_mode window may run past the padding: those do not count); or only those
        inside the input."""
        def div(o):
            if divisor_override:
                return divisor_override
            if count_include_pad:
                return math.prod(sum(1 for j in range(ka) if -pa <= oa * sa - pa + j < n + pa)
                                 for oa, n, ka, sa, pa in zip(o, self.size, self.k, self.s, self.p))
            return math.prod(len(w) for w in self(o))
        return div


class AdaptiveWindows:
    """Output o of n_out reads [floor(o n / n_out), ceil((o + 1) n / n_out)) along each axis."""

    def __init__(self, size, out_size):
        self.size, self.out_size = size, out_size

    def __repr__(self):
        return f"AdaptiveWindows(size={self.size}, out_size={self.out_size})"

    def __call__(self, o):
        return [list(range(math.floor(oa * n / m), math.ceil((oa + 1) * n / m)))
                for oa, n, m in zip(o, self.size, self.out_size)]

    def divisor(self, o):
        return math.prod(len(w) for w in self(o))


def ref_axis_sources(n_in, n_out, mode, align_corners, scale, dtype, nd):
    """For each output position of one axis, [(input position, weight)] as PyTorch computes it.
    nearest: floor(dst * s), s = 1 / scale_factor if given else n_in / n_out, rounded as PyTorch's
    CPU kernels round it (the float64 floor of the exact product differs in a few places): for 1-D
    and 3-D input s and dst * s in the data's dtype, then float32; for 2-D input s in float32, and
    n_out == n_in, n_out == 2 n_in taken exactly.
    linear: src = dst (n_in - 1) / (n_out - 1) (align_corners) or max((dst + 0.5) s - 0.5, 0), and
    the two neighbours of src weighted by distance (the right one clamped to the last position)."""
    rows = []
    for o in range(n_out):
        if mode == 'nearest':
            if nd == 2 and n_out in (n_in, 2 * n_in):
                rows.append([(o * n_in // n_out, 1.0)])
                continue
            f = np.float32 if nd == 2 else np.dtype(dtype).type
            s = f(1.0 / scale) if scale else f(n_in) / f(n_out)
            rows.append([(min(int(np.floor(np.float32(f(o) * s))), n_in - 1), 1.0)])
            continue
        if n_out == n_in:
            rows.append([(o, 1.0)])
            continue
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            s = 1.0 / scale if scale else n_in / n_out
            src = max((o + 0.5) * s - 0.5, 0.0)
        i0 = min(math.floor(src), n_in - 1)
        lam = min(max(src - i0, 0.0), 1.0)
        rows.append([(i0, 1 - lam), (min(i0 + 1, n_in - 1), lam)])
    return rows


def ref_interpolate(x, gy, out_size, mode, align_corners, scales):
    """Every output position as the weighted sum over all corners (2^nd for linear modes) at once,
    not axis by axis as the implementation does."""
    nd = x.ndim - 2
    tables = [ref_axis_sources(n, m, mode, align_corners, s, x.dtype, nd)
              for n, m, s in zip(x.shape[2:], out_size, scales)]
    y = np.zeros(x.shape[:2] + tuple(out_size))
    gx = np.zeros(x.shape)
    for nc in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for o in itertools.product(*[range(m) for m in out_size]):
            for corner in itertools.product(*[tables[a][o[a]] for a in range(nd)]):
                pos = nc + tuple(i for i, _ in corner)
                w = math.prod(wt for _, wt in corner)
                y[nc + o] += w * x[pos]
                gx[pos] += w * gy[nc + o]
    return y, gx


# ==================================================================================================
# hypothesis: pool arguments
# ==================================================================================================

LEADS = [(1,), (2,), (1, 1), (2, 1), (1, 2)]          # unbatched (C,) and batched (N, C)


def _arg(data, values, label, nd):
    """An int when all axes agree and the draw says so, else the tuple (PyTorch takes both)."""
    if len(set(values)) == 1 and data.draw(st.booleans(), label=f'{label} as int'):
        return values[0]
    return tuple(values) if nd > 1 or data.draw(st.booleans(), label=f'{label} as tuple') \
        else values[0]


@st.composite
def pool_cases(draw, average=False):
    """(nd, input shape, kwargs for the call, PoolWindows, divisor kwargs) with output sizes >= 1."""
    nd = draw(st.integers(1, 3), label='nd')
    k = tuple(draw(st.integers(1, 3), label='kernel') for _ in range(nd))
    s = tuple(draw(st.integers(1, 3), label='stride') for _ in range(nd))
    p = tuple(draw(st.integers(0, ka // 2), label='padding') for ka in k)
    d = (1,) * nd if average else tuple(draw(st.integers(1, 2), label='dilation')
                                        for _ in range(nd))
    ceil_mode = draw(st.booleans(), label='ceil_mode')
    extra = {1: 4, 2: 3, 3: 1}[nd]                       # keep 3-D inputs tiny
    # the smallest input with one window; PyTorch's avg_pool3d also wants a whole kernel unpadded
    low = [max(1, da * (ka - 1) + 1 - 2 * pa, ka if average and nd == 3 else 1)
           for ka, pa, da in zip(k, p, d)]
    size = tuple(draw(st.integers(lo, lo + extra), label='size') for lo in low)
    lead = draw(st.sampled_from(LEADS[:3] if nd == 3 else LEADS), label='lead dims')
    data = draw(st.data())
    kw = dict(kernel_size=_arg(data, k, 'kernel', nd), padding=_arg(data, p, 'padding', nd),
              ceil_mode=ceil_mode)
    kw['stride'] = None if s == k and draw(st.booleans(), label='stride None') \
        else _arg(data, s, 'stride', nd)
    div = {}
    if average:
        kw['count_include_pad'] = div['count_include_pad'] = draw(st.booleans(), label='cip')
        override = draw(st.sampled_from([None, None, 3]), label='divisor_override') \
            if nd > 1 else None
        if override is not None:
            kw['divisor_override'] = override
        div['divisor_override'] = override
    else:
        kw['dilation'] = _arg(data, d, 'dilation', nd)
    return nd, lead + size, kw, PoolWindows(size, k, s, p, d, ceil_mode), div


def max_pool_fn(nd):
    return {1: P.max_pool1d, 2: P.max_pool2d, 3: P.max_pool3d}[nd]


def avg_pool_fn(nd):
    return {1: P.avg_pool1d, 2: P.avg_pool2d, 3: P.avg_pool3d}[nd]


def has_empty_window(win):
    return any(not all(w) for w in (win(o) for o in itertools.product(
        *[range(n) for n in win.out_size])))


# ==================================================================================================
# max pool
# ==================================================================================================

@pytest.mark.parametrize('dtype', DTYPES)
@given(case=pool_cases(), data=st.data())
def test_max_pool_matches_loop_reference(dtype, case, data):
    """Values with ties, NaN and -inf included: the argmax must be PyTorch's (first maximum in flat
    order, last NaN), and the gradient goes to it."""
    nd, shape, kw, win, _ = case
    rng = np.random.default_rng(len(shape) + sum(shape))
    x = rng.integers(-3, 4, size=shape).astype(np.float64)        # small integers: many ties
    if data.draw(st.booleans(), label='specials'):       # windows with several NaN and -inf
        flat = x.reshape(-1)
        flat[rng.permutation(flat.size)[:4]] = [np.nan, -np.inf, np.nan, -np.inf][:min(4, flat.size)]
    (y, idx), gx, gy = run(lambda t: max_pool_fn(nd)(t, return_indices=True, **kw), x, dtype)
    ry, ridx, rgx = ref_max(x.astype(dtype), gy, win)
    assert y.shape == ry.shape and y.dtype == dtype
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(gx, rgx, **tol(dtype))


@given(case=pool_cases())
def test_max_pool_gradients(case):
    nd, shape, kw, win, _ = case
    assume(not has_empty_window(win))        # -inf outputs have no finite differences
    x = leaf(distinct_values(shape))
    check_grads(lambda t: max_pool_fn(nd)(t, **kw), [x])


def test_max_pool_takes_the_last_nan_and_the_first_of_equal_maxima_in_flat_order():
    """PyTorch scans a window in flat order and takes v when v > best or v is NaN."""
    nan = np.nan
    x = tl.tensor(np.array([[[1.0, nan, 3.0], [nan, 2.0, 0.0]],
                            [[5.0, 1.0, 5.0], [5.0, 2.0, 0.0]],
                            [[-np.inf, -np.inf, -np.inf], [-np.inf, -np.inf, -np.inf]]]))
    y, idx = P.max_pool2d(x, (2, 3), return_indices=True)
    np.testing.assert_array_equal(y.numpy().reshape(-1), [nan, 5.0, -np.inf])
    assert idx.numpy().reshape(-1).tolist() == [3, 0, 0]


def test_max_pool_window_that_dilation_skips_over_gives_minus_inf_and_no_gradient():
    """k=2, dilation 3, padding 1 on L=2: the only window reads positions -1 and 2, both outside.
    PyTorch gives -inf with an index past the plane; here the index is -1 and nothing flows back."""
    x = tl.tensor(np.array([[[1.0, 2.0]]]), requires_grad=True)
    y, idx = P.max_pool1d(x, 2, 1, 1, dilation=3, return_indices=True)
    assert y.numpy().tolist() == [[[-np.inf]]] and idx.numpy().tolist() == [[[-1]]]
    y.backward(tl.tensor(np.array([[[5.0]]])))
    assert x.grad.numpy().tolist() == [[[0.0, 0.0]]]


def test_max_pool_ceil_mode_drops_a_window_starting_in_the_right_padding():
    x = tl.tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    # floor: (5 + 2 - 2) // 2 + 1 = 3; ceil would give 4, but window 3 starts at 3 * 2 - 1 = 5,
    # in the right padding, so it is dropped
    assert P.max_pool2d(x, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    # 4 + 2 windows of 3 with stride 3 on 7: ceil gives a third window starting at 6, inside
    y, idx = P.max_pool2d(tl.tensor(np.arange(49.0).reshape(7, 7)[None]), 3, 3, ceil_mode=True,
                          return_indices=True)
    assert y.shape == (1, 3, 3)
    assert idx.numpy()[0].tolist() == [[16, 19, 20], [37, 40, 41], [44, 47, 48]]


def test_max_pool_indices_are_a_copy_and_second_backward_gathers_at_them():
    rng = np.random.default_rng(3)
    x = leaf(distinct_values((2, 1, 5, 5)))
    y, idx = P.max_pool2d(x, 3, 2, 1, return_indices=True)
    before = idx.numpy().reshape(2, -1).copy()
    idx.data[...] = 0                           # the user's indices, not backward's
    v = leaf(rng.standard_normal(y.shape))
    (g,) = tl.autograd.grad(y, x, v, create_graph=True)
    scattered = np.zeros((2, 25))
    for b in range(2):
        np.add.at(scattered[b], before[b], v.numpy().reshape(2, -1)[b])
    np.testing.assert_array_equal(g.numpy().reshape(2, -1), scattered)
    # <g, w> = sum over outputs of v[o] w[argmax o]: its gradient in v is w gathered at the argmaxes
    w = tl.tensor(rng.standard_normal(x.shape))
    (gv,) = tl.autograd.grad((g * w).sum(), v)
    gathered = np.take_along_axis(w.numpy().reshape(2, -1), before, axis=1)
    np.testing.assert_array_equal(gv.numpy().reshape(2, -1), gathered)


# ==================================================================================================
# average pool
# ==================================================================================================

@pytest.mark.parametrize('dtype', DTYPES)
@given(case=pool_cases(average=True))
def test_avg_pool_matches_loop_reference(dtype, case):
    nd, shape, kw, win, div = case
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    y, gx, gy = run(lambda t: avg_pool_fn(nd)(t, **kw), x, dtype)
    ry, rgx = ref_average(x.astype(dtype), gy, win, win.divisor(**div))
    assert y.shape == ry.shape and y.dtype == dtype
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(gx, rgx, **tol(dtype))


@given(case=pool_cases(average=True))
def test_avg_pool_gradients(case):
    nd, shape, kw, _, _ = case
    x = leaf(np.random.default_rng(sum(shape)).standard_normal(shape))
    check_grads(lambda t: avg_pool_fn(nd)(t, **kw), [x])


def test_avg_pool_ceil_mode_window_past_the_padding_counts_only_up_to_the_padding():
    """6 wide, kernel 3, stride 2, padding 1, ceil_mode: the last window covers positions 5, 6, 7;
    6 is padding (counted), 7 lies past it (not counted): divisor 2 along that axis."""
    y = P.avg_pool2d(tl.tensor(np.ones((1, 1, 6, 6))), 3, 2, 1, ceil_mode=True)
    inner, edge = [4 / 6, 1.0, 1.0, 1 / 2], [2 / 6, 1 / 2, 1 / 2, 1 / 4]
    row0 = [4 / 9, 6 / 9, 6 / 9, 2 / 6]
    expected = np.array([row0, inner, inner, edge])
    np.testing.assert_allclose(y.numpy()[0, 0], expected, rtol=1e-12)
    y = P.avg_pool2d(tl.tensor(np.ones((1, 6, 6))), 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y.numpy(), 1.0, rtol=1e-12)
    y = P.avg_pool2d(tl.tensor(np.ones((1, 6, 6))), 3, 2, 1, ceil_mode=True, divisor_override=2)
    np.testing.assert_allclose(y.numpy()[0, 0], [2, 3, 3, 1], rtol=1e-12)


# ==================================================================================================
# adaptive pools
# ==================================================================================================

@st.composite
def adaptive_cases(draw):
    nd = draw(st.integers(1, 3), label='nd')
    side = {1: 7, 2: 5, 3: 3}[nd]
    size = tuple(draw(st.integers(1, side), label='size') for _ in range(nd))
    out = tuple(draw(st.integers(1, side), label='out') for _ in range(nd))
    keep = tuple(nd > 1 and draw(st.booleans(), label='None') for _ in range(nd))
    arg = tuple(None if kp else o for o, kp in zip(out, keep))
    out = tuple(n if kp else o for n, o, kp in zip(size, out, keep))
    if nd == 1 or (len(set(arg)) == 1 and arg[0] is not None and draw(st.booleans(), label='int')):
        arg = arg[0]
    lead = draw(st.sampled_from(LEADS[:3] if nd == 3 else LEADS), label='lead dims')
    return nd, lead + size, arg, AdaptiveWindows(size, out)


ADAPTIVE_AVG = {1: P.adaptive_avg_pool1d, 2: P.adaptive_avg_pool2d, 3: P.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: P.adaptive_max_pool1d, 2: P.adaptive_max_pool2d, 3: P.adaptive_max_pool3d}


@pytest.mark.parametrize('dtype', DTYPES)
@given(case=adaptive_cases())
def test_adaptive_pools_match_loop_reference(dtype, case):
    nd, shape, arg, win = case
    x = np.random.default_rng(sum(shape)).integers(-3, 4, size=shape).astype(np.float64)
    y, gx, gy = run(lambda t: ADAPTIVE_AVG[nd](t, arg), x, dtype)
    ry, rgx = ref_average(x.astype(dtype), gy, win, win.divisor)
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(gx, rgx, **tol(dtype))
    (y, idx), gx, gy = run(lambda t: ADAPTIVE_MAX[nd](t, arg, return_indices=True), x, dtype)
    ry, ridx, rgx = ref_max(x.astype(dtype), gy, win)
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(gx, rgx, **tol(dtype))


@given(case=adaptive_cases())
def test_adaptive_pool_gradients(case):
    nd, shape, arg, _ = case
    x = leaf(distinct_values(shape))
    check_grads(lambda t: ADAPTIVE_AVG[nd](t, arg), [x])
    check_grads(lambda t: ADAPTIVE_MAX[nd](t, arg), [x])


def test_adaptive_avg_pool3d_to_one_is_the_global_mean():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5, 6))
    y = P.adaptive_avg_pool3d(tl.tensor(x), 1)
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(2, 3, 4), keepdims=True), rtol=1e-12)


# ==================================================================================================
# interpolate
# ==================================================================================================

MODES = {1: 'linear', 2: 'bilinear', 3: 'trilinear'}
SCALES = [0.5, 0.75, 1.0, 1.1, 1.5, 1.7, 2.0, 2.1, 3.0]    # 1.1, 2.1: n_out = n_in, 2 n_in


@st.composite
def interp_cases(draw):
    nd = draw(st.integers(1, 3), label='nd')
    side = {1: 6, 2: 4, 3: 3}[nd]
    size = tuple(draw(st.integers(1, side), label='size') for _ in range(nd))
    mode = draw(st.sampled_from(['nearest', MODES[nd]]), label='mode')
    align = None if mode == 'nearest' else draw(st.sampled_from([None, False, True]), label='ac')
    kw = dict(mode=mode, align_corners=align)
    if draw(st.booleans(), label='by size'):
        out = tuple(draw(st.integers(1, side + 2), label='out') for _ in range(nd))
        kw['size'] = out if nd > 1 or draw(st.booleans(), label='tuple') else out[0]
        scales = (None,) * nd
    else:
        sc = tuple(draw(st.sampled_from(SCALES), label='scale') for _ in range(nd))
        out = tuple(math.floor(n * s) for n, s in zip(size, sc))
        assume(min(out) >= 1)
        kw['scale_factor'] = sc[0] if len(set(sc)) == 1 else sc
        recompute = draw(st.sampled_from([None, True]), label='recompute_scale_factor')
        kw['recompute_scale_factor'] = recompute
        scales = (None,) * nd if recompute else sc
    lead = draw(st.sampled_from([(1, 1), (2, 1), (1, 2)]), label='N, C')
    return lead + size, kw, out, scales


@pytest.mark.parametrize('dtype', DTYPES)
@given(case=interp_cases())
def test_interpolate_matches_loop_reference(dtype, case):
    shape, kw, out, scales = case
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    y, gx, gy = run(lambda t: P.interpolate(t, **kw), x, dtype)
    ry, rgx = ref_interpolate(x.astype(dtype), gy, out, kw['mode'], bool(kw['align_corners']),
                              scales)
    assert y.shape == ry.shape and y.dtype == dtype
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(gx, rgx, **tol(dtype))


@given(case=interp_cases())
def test_interpolate_gradients(case):
    shape, kw, _, _ = case
    x = leaf(np.random.default_rng(sum(shape)).standard_normal(shape))
    check_grads(lambda t: P.interpolate(t, **kw), [x])


def test_interpolate_along_time_only_touches_time():
    """SlowFast's fast -> slow pathway: resample T, keep H and W; every frame is a blend of two
    frames of the input."""
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 4, 5))
    y = P.interpolate(tl.tensor(x), size=(2, 4, 5), mode='trilinear')
    # T 8 -> 2: src = (t + 0.5) * 4 - 0.5 = 1.5 and 5.5
    np.testing.assert_allclose(y.numpy()[:, :, 0], (x[:, :, 1] + x[:, :, 2]) / 2, rtol=1e-12)
    np.testing.assert_allclose(y.numpy()[:, :, 1], (x[:, :, 5] + x[:, :, 6]) / 2, rtol=1e-12)
    y = P.interpolate(tl.tensor(x), scale_factor=(0.25, 1, 1), mode='nearest')
    np.testing.assert_array_equal(y.numpy(), x[:, :, ::4])


def test_interpolate_to_the_same_size_is_a_copy():
    x = tl.tensor(np.arange(6.0).reshape(1, 1, 6), requires_grad=True)
    y = P.interpolate(x, size=6, mode='linear')
    assert y is not x
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    y.backward(tl.tensor(np.full((1, 1, 6), 2.0)))
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 6), 2.0))


# ==================================================================================================
# shapes: unbatched, empty batch, strided input
# ==================================================================================================

CALLS = {
    'max_pool1d': lambda t: P.max_pool1d(t, 2, 1, 1),
    'max_pool2d': lambda t: P.max_pool2d(t, (2, 3), (1, 2), (1, 0), dilation=(2, 1)),
    'max_pool3d': lambda t: P.max_pool3d(t, 2, ceil_mode=True),
    'avg_pool1d': lambda t: P.avg_pool1d(t, 3, 2, 1, count_include_pad=False),
    'avg_pool2d': lambda t: P.avg_pool2d(t, 2, 1, 1, divisor_override=3),
    'avg_pool3d': lambda t: P.avg_pool3d(t, (1, 2, 2), ceil_mode=True),
    'adaptive_avg_pool2d': lambda t: P.adaptive_avg_pool2d(t, (None, 2)),
    'adaptive_max_pool3d': lambda t: P.adaptive_max_pool3d(t, (2, 1, 2)),
}
SPATIAL = {'1d': (5,), '2d': (4, 5), '3d': (3, 4, 5)}


@pytest.mark.parametrize('name', CALLS)
def test_unbatched_input_is_one_sample_of_a_batch(name):
    x = np.random.default_rng(6).standard_normal((2, 3) + SPATIAL[name[-2:]])
    batched = CALLS[name](tl.tensor(x)).numpy()
    np.testing.assert_allclose(CALLS[name](tl.tensor(x[1])).numpy(), batched[1], rtol=1e-12)


@pytest.mark.parametrize('name', CALLS)
def test_empty_batch_gives_an_empty_output_and_gradient(name):
    x = tl.tensor(np.zeros((0, 2) + SPATIAL[name[-2:]]), requires_grad=True)
    y = CALLS[name](x)
    full = CALLS[name](tl.tensor(np.zeros((1, 2) + SPATIAL[name[-2:]])))
    assert y.shape == (0,) + full.shape[1:]
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize('name', CALLS)
def test_strided_input_gives_what_its_copy_gives(name):
    base = np.random.default_rng(7).standard_normal((3, 2) + SPATIAL[name[-2:]])
    strided = tl.tensor(base).transpose(0, 1)                # (2, 3, ...), not contiguous
    copy = tl.tensor(np.ascontiguousarray(base.swapaxes(0, 1)))
    np.testing.assert_array_equal(CALLS[name](strided).numpy(), CALLS[name](copy).numpy())


# ==================================================================================================
# bad input
# ==================================================================================================

def _t(*shape, dtype=np.float64):
    return tl.tensor(np.ones(shape, dtype=dtype))


ERRORS = {
    'max_pool2d_ndim': (lambda: P.max_pool2d(_t(4, 4), 2), ValueError,
                        r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D .* got shape \(4, 4\)"),
    'avg_pool3d_ndim': (lambda: P.avg_pool3d(_t(1, 1, 1, 2, 2, 2), 2), ValueError,
                        r"avg_pool3d: .*got shape \(1, 1, 1, 2, 2, 2\)"),
    'kernel_larger_than_padded_input': (
        lambda: P.max_pool2d(_t(1, 1, 2, 5), 3, padding=(0, 1)), ValueError,
        r"input of shape \(1, 1, 2, 5\) with kernel_size \(3, 3\).*output size \(0, 2\)"
        r".*spans \(3, 3\).*padded input is only \(2, 7\)"),
    'dilated_kernel_larger': (lambda: P.max_pool1d(_t(1, 4), 3, dilation=2), ValueError,
                              r"dilation \(2,\).*output size \(0,\)"),
    'padding_over_half_kernel': (lambda: P.avg_pool2d(_t(1, 1, 5, 5), 3, padding=(1, 2)),
                                 ValueError, r"padding \(1, 2\) must be at most half of "
                                             r"kernel_size \(3, 3\)"),
    'avg_pool3d_input_smaller_than_kernel': (
        lambda: P.avg_pool3d(_t(1, 1, 3, 3), 2, padding=1), ValueError,
        r"\(1, 1, 3, 3\) is smaller than kernel_size \(2, 2, 2\) in \(D, H, W\) \(1, 3, 3\)"),
    'stride_zero': (lambda: P.max_pool1d(_t(1, 5), 2, 0), ValueError, r"stride must be >= 1.*\(0,\)"),
    'kernel_tuple_length': (lambda: P.max_pool3d(_t(1, 4, 4, 4), (2, 2)), ValueError,
                            r"kernel_size must be an int or a tuple of 3 ints, got \(2, 2\)"),
    'divisor_override_zero': (lambda: P.avg_pool2d(_t(1, 4, 4), 2, divisor_override=0), ValueError,
                              r"divisor_override must be a non-zero int, got 0"),
    'integer_input': (lambda: P.max_pool1d(tl.tensor(np.ones((1, 4), np.int64)), 2), TypeError,
                      r"float32 or float64.*int64"),
    'empty_channel': (lambda: P.max_pool2d(_t(2, 0, 4, 4), 2), ValueError,
                      r"\(2, 0, 4, 4\) has an empty channel or spatial dim"),
    'adaptive_output_zero': (lambda: P.adaptive_avg_pool2d(_t(1, 4, 4), (0, 2)), ValueError,
                             r"output_size \(0, 2\) for input of shape \(1, 4, 4\)"),
    'adaptive_output_negative': (lambda: P.adaptive_max_pool3d(_t(1, 4, 4, 4), -1), ValueError,
                                 r"output_size \(-1, -1, -1\)"),
    'adaptive_output_length': (lambda: P.adaptive_avg_pool3d(_t(1, 4, 4, 4), (2, 2)), ValueError,
                               r"tuple of 3 ints, got \(2, 2\)"),
    'interpolate_ndim': (lambda: P.interpolate(_t(3, 4), size=2), ValueError,
                         r"3-D \(N, C, L\).*got shape \(3, 4\)"),
    'interpolate_mode_ndim': (lambda: P.interpolate(_t(1, 3, 4), size=2, mode='bilinear'),
                              ValueError, r"'bilinear' needs a 4-D .*got shape \(1, 3, 4\)"),
    'interpolate_size_and_scale': (lambda: P.interpolate(_t(1, 1, 4), size=2, scale_factor=2),
                                   ValueError, r"size or scale_factor, not both"),
    'interpolate_neither': (lambda: P.interpolate(_t(1, 1, 4)), ValueError,
                            r"either size or scale_factor"),
    'interpolate_output_zero': (lambda: P.interpolate(_t(1, 1, 4), scale_factor=0.2), ValueError,
                                r"\(1, 1, 4\) gives output size \(0,\)"),
    'interpolate_size_zero': (lambda: P.interpolate(_t(1, 1, 4, 4), size=(2, 0)), ValueError,
                              r"output size \(2, 0\)"),
    'interpolate_size_length': (lambda: P.interpolate(_t(1, 1, 4, 4), size=(2, 2, 2)), ValueError,
                                r"size \(2, 2, 2\) has 3 entries.*2 spatial dims"),
    'interpolate_align_corners_nearest': (
        lambda: P.interpolate(_t(1, 1, 4), size=2, align_corners=True), ValueError,
        r"align_corners.*not 'nearest'"),
    'interpolate_unknown_mode': (lambda: P.interpolate(_t(1, 1, 4), size=2, mode='cubic'),
                                 ValueError, r"unknown mode 'cubic'"),
    'interpolate_mode_not_built': (lambda: P.interpolate(_t(1, 1, 4, 4), size=2, mode='bicubic'),
                                   NotImplementedError, r"'bicubic' is not implemented"),
    'interpolate_negative_scale': (lambda: P.interpolate(_t(1, 1, 4), scale_factor=-2.0),
                                   ValueError, r"positive and finite, got -2.0"),
}


@pytest.mark.parametrize('call, error, match', ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ==================================================================================================
# kernels: CUDA twins against CPU twins, launch checks
# ==================================================================================================

@pytest.fixture(scope='module')
def cuda_pool():
    return pytest.importorskip('tensorlite.kernels.cuda.pool')


def _pool_geometry(shape3, **kw):
    return P.pool_geometry('test', np.empty(shape3), 3, **kw)


KERNEL_CASES = {   # (B, D, H, W) planes and pool arguments; 'big' has more than one block of outputs
    'k3s2p1': ((2, 3, 5, 6), dict(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)),
    'dilated': ((1, 4, 5, 5), dict(kernel_size=(1, 2, 2), stride=1, padding=(0, 1, 1),
                                   dilation=(1, 2, 3), ceil_mode=False)),
    'overlap': ((3, 2, 4, 4), dict(kernel_size=(2, 3, 3), stride=1, padding=1, dilation=1,
                                   ceil_mode=False)),
    'big': ((3, 1, 10, 12), dict(kernel_size=(1, 2, 2), stride=1, padding=0, dilation=1,
                                 ceil_mode=False)),
}


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', KERNEL_CASES)
def test_cuda_twin_max_pool_matches_cpu_twin(cuda_pool, case, dtype):
    shape, kw = KERNEL_CASES[case]
    g = _pool_geometry(shape, **kw)
    rng = np.random.default_rng(8)
    x = rng.integers(-2, 3, size=shape).astype(dtype)          # ties: same tie rule on both
    x.reshape(-1)[[1, 7]] = [np.nan, -np.inf]
    out = (shape[0],) + g.out3
    y = {m: np.empty(out, dtype) for m in 'ab'}
    idx = {m: np.empty(out, np.int64) for m in 'ab'}
    cpu.max_pool_fwd(x, g.windows, g.dilation, y['a'], idx['a'])
    cuda_pool.max_pool_fwd(x, g.windows, g.dilation, y['b'], idx['b'])
    np.testing.assert_array_equal(idx['b'], idx['a'])
    np.testing.assert_array_equal(y['b'], y['a'])
    gy = rng.standard_normal((shape[0], math.prod(out[1:]))).astype(dtype)
    gx = {m: np.full((shape[0], math.prod(shape[1:])), np.nan, dtype) for m in 'ab'}
    cpu.max_pool_bwd(gy, idx['a'].reshape(gy.shape), gx['a'])
    cuda_pool.max_pool_bwd(gy, idx['a'].reshape(gy.shape), gx['b'])
    np.testing.assert_allclose(gx['b'], gx['a'], **tol(dtype))     # atomics: any order


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', list(KERNEL_CASES) + ['adaptive'])
def test_cuda_twin_avg_pool_matches_cpu_twin(cuda_pool, case, dtype):
    if case == 'adaptive':
        shape = (2, 3, 5, 7)
        g = P.adaptive_geometry('test', np.empty(shape), 3, (2, 3, 4), average=True)
    else:
        shape, kw = KERNEL_CASES[case]
        kw = dict(kw, dilation=1, count_include_pad=case != 'overlap')
        g = _pool_geometry(shape, average=True, **kw)
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(dtype)
    div = g.divisors_as(np.dtype(dtype))
    y = {m: np.empty((shape[0],) + g.out3, dtype) for m in 'ab'}
    cpu.avg_pool_fwd(x, g.windows, div, y['a'])
    cuda_pool.avg_pool_fwd(x, g.windows, div, y['b'])
    np.testing.assert_allclose(y['b'], y['a'], **tol(dtype))
    gy = rng.standard_normal(y['a'].shape).astype(dtype)
    gx = {m: np.full(shape, np.nan, dtype) for m in 'ab'}
    cpu.avg_pool_bwd(gy, g.windows, div, gx['a'])
    cuda_pool.avg_pool_bwd(gy, g.windows, div, gx['b'])
    np.testing.assert_allclose(gx['b'], gx['a'], **tol(dtype))


RESAMPLE_CASES = {
    'nearest_down': lambda dt: P.nearest_table(7, 3, dtype=dt),
    'nearest_up_scale': lambda dt: P.nearest_table(3, 5, 1.7, dtype=dt),
    'linear_up': lambda dt: P.linear_table(4, 9, False, dtype=dt),
    'linear_down_corners': lambda dt: P.linear_table(9, 4, True, dtype=dt),
}


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', RESAMPLE_CASES)
@pytest.mark.parametrize('pq', [(2, 3), (3, 1)], ids=['P2Q3', 'P3Q1'])
def test_cuda_twin_resample_matches_cpu_twin(cuda_pool, case, pq, dtype):
    table = RESAMPLE_CASES[case](np.dtype(dtype))
    w = table.weight_as(np.dtype(dtype))
    rng = np.random.default_rng(10)
    x = rng.standard_normal((pq[0], table.n_in, pq[1])).astype(dtype)
    y = {m: np.empty((pq[0], table.n_out, pq[1]), dtype) for m in 'ab'}
    cpu.resample_fwd(x, table.index, w, y['a'])
    cuda_pool.resample_fwd(x, table.index, w, y['b'])
    np.testing.assert_allclose(y['b'], y['a'], **tol(dtype))
    gy = rng.standard_normal(y['a'].shape).astype(dtype)
    gx = {m: np.full(x.shape, np.nan, dtype) for m in 'ab'}
    cpu.resample_bwd(gy, table.index, w, gx['a'])
    cuda_pool.resample_bwd(gy, table.index, w, gx['b'])
    np.testing.assert_allclose(gx['b'], gx['a'], **tol(dtype))
    # the backward kernel is the adjoint of the forward one: <A x, gy> = <x, A^T gy>
    np.testing.assert_allclose((y['a'] * gy).sum(), (x * gx['a']).sum(), **tol(dtype))


def test_cpu_avg_pool_bwd_is_the_adjoint_of_avg_pool_fwd():
    g = _pool_geometry((2, 3, 5, 6), kernel_size=(2, 3, 2), stride=(1, 2, 2), padding=1,
                       dilation=1, ceil_mode=True, average=True, count_include_pad=False)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 5, 6))
    y = np.empty((2,) + g.out3)
    cpu.avg_pool_fwd(x, g.windows, g.divisors_as(np.dtype(np.float64)), y)
    gy = rng.standard_normal(y.shape)
    gx = np.empty_like(x)
    cpu.avg_pool_bwd(gy, g.windows, g.divisors_as(np.dtype(np.float64)), gx)
    np.testing.assert_allclose((y * gy).sum(), (x * gx).sum(), rtol=1e-12)


@pytest.fixture(params=['cpu', 'cuda'])
def module(request):
    return cpu if request.param == 'cpu' else pytest.importorskip('tensorlite.kernels.cuda.pool')


def test_launch_refuses_strided_mistyped_and_misshaped_arrays(module):
    g = _pool_geometry((2, 3, 4, 4), kernel_size=2, stride=2, padding=0, dilation=1,
                       ceil_mode=False)
    x = np.ones((2, 3, 4, 8))[..., ::2]
    y, idx = np.empty((2, 1, 2, 2)), np.empty((2, 1, 2, 2), np.int64)
    with pytest.raises(ValueError, match=r"max_pool_fwd: x \(shape \(2, 3, 4, 4\)\) is not C-contiguous"):
        module.max_pool_fwd(x, g.windows, g.dilation, y, idx)
    x = np.ascontiguousarray(x)
    with pytest.raises(TypeError, match=r"y has dtype float32, expected float64"):
        module.max_pool_fwd(x, g.windows, g.dilation, y.astype(np.float32), idx)
    with pytest.raises(TypeError, match=r"indices has dtype int32, expected int64"):
        module.max_pool_fwd(x, g.windows, g.dilation, y, idx.astype(np.int32))
    with pytest.raises(ValueError, match=r"y has shape \(2, 1, 2, 3\), expected \(2, 1, 2, 2\)"):
        module.max_pool_fwd(x, g.windows, g.dilation, np.empty((2, 1, 2, 3)), idx)
    with pytest.raises(TypeError, match=r"x has dtype int64"):
        module.max_pool_fwd(x.astype(np.int64), g.windows, g.dilation, y, idx)
    bad = (g.windows[0], g.windows[1], g.windows[2] + 3)
    with pytest.raises(ValueError, match=r"windows\[2\] holds positions in \[3, 7\], outside "
                                         r"the input's \[0, 4\]"):
        module.max_pool_fwd(x, bad, g.dilation, y, idx)
    with pytest.raises(ValueError, match=r"dilation\[1\] is 0"):
        module.max_pool_fwd(x, g.windows, (1, 0, 1), y, idx)
    with pytest.raises(ValueError, match=r"indices has shape \(2, 3\), expected \(2, 4\)"):
        module.max_pool_bwd(np.ones((2, 4)), np.zeros((2, 3), np.int64), np.empty((2, 16)))
    ga = _pool_geometry((2, 3, 4, 4), kernel_size=2, stride=2, padding=0, dilation=1,
                        ceil_mode=False, average=True)
    with pytest.raises(TypeError, match=r"divisors\[0\] has dtype float64, expected float32"):
        module.avg_pool_fwd(x.astype(np.float32), ga.windows, ga.divisors_as(np.dtype(np.float64)),
                            y.astype(np.float32))
    with pytest.raises(ValueError, match=r"gx \(shape .*\) is not C-contiguous"):
        module.avg_pool_bwd(y, ga.windows, ga.divisors_as(np.dtype(np.float64)),
                            np.empty((2, 3, 4, 8))[..., ::2])
    table = P.linear_table(4, 6, False)
    with pytest.raises(ValueError, match=r"index has shape \(6, 2\), expected \(5, 2\)"):
        module.resample_fwd(np.ones((2, 4, 3)), table.index, table.weight, np.empty((2, 5, 3)))
    with pytest.raises(ValueError, match=r"gx has shape \(2, 4, 3\) and gy \(2, 6, 2\)"):
        module.resample_bwd(np.ones((2, 6, 2)), table.index, table.weight, np.empty((2, 4, 3)))


def test_dispatch_picks_the_cpu_twin_for_numpy_arrays():
    assert twin('pool', np.ones(2)) is cpu


# ==================================================================================================
# PyTorch as the reference (optional)
# ==================================================================================================

def _torch_run(fn, x, gy):
    torch = pytest.importorskip('torch')
    t = torch.tensor(x, requires_grad=True)
    out = fn(t)
    y = out[0] if isinstance(out, tuple) else out
    y.backward(torch.tensor(gy))
    arrays = tuple(o.detach().numpy() for o in out) if isinstance(out, tuple) else y.detach().numpy()
    return arrays, t.grad.numpy()


@pytest.mark.optional
@given(case=pool_cases())
def test_max_pool_matches_torch(case):
    torch = pytest.importorskip('torch')
    nd, shape, kw, win, _ = case
    x = np.random.default_rng(sum(shape)).integers(-3, 4, size=shape).astype(np.float64)
    (y, idx), gx, gy = run(lambda t: max_pool_fn(nd)(t, return_indices=True, **kw), x, np.float64)
    tfn = getattr(torch.nn.functional, f'max_pool{nd}d')
    (ty, tidx), tgx = _torch_run(lambda t: tfn(t, return_indices=True, **kw), x, gy)
    np.testing.assert_array_equal(y, ty)
    if has_empty_window(win):          # PyTorch's index there points past the plane; ours is -1
        tidx = np.where(np.isneginf(ty), -1, tidx)
    else:
        np.testing.assert_array_equal(gx, tgx)
    np.testing.assert_array_equal(idx, tidx)


@pytest.mark.optional
@given(case=pool_cases(average=True))
def test_avg_pool_matches_torch(case):
    torch = pytest.importorskip('torch')
    nd, shape, kw, _, _ = case
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    y, gx, gy = run(lambda t: avg_pool_fn(nd)(t, **kw), x, np.float64)
    ty, tgx = _torch_run(lambda t: getattr(torch.nn.functional, f'avg_pool{nd}d')(t, **kw), x, gy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-14)


@pytest.mark.optional
@given(case=adaptive_cases())
def test_adaptive_pools_match_torch(case):
    torch = pytest.importorskip('torch')
    nd, shape, arg, _ = case
    x = np.random.default_rng(sum(shape)).integers(-3, 4, size=shape).astype(np.float64)
    tf = torch.nn.functional
    y, gx, gy = run(lambda t: ADAPTIVE_AVG[nd](t, arg), x, np.float64)
    ty, tgx = _torch_run(lambda t: getattr(tf, f'adaptive_avg_pool{nd}d')(t, arg), x, gy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-14)
    (y, idx), gx, gy = run(lambda t: ADAPTIVE_MAX[nd](t, arg, return_indices=True), x, np.float64)
    (ty, tidx), tgx = _torch_run(
        lambda t: getattr(tf, f'adaptive_max_pool{nd}d')(t, arg, return_indices=True), x, gy)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_array_equal(gx, tgx)


def torch_nearest_backward_is_not_its_adjoint(shape, kw, out, scales, dtype):
    """PyTorch's CPU nearest backward copies when n_out == n_in and halves when n_out == 2 n_in,
    but its 1-D and 3-D forward does not: with a scale_factor that lands there, its gradient is not
    the adjoint of its forward (x = arange(5.), scale_factor=1.1: the forward reads positions
    [0, 0, 1, 2, 3], the gradient of y.sum() comes out [1, 1, 1, 1, 1], not [2, 1, 1, 1, 0]).
    Ours is the adjoint (gradcheck above); those cases compare forwards only."""
    if kw['mode'] != 'nearest' or len(shape) == 4:
        return False
    return any(not np.array_equal(P.nearest_table(n, m, sc, dtype).index,
                                  P.nearest_table(n, m, sc, dtype, two_d=True).index)
               for n, m, sc in zip(shape[2:], out, scales))


@pytest.mark.optional
@pytest.mark.parametrize('dtype', DTYPES)
@given(case=interp_cases())
def test_interpolate_matches_torch(dtype, case):
    torch = pytest.importorskip('torch')
    shape, kw, out, scales = case
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    y, gx, gy = run(lambda t: P.interpolate(t, **kw), x, dtype)
    ty, tgx = _torch_run(lambda t: torch.nn.functional.interpolate(t, **kw), x, gy)
    t = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ty, **t)
    if not torch_nearest_backward_is_not_its_adjoint(shape, kw, out, scales, dtype):
        np.testing.assert_allclose(gx, tgx, **t)


CEIL_EDGES = [   # (input size, kernel, stride, padding, dilation): ceil_mode adds or drops a window
    ((5, 5), 2, 2, 1, 1),          # the extra window would start in the right padding: dropped
    ((6, 6), 3, 2, 1, 1),          # the extra window runs past the padding
    ((7, 7), 3, 3, 0, 1),          # the extra window starts inside the input: kept
    ((8, 5), (3, 2), (3, 2), (1, 0), (1, 2)),
    ((4, 9), 2, (3, 4), (1, 1), (2, 3)),
    ((1, 1), 1, 2, 0, 1),
]


@pytest.mark.optional
@pytest.mark.parametrize('count_include_pad', [True, False])
@pytest.mark.parametrize('edge', CEIL_EDGES, ids=[str(e) for e in CEIL_EDGES])
def test_ceil_mode_edge_cases_match_torch(edge, count_include_pad):
    torch = pytest.importorskip('torch')
    size, k, s, p, d = edge
    x = distinct_values((2, 1) + size, seed=12)
    for ceil_mode in (False, True):
        (y, idx), gx, gy = run(lambda t: P.max_pool2d(t, k, s, p, d, ceil_mode, True), x,
                               np.float64)
        (ty, tidx), tgx = _torch_run(
            lambda t: torch.nn.functional.max_pool2d(t, k, s, p, d, ceil_mode, True), x, gy)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_array_equal(idx, tidx)
        np.testing.assert_array_equal(gx, tgx)
        y, gx, gy = run(lambda t: P.avg_pool2d(t, k, s, p, ceil_mode, count_include_pad), x,
                        np.float64)
        ty, tgx = _torch_run(lambda t: torch.nn.functional.avg_pool2d(
            t, k, s, p, ceil_mode, count_include_pad), x, gy)
        np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gx, tgx, rtol=1e-12, atol=1e-14)


NEAREST_QUIRKS = [   # (n_in, size or None, scale_factor or None)
    (14, 46, None), (26, 22, None), (21, 69, None),     # float32 and float64 floors differ
    (5, None, 1.1), (5, None, 2.1), (7, None, 0.3),     # a scale_factor that is not n_out / n_in
]


@pytest.mark.optional
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('nd', [1, 2, 3])
@pytest.mark.parametrize('quirk', NEAREST_QUIRKS, ids=[str(q) for q in NEAREST_QUIRKS])
def test_nearest_rounds_as_torch_does(quirk, nd, dtype):
    torch = pytest.importorskip('torch')
    n, m, scale = quirk
    x = np.arange(n, dtype=dtype).reshape((1, 1) + (1,) * (nd - 1) + (n,))
    kw = dict(size=(1,) * (nd - 1) + (m,)) if m else dict(scale_factor=(1.0,) * (nd - 1) + (scale,))
    y = P.interpolate(tl.tensor(x), **kw).numpy()
    ty = torch.nn.functional.interpolate(torch.tensor(x), **kw).numpy()
    np.testing.assert_array_equal(y, ty)

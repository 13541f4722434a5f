"""Convolution: conv1d/2d/3d and conv_transpose1d/2d/3d.

- float64 gradcheck (full and fast mode) and gradgradcheck on hypothesis-drawn stride, padding
  (ints, tuples, 'same', 'valid'), dilation, groups and bias;
- forward and every gradient against a direct-loop NumPy reference written here (loops over output
  positions, nothing shared with the implementation), in float64 and float32;
- each code path on purpose: GEMM, the direct depthwise kernels, the stride-1 flipped convolution,
  col2vol, and tiles cut into bands of rows by a small column-buffer bound;
- the memory bound: the planner for the (8, 64, 16, 56, 56) 3x3x3 case, every column buffer a real
  convolution allocates, and tracemalloc's peak;
- the kernels: CUDA twins against CPU twins under the simulator (tiny shapes), launch checks;
- bad input: ValueErrors that name the shapes;
- optional: torch.nn.functional.
"""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite import kernels
from tensorlite.functional import conv as conv_mod
from tensorlite.functional.conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,
                                        conv_transpose3d)
from tensorlite.kernels import conv_plan
from tensorlite.kernels.cpu import conv as cpu

from helpers import check_grads

CONV = {1: conv1d, 2: conv2d, 3: conv3d}
CONV_T = {1: conv_transpose1d, 2: conv_transpose2d, 3: conv_transpose3d}


# ---- the direct-loop reference -------------------------------------------------------------------
# Three loops over output positions o of a "column side" c (conv's output, conv_transpose's input)
# and a padded "volume side" v (conv's input, conv_transpose's output), with the window of o being
# v[..., o*stride + k*dilation]:
#   correlate: c[n, co, o] = sum_{ci in group, k} w[co, ci, k] v[n, ci, window(o)]
#   scatter:   v[n, ci, window(o)] += sum_{co in group} w[co, ci, k] c[n, co, o]   (its adjoint)
#   weight:    gw[co, ci, k] = sum_{n, o} c[n, co, o] v[n, ci, window(o)]

def _window(o, stride, dilation, kernel):
    return (slice(None), slice(None)) + np.ix_(*[oi * s + np.arange(k) * d for oi, s, d, k in
                                                 zip(o, stride, dilation, kernel)])


def ref_correlate(v, w, groups, out, stride, dilation):
    n, c_vol = v.shape[:2]
    c_col, nd = w.shape[0], w.ndim - 2
    cig, cog = c_vol // groups, c_col // groups
    c = np.zeros((n, c_col) + tuple(out))
    axes = tuple(range(1, nd + 2))
    for o in np.ndindex(*out):
        win = v[_window(o, stride, dilation, w.shape[2:])]                 # (N, C_vol, *kernel)
        for g in range(groups):
            c[(slice(None), slice(g * cog, (g + 1) * cog)) + o] = np.tensordot(
                win[:, g * cig:(g + 1) * cig], w[g * cog:(g + 1) * cog], axes=(axes, axes))
    return c


def ref_scatter(c, w, groups, vol, stride, dilation):
    n, c_col = c.shape[:2]
    cig, cog = w.shape[1], c_col // groups
    v = np.zeros((n, cig * groups) + tuple(vol))
    for o in np.ndindex(*c.shape[2:]):
        win = _window(o, stride, dilation, w.shape[2:])
        for g in range(groups):
            part = np.tensordot(c[(slice(None), slice(g * cog, (g + 1) * cog)) + o],
                                w[g * cog:(g + 1) * cog], axes=(1, 0))    # (N, C_in/g, *kernel)
            v[(slice(None), slice(g * cig, (g + 1) * cig)) + win[2:]] += part
    return v


def ref_weight(v, c, groups, kernel, stride, dilation):
    c_vol, c_col = v.shape[1], c.shape[1]
    cig, cog = c_vol // groups, c_col // groups
    gw = np.zeros((c_col, cig) + tuple(kernel))
    for o in np.ndindex(*c.shape[2:]):
        win = v[_window(o, stride, dilation, kernel)]                     # (N, C_vol, *kernel)
        for g in range(groups):
            gw[g * cog:(g + 1) * cog] += np.tensordot(
                c[(slice(None), slice(g * cog, (g + 1) * cog)) + o], win[:, g * cig:(g + 1) * cig],
                axes=(0, 0))
    return gw


def _pad(a, lo, hi):
    return np.pad(a, [(0, 0), (0, 0)] + list(zip(lo, hi)))


def _crop(a, lo, size):
    return a[(slice(None), slice(None)) + tuple(slice(l, l + s) for l, s in zip(lo, size))]


def ref_conv(x, w, b, gy_fn, stride, lo, hi, dilation, groups):
    """(y, gx, gw, gb) of conv with low/high padding lo/hi; gy = gy_fn(y.shape)."""
    v = _pad(x, lo, hi)
    kernel = w.shape[2:]
    out = tuple((p - d * (k - 1) - 1) // s + 1 for p, d, k, s in zip(v.shape[2:], dilation, kernel,
                                                                       stride))
    y = ref_correlate(v, w, groups, out, stride, dilation)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(out))
    gy = gy_fn(y.shape)
    gx = _crop(ref_scatter(gy, w, groups, v.shape[2:], stride, dilation), lo, x.shape[2:])
    gw = ref_weight(v, gy, groups, kernel, stride, dilation)
    gb = gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
    return y, gx, gw, gb


def ref_conv_transpose(x, w, b, gy_fn, stride, padding, output_padding, dilation, groups):
    kernel = w.shape[2:]
    big = tuple((o - 1) * s + d * (k - 1) + op + 1 for o, s, d, k, op in
                zip(x.shape[2:], stride, dilation, kernel, output_padding))     # vol + 2 padding
    vol = tuple(g - 2 * p for g, p in zip(big, padding))
    y = _crop(ref_scatter(x, w, groups, big, stride, dilation), padding, vol)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * len(vol))
    gy = gy_fn(y.shape)
    gv = _pad(gy, padding, padding)
    gx = ref_correlate(gv, w, groups, x.shape[2:], stride, dilation)
    gw = ref_weight(gv, x, groups, kernel, stride, dilation)
    gb = gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))
    return y, gx, gw, gb


def _same_pads(kernel, dilation):
    """PyTorch's 'same': total d (k - 1), the odd extra on the high side."""
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return [t // 2 for t in total], [t - t // 2 for t in total]


# ---- hypothesis cases ----------------------------------------------------------------------------

MAX_EXTRA = {1: 4, 2: 2, 3: 1}          # keeps 3-D gradchecks tiny


@st.composite
def conv_cases(draw, nd):
    groups = draw(st.sampled_from([1, 2]))
    cig, cog = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    kind = draw(st.sampled_from(['int', 'tuple', 'same', 'valid']))
    stride = (1,) * nd if kind == 'same' else tuple(draw(st.integers(1, 2)) for _ in range(nd))
    if kind == 'int':
        padding = draw(st.integers(0, 2))
        lo = hi = [padding] * nd
    elif kind == 'tuple':
        padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
        lo = hi = list(padding)
    elif kind == 'same':
        padding = 'same'
        lo, hi = _same_pads(kernel, dilation)
    else:
        padding = 'valid'
        lo = hi = [0] * nd
    spatial = []
    for k, d, a, b in zip(kernel, dilation, lo, hi):
        least = max(1, d * (k - 1) + 1 - a - b)
        spatial.append(draw(st.integers(least, least + MAX_EXTRA[nd])))
    n = draw(st.integers(1, 2))
    return dict(x=(n, cig * groups) + tuple(spatial), w=(cog * groups, cig) + kernel,
                bias=draw(st.booleans()), stride=stride, padding=padding, dilation=dilation,
                groups=groups, lo=lo, hi=hi)


@st.composite
def conv_transpose_cases(draw, nd):
    groups = draw(st.sampled_from([1, 2]))
    cig, cog = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = draw(st.one_of(st.integers(0, 1), st.tuples(*[st.integers(0, 1)] * nd)))
    pads = padding if isinstance(padding, tuple) else (padding,) * nd
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    spatial = []
    for k, d, s, p, op in zip(kernel, dilation, stride, pads, output_padding):
        least = 1                       # output size (o-1) s - 2p + d (k-1) + op + 1 must be > 0
        while (least - 1) * s - 2 * p + d * (k - 1) + op + 1 <= 0:
            least += 1
        spatial.append(draw(st.integers(least, least + MAX_EXTRA[nd] - (nd == 3))))
    n = draw(st.integers(1, 2))
    return dict(x=(n, cig * groups) + tuple(spatial), w=(cig * groups, cog) + kernel,
                bias=draw(st.booleans()), stride=stride, padding=padding,
                output_padding=output_padding, dilation=dilation, groups=groups, pads=pads)


def _inputs(case, rng, dtype, transpose=False):
    x = rng.standard_normal(case['x']).astype(dtype)
    w = rng.standard_normal(case['w']).astype(dtype)
    c_out = case['w'][1] * case['groups'] if transpose else case['w'][0]
    b = rng.standard_normal(c_out).astype(dtype) if case['bias'] else None
    return x, w, b


def _conv_kwargs(case):
    return dict(stride=case['stride'], padding=case['padding'], dilation=case['dilation'],
                groups=case['groups'])


def _conv_t_kwargs(case):
    return dict(stride=case['stride'], padding=case['padding'],
                output_padding=case['output_padding'], groups=case['groups'],
                dilation=case['dilation'])


def _leaves(arrays):
    return [None if a is None else tl.tensor(a, requires_grad=True) for a in arrays]


def _run(fn, x, w, b, gy_fn, **kw):
    """fn's output and the gradients of sum(y * gy) for x, w and b."""
    tx, tw, tb = _leaves((x, w, b))
    y = fn(tx, tw, tb, **kw)
    gy = gy_fn(tuple(y.shape))
    y.backward(tl.tensor(gy.astype(x.dtype)))
    return y.data, tx.grad.data, tw.grad.data, None if tb is None else tb.grad.data


def _gy_fn(rng):
    cache = {}

    def gy(shape):                      # one gy per shape, shared by the engine and the reference
        if shape not in cache:
            cache[shape] = rng.standard_normal(shape)
        return cache[shape]
    return gy


def _compare(ours, ref, dtype):
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, a, r in zip(('y', 'gx', 'gw', 'gb'), ours, ref):
        if a is None:
            continue
        assert a.dtype == dtype, f"{name} has dtype {a.dtype}, expected {dtype}"
        assert a.shape == r.shape, f"{name} has shape {a.shape}, reference {r.shape}"
        np.testing.assert_allclose(a, r, err_msg=name, **tol)


# ---- gradcheck and gradgradcheck -----------------------------------------------------------------

def _check_case(fn, case, kwargs, transpose):
    rng = np.random.default_rng(1)
    x, w, b = _inputs(case, rng, np.float64, transpose)
    tensors = [t for t in _leaves((x, w, b)) if t is not None]
    if b is None:
        check_grads(lambda x, w: fn(x, w, None, **kwargs), tensors)
    else:
        check_grads(lambda x, w, b: fn(x, w, b, **kwargs), tensors)


@pytest.mark.parametrize('nd', [1, 2, 3])
@given(data=st.data())
def test_conv_gradcheck_and_gradgradcheck(nd, data):
    case = data.draw(conv_cases(nd))
    _check_case(CONV[nd], case, _conv_kwargs(case), transpose=False)


@pytest.mark.parametrize('nd', [1, 2, 3])
@given(data=st.data())
def test_conv_transpose_gradcheck_and_gradgradcheck(nd, data):
    case = data.draw(conv_transpose_cases(nd))
    _check_case(CONV_T[nd], case, _conv_t_kwargs(case), transpose=True)


@pytest.mark.parametrize('name', ['pointwise_fewer_outputs', 'pointwise_grouped'])
def test_pointwise_path_gradcheck_and_gradgradcheck(name):
    """The 1x1x1 path (no columns) in every product, first and second order."""
    xs, ws, kw = PATHS[name]
    rng = np.random.default_rng(7)
    tensors = _leaves((rng.standard_normal(xs), rng.standard_normal(ws),
                       rng.standard_normal(ws[0])))
    check_grads(lambda x, w, b: conv3d(x, w, b, **kw), tensors)
    check_grads(lambda x, w: conv_transpose3d(x, w, None, groups=kw.get('groups', 1)),
                _leaves((rng.standard_normal((xs[0], ws[0]) + xs[2:]), rng.standard_normal(ws))))


# ---- against the direct-loop reference -----------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('nd', [1, 2, 3])
@given(data=st.data())
def test_conv_matches_direct_loops(nd, dtype, data):
    case = data.draw(conv_cases(nd))
    rng = np.random.default_rng(2)
    x, w, b = _inputs(case, rng, dtype)
    gy = _gy_fn(rng)
    ours = _run(CONV[nd], x, w, b, gy, **_conv_kwargs(case))
    ref = ref_conv(x.astype(np.float64), w.astype(np.float64),
                   None if b is None else b.astype(np.float64), gy, case['stride'], case['lo'],
                   case['hi'], case['dilation'], case['groups'])
    _compare(ours, ref, dtype)


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('nd', [1, 2, 3])
@given(data=st.data())
def test_conv_transpose_matches_direct_loops(nd, dtype, data):
    case = data.draw(conv_transpose_cases(nd))
    rng = np.random.default_rng(3)
    x, w, b = _inputs(case, rng, dtype, transpose=True)
    gy = _gy_fn(rng)
    ours = _run(CONV_T[nd], x, w, b, gy, **_conv_t_kwargs(case))
    ref = ref_conv_transpose(x.astype(np.float64), w.astype(np.float64),
                             None if b is None else b.astype(np.float64), gy, case['stride'],
                             case['pads'], case['output_padding'], case['dilation'], case['groups'])
    _compare(ours, ref, dtype)


# ---- every code path, on purpose -----------------------------------------------------------------

PATHS = {
    # name: (x shape, w shape, kwargs), 3-D
    'gemm_strided_col2vol': ((2, 4, 4, 5, 6), (6, 2, 2, 3, 3), dict(stride=(1, 2, 2), padding=1,
                                                                     groups=2)),
    'flipped_conv_stride1': ((2, 4, 3, 5, 6), (3, 4, 3, 3, 3), dict(padding=(1, 2, 0),
                                                                     dilation=(1, 1, 2))),
    'col2vol_many_outputs': ((2, 2, 3, 4, 5), (8, 2, 3, 3, 3), dict(padding='same')),
    'depthwise_direct': ((2, 3, 4, 5, 6), (6, 1, 3, 2, 3), dict(stride=(1, 2, 1), padding=1,
                                                                groups=3)),
    'same_even_kernel': ((1, 2, 4, 5, 4), (2, 2, 2, 4, 2), dict(padding='same', dilation=(1, 1, 3))),
    'pointwise_fewer_outputs': ((2, 6, 3, 4, 5), (4, 6, 1, 1, 1), dict()),
    'pointwise_grouped': ((3, 4, 2, 3, 5), (6, 2, 1, 1, 1), dict(groups=2)),
}


def _path_taken(case_x, case_w, kw):
    """Which branch conv_input_grad_arrays takes, so the table above is sure to cover each one."""
    c_in, c_out, groups = case_x[1], case_w[0], kw.get('groups', 1)
    stride = kw.get('stride', 1)
    stride1 = stride == 1 or stride == (1, 1, 1)
    if conv_plan._use_direct(c_in, c_out, groups, cpu):
        return 'direct'
    if case_w[2:] == (1, 1, 1) and stride1 and kw.get('padding', 0) == 0:
        return 'pointwise'
    if stride1 and c_out <= conv_plan.FLIPPED_MAX_CHANNEL_RATIO * c_in:
        return 'flipped'
    return 'col2vol'


@pytest.mark.parametrize('bound', [None, 4096], ids=['one_tile', 'bands_of_rows'])
@pytest.mark.parametrize('name', sorted(PATHS))
def test_each_path_matches_direct_loops(name, bound):
    xs, ws, kw = PATHS[name]
    expected = {'gemm_strided_col2vol': 'col2vol', 'flipped_conv_stride1': 'flipped',
                'col2vol_many_outputs': 'col2vol', 'depthwise_direct': 'direct',
                'same_even_kernel': 'flipped', 'pointwise_fewer_outputs': 'pointwise',
                'pointwise_grouped': 'pointwise'}[name]
    assert _path_taken(xs, ws, kw) == expected
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    gy = _gy_fn(rng)
    previous = kernels.set_column_buffer_bytes(bound) if bound else None
    try:
        ours = _run(conv3d, x, w, b, gy, **kw)
    finally:
        if previous:
            kernels.set_column_buffer_bytes(previous)
    stride = kw.get('stride', 1)
    stride = stride if isinstance(stride, tuple) else (stride,) * 3
    dilation = kw.get('dilation', 1)
    dilation = dilation if isinstance(dilation, tuple) else (dilation,) * 3
    pad = kw.get('padding', 0)
    if pad == 'same':
        lo, hi = _same_pads(ws[2:], dilation)
    else:
        lo = hi = pad if isinstance(pad, tuple) else (pad,) * 3
    ref = ref_conv(x, w, b, gy, stride, lo, hi, dilation, kw.get('groups', 1))
    _compare(ours, ref, np.float64)


def test_conv_transpose_in_bands_matches_direct_loops():
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 2, 3, 4, 3)), rng.standard_normal((2, 3, 2, 3, 2)), None
    kw = dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2))
    gy = _gy_fn(rng)
    previous = kernels.set_column_buffer_bytes(2048)
    try:
        ours = _run(conv_transpose3d, x, w, b, gy, **kw)
    finally:
        kernels.set_column_buffer_bytes(previous)
    ref = ref_conv_transpose(x, w, b, gy, kw['stride'], kw['padding'], kw['output_padding'],
                             (1, 1, 1), 1)
    _compare(ours, ref, np.float64)


def test_second_derivative_through_depthwise_and_banded_paths():
    rng = np.random.default_rng(6)
    x = tl.tensor(rng.standard_normal((1, 2, 3, 3, 4)), requires_grad=True)
    w = tl.tensor(rng.standard_normal((2, 1, 2, 2, 2)), requires_grad=True)
    check_grads(lambda x, w: conv3d(x, w, None, padding=1, groups=2, stride=(1, 2, 1)), (x, w))
    previous = kernels.set_column_buffer_bytes(1024)
    try:
        w2 = tl.tensor(rng.standard_normal((3, 2, 2, 2, 2)), requires_grad=True)
        check_grads(lambda x, w: conv3d(x, w, None, padding=1, stride=(2, 1, 1)), (x, w2))
    finally:
        kernels.set_column_buffer_bytes(previous)


# ---- the memory bound ----------------------------------------------------------------------------

def _big_plan():
    """The tile schedule of conv3d((8, 64, 16, 56, 56), 3x3x3, padding 1) on the CPU."""
    geo = conv_plan.Geometry(3, (16, 56, 56), (16, 56, 56), (3, 3, 3), (1, 1, 1), (1, 1, 1),
                             (1, 1, 1), 1)
    plan = conv_plan._Plan(np, 8, 64, geo, np.float32)
    tiles = list(plan.schedule(cpu))
    return plan, tiles


def test_planner_never_plans_the_whole_batch_column_matrix():
    plan, tiles = _big_plan()
    row_bytes = 64 * 27 * 56 * 4
    whole_batch = 8 * 16 * 56 * row_bytes               # 2.8 GB: the 27x matrix of the batch
    tile_bytes = plan.samples * plan.band * row_bytes
    assert whole_batch == 8 * 64 * 27 * 16 * 56 * 56 * 4
    assert tile_bytes <= kernels.column_buffer_bytes()
    assert tile_bytes <= cpu.PREFERRED_TILE_BYTES
    # every output row of every sample is covered exactly once
    covered = np.zeros((8, 16 * 56), dtype=int)
    for n0, n1, r0, r1 in tiles:
        covered[n0:n1, r0:r1] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize('bound', [256 * 2**20, 64 * 2**20, 3 * 2**20])
def test_planner_follows_the_bound_setting(bound, monkeypatch):
    monkeypatch.setattr(cpu, 'PREFERRED_TILE_BYTES', None)   # the bound alone decides
    previous = kernels.set_column_buffer_bytes(bound)
    try:
        plan, tiles = _big_plan()
    finally:
        kernels.set_column_buffer_bytes(previous)
    row_bytes = 64 * 27 * 56 * 4
    assert plan.band * row_bytes <= bound < (plan.band + 1) * row_bytes
    assert plan.samples == 1                            # one sample alone (347 MB) is over 256 MiB


def test_planner_groups_whole_samples_when_they_fit():
    assert conv_plan.plan_tiles(10, 4, 100, 1000) == (2, 4)         # 400 bytes per sample
    assert conv_plan.plan_tiles(3, 4, 100, 10_000) == (3, 4)
    assert conv_plan.plan_tiles(3, 40, 100, 1000) == (1, 10)        # bands of 10 rows
    with pytest.raises(ValueError, match='one output row needs 100 bytes.*bound of 99 bytes'):
        conv_plan.plan_tiles(1, 4, 100, 99)


def test_every_column_buffer_stays_under_the_bound(monkeypatch):
    """Instrument the kernels: every column matrix a conv3d and its gradients hand to a kernel."""
    seen = []
    for name in ('vol2col', 'col2vol'):
        kernel = getattr(cpu, name)

        def spy(*args, _kernel=kernel, _name=name):
            col = args[-1] if _name == 'vol2col' else args[0]
            seen.append(col.nbytes)
            return _kernel(*args)
        monkeypatch.setattr(cpu, name, spy)
    bound = 8192
    previous = kernels.set_column_buffer_bytes(bound)
    rng = np.random.default_rng(7)
    try:
        x = tl.tensor(rng.standard_normal((3, 4, 5, 6, 7)), requires_grad=True)
        w = tl.tensor(rng.standard_normal((4, 4, 3, 3, 3)), requires_grad=True)
        y = conv3d(x, w, None, padding=1, stride=(1, 1, 2))     # strided: col2vol runs too
        y.backward(tl.ones_like(y))
    finally:
        kernels.set_column_buffer_bytes(previous)
    whole = 3 * 4 * 27 * 5 * 6 * 4 * 8
    assert seen and max(seen) <= bound < whole
    assert len(seen) > 3 * 3                            # many tiles, in both passes


def test_peak_memory_of_a_conv3d_is_far_below_its_column_matrix():
    """tracemalloc sees NumPy's allocations: forward + backward peak stays near the tensors' size
    plus one bounded column buffer, far from the whole batch's 27x column matrix."""
    rng = np.random.default_rng(8)
    x = tl.tensor(rng.standard_normal((4, 8, 6, 12, 12)).astype(np.float32), requires_grad=True)
    w = tl.tensor(rng.standard_normal((8, 8, 3, 3, 3)).astype(np.float32), requires_grad=True)
    bound = 64 * 1024
    previous = kernels.set_column_buffer_bytes(bound)
    tracemalloc.start()
    try:
        y = conv3d(x, w, None, padding=1)
        y.backward(tl.ones_like(y))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        kernels.set_column_buffer_bytes(previous)
    tensor_bytes = x.data.nbytes                        # y, gy, gx are the same size here
    column_matrix = 27 * tensor_bytes
    assert peak < 4 * tensor_bytes + 2 * bound + 256 * 1024, peak
    assert peak < column_matrix / 5


def test_set_column_buffer_bytes_refuses_nonsense():
    for bad in (0, -1, 1.5, True, '1'):
        with pytest.raises(ValueError, match='positive int of bytes'):
            kernels.set_column_buffer_bytes(bad)


# ---- the kernels: CUDA twins against CPU twins, launch checks ------------------------------------

cuda = pytest.importorskip('tensorlite.kernels.cuda.conv')

KERNEL_CASES = [   # kernel, stride, padding, dilation, volume (T, H, W)
    ((2, 2, 3), (1, 2, 1), (1, 0, 1), (1, 1, 2), (3, 4, 5)),
    ((1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), (2, 4, 4)),        # the flat (same, stride 1) path
    ((2, 1, 2), (2, 1, 3), (0, 2, 0), (2, 1, 1), (4, 3, 6)),
]


def _out_shape(kernel, stride, padding, dilation, vol):
    return tuple((v + 2 * p - d * (k - 1) - 1) // s + 1
                 for v, p, d, k, s in zip(vol, padding, dilation, kernel, stride))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('case', KERNEL_CASES)
def test_cuda_vol2col_and_col2vol_match_cpu_twins(case, dtype):
    kernel, stride, padding, dilation, vol = case
    out = _out_shape(kernel, stride, padding, dilation, vol)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 2) + vol).astype(dtype)
    ck = 2 * int(np.prod(kernel))
    rows = out[0] * out[1]
    for row0, n_rows in [(0, rows), (1, max(1, rows - 2))]:            # whole, and a band
        a = np.full((2, ck, n_rows * out[2]), np.nan, dtype)
        b = a.copy()
        cpu.vol2col(x, kernel, stride, padding, dilation, out, row0, a)
        cuda.vol2col(x, kernel, stride, padding, dilation, out, row0, b)
        np.testing.assert_array_equal(b, a)
        col = rng.standard_normal(a.shape).astype(dtype)
        g_cpu, g_cuda = np.ones_like(x), np.ones_like(x)               # both add into x
        cpu.col2vol(col, kernel, stride, padding, dilation, out, row0, g_cpu)
        cuda.col2vol(col, kernel, stride, padding, dilation, out, row0, g_cuda)
        np.testing.assert_allclose(g_cuda, g_cpu, rtol=1e-5, atol=1e-5)


# the simulator runs every CUDA thread as a Python thread: these kernels are small on purpose
DEPTHWISE_CASES = [   # kernel, stride, padding, dilation, volume, channels, mult
    ((1, 2, 2), (1, 2, 1), (0, 1, 0), (1, 1, 2), (2, 3, 4), 2, 1),
    ((2, 1, 2), (2, 1, 1), (1, 0, 1), (1, 1, 1), (3, 2, 3), 1, 2),
]


@pytest.mark.parametrize('case', DEPTHWISE_CASES)
def test_cuda_depthwise_kernels_match_cpu_twins(case):
    kernel, stride, padding, dilation, vol, c_in, mult = case
    out = _out_shape(kernel, stride, padding, dilation, vol)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, c_in) + vol).astype(np.float32)
    w = rng.standard_normal((c_in * mult, 1) + kernel).astype(np.float32)
    y_cpu, y_cuda = (np.empty((2, c_in * mult) + out, np.float32) for _ in range(2))
    cpu.depthwise_fwd(x, w, stride, padding, dilation, y_cpu)
    cuda.depthwise_fwd(x, w, stride, padding, dilation, y_cuda)
    np.testing.assert_allclose(y_cuda, y_cpu, rtol=1e-5, atol=1e-5)
    gy = rng.standard_normal(y_cpu.shape).astype(np.float32)
    gx_cpu, gx_cuda = np.empty_like(x), np.empty_like(x)
    cpu.depthwise_bwd_input(gy, w, stride, padding, dilation, gx_cpu)
    cuda.depthwise_bwd_input(gy, w, stride, padding, dilation, gx_cuda)
    np.testing.assert_allclose(gx_cuda, gx_cpu, rtol=1e-5, atol=1e-5)
    gw_cpu, gw_cuda = np.empty_like(w), np.empty_like(w)
    cpu.depthwise_bwd_weight(x, gy, stride, padding, dilation, gw_cpu)
    cuda.depthwise_bwd_weight(x, gy, stride, padding, dilation, gw_cuda)
    np.testing.assert_allclose(gw_cuda, gw_cpu, rtol=1e-5, atol=1e-5)


def test_cpu_kernels_match_brute_force_columns():
    """vol2col against the reference's own windows, and col2vol / the depthwise kernels by the
    adjoint identities <A x, c> = <x, A^T c>."""
    rng = np.random.default_rng(11)
    for kernel, stride, padding, dilation, vol in KERNEL_CASES:
        out = _out_shape(kernel, stride, padding, dilation, vol)
        x = rng.standard_normal((2, 2) + vol)
        v = _pad(x, padding, [max(0, (o - 1) * s + d * (k - 1) + 1 - vv - p)
                              for o, s, d, k, vv, p in zip(out, stride, dilation, kernel, vol,
                                                             padding)])
        col = np.empty((2, 2 * int(np.prod(kernel)), out[0] * out[1] * out[2]))
        cpu.vol2col(x, kernel, stride, padding, dilation, out, 0, col)
        for o in np.ndindex(*out):
            win = v[_window(o, stride, dilation, kernel)]                  # (2, 2, *kernel)
            j = np.ravel_multi_index(o, out)
            np.testing.assert_array_equal(col[:, :, j], win.reshape(2, -1))
        c = rng.standard_normal(col.shape)
        back = np.zeros_like(x)
        cpu.col2vol(c, kernel, stride, padding, dilation, out, 0, back)
        np.testing.assert_allclose((col * c).sum(), (x * back).sum(), rtol=1e-12)
        w = rng.standard_normal((4, 1) + kernel)
        y = np.empty((2, 4) + out)
        cpu.depthwise_fwd(x, w, stride, padding, dilation, y)
        gy = rng.standard_normal(y.shape)
        gx, gw = np.empty_like(x), np.empty_like(w)
        cpu.depthwise_bwd_input(gy, w, stride, padding, dilation, gx)
        cpu.depthwise_bwd_weight(x, gy, stride, padding, dilation, gw)
        np.testing.assert_allclose((y * gy).sum(), (x * gx).sum(), rtol=1e-12)
        np.testing.assert_allclose((y * gy).sum(), (w * gw).sum(), rtol=1e-12)


@pytest.mark.parametrize('module', [cpu, cuda], ids=['cpu', 'cuda'])
def test_kernel_launch_refuses_strided_mixed_and_misshapen_arrays(module):
    geo = ((1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), (2, 4, 4), 0)
    x = np.ones((1, 2, 2, 4, 8))
    col = np.empty((1, 18, 32))
    with pytest.raises(ValueError, match=r'vol2col: x \(shape \(1, 2, 2, 4, 4\)\) is not C-contiguous'):
        module.vol2col(x[..., ::2], *geo, col)
    with pytest.raises(TypeError, match='vol2col: col has dtype float32, x has float64'):
        module.vol2col(x[..., :4].copy(), *geo, col.astype(np.float32))
    with pytest.raises(TypeError, match='col2vol: col has dtype int64, expected float32 or float64'):
        module.col2vol(np.zeros((1, 18, 32), np.int64), *geo, x[..., :4].copy())
    with pytest.raises(ValueError, match=r'columns of shape \(1, 17, 32\) do not fit'):
        module.vol2col(x[..., :4].copy(), *geo, np.empty((1, 17, 32)))
    w = np.ones((2, 1, 1, 3, 3))
    with pytest.raises(ValueError, match='depthwise_fwd: y .*not C-contiguous'):
        module.depthwise_fwd(x[..., :4].copy(), w, (1, 1, 1), (0, 1, 1), (1, 1, 1),
                             np.empty((1, 2, 2, 4, 8))[..., ::2])
    with pytest.raises(ValueError, match=r'depthwise_bwd_weight: expected .* got shapes'):
        module.depthwise_bwd_weight(x[..., :4].copy(), np.empty((1, 3, 2, 4, 4)), (1, 1, 1),
                                    (0, 1, 1), (1, 1, 1), np.empty((2, 1, 1, 3, 3)))


def test_dispatch_picks_the_cpu_twin_for_numpy_arrays():
    assert kernels.conv(np.ones(2)) is cpu


# ---- bad input -----------------------------------------------------------------------------------

def _t(*shape, dtype=np.float32):
    return tl.tensor(np.ones(shape, dtype=dtype))


@pytest.mark.parametrize('call, match', [
    (lambda: conv3d(_t(2, 3, 4, 4), _t(4, 3, 3, 3, 3)),
     r'conv3d: expected a 5-D input \(N, C, T, H, W\), got shape \(2, 3, 4, 4\)'),
    (lambda: conv3d(_t(1, 3, 4, 4, 4), _t(4, 3, 3, 3)),
     r'conv3d: expected a 5-D weight .* got shape \(4, 3, 3, 3\)'),
    (lambda: conv2d(_t(1, 4, 5, 5), _t(6, 3, 3, 3)),
     r'conv2d: input \(1, 4, 5, 5\) has 4 channels, weight \(6, 3, 3, 3\) with groups=1 expects '
     r'C_in = .* = 3'),
    (lambda: conv2d(_t(1, 4, 5, 5), _t(6, 2, 3, 3), groups=3),
     r'conv2d: input \(1, 4, 5, 5\) has 4 channels, weight \(6, 2, 3, 3\) with groups=3'),
    (lambda: conv2d(_t(1, 6, 5, 5), _t(5, 2, 3, 3), groups=3),
     r'C_out \(5\) divisible by groups'),
    (lambda: conv3d(_t(1, 1, 2, 4, 4), _t(1, 1, 3, 3, 3)),
     r'conv3d: kernel \(3, 3, 3\) with dilation \(1, 1, 1\) spans \(3, 3, 3\), larger than the '
     r'padded input \(2, 4, 4\) \(input \(1, 1, 2, 4, 4\), weight \(1, 1, 3, 3, 3\)\)'),
    (lambda: conv1d(_t(1, 1, 5), _t(1, 1, 3), dilation=3),
     r'spans \(7,\), larger than the padded input \(5,\)'),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), padding='same', stride=2),
     "padding='same' is not supported for strided convolutions"),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), padding='full'),
     "padding must be 'same', 'valid', an int or a tuple of 2 ints, got 'full'"),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), padding=(1, 1, 1)),
     r'padding must be an int or a tuple of 2 ints, got \(1, 1, 1\)'),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), padding=-1), 'negative padding'),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), stride=0), 'non-positive stride'),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(1, 1, 3, 3), groups=0), 'groups must be a positive int'),
    (lambda: conv2d(_t(1, 1, 5, 5), _t(2, 1, 3, 3), _t(3)),
     r'bias shape \(3,\), expected \(2,\)'),
    (lambda: conv_transpose2d(_t(1, 4, 3, 3), _t(3, 2, 3, 3)),
     r'conv_transpose2d: input \(1, 4, 3, 3\) has 4 channels, weight \(3, 2, 3, 3\) expects 3'),
    (lambda: conv_transpose2d(_t(1, 2, 3, 3), _t(2, 2, 3, 3), stride=2, output_padding=2),
     r'output_padding \(2, 2\) must be smaller than either stride \(2, 2\) or dilation'),
    (lambda: conv_transpose1d(_t(1, 1, 1), _t(1, 1, 1), padding=1),
     r'gives the non-positive output size \(-1,\)'),
    (lambda: conv_transpose2d(_t(1, 1, 3, 3), _t(1, 1, 3, 3), padding='same'),
     "takes no 'same'/'valid'"),
    (lambda: conv_transpose3d(_t(1, 2, 3, 3), _t(2, 1, 3, 3, 3)),
     r'conv_transpose3d: expected a 5-D input .* got shape \(1, 2, 3, 3\)'),
])
def test_bad_arguments_raise_value_errors_naming_the_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mixed_dtypes_and_non_tensors_are_refused():
    with pytest.raises(TypeError, match='conv2d: input, weight and bias must have one dtype, got '
                                        'float32, float64'):
        conv2d(_t(1, 1, 3, 3), _t(1, 1, 2, 2, dtype=np.float64))
    with pytest.raises(TypeError, match='conv1d: expected weight to be a Tensor, got ndarray'):
        conv1d(_t(1, 1, 3), np.ones((1, 1, 2)))


def test_non_contiguous_inputs_give_the_results_of_their_copies():
    rng = np.random.default_rng(13)
    base = tl.tensor(rng.standard_normal((5, 4, 2, 6, 3)), requires_grad=True)
    x = base.permute(1, 0, 2, 4, 3)                     # (4, 5, 2, 3, 6), a strided view
    assert not x.data.flags.c_contiguous
    w = tl.tensor(rng.standard_normal((3, 5, 2, 2, 3)), requires_grad=True)
    y = conv3d(x, w, None, padding=(1, 0, 1), stride=(1, 1, 2))
    gy = rng.standard_normal(tuple(y.shape))
    y.backward(tl.tensor(gy))
    ref = ref_conv(np.ascontiguousarray(x.data), w.data, None, lambda shape: gy, (1, 1, 2),
                   (1, 0, 1), (1, 0, 1), (1, 1, 1), 1)
    np.testing.assert_allclose(y.data, ref[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(base.grad.data, ref[1].transpose(1, 0, 2, 4, 3), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(w.grad.data, ref[2], rtol=1e-10, atol=1e-10)


def test_empty_batch_gives_empty_output_and_zero_weight_gradient():
    x = tl.tensor(np.ones((0, 2, 4, 4)), requires_grad=True)
    w = tl.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)
    y = conv2d(x, w, None, padding=1)
    assert tuple(y.shape) == (0, 3, 4, 4)
    y.sum().backward()
    assert tuple(x.grad.shape) == (0, 2, 4, 4)
    np.testing.assert_array_equal(w.grad.data, np.zeros((3, 2, 3, 3)))


# ---- optional: PyTorch ---------------------------------------------------------------------------

TORCH_CASES = [
    ('conv3d', (2, 4, 5, 6, 7), (6, 2, 2, 3, 2), dict(stride=(1, 2, 1), padding=(1, 0, 2),
                                                       dilation=(2, 1, 1), groups=2)),
    ('conv3d', (2, 3, 4, 6, 5), (4, 3, 3, 3, 3), dict(padding='same')),
    ('conv3d', (1, 4, 4, 5, 5), (8, 1, 3, 3, 3), dict(padding=1, groups=4)),
    ('conv2d', (2, 3, 7, 6), (4, 3, 3, 2), dict(padding='same', dilation=(1, 2))),
    ('conv2d', (2, 4, 9, 9), (4, 1, 3, 3), dict(stride=2, padding=1, groups=4)),
    ('conv1d', (2, 3, 9), (4, 3, 4), dict(padding='valid', stride=2)),
    ('conv1d', (2, 3, 9), (4, 3, 4), dict(padding='same')),
    ('conv_transpose3d', (2, 4, 3, 4, 3), (4, 3, 2, 3, 2),
     dict(stride=(2, 1, 3), padding=(1, 0, 1), output_padding=(1, 0, 2), groups=2,
          dilation=(1, 2, 1))),
    ('conv_transpose2d', (2, 4, 3, 4), (4, 1, 3, 3), dict(stride=2, padding=1, output_padding=1,
                                                          groups=4)),
    ('conv_transpose1d', (2, 3, 5), (3, 2, 3), dict(dilation=3, output_padding=2, stride=1)),
]


@pytest.mark.optional
@pytest.mark.parametrize('name, xs, ws, kw', TORCH_CASES)
def test_matches_torch(name, xs, ws, kw):
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    c_out = ws[1] * kw.get('groups', 1) if 'transpose' in name else ws[0]
    b = rng.standard_normal(c_out)
    ours_fn = getattr(conv_mod, name)
    gy = _gy_fn(rng)
    ours = _run(ours_fn, x, w, b, gy, **kw)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = getattr(torch.nn.functional, name)(tx, tw, tb, **kw)
    ty.backward(torch.tensor(gy(tuple(ty.shape))))
    theirs = (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy())
    _compare(ours, theirs, np.float64)

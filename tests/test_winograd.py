"""Winograd convolution F(2x2x2, 3x3x3): kernels/{cpu,cuda}/winograd.py and its use in
functional/conv.py (forward, input gradient through the flipped kernel, weight gradient).

- forward and both gradients, Winograd forced, against a direct NumPy convolution written here
  (sums over the 27 kernel offsets, nothing shared with the implementation), on hypothesis-drawn
  shapes: odd T/H/W (partial border tiles), padding 0, 1, 2 and 'same', C_in = 1, batch 1;
- the float32 error, bounded: max |winograd - exact| / max |exact| on random data;
- float64 gradcheck and gradgradcheck of conv3d with Winograd forced;
- agreement with the vol2col + GEMM path, in tiles of bands of rows under a small buffer bound,
  and every transformed buffer under that bound; conv_transpose3d (stride 1) takes it too;
- the switch and the rule: conv_algorithm, and which geometries Winograd may take;
- the kernels: CUDA twins against CPU twins under the simulator, the adjoint identities of the
  transforms, launch checks.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite import kernels
from tensorlite.functional.conv import conv3d, conv_algorithm, conv_transpose3d
from tensorlite.kernels import _launch, conv_plan
from tensorlite.kernels.cpu import winograd as cpu

from helpers import check_grads


# ---- the reference: a direct convolution ---------------------------------------------------------

def ref_conv3d(x, w, b, gy, lo, hi):
    """(y, gx, gw) of the stride-1 3x3x3 correlation with low/high padding lo/hi, in float64:
    y[n, o, p] = sum_{c, k} w[o, c, k] xpad[n, c, p + k]."""
    x, w, gy = (np.asarray(a, np.float64) for a in (x, w, gy))
    xpad = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)))
    out = tuple(s - 2 for s in xpad.shape[2:])
    y = np.zeros((x.shape[0], w.shape[0]) + out)
    gxpad = np.zeros_like(xpad)
    gw = np.zeros(w.shape)
    for k in np.ndindex(3, 3, 3):
        win = (slice(None), slice(None)) + tuple(slice(kk, kk + o) for kk, o in zip(k, out))
        y += np.einsum('ncthw,oc->nothw', xpad[win], w[(slice(None), slice(None)) + k])
        gxpad[win] += np.einsum('nothw,oc->ncthw', gy, w[(slice(None), slice(None)) + k])
        gw[(slice(None), slice(None)) + k] = np.einsum('nothw,ncthw->oc', gy, xpad[win])
    if b is not None:
        y += np.asarray(b, np.float64).reshape(1, -1, 1, 1, 1)
    gx = gxpad[(slice(None), slice(None)) + tuple(slice(l, l + s) for l, s in zip(lo, x.shape[2:]))]
    return y, gx, gw


def _pads(padding):
    return ((1,) * 3, (1,) * 3) if padding == 'same' else ((padding,) * 3, (padding,) * 3)


def _run(x, w, b, gy, padding, algorithm='winograd'):
    """conv3d's y and the gradients of sum(y * gy) for x and w, under `algorithm`."""
    tx, tw = tl.tensor(x, requires_grad=True), tl.tensor(w, requires_grad=True)
    tb = None if b is None else tl.tensor(b, requires_grad=True)
    with conv_algorithm(algorithm):
        y = conv3d(tx, tw, tb, padding=padding)
        y.backward(tl.tensor(gy.astype(x.dtype)))
    return y.data, tx.grad.data, tw.grad.data


@st.composite
def cases(draw):
    padding = draw(st.sampled_from([0, 1, 2, 'same']))
    pad = 1 if padding == 'same' else padding
    least = max(1, 3 - 2 * pad)
    spatial = tuple(draw(st.integers(least, least + 4)) for _ in range(3))
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(x=(n, c_in) + spatial, w=(c_out, c_in, 3, 3, 3), padding=padding,
                bias=draw(st.booleans()))


def _arrays(case, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case['x']).astype(dtype)
    w = rng.standard_normal(case['w']).astype(dtype)
    b = rng.standard_normal(case['w'][0]).astype(dtype) if case['bias'] else None
    return rng, x, w, b


# ---- against the direct convolution ------------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@settings(max_examples=25, deadline=None)
@given(case=cases())
def test_winograd_matches_direct_convolution(case, dtype):
    rng, x, w, b = _arrays(case, dtype, 1)
    y_shape = (case['x'][0], case['w'][0]) + tuple(
        s + 2 * (1 if case['padding'] == 'same' else case['padding']) - 2 for s in case['x'][2:])
    gy = rng.standard_normal(y_shape)
    ours = _run(x, w, b, gy, case['padding'])
    ref = ref_conv3d(x, w, b, gy, *_pads(case['padding']))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for name, a, r in zip(('y', 'gx', 'gw'), ours, ref):
        assert a.dtype == dtype and a.shape == r.shape, name
        np.testing.assert_allclose(a, r, rtol=0, atol=tol * (1 + np.abs(r).max()), err_msg=name)


def test_winograd_kernels_are_the_ones_running(monkeypatch):
    """Forward, input gradient and weight gradient each call the transforms (and no vol2col)."""
    calls = []
    for name in ('input_transform', 'filter_transform', 'output_transform',
                 'output_transform_adjoint', 'filter_transform_adjoint'):
        kernel = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _k=kernel, _n=name: (calls.append(_n), _k(*a))[1])
    from tensorlite.kernels.cpu import conv as cpu_conv
    monkeypatch.setattr(cpu_conv, 'vol2col', lambda *a: pytest.fail('vol2col ran'))
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 5, 4, 5)), rng.standard_normal((2, 3, 3, 3, 3))
    _run(x, w, None, rng.standard_normal((2, 2, 5, 4, 5)), 1)
    assert calls.count('filter_transform') == 2                 # forward, flipped input gradient
    assert calls.count('output_transform') == 2
    assert calls.count('input_transform') == 3                  # x, gy (flipped), x (weight grad)
    assert calls.count('output_transform_adjoint') == 1
    assert calls.count('filter_transform_adjoint') == 1


# ---- float32 error ------------------------------------------------------------------------------
# F(2, 3)'s transforms have entries 0, +-1/2, +-1 (no large ones, unlike F(4, 3)'s), so the error
# stays at the GEMM path's.  Measured, max |error| / max |exact| for (y, gx, gw), 3x3x3 'same',
# weights scaled by 1/sqrt(27 C): (2, 16, 6, 9, 10) float32 Winograd 2.0e-7, 2.2e-7, 2.7e-7 against
# vol2col + GEMM 7.4e-7, 6.6e-7, 2.9e-7; (2, 64, 4, 14, 14) 3.5e-7, 4.3e-7, 8.1e-7 against 5.9e-7,
# 7.6e-7, 4.1e-7; (1, 256, 2, 7, 7) 6.8e-7, 7.4e-7, 3.0e-7 against 3.2e-7, 3.5e-7, 2.9e-7; float64
# at most 1.7e-15 on all three.  The bounds asserted: 1e-5 in float32, 1e-12 in float64.

@pytest.mark.parametrize('dtype, bound', [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_relative_error_is_bounded(dtype, bound):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 6, 9, 10)).astype(dtype)
    w = (rng.standard_normal((16, 16, 3, 3, 3)) / np.sqrt(16 * 27)).astype(dtype)
    gy = rng.standard_normal((2, 16, 6, 9, 10))
    ref = ref_conv3d(x, w, None, gy, (1, 1, 1), (1, 1, 1))
    ours = _run(x, w, None, gy, 1)
    for name, a, r in zip(('y', 'gx', 'gw'), ours, ref):
        err = np.abs(a.astype(np.float64) - r).max() / np.abs(r).max()
        assert err <= bound, f"{name}: relative error {err:.2e} above {bound:.0e}"


# ---- gradcheck and gradgradcheck ---------------------------------------------------------------

@settings(max_examples=6, deadline=None)
@given(padding=st.sampled_from([0, 1, 'same']), spatial=st.tuples(*[st.integers(3, 4)] * 3),
       c_in=st.integers(1, 2), c_out=st.integers(1, 2), bias=st.booleans())
def test_gradcheck_and_gradgradcheck_with_winograd_forced(padding, spatial, c_in, c_out, bias):
    rng = np.random.default_rng(4)
    x = tl.tensor(rng.standard_normal((1, c_in) + spatial), requires_grad=True)
    w = tl.tensor(rng.standard_normal((c_out, c_in, 3, 3, 3)), requires_grad=True)
    b = tl.tensor(rng.standard_normal(c_out), requires_grad=True)
    with conv_algorithm('winograd'):
        if bias:
            check_grads(lambda x, w, b: conv3d(x, w, b, padding=padding), (x, w, b))
        else:
            check_grads(lambda x, w: conv3d(x, w, None, padding=padding), (x, w))


# ---- against the GEMM path, tiles and the memory bound ------------------------------------------

def test_agrees_with_gemm_path_in_bands_of_tile_rows(monkeypatch):
    seen = []
    for name, arg in (('input_transform', 4), ('output_transform', 0),
                      ('output_transform_adjoint', 2)):
        kernel = getattr(cpu, name)

        def spy(*a, _k=kernel, _i=arg):
            seen.append(a[_i].nbytes)
            return _k(*a)
        monkeypatch.setattr(cpu, name, spy)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4, 5, 7, 9)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    gy = rng.standard_normal((3, 5, 5, 7, 9))
    gemm = _run(x, w, b, gy, 1, 'gemm')
    bound = 64 * (4 + 5) * 5 * 4 * 3                            # three tile rows of one sample
    previous = kernels.set_column_buffer_bytes(bound)
    try:
        ours = _run(x, w, b, gy, 1)
    finally:
        kernels.set_column_buffer_bytes(previous)
    for name, a, r in zip(('y', 'gx', 'gw'), ours, gemm):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-4, err_msg=name)
    assert len(seen) > 3 * 3 * 3 and max(seen) <= bound        # many tiles, each under the bound


@pytest.mark.parametrize('padding', [0, 1, 2])
def test_conv_transpose3d_stride1_takes_winograd_and_agrees(padding):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5, 3))
    w = rng.standard_normal((3, 2, 3, 3, 3))
    outs = {}
    for algorithm in ('gemm', 'winograd'):
        tx, tw = tl.tensor(x, requires_grad=True), tl.tensor(w, requires_grad=True)
        with conv_algorithm(algorithm):
            y = conv_transpose3d(tx, tw, None, padding=padding)
            (y * y).sum().backward()
        outs[algorithm] = (y.data, tx.grad.data, tw.grad.data)
    for a, r in zip(outs['winograd'], outs['gemm']):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)


# ---- the switch and the rule ---------------------------------------------------------------------

def _geo(kernel=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1), dilation=(1, 1, 1), groups=1):
    return conv_plan.Geometry(3, (8, 8, 8), (8, 8, 8), kernel, stride, padding, dilation, groups)


@pytest.mark.parametrize('geo', [_geo(kernel=(1, 3, 3)), _geo(stride=(1, 2, 1)),
                                 _geo(dilation=(2, 1, 1)), _geo(groups=2), _geo(padding=(3, 1, 1))],
                         ids=['kernel', 'stride', 'dilation', 'groups', 'padding'])
def test_winograd_is_never_taken_where_it_does_not_apply(geo):
    with conv_algorithm('winograd'):
        assert not conv_plan._use_winograd(1, 8, 8, geo)
    with conv_algorithm('winograd'):
        assert conv_plan._use_winograd(1, 8, 8, _geo())
    with conv_algorithm('gemm'):
        assert not conv_plan._use_winograd(16, 64, 64, _geo())


@pytest.mark.parametrize('n, c_in, c_out, vol, taken', [
    (8, 64, 64, (8, 28, 28), True),             # the benchmark shape: 6,272 tiles
    (2, 256, 256, (8, 28, 28), True),           # C3D conv3b: 1,568 tiles
    (2, 512, 512, (4, 14, 14), False),          # C3D conv4b: 196 tiles
    (16, 32, 32, (8, 8, 8), False),             # tiny C3D: 32 channels
    (16, 3, 8, (16, 32, 32), False),
])
def test_auto_rule_picks_the_measured_winners(n, c_in, c_out, vol, taken):
    geo = conv_plan.Geometry(3, vol, vol, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
    assert conv_plan._algorithm == 'auto'
    assert conv_plan._use_winograd(n, c_in, c_out, geo) is taken


def test_conv_algorithm_restores_and_refuses_unknown_names():
    before = conv_plan._algorithm
    with conv_algorithm('gemm'):
        with pytest.raises(RuntimeError):
            with conv_algorithm('winograd'):
                assert conv_plan._algorithm == 'winograd'
                raise RuntimeError
        assert conv_plan._algorithm == 'gemm'
    assert conv_plan._algorithm == before
    with pytest.raises(ValueError, match=r"conv_algorithm: algorithm must be one of .*'fft'"):
        with conv_algorithm('fft'):
            pass


# ---- the kernels ---------------------------------------------------------------------------------

def test_transforms_are_adjoint_pairs():
    """<output_transform(m), gy> = <m, output_transform_adjoint(gy)>, and likewise the filters."""
    rng = np.random.default_rng(7)
    out = (3, 5, 4)
    tiles = _launch.tile_grid(out)
    m = rng.standard_normal((64, 2, 2 * tiles[0] * tiles[1] * tiles[2]))
    y = np.empty((2, 2) + out)
    cpu.output_transform(m, None, 0, y)
    gy = rng.standard_normal(y.shape)
    gm = np.empty_like(m)
    cpu.output_transform_adjoint(gy, 0, gm)
    np.testing.assert_allclose((y * gy).sum(), (m * gm).sum(), rtol=1e-12)
    w = rng.standard_normal((3, 2, 3, 3, 3))
    u = np.empty((64, 3, 2))
    cpu.filter_transform(w, u)
    gu = rng.standard_normal(u.shape)
    gw = np.empty_like(w)
    cpu.filter_transform_adjoint(gu, gw)
    np.testing.assert_allclose((u * gu).sum(), (w * gw).sum(), rtol=1e-12)


cuda = pytest.importorskip('tensorlite.kernels.cuda.winograd')

TWIN_CASES = [   # volume (T, H, W), padding, output (T, H, W)
    ((3, 4, 5), (1, 0, 2), (3, 4, 7)),
    ((4, 3, 3), (0, 0, 0), (2, 1, 1)),
]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('vol, padding, out', TWIN_CASES)
def test_cuda_twins_match_cpu_twins(vol, padding, out, dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 2) + vol).astype(dtype)
    tiles = _launch.tile_grid(out)
    n_rows = tiles[0] * tiles[1]
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for row0, rows in [(0, n_rows), (n_rows - 1, 1)]:          # every tile row, and the last one
        p = 2 * rows * tiles[2]
        v_cpu = np.full((64, 2, p), np.nan, dtype)
        v_cuda = v_cpu.copy()
        cpu.input_transform(x, padding, tiles, row0, v_cpu)
        cuda.input_transform(x, padding, tiles, row0, v_cuda)
        np.testing.assert_allclose(v_cuda, v_cpu, **tol)
        m = rng.standard_normal((64, 3, p)).astype(dtype)
        for b in (None, rng.standard_normal(3).astype(dtype)):
            y_cpu = np.full((2, 3) + out, np.nan, dtype)        # rows outside the band stay NaN
            y_cuda = y_cpu.copy()
            cpu.output_transform(m, b, row0, y_cpu)
            cuda.output_transform(m, b, row0, y_cuda)
            np.testing.assert_allclose(y_cuda, y_cpu, equal_nan=True, **tol)
        gy = rng.standard_normal((2, 3) + out).astype(dtype)
        gm_cpu = np.full((64, 3, p), np.nan, dtype)
        gm_cuda = gm_cpu.copy()
        cpu.output_transform_adjoint(gy, row0, gm_cpu)
        cuda.output_transform_adjoint(gy, row0, gm_cuda)
        np.testing.assert_allclose(gm_cuda, gm_cpu, **tol)
    w = rng.standard_normal((3, 2, 3, 3, 3)).astype(dtype)
    u_cpu, u_cuda = np.empty((64, 3, 2), dtype), np.empty((64, 3, 2), dtype)
    cpu.filter_transform(w, u_cpu)
    cuda.filter_transform(w, u_cuda)
    np.testing.assert_allclose(u_cuda, u_cpu, **tol)
    gw_cpu, gw_cuda = np.empty_like(w), np.empty_like(w)
    cpu.filter_transform_adjoint(u_cpu, gw_cpu)
    cuda.filter_transform_adjoint(u_cpu, gw_cuda)
    np.testing.assert_allclose(gw_cuda, gw_cpu, **tol)


@pytest.mark.parametrize('module', [cpu, cuda], ids=['cpu', 'cuda'])
def test_kernel_launch_refuses_strided_mixed_and_misshapen_arrays(module):
    x = np.ones((1, 2, 4, 4, 8))
    tiles = (2, 2, 2)
    v = np.empty((64, 2, 8))
    with pytest.raises(ValueError, match=r'input_transform: x \(shape \(1, 2, 4, 4, 4\)\) is not '
                                         r'C-contiguous'):
        module.input_transform(x[..., ::2], (1, 1, 1), tiles, 0, v)
    with pytest.raises(TypeError, match='input_transform: v has dtype float32, x has float64'):
        module.input_transform(x[..., :4].copy(), (1, 1, 1), tiles, 0, v.astype(np.float32))
    with pytest.raises(ValueError, match=r'input_transform: v of shape \(64, 2, 7\) does not fit'):
        module.input_transform(x[..., :4].copy(), (1, 1, 1), tiles, 0, np.empty((64, 2, 7)))
    with pytest.raises(ValueError, match=r'rows \[1, 1 \+ rows\) inside the 4 tile rows'):
        module.input_transform(x[..., :4].copy(), (1, 1, 1), tiles, 1, v)
    with pytest.raises(ValueError, match=r'padding \(-1, 1, 1\) must be >= 0'):
        module.input_transform(x[..., :4].copy(), (-1, 1, 1), tiles, 0, v)
    with pytest.raises(TypeError, match='output_transform: m has dtype int64, expected float32'):
        module.output_transform(np.zeros((64, 2, 8), np.int64), None, 0, np.empty((1, 2, 4, 4, 4)))
    with pytest.raises(ValueError, match=r'output_transform: b has shape \(3,\), expected \(2,\)'):
        module.output_transform(np.zeros((64, 2, 8)), np.zeros(3), 0, np.empty((1, 2, 4, 4, 4)))
    with pytest.raises(ValueError, match=r'output_transform_adjoint: expected gy as \(n, C, T, H, W\)'):
        module.output_transform_adjoint(np.zeros((2, 4, 4, 4)), 0, np.empty((64, 2, 8)))
    with pytest.raises(ValueError, match=r'filter_transform: expected the weight \(C_out, C_in, '
                                         r'3, 3, 3\) .* got shapes \(2, 2, 1, 3, 3\)'):
        module.filter_transform(np.zeros((2, 2, 1, 3, 3)), np.empty((64, 2, 2)))
    with pytest.raises(ValueError, match=r'filter_transform_adjoint: .* \(64, 2, 3\)'):
        module.filter_transform_adjoint(np.zeros((64, 2, 3)), np.empty((2, 2, 3, 3, 3)))


def test_conv3d_on_device_cuda_launches_the_cuda_twins_and_matches_the_cpu(monkeypatch):
    """The functional layer on CuPy arrays (the simulated device without a GPU): the same
    xp.matmul stacks and buffers, the CUDA twins, the CPU's numbers."""
    from tensorlite import backend
    from numba.core import config
    if backend.unavailable_reason() is not None or backend.simulation_requested():
        if not config.ENABLE_CUDASIM:
            pytest.skip('numba.cuda was imported for hardware: the simulator cannot be selected')
        monkeypatch.setenv(backend.SIMULATE_FLAG, '1')
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in ((1, 2, 3, 4, 3), (2, 2, 3, 3, 3), (2,))]
    results = {}
    for device in ('cpu', 'cuda'):
        x, w, b = (tl.tensor(a, device=device, requires_grad=True) for a in arrays)
        with tl.profiler.profile() as prof, conv_algorithm('winograd'):
            y = conv3d(x, w, b, padding=1)
            y.backward(tl.ones_like(y))
        launched = {(e.name, e.device) for e in prof.events() if e.kind == 'kernel'}
        assert {name for name, _ in launched} == {
            'winograd.input_transform', 'winograd.filter_transform', 'winograd.output_transform',
            'winograd.output_transform_adjoint', 'winograd.filter_transform_adjoint'}
        assert {dev for _, dev in launched} == {device}
        results[device] = [t.to('cpu').data for t in (y.detach(), x.grad, w.grad, b.grad)]
    for name, a, r in zip(('y', 'gx', 'gw', 'gb'), results['cuda'], results['cpu']):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-5, err_msg=name)


def test_dispatch_picks_the_cpu_twin_for_numpy_arrays():
    assert kernels.winograd(np.ones(2)) is cpu

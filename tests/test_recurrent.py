"""lstm, gru, lstm_cell, gru_cell and nn.LSTM, GRU, LSTMCell, GRUCell.

Forward values are compared with a plain NumPy LSTM/GRU written here (a per-step loop); gradients
with the same recurrence written with elementary tensorlite ops (linear, sigmoid, tanh, mul, add,
each gradchecked in its own tests) and unrolled over the steps -- a different computation from the
fused kernels' backward through time.  On top: float64 gradcheck (both modes) for the cells and
whole sequences, gradgradcheck for the cells; lengths (padded steps give zero outputs and zero
gradients, h_n as if the short sequence ran alone); a 3,000-step sequence; the CUDA twins against
the CPU twins (under NUMBA_ENABLE_CUDASIM=1 when there is no GPU); bad input; PyTorch (optional).
"""
import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.functional.recurrent import gru, gru_cell, lstm, lstm_cell
from tensorlite.kernels.cpu import recurrent as cpu_rec
from tensorlite.nn.rnn import GRU, LSTM, GRUCell, LSTMCell

from helpers import check_grads, leaf

GATES = {'lstm': 4, 'gru': 3}


# ==================================================================================================
# references
# ==================================================================================================

def np_sigmoid(a):
    return 1 / (1 + np.exp(-a))


def np_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of PyTorch's equations in NumPy: (h', c') (c' None for the GRU)."""
    H = h.shape[1]
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == 'lstm':
        i, f, g, o = np.split(gx + gh, 4, axis=1)
        c_new = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
        return np_sigmoid(o) * np.tanh(c_new), c_new
    r = np_sigmoid(gx[:, :H] + gh[:, :H])
    z = np_sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h, None


def np_rnn(mode, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """The sequence: output (T, N, H) with zeros at padded steps, h_n, c_n (None for the GRU)."""
    T, N = x.shape[:2]
    zeros = np.zeros(w_ih.shape[0])
    b_ih, b_hh = (zeros if b is None else b for b in (b_ih, b_hh))
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    h, c = h0.copy(), None if c0 is None else c0.copy()
    out = np.zeros((T, N, h0.shape[1]))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h_new, c_new = np_step(mode, x[t], h, c, w_ih, w_hh, b_ih, b_hh)
        keep = (t < lengths)[:, None]
        h = np.where(keep, h_new, h)
        c = None if c is None else np.where(keep, c_new, c)
        out[t] = np.where(keep, h_new, 0)
    return out, h, c


def elementary_rnn(mode, x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """The same recurrence with elementary tensorlite ops, unrolled (one graph node per op)."""
    T, N = x.shape[:2]
    H = w_hh.shape[1]
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    outs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        gx, gh = F.linear(x[t], w_ih, b_ih), F.linear(h, w_hh, b_hh)
        if mode == 'lstm':
            z = gx + gh
            i, f, o = (F.sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
            c_new = f * c + i * F.tanh(z[:, 2 * H:3 * H])
            h_new = o * F.tanh(c_new)
        else:
            r = F.sigmoid(gx[:, :H] + gh[:, :H])
            zz = F.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
            n = F.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
            h_new = (1 - zz) * n + zz * h
        keep = tl.tensor((t < lengths)[:, None].astype(np.float64))
        h = keep * h_new + (1 - keep) * h
        if mode == 'lstm':
            c = keep * c_new + (1 - keep) * c
        outs[t] = keep * h_new
    return F.stack(outs, 0), h, c


def run_functional(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, reverse=False):
    """(output, h_n, c_n or None) of functional.lstm / gru."""
    if mode == 'lstm':
        hx = None if h0 is None else (h0, c0)
        out, (h_n, c_n) = lstm(x, hx, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
        return out, h_n, c_n
    out, h_n = gru(x, h0, w_ih, w_hh, b_ih, b_hh, lengths=lengths, reverse=reverse)
    return out, h_n, None


def make_arrays(mode, T, N, I, H, seed=0, scale=0.6):
    """x, h0, c0, w_ih, w_hh, b_ih, b_hh as float64 arrays (c0 None for the GRU)."""
    rng = np.random.default_rng(seed)
    G = GATES[mode] * H
    return (rng.standard_normal((T, N, I)), rng.standard_normal((N, H)),
            rng.standard_normal((N, H)) if mode == 'lstm' else None,
            scale * rng.standard_normal((G, I)), scale * rng.standard_normal((G, H)),
            scale * rng.standard_normal(G), scale * rng.standard_normal(G))


def leaves(arrays):
    return [None if a is None else leaf(a) for a in arrays]


# ==================================================================================================
# whole sequences: values, gradients, gradcheck
# ==================================================================================================

SEQ_CASES = [  # (lengths, reverse, bias)
    (None, False, True), (None, True, True), (None, False, False),
    ([4, 1, 3], False, True), ([4, 1, 3], True, True), ([2, 4, 4], True, False),
]


@pytest.mark.parametrize('lengths, reverse, bias', SEQ_CASES)
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_sequence_matches_numpy_and_the_unrolled_elementary_graph(mode, lengths, reverse, bias):
    arrays = list(make_arrays(mode, 4, 3, 5, 6, seed=1))
    if not bias:
        arrays[5:] = [None, None]
    out, h_n, c_n = run_functional(mode, *leaves(arrays), lengths=lengths, reverse=reverse)
    ref = np_rnn(mode, *arrays, lengths=lengths, reverse=reverse)
    for got, want in zip((out, h_n, c_n), ref):
        if want is not None:
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)

    rng = np.random.default_rng(2)
    seeds = [rng.standard_normal(a.shape) for a in ref if a is not None]
    grads = []
    for fn in (run_functional, elementary_rnn):
        inputs = leaves(arrays)
        outs = [o for o in fn(mode, *inputs, lengths=lengths, reverse=reverse) if o is not None]
        sum((o * tl.tensor(s)).sum() for o, s in zip(outs, seeds)).backward()
        grads.append([None if t is None else t.grad.numpy() for t in inputs])
    for k, (g, e) in enumerate(zip(*grads)):
        if e is not None:
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12, err_msg=f'input {k}')


@pytest.mark.parametrize('lengths, reverse', [(None, False), (None, True), ([3, 1], False),
                                              ([2, 3], True)])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_sequence_gradchecks(mode, lengths, reverse):
    inputs = leaves(make_arrays(mode, 3, 2, 2, 2, seed=3))
    if mode == 'lstm':
        fn = lambda x, h, c, *w: run_functional(mode, x, h, c, *w, lengths, reverse)  # noqa
    else:
        inputs.pop(2)
        fn = lambda x, h, *w: run_functional(mode, x, h, None, *w, lengths, reverse)[:2]  # noqa
    check_grads(fn, inputs, second=False)


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_sequence_double_backward_raises_naming_the_op(mode):
    x, h0, c0, *w = leaves(make_arrays(mode, 2, 1, 2, 2))
    out = run_functional(mode, x, h0, c0, *w)[0]
    with pytest.raises(NotImplementedError, match=f'^{mode}: double backward'):
        tl.autograd.grad(out.sum(), [x], create_graph=True)


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_only_the_gradients_asked_for_and_float32_stays_float32(mode):
    arrays = make_arrays(mode, 3, 2, 3, 4, seed=4)
    x = tl.tensor(arrays[0].astype(np.float32), requires_grad=True)
    w = [tl.tensor(a.astype(np.float32)) for a in arrays[3:]]
    w[1].requires_grad = True                                  # w_hh only, besides x
    out, h_n, _ = run_functional(mode, x, None, None, *w)
    assert out.dtype == np.float32 and h_n.dtype == np.float32
    (out.sum() + h_n.sum()).backward()
    assert x.grad.dtype == np.float32 and w[1].grad.dtype == np.float32
    assert all(t.grad is None for k, t in enumerate(w) if k != 1)
    ref_x = leaf(arrays[0])
    ref_w = leaves(arrays[3:])
    o, hn, _ = elementary_rnn(mode, ref_x, tl.zeros(2, 4, dtype=tl.float64),
                              tl.zeros(2, 4, dtype=tl.float64), *ref_w)
    (o.sum() + hn.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), ref_x.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w[1].grad.numpy(), ref_w[1].grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_writing_into_the_output_in_place_is_caught(mode):
    """The output shares memory with the states saved for backward."""
    x, h0, c0, *w = leaves(make_arrays(mode, 3, 2, 2, 2))
    out = run_functional(mode, x, h0, c0, *w)[0]
    loss = out.sum()
    with tl.no_grad():
        out.add_(1.0)
    with pytest.raises(RuntimeError, match='modified by an in-place operation'):
        loss.backward()


# ==================================================================================================
# lengths
# ==================================================================================================

@pytest.mark.parametrize('reverse', [False, True])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_padded_steps_output_zero_leak_no_gradient_and_h_n_is_the_short_run(mode, reverse):
    T, lengths = 5, [5, 2, 3, 1]
    arrays = make_arrays(mode, T, 4, 3, 4, seed=5)
    inputs = leaves(arrays)
    out, h_n, c_n = run_functional(mode, *inputs, lengths=lengths, reverse=reverse)
    (out.sum() + 2 * h_n.sum() + (0 if c_n is None else 3 * c_n.sum())).backward()
    dx = inputs[0].grad.numpy()
    for n, L in enumerate(lengths):
        assert np.all(out.numpy()[L:, n] == 0)
        assert np.all(dx[L:, n] == 0)                  # exactly zero, not small
        assert np.all(np.abs(dx[:L, n]) > 0)
        # sample n alone, cut to its own length
        alone = [None if a is None else a[:L, n:n + 1] if k == 0 else
                 a[n:n + 1] if k in (1, 2) else a for k, a in enumerate(arrays)]
        o1, h1, c1 = run_functional(mode, *leaves(alone), reverse=reverse)
        np.testing.assert_allclose(out.numpy()[:L, n], o1.numpy()[:, 0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h_n.numpy()[n], h1.numpy()[0], rtol=1e-12, atol=1e-13)
        if c_n is not None:
            np.testing.assert_allclose(c_n.numpy()[n], c1.numpy()[0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('lengths', [[3, 2], (3, 2), np.array([3, 2]), tl.tensor(np.array([3, 2]))],
                         ids=['list', 'tuple', 'numpy', 'tensor'])
def test_lengths_accept_lists_tuples_arrays_and_tensors(lengths):
    x, h0, c0, *w = leaves(make_arrays('lstm', 3, 2, 2, 2))
    out = run_functional('lstm', x, h0, c0, *w, lengths=lengths)[0]
    assert np.all(out.numpy()[2, 1] == 0) and np.all(out.numpy()[2, 0] != 0)


def test_a_3000_step_sequence_backprops():
    """One Function for the whole sequence: no per-step graph nodes, no recursion; the gradient of
    the first input against central differences."""
    T = 3000
    x, h0, c0, *w = make_arrays('lstm', T, 1, 1, 2, seed=6, scale=0.4)
    xs = leaf(x)
    out, (h_n, c_n) = lstm(xs, None, *leaves(w))
    ref = np_rnn('lstm', x, 0 * h0[:1], 0 * c0[:1], *w)[0]
    np.testing.assert_allclose(out.numpy()[-5:], ref[-5:], rtol=1e-10, atol=1e-12)
    (out.sum() + h_n.sum()).backward()
    assert xs.grad.shape == x.shape and np.isfinite(xs.grad.numpy()).all()
    eps = 1e-6

    def loss(v):
        a = x.copy()
        a[0, 0, 0] = v
        o, h, _ = np_rnn('lstm', a, 0 * h0[:1], 0 * c0[:1], *w)
        return o.sum() + h.sum()
    numeric = (loss(x[0, 0, 0] + eps) - loss(x[0, 0, 0] - eps)) / (2 * eps)
    assert abs(xs.grad.numpy()[0, 0, 0] - numeric) < 1e-6 * max(1, abs(numeric))


# ==================================================================================================
# cells: both backward paths, gradcheck and gradgradcheck
# ==================================================================================================

def run_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    if mode == 'lstm':
        return lstm_cell(x, None if h is None else (h, c), w_ih, w_hh, b_ih, b_hh)
    return (gru_cell(x, h, w_ih, w_hh, b_ih, b_hh),)


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cell_matches_numpy_and_the_elementary_graph(mode, bias):
    x, h, c, *w = make_arrays(mode, 1, 3, 4, 5, seed=7)
    if not bias:
        w[2:] = [None, None]
    outs = run_cell(mode, *leaves((x[0], h, c, *w)))
    zeros = np.zeros(GATES[mode] * 5)
    want = np_step(mode, x[0], h, c, *w[:2], *(zeros if b is None else b for b in w[2:]))
    for o, e in zip(outs, want):
        np.testing.assert_allclose(o.numpy(), e, rtol=1e-12, atol=1e-13)
    # both backward paths (kernels, and Tensor ops under create_graph) against the elementary graph
    rng = np.random.default_rng(8)
    seeds = [rng.standard_normal(o.shape) for o in outs]
    results = []
    for fn, create_graph in ((run_cell, False), (run_cell, True), (elementary_rnn, False)):
        inputs = leaves((x, h, c, *w)) if fn is elementary_rnn else leaves((x[0], h, c, *w))
        outs = fn(mode, *inputs)
        if fn is elementary_rnn:                       # (output, h', c'): a one-step sequence
            outs = [o for o in outs[1:] if o is not None]
        ts = [t for t in inputs if t is not None]
        gs = tl.autograd.grad(outs, ts, [tl.tensor(s) for s in seeds],
                              create_graph=create_graph, allow_unused=True)
        assert all((g is not None and g.grad_fn is not None) == create_graph for g in gs
                   if g is not None)
        results.append([None if g is None else g.numpy().reshape(t.shape[-2:] if t.ndim == 3
                                                                  else t.shape)
                        for g, t in zip(gs, ts)])
    for k, (a, b, e) in enumerate(zip(*results)):
        if e is None:
            assert a is None and b is None
            continue
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12, err_msg=f'input {k}')
        np.testing.assert_allclose(b, e, rtol=1e-10, atol=1e-12, err_msg=f'input {k}')


@pytest.mark.parametrize('hx', [True, False], ids=['hx', 'no_hx'])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cell_gradchecks_and_gradgradchecks(mode, hx):
    x, h, c, *w = make_arrays(mode, 1, 2, 3, 2, seed=9)
    inputs = [leaf(x[0])] + (leaves((h, c) if mode == 'lstm' else (h,)) if hx else []) + leaves(w)
    if mode == 'lstm' and hx:
        fn = lambda x, h, c, *w: lstm_cell(x, (h, c), *w)  # noqa
    elif mode == 'lstm':
        fn = lambda x, *w: lstm_cell(x, None, *w)  # noqa
    elif hx:
        fn = lambda x, h, *w: gru_cell(x, h, *w)  # noqa
    else:
        fn = lambda x, *w: gru_cell(x, None, *w)  # noqa
    check_grads(fn, inputs)


# ==================================================================================================
# the kernels: CPU twins against their docstring formulas, CUDA twins against CPU twins
# ==================================================================================================

def kernel_inputs(mode, N, H, dtype, seed=10):
    rng = np.random.default_rng(seed)
    G = GATES[mode] * H
    r = lambda *s: (2 * rng.standard_normal(s)).astype(dtype)  # noqa
    return dict(x_gates=r(N, G), h_gates=r(N, G), h_prev=r(N, H), c_prev=r(N, H), b_hn=r(H),
                dy=r(N, H), dh_rec=r(N, H), dh=r(N, H), dc=r(N, H),
                valid=np.arange(N) % 3 != 1)


def run_kernels(module, mode, a):
    """Forward then backward of one step on copies of `a`; every array written, in a dict."""
    a = {k: v.copy() for k, v in a.items()}
    N, H = a['h_prev'].shape
    G = a['x_gates'].shape[1]
    e = lambda *s: np.full(s, np.nan, a['h_prev'].dtype)  # noqa  (NaN: an unwritten value shows)
    act = a['x_gates']                                     # in place, as the Functions do
    if mode == 'lstm':
        h, c, tc = e(N, H), e(N, H), np.zeros((N, H), act.dtype)
        module.lstm_fwd(a['x_gates'], a['h_gates'], a['h_prev'], a['c_prev'], a['valid'], act,
                        h, c, tc)
        dg = e(N, G)
        module.lstm_bwd(a['dy'], a['dh_rec'], act, tc, a['c_prev'], a['valid'], a['dh'], a['dc'],
                        dg)
        return dict(act=act, h=h, c=c, tanh_c=tc, dgates=dg, dh=a['dh'], dc=a['dc'])
    hn, h = np.zeros((N, H), act.dtype), e(N, H)
    module.gru_fwd(a['x_gates'], a['h_gates'], a['b_hn'], a['h_prev'], a['valid'], act, hn, h)
    dgx, dgh = e(N, G), e(N, G)
    module.gru_bwd(a['dy'], a['dh_rec'], act, hn, a['h_prev'], a['valid'], a['dh'], dgx, dgh)
    return dict(act=act, hn=hn, h=h, dgates_x=dgx, dgates_h=dgh, dh=a['dh'])


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cpu_kernels_match_their_formulas(mode):
    a = kernel_inputs(mode, 4, 3, np.float64)
    got = run_kernels(cpu_rec, mode, a)
    v, H = a['valid'], 3
    z = a['x_gates'] + a['h_gates']
    gh = a['dy'] + a['dh_rec'] + a['dh']
    if mode == 'lstm':
        i, f, o = (np_sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * a['c_prev'] + i * g
        h = o * np.tanh(c)
        # backward by the chain rule through c and h, written out separately from the kernel
        gc = a['dc'] + gh * o * (1 - np.tanh(c) ** 2)
        dg = np.concatenate([gc * g * i * (1 - i), gc * a['c_prev'] * f * (1 - f),
                             gc * i * (1 - g ** 2), gh * np.tanh(c) * o * (1 - o)], axis=1)
        want = dict(h=np.where(v[:, None], h, a['h_prev']), c=np.where(v[:, None], c, a['c_prev']),
                    dgates=np.where(v[:, None], dg, 0),
                    dh=np.where(v[:, None], 0, a['dh'] + a['dh_rec']),
                    dc=np.where(v[:, None], gc * f, a['dc']))
        np.testing.assert_allclose(got['act'][v], np.concatenate([i, f, g, o], axis=1)[v],
                                   rtol=1e-13, atol=1e-14)
    else:
        r, zz = np_sigmoid(z[:, :H]), np_sigmoid(z[:, H:2 * H])
        hn = a['h_gates'][:, 2 * H:] + a['b_hn']
        n = np.tanh(a['x_gates'][:, 2 * H:] + r * hn)
        h = (1 - zz) * n + zz * a['h_prev']
        dn = gh * (1 - zz) * (1 - n ** 2)
        drz = [dn * hn * r * (1 - r), gh * (a['h_prev'] - n) * zz * (1 - zz)]
        want = dict(h=np.where(v[:, None], h, a['h_prev']),
                    dgates_x=np.where(v[:, None], np.concatenate(drz + [dn], axis=1), 0),
                    dgates_h=np.where(v[:, None], np.concatenate(drz + [dn * r], axis=1), 0),
                    dh=np.where(v[:, None], gh * zz, a['dh'] + a['dh_rec']))
        np.testing.assert_allclose(got['hn'][v], hn[v], rtol=1e-13, atol=1e-14)
    for k, e in want.items():
        np.testing.assert_allclose(got[k], e, rtol=1e-12, atol=1e-13, err_msg=k)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cpu_kernels_saturate_without_nan(mode, dtype):
    """exp overflows to inf for large pre-activations: the gates must come out 0, 1 or -1."""
    a = kernel_inputs(mode, 3, 2, dtype)
    a['x_gates'] *= 1e4
    got = run_kernels(cpu_rec, mode, a)
    assert all(np.isfinite(v).all() for v in got.values())
    assert set(np.unique(got['act'][a['valid']])) <= {-1, 0, 1}


cuda_rec = pytest.importorskip('tensorlite.kernels.cuda.recurrent')


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_cuda_twins_match_cpu_twins(mode, dtype):
    a = kernel_inputs(mode, 3, 5, dtype, seed=11)
    cpu, gpu = run_kernels(cpu_rec, mode, a), run_kernels(cuda_rec, mode, a)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for k in cpu:
        valid_rows = a['valid'] if k in ('act', 'tanh_c', 'hn') else slice(None)
        np.testing.assert_allclose(gpu[k][valid_rows], cpu[k][valid_rows], err_msg=k, **tol)


# ==================================================================================================
# bad input
# ==================================================================================================

def _lstm_args(T=3, N=2, I=4, H=5, dtype=np.float64):
    x, h, c, *w = make_arrays('lstm', T, N, I, H)
    return [tl.tensor(a.astype(dtype)) for a in (x, h, c, *w)]


@pytest.mark.parametrize('change, error, pattern', [
    (lambda a: a.__setitem__(0, tl.zeros(3, 2)), ValueError, r'input must be \(T, N, input_size\)'),
    (lambda a: a.__setitem__(3, tl.zeros(20, 3, dtype=tl.float64)), ValueError,
     r'w_ih has shape \(20, 3\), expected \(4\*hidden_size, input_size\) = \(20, 4\)'),
    (lambda a: a.__setitem__(4, tl.zeros(15, 5, dtype=tl.float64)), ValueError,
     r'w_hh must be a Tensor \(4\*hidden_size, hidden_size\)'),
    (lambda a: a.__setitem__(5, tl.zeros(7, dtype=tl.float64)), ValueError,
     r'b_ih has shape \(7,\), expected \(20,\)'),
    (lambda a: a.__setitem__(1, tl.zeros(3, 5, dtype=tl.float64)), ValueError,
     r'h0 has shape \(3, 5\), expected \(2, 5\)'),
    (lambda a: a.__setitem__(4, a[4].float()), TypeError, 'w_hh has dtype float32, the input has '
                                                            'float64'),
    (lambda a: a.__setitem__(0, tl.zeros(0, 2, 4, dtype=tl.float64)), ValueError,
     'input has no time steps'),
    (lambda a: a.__setitem__(0, tl.zeros(3, 2, 4, dtype=tl.int64)), TypeError,
     'needs a float32 or float64 input, got dtype int64'),
])
def test_bad_sequence_input(change, error, pattern):
    args = _lstm_args()
    change(args)
    x, h, c, *w = args
    with pytest.raises(error, match='^lstm: ' + pattern):
        lstm(x, (h, c), *w)


@pytest.mark.parametrize('lengths, error, pattern', [
    ([3], ValueError, r'one length per batch sample \(2\)'),
    ([0, 3], ValueError, r'lengths must be in 1..3'),
    ([2, 4], ValueError, r'lengths must be in 1..3'),
    ([1.5, 2], TypeError, 'lengths must be integers'),
])
def test_bad_lengths(lengths, error, pattern):
    x, h, c, *w = _lstm_args()
    with pytest.raises(error, match=pattern):
        lstm(x, (h, c), *w, lengths=lengths)
    with pytest.raises(error, match=pattern):
        gru(x, None, *[tl.zeros(15, s, dtype=tl.float64) for s in (4, 5)], lengths=lengths)


def test_bad_cell_input_and_kernel_arguments():
    x, h, c, *w = _lstm_args()
    with pytest.raises(ValueError, match=r'^lstm_cell: input must be \(N, input_size\)'):
        lstm_cell(x, (h, c), *w)
    with pytest.raises(TypeError, match=r'^lstm_cell: hx must be a pair \(h, c\)'):
        lstm_cell(x[0], h, *w)
    with pytest.raises(ValueError, match=r'^gru_cell: hx has shape \(2, 5\), expected \(2, 6\)'):
        gru_cell(x[0], h, tl.zeros(18, 4, dtype=tl.float64), tl.zeros(18, 6, dtype=tl.float64))
    a = kernel_inputs('lstm', 2, 3, np.float64)
    out = np.empty((2, 3))
    with pytest.raises(ValueError,
                       match=r'lstm_fwd: h_prev \(shape \(2, 3\)\) is not C-contiguous'):
        cpu_rec.lstm_fwd(a['x_gates'], a['h_gates'], np.asfortranarray(a['h_prev']), a['c_prev'],
                         a['valid'], a['x_gates'], out, out.copy(), out.copy())
    with pytest.raises(TypeError, match='lstm_fwd: c_prev has dtype float32, x_gates has float64'):
        cpu_rec.lstm_fwd(a['x_gates'], a['h_gates'], a['h_prev'], a['c_prev'].astype(np.float32),
                         a['valid'], a['x_gates'], out, out.copy(), out.copy())
    with pytest.raises(ValueError, match=r'lstm_fwd: valid must be a C-contiguous bool array'):
        cpu_rec.lstm_fwd(a['x_gates'], a['h_gates'], a['h_prev'], a['c_prev'],
                         a['valid'].astype(np.int8), a['x_gates'], out, out.copy(), out.copy())


# ==================================================================================================
# nn: parameters, layers, directions, batch_first, unbatched, dropout
# ==================================================================================================

def expected_parameters(mode, I, H, L, D, bias):
    """PyTorch's names, order and shapes, written out."""
    G = GATES[mode] * H
    out = []
    for layer in range(L):
        for suffix in ('', '_reverse')[:D]:
            inp = I if layer == 0 else D * H
            out += [(f'weight_ih_l{layer}{suffix}', (G, inp)),
                    (f'weight_hh_l{layer}{suffix}', (G, H))]
            if bias:
                out += [(f'bias_ih_l{layer}{suffix}', (G,)), (f'bias_hh_l{layer}{suffix}', (G,))]
    return out


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('cls, mode', [(LSTM, 'lstm'), (GRU, 'gru')])
def test_parameters_names_order_shapes_and_init(cls, mode, bias):
    tl.manual_seed(0)
    m = cls(3, 16, num_layers=2, bidirectional=True, bias=bias)
    got = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    assert got == expected_parameters(mode, 3, 16, 2, 2, bias)
    values = np.concatenate([p.numpy().ravel() for p in m.parameters()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.24     # U(-1/4, 1/4)
    cell = (LSTMCell if mode == 'lstm' else GRUCell)(3, 16, bias=bias)
    names = ['weight_ih', 'weight_hh'] + (['bias_ih', 'bias_hh'] if bias else [])
    assert list(cell.state_dict()) == names
    assert tuple(cell.weight_ih.shape) == (GATES[mode] * 16, 3)


def test_extra_repr_as_pytorch():
    assert repr(LSTM(10, 20)) == 'LSTM(10, 20)'
    assert repr(GRU(10, 20, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                    bidirectional=True)) == ('GRU(10, 20, num_layers=2, bias=False, '
                                             'batch_first=True, dropout=0.5, bidirectional=True)')
    assert repr(LSTMCell(3, 4)) == 'LSTMCell(3, 4)'
    assert repr(GRUCell(3, 4, bias=False)) == 'GRUCell(3, 4, bias=False)'


def module_reference(mode, m, x, hx, lengths):
    """The stacked, bidirectional layer built from np_rnn, layer by layer (no dropout)."""
    D, L, H = m.num_directions, m.num_layers, m.hidden_size
    N = x.shape[1]
    h0 = np.zeros((L * D, N, H)) if hx is None else hx[0]
    c0 = np.zeros((L * D, N, H)) if hx is None or mode == 'gru' else hx[1]
    finals_h, finals_c, inp = [], [], x
    for layer in range(L):
        outs = []
        for d in range(D):
            w = [None if p is None else p.numpy() for p in m._weights(layer, d)]
            k = layer * D + d
            o, h, c = np_rnn(mode, inp, h0[k], c0[k] if mode == 'lstm' else None, *w,
                             lengths=lengths, reverse=d == 1)
            outs.append(o)
            finals_h.append(h)
            finals_c.append(c)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(finals_h), None if mode == 'gru' else np.stack(finals_c)


@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('lengths', [None, [3, 1]])
@pytest.mark.parametrize('cls, mode', [(LSTM, 'lstm'), (GRU, 'gru')])
def test_multilayer_bidirectional_matches_numpy_and_gradchecks(cls, mode, lengths, batch_first):
    tl.manual_seed(1)
    m = cls(2, 2, num_layers=2, bidirectional=True, batch_first=batch_first).double()
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 2, 2))
    hx = [rng.standard_normal((4, 2, 2)) for _ in range(2 if mode == 'lstm' else 1)]
    xin = x.transpose(1, 0, 2) if batch_first else x
    state = tuple(leaves(hx)) if mode == 'lstm' else leaf(hx[0])
    out, finals = m(leaf(xin), state, lengths=lengths)
    finals = finals if mode == 'lstm' else (finals,)
    want = module_reference(mode, m, x, hx, lengths)
    got_out = out.numpy().transpose(1, 0, 2) if batch_first else out.numpy()
    np.testing.assert_allclose(got_out, want[0], rtol=1e-12, atol=1e-13)
    for f, w in zip(finals, want[1:]):
        np.testing.assert_allclose(f.numpy(), w, rtol=1e-12, atol=1e-13)

    def fn(x, *states_and_params):          # the parameters are perturbed in place by gradcheck
        states = states_and_params[:len(hx)]
        o, fin = m(x, tuple(states) if mode == 'lstm' else states[0], lengths=lengths)
        return (o,) + (fin if mode == 'lstm' else (fin,))
    check_grads(fn, [leaf(xin)] + leaves(hx) + list(m.parameters()), second=False)


@pytest.mark.parametrize('cls', [LSTM, GRU])
def test_unbatched_input_and_cells(cls):
    tl.manual_seed(2)
    m = cls(3, 4, num_layers=2).double()
    x = np.random.default_rng(13).standard_normal((5, 3))
    out, fin = m(leaf(x))
    ref_out, ref_fin = m(leaf(x[:, None]))
    np.testing.assert_allclose(out.numpy(), ref_out.numpy()[:, 0], rtol=1e-14)
    fin, ref_fin = (fin, ref_fin) if cls is LSTM else ((fin,), (ref_fin,))
    for f, r in zip(fin, ref_fin):
        assert tuple(f.shape) == (2, 4)
        np.testing.assert_allclose(f.numpy(), r.numpy()[:, 0], rtol=1e-14)
    cell = (LSTMCell if cls is LSTM else GRUCell)(3, 4).double()
    one = cell(leaf(x[0]))
    batch = cell(leaf(x[:1]))
    one, batch = (one, batch) if cls is LSTM else ((one,), (batch,))
    for a, b in zip(one, batch):
        np.testing.assert_allclose(a.numpy(), b.numpy()[0], rtol=1e-14)


def test_dropout_acts_between_layers_in_training_only():
    tl.manual_seed(3)
    m = LSTM(3, 8, num_layers=2, dropout=0.5).double()
    plain = LSTM(3, 8, num_layers=2).double()
    plain.load_state_dict(m.state_dict())
    x = tl.tensor(np.random.default_rng(14).standard_normal((4, 2, 3)))
    m.eval()
    np.testing.assert_array_equal(m(x)[0].numpy(), plain(x)[0].numpy())
    m.train()
    a, b = m(x)[0].numpy(), m(x)[0].numpy()
    assert not np.allclose(a, b) and not np.allclose(a, plain(x)[0].numpy())
    with pytest.warns(UserWarning, match='dropout acts between layers only'):
        LSTM(3, 8, dropout=0.2)


def test_bad_module_input():
    m = LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r'LSTM: input has 5 features in its last dim, expected '
                                         r'input_size=3'):
        m(tl.zeros(2, 1, 5))
    with pytest.raises(ValueError, match=r'LSTM: h_0 must be a Tensor of shape \(2, 1, 4\)'):
        m(tl.zeros(2, 1, 3), (tl.zeros(1, 1, 4), tl.zeros(2, 1, 4)))
    with pytest.raises(ValueError, match=r'GRU: expected input \(N, T, input_size\)'):
        GRU(3, 4, batch_first=True)(tl.zeros(3))
    with pytest.raises(ValueError, match='LSTM: hidden_size must be a positive integer'):
        LSTM(3, 0)


# ==================================================================================================
# PyTorch (optional)
# ==================================================================================================

def _torch_pair(torch, cls_name, *args, **kwargs):
    torch.manual_seed(0)
    tm = getattr(torch.nn, cls_name)(*args, **kwargs).double()
    m = {'LSTM': LSTM, 'GRU': GRU, 'LSTMCell': LSTMCell, 'GRUCell': GRUCell}[cls_name](
        *args, **kwargs).double()
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(sd) == list(m.state_dict())
    m.load_state_dict(sd)
    return tm, m


def _compare_grads(tm, m, pairs):
    for (a, b) in pairs:
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (k, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=k)


@pytest.mark.optional
@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('cls_name', ['LSTM', 'GRU'])
def test_pytorch_state_dict_outputs_and_gradients(cls_name, batch_first):
    torch = pytest.importorskip('torch')
    tm, m = _torch_pair(torch, cls_name, 3, 5, num_layers=2, bidirectional=True,
                        batch_first=batch_first)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 4, 3) if batch_first else (4, 2, 3))
    hx = [rng.standard_normal((4, 2, 5)) for _ in range(2 if cls_name == 'LSTM' else 1)]
    tx, thx = torch.tensor(x, requires_grad=True), [torch.tensor(h, requires_grad=True) for h in hx]
    X, HX = leaf(x), leaves(hx)
    to, tfin = tm(tx, tuple(thx) if cls_name == 'LSTM' else thx[0])
    o, fin = m(X, tuple(HX) if cls_name == 'LSTM' else HX[0])
    tfin, fin = (tfin, fin) if cls_name == 'LSTM' else ((tfin,), (fin,))
    np.testing.assert_allclose(o.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    seeds = [rng.standard_normal(t.shape) for t in (to,) + tuple(tfin)]
    sum((t * torch.tensor(s)).sum() for t, s in zip((to,) + tuple(tfin), seeds)).backward()
    sum((t * tl.tensor(s)).sum() for t, s in zip((o,) + tuple(fin), seeds)).backward()
    for a, b in zip(tfin, fin):
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-12)
    _compare_grads(tm, m, [(tx, X)] + list(zip(thx, HX)))


@pytest.mark.optional
@pytest.mark.parametrize('cls_name', ['LSTM', 'GRU'])
def test_pytorch_packed_sequences_match_lengths(cls_name):
    torch = pytest.importorskip('torch')
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    tm, m = _torch_pair(torch, cls_name, 3, 4, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(16)
    lengths = [2, 5, 1, 4]
    x = rng.standard_normal((5, 4, 3))
    tx, X = torch.tensor(x, requires_grad=True), leaf(x)
    packed = pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False)
    to, tfin = tm(packed)
    to = pad_packed_sequence(to, total_length=5)[0]
    o, fin = m(X, lengths=tl.tensor(np.array(lengths)))
    tfin, fin = (tfin, fin) if cls_name == 'LSTM' else ((tfin,), (fin,))
    np.testing.assert_allclose(o.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(tfin, fin):
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-12)
    seeds = [rng.standard_normal(t.shape) for t in (to,) + tuple(tfin)]
    sum((t * torch.tensor(s)).sum() for t, s in zip((to,) + tuple(tfin), seeds)).backward()
    sum((t * tl.tensor(s)).sum() for t, s in zip((o,) + tuple(fin), seeds)).backward()
    _compare_grads(tm, m, [(tx, X)])


@pytest.mark.optional
@pytest.mark.parametrize('cls_name', ['LSTMCell', 'GRUCell'])
def test_pytorch_cells(cls_name):
    torch = pytest.importorskip('torch')
    tm, m = _torch_pair(torch, cls_name, 3, 4)
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 3))
    hx = [rng.standard_normal((2, 4)) for _ in range(2 if cls_name == 'LSTMCell' else 1)]
    tx, thx = torch.tensor(x, requires_grad=True), [torch.tensor(h, requires_grad=True) for h in hx]
    X, HX = leaf(x), leaves(hx)
    touts = tm(tx, tuple(thx) if cls_name == 'LSTMCell' else thx[0])
    outs = m(X, tuple(HX) if cls_name == 'LSTMCell' else HX[0])
    touts, outs = (touts, outs) if cls_name == 'LSTMCell' else ((touts,), (outs,))
    seeds = [rng.standard_normal((2, 4)) for _ in touts]
    for a, b in zip(touts, outs):
        np.testing.assert_allclose(b.numpy(), a.detach().numpy(), rtol=1e-12, atol=1e-13)
    sum((t * torch.tensor(s)).sum() for t, s in zip(touts, seeds)).backward()
    sum((t * tl.tensor(s)).sum() for t, s in zip(outs, seeds)).backward()
    _compare_grads(tm, m, [(tx, X)] + list(zip(thx, HX)))

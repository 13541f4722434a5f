"""scaled_dot_product_attention: both paths (plain and blockwise) against a NumPy reference written
here (forward and hand-derived gradients), float64 gradcheck (and gradgradcheck on the plain path)
with bool, float and causal masks, broadcast masks and leading dims, L != S, Ev != E and a given
scale; the blockwise path with small blocks so that several query tiles, several key blocks and
ragged last blocks are exercised; the two paths against each other; dropout; the kernels (CPU
twins against NumPy, CUDA twins against CPU twins under NUMBA_ENABLE_CUDASIM=1); bad input; and
PyTorch (optional).

The reference gradients: with W = P * keep the weights the values are averaged with,
    dv = W^T dO,   dP = (dO v^T) * keep,   dZ = P * (dP - rowsum(dP * P)),
    dq = scale dZ k,   dk = scale dZ^T q,   dmask = dZ,
each summed back over the dims its input was broadcast along.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
from tensorlite.functional import attention as A
from tensorlite.functional.attention import (attention_path, blockwise_attention, plain_attention,
                                             scaled_dot_product_attention)
from tensorlite.kernels.cpu import attention as cpu_att

from helpers import check_grads, leaf

# small blocks: with L, S of 5 to 11 every case has several query tiles and key blocks, the last
# ones ragged
SMALL = dict(block_q=3, block_k=4)


def blockwise_small(*args, **kw):
    return blockwise_attention(*args, **SMALL, **kw)


PATHS = {'plain': plain_attention, 'blockwise': blockwise_small}


# ==================================================================================================
# the NumPy reference
# ==================================================================================================

def sum_back(g, shape):
    """g summed over the dims that broadcasting added or stretched, to `shape`."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead)))
    return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1),
                 keepdims=True)


def additive(mask, L, S, causal):
    """The mask as numbers added to the scores (bool False -> -inf), causal as tril(ones(L, S))."""
    if causal:
        return np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf)
    if mask is None:
        return np.zeros((L, S))
    return np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask


def np_attention(q, k, v, gout, mask=None, causal=False, scale=None, keep=None):
    """(out, dq, dk, dv, dmask) in float64; rows with every key masked give 0 (PyTorch 2.13)."""
    L, S, E = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1 / math.sqrt(E) if scale is None else scale
    z = scale * (q @ np.swapaxes(k, -1, -2)) + additive(mask, L, S, causal)
    live = np.isfinite(z.max(axis=-1, keepdims=True))
    zs = np.where(live, z, 0.0)
    e = np.exp(zs - zs.max(axis=-1, keepdims=True))
    p = np.where(live, e / e.sum(axis=-1, keepdims=True), 0.0)
    keep = 1.0 if keep is None else keep
    w = p * keep
    out = w @ v
    dv = np.swapaxes(w, -1, -2) @ gout
    dp = (gout @ np.swapaxes(v, -1, -2)) * keep
    dz = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = scale * dz @ k
    dk = scale * np.swapaxes(dz, -1, -2) @ q
    dmask = None if mask is None or mask.dtype == bool else sum_back(dz, mask.shape)
    return out, sum_back(dq, q.shape), sum_back(dk, k.shape), sum_back(dv, v.shape), dmask


def make_mask(rng, kind, shape):
    if kind == 'bool':
        m = rng.random(shape) > 0.35
        m.reshape(-1, shape[-1])[0] = False         # one fully masked row
        return m
    if kind == 'float':
        return rng.standard_normal(shape)
    if kind == 'float_inf':                         # float masks may hold -inf too
        m = rng.standard_normal(shape)
        m[rng.random(shape) < 0.3] = -np.inf
        return m
    return None


# (q shape, k shape, v shape, mask kind, mask shape, is_causal, scale)
CASES = {
    'plain': ((2, 7, 5), (2, 9, 5), (2, 9, 4), None, None, False, None),
    'broadcast_heads': ((2, 3, 7, 5), (3, 9, 5), (1, 3, 9, 6), None, None, False, 0.3),
    'bool_mask': ((2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 4), 'bool', (2, 3, 7, 9), False, None),
    'bool_key_padding': ((2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 4), 'bool', (2, 1, 1, 9), False,
                         None),
    'float_mask': ((2, 3, 7, 5), (2, 3, 9, 5), (2, 3, 9, 4), 'float', (7, 9), False, 0.7),
    'float_mask_inf_rows': ((2, 8, 5), (2, 6, 5), (2, 6, 3), 'float_inf', (8, 1), False, None),
    'causal_L_lt_S': ((2, 7, 5), (2, 10, 5), (2, 10, 4), None, None, True, None),
    'causal_L_gt_S': ((2, 11, 5), (2, 6, 5), (2, 6, 4), None, None, True, 2.0),
}


def case_inputs(name, salt=0):
    qs, ks, vs, kind, mshape, causal, scale = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)) + salt)
    q, k, v = (rng.standard_normal(s) for s in (qs, ks, vs))
    mask = make_mask(rng, kind, mshape)
    return q, k, v, mask, causal, scale, rng


def call(fn, q, k, v, mask, causal, scale, mask_requires_grad=False, **kw):
    m = None if mask is None else (tl.tensor(mask, requires_grad=mask_requires_grad)
                                   if mask.dtype != bool else tl.tensor(mask))
    return fn(q, k, v, attn_mask=m, is_causal=causal, scale=scale, **kw), m


# ==================================================================================================
# forward and gradients against the reference, gradcheck
# ==================================================================================================

@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('name', CASES)
def test_matches_numpy_reference(name, path):
    q, k, v, mask, causal, scale, rng = case_inputs(name)
    float_mask = mask is not None and mask.dtype != bool
    tq, tk, tv = leaf(q), leaf(k), leaf(v)
    out, tm = call(PATHS[path], tq, tk, tv, mask, causal, scale, mask_requires_grad=float_mask)
    gout = rng.standard_normal(out.shape)
    out.backward(tl.tensor(gout))
    ref = np_attention(q, k, v, gout, mask, causal, scale)
    np.testing.assert_allclose(out.numpy(), ref[0], rtol=1e-10, atol=1e-12)
    for t, r in zip((tq, tk, tv) + ((tm,) if float_mask else ()), ref[1:]):
        assert t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad.numpy(), r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('name', CASES)
def test_plain_gradcheck_and_gradgradcheck(name):
    q, k, v, mask, causal, scale, _ = case_inputs(name)
    m = None if mask is None else tl.tensor(mask)
    check_grads(lambda a, b, c: plain_attention(a, b, c, m, is_causal=causal, scale=scale),
                [leaf(q), leaf(k), leaf(v)])


# the reference test above checks the blockwise gradients of every case; gradcheck on these three
# (broadcast mask, -inf float mask rows, causal with L > S) keeps the run short
@pytest.mark.parametrize('name', ['bool_key_padding', 'float_mask_inf_rows', 'causal_L_gt_S'])
def test_blockwise_gradcheck(name):
    q, k, v, mask, causal, scale, _ = case_inputs(name)
    m = None if mask is None else tl.tensor(mask)
    check_grads(lambda a, b, c: blockwise_small(a, b, c, m, is_causal=causal, scale=scale),
                [leaf(q), leaf(k), leaf(v)], second=False)


@pytest.mark.parametrize('path', PATHS)
def test_float_mask_gradient(path):
    """A float mask that requires grad gets one (dZ summed to its shape), on both paths."""
    q, k, v, mask, causal, scale, _ = case_inputs('float_mask')
    fn = PATHS[path]
    check_grads(lambda a, b, c, m: fn(a, b, c, m, scale=scale),
                [leaf(q), leaf(k), leaf(v), leaf(mask[None, :, :])], second=path == 'plain')


@given(data=st.data())
def test_paths_agree_on_hypothesis_shapes(data):
    batch = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple), label='batch')
    L, S, E = (data.draw(st.integers(1, 9), label=n) for n in 'LSE')
    Ev = data.draw(st.integers(1, 5), label='Ev')
    kind = data.draw(st.sampled_from([None, 'bool', 'float', 'causal']), label='mask')
    blocks = dict(block_q=data.draw(st.integers(1, 5)), block_k=data.draw(st.integers(1, 5)))
    rng = np.random.default_rng(L * 100 + S * 10 + E)
    q = rng.standard_normal(batch + (L, E))
    k, v = rng.standard_normal(batch + (S, E)), rng.standard_normal(batch + (S, Ev))
    mask = make_mask(rng, kind, (L, S)) if kind in ('bool', 'float') else None
    causal = kind == 'causal'
    gout = rng.standard_normal(batch + (L, Ev))
    ref = np_attention(q, k, v, gout, mask, causal)
    for fn in (plain_attention, lambda *a, **kw: blockwise_attention(*a, **blocks, **kw)):
        tq, tk, tv = leaf(q), leaf(k), leaf(v)
        out, _ = call(fn, tq, tk, tv, mask, causal, None)
        out.backward(tl.tensor(gout))
        np.testing.assert_allclose(out.numpy(), ref[0], rtol=1e-10, atol=1e-12)
        for t, r in zip((tq, tk, tv), ref[1:]):
            np.testing.assert_allclose(t.grad.numpy(), r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('dtype, tol', [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize('masked', ['none', 'bool', 'causal'])
def test_blockwise_and_plain_agree(dtype, tol, masked):
    """Several 16-row tiles and 24-key blocks over (2, 3, 70, 50): outputs and gradients agree."""
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in
               ((2, 3, 70, 16), (2, 3, 50, 16), (2, 3, 50, 8)))
    gout = rng.standard_normal((2, 3, 70, 8)).astype(dtype)
    mask = tl.tensor(rng.random((2, 1, 70, 50)) > 0.3) if masked == 'bool' else None
    results = []
    for fn in (plain_attention, lambda *a, **kw: blockwise_attention(*a, block_q=16, block_k=24,
                                                                     **kw)):
        ts = [tl.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = fn(*ts, attn_mask=mask, is_causal=masked == 'causal')
        out.backward(tl.tensor(gout))
        assert out.dtype == dtype and all(t.grad.dtype == dtype for t in ts)
        results.append([out.numpy()] + [t.grad.numpy() for t in ts])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_fully_masked_rows_give_zero_output_and_gradient():
    q, k, v, mask, causal, scale, rng = case_inputs('bool_mask')
    mask[..., 2, :] = False
    for fn in PATHS.values():
        tq, tk, tv = leaf(q), leaf(k), leaf(v)
        out, _ = call(fn, tq, tk, tv, mask, False, None)
        out.backward(tl.tensor(rng.standard_normal(out.shape)))
        assert np.all(out.numpy()[..., 2, :] == 0) and np.all(np.isfinite(out.numpy()))
        assert np.all(tq.grad.numpy()[..., 2, :] == 0) and np.all(np.isfinite(tk.grad.numpy()))


# ==================================================================================================
# choosing the path
# ==================================================================================================

def test_path_is_chosen_by_size_and_can_be_forced(monkeypatch):
    q = leaf(np.random.default_rng(0).standard_normal((2, 6, 4)))
    name = lambda out: out.grad_fn.name  # noqa: E731
    assert name(scaled_dot_product_attention(q, q, q)) == 'PlainAttention'
    monkeypatch.setattr(A, 'BLOCKWISE_MIN_SCORE_BYTES', 2 * 6 * 6 * 8)
    assert name(scaled_dot_product_attention(q, q, q)) == 'BlockwiseAttention'
    with attention_path('plain'):
        assert name(scaled_dot_product_attention(q, q, q)) == 'PlainAttention'
    with attention_path('auto'):
        assert name(scaled_dot_product_attention(q, q, q)) == 'BlockwiseAttention'
    monkeypatch.setattr(A, 'BLOCKWISE_MIN_SCORE_BYTES', 2**40)
    with attention_path('blockwise'):
        assert name(scaled_dot_product_attention(q, q, q)) == 'BlockwiseAttention'
    with pytest.raises(ValueError, match="attention_path: path must be one of"):
        with attention_path('flash'):
            pass


def test_blockwise_double_backward_raises_naming_the_op():
    q = leaf(np.random.default_rng(0).standard_normal((2, 6, 4)))
    out = blockwise_small(q, q, q)
    with pytest.raises(NotImplementedError, match='scaled_dot_product_attention.*blockwise'):
        tl.autograd.grad(out.sum(), [q], create_graph=True)


# ==================================================================================================
# dropout
# ==================================================================================================

@pytest.mark.parametrize('path', PATHS)
def test_dropout_zero_is_no_dropout_and_a_seed_reproduces(path):
    q, k, v, mask, causal, scale, _ = case_inputs('bool_mask')
    fn = PATHS[path]
    m = tl.tensor(mask)
    base = fn(leaf(q), leaf(k), leaf(v), m).numpy()
    np.testing.assert_array_equal(fn(leaf(q), leaf(k), leaf(v), m, dropout_p=0.0).numpy(), base)
    runs = []
    for seed in (7, 7, 8):
        tl.manual_seed(seed)
        runs.append(fn(leaf(q), leaf(k), leaf(v), m, dropout_p=0.4).numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2]) and not np.allclose(runs[0], base)


def test_plain_dropout_drops_attention_weights():
    """The plain path's mask is one draw of the generator over (B, L, S): rebuilt here and given
    to the reference, whose weights it multiplies (not the output)."""
    q, k, v, _, _, _, rng = case_inputs('plain')
    p = 0.3
    tl.manual_seed(11)
    keep = (tl.random.generator().random((2, 7, 9), dtype=np.float32) >= p) / (1 - p)
    tl.manual_seed(11)
    tq, tk, tv = leaf(q), leaf(k), leaf(v)
    out = plain_attention(tq, tk, tv, dropout_p=p)
    gout = rng.standard_normal(out.shape)
    out.backward(tl.tensor(gout))
    ref = np_attention(q, k, v, gout, keep=keep)
    for a, r in zip([out, tq.grad, tk.grad, tv.grad], ref):
        np.testing.assert_allclose(a.numpy(), r, rtol=1e-10, atol=1e-12)


def test_blockwise_dropout_rate_and_scaling():
    """With uniform attention (q = 0) every weight is 1/S before dropout, so each output row is
    the mean of v over kept keys times 1/(1 - p): its kept fraction is about 1 - p."""
    S, p = 64, 0.25
    v = np.ones((1, S, 1))
    tl.manual_seed(3)
    out = blockwise_attention(leaf(np.zeros((1, 200, 4))), leaf(np.zeros((1, S, 4))), leaf(v),
                              dropout_p=p, block_q=32, block_k=16).numpy()
    kept = out[0, :, 0] * (1 - p)            # the fraction of keys kept in each row
    assert abs(kept.mean() - (1 - p)) < 0.02
    np.testing.assert_allclose(kept * S, np.round(kept * S), atol=1e-9)   # whole keys kept


@pytest.mark.parametrize('path', PATHS)
def test_dropout_gradcheck_with_a_fixed_mask(path):
    q, k, v, mask, causal, scale, _ = case_inputs('float_mask')
    m = tl.tensor(mask)

    def fn(a, b, c):
        tl.manual_seed(5)                   # the same mask at every call
        return PATHS[path](a, b, c, m, dropout_p=0.3, scale=scale)
    check_grads(fn, [leaf(q), leaf(k), leaf(v)], second=path == 'plain')


def test_dropout_one_gives_zeros():
    q = leaf(np.random.default_rng(0).standard_normal((2, 5, 3)))
    for fn in PATHS.values():
        assert np.all(fn(q, q, q, dropout_p=1.0).numpy() == 0)


# ==================================================================================================
# the kernels
# ==================================================================================================

def np_softmax_rows(scores, mask, mask_index, scale, causal):
    B, L, S = scores.shape
    m = np.zeros((B, L, S)) if mask.shape[0] == 0 else np.broadcast_to(mask[mask_index], (B, L, S))
    return np_attention_probs(scale * scores + m + additive(None, L, S, causal))


def np_attention_probs(z):
    live = np.isfinite(z.max(axis=-1, keepdims=True))
    zs = np.where(live, z, 0.0)
    e = np.exp(zs - zs.max(axis=-1, keepdims=True))
    return np.where(live, e / e.sum(axis=-1, keepdims=True), 0.0)


def kernel_inputs(dtype, rng, B=3, L=5, S=7):
    scores = (3 * rng.standard_normal((B, L, S))).astype(dtype)
    mask = np.where(rng.random((2, 1, S)) > 0.3, 0.0, -np.inf).astype(dtype)
    mask[1] = -np.inf                                        # batch rows using it: all masked
    mask_index = np.array([0, 1, 0][:B], np.int64)
    return scores, mask, mask_index


@pytest.mark.parametrize('causal', [False, True])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cpu_softmax_kernels_match_numpy(dtype, causal):
    rng = np.random.default_rng(2)
    scores, mask, mask_index = kernel_inputs(dtype, rng)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for m in (mask, np.zeros((0, 1, 1), dtype)):
        probs = np.empty_like(scores)
        cpu_att.softmax_fwd(scores, m, mask_index, 0.8, causal, probs)
        ref = np_softmax_rows(scores.astype(np.float64), m, mask_index, 0.8, causal)
        np.testing.assert_allclose(probs, ref, rtol=tol, atol=tol)
    gp = rng.standard_normal(scores.shape).astype(dtype)
    gs = np.empty_like(gp)
    cpu_att.softmax_bwd(probs, gp, gs)
    np.testing.assert_allclose(gs, probs * (gp - (gp * probs).sum(-1, keepdims=True)),
                               rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cpu_block_kernels_match_numpy(dtype):
    rng = np.random.default_rng(3)
    s = (4 * rng.standard_normal((6, 9))).astype(dtype)
    s[1] = -np.inf                                            # a row with no key yet
    m = np.array([-np.inf, -np.inf, 2.0, 9.0, -1.0, 0.5], dtype)
    l = np.array([0.0, 0.0, 1.5, 2.0, 0.5, 3.0], dtype)
    alpha = np.empty_like(m)
    s0, m0, l0 = s.astype(np.float64), m.astype(np.float64), l.astype(np.float64)
    cpu_att.online_softmax_block(s, m, l, alpha)
    m_new = np.maximum(m0, s0.max(axis=1))
    shift = np.where(m_new == -np.inf, 0.0, m_new)
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(s, np.exp(s0 - shift[:, None]), rtol=tol, atol=tol)
    np.testing.assert_allclose(alpha, np.exp(m0 - shift), rtol=tol, atol=tol)
    np.testing.assert_allclose(l, l0 * np.exp(m0 - shift) + np.exp(s0 - shift[:, None]).sum(1),
                               rtol=tol)
    np.testing.assert_array_equal(m, m_new)

    z = (4 * rng.standard_normal((6, 9))).astype(dtype)
    lse = np.log(np.exp(z.astype(np.float64)).sum(1)).astype(dtype)
    lse[2] = np.inf                                           # a fully masked row: P = 0
    p = z.copy()
    cpu_att.shifted_exp_rows(p, lse)
    np.testing.assert_allclose(p, np.exp(z - lse[:, None].astype(np.float64)), rtol=tol, atol=tol)
    dp, d = rng.standard_normal(p.shape).astype(dtype), rng.standard_normal(6).astype(dtype)
    expected = p * (dp - d[:, None])
    cpu_att.softmax_grad_block(p, dp, d)
    np.testing.assert_allclose(dp, expected, rtol=tol, atol=tol)


def test_float32_exp_is_accurate_to_two_ulp():
    x = np.concatenate([-np.geomspace(1e-6, 87, 20000), [0.0, -86.9, -90.0, -np.inf]])
    x = x.astype(np.float32)
    s = x[None, :].copy()
    cpu_att.shifted_exp_rows(s, np.zeros(1, np.float32))
    ref = np.exp(x.astype(np.float64))
    ok = x >= -87
    assert np.max(np.abs(s[0, ok] - ref[ok]) / ref[ok]) < 2.4e-7
    assert np.all(s[0, ~ok] == 0)
    s = np.array([[np.nan]], np.float32)
    cpu_att.shifted_exp_rows(s, np.zeros(1, np.float32))
    assert np.isnan(s[0, 0])


cuda_att = pytest.importorskip('tensorlite.kernels.cuda.attention')


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cuda_twins_match_cpu_twins(dtype):
    rng = np.random.default_rng(4)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    scores, mask, mask_index = kernel_inputs(dtype, rng, B=2, L=3, S=5)
    mask_index = mask_index[:2]
    gp = rng.standard_normal(scores.shape).astype(dtype)
    s = (3 * rng.standard_normal((4, 6))).astype(dtype)
    s[0] = -np.inf
    m0 = np.array([-np.inf, 1.0, -np.inf, 0.0], dtype)
    shift = np.array([np.inf, 0.5, 1.0, -1.0], dtype)
    d = rng.standard_normal(4).astype(dtype)
    outs = []
    for mod in (cpu_att, cuda_att):
        probs = np.empty_like(scores)
        mod.softmax_fwd(scores, mask, mask_index, 0.9, True, probs)
        gs = np.empty_like(gp)
        mod.softmax_bwd(probs, gp, gs)
        b, m, l, alpha = s.copy(), m0.copy(), np.ones(4, dtype), np.empty(4, dtype)
        mod.online_softmax_block(b, m, l, alpha)
        e = s.copy()
        mod.shifted_exp_rows(e, shift)
        g = gp[0, :3, :5].copy()
        mod.softmax_grad_block(probs[0], g, d[:3])
        outs.append([probs, gs, b, m, l, alpha, e, g])
    for c, g in zip(*outs):
        np.testing.assert_allclose(g, c, **tol)


@pytest.mark.parametrize('module', ['cpu', 'cuda'])
def test_kernel_launch_checks_name_the_argument(module):
    mod = cpu_att if module == 'cpu' else cuda_att
    x = np.zeros((2, 3, 4), np.float32)
    none = np.zeros((0, 1, 1), np.float32)
    idx = np.zeros(2, np.int64)
    with pytest.raises(TypeError, match='softmax_fwd: probs has dtype float64'):
        mod.softmax_fwd(x, none, idx, 1.0, False, np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r'softmax_fwd: mask has shape \(1, 2, 4\)'):
        mod.softmax_fwd(x, np.zeros((1, 2, 4), np.float32), idx, 1.0, False, x)
    with pytest.raises(ValueError, match='softmax_bwd: grad_probs .* is not C-contiguous'):
        mod.softmax_bwd(x, np.zeros((2, 4, 3), np.float32).transpose(0, 2, 1), x)
    with pytest.raises(ValueError, match=r'online_softmax_block: l has shape \(2,\)'):
        mod.online_softmax_block(x[0], np.zeros(3, np.float32), np.zeros(2, np.float32),
                                 np.zeros(3, np.float32))


# ==================================================================================================
# bad input
# ==================================================================================================

def t(*shape, dtype=np.float64):
    return tl.tensor(np.zeros(shape, dtype))


@pytest.mark.parametrize('args, kw, error, match', [
    ((t(2, 3, 4), t(2, 5, 3), t(2, 5, 4)), {}, ValueError, r'query \(shape \(2, 3, 4\)\) and key '
     r'\(shape \(2, 5, 3\)\) must have the same last dim'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 6, 4)), {}, ValueError, 'same number of tokens .* 5 and 6'),
    ((t(2, 3, 4), t(3, 5, 4), t(3, 5, 4)), {}, ValueError, 'cannot be broadcast together'),
    ((t(4), t(2, 5, 4), t(2, 5, 4)), {}, ValueError, r'query must have at least 2 dims.*\(4,\)'),
    ((t(2, 3, 4, dtype=np.float32), t(2, 5, 4), t(2, 5, 4)), {}, TypeError, 'one dtype.*float32'),
    ((tl.tensor(np.zeros((2, 3), int)),) * 3, {}, TypeError, 'query must be float32 or float64'),
    ((np.zeros((2, 3)), t(2, 3), t(2, 3)), {}, TypeError, 'query must be a Tensor, got ndarray'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'attn_mask': t(3, 4)}, ValueError,
     r'attn_mask of shape \(3, 4\) cannot be broadcast to .* \(2, 3, 5\)'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'attn_mask': t(3, 3, 5)}, ValueError,
     r'attn_mask of shape \(3, 3, 5\)'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'attn_mask': t(3, 5, dtype=np.float32)}, TypeError,
     'attn_mask must be bool or of the query.s dtype float64, got float32'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'attn_mask': tl.tensor(np.ones((3, 5), bool)),
                                            'is_causal': True}, ValueError,
     'attn_mask and is_causal=True cannot both be given'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'dropout_p': 1.5}, ValueError,
     r'dropout_p must be a number in \[0, 1\], got 1.5'),
    ((t(2, 3, 4), t(2, 5, 4), t(2, 5, 4)), {'scale': float('nan')}, ValueError, 'scale must be'),
])
@pytest.mark.parametrize('path', ['auto', 'plain', 'blockwise'])
def test_bad_input(path, args, kw, error, match):
    with attention_path(path), pytest.raises(error, match='scaled_dot_product_attention: .*' + match):
        scaled_dot_product_attention(*args, **kw)


# ==================================================================================================
# PyTorch (optional)
# ==================================================================================================

@pytest.mark.optional
@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('name', CASES)
def test_matches_torch(name, path):
    torch = pytest.importorskip('torch')
    q, k, v, mask, causal, scale, rng = case_inputs(name, salt=1)
    ts = [leaf(a) for a in (q, k, v)]
    out, _ = call(PATHS[path], *ts, mask, causal, scale)
    gout = rng.standard_normal(out.shape)
    out.backward(tl.tensor(gout))
    tt = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ref = torch.nn.functional.scaled_dot_product_attention(
        *tt, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal, scale=scale)
    ref.backward(torch.tensor(gout))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(ts, tt):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)

"""nn.MultiheadAttention: forward against a NumPy reference written here (projections, heads,
masks in MultiheadAttention's convention), float64 gradcheck of every input and parameter, the
need_weights / average_attn_weights outputs, batch_first and unbatched layouts, bad input, and
(optional) PyTorch's state dict loaded unchanged with outputs and gradients compared."""
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.nn.attention import MultiheadAttention

from helpers import check_grads


def np_softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_mha(mha, q, k, v, attn_mask=None, key_padding_mask=None):
    """q (N, L, E), k and v (N, S, E) -> output (N, L, E), weights (N, H, L, S)."""
    W = mha.in_proj_weight.numpy()
    b = np.zeros(W.shape[0]) if mha.in_proj_bias is None else mha.in_proj_bias.numpy()
    E, H = mha.embed_dim, mha.num_heads
    d = E // H

    def project(x, i):
        y = x @ W[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E]
        return y.reshape(x.shape[0], x.shape[1], H, d).transpose(0, 2, 1, 3)

    qh, kh, vh = project(q, 0), project(k, 1), project(v, 2)
    scores = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(d)            # (N, H, L, S)
    N, _, L, S = scores.shape
    for m in (attn_mask, key_padding_mask):
        if m is None:
            continue
        m = np.asarray(m)
        if m is key_padding_mask:
            m = m.reshape(N, 1, 1, S)
        elif m.ndim == 3:
            m = m.reshape(N, H, L, S)
        scores = scores + (np.where(m, -np.inf, 0.0) if m.dtype == bool else m)
    p = np_softmax(scores)
    out = (p @ vh).transpose(0, 2, 1, 3).reshape(N, L, E)
    ob = 0 if mha.out_proj.bias is None else mha.out_proj.bias.numpy()
    return out @ mha.out_proj.weight.numpy().T + ob, p


def make(E=8, H=2, bias=True, batch_first=True, seed=0):
    tl.manual_seed(seed)
    mha = MultiheadAttention(E, H, bias=bias, batch_first=batch_first).double()
    if bias:            # PyTorch initializes the biases to zero: give them values to test
        rng = np.random.default_rng(seed)
        mha.in_proj_bias.data[...] = rng.standard_normal(3 * E)
        mha.out_proj.bias.data[...] = rng.standard_normal(E)
    return mha


def tensors(rng, *shapes, grad=False):
    return [tl.tensor(rng.standard_normal(s), requires_grad=grad) for s in shapes]


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('L, S', [(3, 3), (2, 5)])
def test_forward_matches_reference(rng, bias, L, S):
    mha = make(bias=bias)
    q, k, v = tensors(rng, (2, L, 8), (2, S, 8), (2, S, 8))
    out, w = mha(q, k, v, average_attn_weights=False)
    ref, p = np_mha(mha, q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), p, rtol=1e-10, atol=1e-12)
    out2, w2 = mha(q, k, v, need_weights=False)            # the scaled_dot_product_attention path
    assert w2 is None
    np.testing.assert_allclose(out2.numpy(), ref, rtol=1e-10, atol=1e-12)
    _, wm = mha(q, k, v)
    np.testing.assert_allclose(wm.numpy(), p.mean(axis=1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('kind', ['bool', 'float', 'per_head'])
@pytest.mark.parametrize('need_weights', [True, False])
def test_masks(rng, kind, need_weights):
    mha = make()
    N, L, S, H = 2, 3, 4, 2
    q, k, v = tensors(rng, (N, L, 8), (N, S, 8), (N, S, 8))
    if kind == 'bool':
        attn_mask = np.triu(np.ones((L, S), bool), k=1)             # True: may not attend
    elif kind == 'float':
        attn_mask = rng.standard_normal((L, S))
    else:
        attn_mask = rng.standard_normal((N * H, L, S))
    kpm = np.zeros((N, S), bool)
    kpm[0, -1] = kpm[1, -2:] = True
    out, _ = mha(q, k, v, attn_mask=tl.tensor(attn_mask), key_padding_mask=tl.tensor(kpm),
                 need_weights=need_weights)
    ref, _ = np_mha(mha, q.numpy(), k.numpy(), v.numpy(), attn_mask, kpm)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_layouts(rng):
    """(L, N, E) by default, (N, L, E) with batch_first, and unbatched (L, E): one result."""
    first = make(batch_first=True)
    seq = make(batch_first=False)
    seq.load_state_dict(first.state_dict())
    q, k = tensors(rng, (2, 3, 8), (2, 4, 8))
    out_b, w_b = first(q, k, k)
    out_s, w_s = seq(q.transpose(0, 1), k.transpose(0, 1), k.transpose(0, 1))
    np.testing.assert_allclose(out_s.transpose(0, 1).numpy(), out_b.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w_s.numpy(), w_b.numpy(), rtol=1e-12)
    out_u, w_u = seq(q[0], k[0], k[0])
    assert out_u.shape == (3, 8) and w_u.shape == (3, 4)
    np.testing.assert_allclose(out_u.numpy(), out_b.numpy()[0], rtol=1e-12)


def test_parameters_as_pytorch():
    mha = MultiheadAttention(12, 3)
    sd = {k: v.numpy() for k, v in mha.state_dict().items()}
    assert list(sd) == ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
    assert sd['in_proj_weight'].shape == (36, 12) and sd['out_proj.weight'].shape == (12, 12)
    assert not sd['in_proj_bias'].any() and not sd['out_proj.bias'].any()
    bound = math.sqrt(6 / (36 + 12))                                  # Xavier-uniform
    assert np.abs(sd['in_proj_weight']).max() <= bound
    assert np.abs(sd['in_proj_weight']).max() > 0.8 * bound
    assert 'in_proj_bias' not in MultiheadAttention(12, 3, bias=False).state_dict()


@pytest.mark.parametrize('need_weights', [True, False])
def test_gradcheck(rng, need_weights):
    mha = make(E=4, H=2)
    q, k, v = tensors(rng, (2, 3, 4), (2, 2, 4), (2, 2, 4), grad=True)
    kpm = tl.tensor(np.array([[False, False], [False, True]]))
    params = [mha.in_proj_weight, mha.in_proj_bias, mha.out_proj.weight, mha.out_proj.bias]

    def fn(q, k, v, *ps):
        out, w = mha(q, k, v, key_padding_mask=kpm, need_weights=need_weights)
        return (out, w) if need_weights else out

    check_grads(fn, [q, k, v] + params)


def test_dropout_only_in_training(rng):
    mha = make()
    mha.dropout = 0.5
    q, = tensors(rng, (2, 3, 8))
    mha.eval()
    a, _ = mha(q, q, q)
    b, _ = mha(q, q, q)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    mha.train()
    tl.manual_seed(1)
    c, w = mha(q, q, q)
    assert not np.allclose(c.numpy(), a.numpy())


def test_bad_input(rng):
    mha = make()
    q, k = tensors(rng, (2, 3, 8), (2, 4, 8))
    with pytest.raises(ValueError, match=r'divisible'):
        MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match=r'query must be .* got shape \(2, 3, 5\)'):
        mha(tl.randn(2, 3, 5), k, k)
    with pytest.raises(ValueError, match=r'attn_mask must have shape \(3, 4\).*got \(4, 3\)'):
        mha(q, k, k, attn_mask=tl.zeros(4, 3))
    with pytest.raises(ValueError, match=r'key_padding_mask must have shape \(2, 4\)'):
        mha(q, k, k, key_padding_mask=tl.zeros(2, 3))
    with pytest.raises(TypeError, match=r'attn_mask must be bool or float'):
        mha(q, k, k, attn_mask=np.zeros((3, 4), np.int64))


@pytest.mark.optional
@pytest.mark.parametrize('batch_first', [True, False])
def test_against_pytorch(rng, batch_first):
    torch = pytest.importorskip('torch')
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first).double()
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    mha = MultiheadAttention(8, 2, batch_first=batch_first).double()
    mha.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    shape_q, shape_k = ((2, 3, 8), (2, 4, 8)) if batch_first else ((3, 2, 8), (4, 2, 8))
    q, k, v = (rng.standard_normal(s) for s in (shape_q, shape_k, shape_k))
    kpm = np.array([[False] * 4, [False, False, True, True]])
    mask = np.triu(np.ones((3, 4), bool), k=2)
    for need in (True, False):
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        out_t, w_t = ref(tq, tk, tv, key_padding_mask=torch.tensor(kpm),
                         attn_mask=torch.tensor(mask), need_weights=need)
        out_t.sum().backward()
        lq, lk, lv = (tl.tensor(a, requires_grad=True) for a in (q, k, v))
        mha.zero_grad()
        out, w = mha(lq, lk, lv, key_padding_mask=tl.tensor(kpm), attn_mask=tl.tensor(mask),
                     need_weights=need)
        out.sum().backward()
        np.testing.assert_allclose(out.numpy(), out_t.detach().numpy(), rtol=1e-9, atol=1e-12)
        if need:
            np.testing.assert_allclose(w.numpy(), w_t.detach().numpy(), rtol=1e-9, atol=1e-12)
        for a, b in ((lq, tq), (lk, tk), (lv, tv)):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-11)
        for name, p in ref.named_parameters():
            mine = dict(mha.named_parameters())[name]
            np.testing.assert_allclose(mine.grad.numpy(), p.grad.numpy(), rtol=1e-8, atol=1e-11)
            p.grad = None

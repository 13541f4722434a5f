"""Space-time attention: each factorization against a NumPy reference that loops over the groups
of tokens it says attend together (so the reference shares no reshape with the library), float64
gradcheck of every function and layer, the class-token rules of divided attention, and bad input."""
import math

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.functional import spacetime as ST
from tensorlite.nn import spacetime as NST

from helpers import check_grads


def np_attend(q, k, v):
    """One group of tokens: q (L, d), k (S, d), v (S, dv) -> (L, dv)."""
    s = q @ k.T / math.sqrt(q.shape[-1])
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)) @ v


def np_joint(q, k, v):
    N, H, T, S, _ = q.shape
    out = np.empty(q.shape[:4] + v.shape[-1:])
    for n in range(N):
        for h in range(H):
            flat = lambda a: a[n, h].reshape(T * S, -1)          # noqa: E731
            out[n, h] = np_attend(flat(q), flat(k), flat(v)).reshape(T, S, -1)
    return out


def np_spatial(q, k, v):
    out = np.empty(q.shape[:4] + v.shape[-1:])
    for n, h, t in np.ndindex(*q.shape[:3]):
        out[n, h, t] = np_attend(q[n, h, t], k[n, h, t], v[n, h, t])
    return out


def np_temporal(q, k, v):
    out = np.empty(q.shape[:4] + v.shape[-1:])
    for n, h, s in np.ndindex(q.shape[0], q.shape[1], q.shape[3]):
        out[n, h, :, s] = np_attend(q[n, h, :, s], k[n, h, :, s], v[n, h, :, s])
    return out


def np_factorized_dot_product(q, k, v):
    h = q.shape[1] // 2
    return np.concatenate([np_spatial(q[:, :h], k[:, :h], v[:, :h]),
                           np_temporal(q[:, h:], k[:, h:], v[:, h:])], axis=1)


GRID_CASES = [
    (ST.joint_space_time_attention, np_joint),
    (ST.spatial_attention, np_spatial),
    (ST.temporal_attention, np_temporal),
    (ST.factorized_dot_product_attention, np_factorized_dot_product),
]
GRID_IDS = ['joint', 'spatial', 'temporal', 'factorized_dot_product']


@pytest.mark.parametrize('fn, ref', GRID_CASES, ids=GRID_IDS)
@pytest.mark.parametrize('shape', [(1, 2, 2, 3, 4), (2, 4, 3, 2, 2)])
def test_grid_functions_match_reference(rng, fn, ref, shape):
    q, k, v = (rng.standard_normal(shape) for _ in range(3))
    v = v[..., :3] if shape[-1] > 3 else v                 # d_v != d where the shape allows
    out = fn(tl.tensor(q), tl.tensor(k), tl.tensor(np.ascontiguousarray(v)))
    np.testing.assert_allclose(out.numpy(), ref(q, k, v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('fn, ref', GRID_CASES, ids=GRID_IDS)
def test_grid_functions_gradcheck(rng, fn, ref):
    q, k, v = (tl.tensor(rng.standard_normal((1, 2, 2, 3, 2)), requires_grad=True)
               for _ in range(3))
    check_grads(fn, [q, k, v])


def test_joint_attention_mixes_everything_and_factorizations_do_not(rng):
    """Which tokens can influence which: changing one token's key/value changes every output under
    joint attention, only its frame under spatial, only its patch position under temporal."""
    shape = (1, 2, 3, 4, 2)
    q, k, v = (rng.standard_normal(shape) for _ in range(3))
    k2, v2 = k.copy(), v.copy()
    k2[0, :, 1, 2] += 1.0
    v2[0, :, 1, 2] += 1.0
    for fn, frame_only, position_only in ((ST.joint_space_time_attention, False, False),
                                          (ST.spatial_attention, True, False),
                                          (ST.temporal_attention, False, True)):
        a = fn(*(tl.tensor(x) for x in (q, k, v))).numpy()
        b = fn(*(tl.tensor(x) for x in (q, k2, v2))).numpy()
        changed = np.abs(a - b).max(axis=(0, 1, 4)) > 1e-12          # (T, S)
        expected = np.ones((3, 4), bool)
        if frame_only:
            expected[:] = False
            expected[1] = True
        if position_only:
            expected[:] = False
            expected[:, 2] = True
        np.testing.assert_array_equal(changed, expected)


# ---- token-level functions with plain sublayers ------------------------------------------------

def sublayer(W):
    """A simple differentiable sublayer (B, L, D) -> (B, L, D) that mixes tokens of a sequence:
    y_i = tanh(x_i W) + mean_j x_j, plus its NumPy twin."""
    def fn(x):
        return tl.tanh(x @ tl.tensor(W)) + x.mean(1, keepdim=True)

    def ref(x):
        return np.tanh(x @ W) + x.mean(axis=1, keepdims=True)
    return fn, ref


def np_divided(x, temporal, spatial, cls=None):
    N, T, S, D = x.shape
    x1 = x.copy()
    for s in range(S):
        x1[:, :, s] += temporal(x[:, :, s])
    x2 = x1.copy()
    cls_updates = []
    for t in range(T):
        seq = x1[:, t] if cls is None else np.concatenate([cls.reshape(N, 1, D), x1[:, t]], 1)
        y = spatial(seq)
        x2[:, t] += y[:, -S:]
        if cls is not None:
            cls_updates.append(y[:, 0])
    if cls is None:
        return x2
    return x2, cls + np.mean(cls_updates, axis=0).reshape(cls.shape)


def test_divided_matches_reference_with_and_without_cls(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    cls = rng.standard_normal((2, 1, 5))
    (tf, tr), (sf, sr) = sublayer(rng.standard_normal((5, 5))), sublayer(rng.standard_normal((5, 5)))
    out = ST.divided_space_time_attention(tl.tensor(x), tf, sf)
    np.testing.assert_allclose(out.numpy(), np_divided(x, tr, sr), rtol=1e-12)
    out, c = ST.divided_space_time_attention(tl.tensor(x), tf, sf, cls=tl.tensor(cls))
    ref, ref_c = np_divided(x, tr, sr, cls)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(c.numpy(), ref_c, rtol=1e-12)
    _, c2 = ST.divided_space_time_attention(tl.tensor(x), tf, sf, cls=tl.tensor(cls[:, 0]))
    assert c2.shape == (2, 5)                       # the class token keeps the shape it came in


def test_factorized_self_attention_orders(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    (tf, tr), (sf, sr) = sublayer(rng.standard_normal((5, 5))), sublayer(rng.standard_normal((5, 5)))
    out = ST.factorized_self_attention(tl.tensor(x), tf, sf)
    np.testing.assert_allclose(out.numpy(), np_divided(x, tr, sr), rtol=1e-12)
    # space first: the temporal step sees the spatially updated tokens
    x1 = x + np.stack([sr(x[:, t]) for t in range(3)], 1)
    ref = x1 + np.stack([tr(x1[:, :, s]) for s in range(4)], 2)
    out = ST.factorized_self_attention(tl.tensor(x), tf, sf, order='space_time')
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)


# ---- layers --------------------------------------------------------------------------------------

def layer_ref(attn, norm):
    """NumPy twin of norm -> SelfAttention on (B, L, D) sequences, from the layers' weights."""
    Wqkv, bqkv = attn.qkv.weight.numpy(), attn.qkv.bias.numpy()
    Wp, bp = attn.proj.weight.numpy(), attn.proj.bias.numpy()
    g, b, eps = norm.weight.numpy(), norm.bias.numpy(), norm.eps
    H = attn.num_heads

    def ref(x):
        xn = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * g + b
        B, L, D = x.shape
        qkv = (xn @ Wqkv.T + bqkv).reshape(B, L, 3, H, D // H)
        out = np.empty((B, L, H, D // H))
        for i, h in np.ndindex(B, H):
            out[i, :, h] = np_attend(qkv[i, :, 0, h], qkv[i, :, 1, h], qkv[i, :, 2, h])
        return out.reshape(B, L, D) @ Wp.T + bp
    return ref


def randomized(layer, seed=0):
    rng = np.random.default_rng(seed)
    layer = layer.double()
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    return layer


def test_divided_layer_matches_reference(rng):
    layer = randomized(NST.DividedSpaceTimeAttention(4, 2))
    x, cls = rng.standard_normal((2, 3, 2, 4)), rng.standard_normal((2, 1, 4))
    tref = layer_ref(layer.temporal_attn, layer.temporal_norm1)
    Wfc, bfc = layer.temporal_fc.weight.numpy(), layer.temporal_fc.bias.numpy()
    ref, ref_c = np_divided(x, lambda s: tref(s) @ Wfc.T + bfc, layer_ref(layer.attn, layer.norm1),
                            cls)
    out, c = layer(tl.tensor(x), tl.tensor(cls))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c.numpy(), ref_c, rtol=1e-10, atol=1e-12)


def test_joint_layer_matches_reference(rng):
    layer = randomized(NST.JointSpaceTimeAttention(4, 2))
    x, cls = rng.standard_normal((2, 3, 2, 4)), rng.standard_normal((2, 4))
    ref = layer_ref(layer.attn, layer.norm1)
    tokens = x.reshape(2, 6, 4)
    np.testing.assert_allclose(layer(tl.tensor(x)).numpy(),
                               (tokens + ref(tokens)).reshape(x.shape), rtol=1e-10, atol=1e-12)
    with_cls = np.concatenate([cls[:, None], tokens], 1)
    expected = with_cls + ref(with_cls)
    out, c = layer(tl.tensor(x), tl.tensor(cls))
    np.testing.assert_allclose(out.numpy(), expected[:, 1:].reshape(x.shape), rtol=1e-10)
    np.testing.assert_allclose(c.numpy(), expected[:, 0], rtol=1e-10)


def test_factorized_layers_match_reference(rng):
    x = rng.standard_normal((2, 3, 2, 4))
    layer = randomized(NST.FactorizedSelfAttention(4, 2))
    ref = np_divided(x, layer_ref(layer.temporal_attn, layer.temporal_norm),
                     layer_ref(layer.spatial_attn, layer.spatial_norm))
    np.testing.assert_allclose(layer(tl.tensor(x)).numpy(), ref, rtol=1e-10, atol=1e-12)

    layer = randomized(NST.FactorizedDotProductAttention(4, 2))
    n = layer.norm1
    xn = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + n.eps)
    xn = xn * n.weight.numpy() + n.bias.numpy()
    qkv = (xn @ layer.attn.qkv.weight.numpy().T + layer.attn.qkv.bias.numpy())
    qkv = qkv.reshape(2, 3, 2, 3, 2, 2).transpose(3, 0, 4, 1, 2, 5)   # (3, N, H, T, S, d)
    heads = np_factorized_dot_product(*qkv)                          # (N, H, T, S, d)
    merged = heads.transpose(0, 2, 3, 1, 4).reshape(2, 3, 2, 4)
    ref = x + merged @ layer.attn.proj.weight.numpy().T + layer.attn.proj.bias.numpy()
    np.testing.assert_allclose(layer(tl.tensor(x)).numpy(), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('make, with_cls', [
    (lambda: NST.JointSpaceTimeAttention(4, 2), True),
    (lambda: NST.DividedSpaceTimeAttention(4, 2), True),
    (lambda: NST.DividedSpaceTimeAttention(4, 2, temporal_fc=False), False),
    (lambda: NST.FactorizedSelfAttention(4, 2, order='space_time'), False),
    (lambda: NST.FactorizedDotProductAttention(4, 2), False),
], ids=['joint', 'divided', 'divided_no_fc', 'factorized_self', 'factorized_dot_product'])
def test_layers_gradcheck(rng, make, with_cls):
    layer = randomized(make())
    x = tl.tensor(rng.standard_normal((1, 2, 2, 4)), requires_grad=True)
    inputs = [x] + list(layer.parameters())
    if with_cls:
        cls = tl.tensor(rng.standard_normal((1, 4)), requires_grad=True)
        check_grads(lambda x, c, *ps: layer(x, c), [x, cls] + inputs[1:], second=False)
    else:
        check_grads(lambda x, *ps: layer(x), inputs, second=False)


def test_bad_input(rng):
    q = tl.randn(1, 2, 2, 3, 4)
    with pytest.raises(ValueError, match=r'query must be a 5-D tensor .* got \(2, 3, 4\)'):
        ST.joint_space_time_attention(tl.randn(2, 3, 4), q, q)
    with pytest.raises(ValueError, match=r'even number of heads .*got 3'):
        x = tl.randn(1, 3, 2, 3, 4)
        ST.factorized_dot_product_attention(x, x, x)
    with pytest.raises(ValueError, match=r'x must be video tokens \(N, T, S, 4\), got shape \(2, 3, 4\)'):
        NST.DividedSpaceTimeAttention(4, 2)(tl.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r'cls must be \(N, D\) or \(N, 1, D\)'):
        NST.DividedSpaceTimeAttention(4, 2)(tl.randn(2, 3, 2, 4), tl.randn(3, 4))
    with pytest.raises(ValueError, match=r"order must be 'time_space' or 'space_time'"):
        NST.FactorizedSelfAttention(4, 2, order='time')

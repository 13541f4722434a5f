"""Space-time attention: the ways a video transformer lets the T x S tokens of a clip (T frames,
S patches per frame) attend to each other.  Every one of them is scaled_dot_product_attention on a
different grouping of the same tokens -- there is no second softmax anywhere here.

Per-head functions, on queries, keys and values laid out as a grid (N, heads, T, S, d):

    joint_space_time_attention        every token attends to all T*S tokens       cost (T*S)^2
    spatial_attention                 each token attends within its own frame      cost T*S^2
    temporal_attention                each token attends to its patch position
                                      in every frame                               cost S*T^2
    factorized_dot_product_attention  ViViT model 4: half the heads spatial,
                                      half temporal, outputs concatenated          cost (T*S^2 + S*T^2)/2

Token-level functions, on tokens (N, T, S, D) and attention sublayers given as callables that map
a batch of token sequences (B, L, D) to (B, L, D) (e.g. LayerNorm -> multi-head attention -> Linear):

    divided_space_time_attention      TimeSformer: temporal, then spatial, each with a residual;
                                      the class token joins the spatial step only
    factorized_self_attention         ViViT model 3: temporal then spatial (or the reverse), each
                                      with a residual, no class token

The modules in tensorlite.nn.spacetime wrap these with their weights.  docs/attention.md works out
the cost of each for 8 x 14 x 14 tokens.
"""
from ..autograd.tensor import Tensor
from .attention import scaled_dot_product_attention
from .shape import cat


def _check_grid(fn, q, k, v):
    """q, k: (N, heads, T, S, d); v: (N, heads, T, S, d_v)."""
    for name, t in (('query', q), ('key', k), ('value', v)):
        if not isinstance(t, Tensor) or t.ndim != 5:
            shape = tuple(t.shape) if hasattr(t, 'shape') else type(t).__name__
            raise ValueError(f"{fn}: {name} must be a 5-D tensor (N, heads, T, S, d), got {shape}")
    if q.shape[:4] != k.shape[:4] or k.shape[:4] != v.shape[:4] or q.shape[4] != k.shape[4]:
        raise ValueError(f"{fn}: query, key and value must share (N, heads, T, S) and query/key d; "
                         f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def joint_space_time_attention(query, key, value, dropout_p=0.0, scale=None):
    """Full attention over all T*S tokens of each clip: (N, H, T, S, d) -> (N, H, T, S, d_v)."""
    _check_grid('joint_space_time_attention', query, key, value)
    N, H, T, S, _ = query.shape
    flat = [t.reshape(N, H, T * S, t.shape[-1]) for t in (query, key, value)]
    out = scaled_dot_product_attention(*flat, dropout_p=dropout_p, scale=scale)
    return out.reshape(N, H, T, S, value.shape[-1])


def spatial_attention(query, key, value, dropout_p=0.0, scale=None):
    """Attention within each frame (over the S patches of one time step), frames independent:
    (N, H, T, S, d) -> (N, H, T, S, d_v)."""
    _check_grid('spatial_attention', query, key, value)
    return scaled_dot_product_attention(query, key, value, dropout_p=dropout_p, scale=scale)


def temporal_attention(query, key, value, dropout_p=0.0, scale=None):
    """Attention across the T frames at each patch position, positions independent:
    (N, H, T, S, d) -> (N, H, T, S, d_v)."""
    _check_grid('temporal_attention', query, key, value)
    q, k, v = (t.transpose(2, 3) for t in (query, key, value))        # (N, H, S, T, d)
    out = scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    return out.transpose(2, 3)


def factorized_dot_product_attention(query, key, value, dropout_p=0.0, scale=None):
    """ViViT model 4: the first half of the heads attend spatially, the second half temporally,
    from the same projections; the outputs are concatenated back along heads (the output
    projection then mixes them).  (N, H, T, S, d) -> (N, H, T, S, d_v), H even."""
    _check_grid('factorized_dot_product_attention', query, key, value)
    H = query.shape[1]
    if H % 2:
        raise ValueError(f"factorized_dot_product_attention: needs an even number of heads (half "
                         f"spatial, half temporal), got {H}")
    h = H // 2
    space = spatial_attention(query[:, :h], key[:, :h], value[:, :h], dropout_p, scale)
    time = temporal_attention(query[:, h:], key[:, h:], value[:, h:], dropout_p, scale)
    return cat([space, time], 1)


def _check_tokens(fn, x):
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__
        raise ValueError(f"{fn}: tokens must be a 4-D tensor (N, T, S, D), got {shape}")


def _over_time(x, sublayer):
    """sublayer applied to each patch position's sequence of T tokens: (N, T, S, D) -> same."""
    N, T, S, D = x.shape
    seqs = x.transpose(1, 2).reshape(N * S, T, D)                     # (N*S, T, D)
    return sublayer(seqs).reshape(N, S, T, D).transpose(1, 2)


def _over_space(x, sublayer):
    """sublayer applied to each frame's sequence of S tokens: (N, T, S, D) -> same."""
    N, T, S, D = x.shape
    return sublayer(x.reshape(N * T, S, D)).reshape(N, T, S, D)


def divided_space_time_attention(x, temporal, spatial, cls=None):
    """TimeSformer's divided space-time attention (Bertasius et al. 2021), residuals included:

        x1 = x  + temporal(tokens of x at one patch position, over the T frames)
        x2 = x1 + spatial(tokens of x1 in one frame, over the S patches)

    x: (N, T, S, D) patch tokens; temporal, spatial: callables (B, L, D) -> (B, L, D).
    Returns x2, or (x2, cls2) when a class token cls, (N, D) or (N, 1, D), is given.

    The class token: it belongs to no frame and no patch position, so it is left out of the
    temporal step (it would be the same token at every time step, a sequence of identical copies).
    In the spatial step it is copied into every frame, so each frame's patches can read it and it
    can read each frame: T copies come out, one per frame, and the class token is updated by their
    mean, cls2 = cls + mean over frames of spatial(...)[class position] -- as TimeSformer's code
    does.  This is how the class token still sees the whole clip at the cost of T spatial
    attentions of S + 1 tokens each.
    """
    _check_tokens('divided_space_time_attention', x)
    N, T, S, D = x.shape
    x1 = x + _over_time(x, temporal)
    if cls is None:
        return x1 + _over_space(x1, spatial)
    cls_shape = tuple(cls.shape)
    if cls_shape not in ((N, D), (N, 1, D)):
        raise ValueError(f"divided_space_time_attention: cls must be (N, D) or (N, 1, D) = "
                         f"({N}, {D}) or ({N}, 1, {D}), got {cls_shape}")
    c = cls.reshape(N, 1, 1, D).expand(N, T, 1, D).reshape(N * T, 1, D)
    frames = cat([c, x1.reshape(N * T, S, D)], 1)                      # (N*T, 1 + S, D)
    y = spatial(frames)
    x2 = x1 + y[:, 1:].reshape(N, T, S, D)
    cls2 = cls + y[:, 0].reshape(N, T, D).mean(1).reshape(cls_shape)
    return x2, cls2


def factorized_self_attention(x, temporal, spatial, order='time_space'):
    """ViViT model 3 (Arnab et al. 2021): in each block, self-attention over time at each patch
    position, then over space within each frame (order='space_time' swaps them), each with a
    residual.  x: (N, T, S, D); temporal, spatial: callables (B, L, D) -> (B, L, D).  No class
    token: model 3 classifies from the mean of the tokens."""
    _check_tokens('factorized_self_attention', x)
    steps = {'time_space': ((_over_time, temporal), (_over_space, spatial)),
             'space_time': ((_over_space, spatial), (_over_time, temporal))}
    if order not in steps:
        raise ValueError(f"factorized_self_attention: order must be 'time_space' or 'space_time', "
                         f"got {order!r}")
    for over, sublayer in steps[order]:
        x = x + over(x, sublayer)
    return x

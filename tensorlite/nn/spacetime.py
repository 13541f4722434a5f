"""Space-time attention layers for video tokens (N, T, S, D): T frames of S patch tokens of width D.

Each layer is a pre-norm attention sublayer with its residual, the part of a transformer block
before the MLP; a video transformer block is one of these followed by LayerNorm -> MLP -> residual.

    JointSpaceTimeAttention        x + attn(norm1(x)) over all T*S tokens (+ class token)
    DividedSpaceTimeAttention      TimeSformer: x + temporal_fc(temporal_attn(temporal_norm1(.)))
                                   over time, then + attn(norm1(.)) over space (+ class token)
    FactorizedSelfAttention        ViViT model 3: + temporal_attn(temporal_norm(.)) over time, then
                                   + spatial_attn(spatial_norm(.)) over space
    FactorizedDotProductAttention  ViViT model 4: x + attn(norm1(x)), one set of projections, half
                                   the heads over space and half over time

forward(x, cls=None): x (N, T, S, D); cls the class token (N, D) or (N, 1, D) for the two layers
that take one.  Returns x, or (x, cls) when cls is given.  Submodule names follow TimeSformer's
code (norm1, attn.qkv, attn.proj, temporal_norm1, temporal_attn, temporal_fc) so its weights map.
"""
from .. import functional as F
from ..functional import spacetime as ST
from ..functional.attention import scaled_dot_product_attention
from .linear import Linear
from .module import Module
from .normalization import LayerNorm


class SelfAttention(Module):
    """Multi-head self-attention on token sequences (B, L, D) -> (B, L, D): one Linear `qkv`
    (D -> 3D) for queries, keys and values, heads of D / num_heads, `proj` (D -> D) after.
    `heads(x)` gives q, k, v split into heads for layers that regroup tokens themselves."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"SelfAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.qkv = Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.proj = Linear(embed_dim, embed_dim)

    def heads(self, x):
        """(..., L, D) -> q, k, v each (..., heads, L, D / heads)."""
        *lead, L, D = x.shape
        H = self.num_heads
        qkv = self.qkv(x).reshape(*lead, L, 3, H, D // H)
        nd = len(lead)
        qkv = qkv.permute(*range(nd), nd + 1, nd + 2, nd, nd + 3)   # (..., 3, H, L, d)
        return qkv[(slice(None),) * nd + (0,)], qkv[(slice(None),) * nd + (1,)], \
            qkv[(slice(None),) * nd + (2,)]

    def merge(self, out):
        """(..., heads, L, d) -> proj of (..., L, heads * d)."""
        nd = out.ndim - 3
        *lead, H, L, d = out.shape
        out = out.permute(*range(nd), nd + 1, nd, nd + 2).reshape(*lead, L, H * d)
        return self.proj(out)

    def forward(self, x):
        q, k, v = self.heads(x)
        p = self.dropout if self.training else 0.0
        return self.merge(scaled_dot_product_attention(q, k, v, dropout_p=p))

    def extra_repr(self):
        return f'embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}'


def _check_x(layer, x, D):
    if x.ndim != 4 or x.shape[-1] != D:
        raise ValueError(f"{layer}: x must be video tokens (N, T, S, {D}), got shape "
                         f"{tuple(x.shape)}")


class JointSpaceTimeAttention(Module):
    """x + attn(norm1(tokens)) with every token attending to all T*S tokens (and the class token,
    when given, to all of them and they to it).  Cost per head: (T*S + 1)^2 scores."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, eps=1e-6):
        super().__init__()
        self.embed_dim = embed_dim
        self.norm1 = LayerNorm(embed_dim, eps=eps)
        self.attn = SelfAttention(embed_dim, num_heads, dropout, bias)

    def forward(self, x, cls=None):
        _check_x('JointSpaceTimeAttention', x, self.embed_dim)
        N, T, S, D = x.shape
        if cls is None:
            q, k, v = self.attn.heads(self.norm1(x))                 # (N, T, H, S, d)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))         # (N, H, T, S, d)
            p = self.attn.dropout if self.training else 0.0
            out = ST.joint_space_time_attention(q, k, v, dropout_p=p)
            return x + self.attn.merge(out.transpose(1, 2))          # merge from (N, T, H, S, d)
        cls_shape = tuple(cls.shape)
        tokens = F.cat([cls.reshape(N, 1, D), x.reshape(N, T * S, D)], 1)  # (N, 1 + T*S, D)
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens[:, 1:].reshape(N, T, S, D), tokens[:, 0].reshape(cls_shape)


class DividedSpaceTimeAttention(Module):
    """TimeSformer's divided space-time attention with its residuals (see
    F.spacetime.divided_space_time_attention for the class token):

        x1 = x  + temporal_fc(temporal_attn(temporal_norm1(x)))     over the T frames of a patch
        x2 = x1 + attn(norm1(x1))                                    over the S patches of a frame

    temporal_fc=False leaves the temporal projection out (then temporal_fc is absent).
    Cost per head: S*T^2 + T*(S + 1)^2 scores against joint attention's (T*S + 1)^2."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, eps=1e-6, temporal_fc=True):
        super().__init__()
        self.embed_dim = embed_dim
        self.temporal_norm1 = LayerNorm(embed_dim, eps=eps)
        self.temporal_attn = SelfAttention(embed_dim, num_heads, dropout, bias)
        if temporal_fc:
            self.temporal_fc = Linear(embed_dim, embed_dim)
        else:
            self.temporal_fc = None
        self.norm1 = LayerNorm(embed_dim, eps=eps)
        self.attn = SelfAttention(embed_dim, num_heads, dropout, bias)

    def _temporal(self, seqs):
        y = self.temporal_attn(self.temporal_norm1(seqs))
        return y if self.temporal_fc is None else self.temporal_fc(y)

    def _spatial(self, seqs):
        return self.attn(self.norm1(seqs))

    def forward(self, x, cls=None):
        _check_x('DividedSpaceTimeAttention', x, self.embed_dim)
        return ST.divided_space_time_attention(x, self._temporal, self._spatial, cls)


class FactorizedSelfAttention(Module):
    """ViViT model 3: x + temporal_attn(temporal_norm(x)) over time, then + spatial_attn(
    spatial_norm(.)) over space (order='space_time' swaps them).  No class token."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, eps=1e-6,
                 order='time_space'):
        super().__init__()
        if order not in ('time_space', 'space_time'):
            raise ValueError(f"FactorizedSelfAttention: order must be 'time_space' or "
                             f"'space_time', got {order!r}")
        self.embed_dim, self.order = embed_dim, order
        self.temporal_norm = LayerNorm(embed_dim, eps=eps)
        self.temporal_attn = SelfAttention(embed_dim, num_heads, dropout, bias)
        self.spatial_norm = LayerNorm(embed_dim, eps=eps)
        self.spatial_attn = SelfAttention(embed_dim, num_heads, dropout, bias)

    def forward(self, x):
        _check_x('FactorizedSelfAttention', x, self.embed_dim)
        return ST.factorized_self_attention(
            x, lambda s: self.temporal_attn(self.temporal_norm(s)),
            lambda s: self.spatial_attn(self.spatial_norm(s)), self.order)

    def extra_repr(self):
        return f'order={self.order!r}'


class FactorizedDotProductAttention(Module):
    """ViViT model 4: x + attn(norm1(x)) where, from one set of projections, the first half of
    the heads attend within each frame and the second half across frames at each patch position;
    the heads' outputs are concatenated and projected together.  num_heads must be even."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, eps=1e-6):
        super().__init__()
        if num_heads % 2:
            raise ValueError(f"FactorizedDotProductAttention: num_heads must be even (half "
                             f"spatial, half temporal), got {num_heads}")
        self.embed_dim = embed_dim
        self.norm1 = LayerNorm(embed_dim, eps=eps)
        self.attn = SelfAttention(embed_dim, num_heads, dropout, bias)

    def forward(self, x):
        _check_x('FactorizedDotProductAttention', x, self.embed_dim)
        q, k, v = self.attn.heads(self.norm1(x))                     # (N, T, H, S, d)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))             # (N, H, T, S, d)
        p = self.attn.dropout if self.training else 0.0
        out = ST.factorized_dot_product_attention(q, k, v, dropout_p=p)
        return x + self.attn.merge(out.transpose(1, 2))

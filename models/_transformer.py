"""The pieces the video transformers share (TimeSformer, ViViT): token embeddings, the MLP, and a
transformer block for each way of letting space-time tokens attend to each other.

Tokens are laid out as a grid (N, T, S, D): T time steps of S patch tokens of width D, the layout
of tensorlite.nn.spacetime.  A plain token sequence (B, L, D) is the grid (B, 1, L, D): one "frame"
of L tokens, so joint attention over it is ordinary ViT self-attention.

    ConvStem          a small 3D CNN in front of the embedding (the tiny presets' "hybrid")
                                                  (N, C, T, H, W) -> (N, C', T/2, H/4, W/4)
    PatchEmbed        TimeSformer: Conv2d P x P / P on every frame   (N, C, T, H, W) -> (N, T, S, D)
    TubeletEmbedding  ViViT: Conv3d t x P x P / t x P x P        (N, C, T, H, W) -> (N, T/t, S, D)
    MLP               fc1 -> GELU -> dropout -> fc2 -> dropout   (..., D) -> (..., D)
    JointBlock                      x + attn(norm1(x)) over all tokens (+ class token);
                                    + mlp(norm2(.))
    DividedBlock                    TimeSformer's divided space-time block; + mlp(norm2(.))
    FactorizedSelfAttentionBlock    ViViT model 3: time, then space, then mlp
    FactorizedDotProductBlock       ViViT model 4: half the heads over space, half over time; mlp

Each block IS its space-time attention layer (a subclass), with norm2 and mlp added, so the state
dict keys are flat as in TimeSformer's and timm's Block: blocks.0.norm1, blocks.0.attn.qkv,
blocks.0.attn.proj, blocks.0.temporal_norm1, blocks.0.temporal_attn.qkv, blocks.0.temporal_fc,
blocks.0.norm2, blocks.0.mlp.fc1, blocks.0.mlp.fc2.
"""
import math

import tensorlite.nn as nn
from tensorlite.nn import init


class ConvStem(nn.Module):
    """Two Conv3d 3x3x3 (padding 1) + BatchNorm3d + ReLU stages, max-pooled 1x2x2 after the first
    and 2x2x2 after the second: (N, in_channels, T, H, W) -> (N, widths[1], T/2, H/4, W/4).

    Why the tiny presets put it in front of the token embedding (a "hybrid" transformer, as ViT's
    ResNet-stem variant): the embedding of a patch or tubelet is linear, and on the synthetic
    families the label lives in a ~7-pixel object's motion.  From scratch and in a few passes, a
    linear embedding read out by a class token (or a mean) stays at chance on 'motion' and 'order'
    -- in PyTorch as well -- while two small conv layers give every token a normalized local
    motion feature that the transformer can order in time (docs/training.md)."""

    def __init__(self, in_channels, widths=(8, 16)):
        super().__init__()
        if len(widths) != 2:
            raise ValueError(f"ConvStem: widths must be two channel counts, got {widths!r}")
        a, b = widths
        self.widths = (int(a), int(b))
        self.conv1 = nn.Conv3d(in_channels, a, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(a)
        self.pool1 = nn.MaxPool3d((1, 2, 2))
        self.conv2 = nn.Conv3d(a, b, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(b)
        self.pool2 = nn.MaxPool3d((2, 2, 2))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.pool1(self.relu(self.bn1(self.conv1(x))))
        return self.pool2(self.relu(self.bn2(self.conv2(x))))


def pool_tokens(tokens, pool):
    """The readout of a grid of tokens (N, T, S, D) without a class token: 'mean' or 'max' over
    all T*S tokens -> (N, D).  The max keeps a feature that only a few tokens have (a small
    object's), which the mean divides by T*S."""
    N, T, S, D = tokens.shape
    flat = tokens.reshape(N, T * S, D)
    if pool == 'mean':
        return flat.mean(1)
    if pool == 'max':
        return flat.max(1).values
    raise ValueError(f"pool must be 'cls', 'mean' or 'max', got {pool!r}")


class PatchEmbed(nn.Module):
    """Every frame cut into P x P patches, each projected to D by one Conv2d `proj` (kernel P,
    stride P; TimeSformer's PatchEmbed).  The frames are embedded independently: this layer
    sees no time at all.  (N, C, T, H, W) -> (N, T, S, D), S = (H / P) * (W / P)."""

    def __init__(self, in_channels, embed_dim, patch_size):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x):
        N, C, T, H, W = x.shape
        frames = x.transpose(1, 2).reshape(N * T, C, H, W)             # (N*T, C, H, W)
        y = self.proj(frames)                                          # (N*T, D, H/P, W/P)
        D = y.shape[1]
        y = y.reshape(N, T, D, y.shape[2] * y.shape[3])                # (N, T, D, S)
        return y.transpose(2, 3)                                       # (N, T, S, D)


class TubeletEmbedding(nn.Conv3d):
    """ViViT's tubelet embedding: a Conv3d with kernel = stride = (t, P, P) cuts the clip into
    non-overlapping t x P x P tubes and projects each to D, so every token already mixes t frames.
    It is the Conv3d itself (keys embedding.weight, embedding.bias, as scenic's 'embedding').
    (N, C, T, H, W) -> (N, T/t, S, D), S = (H / P) * (W / P)."""

    def __init__(self, in_channels, embed_dim, tubelet):
        super().__init__(in_channels, embed_dim, tubelet, stride=tubelet)
        self.tubelet = tuple(tubelet)

    def forward(self, x):
        y = super().forward(x)                                         # (N, D, T/t, H/P, W/P)
        N, D, T, h, w = y.shape
        return y.reshape(N, D, T, h * w).permute(0, 2, 3, 1)           # (N, T/t, S, D)


class MLP(nn.Module):
    """The transformer's feed-forward part on each token alone: fc1 (D -> hidden), GELU, dropout,
    fc2 (hidden -> D), dropout.  approximate='tanh' is Flax's default GELU (scenic), 'none' the
    exact erf GELU (PyTorch, TimeSformer)."""

    def __init__(self, embed_dim, hidden_dim, dropout=0.0, approximate='none'):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden_dim, embed_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class _WithMLP:
    """Mixin for a space-time attention layer: adds norm2 and mlp, and applies x + mlp(norm2(x))
    to every token (and to the class token) after the layer's attention step."""

    def _add_mlp(self, embed_dim, mlp_dim, dropout, eps, approximate):
        self.norm2 = nn.LayerNorm(embed_dim, eps=eps)
        self.mlp = MLP(embed_dim, mlp_dim, dropout, approximate)

    def _feed_forward(self, x):
        return x + self.mlp(self.norm2(x))

    def forward(self, x, cls=None):
        if cls is None:
            return self._feed_forward(super().forward(x))
        x, cls = super().forward(x, cls)
        return self._feed_forward(x), self._feed_forward(cls)


class JointBlock(_WithMLP, nn.JointSpaceTimeAttention):
    """A standard pre-norm transformer encoder block (ViT's) on all T*S tokens at once:
        x = x + attn(norm1(x));  x = x + mlp(norm2(x))
    forward(x (N, T, S, D), cls=None) -> x, or (x, cls) with a class token (N, D).  On a grid
    (B, 1, L, D) it is the block of an ordinary sequence transformer."""

    def __init__(self, embed_dim, num_heads, mlp_dim, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 approximate='none'):
        super().__init__(embed_dim, num_heads, attn_dropout, True, eps)
        self._add_mlp(embed_dim, mlp_dim, dropout, eps, approximate)


class DividedBlock(_WithMLP, nn.DividedSpaceTimeAttention):
    """TimeSformer's block: attention over time at each patch position (temporal_norm1,
    temporal_attn, temporal_fc, residual), then over space within each frame with the class token
    (norm1, attn, residual), then x + mlp(norm2(x)).  forward(x (N, T, S, D), cls=None)."""

    def __init__(self, embed_dim, num_heads, mlp_dim, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 approximate='none'):
        super().__init__(embed_dim, num_heads, attn_dropout, True, eps, temporal_fc=True)
        self._add_mlp(embed_dim, mlp_dim, dropout, eps, approximate)


class FactorizedSelfAttentionBlock(_WithMLP, nn.FactorizedSelfAttention):
    """ViViT model 3's block: x + temporal_attn(temporal_norm(x)) over time, then
    + spatial_attn(spatial_norm(.)) over space (order='time_space'), then x + mlp(norm2(x)).
    No class token.  forward(x (N, T, S, D))."""

    def __init__(self, embed_dim, num_heads, mlp_dim, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 approximate='none', order='time_space'):
        super().__init__(embed_dim, num_heads, attn_dropout, True, eps, order)
        self._add_mlp(embed_dim, mlp_dim, dropout, eps, approximate)


class FactorizedDotProductBlock(_WithMLP, nn.FactorizedDotProductAttention):
    """ViViT model 4's block: a standard block's weights (norm1, attn.qkv, attn.proj, norm2, mlp)
    where half the heads attend within each frame and half across frames at each patch position.
    No class token.  forward(x (N, T, S, D))."""

    def __init__(self, embed_dim, num_heads, mlp_dim, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 approximate='none'):
        super().__init__(embed_dim, num_heads, attn_dropout, True, eps)
        self._add_mlp(embed_dim, mlp_dim, dropout, eps, approximate)


def xavier_uniform_chunks_(weight, chunks):
    """Xavier-uniform on each of `chunks` equal row blocks of a Linear weight, as if each were its
    own layer (Flax initializes query, key and value separately; here they are one qkv)."""
    out, inp = weight.shape
    bound = math.sqrt(6.0 / (inp + out // chunks))
    return init.uniform_(weight, -bound, bound)

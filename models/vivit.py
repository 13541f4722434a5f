"""ViViT (Arnab, Dehghani, Heigold, Sun, Lucic & Schmid 2021, "ViViT: A Video Vision Transformer"):
tubelet tokens and four ways of factorizing attention over space and time.

The lesson's idea: cut the clip into spatio-temporal tokens (tubelets of t frames x P x P pixels),
embed each, and run a transformer over them.  Joint attention over all tokens is quadratic in their
number, so ViViT compares it with three factorizations:

    x (N, 3, T, H, W)
    embedding: Conv3d 3 -> D, kernel = stride = t x P x P        (N, T', S, D), T' = T/t, S = HW/P^2

    model 1 'joint'                   [cls] + pos_embed (1, 1 + T'S, D) -> blocks over all T'S
                                      tokens -> norm -> cls -> head
    model 2 'factorized_encoder'      spatial encoder on each of the T' frames alone (weights shared
                                      over time, its own cls, pos (1, 1 + S, D)) -> one cls token a
                                      frame (N, T', D) -> temporal encoder over the T' frame tokens
                                      (another cls, pos (1, 1 + T', D)) -> cls -> head
    model 3 'factorized_self_attention'
                                      pos (1, T'S, D) -> blocks of attention over time, then over
                                      space, then MLP -> norm -> mean of all tokens -> head
    model 4 'factorized_dot_product'  pos (1, T'S, D) -> blocks whose heads are half spatial, half
                                      temporal -> norm -> mean of all tokens -> head

What each can see in time: every token starts with t frames (the tubelet).  Model 1 mixes all
tokens of the clip in every layer.  Model 2 never mixes frames in the spatial encoder (a frame's
tokens are computed from that frame's tubelets alone); time is seen only by the temporal encoder,
through the T' frame summaries -- late fusion, but a learned, order-aware one (temporal pos_embed).
Models 3 and 4 mix time in every layer, each token reading its own patch position across time, and
reach the rest of the clip by composition over layers.  All four fix T and H, W (their position
embeddings are learned for T' x S tokens); other sizes raise an error naming the expected shape.

Names: scenic (google-research/scenic, projects/vivit/model.py) mapped to PyTorch / timm keys,
with scenic's module tree kept:
    embedding/{kernel,bias}                  -> embedding.{weight,bias}   (Conv3d; kernel
                                                (t,P,P,C,D) -> weight (D,C,t,P,P))
    cls, cls_SpatialTransformer, cls_TemporalTransformer
                                             -> transformer.cls_token,
                                                spatial_transformer.cls_token,
                                                temporal_transformer.cls_token
    Transformer | SpatialTransformer | TemporalTransformer
                                             -> transformer | spatial_transformer |
                                                temporal_transformer
      posembed_input/pos_embedding           -> .pos_embed
      encoderblock_i/LayerNorm_0             -> .blocks.i.norm1
      encoderblock_i/MultiHeadDotProductAttention_0/{query,key,value}
                                             -> .blocks.i.attn.qkv (rows q, k, v)
      .../out                                -> .blocks.i.attn.proj
      encoderblock_i/LayerNorm_1, MlpBlock_0/Dense_0, Dense_1
                                             -> .blocks.i.norm2, .blocks.i.mlp.fc1, .mlp.fc2
      model 3: LayerNorm_time, MultiHeadDotProductAttention_time, LayerNorm_space,
               MultiHeadDotProductAttention_space, LayerNorm_mlp, MlpBlock
                                             -> temporal_norm, temporal_attn, spatial_norm,
                                                spatial_attn, norm2, mlp
      encoder_norm                           -> .norm
    output_projection                        -> head
Model 4: scenic's first half of the heads attends over time and the second over space;
tensorlite's FactorizedDotProductAttention has space first, so converting weights swaps the two
halves of the heads in q, k, v and in out's input (the columns of attn.proj.weight).

Initialization is scenic's: Xavier-uniform q, k, v, out and MLP weights, zero attention biases,
MLP biases N(0, 1e-6), pos_embed N(0, 0.02), zero class tokens, zero head (weight and bias).
GELU is Flax's default tanh approximation.  Not implemented: stochastic depth (scenic's
stochastic_droplayer_rate; no parameters), the central-frame initializer of the embedding (it
matters when inflating ViT weights).
"""
import math

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
from tensorlite.nn import init

from ._common import check_clip
from ._transformer import (FactorizedDotProductBlock, FactorizedSelfAttentionBlock, JointBlock,
                           TubeletEmbedding, xavier_uniform_chunks_)
from .registry import register_model

VARIANTS = ('joint', 'factorized_encoder', 'factorized_self_attention', 'factorized_dot_product')

PRESETS = {
    # 16 frames of 32 x 32 in 2 x 8 x 8 tubelets: 8 x 16 = 128 tokens
    'tiny': dict(frames=16, img_size=32, tubelet=(2, 8, 8), embed_dim=32, depth=2,
                 temporal_depth=2, num_heads=2, mlp_dim=128),
    # ViViT-B/16x2, scenic configs/kinetics400/vivit_base_factorised_encoder.py: 32 frames of
    # 224^2 in 2 x 16 x 16 tubelets, 16 x 14 x 14 = 3136 tokens; temporal encoder 4 layers
    'paper': dict(frames=32, img_size=224, tubelet=(2, 16, 16), embed_dim=768, depth=12,
                  temporal_depth=4, num_heads=12, mlp_dim=3072),
}

BLOCKS = {'joint': JointBlock, 'factorized_encoder': JointBlock,
          'factorized_self_attention': FactorizedSelfAttentionBlock,
          'factorized_dot_product': FactorizedDotProductBlock}


class Encoder(nn.Module):
    """scenic's Encoder ('Transformer'): [cls_token] -> + pos_embed -> blocks -> norm, on a grid of
    tokens (B, T, S, D) (a sequence of L tokens is the grid (B, 1, L, D)).

    forward(x (B, T, S, D)) -> (tokens (B, T, S, D), cls (B, D) or None), both after the final
    norm.  block: a block class of models._transformer."""

    def __init__(self, block, grid, embed_dim, depth, num_heads, mlp_dim, cls_token=True,
                 dropout=0.0, attn_dropout=0.0, eps=1e-6):
        super().__init__()
        self.grid, self.embed_dim = tuple(grid), embed_dim
        T, S = grid
        if cls_token:
            self.cls_token = nn.Parameter(tl.zeros(1, 1, embed_dim))
        else:
            self.cls_token = None
        self.pos_embed = nn.Parameter(tl.zeros(1, int(cls_token) + T * S, embed_dim))
        self.blocks = nn.ModuleList([block(embed_dim, num_heads, mlp_dim, dropout, attn_dropout,
                                           eps, approximate='tanh') for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=eps)

    def forward(self, x):
        B, T, S, D = x.shape
        seq = x.reshape(B, T * S, D)                                   # (B, T*S, D), order (t, s)
        if self.cls_token is None:
            x = (seq + self.pos_embed).reshape(B, T, S, D)
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x), None
        seq = F.cat([self.cls_token.expand(B, 1, D), seq], 1)  # (B, 1 + T*S, D)
        seq = seq + self.pos_embed
        cls, x = seq[:, 0], seq[:, 1:].reshape(B, T, S, D)             # (B, D), (B, T, S, D)
        for blk in self.blocks:
            x, cls = blk(x, cls)
        return self.norm(x), self.norm(cls)


class ViViT(nn.Module):
    """ViViT on clips (N, in_channels, frames, img_size, img_size) -> (N, num_classes).

    variant: 'joint' (model 1), 'factorized_encoder' (model 2), 'factorized_self_attention'
    (model 3), 'factorized_dot_product' (model 4).  tubelet: (t, P, P).  depth: layers of the
    encoder (model 2: of the spatial encoder); temporal_depth: model 2's temporal encoder.
    order: model 3's 'time_space' (scenic's default) or 'space_time'."""

    def __init__(self, num_classes, variant='factorized_encoder', frames=32, img_size=224,
                 tubelet=(2, 16, 16), in_channels=3, embed_dim=768, depth=12, temporal_depth=4,
                 num_heads=12, mlp_dim=3072, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 order='time_space'):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"ViViT: variant must be one of {VARIANTS}, got {variant!r}")
        t, ph, pw = tubelet
        if frames % t or img_size % ph or img_size % pw:
            raise ValueError(f"ViViT: frames x img_size x img_size = {frames} x {img_size} x "
                             f"{img_size} must be multiples of the tubelet {tuple(tubelet)}")
        self.variant, self.frames, self.img_size = variant, frames, img_size
        self.in_channels, self.embed_dim = in_channels, embed_dim
        T, S = frames // t, (img_size // ph) * (img_size // pw)
        self.tokens = (T, S)
        self.embedding = TubeletEmbedding(in_channels, embed_dim, tubelet)
        common = dict(embed_dim=embed_dim, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout,
                      attn_dropout=attn_dropout, eps=eps)
        if variant == 'factorized_encoder':
            self.spatial_transformer = Encoder(JointBlock, (1, S), depth=depth, **common)
            self.temporal_transformer = Encoder(JointBlock, (1, T), depth=temporal_depth, **common)
        else:
            block = BLOCKS[variant]
            if variant == 'factorized_self_attention':
                block = _with_order(order)
            self.transformer = Encoder(block, (T, S), depth=depth,
                                       cls_token=(variant == 'joint'), **common)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self):
        fan_in = self.in_channels * math.prod(self.embedding.tubelet)
        init.trunc_normal_(self.embedding.weight, std=1 / math.sqrt(fan_in) / .87962566103423978,
                           a=-2 / math.sqrt(fan_in) / .87962566103423978,
                           b=2 / math.sqrt(fan_in) / .87962566103423978)  # Flax lecun_normal
        init.zeros_(self.embedding.bias)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if name.endswith('qkv'):
                    xavier_uniform_chunks_(m.weight, 3)
                else:
                    init.xavier_uniform_(m.weight)
                if name.endswith(('fc1', 'fc2')):
                    init.normal_(m.bias, std=1e-6)
                else:
                    init.zeros_(m.bias)
            elif isinstance(m, Encoder):
                init.normal_(m.pos_embed, std=0.02)
        init.zeros_(self.head.weight)
        init.zeros_(self.head.bias)

    @property
    def model_name(self):
        return f'vivit_{self.variant}'

    def forward(self, x):
        check_clip(self.model_name, x, self.in_channels, self.frames, size=self.img_size)
        tokens = self.embedding(x)                                     # (N, T', S, D)
        N, T, S, D = tokens.shape
        if self.variant == 'factorized_encoder':
            frames = tokens.reshape(N * T, 1, S, D)                    # each frame alone
            _, cls = self.spatial_transformer(frames)                  # (N*T', D): a token a frame
            _, cls = self.temporal_transformer(cls.reshape(N, 1, T, D))  # (N, D)
            return self.head(cls)
        tokens, cls = self.transformer(tokens)                         # (N, T', S, D), cls
        if cls is None:                                                # models 3, 4: mean of tokens
            cls = tokens.mean((1, 2))                                  # (N, D)
        return self.head(cls)


def _with_order(order):
    def block(*args, **kwargs):
        return FactorizedSelfAttentionBlock(*args, order=order, **kwargs)
    return block


def _build(variant):
    def build(num_classes, preset='tiny', **overrides):
        config = dict(PRESETS[preset], variant=variant)
        config.update(overrides)
        return ViViT(num_classes, **config)
    build.__doc__ = f"ViViT with variant={variant!r} (overrides: any ViViT argument)."
    return build


vivit = register_model('vivit')(_build('factorized_encoder'))
vivit_joint = register_model('vivit_joint')(_build('joint'))
vivit_factorized_encoder = register_model('vivit_factorized_encoder')(_build('factorized_encoder'))
vivit_factorized_self_attention = register_model('vivit_factorized_self_attention')(
    _build('factorized_self_attention'))
vivit_factorized_dot_product = register_model('vivit_factorized_dot_product')(
    _build('factorized_dot_product'))

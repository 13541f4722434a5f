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

Tiny preset: a hybrid, for the reason given in timesformer.py's doc (measured in docs/training.md):
from scratch and in a few passes, tubelets of a ~7-pixel object embedded linearly and read out by
class tokens stay at chance on 'motion' and 'order', in PyTorch as well.  The tiny preset puts a
two-layer ConvStem in front of a 1 x 2 x 2 tubelet embedding, reads out maxima over the tokens
(pool='max': each frame's tokens, then the temporal encoder's), and starts its position embeddings
at std 1.0 instead of 0.02: the temporal encoder's tokens come out of a LayerNorm at unit scale, and
a time embedding 50 times smaller left the model blind to order (50 % after 4 passes, 100 % with
1.0).  The 'paper' preset is the paper's.
"""
import math

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
from tensorlite.nn import init

from ._common import check_clip
from ._transformer import (ConvStem, FactorizedDotProductBlock, FactorizedSelfAttentionBlock,
                           JointBlock, TubeletEmbedding, pool_tokens, xavier_uniform_chunks_)
from .registry import register_model

VARIANTS = ('joint', 'factorized_encoder', 'factorized_self_attention', 'factorized_dot_product')

PRESETS = {
    # 16 frames of 32 x 32 -> a conv stem (8, 16 channels) -> 8 x 8 x 8 maps in 1 x 2 x 2
    # tubelets: 8 x 16 = 128 tokens, read out by maxima over the tokens (module doc: 'Tiny preset')
    'tiny': dict(frames=16, img_size=32, tubelet=(1, 2, 2), embed_dim=32, depth=2,
                 temporal_depth=2, num_heads=2, mlp_dim=128, stem=(8, 16), pool='max',
                 pos_embed_std=1.0),
    # ViViT-B/16x2, scenic configs/kinetics400/vivit_base_factorised_encoder.py: 32 frames of
    # 224^2 in 2 x 16 x 16 tubelets, 16 x 14 x 14 = 3136 tokens; temporal encoder 4 layers
    'paper': dict(frames=32, img_size=224, tubelet=(2, 16, 16), embed_dim=768, depth=12,
                  temporal_depth=4, num_heads=12, mlp_dim=3072),
}

# How each variant reads out its tokens: the paper's (class token for models 1 and 2, the mean of
# the tokens for 3 and 4), or a mean / max over the tokens (models 3 and 4 have no class token).
DEFAULT_POOL = {'joint': 'cls', 'factorized_encoder': 'cls', 'factorized_self_attention': 'mean',
                'factorized_dot_product': 'mean'}
POOLS = {'joint': ('cls', 'mean', 'max'), 'factorized_encoder': ('cls', 'mean', 'max'),
         'factorized_self_attention': ('mean', 'max'), 'factorized_dot_product': ('mean', 'max')}

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
    order: model 3's 'time_space' (scenic's default) or 'space_time'.  stem: None (the paper:
    tubelets of the clip) or two channel counts of a ConvStem in front of the embedding (time / 2,
    space / 4; the tubelet then counts stem steps and pixels).  pool: None (the variant's own: class
    token for models 1, 2, mean of the tokens for 3, 4), 'cls', 'mean' or 'max' (over the tokens
    after the final norm, without class tokens; model 2 pools each frame's tokens, then the
    temporal encoder's).  pos_embed_std: the std of the position embeddings at init (scenic's
    0.02; the tiny preset's 1.0, so that time stands out against tokens of unit scale)."""

    def __init__(self, num_classes, variant='factorized_encoder', frames=32, img_size=224,
                 tubelet=(2, 16, 16), in_channels=3, embed_dim=768, depth=12, temporal_depth=4,
                 num_heads=12, mlp_dim=3072, dropout=0.0, attn_dropout=0.0, eps=1e-6,
                 order='time_space', stem=None, pool=None, pos_embed_std=0.02):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"ViViT: variant must be one of {VARIANTS}, got {variant!r}")
        pool = DEFAULT_POOL[variant] if pool is None else pool
        if pool not in POOLS[variant]:
            raise ValueError(f"ViViT: pool for variant {variant!r} must be one of "
                             f"{POOLS[variant]}, got {pool!r}")
        # A stem halves time and quarters space before the tubelets are cut.
        step_t, step_s = (2, 4) if stem is not None else (1, 1)
        t, ph, pw = tubelet
        if frames % (step_t * t) or img_size % (step_s * ph) or img_size % (step_s * pw):
            size = f"{frames} x {img_size} x {img_size}"
            if stem is not None:                       # say what the tubelets are cut from
                size = (f"{frames // step_t} x {img_size // step_s} x {img_size // step_s} (the "
                        f"stem {tuple(stem)}'s maps of {size} clips)")
            raise ValueError(f"ViViT: frames x img_size x img_size = {size} must be multiples of "
                             f"the tubelet {tuple(tubelet)}")
        self.variant, self.frames, self.img_size = variant, frames, img_size
        self.in_channels, self.embed_dim, self.pool = in_channels, embed_dim, pool
        self.pos_embed_std = pos_embed_std
        self.stem = ConvStem(in_channels, stem) if stem is not None else None
        T = frames // step_t // t
        S = (img_size // step_s // ph) * (img_size // step_s // pw)
        self.tokens = (T, S)
        self.embedding = TubeletEmbedding(stem[-1] if stem is not None else in_channels,
                                          embed_dim, tubelet)
        common = dict(embed_dim=embed_dim, num_heads=num_heads, mlp_dim=mlp_dim, dropout=dropout,
                      attn_dropout=attn_dropout, eps=eps)
        with_cls = pool == 'cls'
        if variant == 'factorized_encoder':
            self.spatial_transformer = Encoder(JointBlock, (1, S), depth=depth,
                                               cls_token=with_cls, **common)
            self.temporal_transformer = Encoder(JointBlock, (1, T), depth=temporal_depth,
                                                cls_token=with_cls, **common)
        else:
            block = BLOCKS[variant]
            if variant == 'factorized_self_attention':
                block = _with_order(order)
            self.transformer = Encoder(block, (T, S), depth=depth, cls_token=with_cls, **common)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self):
        fan_in = self.embedding.in_channels * math.prod(self.embedding.tubelet)
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
                init.normal_(m.pos_embed, std=self.pos_embed_std)
        init.zeros_(self.head.weight)
        init.zeros_(self.head.bias)

    @property
    def model_name(self):
        return f'vivit_{self.variant}'

    def forward(self, x):
        check_clip(self.model_name, x, self.in_channels, self.frames, size=self.img_size)
        if self.stem is not None:
            x = self.stem(x)                                           # (N, C', T/2, H/4, W/4)
        tokens = self.embedding(x)                                     # (N, T', S, D)
        N, T, S, D = tokens.shape
        if self.variant == 'factorized_encoder':
            frames = tokens.reshape(N * T, 1, S, D)                    # each frame alone
            frames, cls = self.spatial_transformer(frames)             # (N*T', D): a token a frame
            if cls is None:
                cls = pool_tokens(frames, self.pool)
            steps, cls = self.temporal_transformer(cls.reshape(N, 1, T, D))
            if cls is None:
                cls = pool_tokens(steps, self.pool)                    # (N, D)
            return self.head(cls)
        tokens, cls = self.transformer(tokens)                         # (N, T', S, D), cls
        if cls is None:                                # models 3, 4, or pool 'mean' / 'max'
            cls = pool_tokens(tokens, self.pool)                       # (N, D)
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


def _clip(frames, size):
    return {'frames': frames, 'img_size': size}      # position embeddings fix both


# paper: ViViT-B/16x2 on Kinetics-400, 32 x 224 x 224 (REFERENCES.md section 5)
_FACTS = dict(paper_num_classes=400, paper_clip=(32, 224), clip_arguments=_clip)
vivit = register_model('vivit', **_FACTS)(_build('factorized_encoder'))
vivit_joint = register_model('vivit_joint', **_FACTS)(_build('joint'))
vivit_factorized_encoder = register_model('vivit_factorized_encoder', **_FACTS)(
    _build('factorized_encoder'))
vivit_factorized_self_attention = register_model('vivit_factorized_self_attention', **_FACTS)(
    _build('factorized_self_attention'))
vivit_factorized_dot_product = register_model('vivit_factorized_dot_product', **_FACTS)(
    _build('factorized_dot_product'))

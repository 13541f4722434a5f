"""TimeSformer (Bertasius, Wang & Torresani 2021, "Is space-time attention all you need for video
understanding?"): ViT on video, where each block attends over time and then over space.

The lesson's idea: cut every frame into patches, embed each as a token, and run a transformer over
the T x S tokens of the clip.  Full (joint) attention over all of them costs (T*S)^2 per head;
*divided* space-time attention does two cheaper attentions in each block -- across time at the same
patch position (S*T^2), then across space within one frame (T*S^2).

    x (N, 3, T, H, W)
    patch_embed.proj: Conv2d 3 -> D, P x P / P on each frame       (N, T, S, D), S = HW / P^2
    + pos_embed[1:] (space, shared by all frames), + time_embed[t] (one row per frame)
    cls_token + pos_embed[0]                                        (N, D)   (no time embedding)
    blocks x depth: divided | joint | space-only attention, MLP    (N, T, S, D), (N, D)
    norm(cls) -> head                                               (N, num_classes)

What it sees in time:
    'divided'     every block mixes the T frames at each patch position, then the patches of each
                  frame, so within one block every token reaches every other in two hops (the
                  class token reads every frame in every block).  Order is seen through
                  time_embed.
    'joint'       every token sees every token of the clip in every block (quadratic cost).
    'space_only'  no attention across time at all: each frame runs through the blocks alone with
                  its own copy of the class token, and the T class tokens are averaged at the end
                  (late fusion by averaging -- it cannot tell an event from its reverse).
The model fixes T (time_embed has T rows) and H, W (pos_embed has 1 + S rows): other input sizes
raise an error naming the expected shape (the official code interpolates instead).

Names follow the official implementation (facebookresearch/TimeSformer, timesformer/models/vit.py,
class VisionTransformer): patch_embed.proj, cls_token, pos_embed, time_embed, blocks.i.{norm1,
attn.qkv, attn.proj, temporal_norm1, temporal_attn.qkv, temporal_attn.proj, temporal_fc, norm2,
mlp.fc1, mlp.fc2}, norm, head.  Its checkpoints wrap that class as `model.`: strip the prefix with
`from_official_state_dict`.  Initialization is the official one: trunc-normal(0.02) Linear weights,
zero biases, trunc-normal(0.02) cls_token and pos_embed, zero time_embed, and temporal_fc zero in
every block but the first, so that a model starts as a per-frame ViT plus one temporal mixing.

Tiny preset: a hybrid.  From scratch, in the few passes `tensorlite compare` gives it, the paper's
design (linear patch embedding, class-token readout) stays at chance on 'motion' and 'order' --
so does the same model written in PyTorch.  The object that carries the label covers a few pixels,
the linear embedding gives its patch no motion feature, and a class token (or a mean) that starts
by averaging every token divides what little there is by T*S.  The tiny preset therefore puts a
two-layer ConvStem in front (every token gets normalized local motion features) and reads out the
max over the tokens (pool='max'); with both it learns 'order' (docs/training.md has the
measurements).  The 'paper' preset is the paper's model.

Not implemented: stochastic depth (drop_path 0.1 in the paper's training configuration; it has no
parameters), and the resizing of pos_embed / time_embed to other input sizes.
"""
import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.nn import init

from ._common import check_clip
from ._transformer import ConvStem, DividedBlock, JointBlock, PatchEmbed, pool_tokens
from .registry import register_model

ATTENTION_TYPES = ('divided', 'joint', 'space_only')
POOLS = ('cls', 'mean', 'max')

PRESETS = {
    # 16 frames of 32 x 32 -> a conv stem (8, 16 channels) -> 8 steps of 8 x 8 maps in 2 x 2
    # patches: 16 tokens a step, 128 a clip, read out by a max over the tokens (module doc)
    'tiny': dict(frames=16, img_size=32, patch_size=2, embed_dim=32, depth=2, num_heads=2,
                 mlp_dim=128, stem=(8, 16), pool='max'),
    # TimeSformer-Base 8 x 224^2 (K400 config TimeSformer_divST_8x32_224.yaml)
    'paper': dict(frames=8, img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12,
                  mlp_dim=3072),
}


class TimeSformer(nn.Module):
    """TimeSformer on clips (N, in_channels, frames, img_size, img_size) -> (N, num_classes).

    attention_type: 'divided' (TimeSformer's divided space-time attention), 'joint' (one attention
    over all 1 + T*S tokens) or 'space_only' (frames alone, class tokens averaged over frames).
    mlp_dim: the MLP's hidden width (4 * embed_dim in the paper).  dropout: after GELU and fc2;
    attn_dropout: on the attention weights.  stem: None (the paper: patches of the frames) or two
    channel counts of a ConvStem in front of the patch embedding (time / 2, space / 4; patch_size
    then counts stem pixels).  pool: 'cls' (the paper: norm(class token) -> head), or 'mean' /
    'max' over all tokens after the final norm (no class token, pos_embed without its row)."""

    def __init__(self, num_classes, attention_type='divided', frames=8, img_size=224,
                 patch_size=16, in_channels=3, embed_dim=768, depth=12, num_heads=12,
                 mlp_dim=3072, dropout=0.0, attn_dropout=0.0, eps=1e-6, stem=None, pool='cls'):
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"TimeSformer: attention_type must be one of {ATTENTION_TYPES}, got "
                             f"{attention_type!r}")
        if pool not in POOLS:
            raise ValueError(f"TimeSformer: pool must be one of {POOLS}, got {pool!r}")
        # A stem halves time and quarters space before the patches are cut.
        step_t, step_s = (2, 4) if stem is not None else (1, 1)
        if img_size % (step_s * patch_size) or frames % step_t:
            raise ValueError(f"TimeSformer: img_size ({img_size}) must be a multiple of "
                             f"{'4 x ' if stem is not None else ''}patch_size ({patch_size})"
                             + (f" and frames ({frames}) even (stem {tuple(stem)})"
                                if stem is not None else ""))
        self.attention_type, self.frames, self.img_size = attention_type, frames, img_size
        self.in_channels, self.embed_dim, self.pool = in_channels, embed_dim, pool
        self.stem = ConvStem(in_channels, stem) if stem is not None else None
        self.time_steps = frames // step_t                      # token rows in time
        self.num_patches = (img_size // step_s // patch_size) ** 2
        self.patch_embed = PatchEmbed(stem[-1] if stem is not None else in_channels, embed_dim,
                                      patch_size)
        with_cls = pool == 'cls'
        self.cls_token = nn.Parameter(tl.zeros(1, 1, embed_dim)) if with_cls else None
        self.pos_embed = nn.Parameter(tl.zeros(1, int(with_cls) + self.num_patches, embed_dim))
        if attention_type != 'space_only':
            self.time_embed = nn.Parameter(tl.zeros(1, self.time_steps, embed_dim))
        block = DividedBlock if attention_type == 'divided' else JointBlock
        self.blocks = nn.ModuleList([block(embed_dim, num_heads, mlp_dim, dropout, attn_dropout,
                                           eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self):
        init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    init.zeros_(m.bias)
        if self.attention_type == 'divided':
            for blk in list(self.blocks)[1:]:
                init.zeros_(blk.temporal_fc.weight)
                init.zeros_(blk.temporal_fc.bias)

    @property
    def model_name(self):
        return 'timesformer' if self.attention_type == 'divided' else \
            f'timesformer_{self.attention_type}'

    def forward(self, x):
        check_clip(self.model_name, x, self.in_channels, self.frames, size=self.img_size)
        if self.stem is not None:
            x = self.stem(x)                                           # (N, C', T/2, H/4, W/4)
        tokens = self.patch_embed(x)                                   # (N, T, S, D)
        N, T, S, D = tokens.shape
        space = self.pos_embed if self.cls_token is None else self.pos_embed[:, 1:]
        tokens = tokens + space.reshape(1, 1, S, D)                    # same place, every frame
        cls = None
        if self.cls_token is not None:                                 # (1, D): no time embedding
            cls = (self.cls_token + self.pos_embed[:, :1]).reshape(1, D)
        if self.attention_type == 'space_only':
            tokens = tokens.reshape(N * T, 1, S, D)                    # each frame a clip alone
            cls = None if cls is None else cls.expand(N * T, D)        # a class token per frame
        else:
            tokens = tokens + self.time_embed.reshape(1, T, 1, D)      # same frame, every place
            cls = None if cls is None else cls.expand(N, D)
        for blk in self.blocks:
            if cls is None:
                tokens = blk(tokens)
            else:
                tokens, cls = blk(tokens, cls)
        if cls is None:                                                # pool 'mean' or 'max'
            return self.head(pool_tokens(self.norm(tokens).reshape(N, T, S, D), self.pool))
        if self.attention_type == 'space_only':
            cls = cls.reshape(N, T, D).mean(1)                         # (N, D): average of frames
        return self.head(self.norm(cls))                               # (N, num_classes)


def from_official_state_dict(state_dict):
    """An official TimeSformer checkpoint's state dict ('model.blocks.0.attn.qkv.weight', ...,
    arrays) with the wrapper's 'model.' prefix removed, ready for TimeSformer.load_state_dict
    (same attention_type, frames, img_size)."""
    return {(k[len('model.'):] if k.startswith('model.') else k): v for k, v in state_dict.items()}


def _build(attention_type):
    def build(num_classes, preset='tiny', **overrides):
        config = dict(PRESETS[preset], attention_type=attention_type)
        config.update(overrides)
        return TimeSformer(num_classes, **config)
    build.__doc__ = (f"TimeSformer with attention_type={attention_type!r} (overrides: any "
                     f"TimeSformer argument).")
    return build


def _clip(frames, size):
    return {'frames': frames, 'img_size': size}      # time and position embeddings fix both


# paper: TimeSformer-Base on Kinetics-400, 8 x 224 x 224 (REFERENCES.md section 4)
_FACTS = dict(paper_num_classes=400, paper_clip=(8, 224), clip_arguments=_clip)
timesformer = register_model('timesformer', **_FACTS)(_build('divided'))
timesformer_divided = register_model('timesformer_divided', **_FACTS)(_build('divided'))
timesformer_joint = register_model('timesformer_joint', **_FACTS)(_build('joint'))
timesformer_space_only = register_model('timesformer_space_only', **_FACTS)(_build('space_only'))

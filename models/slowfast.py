"""SlowFast (Feichtenhofer et al. 2019): two pathways at two frame rates, fused fast -> slow.

    from tensorlite.models import build_model
    net = build_model('slowfast', num_classes=400, preset='paper')   # SlowFast-R50 4x16
    logits = net(clip)                          # clip (N, 3, T, H, W): the fast pathway's frames

The lesson's idea: "variable frame rates by stream".  Appearance changes slowly, motion quickly, so
one network looks at the clip twice:

  - the Slow pathway sees few frames (T / alpha, every alpha-th frame) with full width: the
    spatial detail, the "what";
  - the Fast pathway sees all T frames with beta = 1 / beta_inv of the channels: the temporal
    detail, the "how it moves", at a fraction (about 20 % in the paper preset) of the compute;
  - after the stem and after res2, res3, res4 a lateral connection carries the Fast pathway into
    the Slow one: a time-strided convolution (kernel fusion_kernel x 1 x 1, stride alpha in time,
    channels x fusion_ratio = 2, no bias), BN, ReLU, concatenated to the Slow channels.  Unlike
    two-stream networks (fused once, at the end) the pathways are fused throughout.

Input: ONE clip (N, 3, T, H, W), the Fast pathway's frames; the Slow pathway takes
x[:, :, ::alpha], exactly the indices tensorlite.data.samplers.TwoRate gives it (slow =
fast[::alpha]).  T must be a multiple of alpha (ValueError naming the expected shape otherwise), so
that the lateral convolution (stride alpha, padding fusion_kernel // 2, odd kernel) turns T fast
frames into exactly the T / alpha slow ones.

Shapes, paper preset (alpha 8, beta 1/8, 32 x 224 x 224 input, 4 slow frames):

    stage  Slow pathway                       Fast pathway                    lateral fast -> slow
    input  (N, 3, 4, 224, 224)  = x[:,:,::8]  (N, 3, 32, 224, 224)
    stem   (N, 64, 4, 56, 56)                 (N, 8, 32, 56, 56)              (N, 16, 4, 56, 56)
           concat -> (N, 80, 4, 56, 56)
    res2   (N, 256, 4, 56, 56)                (N, 32, 32, 56, 56)             (N, 64, 4, 56, 56)
           concat -> (N, 320, 4, 56, 56)
    res3   (N, 512, 4, 28, 28)                (N, 64, 32, 28, 28)             (N, 128, 4, 28, 28)
           concat -> (N, 640, 4, 28, 28)
    res4   (N, 1024, 4, 14, 14)               (N, 128, 32, 14, 14)            (N, 256, 4, 14, 14)
           concat -> (N, 1280, 4, 14, 14)
    res5   (N, 2048, 4, 7, 7)                 (N, 256, 32, 7, 7)              none
    head   global average pool of each pathway (N, 2048) and (N, 256), concat (N, 2304), dropout
           0.5, fc -> (N, 400)

    stem: conv (1 | 5) x 7 x 7 stride (1, 2, 2), BN, ReLU, max pool 1 x 3 x 3 stride (1, 2, 2).
    res2..res5: bottlenecks (3, 4, 6, 3 blocks): conv_a kt x 1 x 1 -> conv_b 1 x 3 x 3 (spatial
    stride 2 in the first block of res3, res4, res5) -> conv_c 1 x 1 x 1 (x4 channels); conv_a's kt
    is 1, 1, 3, 3 (Slow) and 3, 3, 3, 3 (Fast).  No temporal stride anywhere inside a pathway.
    34,480,216 parameters with 400 classes (fusion_kernel 5, PySlowFast SLOWFAST_4x16_R50.yaml).

Two registered configurations, two sources:
    'slowfast'       SlowFast-R50 4x16 of the paper and PySlowFast: alpha 8 (4 slow frames of 32),
                     fusion kernel 5 x 1 x 1; 34,480,216 parameters (the shapes above).
    'slowfast_r50'   PyTorchVideo hub's slowfast_r50, the 8x8 configuration its Kinetics
                     checkpoint was trained in: alpha 4 (8 slow frames of 32), fusion kernel
                     7 x 1 x 1, everything else the same; 34,566,488 parameters (the 86,272 more are
                     the wider lateral kernels).  Its slow pathway runs on (N, C, 8, 224, 224).

Shapes, tiny preset (alpha 4, beta 1/4, 16 x 32 x 32 input, 4 slow frames, stem conv
(1 | 5) x 3 x 3), `SlowFast.pathway_shapes(x)` lists them:

    stage  Slow                   Fast                   lateral
    stem   (N, 16, 4, 8, 8)       (N, 4, 16, 8, 8)       (N, 8, 4, 8, 8)
    res2   (N, 32, 4, 8, 8)       (N, 8, 16, 8, 8)       (N, 16, 4, 8, 8)
    res3   (N, 64, 4, 4, 4)       (N, 16, 16, 4, 4)      (N, 32, 4, 4, 4)
    res4   (N, 128, 4, 2, 2)      (N, 32, 16, 2, 2)      (N, 64, 4, 2, 2)
    res5   (N, 256, 4, 1, 1)      (N, 64, 16, 1, 1)      none
    head   256 + 64 = 320 features -> fc

What it can and cannot see in time: the Fast pathway keeps all T frames to the end (no temporal
downsampling), and its 3-frame conv_a kernels stack up, so it can model fine motion and the order
of events; the Slow pathway sees only every alpha-th frame and, until res4, no temporal kernel at
all (1 x 1 x 1 and 1 x 3 x 3 convs): by itself it is nearly a per-frame network, and it learns about
time only through the lateral connections and its res4/res5 3-frame kernels.  Both pathways are
averaged over time in the head, so the prediction is about the clip as a whole: it can tell an
ordered event from its reverse (the features before the pool are order-aware) but not say when,
within the clip, it happened.  It cannot see beyond the T frames of the clip.

State-dict keys follow PyTorchVideo's `create_slowfast` (pytorchvideo/models/slowfast.py), module
for module, so a hub slowfast_r50 state dict loads into 'slowfast_r50' with no renaming
(convert_state_dict('pytorchvideo', 'slowfast_r50', sd)).  The blocks below are also those of
models/ptv_resnet.py (i3d_r50, slow_r50, c2d_r50: one pathway of them):
    blocks.0.multipathway_blocks.{0 slow, 1 fast}.conv / .norm       the stems
    blocks.0.multipathway_fusion.conv_fast_to_slow / .norm          lateral after the stem
    blocks.{1..4}.multipathway_blocks.{0,1}.res_blocks.{b}.         res2..res5, block b:
        branch1_conv / branch1_norm                                 shortcut (block 0)
        branch2.conv_a / norm_a / conv_b / norm_b / conv_c / norm_c bottleneck
    blocks.{1..3}.multipathway_fusion.conv_fast_to_slow / .norm     laterals after res2..res4
    blocks.4.multipathway_fusion                                    identity: none after res5
    blocks.5.pool.{0,1}                                             per-pathway average pools
    blocks.6.proj                                                   the fc (dropout before it)
Differences from PyTorchVideo: the head pools are adaptive (any T, H, W; PyTorchVideo fixes the
kernel at the training resolution, e.g. 4 x 7 x 7 and 32 x 7 x 7), and the input is one clip, not
the list [slow, fast] (the slow clip is cut out of it).
"""
import tensorlite.functional as F
import tensorlite.nn as nn

from ._common import check_clip
from .convert import register_conversion
from .registry import register_model


# ---- the blocks, with PyTorchVideo's module names ------------------------------------------------

class _Stem(nn.Module):
    """conv (kt x k x k, k = 7, stride (1, 2, 2), no bias), BN, ReLU, max pool 1 x 3 x 3 stride
    (1, 2, 2).
    (N, C, T, H, W) -> (N, width, T, H/4, W/4).  PyTorchVideo's ResNetBasicStem."""

    def __init__(self, in_channels, width, time_kernel, spatial_kernel=7):
        super().__init__()
        k = spatial_kernel
        self.conv = nn.Conv3d(in_channels, width, (time_kernel, k, k), stride=(1, 2, 2),
                              padding=(time_kernel // 2, k // 2, k // 2), bias=False)
        self.norm = nn.BatchNorm3d(width)
        self.activation = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x):
        return self.pool(self.activation(self.norm(self.conv(x))))


class _Bottleneck(nn.Module):
    """conv_a (kt x 1 x 1) -> conv_b (1 x 3 x 3, spatial stride) -> conv_c (1 x 1 x 1), BN after
    each, ReLU after a and b.  (N, in, T, H, W) -> (N, out, T, H/s, W/s).  PyTorchVideo's
    BottleneckBlock."""

    def __init__(self, in_channels, inner, out_channels, time_kernel, spatial_stride):
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner, (time_kernel, 1, 1),
                                padding=(time_kernel // 2, 0, 0), bias=False)
        self.norm_a = nn.BatchNorm3d(inner)
        self.act_a = nn.ReLU(inplace=True)
        self.conv_b = nn.Conv3d(inner, inner, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                                padding=(0, 1, 1), bias=False)
        self.norm_b = nn.BatchNorm3d(inner)
        self.act_b = nn.ReLU(inplace=True)
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(out_channels)

    def forward(self, x):
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class _ResBlock(nn.Module):
    """ReLU(branch1(x) + branch2(x)); branch1 is a 1 x 1 x 1 conv + BN (stride (1, s, s)) when the
    shape changes, else the identity.  PyTorchVideo's ResBlock."""

    def __init__(self, in_channels, inner, out_channels, time_kernel, spatial_stride):
        super().__init__()
        if in_channels != out_channels or spatial_stride != 1:
            self.branch1_conv = nn.Conv3d(in_channels, out_channels, 1,
                                          stride=(1, spatial_stride, spatial_stride), bias=False)
            self.branch1_norm = nn.BatchNorm3d(out_channels)
        else:
            self.branch1_conv = None
            self.branch1_norm = None
        self.branch2 = _Bottleneck(in_channels, inner, out_channels, time_kernel, spatial_stride)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x):
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class _ResStage(nn.Module):
    """`depth` ResBlocks; the first changes the channels and carries the spatial stride.
    time_kernel: conv_a's temporal kernel, one int for every block or a sequence cycled over the
    blocks (I3D's 3, 1, 3, 1, ...), as PyTorchVideo's create_res_stage repeats it."""

    def __init__(self, depth, in_channels, inner, out_channels, time_kernel, spatial_stride):
        super().__init__()
        kernels = (time_kernel,) if isinstance(time_kernel, int) else tuple(time_kernel)
        self.res_blocks = nn.ModuleList([
            _ResBlock(in_channels if b == 0 else out_channels, inner, out_channels,
                      kernels[b % len(kernels)], spatial_stride if b == 0 else 1)
            for b in range(depth)])

    def forward(self, x):
        for block in self.res_blocks:
            x = block(x)
        return x


class FuseFastToSlow(nn.Module):
    """The lateral connection: a time-strided convolution of the Fast features (kernel k x 1 x 1,
    stride alpha x 1 x 1, padding k // 2, channels C -> ratio * C, no bias), BN, ReLU, concatenated
    to the Slow features.  [(N, Cs, T/a, H, W), (N, C, T, H, W)] ->
    [(N, Cs + ratio * C, T/a, H, W), unchanged fast].  PyTorchVideo's FuseFastToSlow."""

    def __init__(self, fast_channels, alpha, kernel=5, ratio=2):
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, fast_channels * ratio, (kernel, 1, 1),
                                           stride=(alpha, 1, 1), padding=(kernel // 2, 0, 0),
                                           bias=False)
        self.norm = nn.BatchNorm3d(fast_channels * ratio)
        self.activation = nn.ReLU(inplace=True)

    def lateral(self, fast):
        """(N, C, T, H, W) -> (N, ratio * C, T / alpha, H, W): what the Slow pathway receives."""
        return self.activation(self.norm(self.conv_fast_to_slow(fast)))

    def forward(self, pathways):
        slow, fast = pathways
        return [F.cat([slow, self.lateral(fast)], 1), fast]   # (N, Cs + ratio C, T/a, H, W)


class _MultiPathway(nn.Module):
    """One stage of both pathways, then the fusion (nn.Identity where there is none).
    PyTorchVideo's MultiPathWayWithFuse."""

    def __init__(self, slow_block, fast_block, fusion):
        super().__init__()
        self.multipathway_blocks = nn.ModuleList([slow_block, fast_block])
        self.multipathway_fusion = fusion

    def pathways(self, pathways):
        """[slow, fast] -> [slow, fast] after this stage's blocks, before the fusion."""
        return [block(x) for block, x in zip(self.multipathway_blocks, pathways)]

    def forward(self, pathways):
        return self.multipathway_fusion(self.pathways(pathways))


class _PoolConcatPathway(nn.Module):
    """Global average pool of each pathway, concatenated over channels:
    [(N, Cs, Ts, H, W), (N, Cf, Tf, H, W)] -> (N, Cs + Cf, 1, 1, 1)."""

    def __init__(self):
        super().__init__()
        self.pool = nn.ModuleList([nn.AdaptiveAvgPool3d(1), nn.AdaptiveAvgPool3d(1)])

    def forward(self, pathways):
        return F.cat([pool(x) for pool, x in zip(self.pool, pathways)], 1)


class _Head(nn.Module):
    """(N, C, 1, 1, 1) -> flatten (N, C) -> dropout -> proj (N, num_classes).
    PyTorchVideo's ResNetBasicHead (pool=None)."""

    def __init__(self, in_features, num_classes, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_features, num_classes)

    def forward(self, x):
        x = x.flatten(1)                                  # (N, C)
        return self.proj(self.dropout(x))


def init_pytorchvideo_weights(model):
    """PyTorchVideo's init_net_weights: every Conv3d He-normal (fan_out, c2_msra_fill), every
    Linear normal with std 0.01 and a zero bias; BatchNorm keeps its 1 and 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


# ---- the network ---------------------------------------------------------------------------

class SlowFast(nn.Module):
    """SlowFast with bottleneck ResNet pathways; see the module docstring for shapes and names.

    alpha        frame-rate ratio: the Slow pathway sees T / alpha frames (x[:, :, ::alpha])
    beta_inv     channel ratio: the Fast pathway has 1 / beta_inv of the Slow pathway's channels
    fusion_kernel, fusion_ratio   the lateral conv: kernel fusion_kernel x 1 x 1 (odd), channels
                 x fusion_ratio
    depths       blocks in res2..res5
    widths       Slow bottleneck inner widths of res2..res5 (outputs are x expansion = 4)
    stem_width   Slow stem channels
    slow_time_kernels, fast_time_kernels   conv_a temporal kernel in res2..res5 per pathway
    slow_stem_time_kernel, fast_stem_time_kernel   stem conv temporal kernel (1 and 5)
    stem_spatial_kernel   stem conv spatial kernel (7; the tiny preset's 3 keeps it cheap)
    """
    expansion = 4

    def __init__(self, num_classes, alpha=8, beta_inv=8, fusion_kernel=5, fusion_ratio=2,
                 depths=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem_width=64,
                 slow_time_kernels=(1, 1, 3, 3), fast_time_kernels=(3, 3, 3, 3),
                 slow_stem_time_kernel=1, fast_stem_time_kernel=5, stem_spatial_kernel=7,
                 dropout=0.5, in_channels=3):
        super().__init__()
        for name, v in (('alpha', alpha), ('beta_inv', beta_inv), ('fusion_ratio', fusion_ratio)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"slowfast: {name} must be a positive int, got {v!r}")
        if not isinstance(fusion_kernel, int) or fusion_kernel < 1 or fusion_kernel % 2 == 0:
            raise ValueError(f"slowfast: fusion_kernel must be a positive odd int (padding "
                             f"fusion_kernel // 2 keeps T / alpha frames), got {fusion_kernel!r}")
        for name, v in (('depths', depths), ('widths', widths),
                        ('slow_time_kernels', slow_time_kernels),
                        ('fast_time_kernels', fast_time_kernels)):
            if len(v) != 4:
                raise ValueError(f"slowfast: {name} must have 4 entries (res2..res5), got "
                                 f"{tuple(v)}")
        fast_stem = stem_width // beta_inv
        fast_widths = [w // beta_inv for w in widths]
        if fast_stem < 1 or min(fast_widths) < 1:
            raise ValueError(f"slowfast: stem_width {stem_width} and widths {tuple(widths)} "
                             f"divided by beta_inv {beta_inv} must stay >= 1")
        self.alpha, self.beta_inv, self.in_channels = alpha, beta_inv, in_channels
        self.fusion_kernel, self.fusion_ratio = fusion_kernel, fusion_ratio

        stem = _MultiPathway(_Stem(in_channels, stem_width, slow_stem_time_kernel,
                                   stem_spatial_kernel),
                             _Stem(in_channels, fast_stem, fast_stem_time_kernel,
                                   stem_spatial_kernel),
                             FuseFastToSlow(fast_stem, alpha, fusion_kernel, fusion_ratio))
        blocks = [stem]
        slow_in = stem_width + fusion_ratio * fast_stem
        fast_in = fast_stem
        for i in range(4):
            slow_out, fast_out = widths[i] * self.expansion, fast_widths[i] * self.expansion
            stride = 1 if i == 0 else 2
            fusion = (FuseFastToSlow(fast_out, alpha, fusion_kernel, fusion_ratio) if i < 3
                      else nn.Identity())
            blocks.append(_MultiPathway(
                _ResStage(depths[i], slow_in, widths[i], slow_out, slow_time_kernels[i], stride),
                _ResStage(depths[i], fast_in, fast_widths[i], fast_out, fast_time_kernels[i],
                          stride),
                fusion))
            slow_in = slow_out + (fusion_ratio * fast_out if i < 3 else 0)
            fast_in = fast_out
        blocks.append(_PoolConcatPathway())
        self.num_features = slow_in + fast_in                     # 2048 + 256 in the paper preset
        blocks.append(_Head(self.num_features, num_classes, dropout))
        self.blocks = nn.ModuleList(blocks)
        init_pytorchvideo_weights(self)

    def _check(self, x):
        check_clip('slowfast', x, channels=self.in_channels)
        if x.shape[2] % self.alpha != 0:
            raise ValueError(f"slowfast: the number of frames must be a multiple of alpha = "
                             f"{self.alpha} (the Slow pathway takes x[:, :, ::{self.alpha}]), "
                             f"input (N, {self.in_channels}, T = k * {self.alpha}, H, W), got "
                             f"shape {tuple(x.shape)}")

    def split_pathways(self, x):
        """(N, C, T, H, W) -> [slow (N, C, T / alpha, H, W), fast (N, C, T, H, W)]."""
        return [x[:, :, ::self.alpha], x]

    def features(self, x):
        """(N, C, T, H, W) -> (N, 4 w4 + 4 w4 / beta_inv, 1, 1, 1): both pathways through every
        stage and fusion, pooled and concatenated."""
        pathways = self.split_pathways(x)
        for stage in self.blocks[:5]:          # stem, res2..res5, each with its fusion
            pathways = stage(pathways)
        return self.blocks[5](pathways)

    def forward(self, x):
        """(N, C, T, H, W), T a multiple of alpha -> (N, num_classes)."""
        self._check(x)
        return self.blocks[6](self.features(x))

    def pathway_shapes(self, x):
        """Run x through the stages and report, per stage ('stem', 'res2'..'res5'), the shapes of
        the Slow and Fast outputs before fusion, of the lateral connection (None after res5) and
        of the Slow features after fusion, as a list of dicts.  The model's own modules compute
        them; the lateral shape is read off the lateral convolution's output, as a forward hook
        would see it.  Costs one forward."""
        self._check(x)
        out = []
        pathways = self.split_pathways(x)
        for name, stage in zip(('stem', 'res2', 'res3', 'res4', 'res5'), self.blocks[:5]):
            slow, fast = stage.pathways(pathways)
            fusion = stage.multipathway_fusion
            if isinstance(fusion, FuseFastToSlow):
                lateral = fusion.lateral(fast)
                fused = F.cat([slow, lateral], 1)                 # (N, Cs + ratio C, T/a, H, W)
                lateral_shape = tuple(lateral.shape)
            else:
                fused, lateral_shape = slow, None
            out.append(dict(stage=name, slow=tuple(slow.shape), fast=tuple(fast.shape),
                            lateral=lateral_shape, fused_slow=tuple(fused.shape)))
            pathways = [fused, fast]
        return out


SLOWFAST_PRESETS = {
    # SlowFast-R50 4x16: PySlowFast SLOWFAST_4x16_R50.yaml (ALPHA 8, BETA_INV 8, FUSION_KERNEL_SZ 5,
    # FUSION_CONV_CHANNEL_RATIO 2), tau = 16 is the data's stride (TwoRate), not the model's.
    'paper': dict(alpha=8, beta_inv=8, fusion_kernel=5, depths=(3, 4, 6, 3),
                  widths=(64, 128, 256, 512), stem_width=64, dropout=0.5),
    # 16 x 32 x 32 clips: 4 slow frames, 16 fast; Fast channels 1/4 of the Slow ones.  The stem's
    # spatial kernel is 3 (temporal kernels 1 | 5 kept): the Fast stem's 5 x 7 x 7 conv on 16 full
    # frames alone cost about as much as the rest of the network.
    'tiny': dict(alpha=4, beta_inv=4, fusion_kernel=5, depths=(1, 1, 1, 1),
                 widths=(8, 16, 32, 64), stem_width=16, stem_spatial_kernel=3, dropout=0.5),
}


# PyTorchVideo hub's slowfast_r50 (pytorchvideo/models/hub/slowfast.py): the 8x8 configuration,
# alpha 4 (8 slow frames of 32), beta 1/8, and a lateral kernel of 7 x 1 x 1.
SLOWFAST_R50_PRESETS = {
    'paper': dict(SLOWFAST_PRESETS['paper'], alpha=4, fusion_kernel=7),
    'tiny': dict(SLOWFAST_PRESETS['tiny'], fusion_kernel=7),
}


@register_model('slowfast', paper_num_classes=400, paper_clip=(32, 224))   # any clip
def slowfast(num_classes, preset='tiny', **overrides):
    """SlowFast: 'paper' = SlowFast-R50 4x16 from PySlowFast (alpha 8, beta 1/8, fusion kernel 5;
    34,480,216 parameters with 400 classes); PyTorchVideo hub's 8x8 slowfast_r50 is the model
    'slowfast_r50'.  'tiny' = alpha 4, beta 1/4, one block per stage, Slow widths 8, 16, 32, 64
    (x4), stem 16 with a (1 | 5) x 3 x 3 conv (213,282 parameters with 10 classes).  Overrides are
    SlowFast's arguments (alpha=, beta_inv=, fusion_kernel=, depths=, widths=, stem_width=, ...)."""
    return SlowFast(num_classes, **{**SLOWFAST_PRESETS[preset], **overrides})


@register_model('slowfast_r50', paper_num_classes=400, paper_clip=(32, 224))   # any clip
def slowfast_r50(num_classes, preset='tiny', **overrides):
    """PyTorchVideo hub's slowfast_r50: 'paper' = SlowFast-R50 8x8 (alpha 4: 8 slow frames of the
    32, beta 1/8, fusion kernel 7 x 1 x 1; 34,566,488 parameters with 400 classes, the hub's
    state-dict keys unchanged: convert_state_dict('pytorchvideo', 'slowfast_r50', sd)); 'tiny' =
    slowfast's tiny preset with the fusion kernel 7.  Overrides are SlowFast's arguments."""
    return SlowFast(num_classes, **{**SLOWFAST_R50_PRESETS[preset], **overrides})


register_conversion('pytorchvideo', 'slowfast_r50', head='blocks.6.proj.weight')

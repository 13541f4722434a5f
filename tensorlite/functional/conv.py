"""N-d convolution and transposed convolution (PyTorch's semantics and weight layouts).

One implementation serves conv1d/2d/3d and conv_transpose1d/2d/3d: a 1-D or 2-D problem is a 3-D one
with unit spatial dims in front, so (N, C, L) is seen as (N, C, 1, 1, L).  Three Functions carry
the whole family, and each one's backward is made of the others, so gradients of any order flow:

    Conv(x, w)            y  = x (*) w                       the correlation PyTorch calls conv
    ConvTranspose(gy, w)  gx = the adjoint of x -> x (*) w   conv's input gradient, conv_transpose
    ConvWeightGrad(x, gy) gw = the adjoint of w -> x (*) w   conv's weight gradient

All three run on vol2col + GEMM (docs/kernels.md): the column matrix of a tile of the batch is
built by a kernel (kernels/{cpu,cuda}/conv.py), and the matrix products go to BLAS (NumPy) or
cuBLAS (CuPy) through `xp.matmul`, so the same code runs on both devices.  Tiles -- whole samples,
or bands of output rows of one sample -- keep the column buffer under the bound set in
tensorlite.kernels (`set_column_buffer_bytes`).  Three choices, each measured (the numbers are
next to the code): depthwise convolutions skip the columns for direct kernels (`_use_direct`);
with stride 1 a transposed convolution runs as a convolution with the flipped kernel
(`FLIPPED_MAX_CHANNEL_RATIO`); and Conv's backward, when no graph is recorded, takes both
gradients from one pass over gy (`conv_backward_fused_arrays`).  Stride-1 3x3x3 convolutions
can instead run as Winograd F(2x2x2, 3x3x3) (kernels/{cpu,cuda}/winograd.py): transforms around
64 batched GEMMs, chosen per shape by `_use_winograd` or forced with `conv_algorithm`.
"""
import contextlib
import numbers
from typing import NamedTuple

import numpy as np

from .. import kernels
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ._util import xp_of


class Geometry(NamedTuple):
    """Everything about a convolution except its batch and channel counts, on three spatial dims.

    `vol` is the spatial shape of the volume side (conv's input, conv_transpose's output) and
    `out` that of the column side (conv's output, conv_transpose's input); `padding` is the low
    side only -- the high side is whatever makes `vol` and `out` fit, which is how 'same' with an
    even kernel and conv_transpose's output_padding are expressed.  `nd` is the number of spatial
    dims of the user's tensors (1, 2 or 3): the last `nd` entries of each tuple are theirs."""
    nd: int
    vol: tuple
    out: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int

    def user_shape(self, spatial):
        return tuple(spatial[3 - self.nd:])


# ---- tiling: the memory bound ------------------------------------------------------------------------

def plan_tiles(n, rows, row_bytes, limit):
    """(samples per tile, output rows per tile) for a batch of `n` samples with `rows` output rows
    (oT*oH) each, when one row of one sample needs `row_bytes` bytes of columns and a tile may take
    at most `limit` bytes.  Whole samples are grouped while they fit; a sample that does not fit
    alone is cut into bands of rows.  A single row larger than `limit` is refused."""
    if row_bytes > limit:
        raise ValueError(
            f"conv: one output row needs {row_bytes} bytes of columns, more than the column buffer "
            f"bound of {limit} bytes; raise it with tensorlite.kernels.set_column_buffer_bytes")
    sample_bytes = rows * row_bytes
    if sample_bytes == 0:
        return max(n, 1), max(rows, 1)
    if sample_bytes <= limit:
        return max(1, min(n, limit // sample_bytes)), rows
    return 1, limit // row_bytes


def _tile_limit(twin):
    bound = kernels.column_buffer_bytes()
    return min(bound, twin.PREFERRED_TILE_BYTES or bound)


def _tiles(n, rows, samples, band):
    for n0 in range(0, n, samples):
        for r0 in range(0, rows, band):
            yield n0, min(n0 + samples, n), r0, min(r0 + band, rows)


class _Plan:
    """Shapes and the tile schedule of one call; `buffer(m, length)` hands out a C-contiguous
    (m, C_vol*kT*kH*kW, length) view of one column buffer allocated once and reused by every tile."""

    def __init__(self, xp, n, c_vol, geo, dtype):
        self.xp, self.n, self.geo, self.dtype = xp, n, geo, np.dtype(dtype)
        self.k = geo.kernel[0] * geo.kernel[1] * geo.kernel[2]
        self.ck = c_vol * self.k
        self.o_w = geo.out[2]
        self.rows = geo.out[0] * geo.out[1]
        self._buf = None

    def schedule(self, twin):
        row_bytes = self.ck * self.o_w * self.dtype.itemsize
        self.samples, self.band = plan_tiles(self.n, self.rows, row_bytes, _tile_limit(twin))
        return _tiles(self.n, self.rows, self.samples, self.band)

    def buffer(self, m, length):
        if self._buf is None:
            size = min(self.samples, self.n) * self.ck * min(self.band, self.rows) * self.o_w
            self._buf = self.xp.empty(size, dtype=self.dtype)
        return self._buf[:m * self.ck * length].reshape(m, self.ck, length)   # (m, C*kT*kH*kW, L)


# ---- Winograd F(2x2x2, 3x3x3): the algorithm switch, the rule, the plan ---------------------------

ALGORITHMS = ('auto', 'gemm', 'winograd')
_algorithm = 'auto'


@contextlib.contextmanager
def conv_algorithm(algorithm):
    """Within the block, convolutions (and their gradients) that Winograd can compute -- stride 1,
    dilation 1, groups 1, a 3x3x3 kernel, low padding 0..2 -- take `algorithm`: 'winograd',
    'gemm' (vol2col + GEMM), or 'auto' (the measured rule `_use_winograd`).  Others always take
    the GEMM.

        with conv_algorithm('winograd'):
            y = conv3d(x, w, b, padding=1)
    """
    global _algorithm
    if algorithm not in ALGORITHMS:
        raise ValueError(f"conv_algorithm: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    previous, _algorithm = _algorithm, algorithm
    try:
        yield
    finally:
        _algorithm = previous


def _winograd_applies(geo):
    return (geo.kernel == (3, 3, 3) and geo.stride == (1, 1, 1) and geo.dilation == (1, 1, 1)
            and geo.groups == 1 and all(0 <= p <= 2 for p in geo.padding))


def _use_winograd(n, c_in, c_out, geo):
    """Whether the convolution of n samples from c_in to c_out channels with geometry `geo` (a
    forward, the flipped convolution of an input gradient, or a weight gradient) runs as Winograd
    F(2x2x2, 3x3x3).

    'auto': both channel counts >= WINOGRAD_MIN_CHANNELS and at least WINOGRAD_MIN_TILES output
    tiles in the batch.  Winograd's GEMMs are 3.4x smaller, but its transforms make more passes
    over memory than vol2col, and U (64 C_out C_in) is read once per tile of the batch: few
    channels leave the transforms dominant, few tiles leave U's reads dominant.  Measured
    (float32, forward + backward, interleaved medians, under load; docs/performance.md,
    "Winograd convolution"): (8, 64->64, 8, 28, 28), 6,272 tiles, 316 ms Winograd against 591 ms
    GEMM with one BLAS thread, 362 against 495 ms with two; (2, 512->512, 4, 14, 14), 196 tiles,
    654 against 522 ms with two (867 against 903 with one); (16, 32->32, 8, 8, 8), 32 channels,
    48 against 38 ms with one, 28 against 18 ms with two."""
    if _algorithm == 'gemm' or not _winograd_applies(geo):
        return False
    if _algorithm == 'winograd':
        return True
    tiles = n * ((geo.out[0] + 1) // 2) * ((geo.out[1] + 1) // 2) * ((geo.out[2] + 1) // 2)
    return min(c_in, c_out) >= WINOGRAD_MIN_CHANNELS and tiles >= WINOGRAD_MIN_TILES


WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MIN_TILES = 512


class _WinogradPlan:
    """The tile grid (kernels/cpu/winograd.py) and the schedule of one Winograd call: a tile of the
    batch -- whole samples, or bands of tile rows of one -- has V (64, C_a, P) and M (64, C_b, P)
    for its P tiles, together under the column buffer bound (`plan_tiles`, as vol2col's columns).
    Both are views of two buffers allocated once and reused by every tile."""

    def __init__(self, xp, n, c_a, c_b, geo, dtype):
        self.xp, self.n, self.c_a, self.c_b, self.dtype = xp, n, c_a, c_b, np.dtype(dtype)
        self.tiles = tuple((o + 1) // 2 for o in geo.out)              # (nT, nH, nW)
        self.rows, self.n_w = self.tiles[0] * self.tiles[1], self.tiles[2]
        self._bufs = None

    def schedule(self, twin):
        row_bytes = 64 * (self.c_a + self.c_b) * self.n_w * self.dtype.itemsize
        self.samples, self.band = plan_tiles(self.n, self.rows, row_bytes, _tile_limit(twin))
        return _tiles(self.n, self.rows, self.samples, self.band)

    def buffers(self, m, rows):
        if self._bufs is None:
            most = min(self.samples, self.n) * min(self.band, self.rows) * self.n_w * 64
            self._bufs = tuple(self.xp.empty(most * c, dtype=self.dtype) for c in (self.c_a, self.c_b))
        p = m * rows * self.n_w
        return tuple(buf[:64 * c * p].reshape(64, c, p)                 # (64, C, P)
                     for buf, c in zip(self._bufs, (self.c_a, self.c_b)))


def _winograd_forward(x5, w, b, geo, y5):
    """y5 (N, C_out, *out) = x5 (N, C_in, *vol) (*) w + b, per tile of the batch:
    V = B^T x B, M[e] = U[e] @ V[e] for the 64 positions e, y = A^T M A + b."""
    xp = xp_of(x5)
    twin = kernels.winograd(x5)
    n, c_in = x5.shape[:2]
    c_out = w.shape[0]
    u = xp.empty((64, c_out, c_in), dtype=x5.dtype)                    # (64, C_out, C_in)
    twin.filter_transform(xp.ascontiguousarray(w).reshape(c_out, c_in, 3, 3, 3), u)
    b = None if b is None else xp.ascontiguousarray(b)
    plan = _WinogradPlan(xp, n, c_in, c_out, geo, x5.dtype)
    for n0, n1, r0, r1 in plan.schedule(twin):
        v, m = plan.buffers(n1 - n0, r1 - r0)                           # (64, C_in, P), (64, C_out, P)
        twin.input_transform(x5[n0:n1], geo.padding, plan.tiles, r0, v)
        xp.matmul(u, v, out=m)
        twin.output_transform(m, b, r0, y5[n0:n1])


def _winograd_weight_grad(x5, gy5, geo):
    """gw (C_out, C_in, 3, 3, 3) = G^T [sum over tiles of (A gy A^T) (B^T x B)^T] G."""
    xp = xp_of(x5)
    twin = kernels.winograd(x5)
    n, c_in = x5.shape[:2]
    c_out = gy5.shape[1]
    gu_t = xp.zeros((64, c_in, c_out), dtype=x5.dtype)                 # (64, C_in, C_out)
    part = xp.empty_like(gu_t)
    plan = _WinogradPlan(xp, n, c_in, c_out, geo, x5.dtype)
    for n0, n1, r0, r1 in plan.schedule(twin):
        v, gm = plan.buffers(n1 - n0, r1 - r0)                          # (64, C_in, P), (64, C_out, P)
        twin.input_transform(x5[n0:n1], geo.padding, plan.tiles, r0, v)
        twin.output_transform_adjoint(gy5[n0:n1], r0, gm)
        xp.matmul(v, gm.transpose(0, 2, 1), out=part)   # V @ gM^T: the orientation of conv's gw^T
        gu_t += part
    gw = xp.empty((c_out, c_in, 3, 3, 3), dtype=x5.dtype)
    twin.filter_transform_adjoint(xp.ascontiguousarray(gu_t.transpose(0, 2, 1)), gw)
    return gw


def _flipped(geo):
    """The geometry of a stride-1 transposed convolution run as a convolution with the flipped
    kernel (`_transpose_as_flipped_conv`)."""
    padding = tuple(d * (k - 1) - p for k, d, p in zip(geo.kernel, geo.dilation, geo.padding))
    return geo._replace(vol=geo.out, out=geo.vol, padding=padding)


# ---- raw-array work: the three products -------------------------------------------------------------

def _use_direct(c_vol, c_col, groups, twin):
    """Depthwise convolutions (one volume-side channel per group, channel multiplier <= 4) go to
    the direct kernels.  The GEMM of a depthwise group is a (1 x K) @ (K x P) matrix-vector
    product, run once per group after vol2col has written K copies of the input; the direct
    kernels read the input once.  Measured (float32, 3x3x3, padding 1), (8, 64, 16, 56, 56):
    benchmarks/bench_conv.py --depthwise, medians of 5, forward 100 ms direct against 189 ms
    vol2col + GEMM, forward + backward 374 against 461 ms (an earlier interleaved run: 94 against
    284 and 374 against 763 ms); (4, 32, 8, 32, 32): 4.7 against 10.0 ms and 14 against 31 ms.  Only multiplier 1 was timed.  First layers (C_in = 3) stay on
    the GEMM: the same direct kernels, computing only the 3 x 64 per-channel planes of
    (8, 3, 16, 56, 56) -> 64 (a lower bound for a direct conv, before summing channels), took
    312 ms against 107 ms for vol2col + GEMM's whole forward."""
    return (groups > 1 and c_vol == groups and c_col % groups == 0 and c_col // groups <= 4
            and hasattr(twin, 'depthwise_fwd'))


def _pointwise(geo):
    """A 1x1x1 kernel at stride 1 without padding: the columns would be x itself, so the products
    read x and gy directly (no vol2col copy, no column buffer) -- the bottleneck convs of the
    ResNet-style I3D and SlowFast.  Measured: docs/performance.md, "Whole-model training steps",
    lever 3."""
    return (geo.kernel == (1, 1, 1) and geo.stride == (1, 1, 1) and geo.padding == (0, 0, 0)
            and geo.vol == geo.out)     # not a conv_transpose's output_padding


def conv_forward_arrays(x, w, b, geo):
    """y (N, C_out, *out) = x (*) w + b for x (N, C_in, *vol), w (C_out, C_in/groups, *kernel)."""
    xp = xp_of(x)
    twin = kernels.conv(x)
    n, c_in = x.shape[:2]
    c_out, g = w.shape[0], geo.groups
    x5 = xp.ascontiguousarray(x).reshape((n, c_in) + geo.vol)           # (N, C_in, T, H, W)
    y = xp.empty((n, c_out) + geo.user_shape(geo.out), dtype=x.dtype)
    if _use_direct(c_in, c_out, g, twin):
        w5 = xp.ascontiguousarray(w).reshape((c_out, 1) + geo.kernel)   # (C_out, 1, kT, kH, kW)
        y5 = y.reshape((n, c_out) + geo.out)                             # (N, C_out, oT, oH, oW)
        twin.depthwise_fwd(x5, w5, geo.stride, geo.padding, geo.dilation, y5)
        if b is not None:
            y5 += b.reshape(1, c_out, 1, 1, 1)
        return y
    if _use_winograd(n, c_in, c_out, geo):
        _winograd_forward(x5, w, b, geo, y.reshape((n, c_out) + geo.out))
        return y
    if _pointwise(geo):
        w3 = xp.ascontiguousarray(w).reshape(g, c_out // g, c_in // g)   # (g, C_out/g, C_in/g)
        y4 = y.reshape(n, g, c_out // g, -1)                             # (N, g, C_out/g, P)
        xp.matmul(w3, x5.reshape(n, g, c_in // g, -1), out=y4)
        if b is not None:
            y4 += b.reshape(g, c_out // g, 1)
        return y
    plan = _Plan(xp, n, c_in, geo, x.dtype)
    w3 = xp.ascontiguousarray(w).reshape(g, c_out // g, plan.ck // g)   # (g, C_out/g, C_in/g*kT*kH*kW)
    b3 = None if b is None else b.reshape(g, c_out // g, 1)             # (g, C_out/g, 1)
    y3 = y.reshape(n, c_out, plan.rows * plan.o_w)                      # (N, C_out, oT*oH*oW)
    for n0, n1, r0, r1 in plan.schedule(twin):
        m, length = n1 - n0, (r1 - r0) * plan.o_w
        col = plan.buffer(m, length)                                    # (m, C_in*kT*kH*kW, L)
        twin.vol2col(x5[n0:n1], geo.kernel, geo.stride, geo.padding, geo.dilation, geo.out, r0, col)
        y_tile = y3[n0:n1, :, r0 * plan.o_w:r1 * plan.o_w].reshape(m, g, c_out // g, length)
        xp.matmul(w3, col.reshape(m, g, plan.ck // g, length), out=y_tile)   # (m, g, C_out/g, L)
        if b3 is not None:
            y_tile += b3            # while the tile is still in cache
    return y


def conv_input_grad_arrays(gy, w, geo, c_in):
    """gx (N, C_in, *vol) = the adjoint of x -> x (*) w applied to gy (N, C_out, *out): the
    transposed convolution.  Each column of gy spreads back over the window it came from."""
    xp = xp_of(gy)
    twin = kernels.conv(gy)
    n, c_out = gy.shape[:2]
    g = geo.groups
    gy = xp.ascontiguousarray(gy)
    shape = (n, c_in) + geo.user_shape(geo.vol)
    if _use_direct(c_in, c_out, g, twin):
        gx = xp.empty(shape, dtype=gy.dtype)                             # overwritten by the kernel
        w5 = xp.ascontiguousarray(w).reshape((c_out, 1) + geo.kernel)   # (C_out, 1, kT, kH, kW)
        twin.depthwise_bwd_input(gy.reshape((n, c_out) + geo.out), w5, geo.stride, geo.padding,
                                 geo.dilation, gx.reshape((n, c_in) + geo.vol))
        return gx
    if _pointwise(geo):
        gx = xp.empty(shape, dtype=gy.dtype)
        w_t = xp.ascontiguousarray(w).reshape(g, c_out // g, c_in // g).transpose(0, 2, 1)
        # (g, C_in/g, C_out/g): a transposed view
        xp.matmul(w_t, gy.reshape(n, g, c_out // g, -1), out=gx.reshape(n, g, c_in // g, -1))
        return gx
    if geo.stride == (1, 1, 1) and (c_out <= FLIPPED_MAX_CHANNEL_RATIO * c_in
                                    or _use_winograd(n, c_out, c_in, _flipped(geo))):
        return _transpose_as_flipped_conv(gy, w, geo, c_in)     # Winograd too, when it applies
    gx = xp.zeros(shape, dtype=gy.dtype)                                 # col2vol adds into it
    gx5 = gx.reshape((n, c_in) + geo.vol)                               # (N, C_in, T, H, W)
    plan = _Plan(xp, n, c_in, geo, gy.dtype)
    w_t = xp.ascontiguousarray(w).reshape(g, c_out // g, plan.ck // g).transpose(0, 2, 1)
    # (g, C_in/g*kT*kH*kW, C_out/g): a transposed view, BLAS reads it without a copy
    gy3 = gy.reshape(n, c_out, plan.rows * plan.o_w)                    # (N, C_out, oT*oH*oW)
    for n0, n1, r0, r1 in plan.schedule(twin):
        m, length = n1 - n0, (r1 - r0) * plan.o_w
        gcol = plan.buffer(m, length)                                   # (m, C_in*kT*kH*kW, L)
        gy_tile = gy3[n0:n1, :, r0 * plan.o_w:r1 * plan.o_w].reshape(m, g, c_out // g, length)
        xp.matmul(w_t, gy_tile, out=gcol.reshape(m, g, plan.ck // g, length))
        twin.col2vol(gcol, geo.kernel, geo.stride, geo.padding, geo.dilation, geo.out, r0,
                     gx5[n0:n1])
    return gx


# With stride 1 a transposed convolution is a convolution of gy with the kernel flipped in every
# spatial dim and its two channel dims swapped (docs/kernels.md).  That runs as vol2col + GEMM over
# gy's C_out channels instead of GEMM + col2vol over C_in channels, and lets Conv's backward share
# one pass over gy between both gradients (conv_backward_fused_arrays).  Its columns have C_out
# rows per kernel offset against C_in for col2vol's, so it only pays when C_out <= C_in.
# Measured (forward + backward, interleaved): with the first col2vol (3.5-5.6 GB/s), best of 7,
# C_out = C_in (8, 64, 8, 28, 28) 289 ms flipped against 321 ms col2vol, C_out = 2 C_in
# (4, 16, 8, 32, 32) 42 against 40 ms, C_out = 21 C_in (8, 3, 16, 56, 56) 413 against 169 ms.
# After col2vol's unsigned-index rewrite (24-35 GB/s, as fast as vol2col) the C_out = C_in case is
# within noise: medians of 9, 310 against 305 ms, best 265 against 284 ms; (4, 16, 8, 32, 32)
# 35.6 against 36.3 ms.  The flipped path is kept for the shared backward pass.
FLIPPED_MAX_CHANNEL_RATIO = 1


def _transpose_as_flipped_conv(gy, w, geo, c_in):
    xp = xp_of(gy)
    c_out, g = gy.shape[1], geo.groups
    kt, kh, kw = geo.kernel
    w6 = xp.ascontiguousarray(w).reshape(g, c_out // g, c_in // g, kt, kh, kw)
    flipped = xp.ascontiguousarray(w6[:, :, :, ::-1, ::-1, ::-1].transpose(0, 2, 1, 3, 4, 5))
    # (g, C_in/g, C_out/g, kT, kH, kW) -> the weight of a conv from C_out to C_in channels
    flipped = flipped.reshape((c_in, c_out // g) + geo.user_shape(geo.kernel))
    padding = tuple(d * (k - 1) - p for k, d, p in zip(geo.kernel, geo.dilation, geo.padding))
    # may be negative (padding wider than the kernel's span): the kernels read only what is inside
    return conv_forward_arrays(gy, flipped, None, geo._replace(vol=geo.out, out=geo.vol,
                                                                padding=padding))


def conv_backward_fused_arrays(x, w, gy, geo):
    """(gx, gw) of a stride-1 Conv from ONE vol2col pass, over gy.  The flipped convolution that
    gives gx (above) builds col, the columns of gy; the weight gradient is the same columns against
    x: gw[co, ci, K-1-k'] = sum_i x[ci, i] col[(co, k'), i].  That saves the vol2col pass over x
    that ConvWeightGrad would make: measured (8, 64, 8, 28, 28) forward + backward 262 ms against
    279 ms with the two Functions (medians of 9, interleaved); no difference on (4, 16, 8, 32, 32).
    Used by Conv.backward when no graph is recorded; with create_graph the two Functions run, each
    differentiable."""
    xp = xp_of(gy)
    twin = kernels.conv(gy)
    n, c_in = x.shape[:2]
    c_out, g = gy.shape[1], geo.groups
    if _use_winograd(n, c_in, c_out, geo) or _use_winograd(n, c_out, c_in, _flipped(geo)):
        # Winograd shares nothing between the two (their tiles cover different volumes)
        return (conv_input_grad_arrays(gy, w, geo, c_in),
                conv_weight_grad_arrays(x, gy, geo, (c_out, c_in // g) + geo.user_shape(geo.kernel)))
    cig, cog = c_in // g, c_out // g
    kt, kh, kw = geo.kernel
    k = kt * kh * kw
    w6 = xp.ascontiguousarray(w).reshape(g, cog, cig, kt, kh, kw)
    w_flip = xp.ascontiguousarray(w6[:, :, :, ::-1, ::-1, ::-1].transpose(0, 2, 1, 3, 4, 5))
    w_flip = w_flip.reshape(g, cig, cog * k)                            # (g, C_in/g, C_out/g*K)
    padding = tuple(d * (kk - 1) - p for kk, d, p in zip(geo.kernel, geo.dilation, geo.padding))
    flip = geo._replace(vol=geo.out, out=geo.vol, padding=padding)
    gy5 = xp.ascontiguousarray(gy).reshape((n, c_out) + flip.vol)       # (N, C_out, oT, oH, oW)
    x3 = xp.ascontiguousarray(x).reshape(n, c_in, -1)                   # (N, C_in, T*H*W)
    gx = xp.empty((n, c_in) + geo.user_shape(geo.vol), dtype=gy.dtype)
    gx3 = gx.reshape(n, c_in, -1)                                       # (N, C_in, T*H*W)
    gw_flip_t = xp.zeros((g, cog * k, cig), dtype=gy.dtype)            # (g, C_out/g*K, C_in/g)
    part = xp.empty_like(gw_flip_t)
    plan = _Plan(xp, n, c_out, flip, gy.dtype)
    for n0, n1, r0, r1 in plan.schedule(twin):
        m, length = n1 - n0, (r1 - r0) * plan.o_w
        col = plan.buffer(m, length)                                    # (m, C_out*K, L)
        twin.vol2col(gy5[n0:n1], flip.kernel, flip.stride, flip.padding, flip.dilation, flip.out,
                     r0, col)
        span = slice(r0 * plan.o_w, r1 * plan.o_w)
        xp.matmul(w_flip, col.reshape(m, g, cog * k, length),
                  out=gx3[n0:n1, :, span].reshape(m, g, cig, length))  # (m, g, C_in/g, L)
        for i in range(m):          # col @ x^T: the faster orientation (conv_weight_grad_arrays)
            xp.matmul(col[i].reshape(g, cog * k, length),
                      x3[n0 + i, :, span].reshape(g, cig, length).transpose(0, 2, 1), out=part)
            gw_flip_t += part
    gw = gw_flip_t.reshape(g, cog, kt, kh, kw, cig)[:, :, ::-1, ::-1, ::-1].transpose(0, 1, 5, 2, 3, 4)
    # (g, C_out/g, C_in/g, kT, kH, kW), the kernel flipped back
    return gx, xp.ascontiguousarray(gw).reshape((c_out, cig) + geo.user_shape(geo.kernel))


def _fused_backward_applies(c_in, c_out, geo, twin):
    return (geo.stride == (1, 1, 1) and c_out <= FLIPPED_MAX_CHANNEL_RATIO * c_in
            and not _use_direct(c_in, c_out, geo.groups, twin) and not _pointwise(geo))


def conv_weight_grad_arrays(x, gy, geo, w_shape):
    """gw (C_out, C_in/groups, *kernel) = the adjoint of w -> x (*) w applied to gy: the
    correlation of the input with the output gradient, summed over the batch."""
    xp = xp_of(x)
    twin = kernels.conv(x)
    n, c_in = x.shape[:2]
    c_out, g = gy.shape[1], geo.groups
    x5 = xp.ascontiguousarray(x).reshape((n, c_in) + geo.vol)           # (N, C_in, T, H, W)
    gy = xp.ascontiguousarray(gy)
    if _use_direct(c_in, c_out, g, twin):
        gw5 = xp.empty((c_out, 1) + geo.kernel, dtype=x.dtype)          # (C_out, 1, kT, kH, kW)
        twin.depthwise_bwd_weight(x5, gy.reshape((n, c_out) + geo.out), geo.stride, geo.padding,
                                  geo.dilation, gw5)
        return gw5.reshape(w_shape)
    if _use_winograd(n, c_in, c_out, geo):
        return _winograd_weight_grad(x5, gy.reshape((n, c_out) + geo.out), geo).reshape(w_shape)
    if _pointwise(geo):
        # one batched product gy[n] @ x[n]^T -> (N, g, C_out/g, C_in/g), summed over the batch
        per_sample = xp.matmul(gy.reshape(n, g, c_out // g, -1),
                               x5.reshape(n, g, c_in // g, -1).transpose(0, 1, 3, 2))
        return per_sample.sum(axis=0).reshape(w_shape)
    plan = _Plan(xp, n, c_in, geo, x.dtype)
    ckg = plan.ck // g
    # accumulated transposed, gw^T = col @ gy^T: measured 1.1-1.5x faster in OpenBLAS than
    # gy @ col^T on the benchmark shapes (the long dim L is the reduction either way)
    gw_t = xp.zeros((g, ckg, c_out // g), dtype=x.dtype)               # (g, C_in/g*kT*kH*kW, C_out/g)
    part = xp.empty_like(gw_t)
    gy3 = gy.reshape(n, c_out, plan.rows * plan.o_w)                    # (N, C_out, oT*oH*oW)
    for n0, n1, r0, r1 in plan.schedule(twin):
        m, length = n1 - n0, (r1 - r0) * plan.o_w
        col = plan.buffer(m, length)                                    # (m, C_in*kT*kH*kW, L)
        twin.vol2col(x5[n0:n1], geo.kernel, geo.stride, geo.padding, geo.dilation, geo.out, r0, col)
        for i in range(m):          # one GEMM per sample: its output is the small (CK, C_out) block
            gy_t = gy3[n0 + i, :, r0 * plan.o_w:r1 * plan.o_w].reshape(g, c_out // g, length)
            xp.matmul(col[i].reshape(g, ckg, length), gy_t.transpose(0, 2, 1), out=part)
            gw_t += part
    return xp.ascontiguousarray(gw_t.transpose(0, 2, 1)).reshape(w_shape)   # (C_out, C_in/g, *k)


# ---- Functions: each backward is made of the other two ---------------------------------------------

def _bias_grad(gy):
    """The sum of gy (N, C, *spatial) over every dim but C, as a differentiable Tensor."""
    n, c = gy.shape[:2]
    return gy.reshape(n, c, -1).sum(dim=2).sum(dim=0)                   # (N, C, P) -> (C,)


class Conv(Function):
    """y = x (*) w + b: x (N, C_in, *vol), w (C_out, C_in/groups, *kernel), b (C_out,) or None."""

    @staticmethod
    def forward(ctx, x, w, b, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, w)
        return conv_forward_arrays(x, w, b, geo)

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gb = _bias_grad(gy) if need[2] else None
        if (need[0] and need[1] and not is_grad_enabled()
                and _fused_backward_applies(x.shape[1], w.shape[0], geo, kernels.conv(gy.data))):
            gx, gw = conv_backward_fused_arrays(x.data, w.data, gy.data, geo)
            return Tensor(gx), Tensor(gw), gb, None
        gx = ConvTranspose.apply(gy, w, None, geo) if need[0] else None
        gw = ConvWeightGrad.apply(x, gy, geo) if need[1] else None
        return gx, gw, gb, None


class ConvTranspose(Function):
    """y = the adjoint of (v -> v (*) w) applied to x, + b: x (N, C_out, *out) on the column side,
    w (C_out, C_in/groups, *kernel) as Conv's -- which is PyTorch's conv_transpose layout
    (C_in', C_out'/groups, *kernel) with the roles of the channel counts swapped -- and y
    (N, C_in, *vol) on the volume side."""

    @staticmethod
    def forward(ctx, x, w, b, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, w)
        g = geo.groups
        y = conv_input_grad_arrays(x, w, geo, w.shape[1] * g)
        if b is not None:
            y += b.reshape((1, -1) + (1,) * geo.nd)
        return y

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gx = Conv.apply(gy, w, None, geo) if need[0] else None           # the adjoint's adjoint
        gw = ConvWeightGrad.apply(gy, x, geo) if need[1] else None      # gy on the volume side
        gb = _bias_grad(gy) if need[2] else None
        return gx, gw, gb, None


class ConvWeightGrad(Function):
    """gw = the correlation of x (N, C_in, *vol) with gy (N, C_out, *out), summed over the batch:
    the weight gradient of Conv, linear in each argument."""

    @staticmethod
    def forward(ctx, x, gy, geo):
        ctx.geo = geo
        ctx.save_for_backward(x, gy)
        c_out, c_in = gy.shape[1], x.shape[1]
        w_shape = (c_out, c_in // geo.groups) + geo.user_shape(geo.kernel)
        return conv_weight_grad_arrays(x, gy, geo, w_shape)

    @staticmethod
    def backward(ctx, ggw):
        x, gy = ctx.saved_tensors
        geo, need = ctx.geo, ctx.needs_input_grad
        gx = ConvTranspose.apply(gy, ggw, None, geo) if need[0] else None
        g_gy = Conv.apply(x, ggw, None, geo) if need[1] else None
        return gx, g_gy, None


# ---- public API: argument checks as PyTorch makes them --------------------------------------------

def _ints(op, name, value, nd, minimum):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * nd
    elif (isinstance(value, (tuple, list)) and len(value) == nd
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        value = tuple(int(v) for v in value)
    else:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < minimum for v in value):
        what = 'negative' if minimum == 0 else 'non-positive'
        raise ValueError(f"{op}: {what} {name} {value} is not supported")
    return value


def _pad3(t, fill):
    return (fill,) * (3 - len(t)) + tuple(t)


def _check_tensors(op, input, weight, bias, nd, groups, weight_desc):
    named = (('input', input), ('weight', weight)) + ((('bias', bias),) if bias is not None else ())
    for name, t in named:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
    spatial = {1: 'L', 2: 'H, W', 3: 'T, H, W'}[nd]
    if input.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D input (N, C, {spatial}), got shape "
                         f"{tuple(input.shape)} ({input.ndim}-D; batch the input, unbatched inputs "
                         "are not accepted)")
    if weight.ndim != nd + 2:
        raise ValueError(f"{op}: expected a {nd + 2}-D weight {weight_desc}, got shape "
                         f"{tuple(weight.shape)}")
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups <= 0:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if input.dtype != weight.dtype or (bias is not None and bias.dtype != input.dtype):
        raise TypeError(f"{op}: input, weight and bias must have one dtype, got {input.dtype}, "
                        f"{weight.dtype}" + (f" and {bias.dtype}" if bias is not None else ""))
    if input.dtype.kind != 'f':
        raise TypeError(f"{op}: expected a floating-point input, got {input.dtype}")


def _check_fits(op, input, weight, vol, padding_lo, padding_hi, kernel, dilation):
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(v + lo + hi for v, lo, hi in zip(vol, padding_lo, padding_hi))
    if any(s > p for s, p in zip(span, padded)):
        raise ValueError(f"{op}: kernel {tuple(kernel)} with dilation {tuple(dilation)} spans "
                         f"{span}, larger than the padded input {padded} (input "
                         f"{tuple(input.shape)}, weight {tuple(weight.shape)})")


def _conv(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(op, input, weight, bias, nd, groups, '(C_out, C_in/groups, *kernel)')
    n, c_in = input.shape[:2]
    c_out, c_in_g = weight.shape[:2]
    if c_in % groups or c_out % groups or c_in_g * groups != c_in:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {c_in} channels, weight "
                         f"{tuple(weight.shape)} with groups={groups} expects C_in = weight.shape[1] * "
                         f"groups = {c_in_g * groups} and C_out ({c_out}) divisible by groups")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias shape {tuple(bias.shape)}, expected ({c_out},) for weight "
                         f"{tuple(weight.shape)}")
    kernel = tuple(weight.shape[2:])
    stride = _ints(op, 'stride', stride, nd, 1)
    dilation = _ints(op, 'dilation', dilation, nd, 1)
    vol = tuple(input.shape[2:])
    if isinstance(padding, str):
        if padding == 'valid':
            lo = hi = (0,) * nd
        elif padding == 'same':
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride {stride})")
            total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
            lo = tuple(t // 2 for t in total)           # PyTorch puts the odd extra on the high side
            hi = tuple(t - l for t, l in zip(total, lo))
        else:
            raise ValueError(f"{op}: padding must be 'same', 'valid', an int or a tuple of {nd} "
                             f"ints, got {padding!r}")
    else:
        lo = hi = _ints(op, 'padding', padding, nd, 0)
    _check_fits(op, input, weight, vol, lo, hi, kernel, dilation)
    out = tuple((v + a + b - d * (k - 1) - 1) // s + 1
                for v, a, b, k, s, d in zip(vol, lo, hi, kernel, stride, dilation))
    geo = Geometry(nd, _pad3(vol, 1), _pad3(out, 1), _pad3(kernel, 1), _pad3(stride, 1),
                   _pad3(lo, 0), _pad3(dilation, 1), int(groups))
    return Conv.apply(input, weight, bias, geo)


def _conv_transpose(op, nd, input, weight, bias, stride, padding, output_padding, groups, dilation):
    _check_tensors(op, input, weight, bias, nd, groups, '(C_in, C_out/groups, *kernel)')
    n, c_in = input.shape[:2]
    c_w, c_out_g = weight.shape[:2]
    if c_in % groups or c_w != c_in:
        raise ValueError(f"{op}: input {tuple(input.shape)} has {c_in} channels, weight "
                         f"{tuple(weight.shape)} expects {c_w} (its dim 0), divisible by "
                         f"groups={groups}")
    c_out = c_out_g * groups
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias shape {tuple(bias.shape)}, expected ({c_out},) for weight "
                         f"{tuple(weight.shape)} and groups={groups}")
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of {nd} ints (PyTorch's "
                         f"conv_transpose takes no 'same'/'valid'), got {padding!r}")
    kernel = tuple(weight.shape[2:])
    stride = _ints(op, 'stride', stride, nd, 1)
    padding = _ints(op, 'padding', padding, nd, 0)
    output_padding = _ints(op, 'output_padding', output_padding, nd, 0)
    dilation = _ints(op, 'dilation', dilation, nd, 1)
    if any(op_ >= max(s, d) for op_, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{op}: output_padding {output_padding} must be smaller than either "
                         f"stride {stride} or dilation {dilation}")
    out = tuple(input.shape[2:])
    vol = tuple((o - 1) * s - 2 * p + d * (k - 1) + op_ + 1
                for o, s, p, d, k, op_ in zip(out, stride, padding, dilation, kernel, output_padding))
    if any(v <= 0 for v in vol):
        raise ValueError(f"{op}: input {tuple(input.shape)} with weight {tuple(weight.shape)}, "
                         f"stride {stride}, padding {padding}, dilation {dilation} and "
                         f"output_padding {output_padding} gives the non-positive output size {vol}")
    geo = Geometry(nd, _pad3(vol, 1), _pad3(out, 1), _pad3(kernel, 1), _pad3(stride, 1),
                   _pad3(padding, 0), _pad3(dilation, 1), int(groups))
    return ConvTranspose.apply(input, weight, bias, geo)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, L), weight (C_out, C_in/groups, k), bias (C_out,) -> (N, C_out, L_out).
    padding: an int, a 1-tuple, 'valid' or 'same' (stride 1 only), as PyTorch."""
    return _conv('conv1d', 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, H, W), weight (C_out, C_in/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    return _conv('conv2d', 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """input (N, C_in, T, H, W), weight (C_out, C_in/groups, kT, kH, kW) -> (N, C_out, T', H', W'),
    with X' = (X + 2 padding - dilation (k - 1) - 1) // stride + 1 per spatial dim."""
    return _conv('conv3d', 3, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, L), weight (C_in, C_out/groups, k) -> (N, C_out, L_out) with
    L_out = (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1: the input gradient
    of conv1d with the same arguments."""
    return _conv_transpose('conv_transpose1d', 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, H, W), weight (C_in, C_out/groups, kH, kW) -> (N, C_out, H_out, W_out)."""
    return _conv_transpose('conv_transpose2d', 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """input (N, C_in, T, H, W), weight (C_in, C_out/groups, kT, kH, kW) -> (N, C_out, T', H', W')."""
    return _conv_transpose('conv_transpose3d', 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)

"""Convolution on arrays: the geometry, the tile planner and the three products of vol2col + GEMM.

Everything here works on NumPy or CuPy arrays and knows nothing of Tensors; the autograd Functions
that call it are in tensorlite/functional/conv.py.  The three products are

    conv_forward_arrays        y  = x (*) w + b
    conv_input_grad_arrays     gx = the adjoint of x -> x (*) w applied to gy (conv_transpose)
    conv_weight_grad_arrays    gw = the adjoint of w -> x (*) w applied to gy

plus `conv_backward_fused_arrays`, both gradients of a stride-1 conv from one pass over gy.  The
column matrix of a tile of the batch is built by a kernel (kernels/{cpu,cuda}/conv.py), and the
matrix products go to BLAS (NumPy) or cuBLAS (CuPy) through `xp.matmul`, so the same code runs on
both devices.  Tiles -- whole samples, or bands of output rows of one sample -- keep the column
buffer under the bound set in tensorlite.kernels (`set_column_buffer_bytes`).  Per shape, a
product may instead take the direct depthwise kernels (`_use_direct`), read x itself as its
columns (`_pointwise`), run a stride-1 transposed convolution as a convolution with the flipped
kernel (`FLIPPED_MAX_CHANNEL_RATIO`), or run as Winograd F(2x2x2, 3x3x3)
(kernels/{cpu,cuda}/winograd.py, chosen by `_use_winograd`; `set_algorithm` forces it).  The
measurements behind each rule are in docs/performance.md, "Convolution" and "Winograd convolution".
"""
from typing import NamedTuple

import numpy as np

from .. import kernels
from ..backend import array_module as xp_of


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


def set_algorithm(algorithm):
    """Make the convolutions Winograd can compute take `algorithm`, one of ALGORITHMS; returns the
    previous one.  Users set it for a block with tensorlite.functional.conv_algorithm."""
    global _algorithm
    if algorithm not in ALGORITHMS:
        raise ValueError(f"set_algorithm: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    previous, _algorithm = _algorithm, algorithm
    return previous


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
    channels leave the transforms dominant, few tiles leave U's reads dominant.  Where the rule
    takes it, Winograd's forward + backward is about half the GEMM's: (8, 64->64, 8, 28, 28),
    6,272 tiles, 316 against 591 ms (docs/performance.md, "Winograd convolution")."""
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
    kernels read the input once: (8, 64, 16, 56, 56) 3x3x3 forward 100 ms against 189 ms for
    vol2col + GEMM (`benchmarks/bench_conv.py --depthwise`).  First layers (C_in = 3) stay on the
    GEMM, where the direct kernels were 3x slower.  The runs: docs/performance.md, "Convolution"
    (item 8 of "What was measured to get here", and the end of "Why (8, 3->64, ...)")."""
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
# rows per kernel offset against C_in for col2vol's, so it is taken only when C_out <= C_in: with
# C_out = 21 C_in, (8, 3, 16, 56, 56), it took 413 ms against 169 ms for col2vol.  At C_out = C_in
# the two are within noise, and the flipped path gives the shared backward pass
# (docs/performance.md, "Convolution", items 6 and 7).
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
    that ConvWeightGrad would make: (8, 64, 8, 28, 28) forward + backward 262 ms against 279 ms
    with the two Functions (docs/performance.md, "Convolution", item 7).  Used by Conv.backward
    when no graph is recorded; with create_graph the two Functions run, each differentiable."""
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


def fused_backward_applies(c_in, c_out, geo, twin):
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
    # accumulated transposed, gw^T = col @ gy^T: 1.1-1.5x faster in OpenBLAS than gy @ col^T on
    # the benchmark shapes, the long dim L the reduction either way (docs/performance.md, item 5)
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

"""Convolution kernels (CPU): vol2col, its adjoint col2vol, and a direct depthwise convolution.

Every kernel works on three spatial dims (T, H, W); conv1d and conv2d reach them with unit dims
prepended.  Geometry arguments are 3-tuples of ints: `kernel` (kT, kH, kW), `stride`, `padding`
(the low side only: the high side is implied by the two volume shapes) and `dilation`.

The column matrix of a batch of n samples is (n, C*kT*kH*kW, rows*oW): one row per (channel,
kernel offset), one column per output position.  It can hold every output position or only a
band of output rows: `row0` is the first row (ot*oH + oh) of the flattened (oT, oH) grid that the
columns start at, and the number of rows is col.shape[2] // oW.  The functional layer uses bands
to keep the column buffer under the bound in tensorlite.kernels (see docs/kernels.md).

Index arithmetic: output position o and kernel offset k read input position
    i = o * stride - padding + k * dilation        (zero when i falls outside [0, size)).
In the innermost loop the valid outputs ow form one interval [lo, hi), computed once per row, so
the copy has no branch; for stride 1 with oW == W (a 'same' convolution) the rows of a band are
one contiguous run and the whole band is one copy (docs/kernels.md).

Jobs: vol2col runs one job per (sample, channel, kernel offset) row of the column matrix, writing
it front to back; col2vol runs one job per (sample, channel), which alone owns that channel's
volume, so overlapping windows accumulate without atomics.
"""
import numba
import numpy as np

from .._launch import (BESIDE_GEMM_THREADS, check_col2vol, check_depthwise_bwd_input,
                       check_depthwise_bwd_weight, check_depthwise_fwd, check_vol2col, run)

# The functional layer cuts work into tiles whose column buffer holds at most this many bytes
# (and never more than the bound in tensorlite.kernels): vol2col writes a tile and the GEMM reads
# it back while it is still in the 32 MiB L3.  Measured forward + backward, interleaved medians,
# tiles of 2 / 4 / 8 / 16 / 64 MiB: (8, 64, 8, 28, 28) 369 / 337 / 308 / 333 / 345 ms,
# (8, 3, 16, 56, 56) 267 / 244 / 230 / 226 / 281 ms, (4, 16, 8, 32, 32) 76 / 71 / 65 / 70 / 67 ms.
PREFERRED_TILE_BYTES = 8 * 2**20


@numba.njit(inline='always')
def _valid_range(size_in, size_out, offset, stride):
    """The interval [lo, hi) of outputs o with 0 <= o*stride + offset < size_in, clipped to
    [0, size_out)."""
    lo = -(offset // stride)                       # ceil(-offset / stride)
    hi = (size_in - 1 - offset) // stride + 1
    lo = min(max(lo, 0), size_out)
    hi = min(max(hi, lo), size_out)
    return lo, hi


@numba.njit(inline='always')
def _run(a, start, count, step):
    """The `count` elements a[start], a[start + step], ... as a view (for slice copies)."""
    return a[start:start + (count - 1) * step + 1:step]


# The inner loops index flat arrays with unsigned ints: an index Numba cannot prove non-negative
# (ow + off_w) gets a negative-index wraparound branch per element, which blocks vectorization --
# measured 10x slower on a 56-element row (48 ns against 4.7 ns).

@numba.njit(inline='always')
def _axpy(dst, d0, d_step, src, s0, s_step, count, a):
    """dst[d0 + i*d_step] += a * src[s0 + i*s_step] for i < count."""
    d, s = np.uint64(d0), np.uint64(s0)
    if d_step == 1 and s_step == 1:
        for i in range(np.uint64(count)):
            dst[d + i] += a * src[s + i]
    else:
        ds, ss = np.uint64(d_step), np.uint64(s_step)
        for i in range(np.uint64(count)):
            dst[d + i * ds] += a * src[s + i * ss]


@numba.njit(inline='always')
def _dot(u, u0, v, v0, v_step, count):
    """sum of u[u0 + i] * v[v0 + i*v_step] for i < count, in the arrays' dtype."""
    p, q = np.uint64(u0), np.uint64(v0)
    acc = u[p] * v[q] * 0
    if v_step == 1:
        for i in range(np.uint64(count)):
            acc += u[p + i] * v[q + i]
    else:
        vs = np.uint64(v_step)
        for i in range(np.uint64(count)):
            acc += u[p + i] * v[q + i * vs]
    return acc


@numba.njit(inline='always')
def _zero(a, start, count):
    """a[start:start + count] = 0, with unsigned indices."""
    s = np.uint64(start)
    for i in range(np.uint64(count)):
        a[s + i] = 0


# vol2col indexes flat memory (sb, sr: the elements between two samples, two rows of the columns)
# with index arithmetic in plain ints per row and unsigned inner loops, no array views: a view
# costs tens of ns, which dominates the short rows of small volumes ((1, 64, 8, 28, 28): 3.3 ms on
# one thread, 7.7 ms with a view per row; docs/performance.md, "vol2col with plain-int row
# arithmetic").
@numba.njit(parallel=True, cache=True)
def _vol2col(x, kt_, kh_, kw_, st, sh, sw, pt, ph, pw, dt, dh, dw, o_t, o_h, o_w, row0, rows,
             col, sb, sr):
    n, c_in, t_in, h_in, w_in = x.shape
    xf = x.reshape(-1)
    k = kt_ * kh_ * kw_
    plane = h_in * w_in
    # stride 1 in H and W and oW == W (a 'same' convolution, the common case): the rows one kernel
    # offset reads from one input plane are consecutive in memory, so a whole band is one copy;
    # the few elements that wrap into the neighbouring row are zeroed afterwards
    flat = sw == 1 and sh == 1 and w_in == o_w
    for job in numba.prange(n * c_in * k):          # one (sample, channel, kernel offset) row
        b = job // (c_in * k)
        ck = job - b * (c_in * k)
        c = ck // k
        kk = ck - c * k
        kt = kk // (kh_ * kw_)
        kh = (kk // kw_) % kh_
        kw = kk % kw_
        off_w = kw * dw - pw
        off_h = kh * dh - ph
        lo, hi = _valid_range(w_in, o_w, off_w, sw)
        oh_lo, oh_hi = _valid_range(h_in, o_h, off_h, sh)
        dst0 = b * sb + ck * sr
        vol0 = (b * c_in + c) * t_in * plane
        r = 0
        while r < rows:                             # one (ot, oh-band) piece per pass
            row = row0 + r
            ot = row // o_h
            oh0 = row - ot * o_h
            n_r = min(o_h - oh0, rows - r)
            it = ot * st - pt + kt * dt
            band = dst0 + r * o_w
            if it < 0 or it >= t_in or hi <= lo:    # a padding plane, or this kw reads only padding
                _zero(col, band, n_r * o_w)
                r += n_r
                continue
            a = min(max(oh_lo, oh0), oh0 + n_r)     # rows [a, e) read inside the volume
            e = max(min(oh_hi, oh0 + n_r), a)
            _zero(col, band, (a - oh0) * o_w)
            _zero(col, band + (e - oh0) * o_w, (oh0 + n_r - e) * o_w)
            src = vol0 + it * plane
            if flat and e > a:
                d0 = np.uint64(band + (a - oh0) * o_w + lo)
                s0 = np.uint64(src + (a + off_h) * w_in + off_w + lo)
                count = np.uint64((e - a - 1) * o_w + hi - lo)
                col[d0:d0 + count] = xf[s0:s0 + count]
                if lo > 0 or hi < o_w:
                    for q in range(e - a):
                        start = band + (a - oh0 + q) * o_w
                        _zero(col, start, lo)
                        _zero(col, start + hi, o_w - hi)
            else:
                for oh in range(a, e):
                    d = band + (oh - oh0) * o_w
                    _zero(col, d, lo)
                    _zero(col, d + hi, o_w - hi)
                    s_ = np.uint64(src + (oh * sh + off_h) * w_in + off_w + lo * sw)
                    d_ = np.uint64(d + lo)
                    step = np.uint64(sw)
                    for i in range(np.uint64(hi - lo)):
                        col[d_ + i] = xf[s_ + i * step]
            r += n_r


@numba.njit(parallel=True, cache=True)
def _col2vol(col, kt_, kh_, kw_, st, sh, sw, pt, ph, pw, dt, dh, dw, o_t, o_h, o_w, row0, x):
    n, c_in, t_in, h_in, w_in = x.shape
    k = kt_ * kh_ * kw_
    rows = col.shape[2] // o_w
    # one job per (sample, channel): it alone writes that channel's volume, so overlapping windows
    # accumulate without atomics, and it reads its k column rows front to back (streaming) --
    # measured 1.2-1.4x faster than gathering, per input row, from k scattered column rows (8 MiB
    # tiles of the three benchmark shapes)
    one = x.dtype.type(1)
    for job in numba.prange(n * c_in):
        b = job // c_in
        c = job - b * c_in
        vol = x[b, c].reshape(-1)                   # (T*H*W,)
        for kk in range(k):
            kt = kk // (kh_ * kw_)
            kh = (kk // kw_) % kh_
            kw = kk % kw_
            off_w = kw * dw - pw
            lo, hi = _valid_range(w_in, o_w, off_w, sw)
            oh_lo, oh_hi = _valid_range(h_in, o_h, kh * dh - ph, sh)
            src = col[b, c * k + kk]
            r = 0
            while r < rows:
                row = row0 + r
                ot = row // o_h
                oh0 = row - ot * o_h
                n_r = min(o_h - oh0, rows - r)
                it = ot * st - pt + kt * dt
                if it >= 0 and it < t_in:
                    a = min(max(oh_lo, oh0), oh0 + n_r)
                    e = max(min(oh_hi, oh0 + n_r), a)
                    for oh in range(a if hi > lo else e, e):
                        d0 = (it * h_in + oh * sh - ph + kh * dh) * w_in + off_w + lo * sw
                        _axpy(vol, d0, sw, src, (r + oh - oh0) * o_w + lo, 1, hi - lo, one)
                r += n_r


def vol2col(x, kernel, stride, padding, dilation, out_shape, row0, col):
    """col[b, (c, kt, kh, kw), (r, ow)] = x[b, c, ot*sT - pT + kt*dT, oh*sH - pH + kh*dH,
    ow*sW - pW + kw*dW] (0 outside the volume), for output rows (ot, oh) = divmod(row0 + r, oH).

    x (n, C, T, H, W); col (n, C*kT*kH*kW, rows*oW), preallocated, every element written."""
    check_vol2col(x, kernel, out_shape, row0, col)
    if col.size:
        _, ck, length = col.shape
        run(_vol2col, x.size + col.size, x, *kernel, *stride, *padding, *dilation, *out_shape, row0,
            length // out_shape[2], col.reshape(-1), ck * length, length, most=BESIDE_GEMM_THREADS)


def col2vol(col, kernel, stride, padding, dilation, out_shape, row0, x):
    """The adjoint of vol2col: x[b, c, i] += col[b, (c, k), o] summed over every (k, o) that
    vol2col would read i from.  Adds into x (the caller zeroes it once, then adds band by band).

    col (n, C*kT*kH*kW, rows*oW); x (n, C, T, H, W)."""
    check_col2vol(col, kernel, out_shape, row0, x)
    if col.size and x.size:
        run(_col2vol, x.size + col.size, col, *kernel, *stride, *padding, *dilation, *out_shape,
            row0, x, most=BESIDE_GEMM_THREADS)


# ---- direct depthwise convolution -----------------------------------------------------------------
# One input channel per group (groups == C_in), C_out = C_in * mult.  Output channel co reads input
# channel co // mult.  No columns: each kernel offset is a shifted multiply-add over a plane.

@numba.njit(parallel=True, cache=True)
def _depthwise_fwd(x, w, st, sh, sw, pt, ph, pw, dt, dh, dw, y):
    n, c_in, t_in, h_in, w_in = x.shape
    c_out, _, kt_, kh_, kw_ = w.shape
    o_t, o_h, o_w = y.shape[2:]
    mult = c_out // c_in
    for job in numba.prange(n * c_out * o_t):       # one output plane per job
        b = job // (c_out * o_t)
        co = (job // o_t) % c_out
        ot = job % o_t
        c = co // mult
        out = y[b, co, ot].reshape(-1)              # (oH*oW,)
        out[:] = 0
        for kt in range(kt_):
            it = ot * st - pt + kt * dt
            if it < 0 or it >= t_in:
                continue
            src = x[b, c, it].reshape(-1)           # (H*W,)
            for kh in range(kh_):
                a, e = _valid_range(h_in, o_h, kh * dh - ph, sh)
                for kw in range(kw_):
                    off_w = kw * dw - pw
                    lo, hi = _valid_range(w_in, o_w, off_w, sw)
                    if hi <= lo:
                        continue
                    wv = w[co, 0, kt, kh, kw]
                    for oh in range(a, e):
                        _axpy(out, oh * o_w + lo, 1, src,
                              (oh * sh - ph + kh * dh) * w_in + lo * sw + off_w, sw, hi - lo, wv)


@numba.njit(parallel=True, cache=True)
def _depthwise_bwd_input(gy, w, st, sh, sw, pt, ph, pw, dt, dh, dw, gx):
    n, c_in, t_in, h_in, w_in = gx.shape
    c_out, _, kt_, kh_, kw_ = w.shape
    o_t, o_h, o_w = gy.shape[2:]
    mult = c_out // c_in
    for job in numba.prange(n * c_in * t_in):       # one input plane per job: no two jobs write one
        b = job // (c_in * t_in)
        c = (job // t_in) % c_in
        t = job % t_in
        dst = gx[b, c, t].reshape(-1)               # (H*W,)
        dst[:] = 0
        for kt in range(kt_):
            num_t = t + pt - kt * dt
            if num_t < 0 or num_t % st:
                continue
            ot = num_t // st
            if ot >= o_t:
                continue
            for j in range(mult):
                co = c * mult + j
                src = gy[b, co, ot].reshape(-1)     # (oH*oW,)
                for kh in range(kh_):
                    a, e = _valid_range(h_in, o_h, kh * dh - ph, sh)
                    for kw in range(kw_):
                        off_w = kw * dw - pw
                        lo, hi = _valid_range(w_in, o_w, off_w, sw)
                        if hi <= lo:
                            continue
                        wv = w[co, 0, kt, kh, kw]
                        for oh in range(a, e):
                            _axpy(dst, (oh * sh - ph + kh * dh) * w_in + lo * sw + off_w, sw,
                                  src, oh * o_w + lo, 1, hi - lo, wv)


# reassoc lets LLVM vectorize the dot products (a sum reordered, as BLAS reorders its own):
# measured 3.5 -> 9.7 GFLOP/s on one thread, (2, 64, 16, 56, 56) with a 3x3x3 kernel
@numba.njit(parallel=True, cache=True, fastmath={'reassoc', 'contract'})
def _depthwise_bwd_weight(x, gy, st, sh, sw, pt, ph, pw, dt, dh, dw, gw):
    n, c_in, t_in, h_in, w_in = x.shape
    c_out, _, kt_, kh_, kw_ = gw.shape
    o_t, o_h, o_w = gy.shape[2:]
    mult = c_out // c_in
    for co in numba.prange(c_out):                 # all taps of one channel per job: gy is read once
        c = co // mult
        acc = np.zeros((kt_, kh_, kw_), dtype=np.float64)   # long sums: accumulate in float64
        for b in range(n):
            for ot in range(o_t):
                g_plane = gy[b, co, ot].reshape(-1)     # (oH*oW,)
                for kt in range(kt_):
                    it = ot * st - pt + kt * dt
                    if it < 0 or it >= t_in:
                        continue
                    x_plane = x[b, c, it].reshape(-1)   # (H*W,)
                    for kh in range(kh_):
                        a, e = _valid_range(h_in, o_h, kh * dh - ph, sh)
                        for kw in range(kw_):
                            off_w = kw * dw - pw
                            lo, hi = _valid_range(w_in, o_w, off_w, sw)
                            if hi <= lo:
                                continue
                            s = 0.0         # float64 across rows, the dtype within a row
                            for oh in range(a, e):
                                s += _dot(g_plane, oh * o_w + lo, x_plane,
                                          (oh * sh - ph + kh * dh) * w_in + lo * sw + off_w, sw,
                                          hi - lo)
                            acc[kt, kh, kw] += s
        for kt in range(kt_):
            for kh in range(kh_):
                for kw in range(kw_):
                    gw[co, 0, kt, kh, kw] = acc[kt, kh, kw]


def depthwise_fwd(x, w, stride, padding, dilation, y):
    """y[b, co] = sum over kernel offsets k of w[co, 0, k] * x[b, co // mult] read at o*stride -
    padding + k*dilation (0 outside).  x (N, C, T, H, W), w (C*mult, 1, kT, kH, kW),
    y (N, C*mult, oT, oH, oW) preallocated and overwritten."""
    check_depthwise_fwd(x, w, y)
    if y.size:
        run(_depthwise_fwd, x.size + y.size, x, w, *stride, *padding, *dilation, y,
            most=BESIDE_GEMM_THREADS)


def depthwise_bwd_input(gy, w, stride, padding, dilation, gx):
    """gx = the adjoint of depthwise_fwd applied to gy; gx (N, C, T, H, W) is overwritten."""
    check_depthwise_bwd_input(gy, w, gx)
    if gx.size:
        run(_depthwise_bwd_input, gy.size + gx.size, gy, w, *stride, *padding, *dilation, gx,
            most=BESIDE_GEMM_THREADS)


def depthwise_bwd_weight(x, gy, stride, padding, dilation, gw):
    """gw[co, 0, k] = sum over b and output positions o of gy[b, co, o] * x[b, co // mult,
    o*stride - padding + k*dilation]; gw (C*mult, 1, kT, kH, kW) is overwritten."""
    check_depthwise_bwd_weight(x, gy, gw)
    if gw.size:
        run(_depthwise_bwd_weight, x.size + gy.size, x, gy, *stride, *padding, *dilation, gw,
            most=BESIDE_GEMM_THREADS)

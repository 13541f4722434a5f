"""Convolution kernels (CUDA twins of kernels/cpu/conv.py: same names, same signatures).

Thread mapping (docs/kernels.md; launch configurations in _grid.py):
- The elementwise kernels are grid-stride loops: the thread with global index i takes elements
  i, i + gridsize, i + 2 * gridsize, ... of the flat index space, so any grid is correct and the
  grid is chosen at launch (`_grid.grid(n)`).
- vol2col: the elements are the column elements (b, c*K + k, r*oW + ow); consecutive threads take
  consecutive output positions ow, so the column writes are coalesced and, for stride 1, so are
  the input reads.
- col2vol: the elements are the *input* elements; each gathers every (kernel offset, output
  position) that vol2col copied it to.  No two threads write one element, so there are no atomics,
  and the sum is in a fixed order (deterministic).
- depthwise_fwd / depthwise_bwd_input: the elements are the output / input elements, gathering
  likewise.
- depthwise_bwd_weight: a block-stride loop over the weight elements (channel, kernel offset):
  block j takes weight elements j, j + gridDim, ...; for each, the block's REDUCE_THREADS threads
  stride over the batch and the output positions and reduce in shared memory (float64), with a
  barrier at the end of each element so the shared buffer can be reused.
"""
import numba
from numba import cuda

from . import _grid
from .._launch import (check_col2vol, check_depthwise_bwd_input, check_depthwise_bwd_weight,
                       check_depthwise_fwd, check_vol2col)

# Threads of one depthwise_bwd_weight block: a power of 2 (the tree sum halves it), and a
# compile-time constant (it sizes the shared array).  Smaller under the simulator, which runs every
# CUDA thread as an operating-system thread.
REDUCE_THREADS = _grid.SIM_THREADS if _grid.SIMULATED else 64

# A GPU has no cache to fit the column buffer into: tiles as large as the bound allows (fewer
# launches and larger GEMMs for cuBLAS).
PREFERRED_TILE_BYTES = None


@cuda.jit(cache=True)
def _vol2col(x, kt_, kh_, kw_, st, sh, sw, pt, ph, pw, dt, dh, dw, o_t, o_h, o_w, row0, col):
    n, ck, length = col.shape
    t_in, h_in, w_in = x.shape[2], x.shape[3], x.shape[4]     # read once: see _grid.py
    k = kt_ * kh_ * kw_
    for i in range(cuda.grid(1), n * ck * length, cuda.gridsize(1)):
        b = i // (ck * length)
        rest = i - b * ck * length
        row_ck = rest // length
        j = rest - row_ck * length
        c = row_ck // k
        kk = row_ck - c * k
        kt = kk // (kh_ * kw_)
        kh = (kk // kw_) % kh_
        kw = kk % kw_
        r = j // o_w
        ow = j - r * o_w
        row = row0 + r
        ot = row // o_h
        oh = row - ot * o_h
        it = ot * st - pt + kt * dt
        ih = oh * sh - ph + kh * dh
        iw = ow * sw - pw + kw * dw
        if 0 <= it < t_in and 0 <= ih < h_in and 0 <= iw < w_in:
            col[b, row_ck, j] = x[b, c, it, ih, iw]
        else:
            col[b, row_ck, j] = 0


@cuda.jit(cache=True)
def _col2vol(col, kt_, kh_, kw_, st, sh, sw, pt, ph, pw, dt, dh, dw, o_t, o_h, o_w, row0, x):
    n, c_in, t_in, h_in, w_in = x.shape
    rows = col.shape[2] // o_w
    k = kt_ * kh_ * kw_
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        w = i % w_in
        h = (i // w_in) % h_in
        t = (i // (w_in * h_in)) % t_in
        c = (i // (w_in * h_in * t_in)) % c_in
        b = i // (w_in * h_in * t_in * c_in)
        acc = x[b, c, t, h, w]                      # adds into x, in x's dtype
        for kt in range(kt_):
            num_t = t + pt - kt * dt
            if num_t < 0 or num_t % st != 0 or num_t // st >= o_t:
                continue
            ot = num_t // st
            for kh in range(kh_):
                num_h = h + ph - kh * dh
                if num_h < 0 or num_h % sh != 0 or num_h // sh >= o_h:
                    continue
                r = ot * o_h + num_h // sh - row0
                if r < 0 or r >= rows:
                    continue
                for kw in range(kw_):
                    num_w = w + pw - kw * dw
                    if num_w < 0 or num_w % sw != 0 or num_w // sw >= o_w:
                        continue
                    acc += col[b, c * k + (kt * kh_ + kh) * kw_ + kw, r * o_w + num_w // sw]
        x[b, c, t, h, w] = acc


@cuda.jit(cache=True)
def _depthwise_fwd(x, w, st, sh, sw, pt, ph, pw, dt, dh, dw, zero, y):
    n, c_out, o_t, o_h, o_w = y.shape
    _, c_in, t_in, h_in, w_in = x.shape
    kt_, kh_, kw_ = w.shape[2], w.shape[3], w.shape[4]
    mult = c_out // c_in
    for i in range(cuda.grid(1), n * c_out * o_t * o_h * o_w, cuda.gridsize(1)):
        ow = i % o_w
        oh = (i // o_w) % o_h
        ot = (i // (o_w * o_h)) % o_t
        co = (i // (o_w * o_h * o_t)) % c_out
        b = i // (o_w * o_h * o_t * c_out)
        c = co // mult
        acc = zero                                  # y is not read: it may hold anything
        for kt in range(kt_):
            it = ot * st - pt + kt * dt
            if it < 0 or it >= t_in:
                continue
            for kh in range(kh_):
                ih = oh * sh - ph + kh * dh
                if ih < 0 or ih >= h_in:
                    continue
                for kw in range(kw_):
                    iw = ow * sw - pw + kw * dw
                    if 0 <= iw < w_in:
                        acc += w[co, 0, kt, kh, kw] * x[b, c, it, ih, iw]
        y[b, co, ot, oh, ow] = acc


@cuda.jit(cache=True)
def _depthwise_bwd_input(gy, w, st, sh, sw, pt, ph, pw, dt, dh, dw, zero, gx):
    n, c_in, t_in, h_in, w_in = gx.shape
    mult = gy.shape[1] // c_in
    o_t, o_h, o_w = gy.shape[2], gy.shape[3], gy.shape[4]
    kt_, kh_, kw_ = w.shape[2], w.shape[3], w.shape[4]
    for i in range(cuda.grid(1), n * c_in * t_in * h_in * w_in, cuda.gridsize(1)):
        iw = i % w_in
        ih = (i // w_in) % h_in
        it = (i // (w_in * h_in)) % t_in
        c = (i // (w_in * h_in * t_in)) % c_in
        b = i // (w_in * h_in * t_in * c_in)
        acc = zero                                  # gx is not read: it may hold anything
        for j in range(mult):
            co = c * mult + j
            for kt in range(kt_):
                num_t = it + pt - kt * dt
                if num_t < 0 or num_t % st != 0 or num_t // st >= o_t:
                    continue
                for kh in range(kh_):
                    num_h = ih + ph - kh * dh
                    if num_h < 0 or num_h % sh != 0 or num_h // sh >= o_h:
                        continue
                    for kw in range(kw_):
                        num_w = iw + pw - kw * dw
                        if num_w < 0 or num_w % sw != 0 or num_w // sw >= o_w:
                            continue
                        acc += (w[co, 0, kt, kh, kw]
                                * gy[b, co, num_t // st, num_h // sh, num_w // sw])
        gx[b, c, it, ih, iw] = acc


@cuda.jit(cache=True)
def _depthwise_bwd_weight(x, gy, st, sh, sw, pt, ph, pw, dt, dh, dw, gw):
    c_out, _, kt_, kh_, kw_ = gw.shape
    k = kt_ * kh_ * kw_
    tid = cuda.threadIdx.x
    _, c_in, t_in, h_in, w_in = x.shape
    mult = c_out // c_in
    n, _, o_t, o_h, o_w = gy.shape
    total = n * o_t * o_h * o_w
    buf = cuda.shared.array(REDUCE_THREADS, numba.float64)
    for job in range(cuda.blockIdx.x, c_out * k, cuda.gridDim.x):    # weight elements, per block
        co = job // k
        kk = job - co * k
        kt = kk // (kh_ * kw_)
        kh = (kk // kw_) % kh_
        kw = kk % kw_
        c = co // mult
        acc = 0.0
        for p in range(tid, total, cuda.blockDim.x):
            ow = p % o_w
            oh = (p // o_w) % o_h
            ot = (p // (o_w * o_h)) % o_t
            b = p // (o_w * o_h * o_t)
            it = ot * st - pt + kt * dt
            ih = oh * sh - ph + kh * dh
            iw = ow * sw - pw + kw * dw
            if 0 <= it < t_in and 0 <= ih < h_in and 0 <= iw < w_in:
                acc += gy[b, co, ot, oh, ow] * x[b, c, it, ih, iw]
        buf[tid] = acc
        cuda.syncthreads()
        step = REDUCE_THREADS // 2
        while step > 0:
            if tid < step:
                buf[tid] += buf[tid + step]
            cuda.syncthreads()
            step //= 2
        if tid == 0:
            gw[co, 0, kt, kh, kw] = buf[0]
        cuda.syncthreads()                          # buf[0] is read before the next job writes


def vol2col(x, kernel, stride, padding, dilation, out_shape, row0, col):
    """See kernels/cpu/conv.py: col (n, C*kT*kH*kW, rows*oW) from x (n, C, T, H, W)."""
    check_vol2col(x, kernel, out_shape, row0, col)
    if col.size:
        _vol2col[_grid.grid(col.size)](x, *kernel, *stride, *padding, *dilation, *out_shape, row0,
                                       col)


def col2vol(col, kernel, stride, padding, dilation, out_shape, row0, x):
    """See kernels/cpu/conv.py: adds the adjoint of vol2col applied to col into x."""
    check_col2vol(col, kernel, out_shape, row0, x)
    if col.size and x.size:
        _col2vol[_grid.grid(x.size)](col, *kernel, *stride, *padding, *dilation, *out_shape, row0,
                                     x)


def depthwise_fwd(x, w, stride, padding, dilation, y):
    check_depthwise_fwd(x, w, y)
    if y.size:
        _depthwise_fwd[_grid.grid(y.size)](x, w, *stride, *padding, *dilation, y.dtype.type(0),
                                           y)


def depthwise_bwd_input(gy, w, stride, padding, dilation, gx):
    check_depthwise_bwd_input(gy, w, gx)
    if gx.size:
        _depthwise_bwd_input[_grid.grid(gx.size)](gy, w, *stride, *padding, *dilation,
                                                  gx.dtype.type(0), gx)


def depthwise_bwd_weight(x, gy, stride, padding, dilation, gw):
    check_depthwise_bwd_weight(x, gy, gw)
    if gw.size:
        _depthwise_bwd_weight[_grid.row_blocks(gw.size), REDUCE_THREADS](
            x, gy, *stride, *padding, *dilation, gw)

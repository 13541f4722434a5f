"""What both twins of a kernel share at its launch: the checks of its arguments, the host-side
tables and constants, and the one thread policy of the CPU kernels (Numba's threads for a parallel
kernel, `run`; Python worker threads for a loop over batch rows, `over_batch`).

A kernel walks flat memory: a strided array silently copied by `ravel()` would lose the kernel's
writes, and a float32 array next to a float64 one would be misread.  So every launch checks that
its arrays are C-contiguous, of one supported float dtype and of the shapes the kernel indexes,
and says which argument is wrong.  The checks of kernel `k` are `check_k` here, called by the
launch function `k` of both twins (kernels/cpu/<family>.py and kernels/cuda/<family>.py), which
hold only jitted code and launch configuration.
"""
import concurrent.futures
import ctypes
import functools
import glob
import os

import numba
import numpy as np

# The dtypes the kernels take, as dtype objects: `a.dtype in FLOAT_DTYPES` costs about 0.04 us,
# reading `a.dtype.name` 1.9 us (a new string each time), which a launch check made per array.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---- the CPU thread policy -----------------------------------------------------------------------

# Below this many elements (inputs + outputs) a parallel CPU kernel runs on one thread: waking
# Numba's thread pool costs more than the work, and on a busy machine (a data loader in other
# processes, or a test run beside another) it costs milliseconds per launch while one thread takes
# microseconds (measured: erf on 64 elements, 1 ms with 2 threads against 24 us on one, with three
# busy processes on the 2 cores).
SERIAL_BELOW = 1 << 15

# Kernels that alternate with BLAS GEMMs tile after tile (vol2col, col2vol, the depthwise
# convolution, the Winograd transforms) run on one thread at any size: they move memory, and all
# threads are no faster on whole training steps (C3D 157 ms on one thread, 161 ms on all;
# docs/performance.md, "Threads of the kernels beside a GEMM").
BESIDE_GEMM_THREADS = 1


def thread_count(work, most=None):
    """The Numba threads for a parallel kernel touching `work` elements: one below SERIAL_BELOW,
    else `most` (None: Numba's current count)."""
    return 1 if work < SERIAL_BELOW else most


def run(kernel, work, *args, most=None):
    """kernel(*args), a parallel Numba kernel, on thread_count(work, most) threads (at most
    NUMBA_NUM_THREADS); Numba's thread count is restored after it."""
    n = thread_count(work, most)
    if n is None:
        return kernel(*args)
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(before)


# Loops that split the batch rows between Python worker threads (the blockwise attention path: its
# Numba kernels and NumPy's ufuncs and GEMMs release the GIL) run on BLOCKWISE_THREADS workers, one
# per core and at most 8, each with single-threaded BLAS (OpenBLAS's per-thread setting): a
# 256 x 256 GEMM is faster on one core than split over two by OpenBLAS's fork and join
# (docs/attention.md, "Threads").  On CuPy arrays one thread issues everything.
BLOCKWISE_THREADS = max(1, min(os.cpu_count() or 1, 8))


def _blas_threads_setter():
    """OpenBLAS's openblas_set_num_threads_local from the library NumPy loaded, or None."""
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + '.libs', '*openblas*'))
    for path in libs:
        try:
            fn = getattr(ctypes.CDLL(path), 'openblas_set_num_threads_local')
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


_set_blas_threads_local = _blas_threads_setter()


def over_batch(xp, B, work, *args):
    """work(b_start, b_stop, *args) over B batch rows, split between BLOCKWISE_THREADS threads
    (one thread on CuPy, without OpenBLAS's per-thread setting, or for a single row)."""
    threads = min(BLOCKWISE_THREADS, B)
    if xp is not np or threads <= 1 or _set_blas_threads_local is None:
        work(0, B, *args)
        return

    def share(t):
        previous = _set_blas_threads_local(1)
        try:
            work(t * B // threads, (t + 1) * B // threads, *args)
        finally:
            _set_blas_threads_local(previous)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(share, t) for t in range(threads)]:
            f.result()


# ---- arrays --------------------------------------------------------------------------------------

def check_arrays(kernel, named, dtype=None, same_size=False):
    """`named` is [(name, array)] or [(name, array, expected shape)]: every array of one float dtype
    (`dtype`, else the first array's), of its expected shape where one is given, C-contiguous,
    and with `same_size` of the first array's size; else a TypeError/ValueError naming the kernel
    and the argument."""
    first_name, first = named[0][0], named[0][1]
    if dtype is None:
        dtype = first.dtype
    if len(named[0]) == 2:
        named = [(name, a, None) for name, a in named]
    for name, a, shape in named:
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected float32 or float64")
        if a.dtype != dtype:
            raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, {first_name} has {dtype}")
        if shape is not None and tuple(a.shape) != tuple(shape):
            raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected "
                             f"{tuple(shape)}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{kernel}: {name} (shape {tuple(a.shape)}) is not C-contiguous")
        if same_size and a.size != first.size:
            raise ValueError(f"{kernel}: {name} has {a.size} elements, {first_name} has "
                             f"{first.size}")


def check_elementwise(kernel, names, arrays):
    """All `arrays` C-contiguous, float32/float64, one dtype, one size (an elementwise kernel)."""
    # the common case in a loop of its own (1.3 us for three arrays, 3.0 us through check_arrays);
    # check_arrays only to name a fault
    dtype, size = arrays[0].dtype, arrays[0].size
    if dtype in FLOAT_DTYPES:
        for a in arrays:
            if a.dtype != dtype or a.size != size or not a.flags.c_contiguous:
                break
        else:
            return
    check_arrays(kernel, tuple(zip(names, arrays)), same_size=True)


# ---- activation ----------------------------------------------------------------------------------

SQRT_HALF = 0.7071067811865476          # 1 / sqrt(2)
INV_SQRT_2PI = 0.3989422804014327       # 1 / sqrt(2 pi)
TANH_K = 0.7978845608028654             # sqrt(2 / pi)
TANH_C = 0.044715


# ---- conv ----------------------------------------------------------------------------------------

def check_geometry(kernel, x, col, ksize, out_shape, row0):
    """x (n, C, T, H, W) and col (n, C*kT*kH*kW, rows*oW) describe one batch and one band of
    output rows inside the (oT, oH) grid."""
    if x.ndim != 5 or col.ndim != 3:
        raise ValueError(f"{kernel}: expected the volume as (n, C, T, H, W) and the columns as "
                         f"(n, C*kT*kH*kW, rows*oW), got shapes {tuple(x.shape)} and "
                         f"{tuple(col.shape)}")
    n, c = x.shape[:2]
    k = ksize[0] * ksize[1] * ksize[2]
    ow = out_shape[2]
    rows = col.shape[2] // ow if ow else 0
    if (col.shape[0] != n or col.shape[1] != c * k or ow <= 0 or col.shape[2] % ow
            or row0 < 0 or row0 + rows > out_shape[0] * out_shape[1]):
        raise ValueError(f"{kernel}: columns of shape {tuple(col.shape)} do not fit the volume "
                         f"{tuple(x.shape)} with kernel {tuple(ksize)}, output {tuple(out_shape)} "
                         f"and first row {row0}: expected ({n}, {c * k}, rows*{ow}) with rows "
                         f"ending inside the {out_shape[0] * out_shape[1]} output rows")


def check_vol2col(x, kernel, out_shape, row0, col):
    check_arrays('vol2col', [('x', x), ('col', col)])
    check_geometry('vol2col', x, col, kernel, out_shape, row0)


def check_col2vol(col, kernel, out_shape, row0, x):
    check_arrays('col2vol', [('col', col), ('x', x)])
    check_geometry('col2vol', x, col, kernel, out_shape, row0)


def check_depthwise(kernel, named, vol, w, cols):
    """`named` as check_arrays; vol (N, C, T, H, W), w (C*mult, 1, kT, kH, kW),
    cols (N, C*mult, oT, oH, oW)."""
    check_arrays(kernel, named)
    if (vol.ndim != 5 or w.ndim != 5 or cols.ndim != 5 or w.shape[1] != 1 or vol.shape[1] == 0
            or w.shape[0] % vol.shape[1] or cols.shape[:2] != (vol.shape[0], w.shape[0])):
        raise ValueError(f"{kernel}: expected the volume (N, C, T, H, W), the weight (C*mult, 1, kT, "
                         f"kH, kW) and the output side (N, C*mult, oT, oH, oW), got shapes "
                         f"{tuple(vol.shape)}, {tuple(w.shape)} and {tuple(cols.shape)}")


def check_depthwise_fwd(x, w, y):
    check_depthwise('depthwise_fwd', [('x', x), ('w', w), ('y', y)], x, w, y)


def check_depthwise_bwd_input(gy, w, gx):
    check_depthwise('depthwise_bwd_input', [('gy', gy), ('w', w), ('gx', gx)], gx, w, gy)


def check_depthwise_bwd_weight(x, gy, gw):
    check_depthwise('depthwise_bwd_weight', [('x', x), ('gy', gy), ('gw', gw)], x, gw, gy)


# ---- winograd ------------------------------------------------------------------------------------

def tile_grid(out_shape):
    """(nT, nH, nW): 2x2x2 output tiles covering `out_shape` (the last ones partial when odd)."""
    return tuple((o + 1) // 2 for o in out_shape)


def check_band(kernel, name, a, n, c, n_w, row0, n_rows):
    """a (64, c, n * rows * nW) with its tile rows [row0, row0 + rows) inside the grid's n_rows."""
    per = n * n_w
    if (a.ndim != 3 or a.shape[0] != 64 or a.shape[1] != c or per <= 0 or a.shape[2] % per
            or row0 < 0 or row0 + a.shape[2] // per > n_rows):
        raise ValueError(f"{kernel}: {name} of shape {tuple(a.shape)} does not fit: expected "
                         f"(64, {c}, rows*{per}) for {n} samples of {c} channels and {n_w} tiles "
                         f"a row, with rows [{row0}, {row0} + rows) inside the {n_rows} tile rows")
    return a.shape[2] // per


def check_volume(kernel, name, a):
    if a.ndim != 5:
        raise ValueError(f"{kernel}: expected {name} as (n, C, T, H, W), got shape {tuple(a.shape)}")


def check_filters(kernel, w, u):
    if (w.ndim != 5 or w.shape[2:] != (3, 3, 3) or u.ndim != 3
            or u.shape != (64,) + tuple(w.shape[:2])):
        raise ValueError(f"{kernel}: expected the weight (C_out, C_in, 3, 3, 3) and its transform "
                         f"(64, C_out, C_in), got shapes {tuple(w.shape)} and {tuple(u.shape)}")


def check_input_transform(x, padding, tiles, row0, v):
    check_arrays('input_transform', [('x', x), ('v', v)])
    check_volume('input_transform', 'x', x)
    if min(padding) < 0:
        raise ValueError(f"input_transform: padding {tuple(padding)} must be >= 0")
    check_band('input_transform', 'v', v, x.shape[0], x.shape[1], tiles[2], row0,
               tiles[0] * tiles[1])


def check_filter_transform(w, u):
    check_arrays('filter_transform', [('w', w), ('u', u)])
    check_filters('filter_transform', w, u)


def check_output_transform(m, b, row0, y):
    """b is None or (C_out,); an empty array stands for None in the dtype check."""
    bias = m[:0, 0, 0] if b is None else b
    check_arrays('output_transform', [('m', m), ('b', bias), ('y', y)])
    check_volume('output_transform', 'y', y)
    n_t, n_h, n_w = tile_grid(y.shape[2:])
    check_band('output_transform', 'm', m, y.shape[0], y.shape[1], n_w, row0, n_t * n_h)
    if b is not None and b.shape != (y.shape[1],):
        raise ValueError(f"output_transform: b has shape {tuple(b.shape)}, expected ({y.shape[1]},)")


def check_output_transform_adjoint(gy, row0, gm):
    check_arrays('output_transform_adjoint', [('gy', gy), ('gm', gm)])
    check_volume('output_transform_adjoint', 'gy', gy)
    n_t, n_h, n_w = tile_grid(gy.shape[2:])
    check_band('output_transform_adjoint', 'gm', gm, gy.shape[0], gy.shape[1], n_w, row0,
               n_t * n_h)


def check_filter_transform_adjoint(gu, gw):
    check_arrays('filter_transform_adjoint', [('gu', gu), ('gw', gw)])
    check_filters('filter_transform_adjoint', gw, gu)


# ---- pool ----------------------------------------------------------------------------------------

def check_float(kernel, name, a, dtype=None, ndim=None):
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected float32 or float64")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected {dtype} like the input")
    check_layout(kernel, name, a, ndim)


def check_layout(kernel, name, a, ndim):
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected {ndim} dims")
    if not a.flags.c_contiguous:
        raise ValueError(f"{kernel}: {name} (shape {tuple(a.shape)}) is not C-contiguous")


def check_shape(kernel, name, a, shape):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected {tuple(shape)}")


def check_table(kernel, name, t, shape, dtype, limit=None):
    """A host (NumPy) table of this shape; int tables hold positions in [0, limit]."""
    if not isinstance(t, np.ndarray):
        raise TypeError(f"{kernel}: {name} must be a NumPy array (a small host table), "
                        f"got {type(t).__name__}")
    if t.dtype != dtype:
        raise TypeError(f"{kernel}: {name} has dtype {t.dtype}, expected {np.dtype(dtype)}")
    check_shape(kernel, name, t, shape)
    check_layout(kernel, name, t, None)
    # the kernels do not bounds-check their reads: a table pointing outside the input would read
    # (or write) memory that is not the tensor's
    if limit is not None and t.size and (t.min() < 0 or t.max() > limit):
        raise ValueError(f"{kernel}: {name} holds positions in [{t.min()}, {t.max()}], outside "
                         f"the input's [0, {limit}]")


def check_pool(kernel, x, windows, dilation_or_divisors, outs, out_names, x_name='x'):
    """x: (B, D, H, W) input planes; windows: 3 int64 (O_a, 2) tables; then either 3 dilations
    (ints) or 3 divisor tables (x.dtype, (O_a,)); outs: arrays of shape (B, O_d, O_h, O_w)."""
    check_float(kernel, x_name, x, ndim=4)
    if len(windows) != 3:
        raise ValueError(f"{kernel}: expected 3 window tables (one per axis of D, H, W), "
                         f"got {len(windows)}")
    out_shape = (x.shape[0],) + tuple(len(w) for w in windows)
    for a, (w, n) in enumerate(zip(windows, x.shape[1:])):
        check_table(kernel, f'windows[{a}]', w, (len(w), 2), np.int64, limit=n)
    extra = dilation_or_divisors
    if len(extra) != 3:
        raise ValueError(f"{kernel}: expected 3 dilations or divisor tables, got {len(extra)}")
    for a, e in enumerate(extra):
        if isinstance(e, np.ndarray):
            check_table(kernel, f'divisors[{a}]', e, (out_shape[1 + a],), x.dtype)
        elif int(e) < 1:
            raise ValueError(f"{kernel}: dilation[{a}] is {e}, expected >= 1")
    for name, o in zip(out_names, outs):
        if name == 'indices':
            if o.dtype != np.int64:
                raise TypeError(f"{kernel}: indices has dtype {o.dtype}, expected int64")
            check_layout(kernel, name, o, 4)
        else:
            check_float(kernel, name, o, dtype=x.dtype, ndim=4)
        check_shape(kernel, name, o, out_shape)


def check_max_pool_bwd(gy, indices, gx):
    """gy, indices (B, M) float and int64; gx (B, N) of gy's dtype."""
    check_float('max_pool_bwd', 'gy', gy, ndim=2)
    check_float('max_pool_bwd', 'gx', gx, dtype=gy.dtype, ndim=2)
    if indices.dtype != np.int64:
        raise TypeError(f"max_pool_bwd: indices has dtype {indices.dtype}, expected int64")
    check_layout('max_pool_bwd', 'indices', indices, 2)
    check_shape('max_pool_bwd', 'indices', indices, gy.shape)
    if gx.shape[0] != gy.shape[0]:
        raise ValueError(f"max_pool_bwd: gx has {gx.shape[0]} planes, gy has {gy.shape[0]}")


def check_resample(kernel, x, index, weight, y, x_name='x', y_name='y'):
    """x: (P, I, Q), y: (P, O, Q); index int64 (O, 2) in [0, I); weight (O, 2) of x's dtype."""
    check_float(kernel, x_name, x, ndim=3)
    check_float(kernel, y_name, y, dtype=x.dtype, ndim=3)
    if y.shape[0] != x.shape[0] or y.shape[2] != x.shape[2]:
        raise ValueError(f"{kernel}: {x_name} has shape {tuple(x.shape)} and {y_name} "
                         f"{tuple(y.shape)}; they must agree in dims 0 and 2")
    check_table(kernel, 'index', index, (y.shape[1], 2), np.int64, limit=x.shape[1] - 1)
    check_table(kernel, 'weight', weight, (y.shape[1], 2), x.dtype)


def output_ranges(starts, stops, n_in):
    """For input position i, the outputs [lo, hi) whose window [start, stop) holds i.  Windows move
    monotonically (starts and stops both nondecreasing), so those outputs are contiguous."""
    i = np.arange(n_in)
    lo = np.searchsorted(stops, i, side='right')      # first output whose window ends after i
    hi = np.searchsorted(starts, i, side='right')     # first output whose window starts after i
    return np.ascontiguousarray(np.stack([lo, hi], axis=1).astype(np.int64))


def window_ranges(windows, shape):
    """output_ranges of each axis' window table, for the input extents `shape` (D, H, W)."""
    return [output_ranges(w[:, 0], w[:, 1], n) for w, n in zip(windows, shape)]


def resample_ranges(index, n_in):
    """For input position i, the outputs [lo, hi) that read i as index[o, 0] or index[o, 1]."""
    return output_ranges(index[:, 0], index[:, 1] + 1, n_in)


# ---- norm ----------------------------------------------------------------------------------------

def check_x(kernel, x, ndim):
    """x must have `ndim` dims and at least one value (empty inputs take the NumPy path)."""
    if x.ndim != ndim or x.size == 0:
        raise ValueError(f"{kernel}: x must be a non-empty {ndim}-D array, got shape "
                         f"{tuple(x.shape)}")


def check_batch_norm_stats(x, mean, var, rstd):
    check_x('batch_norm_stats', x, 3)
    C = x.shape[1]
    check_arrays('batch_norm_stats', [('x', x, x.shape), ('mean', mean, (C,)), ('var', var, (C,)),
                                      ('rstd', rstd, (C,))])


def check_batch_norm_apply(x, mean, scale, shift, y):
    check_x('batch_norm_apply', x, 3)
    C = x.shape[1]
    check_arrays('batch_norm_apply', [('x', x, x.shape), ('mean', mean, (C,)),
                                      ('scale', scale, (C,)), ('shift', shift, (C,)),
                                      ('y', y, x.shape)])


def check_batch_norm_grad_sums(x, dy, mean, rstd, sum_dy, sum_dy_xhat):
    check_x('batch_norm_grad_sums', x, 3)
    C = x.shape[1]
    check_arrays('batch_norm_grad_sums', [('x', x, x.shape), ('dy', dy, x.shape),
                                          ('mean', mean, (C,)), ('rstd', rstd, (C,)),
                                          ('sum_dy', sum_dy, (C,)),
                                          ('sum_dy_xhat', sum_dy_xhat, (C,))])


def check_batch_norm_input_grad(x, dy, mean, rstd, weight, sum_dy, sum_dy_xhat, dx):
    check_x('batch_norm_input_grad', x, 3)
    C = x.shape[1]
    check_arrays('batch_norm_input_grad', [('x', x, x.shape), ('dy', dy, x.shape),
                                           ('mean', mean, (C,)), ('rstd', rstd, (C,)),
                                           ('weight', weight, (C,)), ('sum_dy', sum_dy, (C,)),
                                           ('sum_dy_xhat', sum_dy_xhat, (C,)), ('dx', dx, x.shape)])


def check_layer_norm_fwd(x, weight, bias, y, mean, var, rstd):
    check_x('layer_norm_fwd', x, 2)
    R, D = x.shape
    check_arrays('layer_norm_fwd', [('x', x, x.shape), ('weight', weight, (D,)),
                                    ('bias', bias, (D,)), ('y', y, x.shape), ('mean', mean, (R,)),
                                    ('var', var, (R,)), ('rstd', rstd, (R,))])


def check_layer_norm_bwd(x, dy, mean, rstd, weight, dx, dweight, dbias):
    check_x('layer_norm_bwd', x, 2)
    R, D = x.shape
    check_arrays('layer_norm_bwd', [('x', x, x.shape), ('dy', dy, x.shape), ('mean', mean, (R,)),
                                    ('rstd', rstd, (R,)), ('weight', weight, (D,)),
                                    ('dx', dx, x.shape), ('dweight', dweight, (D,)),
                                    ('dbias', dbias, (D,))])


def combine_stats(xp, part, shift, count, eps, mean, var, rstd):
    """mean, biased var and rstd per channel from the shifted sums of each (n, c) slab,
    part[n, c] = (sum(x - shift[c]), sum((x - shift[c])^2))."""
    s = part.sum(axis=0) / count                    # (C, 2): mean of (x - k), of (x - k)^2
    v = xp.maximum(s[:, 1] - s[:, 0] ** 2, 0.0)     # rounding can take a constant channel below 0
    mean[...] = shift + s[:, 0]
    var[...] = v
    rstd[...] = 1.0 / xp.sqrt(v + eps)


def combine_grad_sums(part, rstd, sum_dy, sum_dy_xhat):
    """sum_dy and sum_dy_xhat per channel from part[n, c] = (sum(dy), sum(dy (x - mean)))."""
    s = part.sum(axis=0)
    sum_dy[...] = s[:, 0]
    sum_dy_xhat[...] = s[:, 1] * rstd


# ---- recurrent -----------------------------------------------------------------------------------

def check_valid(kernel, valid, N):
    """valid: a C-contiguous bool array (N,)."""
    if valid.dtype.name != 'bool' or tuple(valid.shape) != (N,) or not valid.flags.c_contiguous:
        raise ValueError(f"{kernel}: valid must be a C-contiguous bool array of shape ({N},), got "
                         f"dtype {valid.dtype}, shape {tuple(valid.shape)}")


def gate_sizes(kernel, gates, n_gates):
    """(N, H) from gates (N, n_gates * H)."""
    if gates.ndim != 2 or gates.shape[1] % n_gates:
        raise ValueError(f"{kernel}: gates must be (N, {n_gates}H), got shape {tuple(gates.shape)}")
    return gates.shape[0], gates.shape[1] // n_gates


def check_lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    """(N, H) of one LSTM step's arrays, after checking them."""
    N, H = gate_sizes('lstm_fwd', x_gates, 4)
    check_arrays('lstm_fwd', [('x_gates', x_gates, (N, 4 * H)), ('h_gates', h_gates, (N, 4 * H)),
                              ('h_prev', h_prev, (N, H)), ('c_prev', c_prev, (N, H)),
                              ('act', act, (N, 4 * H)), ('h', h, (N, H)), ('c', c, (N, H)),
                              ('tanh_c', tanh_c, (N, H))])
    check_valid('lstm_fwd', valid, N)
    return N, H


def check_lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates):
    N, H = gate_sizes('lstm_bwd', act, 4)
    check_arrays('lstm_bwd', [('dy', dy, (N, H)), ('dh_rec', dh_rec, (N, H)),
                              ('act', act, (N, 4 * H)), ('tanh_c', tanh_c, (N, H)),
                              ('c_prev', c_prev, (N, H)), ('dh', dh, (N, H)), ('dc', dc, (N, H)),
                              ('dgates', dgates, (N, 4 * H))])
    check_valid('lstm_bwd', valid, N)
    return N, H


def check_gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    N, H = gate_sizes('gru_fwd', x_gates, 3)
    check_arrays('gru_fwd', [('x_gates', x_gates, (N, 3 * H)), ('h_gates', h_gates, (N, 3 * H)),
                             ('b_hn', b_hn, (H,)), ('h_prev', h_prev, (N, H)),
                             ('act', act, (N, 3 * H)), ('hn', hn, (N, H)), ('h', h, (N, H))])
    check_valid('gru_fwd', valid, N)
    return N, H


def check_gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h):
    N, H = gate_sizes('gru_bwd', act, 3)
    check_arrays('gru_bwd', [('dy', dy, (N, H)), ('dh_rec', dh_rec, (N, H)),
                             ('act', act, (N, 3 * H)), ('hn', hn, (N, H)),
                             ('h_prev', h_prev, (N, H)), ('dh', dh, (N, H)),
                             ('dgates_x', dgates_x, (N, 3 * H)),
                             ('dgates_h', dgates_h, (N, 3 * H))])
    check_valid('gru_bwd', valid, N)
    return N, H


# ---- attention -----------------------------------------------------------------------------------

def check_mask(kernel, mask, mask_index, B, L, S, dtype):
    """mask (Bm, Lm, Sm) with Lm in (1, L), Sm in (1, S), of the scores' dtype; mask_index (B,)
    int64 with values in [0, Bm) (not checked value by value: the caller builds it)."""
    if mask.ndim != 3 or mask.shape[1] not in (1, L) or mask.shape[2] not in (1, S):
        raise ValueError(f"{kernel}: mask has shape {tuple(mask.shape)}, expected (Bm, 1 or {L}, "
                         f"1 or {S})")
    check_arrays(kernel, [('mask', mask, mask.shape)], dtype)
    if mask_index.dtype != np.int64 or mask_index.shape != (B,) \
            or not mask_index.flags.c_contiguous:
        raise ValueError(f"{kernel}: mask_index must be a contiguous int64 array of shape ({B},), "
                         f"got {mask_index.dtype} {tuple(mask_index.shape)}")


def check_scores(kernel, name, a):
    if a.ndim != 3:
        raise ValueError(f"{kernel}: {name} must be 3-D (B, L, S), got shape {tuple(a.shape)}")


def check_softmax_fwd(scores, mask, mask_index, probs):
    check_scores('softmax_fwd', 'scores', scores)
    B, L, S = scores.shape
    check_arrays('softmax_fwd', [('scores', scores, scores.shape), ('probs', probs, scores.shape)])
    check_mask('softmax_fwd', mask, mask_index, B, L, S, scores.dtype)


def check_softmax_bwd(probs, grad_probs, grad_scores):
    check_scores('softmax_bwd', 'probs', probs)
    check_arrays('softmax_bwd', [('probs', probs, probs.shape),
                                 ('grad_probs', grad_probs, probs.shape),
                                 ('grad_scores', grad_scores, probs.shape)])


def check_block(kernel, named_block, rows):
    """The first (name, array) is a 2-D block; the others (name, array, shape) as check_arrays."""
    name, block = named_block
    if block.ndim != 2:
        raise ValueError(f"{kernel}: {name} must be a 2-D (rows, keys) block, got shape "
                         f"{tuple(block.shape)}")
    check_arrays(kernel, [(name, block, block.shape)] + rows)


def check_online_softmax_block(s, m, l, alpha):
    R = s.shape[0] if s.ndim == 2 else -1
    check_block('online_softmax_block', ('s', s),
                [('m', m, (R,)), ('l', l, (R,)), ('alpha', alpha, (R,))])


def check_shifted_exp_rows(s, shift):
    R = s.shape[0] if s.ndim == 2 else -1
    check_block('shifted_exp_rows', ('s', s), [('shift', shift, (R,))])


def check_softmax_grad_block(p, dp, d):
    R = p.shape[0] if p.ndim == 2 else -1
    check_block('softmax_grad_block', ('p', p), [('dp', dp, p.shape), ('d', d, (R,))])


# ---- flow ----------------------------------------------------------------------------------------

# Stage outputs in channel order, named as the module docstring of tensorlite/data/flow.py:
# coeffs = (b_x, b_y, a_xx, a_yy, a_xy) of f(x + u, y + v) ~ c + b_x u + b_y v + a_xx u^2 +
# a_yy v^2 + a_xy u v;  matrices = (G_xx, G_xy, G_yy, h_x, h_y) of the normal equations G d = h.
COEFFS = 5
MATRICES = 5


def check_planar(kernel, name, a, shape=None, channels=None):
    """`a` is C-contiguous float32, 3-D (C, H, W) (of `shape`, or with `channels` channels);
    else a TypeError/ValueError naming the kernel and the argument."""
    if a.dtype != np.float32:
        raise TypeError(f"{kernel}: {name} has dtype {a.dtype}, expected float32")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if shape is None and a.ndim != 3:
        raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected (C, H, W)")
    if channels is not None and a.shape[0] != channels:
        raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected "
                         f"({channels}, H, W)")
    if not a.flags.c_contiguous:
        raise ValueError(f"{kernel}: {name} (shape {tuple(a.shape)}) is not C-contiguous")
    if a.size == 0:
        raise ValueError(f"{kernel}: {name} is empty (shape {tuple(a.shape)})")


def check_poly_expansion(image, coeffs):
    if image.ndim != 2:
        raise ValueError(f"poly_expansion: image has shape {tuple(image.shape)}, expected (H, W)")
    check_planar('poly_expansion', 'image', image[None])
    check_planar('poly_expansion', 'coeffs', coeffs, (COEFFS,) + image.shape)


def check_separable_blur(src, taps, dst):
    """taps: a 1-D float32 array of odd length (a centred, symmetric-width filter)."""
    check_planar('separable_blur', 'src', src)
    if taps.dtype != np.float32 or taps.ndim != 1 or taps.shape[0] % 2 == 0:
        raise ValueError(f"separable_blur: taps must be a 1-D float32 array of odd length, got "
                         f"dtype {taps.dtype} and shape {tuple(taps.shape)}")
    if not taps.flags.c_contiguous:
        raise ValueError(f"separable_blur: taps (shape {tuple(taps.shape)}) is not C-contiguous")
    check_planar('separable_blur', 'dst', dst, src.shape)


def check_resize_bilinear(src, dst):
    check_planar('resize_bilinear', 'src', src)
    check_planar('resize_bilinear', 'dst', dst, channels=src.shape[0])


def check_update_matrices(coeffs0, coeffs1, flow, matrices):
    check_planar('update_matrices', 'coeffs0', coeffs0, channels=COEFFS)
    shape = coeffs0.shape
    check_planar('update_matrices', 'coeffs1', coeffs1, shape)
    check_planar('update_matrices', 'flow', flow, (2,) + shape[1:])
    check_planar('update_matrices', 'matrices', matrices, (MATRICES,) + shape[1:])


def check_solve_flow(matrices, reg, reg_prior, flow):
    check_planar('solve_flow', 'matrices', matrices, channels=MATRICES)
    check_planar('solve_flow', 'flow', flow, (2,) + matrices.shape[1:])
    if not (reg >= 0 and reg_prior >= 0):
        raise ValueError(f"solve_flow: reg and reg_prior must be >= 0, got {reg!r} and "
                         f"{reg_prior!r}")


@functools.lru_cache(maxsize=16)
def poly_expansion_filters(n, sigma):
    """The 1-D filters and constants of a polynomial expansion over a (2n+1)^2 window with
    Gaussian applicability g(t) = exp(-t^2 / (2 sigma^2)):

    taps (3, 2n+1) float32: g(t), t g(t), t^2 g(t) for t = -n..n (correlated along each axis);
    consts (5,) float32: 1 / (m0 m2) (for b_x, b_y), 1 / m2^2 (for a_xy), and the row of the
    inverse Gram matrix of the basis {1, x^2, y^2} that gives a_xx from (<1,f>, <x^2,f>, <y^2,f>),
    with m_k = sum_t t^k g(t) -- see tensorlite/data/flow.py for the derivation.
    """
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"poly_expansion: n must be an int >= 1 (window 2n+1), got {n!r}")
    if not sigma > 0:
        raise ValueError(f"poly_expansion: sigma must be > 0, got {sigma!r}")
    t = np.arange(-n, n + 1, dtype=np.float64)
    g = np.exp(-t * t / (2.0 * sigma * sigma))
    g /= g.sum()
    m0, m2, m4 = g.sum(), (t ** 2 * g).sum(), (t ** 4 * g).sum()
    # Gram matrix of {1, x^2, y^2} under the separable weight g(x) g(y)
    gram = np.array([[m0 * m0, m0 * m2, m0 * m2],
                     [m0 * m2, m0 * m4, m2 * m2],
                     [m0 * m2, m2 * m2, m0 * m4]])
    inv = np.linalg.inv(gram)
    taps = np.stack([g, t * g, t * t * g]).astype(np.float32)
    consts = np.array([1.0 / (m0 * m2), 1.0 / (m2 * m2), inv[1, 0], inv[1, 1], inv[1, 2]],
                      dtype=np.float32)
    return taps, consts


# ---- optim ---------------------------------------------------------------------------------------

def check_like(kernel, named):
    """`named` is [(name, array or None)], the parameter first: every array (None is skipped) of
    the parameter's shape, C-contiguous, of its float dtype; else a ValueError/TypeError naming
    the kernel and the argument."""
    named = [(name, a) for name, a in named if a is not None]
    p_name, p = named[0]
    # the common case in cheap tests; the full check only to name a fault
    dtype, shape = p.dtype, p.shape
    if dtype in FLOAT_DTYPES:
        for _, a in named:
            if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
                break
        else:
            return
    for name, a in named[1:]:
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"{kernel}: {name} has shape {tuple(a.shape)}, expected {p_name}'s "
                             f"shape {tuple(shape)}")
    check_arrays(kernel, named, same_size=True)


def check_sgd_step(p, g, buf, momentum):
    """True when the step uses the momentum buffer `buf` (momentum != 0)."""
    use_momentum = momentum != 0
    if use_momentum and buf is None:
        raise ValueError(f"sgd_step: momentum={momentum} needs a momentum buffer, got None")
    check_like('sgd_step', [('p', p), ('g', g), ('buf', buf if use_momentum else None)])
    return use_momentum


def check_adam_step(p, g, m, v, vmax, amsgrad):
    if amsgrad and vmax is None:
        raise ValueError("adam_step: amsgrad=True needs a vmax array, got None")
    check_like('adam_step', [('p', p), ('g', g), ('m', m), ('v', v),
                             ('vmax', vmax if amsgrad else None)])


def flat_or_stand_in(a, p):
    """`a` flattened; or, when `a` is None (a state the step does not use: SGD's buffer without
    momentum, vmax without amsgrad), an empty array of p's dtype that the kernel never indexes.
    Not p itself: a launch on host arrays (the CUDA simulator's, or a GPU's) copies each argument
    to the device and back, and the stand-in's unchanged copy would overwrite p's update."""
    return p.reshape(-1)[:0] if a is None else a.reshape(-1)


@functools.lru_cache(maxsize=64)
def sgd_scalars(dtype, lr, momentum, dampening, weight_decay):
    """The SGD hyperparameters as scalars of `dtype`: lr, momentum, 1 - dampening, weight_decay.
    (Cached: every parameter of a group asks for the same ones, 0.9 us to make, 0.2 us to find.)"""
    c = dtype.type
    return c(lr), c(momentum), c(1 - dampening), c(weight_decay)


@functools.lru_cache(maxsize=64)
def adam_scalars(dtype, step, lr, beta1, beta2, eps, weight_decay):
    """The Adam scalars of step `step` (1, 2, ...) as scalars of `dtype`: beta1, 1 - beta1, beta2,
    1 - beta2, lr / (1 - beta1**step), sqrt(1 - beta2**step), eps, weight_decay,
    1 - lr * weight_decay.  (Cached, as sgd_scalars.)"""
    if step < 1:
        raise ValueError(f"adam: step must be 1 or more (the count after this step), got {step}")
    c = dtype.type
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    return (c(beta1), c(1 - beta1), c(beta2), c(1 - beta2), c(lr / bias_correction1),
            c(bias_correction2_sqrt), c(eps), c(weight_decay), c(1 - lr * weight_decay))

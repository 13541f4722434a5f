"""Scalar maths that the CPU and CUDA twins share, written once.

The functions here are plain Python, written for Numba.  Each twin takes them compiled for its
target, `for_cpu(name, ...)` as @njit(inline='always') functions and `for_cuda(name, ...)` as
@cuda.jit(device=True, inline=True) ones (under the CUDA simulator, the Python itself), each
calling the other functions of this module compiled for the same target.  A function computes one
element (one pixel, one hidden unit, one parameter value) with the types its arguments bring:
where the twins compute in different precisions, the caller passes the type (`f`), so the
arithmetic is written once and each twin keeps its own; where they compute a function differently
(tanh: by exp on the CPU, the device's own on a GPU), PER_TARGET gives the name each target's
version.

Builtin min and max of scalars do not compile for Numba 0.68's CUDA target (the simulator runs
Python's, so only tensorlite gpu-report sees it): `minimum`, `maximum` and `clamp` return what
Python's would.

Numba caches a kernel by its own file: after changing a function here, delete the cached kernels
(tensorlite/kernels/*/__pycache__/*.nbi, *.nbc) so that they are compiled again.
"""
import math
import types

import numba

SHARED = []             # the names of the functions both targets compile
_compiled = {}          # target -> {name: compiled function}

# Functions the targets compute differently: the name the shared maths calls, and each target's
# own version of it (see the recurrent steps).
PER_TARGET = {'sigmoid': {'cpu': 'sigmoid_by_exp', 'cuda': 'sigmoid_by_tanh'},
              'tanh': {'cpu': 'tanh_by_exp', 'cuda': 'tanh_by_tanh'}}


def shared(fn):
    """Mark `fn` as compiled for both targets."""
    SHARED.append(fn.__name__)
    return fn


def _for(target, names):
    if target not in _compiled:
        if target == 'cpu':
            jit = numba.njit(inline='always')
        else:
            from numba import cuda
            jit = cuda.jit(device=True, inline=True)
        # one namespace per target: a function calls the others' versions for its own target
        namespace = dict(globals())
        for name in SHARED:
            fn = globals()[name]
            namespace[name] = jit(types.FunctionType(fn.__code__, namespace, name, fn.__defaults__,
                                                     fn.__closure__))
        for name, versions in PER_TARGET.items():
            namespace[name] = namespace[versions[target]]
        _compiled[target] = namespace
    return tuple(_compiled[target][name] for name in names)


def for_cpu(*names):
    """The functions `names` compiled for @njit kernels, inlined where they are called."""
    return _for('cpu', names)


def for_cuda(*names):
    """The functions `names` compiled as device functions for @cuda.jit kernels."""
    return _for('cuda', names)


@shared
def minimum(a, b):
    m = a
    if b < a:
        m = b
    return m


@shared
def maximum(a, b):
    m = a
    if b > a:
        m = b
    return m


@shared
def clamp(i, lo, hi):
    """i limited to [lo, hi]: a replicated border's index."""
    return minimum(maximum(i, lo), hi)


# ---- optical flow (kernels/*/flow.py) ------------------------------------------------------------

@shared
def poly_rows_pixel(image, taps, rows, y, x, W, n):
    """rows[k, y, x] = sum_t t^k g(t) image[y, x + t], k = 0, 1, 2 (replicated border)."""
    s0, s1, s2 = numba.float32(0), numba.float32(0), numba.float32(0)
    for k in range(-n, n + 1):
        v = image[y, clamp(x + k, 0, W - 1)]
        s0 += taps[0, k + n] * v
        s1 += taps[1, k + n] * v
        s2 += taps[2, k + n] * v
    rows[0, y, x] = s0
    rows[1, y, x] = s1
    rows[2, y, x] = s2


@shared
def poly_cols_pixel(rows, taps, consts, coeffs, y, x, H, n):
    """The column pass gives the six moments <p, f> of the basis p in {1, x, y, x^2, y^2, xy};
    the dual basis (consts) turns them into the coefficients coeffs[:, y, x]."""
    f1 = fx = fy = fxx = fyy = fxy = numba.float32(0)
    for k in range(-n, n + 1):
        yy = clamp(y + k, 0, H - 1)
        g, tg, ttg = taps[0, k + n], taps[1, k + n], taps[2, k + n]
        r0, r1, r2 = rows[0, yy, x], rows[1, yy, x], rows[2, yy, x]
        f1 += g * r0
        fx += g * r1
        fxx += g * r2
        fy += tg * r0
        fxy += tg * r1
        fyy += ttg * r0
    coeffs[0, y, x] = fx * consts[0]
    coeffs[1, y, x] = fy * consts[0]
    coeffs[2, y, x] = consts[2] * f1 + consts[3] * fxx + consts[4] * fyy
    coeffs[3, y, x] = consts[2] * f1 + consts[4] * fxx + consts[3] * fyy
    coeffs[4, y, x] = fxy * consts[1]


@shared
def border_weight(y, x, H, W, border):
    """The expansion near the image border sees replicated pixels: its coefficients are trusted
    less, down to 1/(border + 1) at the edge (float32)."""
    d = minimum(minimum(y, H - 1 - y), minimum(x, W - 1 - x))
    if d >= border:
        return numba.float32(1)
    return numba.float32(d + 1) / numba.float32(border + 1)


@shared
def cubic_weight(i, t):
    """Catmull-Rom (Keys, a = -1/2) weight of tap i = 0..3 at offsets -1, 0, 1, 2 from floor(p),
    t = p - floor(p), in t's type: exact on cubics' samples up to second order, where bilinear
    interpolation's smoothing biases sub-pixel displacements (0.01 px at (0.3, -0.7))."""
    f = type(t)
    if i == 0:
        return ((-t + f(2)) * t - f(1)) * t * f(0.5)
    if i == 1:
        return ((f(3) * t - f(5)) * t * t + f(2)) * f(0.5)
    if i == 2:
        return ((f(-3) * t + f(4)) * t + f(1)) * t * f(0.5)
    return (t - f(1)) * t * t * f(0.5)


@shared
def normal_equations_pixel(coeffs0, coeffs1, flow, border, matrices, y, x, H, W, f):
    """matrices[:, y, x] of kernels' update_matrices, computed in type `f` (the CPU twin's
    float64, the CUDA twin's float32: float64 is slow on most GPUs)."""
    dx, dy = flow[0, y, x], flow[1, y, x]
    fx, fy = f(x) + dx, f(y) + dy
    w = border_weight(y, x, H, W, border)
    # a point that left the image has no second expansion to compare with: it drops out of the
    # sums (the window fills it in from its neighbours)
    if not (fx >= f(0) and fy >= f(0) and fx <= f(W - 1) and fy <= f(H - 1)):
        for k in range(5):
            matrices[k, y, x] = 0
        return
    # the second frame's expansion at the displaced point, by bicubic interpolation
    ix, iy = int(fx), int(fy)
    tx, ty = fx - f(ix), fy - f(iy)
    c1 = c2 = c3 = c4 = c5 = f(0)
    for i in range(4):
        yi = clamp(iy - 1 + i, 0, H - 1)
        wy = cubic_weight(i, ty)
        for j in range(4):
            xj = clamp(ix - 1 + j, 0, W - 1)
            wij = wy * cubic_weight(j, tx)
            c1 += wij * coeffs1[0, yi, xj]
            c2 += wij * coeffs1[1, yi, xj]
            c3 += wij * coeffs1[2, yi, xj]
            c4 += wij * coeffs1[3, yi, xj]
            c5 += wij * coeffs1[4, yi, xj]
    # A = (A1 + A2) / 2 as [[axx, axy], [axy, ayy]] and r = A d~ - (b2 - b1) / 2: the whole
    # displacement is solved for, not an increment to d~, so that the window average smooths d~
    # too and no per-pixel error accumulates over the iterations
    axx = (coeffs0[2, y, x] + c3) * f(0.5)
    ayy = (coeffs0[3, y, x] + c4) * f(0.5)
    axy = (coeffs0[4, y, x] + c5) * f(0.25)
    rx = w * ((coeffs0[0, y, x] - c1) * f(0.5) + axx * dx + axy * dy)
    ry = w * ((coeffs0[1, y, x] - c2) * f(0.5) + axy * dx + ayy * dy)
    axx *= w
    ayy *= w
    axy *= w
    matrices[0, y, x] = axx * axx + axy * axy
    matrices[1, y, x] = axy * (axx + ayy)
    matrices[2, y, x] = axy * axy + ayy * ayy
    matrices[3, y, x] = axx * rx + axy * ry
    matrices[4, y, x] = axy * rx + ayy * ry


@shared
def solve_flow_pixel(matrices, reg, reg_prior, flow, y, x):
    """flow[:, y, x] <- (G + (reg + reg_prior) I)^{-1} (h + reg_prior flow) where G is regular."""
    gxx = matrices[0, y, x] + reg + reg_prior
    gxy = matrices[1, y, x]
    gyy = matrices[2, y, x] + reg + reg_prior
    hx = matrices[3, y, x] + reg_prior * flow[0, y, x]
    hy = matrices[4, y, x] + reg_prior * flow[1, y, x]
    det = gxx * gyy - gxy * gxy
    if det > 0:
        flow[0, y, x] = (gyy * hx - gxy * hy) / det
        flow[1, y, x] = (gxx * hy - gxy * hx) / det


# ---- resampling (kernels/*/pool.py) --------------------------------------------------------------

@shared
def resample_weight(index, weight, o, i, zero):
    """The weight with which output o of a resampling reads input position i (0 if it does not)."""
    c = zero
    if index[o, 0] == i:
        c += weight[o, 0]
    if index[o, 1] == i:
        c += weight[o, 1]
    return c


# ---- optimizer updates (kernels/*/optim.py) ------------------------------------------------------

@shared
def sgd_value(p, g, buf, i, lr, momentum, one_minus_dampening, weight_decay, use_momentum,
              nesterov, maximize, first):
    """One SGD step of value i of p (and of the momentum buffer)."""
    d = g[i]
    if maximize:
        d = -d
    if weight_decay != 0:
        d = d + weight_decay * p[i]
    if use_momentum:
        b = d
        if not first:
            b = buf[i] * momentum + one_minus_dampening * d
        buf[i] = b
        if nesterov:
            d = d + momentum * b
        else:
            d = b
    p[i] = p[i] - lr * d


@shared
def adam_moments(g, w, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay,
                 decoupled, maximize):
    """One value's (p, m, v) after the weight decay and the moment updates."""
    d = g
    if maximize:
        d = -d
    if weight_decay != 0:
        if decoupled:
            w = w * decay                              # AdamW: p (1 - lr wd), outside the moments
        else:
            d = d + weight_decay * w
    return w, m * beta1 + one_minus_beta1 * d, v * beta2 + one_minus_beta2 * (d * d)


@shared
def nan_max(top, v):
    """np.maximum(top, v): a NaN on either side wins."""
    if v > top or v != v:
        top = v
    return top


@shared
def adam_value(p, g, m, v, vmax, i, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
               bias_correction2_sqrt, eps, weight_decay, decay, decoupled, amsgrad, maximize):
    """One Adam/AdamW step of value i of p (and of its moments m, v and, with amsgrad, vmax)."""
    w, mi, vi = adam_moments(g[i], p[i], m[i], v[i], beta1, one_minus_beta1, beta2,
                             one_minus_beta2, weight_decay, decay, decoupled, maximize)
    m[i] = mi
    v[i] = vi
    if amsgrad:
        vi = nan_max(vmax[i], vi)
        vmax[i] = vi
    p[i] = w - step_size * mi / (math.sqrt(vi) / bias_correction2_sqrt + eps)


# ---- recurrent steps (kernels/*/recurrent.py) ----------------------------------------------------
# The nonlinearities are the targets' own: by exp on the CPU, where Numba's math.tanh is a libm
# call five times slower (kernels/cpu/recurrent.py), by the device's fast math.tanh on a GPU.
# `one` and `two` are 1 and 2 in the arrays' dtype (a float64 literal would promote float32).

@shared
def sigmoid_by_exp(x, one, two):
    return one / (one + math.exp(-x))


@shared
def tanh_by_exp(x, one, two):
    return one - two / (math.exp(two * x) + one)


@shared
def sigmoid_by_tanh(x, one, two):
    half = type(x)(0.5)
    return half * math.tanh(half * x) + half


@shared
def tanh_by_tanh(x, one, two):
    return math.tanh(x)


# Uncompiled, the shared maths calls the CPU's versions; each target's compile binds its own
# (PER_TARGET).
sigmoid, tanh = sigmoid_by_exp, tanh_by_exp


@shared
def lstm_fwd_unit(x_gates, h_gates, c_prev, act, h, c, tanh_c, n, j, H, one, two):
    """One valid (sample n, hidden unit j) of an LSTM step (docs/recurrent.md)."""
    # read all four pre-activations before writing: act may be x_gates itself
    zi = x_gates[n, j] + h_gates[n, j]
    zf = x_gates[n, H + j] + h_gates[n, H + j]
    zg = x_gates[n, 2 * H + j] + h_gates[n, 2 * H + j]
    zo = x_gates[n, 3 * H + j] + h_gates[n, 3 * H + j]
    i = sigmoid(zi, one, two)
    f = sigmoid(zf, one, two)
    g = tanh(zg, one, two)
    o = sigmoid(zo, one, two)
    cn = f * c_prev[n, j] + i * g
    tc = tanh(cn, one, two)
    act[n, j] = i
    act[n, H + j] = f
    act[n, 2 * H + j] = g
    act[n, 3 * H + j] = o
    c[n, j] = cn
    tanh_c[n, j] = tc
    h[n, j] = o * tc


@shared
def gru_fwd_unit(x_gates, h_gates, b_hn, h_prev, act, hn, h, n, j, H, one, two):
    """One valid (sample n, hidden unit j) of a GRU step (docs/recurrent.md)."""
    zr = x_gates[n, j] + h_gates[n, j]
    zz = x_gates[n, H + j] + h_gates[n, H + j]
    a = h_gates[n, 2 * H + j] + b_hn[j]      # W_hn h + b_hn: r scales it as a whole
    r = sigmoid(zr, one, two)
    z = sigmoid(zz, one, two)
    nn = tanh(x_gates[n, 2 * H + j] + r * a, one, two)
    act[n, j] = r
    act[n, H + j] = z
    act[n, 2 * H + j] = nn
    hn[n, j] = a
    h[n, j] = nn + z * (h_prev[n, j] - nn)          # (1 - z) n + z h_prev


@shared
def lstm_bwd_unit(dy, dh_rec, act, tanh_c, c_prev, dh, dc, dgates, n, j, H, one):
    """Backward of one valid (sample n, hidden unit j) of an LSTM step (docs/recurrent.md)."""
    i = act[n, j]
    f = act[n, H + j]
    g = act[n, 2 * H + j]
    o = act[n, 3 * H + j]
    tc = tanh_c[n, j]
    gh = dy[n, j] + dh_rec[n, j] + dh[n, j]          # dL/dh_t, all three routes
    gc = dc[n, j] + gh * o * (one - tc * tc)          # dL/dc_t
    dgates[n, j] = gc * g * i * (one - i)
    dgates[n, H + j] = gc * c_prev[n, j] * f * (one - f)
    dgates[n, 2 * H + j] = gc * i * (one - g * g)
    dgates[n, 3 * H + j] = gh * tc * o * (one - o)
    dc[n, j] = gc * f
    dh[n, j] = 0        # h_{t-1} reaches the loss only through the gates: the caller's GEMM


@shared
def gru_bwd_unit(dy, dh_rec, act, hn, h_prev, dh, dgates_x, dgates_h, n, j, H, one):
    """Backward of one valid (sample n, hidden unit j) of a GRU step (docs/recurrent.md)."""
    r = act[n, j]
    z = act[n, H + j]
    nn = act[n, 2 * H + j]
    gh = dy[n, j] + dh_rec[n, j] + dh[n, j]
    dzn = gh * (one - z) * (one - nn * nn)           # dL/d(pre-activation of n)
    dr = dzn * hn[n, j] * r * (one - r)
    dz = gh * (h_prev[n, j] - nn) * z * (one - z)
    dgates_x[n, j] = dr
    dgates_x[n, H + j] = dz
    dgates_x[n, 2 * H + j] = dzn
    dgates_h[n, j] = dr
    dgates_h[n, H + j] = dz
    dgates_h[n, 2 * H + j] = dzn * r                 # W_hn h + b_hn enters n scaled by r
    dh[n, j] = gh * z                                # the direct route h' = ... + z h

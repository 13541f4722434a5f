"""Optical-flow kernels (CPU): the per-pixel stages of Farnebäck's dense flow
(tensorlite/data/flow.py holds the algorithm and its equations).

Layout: every multi-channel image is planar, `(C, H, W)` float32 -- a polynomial expansion is
`(5, H, W)`, a flow `(2, H, W)` with channel 0 = dx and 1 = dy -- so a row of one channel is
contiguous and the inner loops run along it.  Pixels outside the image read the nearest border
pixel (replicate), as OpenCV's Farnebäck does.

Stages, one kernel each (the CUDA twins in kernels/cuda/flow.py have the same names and
signatures):

    poly_expansion(image, n, sigma, coeffs)          image (H, W) -> coeffs (5, H, W)
    separable_blur(src, taps, dst)                   (C, H, W), taps (K,) odd -> (C, H, W)
    resize_bilinear(src, value_scale, dst)           (C, H, W) -> (C, h, w), values * value_scale
    update_matrices(coeffs0, coeffs1, flow, border, matrices)        -> matrices (5, H, W)
    solve_flow(matrices, reg, reg_prior, flow)       flow (2, H, W) updated in place

The kernels are serial (one thread).  Flow is computed in the data pipeline, where the parallelism
is one frame pair per loader worker process.  Measured on this 2-core machine while other processes
ran (before the row pass was vectorized): a 112x112 pair took 11-14 ms on one thread and 130-330 ms
with prange over 2 threads, whose OpenMP workers wait for a core the other processes hold.
"""
import functools

import numba
import numpy as np


# Stage outputs in channel order, named as the module docstring of tensorlite/data/flow.py:
# coeffs = (b_x, b_y, a_xx, a_yy, a_xy) of f(x + u, y + v) ~ c + b_x u + b_y v + a_xx u^2 +
# a_yy v^2 + a_xy u v;  matrices = (G_xx, G_xy, G_yy, h_x, h_y) of the normal equations G d = h.
COEFFS = 5
MATRICES = 5


# ---- launch checks and host tables, shared with the CUDA twins ----------------------------------

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


def check_taps(kernel, taps):
    """taps: a 1-D float32 array of odd length (a centred, symmetric-width filter)."""
    if taps.dtype != np.float32 or taps.ndim != 1 or taps.shape[0] % 2 == 0:
        raise ValueError(f"{kernel}: taps must be a 1-D float32 array of odd length, got dtype "
                         f"{taps.dtype} and shape {tuple(taps.shape)}")
    if not taps.flags.c_contiguous:
        raise ValueError(f"{kernel}: taps (shape {tuple(taps.shape)}) is not C-contiguous")


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


# ---- polynomial expansion ------------------------------------------------------------------------

@numba.njit(cache=True)
def _poly_rows(image, taps, rows):
    # rows[k, y, x] = sum_t t^k g(t) image[y, x + t], k = 0, 1, 2 (replicated border)
    H, W = image.shape
    n = (taps.shape[1] - 1) // 2
    for y in range(H):
        for x in range(W):
            s0, s1, s2 = numba.float32(0), numba.float32(0), numba.float32(0)
            for k in range(-n, n + 1):
                v = image[y, min(max(x + k, 0), W - 1)]
                s0 += taps[0, k + n] * v
                s1 += taps[1, k + n] * v
                s2 += taps[2, k + n] * v
            rows[0, y, x] = s0
            rows[1, y, x] = s1
            rows[2, y, x] = s2


@numba.njit(cache=True)
def _poly_cols(rows, taps, consts, coeffs):
    # the column pass gives the six moments <p, f> of the basis p in {1, x, y, x^2, y^2, xy};
    # the dual basis (consts) turns them into the coefficients
    _, H, W = rows.shape
    n = (taps.shape[1] - 1) // 2
    for y in range(H):
        for x in range(W):
            f1 = fx = fy = fxx = fyy = fxy = numba.float32(0)
            for k in range(-n, n + 1):
                yy = min(max(y + k, 0), H - 1)
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


def poly_expansion(image, n, sigma, coeffs):
    """coeffs (5, H, W) = (b_x, b_y, a_xx, a_yy, a_xy): the weighted least-squares fit of
    f(x + u, y + v) ~ c + b_x u + b_y v + a_xx u^2 + a_yy v^2 + a_xy u v to image (H, W) float32
    over a (2n+1)^2 window with Gaussian applicability of std `sigma`."""
    if image.ndim != 2:
        raise ValueError(f"poly_expansion: image has shape {tuple(image.shape)}, expected (H, W)")
    check_planar('poly_expansion', 'image', image[None])
    check_planar('poly_expansion', 'coeffs', coeffs, (COEFFS,) + image.shape)
    taps, consts = poly_expansion_filters(int(n), float(sigma))
    rows = np.empty((3,) + image.shape, np.float32)
    _poly_rows(image, taps, rows)
    _poly_cols(rows, taps, consts, coeffs)


# ---- separable smoothing -------------------------------------------------------------------------

@numba.njit(cache=True)
def _blur_rows(src, taps, dst):
    # one tap at a time over the whole row (x + k inside the row, then the clamped ends): the
    # inner loops are unit-stride and branch-free, so they vectorize
    C, H, W = src.shape
    n = (taps.shape[0] - 1) // 2
    for cy in range(C * H):
        c, y = cy // H, cy % H
        for x in range(W):
            dst[c, y, x] = 0
        for k in range(-n, n + 1):
            w = taps[k + n]
            lo, hi = min(max(-k, 0), W), max(min(W - k, W), 0)
            if hi > lo:
                # views that start at 0: an index from range(m) is provably >= 0, so Numba's
                # negative-index wraparound check (which blocks vectorization) disappears
                out, inp = dst[c, y, lo:hi], src[c, y, lo + k:hi + k]
                for i in range(hi - lo):
                    out[i] += w * inp[i]
            for x in range(lo):
                dst[c, y, x] += w * src[c, y, 0]
            for x in range(max(hi, lo), W):
                dst[c, y, x] += w * src[c, y, W - 1]


@numba.njit(cache=True)
def _blur_cols(src, taps, dst):
    # output row y is a weighted sum of whole input rows y + k: contiguous reads, one row at a time
    C, H, W = src.shape
    n = (taps.shape[0] - 1) // 2
    for cy in range(C * H):
        c, y = cy // H, cy % H
        for x in range(W):
            dst[c, y, x] = 0
        for k in range(-n, n + 1):
            yy = min(max(y + k, 0), H - 1)
            w = taps[k + n]
            for x in range(W):
                dst[c, y, x] += w * src[c, yy, x]


def separable_blur(src, taps, dst):
    """dst (C, H, W) = src (C, H, W) correlated with the 1-D `taps` (odd length K) along x, then
    along y, each channel on its own; pixels beyond the border repeat the border."""
    check_planar('separable_blur', 'src', src)
    check_taps('separable_blur', taps)
    check_planar('separable_blur', 'dst', dst, src.shape)
    tmp = np.empty_like(src)
    work = src.size * taps.shape[0]
    _blur_rows(src, taps, tmp)
    _blur_cols(tmp, taps, dst)


# ---- bilinear resampling (pyramid down-sampling, flow up-sampling) -------------------------------

@numba.njit(cache=True)
def _resize_bilinear(src, value_scale, dst):
    # pixel centres are aligned: output (i, j) reads input ((i + .5) H/h - .5, (j + .5) W/w - .5)
    C, H, W = src.shape
    _, h, w = dst.shape
    sy, sx = H / h, W / w
    for ci in range(C * h):
        c, i = ci // h, ci % h
        fy = min(max((i + 0.5) * sy - 0.5, 0.0), H - 1.0)
        y0 = min(int(fy), H - 2) if H > 1 else 0
        ay = fy - y0
        y1 = min(y0 + 1, H - 1)
        for j in range(w):
            fx = min(max((j + 0.5) * sx - 0.5, 0.0), W - 1.0)
            x0 = min(int(fx), W - 2) if W > 1 else 0
            ax = fx - x0
            x1 = min(x0 + 1, W - 1)
            top = (1 - ax) * src[c, y0, x0] + ax * src[c, y0, x1]
            bottom = (1 - ax) * src[c, y1, x0] + ax * src[c, y1, x1]
            dst[c, i, j] = value_scale * ((1 - ay) * top + ay * bottom)


def resize_bilinear(src, value_scale, dst):
    """dst (C, h, w) = value_scale * src (C, H, W) resampled bilinearly, pixel centres aligned
    (corners are not: pixel (i, j) of dst sits at ((i + 1/2) H/h - 1/2, (j + 1/2) W/w - 1/2))."""
    check_planar('resize_bilinear', 'src', src)
    check_planar('resize_bilinear', 'dst', dst, channels=src.shape[0])
    _resize_bilinear(src, np.float32(value_scale), dst)


# ---- the displacement step: normal equations per pixel, and their solution -----------------------

@numba.njit(cache=True, inline='always')
def border_weight(y, x, H, W, border):
    # the expansion near the image border sees replicated pixels: its coefficients are trusted
    # less, down to 1/(border + 1) at the edge
    d = min(min(y, H - 1 - y), min(x, W - 1 - x))
    if d >= border:
        return numba.float32(1)
    return numba.float32((d + 1) / (border + 1))


@numba.njit(cache=True, inline='always')
def cubic_weight(i, t):
    # Catmull-Rom (Keys, a = -1/2) weight of tap i = 0..3 at offsets -1, 0, 1, 2 from floor(p),
    # t = p - floor(p): exact on cubics' samples up to second order, where bilinear
    # interpolation's smoothing biases sub-pixel displacements (0.01 px at (0.3, -0.7))
    if i == 0:
        return ((-t + 2) * t - 1) * t * 0.5
    if i == 1:
        return ((3 * t - 5) * t * t + 2) * 0.5
    if i == 2:
        return ((-3 * t + 4) * t + 1) * t * 0.5
    return (t - 1) * t * t * 0.5


@numba.njit(cache=True)
def _update_matrices(coeffs0, coeffs1, flow, border, matrices):
    _, H, W = coeffs0.shape
    for y in range(H):
        for x in range(W):
            dx, dy = flow[0, y, x], flow[1, y, x]
            fx, fy = x + dx, y + dy
            w = border_weight(y, x, H, W, border)
            # a point that left the image has no second expansion to compare with: it drops
            # out of the sums (the window fills it in from its neighbours)
            if not (fx >= 0 and fy >= 0 and fx <= W - 1 and fy <= H - 1):
                for k in range(MATRICES):
                    matrices[k, y, x] = 0
                continue
            # the second frame's expansion at the displaced point, by bicubic interpolation
            ix, iy = int(fx), int(fy)
            tx, ty = fx - ix, fy - iy
            c1 = c2 = c3 = c4 = c5 = numba.float32(0)
            for i in range(4):
                yi = min(max(iy - 1 + i, 0), H - 1)
                wy = cubic_weight(i, ty)
                for j in range(4):
                    xj = min(max(ix - 1 + j, 0), W - 1)
                    wij = wy * cubic_weight(j, tx)
                    c1 += wij * coeffs1[0, yi, xj]
                    c2 += wij * coeffs1[1, yi, xj]
                    c3 += wij * coeffs1[2, yi, xj]
                    c4 += wij * coeffs1[3, yi, xj]
                    c5 += wij * coeffs1[4, yi, xj]
            # A = (A1 + A2) / 2 as [[axx, axy], [axy, ayy]] and r = A d~ - (b2 - b1) / 2: the
            # whole displacement is solved for, not an increment to d~, so that the window
            # average smooths d~ too and no per-pixel error accumulates over the iterations
            axx = (coeffs0[2, y, x] + c3) * 0.5
            ayy = (coeffs0[3, y, x] + c4) * 0.5
            axy = (coeffs0[4, y, x] + c5) * 0.25
            rx = w * ((coeffs0[0, y, x] - c1) * 0.5 + axx * dx + axy * dy)
            ry = w * ((coeffs0[1, y, x] - c2) * 0.5 + axy * dx + ayy * dy)
            axx *= w
            ayy *= w
            axy *= w
            matrices[0, y, x] = axx * axx + axy * axy
            matrices[1, y, x] = axy * (axx + ayy)
            matrices[2, y, x] = axy * axy + ayy * ayy
            matrices[3, y, x] = axx * rx + axy * ry
            matrices[4, y, x] = axy * rx + ayy * ry


def update_matrices(coeffs0, coeffs1, flow, border, matrices):
    """The per-pixel normal equations of one displacement step: with A = (A1(p) + A2(p + d))/2
    (a 2x2 symmetric matrix from the a coefficients), r = A d - (b2(p + d) - b1(p))/2 (the second
    expansion sampled bicubically at the flow's target) and w the border weight,
    matrices (5, H, W) = (G_xx, G_xy, G_yy, h_x, h_y) of G = w^2 A^T A and h = w^2 A^T r.
    coeffs0, coeffs1 (5, H, W); flow (2, H, W) = (dx, dy); border: width (pixels) of the ramp."""
    check_planar('update_matrices', 'coeffs0', coeffs0, channels=COEFFS)
    shape = coeffs0.shape
    check_planar('update_matrices', 'coeffs1', coeffs1, shape)
    check_planar('update_matrices', 'flow', flow, (2,) + shape[1:])
    check_planar('update_matrices', 'matrices', matrices, (MATRICES,) + shape[1:])
    _update_matrices(coeffs0, coeffs1, flow, int(border), matrices)


@numba.njit(cache=True)
def _solve_flow(matrices, reg, reg_prior, flow):
    _, H, W = matrices.shape
    for y in range(H):
        for x in range(W):
            gxx = matrices[0, y, x] + reg + reg_prior
            gxy = matrices[1, y, x]
            gyy = matrices[2, y, x] + reg + reg_prior
            hx, hy = matrices[3, y, x], matrices[4, y, x]
            hx += reg_prior * flow[0, y, x]
            hy += reg_prior * flow[1, y, x]
            det = gxx * gyy - gxy * gxy
            if det > 0:
                flow[0, y, x] = (gyy * hx - gxy * hy) / det
                flow[1, y, x] = (gxx * hy - gxy * hx) / det


def solve_flow(matrices, reg, reg_prior, flow):
    """flow (2, H, W) <- (G + (reg + reg_prior) I)^{-1} (h + reg_prior flow) per pixel, from
    matrices (5, H, W) = (G_xx, G_xy, G_yy, h_x, h_y) already averaged over the window.  Where G
    is weak (flat or one-dimensional texture) reg >= 0 pulls the flow towards 0 and
    reg_prior >= 0 towards the flow it replaces (the coarser level's); a pixel whose system is
    singular keeps its flow."""
    check_planar('solve_flow', 'matrices', matrices, channels=MATRICES)
    check_planar('solve_flow', 'flow', flow, (2,) + matrices.shape[1:])
    if not (reg >= 0 and reg_prior >= 0):
        raise ValueError(f"solve_flow: reg and reg_prior must be >= 0, got {reg!r} and "
                         f"{reg_prior!r}")
    _solve_flow(matrices, np.float32(reg), np.float32(reg_prior), flow)

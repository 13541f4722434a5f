"""Fused softmax of attention scores (CPU): forward and backward, one pass per row where NumPy
makes several over the whole (B, L, S) score array.

The plain attention path (tensorlite/functional/attention.py) computes the raw scores
s = q k^T with one batched GEMM and hands them here.  Per row (b, i):

    forward     z_j = scale s_j + mask[b, i, j]      (-inf where is_causal and j > i)
                p_j = exp(z_j - max_j z_j) / sum_j exp(z_j - max_j z_j)
    backward    ds_j = p_j (dp_j - sum_k dp_k p_k)   (the gradient with respect to z)

Subtracting the row's max keeps every exponent <= 0, so nothing overflows.  A row whose z are all
-inf (every key masked) has no softmax; it gets p = 0, so the attention output and all gradients of
that row are 0 -- what PyTorch 2.13 returns on CPU.

The additive mask is given as a (Bm, Lm, Sm) array with Lm in (1, L) and Sm in (1, S): a size-1
axis is broadcast without being materialized, and `mask_index[b]` says which of the Bm slices
batch row b uses (the batch broadcasting is resolved by the caller).  A mask with Bm = 0 means no
mask.  Sums are accumulated in float64 whatever the dtype.

The loops are serial on purpose: Numba's parallel loops leave OpenMP workers spinning after they
return, which slows the next OpenBLAS GEMM (and an attention step is GEMM, softmax, GEMM) two to
three times on this two-core machine.  The exponential is `fast_exp` (see _exp32), which
vectorizes where math.exp does not: this llvmlite has no vector math library.
"""
import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._launch import (check_online_softmax_block, check_shifted_exp_rows, check_softmax_bwd,
                       check_softmax_fwd, check_softmax_grad_block)

# Reassociation lets LLVM split the row sums over vector lanes; contraction allows FMAs.  No other
# fast-math flag: NaN and inf must propagate.
REDUCE = {'reassoc', 'contract'}

_f32 = numba.float32


@numba.njit(cache=True, inline='always', fastmath=REDUCE)
def _exp32(x):
    """exp(x) in float32 for x <= 0 (softmax exponents are shifted below 0), within 2 ulp.

    Cephes' expf: x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2, exp(r) by a degree-7
    polynomial, times 2^n built in the exponent bits.  Every step is a plain arithmetic or bit
    operation, so a loop calling it runs on 8-wide AVX vectors (benchmarks/bench_exp.py: 2.5x
    faster than np.exp and 5x faster than math.exp, a scalar libm call).  n is rounded by truncating
    x / ln2 - 0.5, exact for x <= 0 (and for the tiny positive x rounding can produce).  Below
    -87, where 2^n leaves float32's normal range, the result is 0 (e^-87 ~ 1.6e-38); -inf gives
    0 and NaN stays NaN."""
    xc = max(x, _f32(-87.0))
    ni = np.int32(xc * _f32(1.4426950408889634) - _f32(0.5))
    n = _f32(ni)
    r = xc - n * _f32(0.693359375) - n * _f32(-2.12194440e-4)   # ln 2 in two parts: exact n ln2_hi
    p = _f32(1.9875691500e-4)
    p = p * r + _f32(1.3981999507e-3)
    p = p * r + _f32(8.3334519073e-3)
    p = p * r + _f32(4.1665795894e-2)
    p = p * r + _f32(1.6666665459e-1)
    p = p * r + _f32(5.0000001201e-1)
    p = p * r * r + r + _f32(1.0)
    y = p * np.int32((ni + np.int32(127)) << np.int32(23)).view(np.float32)
    return y if x >= _f32(-87.0) else (_f32(0.0) if x < _f32(-87.0) else x)


def fast_exp(x):
    """exp(x) for x <= 0 inside Numba kernels: _exp32 for float32, math.exp for float64 (whose
    gradient checks want every digit; speed does not matter there)."""
    return math.exp(x)


@overload(fast_exp)
def _fast_exp_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: _exp32(x)
    return lambda x: math.exp(x)


def typed(a, value):
    """`value` in the dtype of array `a` (inside kernels: keeps float32 loops in float32)."""
    return a.dtype.type(value)


@overload(typed)
def _typed_overload(a, value):
    dt = a.dtype
    return lambda a, value: dt(value)


@numba.njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_rows_fwd(scores, mask, mask_index, scale, causal, probs):
    B, L, S = scores.shape
    has_mask = mask.shape[0] > 0
    row_bcast = mask.shape[1] == 1
    col_bcast = mask.shape[2] == 1
    z = np.empty(S, scores.dtype)           # one row of logits: stays in L1
    for b in range(B):
        mb = mask_index[b] if has_mask else 0
        for i in range(L):
            end = min(i + 1, S) if causal else S
            mi = 0 if row_bcast else i
            for j in range(end):
                z[j] = scale * scores[b, i, j]
            if has_mask:
                for j in range(end):
                    z[j] += mask[mb, mi, 0 if col_bcast else j]
            mx = typed(z, -np.inf)
            for j in range(end):
                mx = max(mx, z[j])
            if mx == -np.inf:               # every key masked: no softmax, the row is 0
                for j in range(S):
                    probs[b, i, j] = 0.0
                continue
            total = 0.0                     # float64
            for j in range(end):
                e = fast_exp(z[j] - mx)
                z[j] = e
                total += e
            r = 1.0 / total
            for j in range(end):
                probs[b, i, j] = z[j] * r
            for j in range(end, S):
                probs[b, i, j] = 0.0


@numba.njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_rows_bwd(probs, grad_probs, grad_scores):
    B, L, S = probs.shape
    for b in range(B):
        for i in range(L):
            d = 0.0
            for j in range(S):
                d += grad_probs[b, i, j] * probs[b, i, j]
            for j in range(S):
                grad_scores[b, i, j] = probs[b, i, j] * (grad_probs[b, i, j] - d)


# ---- the blockwise path: one (rows, keys) score block at a time ----------------------------------

# A max reduction vectorizes only when LLVM may ignore NaN ordering ('nnan'); the flag stays on
# this function's instructions.  A NaN logit is not lost: the exponentials below propagate it.
@numba.njit(cache=True, inline='always', fastmath={'nnan', 'nsz', 'reassoc'})
def row_max(s, i, start, stop, initial):
    """max(initial, s[i, start:stop])."""
    mx = initial
    for j in range(start, stop):
        mx = max(mx, s[i, j])
    return mx


@numba.njit(cache=True, nogil=True, fastmath=REDUCE)
def _online_softmax_block(s, m, l, alpha):
    R, C = s.shape
    for i in range(R):
        mx = row_max(s, i, 0, C, m[i])
        # a row with no key seen yet keeps m = -inf; shifting by 0 then gives exp(-inf) = 0
        shift = mx if mx != -np.inf else typed(s, 0.0)
        a = fast_exp(m[i] - shift)
        t = typed(s, 0.0)       # in s's dtype: a float32 sum over <= a block's keys vectorizes
        for j in range(C):
            e = fast_exp(s[i, j] - shift)
            s[i, j] = e
            t += e
        l[i] = l[i] * a + t
        alpha[i] = a
        m[i] = mx


@numba.njit(cache=True, nogil=True, fastmath=REDUCE)
def _shifted_exp_rows(s, shift):
    R, C = s.shape
    for i in range(R):
        k = shift[i]
        for j in range(C):
            s[i, j] = fast_exp(s[i, j] - k)


@numba.njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_grad_block(p, dp, d):
    R, C = p.shape
    for i in range(R):
        k = d[i]
        for j in range(C):
            dp[i, j] = p[i, j] * (dp[i, j] - k)


def softmax_fwd(scores, mask, mask_index, scale, causal, probs):
    """probs[b, i] = softmax_j(scale * scores[b, i, j] + mask[mask_index[b], i, j]) over a
    (B, L, S) array, with j > i masked out when `causal`; rows with every key masked are 0.
    mask (Bm, 1 or L, 1 or S) additive, Bm = 0 for none; probs may be scores itself."""
    check_softmax_fwd(scores, mask, mask_index, probs)
    _softmax_rows_fwd(scores, mask, mask_index, scores.dtype.type(scale), bool(causal), probs)


def softmax_bwd(probs, grad_probs, grad_scores):
    """grad_scores = probs * (grad_probs - rowsum(grad_probs * probs)) over (B, L, S): the
    gradient with respect to the softmax's logits.  grad_scores may be grad_probs itself."""
    check_softmax_bwd(probs, grad_probs, grad_scores)
    _softmax_rows_bwd(probs, grad_probs, grad_scores)


def online_softmax_block(s, m, l, alpha):
    """One step of the online softmax over a (R, C) block of logits s, for R rows whose running
    max m (R,) and running sum l (R,) cover the keys seen so far:

        m_new = max(m, max_j s[:, j]);  alpha = exp(m - m_new)
        s <- exp(s - m_new);  l <- l * alpha + rowsum(s);  m <- m_new

    in place; the caller rescales its accumulated output by alpha.  Rows still without a key
    (m_new = -inf) keep s = 0, l = 0."""
    check_online_softmax_block(s, m, l, alpha)
    _online_softmax_block(s, m, l, alpha)


def shifted_exp_rows(s, shift):
    """s[i, j] <- exp(s[i, j] - shift[i]) in place over a (R, C) block: the probabilities P from
    recomputed logits and each row's logsumexp (shift = +inf gives a row of 0)."""
    check_shifted_exp_rows(s, shift)
    _shifted_exp_rows(s, shift)


def softmax_grad_block(p, dp, d):
    """dp <- p * (dp - d[:, None]) in place over a (R, C) block: the logits' gradient dS, with
    d = rowsum(dO * out), which equals rowsum(dP * P) over the whole row."""
    check_softmax_grad_block(p, dp, d)
    _softmax_grad_block(p, dp, d)

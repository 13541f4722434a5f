"""Fused attention softmax kernels (CUDA twins of kernels/cpu/attention.py: same names, same
signatures, same checks in kernels/_launch.py).

Each row belongs to one thread: the threads take rows in a grid-stride loop (a thread may do
several rows, _grid.grid caps the grid) and a row of scores is read and written by a single
thread, as the CPU twin's inner loops do, so the two compute the same sums in the same order.
Rows are many (B * L for the plain path, a tile's rows for the blockwise one) and short enough for
this to keep a GPU busy; a block-per-row version with shared-memory reductions, as
kernels/cuda/norm.py has, is the next step if profiles on a device ask for it.  math.exp here is
the device's exp.
"""
import math

from numba import cuda

from .._launch import (check_online_softmax_block, check_shifted_exp_rows, check_softmax_bwd,
                       check_softmax_fwd, check_softmax_grad_block)
from . import _grid


@cuda.jit(cache=True)
def _softmax_rows_fwd(scores, mask, mask_index, scale, causal, probs):
    B, L, S = scores.shape
    has_mask = mask.shape[0] > 0
    col_bcast = mask.shape[2] == 1
    row_bcast = mask.shape[1] == 1
    f = scores.dtype.type           # constants in the scores' dtype: a Python float is float64
    zero, neg_inf, scale_t = f(0.0), f(-math.inf), f(scale)
    for row in range(cuda.grid(1), B * L, cuda.gridsize(1)):
        b, i = row // L, row % L
        mb = mask_index[b] if has_mask else 0
        mi = 0 if row_bcast else i
        end = (i + 1 if i + 1 < S else S) if causal else S     # no builtin min: see docs/gpu.md
        mx = neg_inf
        for j in range(end):                    # pass 1: logits into probs, their max
            z = scale_t * scores[b, i, j]
            if has_mask:
                z += mask[mb, mi, 0 if col_bcast else j]
            probs[b, i, j] = z
            if z > mx:
                mx = z
        if mx == neg_inf:                       # every key masked: no softmax, the row is 0
            for j in range(S):
                probs[b, i, j] = zero
            continue
        total = 0.0                             # float64, as on the CPU (F64_REASONS)
        for j in range(end):
            e = math.exp(probs[b, i, j] - mx)
            probs[b, i, j] = e
            total += e
        r = f(1.0 / total)
        for j in range(end):
            probs[b, i, j] *= r
        for j in range(end, S):
            probs[b, i, j] = zero


@cuda.jit(cache=True)
def _softmax_rows_bwd(probs, grad_probs, grad_scores):
    B, L, S = probs.shape
    for row in range(cuda.grid(1), B * L, cuda.gridsize(1)):
        b, i = row // L, row % L
        d = 0.0                                 # float64, as on the CPU (F64_REASONS)
        for j in range(S):
            d += grad_probs[b, i, j] * probs[b, i, j]
        d = probs.dtype.type(d)
        for j in range(S):
            grad_scores[b, i, j] = probs[b, i, j] * (grad_probs[b, i, j] - d)


@cuda.jit(cache=True)
def _online_softmax_block(s, m, l, alpha):
    R, C = s.shape
    zero = s.dtype.type(0.0)        # in s's dtype, as on the CPU: a Python float is float64
    for i in range(cuda.grid(1), R, cuda.gridsize(1)):
        mx = m[i]
        for j in range(C):
            if s[i, j] > mx:                    # no builtin max: see docs/gpu.md
                mx = s[i, j]
        shift = mx if mx != -math.inf else zero
        a = math.exp(m[i] - shift)
        t = zero
        for j in range(C):
            e = math.exp(s[i, j] - shift)
            s[i, j] = e
            t += e
        l[i] = l[i] * a + t
        alpha[i] = a
        m[i] = mx


@cuda.jit(cache=True)
def _shifted_exp_rows(s, shift):
    R, C = s.shape
    for i in range(cuda.grid(1), R, cuda.gridsize(1)):
        k = shift[i]
        for j in range(C):
            s[i, j] = math.exp(s[i, j] - k)


@cuda.jit(cache=True)
def _softmax_grad_block(p, dp, d):
    R, C = p.shape
    for i in range(cuda.grid(1), R, cuda.gridsize(1)):
        k = d[i]
        for j in range(C):
            dp[i, j] = p[i, j] * (dp[i, j] - k)


def softmax_fwd(scores, mask, mask_index, scale, causal, probs):
    check_softmax_fwd(scores, mask, mask_index, probs)
    _softmax_rows_fwd[_grid.grid(scores.shape[0] * scores.shape[1])](
        scores, mask, mask_index, float(scale), bool(causal), probs)


def softmax_bwd(probs, grad_probs, grad_scores):
    check_softmax_bwd(probs, grad_probs, grad_scores)
    _softmax_rows_bwd[_grid.grid(probs.shape[0] * probs.shape[1])](probs, grad_probs, grad_scores)


def online_softmax_block(s, m, l, alpha):
    check_online_softmax_block(s, m, l, alpha)
    _online_softmax_block[_grid.grid(s.shape[0])](s, m, l, alpha)


def shifted_exp_rows(s, shift):
    check_shifted_exp_rows(s, shift)
    _shifted_exp_rows[_grid.grid(s.shape[0])](s, shift)


def softmax_grad_block(p, dp, d):
    check_softmax_grad_block(p, dp, d)
    _softmax_grad_block[_grid.grid(p.shape[0])](p, dp, d)

"""Fused LSTM and GRU kernels for one time step (CPU).

A recurrent layer spends its time in matrix products: one GEMM per step for the recurrent
projection h_prev @ W_hh^T, and in backward one per step for the gradient that flows to h_prev.
What remains between two GEMMs is pointwise -- the gate nonlinearities and the cell update in
forward, their derivatives in backward -- and NumPy would make a dozen passes over the (N, 4H)
gates for it, each allocating a temporary.  Each kernel here makes one pass.  The equations are
written out in docs/recurrent.md; the comments below say only why a loop is as it is.

Layouts (PyTorch's): gates are (N, 4H) in the order i, f, g, o for the LSTM and (N, 3H) in the
order r, z, n for the GRU; states are (N, H).  `valid` (N,) bool says which samples take this
step: a padded step (valid[n] False, t >= lengths[n]) passes the state through unchanged, and in
backward passes the state gradient through and gives the gates no gradient.

Why serial loops (no prange): these kernels run between two GEMMs, every step.  A parallel Numba
region leaves OpenMP worker threads spinning after it returns, and they slow the next OpenBLAS
GEMM two to three times on this 2-core machine -- far more than the few hundred microseconds a
step's pointwise work takes on one core.

Why exp and not tanh: Numba compiles math.tanh to a scalar libm call about five times slower
than math.exp (float32; benchmarks/bench_exp.py), so sigmoid(x) = 1 / (1 + exp(-x)) and
tanh(x) = 1 - 2 / (exp(2x) + 1).  Both are safe at the extremes: exp overflows to inf and the
quotient goes to 0, giving exactly 0, 1 or -1, never NaN.  The constants are passed in the array's
dtype so that float32 stays float32 (a float64 literal would promote every operation).
"""
import numba

from .._launch import check_gru_bwd, check_gru_fwd, check_lstm_bwd, check_lstm_fwd
from .._scalar import for_cpu

gru_bwd_unit, gru_fwd_unit, lstm_bwd_unit, lstm_fwd_unit = for_cpu(
    'gru_bwd_unit', 'gru_fwd_unit', 'lstm_bwd_unit', 'lstm_fwd_unit')


# ---- LSTM ----------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c, one, two):
    N, H = h.shape
    for n in range(N):
        if not valid[n]:
            for j in range(H):
                h[n, j] = h_prev[n, j]
                c[n, j] = c_prev[n, j]
            continue
        for j in range(H):
            lstm_fwd_unit(x_gates, h_gates, c_prev, act, h, c, tanh_c, n, j, H, one, two)


@numba.njit(cache=True)
def _lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates, one):
    N, H = dh.shape
    for n in range(N):
        if not valid[n]:
            # h_t = h_{t-1}, c_t = c_{t-1}: both gradients go straight through; the output was a
            # constant zero, so dy is dropped
            for j in range(H):
                dh[n, j] += dh_rec[n, j]
            for k in range(4 * H):
                dgates[n, k] = 0
            continue
        for j in range(H):
            lstm_bwd_unit(dy, dh_rec, act, tanh_c, c_prev, dh, dc, dgates, n, j, H, one)


def lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    """One LSTM step.  With z = x_gates + h_gates (N, 4H) the pre-activations (x_gates holding the
    input projection and both biases, h_gates = h_prev @ W_hh^T), for samples with valid[n]:

        i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);   g = tanh(z_g)
        c = f * c_prev + i * g;   tanh_c = tanh(c);   h = o * tanh_c

    and act = [i, f, g, o] (N, 4H), what backward needs with tanh_c and c_prev.  For padded
    samples h = h_prev, c = c_prev and act, tanh_c are left as they were.  act may be x_gates
    itself (overwritten in place).  h_prev, c_prev, h, c, tanh_c: (N, H); valid: bool (N,)."""
    check_lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c)
    t = x_gates.dtype.type
    _lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c, t(1), t(2))


def lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates):
    """Backward of one LSTM step.  The gradient of the loss with respect to h_t arrives by three
    routes: dy (N, H), the step's output; dh_rec (N, H) = dgates_{t+1} @ W_hh, through the next
    step's gates; and dh (N, H), what earlier padded steps passed through.  dc (N, H) holds
    dL/dc_t.  For valid samples, with gh their sum and gc = dc + gh * o * (1 - tanh_c^2):

        dgates = [gc g i(1-i),  gc c_prev f(1-f),  gc i (1-g^2),  gh tanh_c o(1-o)]   (N, 4H)
        dc <- gc * f          (dL/dc_{t-1})
        dh <- 0               (the rest of dL/dh_{t-1} is dgates @ W_hh, the caller's GEMM)

    For padded samples dgates = 0, dc is unchanged and dh += dh_rec (dy is dropped: the output
    of a padded step is a constant zero).  dh and dc are updated in place."""
    check_lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates)
    _lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates, act.dtype.type(1))


# ---- GRU -----------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h, one, two):
    N, H = h.shape
    for n in range(N):
        if not valid[n]:
            for j in range(H):
                h[n, j] = h_prev[n, j]
            continue
        for j in range(H):
            gru_fwd_unit(x_gates, h_gates, b_hn, h_prev, act, hn, h, n, j, H, one, two)


@numba.njit(cache=True)
def _gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h, one):
    N, H = dh.shape
    for n in range(N):
        if not valid[n]:
            for j in range(H):
                dh[n, j] += dh_rec[n, j]
            for k in range(3 * H):
                dgates_x[n, k] = 0
                dgates_h[n, k] = 0
            continue
        for j in range(H):
            gru_bwd_unit(dy, dh_rec, act, hn, h_prev, dh, dgates_x, dgates_h, n, j, H, one)


def gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    """One GRU step (PyTorch's).  x_gates (N, 3H) = x W_ih^T + b_ih + [b_hr, b_hz, 0],
    h_gates (N, 3H) = h_prev W_hh^T (no bias), b_hn (H,).  For samples with valid[n]:

        r = sigmoid(x_r + h_r),  z = sigmoid(x_z + h_z),  a = h_n + b_hn
        n = tanh(x_n + r * a),   h = (1 - z) * n + z * h_prev

    and act = [r, z, n] (N, 3H), hn = a (N, H): backward needs a apart because r multiplies it.
    For padded samples h = h_prev.  act may be x_gates itself.  h_prev, hn, h: (N, H)."""
    check_gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h)
    t = x_gates.dtype.type
    _gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h, t(1), t(2))


def gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h):
    """Backward of one GRU step.  dL/dh_t arrives as dy + dh_rec + dh (as in lstm_bwd).  For valid
    samples, with gh their sum and dn = gh (1 - z)(1 - n^2) the gradient of n's pre-activation:

        dgates_x = [dn a r(1-r),  gh (h_prev - n) z(1-z),  dn]        for W_ih, b_ih and x
        dgates_h = [dn a r(1-r),  gh (h_prev - n) z(1-z),  dn r]      for W_hh, b_hh and h_prev
        dh <- gh * z          (the direct route; the caller adds dgates_h @ W_hh)

    For padded samples both dgates are 0 and dh += dh_rec.  dh is updated in place."""
    check_gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h)
    _gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h, act.dtype.type(1))

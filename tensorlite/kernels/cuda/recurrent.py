"""Fused LSTM and GRU kernels for one time step (CUDA twins of kernels/cpu/recurrent.py: same
names, same signatures, same equations -- see the CPU module and docs/recurrent.md).

Each (sample, hidden unit) belongs to one thread, which takes them in a grid-stride loop over the
N * H units: it reads that unit's four (LSTM) or three (GRU) gates, so the in-place act = x_gates
is safe here too.  math.tanh is a fast device function on a GPU, so the nonlinearities are
written directly (sigmoid(x) = 0.5 tanh(x / 2) + 0.5, no overflow).
"""
import math

from numba import cuda

from ..cpu.recurrent import check_arrays, check_valid, gate_sizes
from . import _grid


@cuda.jit(device=True)
def _sigmoid(x):
    half = type(x)(0.5)             # in x's dtype: a Python float would make float32 float64
    return half * math.tanh(half * x) + half


@cuda.jit(cache=True)
def _lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    N, H = h.shape
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            h[n, j] = h_prev[n, j]
            c[n, j] = c_prev[n, j]
            continue
        i = _sigmoid(x_gates[n, j] + h_gates[n, j])
        f = _sigmoid(x_gates[n, H + j] + h_gates[n, H + j])
        g = math.tanh(x_gates[n, 2 * H + j] + h_gates[n, 2 * H + j])
        o = _sigmoid(x_gates[n, 3 * H + j] + h_gates[n, 3 * H + j])
        cn = f * c_prev[n, j] + i * g
        tc = math.tanh(cn)
        act[n, j] = i
        act[n, H + j] = f
        act[n, 2 * H + j] = g
        act[n, 3 * H + j] = o
        c[n, j] = cn
        tanh_c[n, j] = tc
        h[n, j] = o * tc


@cuda.jit(cache=True)
def _lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates):
    N, H = dh.shape
    one = act.dtype.type(1)         # an int 1 with a float32 would compute in float64
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            dh[n, j] += dh_rec[n, j]
            for k in range(4):
                dgates[n, k * H + j] = 0
            continue
        i = act[n, j]
        f = act[n, H + j]
        g = act[n, 2 * H + j]
        o = act[n, 3 * H + j]
        tc = tanh_c[n, j]
        gh = dy[n, j] + dh_rec[n, j] + dh[n, j]
        gc = dc[n, j] + gh * o * (one - tc * tc)
        dgates[n, j] = gc * g * i * (one - i)
        dgates[n, H + j] = gc * c_prev[n, j] * f * (one - f)
        dgates[n, 2 * H + j] = gc * i * (one - g * g)
        dgates[n, 3 * H + j] = gh * tc * o * (one - o)
        dc[n, j] = gc * f
        dh[n, j] = 0


@cuda.jit(cache=True)
def _gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    N, H = h.shape
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            h[n, j] = h_prev[n, j]
            continue
        r = _sigmoid(x_gates[n, j] + h_gates[n, j])
        z = _sigmoid(x_gates[n, H + j] + h_gates[n, H + j])
        a = h_gates[n, 2 * H + j] + b_hn[j]
        nn = math.tanh(x_gates[n, 2 * H + j] + r * a)
        act[n, j] = r
        act[n, H + j] = z
        act[n, 2 * H + j] = nn
        hn[n, j] = a
        h[n, j] = nn + z * (h_prev[n, j] - nn)


@cuda.jit(cache=True)
def _gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h):
    N, H = dh.shape
    one = act.dtype.type(1)         # an int 1 with a float32 would compute in float64
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            dh[n, j] += dh_rec[n, j]
            for k in range(3):
                dgates_x[n, k * H + j] = 0
                dgates_h[n, k * H + j] = 0
            continue
        r = act[n, j]
        z = act[n, H + j]
        nn = act[n, 2 * H + j]
        gh = dy[n, j] + dh_rec[n, j] + dh[n, j]
        dzn = gh * (one - z) * (one - nn * nn)
        dr = dzn * hn[n, j] * r * (one - r)
        dz = gh * (h_prev[n, j] - nn) * z * (one - z)
        dgates_x[n, j] = dr
        dgates_x[n, H + j] = dz
        dgates_x[n, 2 * H + j] = dzn
        dgates_h[n, j] = dr
        dgates_h[n, H + j] = dz
        dgates_h[n, 2 * H + j] = dzn * r
        dh[n, j] = gh * z


def lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    N, H = gate_sizes('lstm_fwd', x_gates, 4)
    check_arrays('lstm_fwd', [('x_gates', x_gates, (N, 4 * H)), ('h_gates', h_gates, (N, 4 * H)),
                              ('h_prev', h_prev, (N, H)), ('c_prev', c_prev, (N, H)),
                              ('act', act, (N, 4 * H)), ('h', h, (N, H)), ('c', c, (N, H)),
                              ('tanh_c', tanh_c, (N, H))])
    check_valid('lstm_fwd', valid, N)
    if N * H:
        _lstm_fwd[_grid.grid(N * H)](x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c)


def lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates):
    N, H = gate_sizes('lstm_bwd', act, 4)
    check_arrays('lstm_bwd', [('dy', dy, (N, H)), ('dh_rec', dh_rec, (N, H)),
                              ('act', act, (N, 4 * H)), ('tanh_c', tanh_c, (N, H)),
                              ('c_prev', c_prev, (N, H)), ('dh', dh, (N, H)), ('dc', dc, (N, H)),
                              ('dgates', dgates, (N, 4 * H))])
    check_valid('lstm_bwd', valid, N)
    if N * H:
        _lstm_bwd[_grid.grid(N * H)](dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates)


def gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    N, H = gate_sizes('gru_fwd', x_gates, 3)
    check_arrays('gru_fwd', [('x_gates', x_gates, (N, 3 * H)), ('h_gates', h_gates, (N, 3 * H)),
                             ('b_hn', b_hn, (H,)), ('h_prev', h_prev, (N, H)),
                             ('act', act, (N, 3 * H)), ('hn', hn, (N, H)), ('h', h, (N, H))])
    check_valid('gru_fwd', valid, N)
    if N * H:
        _gru_fwd[_grid.grid(N * H)](x_gates, h_gates, b_hn, h_prev, valid, act, hn, h)


def gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h):
    N, H = gate_sizes('gru_bwd', act, 3)
    check_arrays('gru_bwd', [('dy', dy, (N, H)), ('dh_rec', dh_rec, (N, H)),
                             ('act', act, (N, 3 * H)), ('hn', hn, (N, H)),
                             ('h_prev', h_prev, (N, H)), ('dh', dh, (N, H)),
                             ('dgates_x', dgates_x, (N, 3 * H)),
                             ('dgates_h', dgates_h, (N, 3 * H))])
    check_valid('gru_bwd', valid, N)
    if N * H:
        _gru_bwd[_grid.grid(N * H)](dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h)

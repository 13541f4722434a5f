"""Fused LSTM and GRU kernels for one time step (CUDA twins of kernels/cpu/recurrent.py: same
names, same signatures, same equations -- see the CPU module and docs/recurrent.md).

Each (sample, hidden unit) belongs to one thread, which takes them in a grid-stride loop over the
N * H units: it reads that unit's four (LSTM) or three (GRU) gates, so the in-place act = x_gates
is safe here too.  A unit's maths is the CPU twin's (kernels/_scalar.py), with the device's
math.tanh for the nonlinearities (sigmoid(x) = 0.5 tanh(x / 2) + 0.5, no overflow).
"""
from numba import cuda

from .._launch import check_gru_bwd, check_gru_fwd, check_lstm_bwd, check_lstm_fwd
from .._scalar import for_cuda
from . import _grid

gru_bwd_unit, gru_fwd_unit, lstm_bwd_unit, lstm_fwd_unit = for_cuda(
    'gru_bwd_unit', 'gru_fwd_unit', 'lstm_bwd_unit', 'lstm_fwd_unit')


@cuda.jit(cache=True)
def _lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    N, H = h.shape
    one, two = x_gates.dtype.type(1), x_gates.dtype.type(2)
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            h[n, j] = h_prev[n, j]
            c[n, j] = c_prev[n, j]
            continue
        lstm_fwd_unit(x_gates, h_gates, c_prev, act, h, c, tanh_c, n, j, H, one, two)


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
        lstm_bwd_unit(dy, dh_rec, act, tanh_c, c_prev, dh, dc, dgates, n, j, H, one)


@cuda.jit(cache=True)
def _gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    N, H = h.shape
    one, two = x_gates.dtype.type(1), x_gates.dtype.type(2)
    for e in range(cuda.grid(1), N * H, cuda.gridsize(1)):
        n, j = e // H, e % H
        if not valid[n]:
            h[n, j] = h_prev[n, j]
            continue
        gru_fwd_unit(x_gates, h_gates, b_hn, h_prev, act, hn, h, n, j, H, one, two)


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
        gru_bwd_unit(dy, dh_rec, act, hn, h_prev, dh, dgates_x, dgates_h, n, j, H, one)


def lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c):
    N, H = check_lstm_fwd(x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c)
    if N * H:
        _lstm_fwd[_grid.grid(N * H)](x_gates, h_gates, h_prev, c_prev, valid, act, h, c, tanh_c)


def lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates):
    N, H = check_lstm_bwd(dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates)
    if N * H:
        _lstm_bwd[_grid.grid(N * H)](dy, dh_rec, act, tanh_c, c_prev, valid, dh, dc, dgates)


def gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h):
    N, H = check_gru_fwd(x_gates, h_gates, b_hn, h_prev, valid, act, hn, h)
    if N * H:
        _gru_fwd[_grid.grid(N * H)](x_gates, h_gates, b_hn, h_prev, valid, act, hn, h)


def gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h):
    N, H = check_gru_bwd(dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h)
    if N * H:
        _gru_bwd[_grid.grid(N * H)](dy, dh_rec, act, hn, h_prev, valid, dh, dgates_x, dgates_h)

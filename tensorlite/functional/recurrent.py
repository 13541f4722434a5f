"""Recurrent layers: lstm_cell, gru_cell (one step) and lstm, gru (a whole sequence, one layer, one
direction), with PyTorch's gate orders, weight layouts and biases.

    LSTM  gates i, f, g, o:  w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (4H,)
          z = x W_ih^T + b_ih + h W_hh^T + b_hh;  i, f, o = sigmoid, g = tanh of their blocks
          c' = f c + i g,  h' = o tanh(c')
    GRU   gates r, z, n:     w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,)
          r, z = sigmoid(x W_i{r,z}^T + b_i{r,z} + h W_h{r,z}^T + b_h{r,z})
          n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h' = (1 - z) n + z h

A whole sequence is ONE Function (LSTMSequence, GRUSequence), not T graph nodes: forward makes one
GEMM for the input projection of all T steps at once, then per step one GEMM for the recurrent
projection and one fused kernel (kernels/{cpu,cuda}/recurrent.py) for the gates and the state
update.  Backward walks the steps in reverse with one fused kernel and one GEMM (dgates @ W_hh, the
gradient that reaches h_{t-1}) per step, and keeps every step's gate gradients in one (T, N, G)
buffer, so that the gradients of W_ih, W_hh, the input and the biases are each one big GEMM or sum
at the end.  docs/recurrent.md derives the equations and counts the cost.

lengths: for inputs padded to T steps, lengths[n] in 1..T says how many steps of sample n are
real.  Padded steps (t >= lengths[n]) leave the state unchanged, output zeros and give no gradient
to anything; h_n (and c_n) are each sample's state after its last real step.  With reverse=True the
steps run t = T-1, ..., 0, so each sample starts at its own last real step -- the backward half
of a bidirectional layer over a padded batch, as PyTorch's packed sequences give.

Second derivatives: the cells have them.  Their backward runs the fused kernels when no graph is
recorded (ordinary training) and, under create_graph=True, recomputes the gates with Tensor ops
and writes the same backward formulas with Tensor ops, which are differentiable in turn (as GELU
and the norms do).  The sequence Functions raise NotImplementedError for double backward: a
Tensor-op backward would rebuild the T-step graph the fused Function exists to avoid.
"""
import numbers

import numpy as np

from .. import backend, kernels
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from ._util import xp_of
from .activation import sigmoid, tanh
from .linalg import linear, matmul
from .shape import cat, split

LSTM_GATES, GRU_GATES = 4, 3


# ==================================================================================================
# the sequence on arrays: forward and backward through time
# ==================================================================================================

def _contiguous(xp, a, dtype):
    return xp.ascontiguousarray(a, dtype=dtype)


def _steps(T, reverse):
    """The order the steps run in, and for step t the indices of the states before and after it in
    the (T + 1, N, H) state buffers.  The buffers are in time order whichever the direction: forward
    keeps the state before step t at t and after it at t + 1, reverse the other way round, so that
    the states before every step -- the h_prev each step's gates saw -- are one contiguous slice,
    [0:T] forward and [1:T+1] reverse, for the weight gradient's single GEMM."""
    if reverse:
        return [(t, t + 1, t) for t in range(T - 1, -1, -1)]
    return [(t, t, t + 1) for t in range(T)]


def lstm_forward_arrays(x, h0, c0, w_ih, w_hh, bias, valid, reverse):
    """x (T, N, I), h0 and c0 (N, H), w_ih (4H, I), w_hh (4H, H), bias (4H,) = b_ih + b_hh or None,
    valid (T, N) bool.  Returns act (T, N, 4H) -- the activated gates i, f, g, o of every step --
    hs and cs (T + 1, N, H), every state in time order (see _steps), and tanh_c (T, N, H)."""
    xp = xp_of(x)
    T, N, I = x.shape
    H, dt = w_hh.shape[1], x.dtype
    act = xp.empty((T, N, 4 * H), dt)
    # the input projection of every step in one GEMM: (T*N, I) @ (I, 4H)
    xp.matmul(x.reshape(T * N, I), w_ih.T, out=act.reshape(T * N, 4 * H))
    if bias is not None:
        act += bias
    hs, cs = xp.empty((T + 1, N, H), dt), xp.empty((T + 1, N, H), dt)
    tanh_c = xp.empty((T, N, H), dt)
    first = T if reverse else 0
    hs[first], cs[first] = h0, c0
    h_gates = xp.empty((N, 4 * H), dt)
    k = kernels.twin('recurrent', x)
    for t, prev, nxt in _steps(T, reverse):
        xp.matmul(hs[prev], w_hh.T, out=h_gates)
        # the gates are activated in place: act[t] holds the input projection until this call
        k.lstm_fwd(act[t], h_gates, hs[prev], cs[prev], valid[t], act[t], hs[nxt], cs[nxt],
                   tanh_c[t])
    return act, hs, cs, tanh_c


def lstm_backward_arrays(dy, dh_n, dc_n, x, w_ih, w_hh, act, hs, cs, tanh_c, valid, reverse,
                         needs):
    """The gradients of an LSTM sequence from dy (T, N, H), dh_n and dc_n (N, H) and what
    lstm_forward_arrays returned.  needs = which of (x, h0, c0, w_ih, w_hh, b_ih, b_hh) are
    wanted.  Returns (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh), None where not needed; the two
    bias gradients are one array (both biases are added to the same gates)."""
    xp = xp_of(x)
    T, N, I = x.shape
    H, dt = w_hh.shape[1], x.dtype
    dgates = xp.empty((T, N, 4 * H), dt)
    # copies (C order, as the kernel needs): the kernel updates them in place
    dh, dc = xp.array(dh_n, dtype=dt, order='C'), xp.array(dc_n, dtype=dt, order='C')
    dh_rec = xp.zeros((N, H), dt)
    k = kernels.twin('recurrent', x)
    for t, prev, _ in reversed(_steps(T, reverse)):
        k.lstm_bwd(dy[t], dh_rec, act[t], tanh_c[t], cs[prev], valid[t], dh, dc, dgates[t])
        xp.matmul(dgates[t], w_hh, out=dh_rec)      # the part of dL/dh_{t-1} through the gates
    return _input_and_weight_grads(xp, dgates, dgates, x, w_ih, hs, reverse, needs,
                                   dh + dh_rec, dc)


def gru_forward_arrays(x, h0, w_ih, w_hh, b_ih, b_hh, valid, reverse):
    """x (T, N, I), h0 (N, H), w_ih (3H, I), w_hh (3H, H), b_ih and b_hh (3H,) or None, valid
    (T, N) bool.  Returns act (T, N, 3H) -- r, z, n of every step --, hn (T, N, H) = h_prev W_hn^T
    + b_hn of every step, and hs (T + 1, N, H) in time order (see _steps)."""
    xp = xp_of(x)
    T, N, I = x.shape
    H, dt = w_hh.shape[1], x.dtype
    act = xp.empty((T, N, 3 * H), dt)
    xp.matmul(x.reshape(T * N, I), w_ih.T, out=act.reshape(T * N, 3 * H))
    # b_hr and b_hz add to the gates as b_ih does, so they join it; b_hn cannot (r scales it)
    bias = xp.zeros(3 * H, dt) if b_ih is None else xp.array(b_ih, dtype=dt)
    b_hn = xp.zeros(H, dt)
    if b_hh is not None:
        bias[:2 * H] += b_hh[:2 * H]
        b_hn = _contiguous(xp, b_hh[2 * H:], dt)
    if b_ih is not None or b_hh is not None:
        act += bias
    hs = xp.empty((T + 1, N, H), dt)
    hn = xp.empty((T, N, H), dt)
    hs[T if reverse else 0] = h0
    h_gates = xp.empty((N, 3 * H), dt)
    k = kernels.twin('recurrent', x)
    for t, prev, nxt in _steps(T, reverse):
        xp.matmul(hs[prev], w_hh.T, out=h_gates)
        k.gru_fwd(act[t], h_gates, b_hn, hs[prev], valid[t], act[t], hn[t], hs[nxt])
    return act, hn, hs


def gru_backward_arrays(dy, dh_n, x, w_ih, w_hh, act, hn, hs, valid, reverse, needs):
    """The gradients of a GRU sequence from dy (T, N, H), dh_n (N, H) and what gru_forward_arrays
    returned.  needs = which of (x, h0, w_ih, w_hh, b_ih, b_hh) are wanted.  Returns
    (dx, dh0, dw_ih, dw_hh, db_ih, db_hh), None where not needed."""
    xp = xp_of(x)
    T, N, I = x.shape
    H, dt = w_hh.shape[1], x.dtype
    # the gates' gradients seen from the input side and from the hidden side differ in the n block
    # only (r scales the hidden projection of n), but both are whole so each weight gets one GEMM
    dgates_x = xp.empty((T, N, 3 * H), dt)
    dgates_h = xp.empty((T, N, 3 * H), dt)
    dh = xp.array(dh_n, dtype=dt, order='C')
    dh_rec = xp.zeros((N, H), dt)
    k = kernels.twin('recurrent', x)
    for t, prev, _ in reversed(_steps(T, reverse)):
        k.gru_bwd(dy[t], dh_rec, act[t], hn[t], hs[prev], valid[t], dh, dgates_x[t], dgates_h[t])
        xp.matmul(dgates_h[t], w_hh, out=dh_rec)
    dx, dh0, _, dw_ih, dw_hh, db_ih, db_hh = _input_and_weight_grads(
        xp, dgates_x, dgates_h, x, w_ih, hs, reverse,
        (needs[0], needs[1], False, needs[2], needs[3], needs[4], needs[5]), dh + dh_rec, None)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def _input_and_weight_grads(xp, dgates_x, dgates_h, x, w_ih, hs, reverse, needs, dh0, dc0):
    """The big GEMMs and sums at the end of backward through time.  dgates_x (T, N, G) are the
    gates' gradients for the input side (x, W_ih, b_ih), dgates_h for the hidden side (W_hh, b_hh);
    needs = (x, h0, c0, w_ih, w_hh, b_ih, b_hh).  For the LSTM both are one array, and both biases
    get the same gradient."""
    T, N, I = x.shape
    G, H = dgates_x.shape[2], hs.shape[2]
    gx = dgates_x.reshape(T * N, G)
    gh = dgates_h.reshape(T * N, G)
    h_prev = (hs[1:] if reverse else hs[:T]).reshape(T * N, H)     # the state each step saw
    dx = xp.matmul(gx, w_ih).reshape(T, N, I) if needs[0] else None
    dw_ih = xp.matmul(gx.T, x.reshape(T * N, I)) if needs[3] else None
    dw_hh = xp.matmul(gh.T, h_prev) if needs[4] else None
    db_ih = gx.sum(axis=0) if needs[5] else None
    db_hh = None
    if needs[6]:
        db_hh = db_ih if gh is gx and db_ih is not None else gh.sum(axis=0)
    return (dx, dh0 if needs[1] else None, dc0 if needs[2] else None, dw_ih, dw_hh, db_ih, db_hh)


class LSTMSequence(Function):
    """The whole sequence of one LSTM layer in one direction: (x, h0, c0, w_ih, w_hh, b_ih, b_hh,
    valid, reverse) -> (output (T, N, H), h_n, c_n).  h0 and c0 are Tensors (zeros when the caller
    gave none); biases may be None; valid (T, N) bool array."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, valid, reverse):
        xp, dt = xp_of(x), x.dtype
        T = x.shape[0]
        bias = _combined_bias(b_ih, b_hh)
        act, hs, cs, tanh_c = lstm_forward_arrays(_contiguous(xp, x, dt), h0, c0, w_ih, w_hh,
                                                  bias, valid, reverse)
        last = 0 if reverse else T
        out = hs[:T] if reverse else hs[1:]
        if not valid.all():
            out = out * valid[:, :, None]        # padded steps output zeros
        ctx.reverse = reverse
        # out is saved too (though backward does not read it) so that writing into it in place,
        # which would change the saved states it may share memory with, is caught in backward
        ctx.save_for_backward(x, w_ih, w_hh, act, hs, cs, tanh_c, out, valid)
        return out, hs[last].copy(), cs[last].copy()

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        if is_grad_enabled():
            raise NotImplementedError(
                "lstm: double backward (create_graph=True) through the fused LSTM kernel is not "
                "implemented; use lstm_cell in a loop for second derivatives")
        x, w_ih, w_hh, act, hs, cs, tanh_c, _, valid = (t.data for t in ctx.saved_tensors)
        xp, dt = xp_of(x), x.dtype
        grads = lstm_backward_arrays(
            _contiguous(xp, dy.data, dt), dh_n.data, dc_n.data, _contiguous(xp, x, dt), w_ih,
            w_hh, act, hs, cs, tanh_c, valid, ctx.reverse, ctx.needs_input_grad[:7])
        return _tensors(*grads) + (None, None)


class GRUSequence(Function):
    """The whole sequence of one GRU layer in one direction: (x, h0, w_ih, w_hh, b_ih, b_hh, valid,
    reverse) -> (output (T, N, H), h_n)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, valid, reverse):
        xp, dt = xp_of(x), x.dtype
        T = x.shape[0]
        act, hn, hs = gru_forward_arrays(_contiguous(xp, x, dt), h0, w_ih, w_hh, b_ih, b_hh,
                                         valid, reverse)
        out = hs[:T] if reverse else hs[1:]
        if not valid.all():
            out = out * valid[:, :, None]
        ctx.reverse = reverse
        ctx.save_for_backward(x, w_ih, w_hh, act, hn, hs, out, valid)
        return out, hs[0 if reverse else T].copy()

    @staticmethod
    def backward(ctx, dy, dh_n):
        if is_grad_enabled():
            raise NotImplementedError(
                "gru: double backward (create_graph=True) through the fused GRU kernel is not "
                "implemented; use gru_cell in a loop for second derivatives")
        x, w_ih, w_hh, act, hn, hs, _, valid = (t.data for t in ctx.saved_tensors)
        xp, dt = xp_of(x), x.dtype
        grads = gru_backward_arrays(_contiguous(xp, dy.data, dt), dh_n.data,
                                    _contiguous(xp, x, dt), w_ih, w_hh, act, hn, hs, valid,
                                    ctx.reverse, ctx.needs_input_grad[:6])
        return _tensors(*grads) + (None, None)


def _combined_bias(b_ih, b_hh):
    """b_ih + b_hh (the LSTM adds both to every gate), or the one given, or None."""
    if b_ih is None:
        return b_hh
    return b_ih if b_hh is None else b_ih + b_hh


def _tensors(*arrays):
    return tuple(None if a is None else Tensor(a) for a in arrays)


# ==================================================================================================
# the cells: one step, the kernels on the first-order path and Tensor ops on the differentiable one
# ==================================================================================================

class LSTMCellFunction(Function):
    """(x, h, c, w_ih, w_hh, b_ih, b_hh) -> (h', c'): a sequence of one step on the array path."""

    @staticmethod
    def forward(ctx, x, h, c, w_ih, w_hh, b_ih, b_hh):
        xp, dt = xp_of(x), x.dtype
        valid = xp.ones((1, x.shape[0]), bool)
        act, hs, cs, tanh_c = lstm_forward_arrays(
            _contiguous(xp, x, dt)[None], h, c, w_ih, w_hh, _combined_bias(b_ih, b_hh), valid,
            False)
        ctx.save_for_backward(x, h, c, w_ih, w_hh, b_ih, b_hh, act, tanh_c)
        return hs[1], cs[1]

    @staticmethod
    def backward(ctx, gh, gc):
        x, h, c, w_ih, w_hh, b_ih, b_hh, act, tanh_c = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if not is_grad_enabled():
            xp, dt = xp_of(x.data), x.dtype
            N, H = h.shape
            hs = xp.stack([h.data, xp.zeros_like(h.data)])      # the state before the step at 0
            cs = _contiguous(xp, c.data, dt)[None]
            zeros = xp.zeros((N, H), dt)
            # a sequence of one step whose output is h' (so dy = gh) and whose h_n is not used
            dx, *rest = lstm_backward_arrays(
                _contiguous(xp, gh.data, dt)[None], zeros, gc.data,
                _contiguous(xp, x.data, dt)[None], w_ih.data, w_hh.data, act.data, hs, cs,
                tanh_c.data, xp.ones((1, N), bool), False, needs)
            return _tensors(None if dx is None else dx[0], *rest)
        return _lstm_cell_grads(x, h, c, w_ih, w_hh, b_ih, b_hh, gh, gc, needs)


def _lstm_cell_grads(x, h, c, w_ih, w_hh, b_ih, b_hh, gh, gc, needs):
    """The cell's gradients as Tensor expressions (differentiable): the gates are recomputed from
    the saved inputs, then the formulas of kernels/cpu/recurrent.py:lstm_bwd."""
    gates = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)                # (N, 4H)
    zi, zf, zg, zo = split(gates, h.shape[1], dim=1)
    i, f, g, o = sigmoid(zi), sigmoid(zf), tanh(zg), sigmoid(zo)
    tc = tanh(f * c + i * g)
    gcc = gc + gh * o * (1 - tc * tc)                                    # dL/dc'
    dgates = cat([gcc * g * i * (1 - i), gcc * c * f * (1 - f), gcc * i * (1 - g * g),
                  gh * tc * o * (1 - o)], dim=1)                        # (N, 4H)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _cell_param_grads(
        dgates, dgates, x, h, w_ih, w_hh, needs[:2] + needs[3:])
    return dx, dh, gcc * f if needs[2] else None, dw_ih, dw_hh, db_ih, db_hh


def _cell_param_grads(dgates_x, dgates_h, x, h, w_ih, w_hh, needs):
    """(dx, dh, dw_ih, dw_hh, db_ih, db_hh) of a cell from its gates' gradients (Tensors), dh
    through the gates only; needs: which of (x, h, w_ih, w_hh, b_ih, b_hh) are wanted."""
    dx = matmul(dgates_x, w_ih) if needs[0] else None
    dh = matmul(dgates_h, w_hh) if needs[1] else None
    dw_ih = matmul(dgates_x.T, x) if needs[2] else None
    dw_hh = matmul(dgates_h.T, h) if needs[3] else None
    db_ih = dgates_x.sum(dim=0) if needs[4] else None
    db_hh = dgates_h.sum(dim=0) if needs[5] else None
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


class GRUCellFunction(Function):
    """(x, h, w_ih, w_hh, b_ih, b_hh) -> h'."""

    @staticmethod
    def forward(ctx, x, h, w_ih, w_hh, b_ih, b_hh):
        xp, dt = xp_of(x), x.dtype
        valid = xp.ones((1, x.shape[0]), bool)
        act, hn, hs = gru_forward_arrays(_contiguous(xp, x, dt)[None], h, w_ih, w_hh, b_ih, b_hh,
                                         valid, False)
        ctx.save_for_backward(x, h, w_ih, w_hh, b_ih, b_hh, act, hn)
        return hs[1]

    @staticmethod
    def backward(ctx, gh):
        x, h, w_ih, w_hh, b_ih, b_hh, act, hn = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if not is_grad_enabled():
            xp, dt = xp_of(x.data), x.dtype
            N, H = h.shape
            hs = xp.stack([h.data, xp.zeros_like(h.data)])
            grads = gru_backward_arrays(
                _contiguous(xp, gh.data, dt)[None], xp.zeros((N, H), dt),
                _contiguous(xp, x.data, dt)[None], w_ih.data, w_hh.data, act.data, hn.data, hs,
                xp.ones((1, N), bool), False, needs)
            dx = grads[0]
            return _tensors(None if dx is None else dx[0], *grads[1:])
        return _gru_cell_grads(x, h, w_ih, w_hh, b_ih, b_hh, gh, needs)


def _gru_cell_grads(x, h, w_ih, w_hh, b_ih, b_hh, gh, needs):
    """The GRU cell's gradients as Tensor expressions, the formulas of gru_bwd."""
    H = h.shape[1]
    xr, xz, xn = split(linear(x, w_ih, b_ih), H, dim=1)
    hr, hz, a = split(linear(h, w_hh, b_hh), H, dim=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = tanh(xn + r * a)
    dzn = gh * (1 - z) * (1 - n * n)
    dr = dzn * a * r * (1 - r)
    dz = gh * (h - n) * z * (1 - z)
    dgates_x = cat([dr, dz, dzn], dim=1)
    dgates_h = cat([dr, dz, dzn * r], dim=1)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = _cell_param_grads(dgates_x, dgates_h, x, h, w_ih, w_hh,
                                                           needs)
    if needs[1]:
        dh = dh + gh * z                 # the direct route h' = ... + z h
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


# ==================================================================================================
# the public functions: argument checks, then the Function
# ==================================================================================================

def _check_tensor(op, name, t, shape, like, shape_text=None):
    """t a Tensor of `shape` (None entries match anything), of like's dtype and device."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if len(t.shape) != len(shape) or any(s is not None and a != s for a, s in zip(t.shape, shape)):
        expected = shape_text or str(tuple('*' if s is None else s for s in shape))
        raise ValueError(f"{op}: {name} has shape {tuple(t.shape)}, expected {expected}")
    if like is not None:
        if t.dtype != like.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype}, the input has {like.dtype}")
        if t.device != like.device:
            raise RuntimeError(f"{op}: {name} is on {t.device}, the input on {like.device}")


def _check_weights(op, input, w_ih, w_hh, b_ih, b_hh, gates):
    """Checks input's dtype, the weights against it; returns the hidden size H."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.name not in ('float32', 'float64'):
        raise TypeError(f"{op}: needs a float32 or float64 input, got dtype {input.dtype}")
    letters = 'i, f, g, o' if gates == LSTM_GATES else 'r, z, n'
    if not isinstance(w_hh, Tensor) or w_hh.ndim != 2 or w_hh.shape[0] != gates * w_hh.shape[1]:
        got = tuple(w_hh.shape) if isinstance(w_hh, Tensor) else type(w_hh).__name__
        raise ValueError(f"{op}: w_hh must be a Tensor ({gates}*hidden_size, hidden_size) with "
                         f"the gates {letters} stacked, got {got}")
    H, I = w_hh.shape[1], input.shape[-1]
    _check_tensor(op, 'w_ih', w_ih, (gates * H, I), input,
                  f"({gates}*hidden_size, input_size) = ({gates * H}, {I})")
    _check_tensor(op, 'w_hh', w_hh, (gates * H, H), input)
    for name, b in (('b_ih', b_ih), ('b_hh', b_hh)):
        if b is not None:
            _check_tensor(op, name, b, (gates * H,), input)
    return H


def _state(op, name, t, N, H, input):
    """An initial state: the Tensor checked as (N, H), or zeros (a constant) when None."""
    if t is None:
        xp = backend.xp_for(input.device)
        return Tensor(xp.zeros((N, H), input.dtype))
    _check_tensor(op, name, t, (N, H), input)
    return t


def _unpack_lstm_hx(op, hx):
    if hx is None:
        return None, None
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{op}: hx must be a pair (h, c) of Tensors or None, got "
                        f"{type(hx).__name__}")
    return hx


def lengths_mask(op, lengths, T, N, xp=np):
    """valid (T, N) bool: valid[t, n] = t < lengths[n].  lengths: None (all T steps) or N ints in
    1..T as a list, tuple, NumPy array or Tensor."""
    if lengths is None:
        return xp.ones((T, N), bool)
    if isinstance(lengths, Tensor):
        lengths = backend.as_numpy(lengths.data)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.shape[0] != N:
        raise ValueError(f"{op}: lengths must hold one length per batch sample ({N}), got shape "
                         f"{arr.shape}")
    if arr.dtype.kind not in 'iu' and not (arr.size and all(
            isinstance(v, numbers.Integral) for v in arr.tolist())):
        raise TypeError(f"{op}: lengths must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"{op}: lengths must be in 1..{T} (the sequence length), got "
                         f"min {arr.min()}, max {arr.max()}")
    valid = np.arange(T)[:, None] < arr[None, :]
    return xp.asarray(valid)


def _check_sequence(op, input):
    if isinstance(input, Tensor) and input.ndim != 3:
        raise ValueError(f"{op}: input must be (T, N, input_size) (time first), got shape "
                         f"{tuple(input.shape)}")
    if isinstance(input, Tensor) and input.shape[0] == 0:
        raise ValueError(f"{op}: input has no time steps (shape {tuple(input.shape)})")


def lstm(input, hx, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """One LSTM layer in one direction over a sequence, PyTorch's equations and layout.

    input (T, N, I) time first; hx = (h0, c0), each (N, H), or None for zeros; w_ih (4H, I),
    w_hh (4H, H), b_ih and b_hh (4H,) or None, gates in the order i, f, g, o.  lengths: None or N
    ints in 1..T, see the module docstring; reverse=True runs t = T-1, ..., 0.
    Returns output (T, N, H) -- h of every step, zeros at padded steps -- and (h_n, c_n), each
    (N, H), the states after each sample's last step."""
    op = 'lstm'
    _check_sequence(op, input)
    H = _check_weights(op, input, w_ih, w_hh, b_ih, b_hh, LSTM_GATES)
    T, N = input.shape[:2]
    h0, c0 = _unpack_lstm_hx(op, hx)
    h0, c0 = _state(op, 'h0', h0, N, H, input), _state(op, 'c0', c0, N, H, input)
    valid = lengths_mask(op, lengths, T, N, backend.xp_for(input.device))
    out, h_n, c_n = LSTMSequence.apply(input, h0, c0, w_ih, w_hh, b_ih, b_hh, valid, bool(reverse))
    return out, (h_n, c_n)


def gru(input, hx, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse=False):
    """One GRU layer in one direction over a sequence, PyTorch's equations and layout.

    input (T, N, I) time first; hx (N, H) or None for zeros; w_ih (3H, I), w_hh (3H, H), b_ih and
    b_hh (3H,) or None, gates in the order r, z, n.  lengths and reverse as for lstm.
    Returns output (T, N, H) and h_n (N, H)."""
    op = 'gru'
    _check_sequence(op, input)
    H = _check_weights(op, input, w_ih, w_hh, b_ih, b_hh, GRU_GATES)
    T, N = input.shape[:2]
    h0 = _state(op, 'hx', hx, N, H, input)
    valid = lengths_mask(op, lengths, T, N, backend.xp_for(input.device))
    return GRUSequence.apply(input, h0, w_ih, w_hh, b_ih, b_hh, valid, bool(reverse))


def _check_cell_input(op, input):
    if isinstance(input, Tensor) and input.ndim != 2:
        raise ValueError(f"{op}: input must be (N, input_size), got shape {tuple(input.shape)}")


def lstm_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: input (N, I), hx = (h, c) each (N, H) or None for zeros, weights as lstm.
    Returns (h', c'), each (N, H).  Differentiable twice."""
    op = 'lstm_cell'
    _check_cell_input(op, input)
    H = _check_weights(op, input, w_ih, w_hh, b_ih, b_hh, LSTM_GATES)
    N = input.shape[0]
    h, c = _unpack_lstm_hx(op, hx)
    h, c = _state(op, 'h', h, N, H, input), _state(op, 'c', c, N, H, input)
    return LSTMCellFunction.apply(input, h, c, w_ih, w_hh, b_ih, b_hh)


def gru_cell(input, hx, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: input (N, I), hx (N, H) or None for zeros, weights as gru.  Returns h'
    (N, H).  Differentiable twice."""
    op = 'gru_cell'
    _check_cell_input(op, input)
    H = _check_weights(op, input, w_ih, w_hh, b_ih, b_hh, GRU_GATES)
    h = _state(op, 'hx', hx, input.shape[0], H, input)
    return GRUCellFunction.apply(input, h, w_ih, w_hh, b_ih, b_hh)

"""LSTM, GRU, LSTMCell, GRUCell with PyTorch's parameter names, registration order, shapes and
initialization, so that `state_dict()` keys match PyTorch's and a PyTorch state dict converted to
NumPy arrays loads unchanged.

A multi-layer, bidirectional layer is a stack of single-direction passes (functional.lstm / gru,
each one fused Function): layer l reads the output of layer l - 1 (both directions joined along the
feature dim), with dropout between layers in training.  Parameters of layer l, direction d:

    weight_ih_l{l}{suffix}  (G*H, I_l)     I_0 = input_size, I_l = H * num_directions after
    weight_hh_l{l}{suffix}  (G*H, H)
    bias_ih_l{l}{suffix}    (G*H,)         G = 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n)
    bias_hh_l{l}{suffix}    (G*H,)         suffix '' forward, '_reverse' backward in time

all initialized U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does.
"""
import math
import numbers
import warnings

from .. import functional as F
from ..autograd.tensor import Tensor
from ..creation import empty
from ..functional.recurrent import gru, gru_cell, lstm, lstm_cell
from . import init
from .module import Module, Parameter


def _positive_int(cls, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{cls}: {name} must be a positive integer, got {value!r}")
    return int(value)


class _RNNBase(Module):
    """What LSTM and GRU share: the parameters, the layer loop, batch_first and unbatched input."""

    _mode = None            # 'LSTM' or 'GRU'
    _gates = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__()
        cls = type(self).__name__
        self.input_size = _positive_int(cls, 'input_size', input_size)
        self.hidden_size = _positive_int(cls, 'hidden_size', hidden_size)
        self.num_layers = _positive_int(cls, 'num_layers', num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
                or not 0 <= dropout <= 1:
            raise ValueError(f"{cls}: dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{cls}: dropout={dropout} and num_layers=1: dropout acts between "
                          "layers only, so it does nothing here", stacklevel=2)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        G, H = self._gates * self.hidden_size, self.hidden_size
        dev = device or 'cpu'
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else H * self.num_directions
            for suffix in ('', '_reverse')[:self.num_directions]:
                # PyTorch's order, which is the state dict's: w_ih, w_hh, b_ih, b_hh per direction
                setattr(self, f'weight_ih_l{layer}{suffix}',
                        Parameter(empty(G, layer_input, dtype=dtype, device=dev)))
                setattr(self, f'weight_hh_l{layer}{suffix}',
                        Parameter(empty(G, H, dtype=dtype, device=dev)))
                if self.bias:
                    setattr(self, f'bias_ih_l{layer}{suffix}', Parameter(empty(G, dtype=dtype,
                                                                               device=dev)))
                    setattr(self, f'bias_hh_l{layer}{suffix}', Parameter(empty(G, dtype=dtype,
                                                                               device=dev)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer, direction):
        suffix = '_reverse' if direction else ''
        names = ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')
        return [getattr(self, f'{n}_l{layer}{suffix}') if self.bias or n.startswith('weight')
                else None for n in names]

    def _run(self, input, hx, lengths):
        """input: Tensor (T, N, I) or (N, T, I) with batch_first, or unbatched (T, I); hx: a tuple
        of initial states (one for the GRU, two for the LSTM), each (L*D, N, H) ((L*D, H)
        unbatched), or None.  Returns output and the tuple of final states, shaped like hx."""
        cls = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{cls}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            layout = '(N, T, input_size)' if self.batch_first else '(T, N, input_size)'
            raise ValueError(f"{cls}: expected input {layout}, or (T, input_size) unbatched, got "
                             f"shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{cls}: input has {input.shape[-1]} features in its last dim, "
                             f"expected input_size={self.input_size}")
        batched = input.ndim == 3
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if not batched:
            input = F.unsqueeze(input, 1)
        elif self.batch_first:
            input = F.transpose(input, 0, 1)                        # (T, N, I)
        N = input.shape[1]
        states = None
        if hx is not None:
            states = []
            for name, s in zip(self._state_names, hx):
                expected = (LD, N, H) if batched else (LD, H)
                if not isinstance(s, Tensor) or tuple(s.shape) != expected:
                    got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                    raise ValueError(f"{cls}: {name} must be a Tensor of shape {expected} "
                                     f"(num_layers * num_directions, N, hidden_size), got {got}")
                states.append(s if batched else F.unsqueeze(s, 1))
        finals = [[] for _ in self._state_names]
        x = input
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                h = None if states is None else tuple(s[k] for s in states)
                out, final = self._direction(x, h, self._weights(layer, d), lengths, d == 1)
                outs.append(out)
                for acc, f in zip(finals, final):
                    acc.append(f)
            x = outs[0] if len(outs) == 1 else F.cat(outs, dim=2)   # (T, N, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        finals = [F.stack(f, 0) for f in finals]                    # (L*D, N, H) each
        if not batched:
            return F.squeeze(x, 1), tuple(F.squeeze(f, 1) for f in finals)
        if self.batch_first:
            x = F.transpose(x, 0, 1)
        return x, tuple(finals)

    def extra_repr(self):
        s = f'{self.input_size}, {self.hidden_size}'
        if self.num_layers != 1:
            s += f', num_layers={self.num_layers}'
        if not self.bias:
            s += ', bias=False'
        if self.batch_first:
            s += ', batch_first=True'
        if self.dropout:
            s += f', dropout={self.dropout}'
        if self.bidirectional:
            s += ', bidirectional=True'
        return s


class LSTM(_RNNBase):
    """A multi-layer LSTM (see the module docstring for the parameters).

    forward(input, hx=None, lengths=None): input (T, N, input_size), (N, T, input_size) with
    batch_first, or (T, input_size) unbatched; hx = (h_0, c_0), each (num_layers * num_directions,
    N, hidden_size), or None for zeros; lengths: N ints in 1..T for a padded batch (see
    functional.recurrent), given to every layer and direction.  Returns output (T, N, D *
    hidden_size) (batch first if batch_first) and (h_n, c_n), each (num_layers * num_directions,
    N, hidden_size)."""

    _gates = 4
    _state_names = ('h_0', 'c_0')

    def _direction(self, x, h, weights, lengths, reverse):
        out, (h_n, c_n) = lstm(x, h, *weights, lengths=lengths, reverse=reverse)
        return out, (h_n, c_n)

    def forward(self, input, hx=None, lengths=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a pair (h_0, c_0) or None, got {type(hx).__name__}")
        return self._run(input, hx, lengths)


class GRU(_RNNBase):
    """A multi-layer GRU: as LSTM, with hx = h_0 alone and forward returning output, h_n."""

    _gates = 3
    _state_names = ('h_0',)

    def _direction(self, x, h, weights, lengths, reverse):
        out, h_n = gru(x, None if h is None else h[0], *weights, lengths=lengths, reverse=reverse)
        return out, (h_n,)

    def forward(self, input, hx=None, lengths=None):
        out, (h_n,) = self._run(input, None if hx is None else (hx,), lengths)
        return out, h_n


class _CellBase(Module):
    _gates = None

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        cls = type(self).__name__
        self.input_size = _positive_int(cls, 'input_size', input_size)
        self.hidden_size = _positive_int(cls, 'hidden_size', hidden_size)
        self.bias = bool(bias)
        G, dev = self._gates * hidden_size, device or 'cpu'
        self.weight_ih = Parameter(empty(G, input_size, dtype=dtype, device=dev))
        self.weight_hh = Parameter(empty(G, hidden_size, dtype=dtype, device=dev))
        if self.bias:
            self.bias_ih = Parameter(empty(G, dtype=dtype, device=dev))
            self.bias_hh = Parameter(empty(G, dtype=dtype, device=dev))
        else:
            self.register_parameter('bias_ih', None)
            self.register_parameter('bias_hh', None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _batched(self, input, states):
        """(input (N, I), states each (N, H) or None, whether to squeeze the batch dim back)."""
        cls = type(self).__name__
        if not isinstance(input, Tensor) or input.ndim not in (1, 2):
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"{cls}: expected input (N, input_size) or (input_size,), got {got}")
        if input.ndim == 2:
            return input, states, False
        return (F.unsqueeze(input, 0),
                None if states is None else tuple(F.unsqueeze(s, 0) for s in states), True)

    def extra_repr(self):
        return f'{self.input_size}, {self.hidden_size}' + ('' if self.bias else ', bias=False')


class LSTMCell(_CellBase):
    """One LSTM step: forward(input (N, input_size) or (input_size,), hx=(h, c) or None) ->
    (h', c'), each (N, hidden_size) (or (hidden_size,)).  weight_ih (4H, I), weight_hh (4H, H),
    bias_ih, bias_hh (4H,)."""

    _gates = 4

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a pair (h, c) or None, got {type(hx).__name__}")
        x, hx, squeeze = self._batched(input, hx)
        h, c = lstm_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (F.squeeze(h, 0), F.squeeze(c, 0)) if squeeze else (h, c)


class GRUCell(_CellBase):
    """One GRU step: forward(input, hx=None) -> h'.  weight_ih (3H, I), weight_hh (3H, H),
    bias_ih, bias_hh (3H,)."""

    _gates = 3

    def forward(self, input, hx=None):
        x, hx, squeeze = self._batched(input, None if hx is None else (hx,))
        h = gru_cell(x, None if hx is None else hx[0], self.weight_ih, self.weight_hh,
                     self.bias_ih, self.bias_hh)
        return F.squeeze(h, 0) if squeeze else h

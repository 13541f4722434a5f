"""PyTorch's LSTM, GRU, LSTMCell, GRUCell and MultiheadAttention weights load unchanged into
tensorlite and give PyTorch's outputs and gradients -- in every run, without PyTorch: the state
dicts, inputs, outputs and gradients were written by PyTorch 2.13 into tests/data/torch_reference.npz
(tests/data/make_torch_fixtures.py regenerates it)."""
import os

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.nn.attention import MultiheadAttention
from tensorlite.nn.rnn import GRU, LSTM, GRUCell, LSTMCell

PATH = os.path.join(os.path.dirname(__file__), 'data', 'torch_reference.npz')


@pytest.fixture(scope='module')
def ref():
    with np.load(PATH, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def part(ref, case, kind):
    prefix = f'{case}/{kind}/'
    return {k[len(prefix):]: v for k, v in ref.items() if k.startswith(prefix)}


def load(module, ref, case):
    sd = part(ref, case, 'sd')
    assert list(module.state_dict()) == list(sd), 'state dict keys or their order differ'
    module.load_state_dict(sd)
    return module


def check(ref, case, module, inputs, outputs):
    """outputs: {name: Tensor}; backward through sum(out * seed) and compare everything."""
    seeds = part(ref, case, 'seed')
    expected = part(ref, case, 'out')
    assert set(outputs) == set(expected)
    for name, out in outputs.items():
        np.testing.assert_allclose(out.numpy(), expected[name], rtol=1e-9, atol=1e-12,
                                   err_msg=f'{case}: output {name}')
    loss = sum((out * tl.tensor(seeds[name])).sum() for name, out in outputs.items())
    loss.backward()
    grads = part(ref, case, 'grad')
    params = dict(module.named_parameters())
    for name, g in grads.items():
        t = params[name[len('param.'):]] if name.startswith('param.') else inputs[name]
        np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-8, atol=1e-11,
                                   err_msg=f'{case}: gradient of {name}')


def inputs_of(ref, case, *names):
    given = part(ref, case, 'in')
    return {n: tl.tensor(given[n], requires_grad=True) for n in names}


def test_lstm(ref):
    m = load(LSTM(5, 4, num_layers=2, bidirectional=True).double(), ref, 'lstm')
    xs = inputs_of(ref, 'lstm', 'x', 'h0', 'c0')
    out, (h, c) = m(xs['x'], (xs['h0'], xs['c0']))
    check(ref, 'lstm', m, xs, {'output': out, 'h_n': h, 'c_n': c})


def test_lstm_lengths(ref):
    m = load(LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True).double(), ref,
             'lstm_lengths')
    xs = inputs_of(ref, 'lstm_lengths', 'x')
    out, (h, c) = m(xs['x'], lengths=part(ref, 'lstm_lengths', 'in')['lengths'])
    check(ref, 'lstm_lengths', m, xs, {'output': out, 'h_n': h, 'c_n': c})


def test_gru(ref):
    m = load(GRU(5, 4, num_layers=2, bidirectional=True, batch_first=True).double(), ref, 'gru')
    xs = inputs_of(ref, 'gru', 'x', 'h0')
    out, h = m(xs['x'], xs['h0'])
    check(ref, 'gru', m, xs, {'output': out, 'h_n': h})


def test_gru_lengths(ref):
    m = load(GRU(5, 4, bidirectional=True).double(), ref, 'gru_lengths')
    xs = inputs_of(ref, 'gru_lengths', 'x')
    out, h = m(xs['x'], lengths=part(ref, 'gru_lengths', 'in')['lengths'])
    check(ref, 'gru_lengths', m, xs, {'output': out, 'h_n': h})


def test_cells(ref):
    m = load(LSTMCell(5, 4).double(), ref, 'lstm_cell')
    xs = inputs_of(ref, 'lstm_cell', 'x', 'h0', 'c0')
    h, c = m(xs['x'], (xs['h0'], xs['c0']))
    check(ref, 'lstm_cell', m, xs, {'h': h, 'c': c})
    m = load(GRUCell(5, 4).double(), ref, 'gru_cell')
    xs = inputs_of(ref, 'gru_cell', 'x', 'h0')
    check(ref, 'gru_cell', m, xs, {'h': m(xs['x'], xs['h0'])})


def test_multihead_attention(ref):
    m = load(MultiheadAttention(8, 2).double(), ref, 'mha')
    xs = inputs_of(ref, 'mha', 'q', 'k', 'v')
    given = part(ref, 'mha', 'in')
    out, w = m(xs['q'], xs['k'], xs['v'], key_padding_mask=given['key_padding_mask'],
               attn_mask=given['attn_mask'])
    check(ref, 'mha', m, xs, {'output': out, 'weights': w})

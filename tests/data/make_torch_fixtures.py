"""Write tests/data/torch_reference.npz: PyTorch modules' state dicts, inputs, outputs and
gradients, so tests/test_torch_weights.py checks in every test run -- without PyTorch installed --
that PyTorch's LSTM, GRU, LSTMCell, GRUCell and MultiheadAttention weights load unchanged into
tensorlite and give PyTorch's outputs and gradients.

    pip install torch==2.13.0 && python tests/data/make_torch_fixtures.py

Every case stores `<case>/sd/<key>` (the state dict), `<case>/in/<name>` (inputs),
`<case>/out/<name>` (outputs), `<case>/seed/<name>` (the weights of the loss
sum(out * seed)) and `<case>/grad/<name>` (gradients of that loss: inputs and parameters).
Everything is float64.
"""
import os

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.manual_seed(0)
rng = np.random.default_rng(0)
store = {}


def t(shape):
    return torch.tensor(rng.standard_normal(shape), requires_grad=True)


def record(case, module, inputs, outputs, consts=None):
    """Backward through sum(out * seed) over all outputs; store everything under `case/`."""
    seeds = {k: torch.tensor(rng.standard_normal(tuple(v.shape))) for k, v in outputs.items()}
    loss = sum((v * seeds[k]).sum() for k, v in outputs.items())
    loss.backward()
    for k, v in module.state_dict().items():
        store[f'{case}/sd/{k}'] = v.detach().numpy()
    for k, v in inputs.items():
        store[f'{case}/in/{k}'] = v.detach().numpy()
        if v.grad is not None:
            store[f'{case}/grad/{k}'] = v.grad.numpy()
    for k, v in (consts or {}).items():
        store[f'{case}/in/{k}'] = np.asarray(v)
    for k, v in outputs.items():
        store[f'{case}/out/{k}'] = v.detach().numpy()
        store[f'{case}/seed/{k}'] = seeds[k].numpy()
    for k, p in module.named_parameters():
        store[f'{case}/grad/param.{k}'] = p.grad.numpy()


# LSTM, 2 layers, bidirectional, with initial states
m = torch.nn.LSTM(5, 4, num_layers=2, bidirectional=True).double()
x, h0, c0 = t((6, 3, 5)), t((4, 3, 4)), t((4, 3, 4))
out, (h, c) = m(x, (h0, c0))
record('lstm', m, {'x': x, 'h0': h0, 'c0': c0}, {'output': out, 'h_n': h, 'c_n': c})

# LSTM with lengths (a packed sequence), batch_first
m = torch.nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True).double()
x = t((3, 6, 5))
lengths = [6, 2, 4]
packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
out, (h, c) = m(packed)
out, _ = pad_packed_sequence(out, batch_first=True, total_length=6)
record('lstm_lengths', m, {'x': x}, {'output': out, 'h_n': h, 'c_n': c}, {'lengths': lengths})

# GRU, 2 layers, bidirectional, batch_first, with an initial state
m = torch.nn.GRU(5, 4, num_layers=2, bidirectional=True, batch_first=True).double()
x, h0 = t((3, 6, 5)), t((4, 3, 4))
out, h = m(x, h0)
record('gru', m, {'x': x, 'h0': h0}, {'output': out, 'h_n': h})

# GRU with lengths
m = torch.nn.GRU(5, 4, num_layers=1, bidirectional=True).double()
x = t((6, 3, 5))
lengths = [3, 6, 1]
out, h = m(pack_padded_sequence(x, lengths, enforce_sorted=False))
out, _ = pad_packed_sequence(out, total_length=6)
record('gru_lengths', m, {'x': x}, {'output': out, 'h_n': h}, {'lengths': lengths})

# cells
m = torch.nn.LSTMCell(5, 4).double()
x, h0, c0 = t((3, 5)), t((3, 4)), t((3, 4))
h, c = m(x, (h0, c0))
record('lstm_cell', m, {'x': x, 'h0': h0, 'c0': c0}, {'h': h, 'c': c})
m = torch.nn.GRUCell(5, 4).double()
x, h0 = t((3, 5)), t((3, 4))
record('gru_cell', m, {'x': x, 'h0': h0}, {'h': m(x, h0)})

# MultiheadAttention, (L, N, E) layout, both masks, biases made non-zero
m = torch.nn.MultiheadAttention(8, 2).double()
with torch.no_grad():
    m.in_proj_bias.normal_()
    m.out_proj.bias.normal_()
q, k, v = t((3, 2, 8)), t((4, 2, 8)), t((4, 2, 8))
kpm = np.array([[False, False, False, True], [False, True, False, False]])
mask = np.triu(np.ones((3, 4), bool), k=2)
out, w = m(q, k, v, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(mask))
record('mha', m, {'q': q, 'k': k, 'v': v}, {'output': out, 'weights': w},
       {'key_padding_mask': kpm, 'attn_mask': mask})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'torch_reference.npz')
np.savez_compressed(path, **store)
print(f"wrote {path}: {len(store)} arrays, torch {torch.__version__}")

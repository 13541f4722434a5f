"""MultiheadAttention with PyTorch's parameters, masks and return values.

    mha = nn.MultiheadAttention(embed_dim=64, num_heads=4, batch_first=True)
    out, weights = mha(x, x, x)            # out (N, L, 64); weights (N, L, L), averaged over heads

Parameters as PyTorch names them, so a PyTorch state dict converted to NumPy loads unchanged:
`in_proj_weight` (3E, E) holds the query, key and value projections stacked in that order,
`in_proj_bias` (3E,), and `out_proj` a Linear(E, E) (`out_proj.weight`, `out_proj.bias`).
Only the case kdim = vdim = embed_dim is built (PyTorch's separate q/k/v_proj_weight for other key
and value sizes, add_bias_kv and add_zero_attn are absent).
"""
import math

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd.tensor import Tensor
from ..creation import empty
from ..functional.attention import scaled_dot_product_attention
from . import init
from .linear import Linear
from .module import Module, Parameter, check_size


def _mask_array(mask, name):
    data = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if data.dtype != np.bool_ and data.dtype.kind != 'f':
        raise TypeError(f"MultiheadAttention: {name} must be bool or float, got dtype {data.dtype}")
    return data


def merge_masks(attn_mask, key_padding_mask, N, num_heads, L, S, dtype):
    """One additive float mask (N, heads, L, S), or None, from PyTorch's two MHA masks.

    Both follow nn.MultiheadAttention's convention -- a bool True means "may NOT attend" (the
    opposite of scaled_dot_product_attention's bool masks) and a float mask is added to the scores:
    attn_mask is (L, S) or (N * num_heads, L, S), key_padding_mask (N, S)."""
    total = None
    if attn_mask is not None:
        m = _mask_array(attn_mask, 'attn_mask')
        if m.shape == (L, S):
            m = m.reshape(1, 1, L, S)
        elif m.shape == (N * num_heads, L, S):
            m = m.reshape(N, num_heads, L, S)
        else:
            raise ValueError(f"MultiheadAttention: attn_mask must have shape ({L}, {S}) or "
                             f"({N * num_heads}, {L}, {S}) (L, S or N*num_heads, L, S), got "
                             f"{tuple(m.shape)}")
        total = _additive(m, dtype)
    if key_padding_mask is not None:
        m = _mask_array(key_padding_mask, 'key_padding_mask')
        if m.shape != (N, S):
            raise ValueError(f"MultiheadAttention: key_padding_mask must have shape ({N}, {S}) "
                             f"(N, S), got {tuple(m.shape)}")
        m = _additive(m.reshape(N, 1, 1, S), dtype)
        total = m if total is None else total + m
    return total


def _additive(mask, dtype):
    if mask.dtype == np.bool_:
        xp = backend.array_module(mask)
        return xp.where(mask, xp.asarray(-np.inf, dtype=dtype), xp.asarray(0, dtype=dtype))
    return mask.astype(dtype, copy=False)


class MultiheadAttention(Module):
    """softmax(Q K^T / sqrt(d) + mask) V over `num_heads` heads of size d = embed_dim / num_heads,
    with the input projections in `in_proj_weight` and the output projection `out_proj`.

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False) -> (output, weights)

    query (L, N, E), key and value (S, N, E) -- (N, L, E) with batch_first=True, or unbatched
    (L, E).  output has query's shape.  weights is None when need_weights=False, else the attention
    probabilities (N, L, S) averaged over heads, or (N, heads, L, S) with average_attn_weights=False
    (unbatched: without N).  With need_weights=False the heads go through
    F.scaled_dot_product_attention (its fused or blockwise kernels); with need_weights=True the
    probabilities must exist as a tensor, so they are computed explicitly (softmax of the masked
    scores, dropout on them, then times V), as PyTorch does.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False,
                 device=None, dtype=None):
        super().__init__()
        embed_dim = check_size('MultiheadAttention', 'embed_dim', embed_dim)
        num_heads = check_size('MultiheadAttention', 'num_heads', num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        dev = device or 'cpu'
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype, device=dev))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype, device=dev))
        else:
            self.register_parameter('in_proj_bias', None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self):
        # PyTorch's: Xavier-uniform projections, zero biases, out_proj's weight as any Linear's
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        E, H, d = self.embed_dim, self.num_heads, self.head_dim
        for name, t in (('query', query), ('key', key), ('value', value)):
            if t.ndim not in (2, 3) or t.shape[-1] != E:
                raise ValueError(f"MultiheadAttention: {name} must be (L, N, {E}) "
                                 f"{'(batch_first) (N, L, E)' if self.batch_first else ''} or "
                                 f"unbatched (L, {E}), got shape {tuple(t.shape)}")
        if not query.ndim == key.ndim == value.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be batched or all "
                             f"unbatched, got shapes {tuple(query.shape)}, {tuple(key.shape)}, "
                             f"{tuple(value.shape)}")
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = _mask_array(key_padding_mask, 'key_padding_mask')[None]
        elif not self.batch_first:                  # (L, N, E) -> (N, L, E)
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ValueError(f"MultiheadAttention: key and value must share (N, S) with query's N "
                             f"= {N}, got key {tuple(key.shape)} and value {tuple(value.shape)} "
                             "(in (N, S, E) order)")

        w_q, w_k, w_v = self.in_proj_weight.chunk(3, 0)
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3, 0)
        q = _heads(F.linear(query, w_q, b_q), H, d)           # (N, H, L, d)
        k = _heads(F.linear(key, w_k, b_k), H, d)             # (N, H, S, d)
        v = _heads(F.linear(value, w_v, b_v), H, d)

        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal=True needs attn_mask too (PyTorch's "
                             "rule: is_causal is only a hint that attn_mask is the causal mask)")
        mask = merge_masks(attn_mask, key_padding_mask, N, H, L, S, q.data.dtype)
        if mask is not None:                        # on the device of the tokens
            mask = backend.array_module(q.data).asarray(mask)
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))    # (N, H, L, S)
            if mask is not None:
                scores = scores + Tensor(mask)
            attn = F.softmax(scores, -1)
            weights = attn.mean(1) if average_attn_weights else attn
            out = F.dropout(attn, p, training=True) @ v if p > 0 else attn @ v
        else:
            out = scaled_dot_product_attention(q, k, v, None if mask is None else Tensor(mask), p)
        out = out.transpose(1, 2).reshape(N, L, E)            # (N, L, H * d)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(0)
            weights = None if weights is None else weights.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def extra_repr(self):
        return (f'embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, '
                f'batch_first={self.batch_first}')


def _heads(x, H, d):
    """(N, L, H * d) -> (N, H, L, d)."""
    N, L = x.shape[0], x.shape[1]
    return x.reshape(N, L, H, d).transpose(1, 2)

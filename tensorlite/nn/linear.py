"""Linear, Identity, Flatten, Embedding."""
import numpy as np

from .. import functional as F
from ..creation import empty
from . import init
from .module import Module, Parameter, check_size


class Identity(Module):
    """Returns its input (a placeholder that keeps state-dict names when a layer is removed)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), PyTorch's init."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        in_features = check_size('Linear', 'in_features', in_features)
        out_features = check_size('Linear', 'out_features', out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device or 'cpu'))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device or 'cpu'))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}'


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f'start_dim={self.start_dim}, end_dim={self.end_dim}'


class Embedding(Module):
    """A lookup table of num_embeddings vectors; weight ~ N(0, 1), the padding_idx row zero and
    never updated (its gradient is zero), as PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, device=None, dtype=None,
                 _weight=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is not None:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(_weight.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(_weight)
        else:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype,
                                          device=device or 'cpu'))
            self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        s = f'{self.num_embeddings}, {self.embedding_dim}'
        return s + (f', padding_idx={self.padding_idx}' if self.padding_idx is not None else '')

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None):
        data = embeddings.data if hasattr(embeddings, 'data') else np.asarray(embeddings)
        m = cls(data.shape[0], data.shape[1], padding_idx=padding_idx, _weight=data.copy())
        m.weight.requires_grad = not freeze
        return m

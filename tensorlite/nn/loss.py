"""Loss layers: thin Modules over tensorlite.functional's losses, with PyTorch's names, arguments
and defaults, so a PyTorch training script's `criterion = nn.CrossEntropyLoss()` runs unchanged.

    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = criterion(logits, labels)          # logits (N, C) or (N, C, d...), labels (N, d...)

`reduction` is 'mean' (default), 'sum' or 'none'.  A class weight (CrossEntropyLoss, NLLLoss) and
BCEWithLogitsLoss's weight and pos_weight are buffers, as in PyTorch: they move with `.to()` and are
in the state dict under 'weight' / 'pos_weight' when given.  repr() is PyTorch's for the defaults
(`CrossEntropyLoss()`) and adds the arguments that differ from them.
"""
from .. import functional as F
from ..autograd.tensor import Tensor
from ..creation import tensor
from ..functional.loss import REDUCTIONS
from .module import Module


class _Loss(Module):
    """Holds `reduction` (checked at construction, not at the first batch) and prints the arguments
    that differ from their defaults."""

    _defaults = {'reduction': 'mean'}

    def __init__(self, reduction='mean'):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction

    def _register_weight(self, name, weight):
        """A weight Tensor (or array-like) as a buffer; None registers nothing in the state dict."""
        if weight is not None and not isinstance(weight, Tensor):
            weight = tensor(weight)
        self.register_buffer(name, weight)

    def extra_repr(self):
        parts = []
        for name, default in self._defaults.items():
            value = getattr(self, name)
            if isinstance(value, Tensor):             # a few values in full, else the shape
                shown = value.numpy().tolist() if value.numel() <= 6 else f"<{tuple(value.shape)}>"
                parts.append(f"{name}={shown}")
            elif value != default:
                parts.append(f"{name}={value!r}")
        return ', '.join(parts)


class CrossEntropyLoss(_Loss):
    """F.cross_entropy: log_softmax over dim 1, then the negative log-likelihood of `target`
    (class indices (N, d...) or class probabilities of input's shape).  weight: (C,) per-class
    weights; ignore_index: a target index that contributes nothing (index targets only);
    label_smoothing in [0, 1]."""

    _defaults = {'weight': None, 'ignore_index': -100, 'reduction': 'mean',
                 'label_smoothing': 0.0}

    def __init__(self, weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing}")
        self._register_weight('weight', weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing, reduction=self.reduction)


class NLLLoss(_Loss):
    """F.nll_loss: -input[n, target[n]] for log-probabilities `input` (N, C) or (N, C, d...)."""

    _defaults = {'weight': None, 'ignore_index': -100, 'reduction': 'mean'}

    def __init__(self, weight=None, ignore_index=-100, reduction='mean'):
        super().__init__(reduction)
        self._register_weight('weight', weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """F.mse_loss: (input - target)^2, shapes broadcast, reduced."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """F.l1_loss: |input - target|, shapes broadcast, reduced."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """F.binary_cross_entropy_with_logits: sigmoid and binary cross-entropy in one stable
    expression; target of input's shape with values in [0, 1].  weight: broadcast against the
    per-element loss; pos_weight: the positive term's weight per class (broadcast against the last
    dim), > 1 for more recall."""

    _defaults = {'weight': None, 'reduction': 'mean', 'pos_weight': None}

    def __init__(self, weight=None, reduction='mean', pos_weight=None):
        super().__init__(reduction)
        self._register_weight('weight', weight)
        self._register_weight('pos_weight', pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)

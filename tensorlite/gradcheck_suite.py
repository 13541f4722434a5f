"""Gradient-check every differentiable op of tensorlite in float64: the table behind
`tensorlite gradcheck` and examples/gradcheck_all.py.

    from tensorlite.gradcheck_suite import run_suite, format_table
    rows = run_suite(['gelu', 'pad'])          # only ops whose name contains one of the words
    print(format_table(rows))

For each op: the full-Jacobian gradcheck, the fast (random-projection) gradcheck and gradgradcheck
(second derivatives), each 'ok', 'FAIL' or 'n/a', with the worst relative disagreement between
backward and central differences over the whole Jacobian.  'n/a' under 2nd marks the ops whose
fused backward has no second derivative and says so (NotImplementedError): the whole-sequence
lstm/gru and the blockwise attention path.

An op's inputs are drawn from a generator seeded by (seed, the op's position in OPS), so an op's row
is the same whether it is checked alone or with the whole table.
"""
import time

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.functional import attention as ATT

__all__ = ['OPS', 'CHECKS', 'matching_ops', 'run_op', 'run_suite', 'format_header', 'format_row',
           'format_footer', 'format_table', 'worst_relative_error']

# the generator t() draws from; run_op reseeds it for every op
_rng = np.random.default_rng(0)


def t(*shape, low=None, away=None):
    """A float64 leaf; `low` makes values >= low; `away` keeps values away from a kink at 0."""
    a = _rng.standard_normal(shape)
    if low is not None:
        a = np.abs(a) + low
    if away is not None:
        a = np.where(np.abs(a) < away, np.sign(a + 1e-12) * away * 2, a)
    return tl.tensor(a, requires_grad=True)


# fixed targets: a target drawn anew at every evaluation would make the loss a different function
_targets = np.random.default_rng(0)
CLASSES = tl.tensor(_targets.integers(0, 5, size=4))
PROBS = F.softmax(tl.tensor(_targets.standard_normal((3, 4))), 1)
BINARY = tl.tensor(_targets.random((3, 4)))


# name -> (function, inputs); inputs are made when the table is built
OPS = {
    'add (broadcast)': (lambda a, b: a + b, lambda: (t(3, 1, 4), t(2, 1))),
    'sub': (lambda a, b: a - b, lambda: (t(2, 3), t(3))),
    'mul (broadcast)': (lambda a, b: a * b, lambda: (t(2, 3), t(1, 3))),
    'div': (lambda a, b: a / b, lambda: (t(2, 3), t(2, 3, low=0.5))),
    'neg': (lambda a: -a, lambda: (t(4),)),
    'pow (tensor exponent)': (lambda a, b: a ** b, lambda: (t(2, 3, low=0.5), t(2, 3))),
    'pow (scalar exponent)': (lambda a: a ** 2.5, lambda: (t(5, low=0.5),)),
    'reciprocal': (F.reciprocal, lambda: (t(4, low=0.5),)),
    'abs': (F.abs, lambda: (t(5, away=0.05),)),
    'sqrt': (F.sqrt, lambda: (t(5, low=0.5),)),
    'exp': (F.exp, lambda: (t(2, 3),)),
    'log': (F.log, lambda: (t(2, 3, low=0.5),)),
    'maximum': (F.maximum, lambda: (t(6), t(6))),
    'minimum': (F.minimum, lambda: (t(2, 3), t(3))),
    'clamp': (lambda a: F.clamp(a, -0.5, 0.7), lambda: (tl.tensor(np.array([-2., -0.2, 0.1, 0.4, 1.5]), requires_grad=True),)),
    'where': (lambda a, b: tl.where(a.detach() > 0, a, b), lambda: (t(2, 4), t(4))),
    'matmul (batched, broadcast)': (F.matmul, lambda: (t(2, 1, 3, 4), t(3, 4, 2))),
    'matmul (vector)': (F.matmul, lambda: (t(4), t(4, 3))),
    'einsum bij,bjk->bik': (lambda a, b: tl.einsum('bij,bjk->bik', a, b), lambda: (t(2, 3, 4), t(2, 4, 2))),
    'einsum ii->i (diagonal)': (lambda a: tl.einsum('ii->i', a), lambda: (t(3, 3),)),
    'einsum ...ij,...j': (lambda a, b: tl.einsum('...ij,...j', a, b), lambda: (t(2, 3, 4), t(4))),
    'linear': (F.linear, lambda: (t(2, 3, 4), t(5, 4), t(5))),
    'sum (dims, keepdim)': (lambda a: a.sum((0, 2), keepdim=True), lambda: (t(2, 3, 4),)),
    'mean': (lambda a: a.mean(1), lambda: (t(2, 3, 4),)),
    'var (unbiased)': (lambda a: a.var(1), lambda: (t(3, 4),)),
    'std (biased)': (lambda a: a.std(0, unbiased=False), lambda: (t(4, 3),)),
    'max (dim)': (lambda a: a.max(1).values, lambda: (t(3, 5),)),
    'min (all)': (lambda a: a.min(), lambda: (t(3, 5),)),
    'logsumexp': (lambda a: a.logsumexp(-1), lambda: (t(3, 5),)),
    'reshape': (lambda a: a.reshape(4, -1), lambda: (t(2, 3, 2),)),
    'transpose': (lambda a: a.transpose(0, 2), lambda: (t(2, 3, 4),)),
    'permute': (lambda a: a.permute(2, 0, 1), lambda: (t(2, 3, 4),)),
    'flatten': (lambda a: a.flatten(1), lambda: (t(2, 3, 4),)),
    'squeeze/unsqueeze': (lambda a: a.squeeze(1).unsqueeze(0), lambda: (t(3, 1, 2),)),
    'expand': (lambda a: a.expand(2, 3, 4), lambda: (t(3, 1),)),
    'cat': (lambda a, b: tl.cat([a, b], 1), lambda: (t(2, 3), t(2, 2))),
    'stack': (lambda a, b: tl.stack([a, b], -1), lambda: (t(2, 3), t(2, 3))),
    'split': (lambda a: a.split([1, 3], 1), lambda: (t(2, 4),)),
    'chunk': (lambda a: a.chunk(3, 0), lambda: (t(5, 2),)),
    'repeat': (lambda a: a.repeat(2, 1, 3), lambda: (t(2, 3),)),
    'pad (grow and crop)': (lambda a: F.pad(a, (1, -1, 2, 0), value=0.5), lambda: (t(2, 3, 4),)),
    'index (slices, None, Ellipsis)': (lambda a: a[None, ..., ::2, 1:], lambda: (t(3, 4, 5),)),
    'index (integer array, repeats)': (lambda a: a[[0, 2, 0], 1:], lambda: (t(3, 4),)),
    'index (bool mask)': (lambda a: a[a.detach() > 0], lambda: (t(3, 4),)),
    'gather': (lambda a: a.gather(1, tl.tensor([[0, 2, 2], [1, 0, 1]])), lambda: (t(2, 3),)),
    'relu': (F.relu, lambda: (t(6, away=0.05),)),
    'leaky_relu': (lambda a: F.leaky_relu(a, 0.1), lambda: (t(6, away=0.05),)),
    'gelu': (F.gelu, lambda: (t(2, 5),)),
    'gelu (tanh)': (lambda a: F.gelu(a, approximate='tanh'), lambda: (t(2, 5),)),
    'erf': (F.erf, lambda: (t(6),)),
    'sigmoid': (F.sigmoid, lambda: (t(2, 4),)),
    'tanh': (F.tanh, lambda: (t(2, 4),)),
    'softplus': (lambda a: F.softplus(a, beta=2.0), lambda: (t(2, 4),)),
    'silu': (F.silu, lambda: (t(2, 4),)),
    'softmax': (lambda a: F.softmax(a, 1), lambda: (t(2, 4, 3),)),
    'log_softmax': (lambda a: F.log_softmax(a, -1), lambda: (t(3, 4),)),
    'cross_entropy (smoothing, weight)': (
        lambda a: F.cross_entropy(a, CLASSES, weight=tl.tensor(np.linspace(0.5, 1.5, 5)),
                                  label_smoothing=0.1), lambda: (t(4, 5),)),
    'cross_entropy (probabilities)': (
        lambda a: F.cross_entropy(a, PROBS, label_smoothing=0.2),
        lambda: (t(3, 4),)),
    'nll_loss (ignore_index)': (lambda a: F.nll_loss(a, tl.tensor([1, -100, 3])), lambda: (t(3, 4),)),
    'mse_loss': (F.mse_loss, lambda: (t(3, 4), t(3, 4))),
    'l1_loss': (lambda a: F.l1_loss(a, tl.zeros(3, 4, dtype=tl.float64)), lambda: (t(3, 4, away=0.05),)),
    'binary_cross_entropy_with_logits': (
        lambda a: F.binary_cross_entropy_with_logits(a, BINARY,
                                                     pos_weight=tl.tensor(np.full(4, 2.0))),
        lambda: (t(3, 4),)),
    'dropout (fixed mask)': (lambda a: (tl.manual_seed(0), F.dropout(a, 0.3))[1], lambda: (t(4, 5),)),
    # convolution, pooling, normalization, embedding
    'conv3d (stride, padding, groups)': (
        lambda x, w, b: F.conv3d(x, w, b, stride=(1, 2, 1), padding=1, groups=2),
        lambda: (t(1, 2, 3, 4, 3), t(4, 1, 2, 3, 2), t(4))),
    'conv_transpose3d': (lambda x, w: F.conv_transpose3d(x, w, stride=2, padding=1),
                         lambda: (t(1, 2, 2, 2, 3), t(2, 1, 3, 2, 2))),
    'max_pool3d': (lambda x: F.max_pool3d(x, 2, stride=1), lambda: (t(1, 1, 3, 3, 3),)),
    'avg_pool3d (ceil_mode)': (lambda x: F.avg_pool3d(x, 2, ceil_mode=True),
                               lambda: (t(1, 2, 3, 3, 3),)),
    'adaptive_avg_pool3d': (lambda x: F.adaptive_avg_pool3d(x, (1, 2, 2)), lambda: (t(1, 2, 3, 3, 3),)),
    'interpolate (trilinear)': (lambda x: F.interpolate(x, scale_factor=2, mode='trilinear'),
                                lambda: (t(1, 1, 2, 2, 2),)),
    'batch_norm (training)': (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda: (t(3, 2, 2, 2), t(2), t(2))),
    'layer_norm': (lambda x, w, b: F.layer_norm(x, (4,), w, b), lambda: (t(3, 4), t(4), t(4))),
    'group_norm': (lambda x, w, b: F.group_norm(x, 2, w, b), lambda: (t(2, 4, 3), t(4), t(4))),
    'embedding': (lambda w: F.embedding(tl.tensor([[0, 2], [2, 1]]), w), lambda: (t(3, 4),)),
    # recurrent: the sequences' fused backward has no second derivative (NotImplementedError)
    'lstm_cell': (lambda x, h, c, wi, wh, bi, bh: F.lstm_cell(x, (h, c), wi, wh, bi, bh),
                  lambda: (t(2, 3), t(2, 2), t(2, 2), t(8, 3), t(8, 2), t(8), t(8))),
    'gru_cell': (lambda x, h, wi, wh, bi, bh: F.gru_cell(x, h, wi, wh, bi, bh),
                 lambda: (t(2, 3), t(2, 2), t(6, 3), t(6, 2), t(6), t(6))),
    'lstm (sequence, lengths, reverse)': (
        lambda x, h, c, wi, wh, bi, bh: F.lstm(x, (h, c), wi, wh, bi, bh, lengths=[4, 2],
                                             reverse=True),
        lambda: (t(4, 2, 3), t(2, 2), t(2, 2), t(8, 3), t(8, 2), t(8), t(8))),
    'gru (sequence, lengths)': (
        lambda x, h, wi, wh, bi, bh: F.gru(x, h, wi, wh, bi, bh, lengths=[3, 4]),
        lambda: (t(4, 2, 3), t(2, 2), t(6, 3), t(6, 2), t(6), t(6))),
    # attention: the blockwise path's backward has no second derivative (NotImplementedError)
    'scaled_dot_product_attention (plain, causal)': (
        lambda q, k, v: ATT.plain_attention(q, k, v, is_causal=True),
        lambda: (t(2, 4, 3), t(2, 5, 3), t(2, 5, 2))),
    'scaled_dot_product_attention (blockwise, mask)': (
        lambda q, k, v, m: ATT.blockwise_attention(q, k, v, attn_mask=m, block_q=2, block_k=2),
        lambda: (t(2, 4, 3), t(2, 5, 3), t(2, 5, 2), t(4, 5))),
    'joint_space_time_attention': (F.joint_space_time_attention,
                                   lambda: (t(1, 2, 2, 3, 2), t(1, 2, 2, 3, 2), t(1, 2, 2, 3, 2))),
    'factorized_dot_product_attention': (
        F.factorized_dot_product_attention,
        lambda: (t(1, 2, 2, 3, 2), t(1, 2, 2, 3, 2), t(1, 2, 2, 3, 2))),
}


# the three checks of a row, in the table's column order
CHECKS = ('full', 'fast', 'second')


def worst_relative_error(fn, inputs, eps=1e-6):
    """max |analytic - numeric| / max(|numeric|, 1) over the Jacobian, for the table."""
    outs = _tuple(fn(*inputs))
    v = [np.random.default_rng(1).standard_normal(o.shape) for o in outs]
    diff = [x for x in inputs if isinstance(x, tl.Tensor) and x.requires_grad]
    grads = tl.autograd.grad(list(outs), diff, [tl.tensor(a) for a in v], allow_unused=True)
    worst = 0.0
    for x, g in zip(diff, grads):
        g = np.zeros(x.shape) if g is None else g.numpy()
        for k in range(x.numel()):
            idx = np.unravel_index(k, x.shape)
            orig = x.data[idx].copy()
            x.data[idx] = orig + eps
            plus = sum(float((o.numpy() * a).sum()) for o, a in zip(_tuple(fn(*inputs)), v))
            x.data[idx] = orig - eps
            minus = sum(float((o.numpy() * a).sum()) for o, a in zip(_tuple(fn(*inputs)), v))
            x.data[idx] = orig
            num = (plus - minus) / (2 * eps)
            worst = max(worst, abs(g[idx] - num) / max(abs(num), 1.0))
    return worst


def _tuple(x):
    """The outputs as one flat tuple (lstm returns output, (h_n, c_n))."""
    if not isinstance(x, tuple):
        return (x,)
    return tuple(o for item in x for o in _tuple(item))


def matching_ops(words=None):
    """The names of OPS, in table order, that contain one of `words` (all of them without words)."""
    words = list(words or [])
    return [name for name in OPS if not words or any(w in name for w in words)]


def run_op(name, seed=0):
    """Check one op of OPS; returns its row, a dict:
    op (the name), full, fast, second ('ok', 'FAIL' or 'n/a'), worst_relative_error (float),
    seconds (float), failed (bool), errors (the GradcheckError messages of the failed checks)."""
    global _rng
    if name not in OPS:
        raise KeyError(f"gradcheck_suite: unknown op {name!r}; the ops are: {', '.join(OPS)}")
    fn, make = OPS[name]
    _rng = np.random.default_rng([seed, list(OPS).index(name)])
    inputs = make()
    start = time.perf_counter()
    row = {'op': name}
    errors = []
    for column, check in zip(CHECKS, (lambda: tl.gradcheck(fn, inputs),
                                      lambda: tl.gradcheck(fn, inputs, fast_mode=True),
                                      lambda: tl.gradgradcheck(fn, inputs))):
        try:
            check()
            row[column] = 'ok'
        except tl.GradcheckError as e:
            row[column] = 'FAIL'
            errors.append(f"{column}: {e}")
        except NotImplementedError:         # a fused backward without second derivatives
            row[column] = 'n/a'
    row['worst_relative_error'] = float(worst_relative_error(fn, inputs))
    row['seconds'] = time.perf_counter() - start
    row['failed'] = bool(errors)
    row['errors'] = errors
    return row


def run_suite(words=None, seed=0, on_row=None):
    """Check every op whose name contains one of `words` (all ops without words), in table order;
    returns the list of rows (see run_op).  on_row(row) is called after each op (to print the
    table as it grows)."""
    rows = []
    for name in matching_ops(words):
        row = run_op(name, seed)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


_WIDTH = 88


def format_header():
    """The table's header and rule."""
    return (f"{'op':46s} {'full':>5s} {'fast':>5s} {'2nd':>5s} {'worst rel err':>14s} {'time':>7s}\n"
            + '-' * _WIDTH)


def format_row(row):
    """One op's line of the table."""
    return (f"{row['op']:46s} {row['full']:>5s} {row['fast']:>5s} {row['second']:>5s} "
            f"{row['worst_relative_error']:14.2e} {row['seconds']:6.2f}s")


def format_footer(rows):
    """The closing rule and the count of ops checked and failed."""
    failed = sum(row['failed'] for row in rows)
    return '-' * _WIDTH + f"\n{len(rows)} ops checked in float64, {failed} failed"


def format_table(rows):
    """The whole table: header, one line per row, footer."""
    return '\n'.join([format_header()] + [format_row(r) for r in rows] + [format_footer(rows)])

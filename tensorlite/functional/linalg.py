"""Matrix products: matmul (NumPy semantics), einsum (backward as einsums), linear (PyTorch layout)."""
import string

import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ._util import xp_of
from .shape import broadcast_to, reshape, sum_to, unsqueeze


def _stacked_times_matrix(a, b):
    """a (..., n, k) @ b (k, m) as ONE GEMM over the rows of every matrix of the stack: NumPy's
    matmul runs a stack as one GEMM per matrix, and a stack of small ones (TimeSformer's temporal
    tokens: 392 matrices of 8 rows at ViT-B width) ran at 41 GFLOP/s against 197 for the same
    rows as one (docs/performance.md "Whole-model training steps")."""
    xp = xp_of(a)
    if a.ndim <= 2 or b.ndim != 2:
        return xp.matmul(a, b)
    rows = int(np.prod(a.shape[:-1]))           # not -1: a reshape to (-1, 0) is ambiguous
    return xp.matmul(a.reshape(rows, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[1],))


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _stacked_times_matrix(a, b)

    @staticmethod
    def backward(ctx, gy):
        a, b = ctx.saved_tensors
        if a.ndim == 1 and b.ndim == 1:                  # dot product: gy is a scalar
            return (gy * b if ctx.needs_input_grad[0] else None,
                    gy * a if ctx.needs_input_grad[1] else None)
        a2, b2, g2 = a, b, gy
        if a.ndim == 1:                                  # (k,) acts as (1, k)
            a2, g2 = unsqueeze(a, 0), unsqueeze(g2, -2)
        if b.ndim == 1:                                  # (k,) acts as (k, 1)
            b2, g2 = unsqueeze(b, -1), unsqueeze(g2, -1)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = reshape(sum_to(matmul(g2, b2.mT), a2.shape), a.shape)     # (..., n, k)
        if ctx.needs_input_grad[1]:
            gb = reshape(sum_to(matmul(a2.mT, g2), b2.shape), b.shape)     # (..., k, m)
        return ga, gb


def matmul(input, other):
    """NumPy's matmul: 1-D operands are promoted and the added dim removed; batch dims broadcast."""
    a, b = input, other
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul: expected two Tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)}: both operands "
                         "need at least one dim (use mul for scalars)")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not fit: "
                         f"inner dims {k_a} and {k_b} differ")
    try:
        np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except ValueError:
        raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)}: batch dims "
                         "cannot be broadcast together") from None
    return MatMul.apply(a, b)


class Linear(Function):
    """y = x W^T + b with W of shape (out_features, in_features), as PyTorch."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        y = _stacked_times_matrix(x, w.T)
        if b is None:
            return y
        if b.dtype == y.dtype and y.ndim:
            y += b                              # into the fresh product: no second array
            return y
        return y + b

    @staticmethod
    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        batch = int(np.prod(gy.shape[:-1]))     # not -1: a reshape to (-1, 0) is ambiguous
        g2 = reshape(gy, (batch, w.shape[0]))                   # (batch, out)
        if ctx.needs_input_grad[0]:
            gx = matmul(gy, w)                                   # (..., in)
        if ctx.needs_input_grad[1]:
            gw = matmul(g2.T, reshape(x, (batch, w.shape[1])))  # (out, in)
        if ctx.needs_input_grad[2]:
            gb = g2.sum(dim=0)
        return gx, gw, gb


def linear(input, weight, bias=None):
    """input (..., in_features), weight (out_features, in_features), bias (out_features,)."""
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input shape {tuple(input.shape)} and weight shape "
                         f"{tuple(weight.shape)} do not fit: expected input (..., {weight.shape[-1]}) "
                         "and weight (out_features, in_features)")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    return Linear.apply(input, weight, bias)


# ---- einsum --------------------------------------------------------------------------------------

class Einsum(Function):
    """An einsum whose subscripts are explicit letters (no '...') with matching sizes; the public
    `einsum` prepares that.  The gradient of operand i is again an einsum: of the output gradient
    with every other operand, onto operand i's subscripts."""

    @staticmethod
    def forward(ctx, equation, *arrays):
        ctx.equation = equation
        ctx.save_for_backward(*arrays)
        return xp_of(arrays[0]).einsum(equation, *arrays, optimize=len(arrays) > 1)

    @staticmethod
    def backward(ctx, gy):
        ops = ctx.saved_tensors
        lhs, out = ctx.equation.split('->')
        subs = lhs.split(',')
        sizes = {c: n for s, t in zip(subs, ops) for c, n in zip(s, t.shape)}
        grads = [None]
        for i, target in enumerate(subs):
            if not ctx.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            terms = [(out, gy)] + [(s, t) for j, (s, t) in enumerate(zip(subs, ops)) if j != i]
            fresh = [c for c in string.ascii_letters if c not in ctx.equation]
            seen, tgt = set(), ''
            for c in target:                     # a repeated letter (a diagonal): route through I
                if c in seen:
                    f = fresh.pop()
                    eye = xp_of(gy.data).eye(sizes[c], dtype=gy.dtype)
                    terms.append((c + f, Tensor(eye)))
                    tgt += f
                else:
                    seen.add(c)
                    tgt += c
            present = set(''.join(s for s, _ in terms))
            kept = ''.join(c for c in tgt if c in present)
            g = einsum(','.join(s for s, _ in terms) + '->' + kept, *[t for _, t in terms])
            if kept != tgt:                      # letters summed only inside operand i: broadcast
                g = reshape(g, tuple(ops[i].shape[k] if c in present else 1
                                     for k, c in enumerate(tgt)))
                g = broadcast_to(g, ops[i].shape)
            grads.append(g)
        return tuple(grads)


def einsum(equation, *operands):
    """NumPy/PyTorch einsum, with '...' and implicit output; differentiable to any order."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(' ', '')
    lhs, arrow, rhs = eq.partition('->')
    subs = lhs.split(',')
    if len(subs) != len(operands):
        raise ValueError(f"einsum: equation {equation!r} has {len(subs)} operands, "
                         f"{len(operands)} were given")
    bad = set(eq) - set(string.ascii_letters) - set(',->.')
    if bad:
        raise ValueError(f"einsum: equation {equation!r} has characters {sorted(bad)} that are not "
                         "letters")
    fresh = [c for c in string.ascii_letters if c not in eq]
    n_ell = []
    for s, t in zip(subs, operands):
        named = len(s.replace('...', ''))
        k = t.ndim - named if '...' in s else 0
        if k < 0 or ('...' not in s and named != t.ndim):
            raise ValueError(f"einsum: subscripts {s!r} do not fit operand of shape {tuple(t.shape)}")
        n_ell.append(k)
    L = max(n_ell, default=0)
    ell = ''.join(fresh[:L])
    if L:
        ell_shape = np.broadcast_shapes(*[tuple(t.shape[s.index('...'):s.index('...') + k])
                                          if k else () for s, t, k in zip(subs, operands, n_ell)])
        new_ops = []
        for s, t, k in zip(subs, operands, n_ell):
            if '...' in s:
                p = s.index('...')
                full = t.shape[:p] + ell_shape[L - k:] + t.shape[p + k:]
                if tuple(full) != tuple(t.shape):
                    t = broadcast_to(t, full)
            new_ops.append(t)
        operands = new_ops
    subs = [s.replace('...', ell[L - k:]) for s, k in zip(subs, n_ell)]
    if arrow:
        out = rhs.replace('...', ell)
    else:
        letters = ''.join(subs)
        out = ell + ''.join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    sizes = {}
    for s, t in zip(subs, operands):
        for c, n in zip(s, t.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: subscript {c!r} has size {sizes[c]} in one operand and "
                                 f"{n} in another (equation {equation!r})")
    return Einsum.apply(','.join(subs) + '->' + out, *operands)

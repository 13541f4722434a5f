"""Gradient checking by central differences.

`gradcheck(fn, inputs)` compares the Jacobian that backward computes (analytic) with
(f(x + eps) - f(x - eps)) / 2 eps (numeric):

- slow mode: the whole Jacobian, one column per input element (numeric) and one row per output
  element (analytic: a backward pass with a one-hot output gradient);
- fast mode: one number per input, v^T J u, for a random unit direction u in the input and v in the
  output (one backward pass and two evaluations per input), as PyTorch's fast mode and Chainer's
  check_backward do.  On failure it then looks for the worst element of that input.

A mismatch raises `GradcheckError` naming the input, the worst element, the analytic and numeric
values and the errors.  `gradgradcheck` runs gradcheck on the function x, v -> (dfn/dx)^T v, built
with create_graph=True, which checks second derivatives.
"""
import warnings

import numpy as np

from .. import backend
from .engine import grad as autograd_grad
from .tensor import Tensor


class GradcheckError(RuntimeError):
    """Analytic and numeric gradients disagree."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn, inputs):
    """fn's floating-point outputs as a tuple of Tensors."""
    outs = _as_tuple(fn(*inputs))
    return tuple(o for o in outs if isinstance(o, Tensor) and o.dtype.kind == 'f')


def _flat_outputs(fn, inputs):
    """fn(*inputs) evaluated, outputs flattened and joined into one float64 NumPy vector."""
    outs = _outputs(fn, inputs)
    parts = [backend.as_numpy(o.data).astype(np.float64).reshape(-1) for o in outs]
    return np.concatenate(parts) if parts else np.zeros(0)


def _central(t, idx, eps, evaluate):
    """(evaluate() at x_idx + eps, evaluate() at x_idx - eps), then x_idx restored exactly."""
    orig = t.data[idx].copy()
    t.data[idx] = orig + eps
    plus = evaluate()
    t.data[idx] = orig - eps
    minus = evaluate()
    t.data[idx] = orig
    return plus, minus


def _fmt(idx, shape):
    return str(tuple(int(i) for i in np.unravel_index(idx, shape))) if len(shape) else '()'


def _report(i, inp, a, n, k, out_desc, rtol, atol, mode):
    err = abs(a - n)
    rel = err / max(abs(n), 1e-300)
    return (f"gradcheck ({mode}): backward disagrees with central differences for input {i} "
            f"(shape {tuple(inp.shape)}) at element {_fmt(k, inp.shape)}{out_desc}: "
            f"analytic {a:.10g}, numeric {n:.10g}, abs error {err:.3g}, rel error {rel:.3g} "
            f"(atol {atol:g}, rtol {rtol:g})")


def _fail(msg, raise_exception):
    if raise_exception:
        raise GradcheckError(msg)
    warnings.warn(msg, stacklevel=3)
    return False


def _prepare(inputs):
    inputs = _as_tuple(inputs)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad; pass Tensors with requires_grad=True")
    for i in diff:
        if inputs[i].dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} has dtype {inputs[i].dtype}; central differences "
                          "need float64 to be exact enough (use .double())", stacklevel=3)
    return inputs, diff


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False, raise_exception=True):
    """Check fn's backward against central differences for every input that requires grad.
    Returns True, or raises GradcheckError (returns False when raise_exception=False)."""
    inputs, diff = _prepare(inputs)
    check = _fast if fast_mode else _slow
    return check(fn, inputs, diff, eps, atol, rtol, raise_exception)


def _slow(fn, inputs, diff, eps, atol, rtol, raise_exception):
    outs = _outputs(fn, inputs)
    sizes = [o.numel() for o in outs]
    total = sum(sizes)
    diff_t = [inputs[i] for i in diff]
    # analytic Jacobian: row r = d out[r] / d inputs, by a backward pass with a one-hot gradient
    analytic = [np.zeros((total, inputs[i].numel())) for i in diff]
    r = 0
    for o, m in zip(outs, sizes):
        for j in range(m):
            if o.requires_grad:
                onehot = np.zeros(m, dtype=o.dtype)
                onehot[j] = 1
                g = Tensor(backend.to_device(onehot.reshape(o.shape), o.device))
                grads = autograd_grad([o], diff_t, [g], retain_graph=True, allow_unused=True)
                for c, gi in enumerate(grads):
                    if gi is not None:
                        analytic[c][r] = backend.as_numpy(gi.data).astype(np.float64).reshape(-1)
            r += 1
    # numeric Jacobian: column k = (f(x + eps e_k) - f(x - eps e_k)) / 2 eps
    for c, i in enumerate(diff):
        t = inputs[i]
        numeric = np.zeros((total, t.numel()))
        for k in range(t.numel()):
            plus, minus = _central(t, np.unravel_index(k, t.shape), eps,
                                   lambda: _flat_outputs(fn, inputs))
            numeric[:, k] = (plus - minus) / (2 * eps)
        bad = np.abs(analytic[c] - numeric) - (atol + rtol * np.abs(numeric))
        if bad.size and (bad.max() > 0 or np.isnan(bad).any()):
            flat = np.nan_to_num(bad, nan=np.inf)
            row, k = np.unravel_index(int(np.argmax(flat)), bad.shape)
            o, off = _locate(row, sizes)
            out_desc = f" (output {o} element {_fmt(off, outs[o].shape)})"
            return _fail(_report(i, t, analytic[c][row, k], numeric[row, k], k, out_desc, rtol,
                                 atol, 'full Jacobian'), raise_exception)
    return True


def _locate(row, sizes):
    for o, m in enumerate(sizes):
        if row < m:
            return o, row
        row -= m
    return len(sizes) - 1, row


def _unit(rng, shape):
    v = rng.standard_normal(shape)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _fast(fn, inputs, diff, eps, atol, rtol, raise_exception):
    rng = np.random.default_rng(0)              # its own generator: tl.manual_seed is untouched
    outs = _outputs(fn, inputs)
    vs = [_unit(rng, o.shape) for o in outs]
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    diff_t = [inputs[i] for i in diff]
    grads = [None] * len(diff)
    if live:
        gos = [Tensor(backend.to_device(v.astype(o.dtype), o.device)) for o, v in live]
        grads = autograd_grad([o for o, _ in live], diff_t, gos, retain_graph=True, allow_unused=True)
    grads = [np.zeros(t.shape) if g is None else backend.as_numpy(g.data).astype(np.float64)
             for g, t in zip(grads, diff_t)]
    v_flat = np.concatenate([v.reshape(-1) for v in vs]) if vs else np.zeros(0)

    def vf():                                   # v^T f(inputs)
        return float(v_flat @ _flat_outputs(fn, inputs))

    for c, i in enumerate(diff):
        t = inputs[i]
        if t.numel() == 0:
            continue
        u = _unit(rng, t.shape)
        analytic = float((grads[c] * u).sum())
        u_dev = backend.to_device(u.astype(t.dtype), t.device)
        orig, xp = t.data, backend.array_module(t.data)
        t.data = xp.asarray(orig + eps * u_dev)          # asarray: 0-d arithmetic gives a scalar
        plus = vf()
        t.data = xp.asarray(orig - eps * u_dev)
        minus = vf()
        t.data = orig
        numeric = (plus - minus) / (2 * eps)
        if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
            return _fail(_fast_detail(t, i, grads[c], vf, analytic, numeric, eps, atol, rtol),
                         raise_exception)
    return True


def _fast_detail(t, i, g, vf, analytic, numeric, eps, atol, rtol, limit=100_000):
    """After a fast-mode failure: d(v^T f)/dx_k element by element (2 evaluations each) to name
    the worst element; for huge inputs only the projection is reported."""
    head = (f"gradcheck (fast mode): v^T J u for input {i} (shape {tuple(t.shape)}) is "
            f"analytic {analytic:.10g}, numeric {numeric:.10g}, abs error "
            f"{abs(analytic - numeric):.3g}")
    if t.numel() > limit:
        return head + f"; the input has more than {limit} elements, rerun with fast_mode=False on a smaller one"
    flat_g = g.reshape(-1)
    worst, worst_k, worst_n = -np.inf, 0, 0.0
    for k in range(t.numel()):
        plus, minus = _central(t, np.unravel_index(k, t.shape), eps, vf)
        n = (plus - minus) / (2 * eps)
        excess = abs(flat_g[k] - n) - (atol + rtol * abs(n))
        if np.isnan(excess):
            excess = np.inf
        if excess > worst:
            worst, worst_k, worst_n = excess, k, n
    return head + ". " + _report(i, t, flat_g[worst_k], worst_n, worst_k,
                                 " of the projection v^T f", rtol, atol, 'fast mode')


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False,
                  raise_exception=True):
    """gradcheck of (x, v) -> (d fn / d x)^T v: checks that backward's own backward is right."""
    inputs, diff = _prepare(inputs)
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(1)
        grad_outputs = tuple(Tensor(backend.to_device(rng.standard_normal(o.shape).astype(o.dtype),
                                                      o.device), requires_grad=True) for o in outs)
    grad_outputs = _as_tuple(grad_outputs)
    if len(grad_outputs) != len(outs):
        raise ValueError(f"gradgradcheck: {len(outs)} outputs but {len(grad_outputs)} grad_outputs")
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        ys = _outputs(fn, xs)
        live = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
        xs_diff = [xs[i] for i in diff]
        if not live:
            return tuple(Tensor(backend.array_module(x.data).zeros(x.shape, x.dtype)) for x in xs_diff)
        gs = autograd_grad([y for y, _ in live], xs_diff, [v for _, v in live], create_graph=True,
                           allow_unused=True)
        return tuple(Tensor(backend.array_module(x.data).zeros(x.shape, x.dtype)) if g is None else g
                     for g, x in zip(gs, xs_diff))

    return gradcheck(first_derivative, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol,
                     rtol=rtol, fast_mode=fast_mode, raise_exception=raise_exception)

"""What the engine costs over the NumPy it runs on, and what the fused GELU kernel saves.

    python benchmarks/bench_engine.py [--repeats 15]

Each case times tensorlite and a reference written directly in NumPy (PyTorch too, when
installed) in the same run, interleaved (A, B, A, B, ...), and prints medians and their ratio:
this machine is noisy, so only ratios measured side by side mean anything.

- mlp_step: forward, backward and SGD step of a 3-layer MLP (256 x 1024 -> 1024 -> 1024 -> 10,
  float32) against the same computation hand-written in NumPy: the engine's overhead when GEMMs
  dominate.
- op_chain: 200 small elementwise ops (64 elements) forward and backward: the per-op cost of the
  graph (Tensor, Context, the walk) when the arrays are tiny, in microseconds per op.
- gelu: tanh-approximate GELU forward + backward on 4M float32 values, the fused Numba kernel
  against the NumPy expression (which makes about a dozen passes over memory).
"""
import argparse

import numpy as np

import tensorlite as tl
from _timing import interleaved_medians
import tensorlite.functional as F

try:
    import torch
except ImportError:
    torch = None


def compare(name, cases, repeats, unit='ms', scale=1e3, per=1):
    """cases: [(label, fn)], first one is tensorlite.  Interleaved, then medians."""
    med = interleaved_medians(cases, repeats)
    base = cases[0][0]
    for label, _ in cases:
        ratio = med[base] / med[label]
        print(f"  {name:9s} {label:26s} median {med[label] * scale / per:9.2f} {unit}"
              + ('' if label == base else f"   tensorlite / this = {ratio:5.2f}"))


def mlp_case(repeats):
    rng = np.random.default_rng(0)
    B, D, H, C = 256, 1024, 1024, 10
    x = rng.standard_normal((B, D)).astype(np.float32)
    y = rng.integers(0, C, B)
    ws = [(rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(np.float32)
          for i, o in ((D, H), (H, H), (H, C))]
    bs = [np.zeros(w.shape[0], np.float32) for w in ws]
    lr = 1e-3

    params = [tl.tensor(a, requires_grad=True) for pair in zip(ws, bs) for a in pair]
    xt, yt = tl.tensor(x), tl.tensor(y)

    def step_tl():
        h = xt
        for k in range(3):
            h = F.linear(h, params[2 * k], params[2 * k + 1])
            if k < 2:
                h = F.relu(h)
        loss = F.cross_entropy(h, yt)
        for p in params:
            p.grad = None
        loss.backward()
        with tl.no_grad():
            for p in params:
                p -= lr * p.grad

    wn = [w.copy() for w in ws]
    bn = [b.copy() for b in bs]

    def step_np():
        acts, h = [x], x
        for k in range(3):
            h = h @ wn[k].T + bn[k]
            if k < 2:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = p
        g[np.arange(B), y] -= 1
        g /= B
        for k in (2, 1, 0):
            gw = g.T @ acts[k]
            gb = g.sum(0)
            if k:
                g = (g @ wn[k]) * (acts[k] > 0)
            wn[k] -= lr * gw
            bn[k] -= lr * gb

    cases = [('tensorlite', step_tl), ('numpy by hand', step_np)]
    if torch is not None:
        torch.set_num_threads(2)
        tp = [torch.tensor(a, requires_grad=True) for pair in zip(ws, bs) for a in pair]
        tx, ty = torch.tensor(x), torch.tensor(y)

        def step_torch():
            h = tx
            for k in range(3):
                h = torch.nn.functional.linear(h, tp[2 * k], tp[2 * k + 1])
                if k < 2:
                    h = torch.relu(h)
            loss = torch.nn.functional.cross_entropy(h, ty)
            for p in tp:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in tp:
                    p -= lr * p.grad
        cases.append(('torch (reference)', step_torch))
    compare('mlp_step', cases, repeats)


def chain_case(repeats, n_ops=200):
    a = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    t = tl.tensor(a, requires_grad=True)

    def chain_tl():
        h = t
        for _ in range(n_ops // 2):
            h = (h * 0.999).tanh()
        h.sum().backward()

    def chain_np():                          # the same arithmetic, forward and backward, by hand
        h, ys = a, []
        for _ in range(n_ops // 2):
            h = np.tanh(h * 0.999)
            ys.append(h)
        g = np.ones_like(a)
        for yv in reversed(ys):
            g = g * (1 - yv * yv) * 0.999
        return g

    compare('op_chain', [('tensorlite', chain_tl), ('numpy by hand', chain_np)], repeats,
            unit='us/op', scale=1e6, per=n_ops)


def gelu_case(repeats):
    a = np.random.default_rng(0).standard_normal(4_000_000).astype(np.float32)
    t = tl.tensor(a, requires_grad=True)
    gy = tl.ones(a.size)

    def gelu_tl():
        y = F.gelu(t, approximate='tanh')
        y.backward(gy)
        t.grad = None

    k, c = np.float32(np.sqrt(2 / np.pi)), np.float32(0.044715)

    def gelu_np():
        inner = k * (a + c * a * a * a)
        th = np.tanh(inner)
        y = 0.5 * a * (1 + th)
        d = 0.5 * (1 + th) + 0.5 * a * (1 - th * th) * k * (1 + 3 * c * a * a)
        return y, d

    cases = [('tensorlite (fused kernel)', gelu_tl), ('numpy expression', gelu_np)]
    if torch is not None:
        tt = torch.tensor(a, requires_grad=True)
        tg = torch.ones(a.size)

        def gelu_torch():
            y = torch.nn.functional.gelu(tt, approximate='tanh')
            y.backward(tg)
            tt.grad = None
        cases.append(('torch (reference)', gelu_torch))
    compare('gelu', cases, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=15)
    args = ap.parse_args()
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    mlp_case(args.repeats)
    chain_case(args.repeats)
    gelu_case(args.repeats)


if __name__ == '__main__':
    main()

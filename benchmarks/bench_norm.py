"""Do the fused normalization kernels earn their place?  Fused kernels against the NumPy path of
tensorlite/functional/normalization.py, on activation shapes of the lesson's models, float32:

    python benchmarks/bench_norm.py [--repeats 10] [--sizes]

- batch_norm over (8, 64, 16, 56, 56), training (batch statistics): 25.7M values, 103 MB.
- layer_norm over (64, 1568, 384) (a ViT-B token tensor for 8x14x14 tubelets): 38.5M values, 154 MB.

For each: the forward and the first-order backward on raw arrays, fused (`fused=True`, the Numba
kernels) against the NumPy path (`fused=False`, what runs without them); then forward + backward
through the public function (tensorlite) against PyTorch, when installed.  The candidates run
interleaved (A, B, A, B, ...) and the medians are printed with their ratio: this machine is
shared and noisy, so only ratios measured side by side mean anything.

--sizes adds the small end: forward + backward on arrays, fused against NumPy, from 2^10 to 2^20
values.  A parallel kernel launch has a fixed cost that NumPy does not pay, which is where
normalization.FUSED_MIN_SIZE (below it the Functions take the NumPy path) comes from.
"""
import argparse

import numba
import numpy as np

import tensorlite as tl
from _timing import interleaved_medians
from tensorlite.functional import normalization as N

try:
    import torch
except ImportError:
    torch = None


def compare(name, cases, repeats, unit='ms'):
    """cases: [(label, fn)]; the first is the one the others are compared with."""
    med = interleaved_medians(cases, repeats)
    base = cases[0][0]
    for label, _ in cases:
        ratio = '' if label == base else f"   {label} / {base} = {med[label] / med[base]:5.2f}"
        scale = 1e3 if unit == 'ms' else 1e6
        print(f"  {name:22s} {label:22s} median {med[label] * scale:8.1f} {unit}{ratio}")


def array_cases(name, layout, x, w, b, gy, repeats):
    """Forward and first-order backward on arrays, fused kernels against the NumPy path."""
    y, mean, _, rstd = N.normalize_arrays(x, w, b, layout, 1e-5)
    ref = N.normalize_arrays(x, w, b, layout, 1e-5, fused=False)[0]
    print(f"  {name}: max |fused - numpy| forward {np.abs(y - ref).max():.2e}")
    compare(f'{name} forward', [
        ('fused kernels', lambda: N.normalize_arrays(x, w, b, layout, 1e-5)),
        ('numpy path', lambda: N.normalize_arrays(x, w, b, layout, 1e-5, fused=False)),
    ], repeats)
    compare(f'{name} backward', [
        ('fused kernels', lambda: N.normalize_grad_arrays(x, gy, w, mean, rstd, layout, True)),
        ('numpy path', lambda: N.normalize_grad_arrays(x, gy, w, mean, rstd, layout, True,
                                                       fused=False)),
    ], repeats)


def end_to_end(name, tl_fn, torch_fn, arrays, repeats):
    """Forward + backward through the public function, tensorlite against PyTorch."""
    ts = [tl.tensor(a, requires_grad=True) for a in arrays[:-1]]
    gy = tl.tensor(arrays[-1])

    def run_tl():
        tl_fn(*ts).backward(gy)
        for t in ts:
            t.grad = None

    cases = [('tensorlite', run_tl)]
    if torch is not None:
        tts = [torch.tensor(a, requires_grad=True) for a in arrays[:-1]]
        tgy = torch.tensor(arrays[-1])

        def run_torch():
            torch_fn(*tts).backward(tgy)
            for t in tts:
                t.grad = None
        cases.append(('torch', run_torch))
    compare(f'{name} fwd+bwd', cases, repeats)


def sizes_case(repeats):
    """Forward + backward on arrays, fused kernels against the NumPy path, small to large."""
    rng = np.random.default_rng(1)
    print(f"small inputs, float32, forward + backward on arrays "
          f"(FUSED_MIN_SIZE = {N.FUSED_MIN_SIZE})")
    for k in range(10, 21, 2):
        for name, shape, layout in [('batch_norm', (8, 16, 2 ** k // 128), N.batch_layout),
                                    ('layer_norm', (2 ** k // 256, 256), N.layer_layout)]:
            layout = layout(shape) if name == 'batch_norm' else layout(shape, 1)
            x = rng.standard_normal(shape, dtype=np.float32)
            gy = rng.standard_normal(shape, dtype=np.float32)
            w = rng.standard_normal(layout.param, dtype=np.float32)

            def step(fused):
                _, mean, _, rstd = N.normalize_arrays(x, w, None, layout, 1e-5, fused=fused)
                N.normalize_grad_arrays(x, gy, w, mean, rstd, layout, True, fused=fused)
            compare(f'{name} 2^{k}', [('fused kernels', lambda: step(True)),
                                      ('numpy path', lambda: step(False))], repeats, unit='us')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=10)
    ap.add_argument('--sizes', action='store_true', help='also time small inputs (2^10 to 2^20)')
    args = ap.parse_args()
    if torch is not None:
        torch.set_num_threads(numba.get_num_threads())
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, numba {numba.__version__} "
          f"({numba.get_num_threads()} threads)"
          + (f", torch {torch.__version__}" if torch else ", torch not installed"))
    rng = np.random.default_rng(0)

    shape = (8, 64, 16, 56, 56)
    x = (2 * rng.standard_normal(shape, dtype=np.float32) + 1)
    gy = rng.standard_normal(shape, dtype=np.float32)
    w, b = rng.standard_normal(64, dtype=np.float32), rng.standard_normal(64, dtype=np.float32)
    print(f"batch_norm, training, {shape} float32")
    array_cases('batch_norm', N.batch_layout(shape), x, w, b, gy, args.repeats)
    end_to_end('batch_norm',
               lambda x, w, b: N.batch_norm(x, None, None, w, b, training=True),
               lambda x, w, b: torch.nn.functional.batch_norm(x, None, None, w, b, training=True),
               [x, w, b, gy], args.repeats)
    del x, gy

    shape = (64, 1568, 384)
    x = rng.standard_normal(shape, dtype=np.float32)
    gy = rng.standard_normal(shape, dtype=np.float32)
    w, b = rng.standard_normal(384, dtype=np.float32), rng.standard_normal(384, dtype=np.float32)
    print(f"layer_norm, {shape} float32")
    array_cases('layer_norm', N.layer_layout(shape, 1), x, w, b, gy, args.repeats)
    end_to_end('layer_norm',
               lambda x, w, b: N.layer_norm(x, 384, w, b),
               lambda x, w, b: torch.nn.functional.layer_norm(x, (384,), w, b),
               [x, w, b, gy], args.repeats)
    del x, gy
    if args.sizes:
        sizes_case(5 * args.repeats)


if __name__ == '__main__':
    main()

"""What the pooling kernels cost: max_pool3d and avg_pool3d, forward + backward, on a video-sized
batch (8, 64, 16, 56, 56) float32 (103 MB), with the ResNet-3D stem's window: kernel 3, stride 2,
padding 1.  With --interpolate, also trilinear interpolate forward + backward.

    python benchmarks/bench_pool.py [--repeats 7] [--shape 8 64 16 56 56] [--threads 2]
                                    [--interpolate]

tensorlite and PyTorch (when installed, with as many threads as Numba) run interleaved
(A, B, A, B, ...) in the same process and the medians are printed with their ratio: this machine
is noisy, so only ratios measured side by side mean anything.
"""
import argparse

import numba
import numpy as np

import tensorlite as tl
from _timing import interleaved_medians
from tensorlite.functional import pool as P

try:
    import torch
except ImportError:
    torch = None


def compare(name, cases, repeats):
    """cases: [(label, fn)], first one is tensorlite.  Interleaved, then medians."""
    med = interleaved_medians(cases, repeats)
    base = cases[0][0]
    for label, _ in cases:
        ratio = med[base] / med[label]
        print(f"  {name:33s} {label:12s} median {med[label] * 1e3:8.1f} ms"
              + ('' if label == base else f"   tensorlite / this = {ratio:5.2f}"))


def pool_case(name, tl_fn, torch_fn, x, repeats):
    t = tl.tensor(x, requires_grad=True)
    with tl.no_grad():
        gy = tl.tensor(np.random.default_rng(1).standard_normal(tl_fn(t).shape).astype(x.dtype))

    def run_tl():
        t.grad = None
        tl_fn(t).backward(gy)

    def run_tl_fwd():
        with tl.no_grad():
            tl_fn(t)

    cases = [('tensorlite', run_tl)]
    fwd_cases = [('tensorlite', run_tl_fwd)]
    if torch is not None:
        tt = torch.tensor(x, requires_grad=True)
        tg = torch.tensor(gy.numpy())

        def run_torch():
            tt.grad = None
            torch_fn(tt).backward(tg)

        def run_torch_fwd():
            with torch.no_grad():
                torch_fn(tt)
        cases.append(('torch', run_torch))
        fwd_cases.append(('torch', run_torch_fwd))
    compare(f'{name} forward', fwd_cases, repeats)
    compare(f'{name} forward+backward', cases, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--shape', type=int, nargs=5, default=(8, 64, 16, 56, 56))
    ap.add_argument('--threads', type=int, default=numba.config.NUMBA_NUM_THREADS)
    ap.add_argument('--interpolate', action='store_true',
                    help='also time trilinear interpolate (time only, and x2 on every axis)')
    args = ap.parse_args()
    numba.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"tensorlite {tl.__version__}, numpy {np.__version__}, numba {numba.__version__} "
          f"({args.threads} threads)" + (f", torch {torch.__version__}" if torch else
                                         ", torch not installed"))
    print(f"input {tuple(args.shape)} float32, kernel 3, stride 2, padding 1")
    x = np.random.default_rng(0).standard_normal(args.shape).astype(np.float32)
    pool_case('max_pool3d', lambda a: P.max_pool3d(a, 3, 2, 1),
              lambda a: torch.nn.functional.max_pool3d(a, 3, 2, 1), x, args.repeats)
    pool_case('avg_pool3d', lambda a: P.avg_pool3d(a, 3, 2, 1),
              lambda a: torch.nn.functional.avg_pool3d(a, 3, 2, 1), x, args.repeats)
    if args.interpolate:
        n, c = args.shape[:2]
        x = np.random.default_rng(0).standard_normal((n, c, 32, 28, 28)).astype(np.float32)
        print(f"input {x.shape} float32, trilinear to T = 8 (SlowFast's fast -> slow rate)")
        kw = dict(size=(8, 28, 28), mode='trilinear')
        pool_case('interpolate T/4', lambda a: P.interpolate(a, **kw),
                  lambda a: torch.nn.functional.interpolate(a, **kw), x, args.repeats)
        x = np.random.default_rng(0).standard_normal((n // 2, c, 8, 28, 28)).astype(np.float32)
        print(f"input {x.shape} float32, trilinear x2 on every axis")
        kw = dict(scale_factor=2, mode='trilinear')
        pool_case('interpolate x2', lambda a: P.interpolate(a, **kw),
                  lambda a: torch.nn.functional.interpolate(a, **kw), x, args.repeats)


if __name__ == '__main__':
    main()

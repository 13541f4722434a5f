"""Convolution speed and memory: tensorlite against PyTorch CPU, and against NumPy's own GEMM rate.

    python benchmarks/bench_conv.py [--repeats 7] [--no-memory] [--only 0,1] [--depthwise]

Time: every case runs forward (no graph) and forward + backward (all gradients: input, weight,
bias), float32, tensorlite and PyTorch (torch.set_num_threads(2)) each in a worker process of its
own that imports only its own library (benchmarks/_timing.py says why), their calls interleaved
(tl, torch, tl, torch, ...) with a 50 ms pause before each timed call, after one warm-up each;
medians are printed with GFLOP/s (2 * N * C_out * C_in/groups * kernel volume * output positions
per pass, 3 passes for forward + backward), the ratio tensorlite / PyTorch (<= 1 means tensorlite is as fast or faster) and the
share of NumPy's float32 GEMM rate, measured in the same run as the median of a 2048^3 matmul.

Memory: each side runs forward + backward once more in a fresh subprocess that imports only its
own library (this script with --measure-memory), after the inputs and a warm-up on a tiny
convolution; the number is the peak resident set during the step minus the resident set just
before it -- what the convolution itself added at its peak (output, gradients, workspace).  The
peak is the process's own high-water mark (VmHWM in /proc/self/status, reset before the step;
resource.getrusage ru_maxrss where /proc is missing -- but on Linux ru_maxrss is inherited across
exec from the parent, which would hide the child's peak).  Both sides are measured the same way.

--depthwise times the direct depthwise kernels against the vol2col + GEMM path on a
(8, 64, 16, 56, 56) depthwise 3x3x3 convolution (the measurement behind `_use_direct` in
tensorlite/kernels/conv_plan.py).
"""
import argparse
import importlib.util
import json
import statistics

import numpy as np

import _timing

CASES = [   # (name, input shape, C_out, kernel, padding)
    ('conv3d', (8, 3, 16, 56, 56), 64, (3, 3, 3), 1),
    ('conv3d', (8, 64, 8, 28, 28), 64, (3, 3, 3), 1),
    ('conv3d', (4, 16, 8, 32, 32), 32, (3, 3, 3), 1),
    ('conv2d', (16, 64, 56, 56), 64, (3, 3), 1),
]


def flops(xs, c_out, kernel):
    """Forward multiply-adds x 2; 'same' padding and stride 1, so output positions = input's."""
    return 2 * xs[0] * c_out * xs[1] * int(np.prod(kernel)) * int(np.prod(xs[2:]))


def _inputs(xs, c_out, kernel, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs, dtype=np.float32)
    w = (rng.standard_normal((c_out, xs[1]) + kernel, dtype=np.float32)
         / np.sqrt(xs[1] * np.prod(kernel))).astype(np.float32)
    b = rng.standard_normal(c_out, dtype=np.float32)
    return x, w, b


def tensorlite_side(name, xs, c_out, kernel, padding):
    import tensorlite as tl
    from tensorlite.functional import conv as C
    fn = getattr(C, name)
    x, w, b = (tl.tensor(a, requires_grad=True) for a in _inputs(xs, c_out, kernel))

    def forward():
        with tl.no_grad():
            fn(x, w, b, padding=padding)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        y = fn(x, w, b, padding=padding)
        y.backward(tl.ones_like(y))
    return forward, forward_backward


def torch_side(name, xs, c_out, kernel, padding):
    import torch
    torch.set_num_threads(2)
    fn = getattr(torch.nn.functional, name)
    x, w, b = (torch.tensor(a, requires_grad=True) for a in _inputs(xs, c_out, kernel))

    def forward():
        with torch.no_grad():
            fn(x, w, b, padding=padding)

    def forward_backward():
        x.grad = w.grad = b.grad = None
        y = fn(x, w, b, padding=padding)
        y.backward(torch.ones_like(y))
    return forward, forward_backward


def timed(fn):
    return _timing.timed(fn, pause=0.05)


def numpy_gemm_rate(repeats):
    a = np.random.default_rng(1).standard_normal((2048, 2048), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    ts = [timed(lambda: np.matmul(a, a, out=out)) for _ in range(repeats)]
    return 2 * 2048 ** 3 / statistics.median(ts) / 1e9


def measure_memory(side, case):
    """Run in a subprocess: print the peak resident memory the measured forward + backward added
    above the process's resident memory right before it, in MiB.

    How the peak is read: benchmarks/_timing.py, peak_added_mib."""
    name, xs, c_out, kernel, padding = CASES[case]
    make = tensorlite_side if side == 'tensorlite' else torch_side
    tiny = (1, xs[1]) + (4,) * (len(xs) - 2)
    make(name, tiny, c_out, kernel, padding)[1]()          # imports, JIT/caches, allocator warm
    _, step = make(name, xs, c_out, kernel, padding)
    print(json.dumps(_timing.peak_added_mib(step)))


def memory_of(side, case):
    return _timing.memory_in_subprocess(__file__, side, case)


def time_worker(side, case):
    """Run in a subprocess: serve the case's forward (0) and forward + backward (1) on one side
    (benchmarks/_timing.py, serve), importing only that side's library."""
    make = tensorlite_side if side == 'tensorlite' else torch_side
    _timing.serve(make(*CASES[case]))


def run(args):
    have_torch = importlib.util.find_spec('torch') is not None
    if not have_torch:
        print("PyTorch is not installed: tensorlite alone (pip install -e '.[bench]' to compare)")
    picked = [i for i in range(len(CASES)) if args.only is None or i in args.only]
    gemm = numpy_gemm_rate(args.repeats)
    print(f"NumPy float32 GEMM (2048^3, median of {args.repeats}): {gemm:.0f} GFLOP/s\n")
    header = (f"{'case':38s} {'pass':8s} {'tl ms':>8s} {'torch ms':>9s} {'tl/torch':>8s} "
              f"{'tl GF/s':>8s} {'torch GF/s':>10s} {'tl %GEMM':>8s}")
    print(header)
    rows = []
    for i in picked:
        name, xs, c_out, kernel, padding = CASES[i]
        sides = (('tl', 'tensorlite'), ('torch', 'torch')) if have_torch else (('tl', 'tensorlite'),)
        workers = [_timing.Worker(key, __file__, '--time-worker', side, i) for key, side in sides]
        label = f"{name} {xs}->{c_out} k{'x'.join(map(str, kernel))}"
        try:
            for w in workers:
                w.read(expect='ready')
            meds = [_timing.worker_medians(workers, p, args.repeats) for p in (0, 1)]
        finally:
            for w in workers:
                w.close()
        for p, passes in ((0, 1), (1, 3)):
            med = meds[p]
            work = passes * flops(xs, c_out, kernel)
            t_tl, t_th = med['tl'], med.get('torch')
            line = (f"{label:38s} {['fwd', 'fwd+bwd'][p]:8s} {t_tl * 1e3:8.1f} "
                    + (f"{t_th * 1e3:9.1f} {t_tl / t_th:8.2f} " if t_th else f"{'-':>9s} {'-':>8s} ")
                    + f"{work / t_tl / 1e9:8.1f} "
                    + (f"{work / t_th / 1e9:10.1f} " if t_th else f"{'-':>10s} ")
                    + f"{100 * work / t_tl / 1e9 / gemm:7.0f}%")
            print(line, flush=True)
            rows.append(line)
    if not args.no_memory:
        print("\npeak memory added by one forward + backward (separate processes, MiB)")
        print(f"{'case':38s} {'tensorlite':>10s} {'torch':>10s}   (resident before: tl, torch)")
        for i in picked:
            name, xs, c_out, kernel, _ = CASES[i]
            mt = memory_of('tensorlite', i)
            mp = memory_of('torch', i) if have_torch else None
            label = f"{name} {xs}->{c_out} k{'x'.join(map(str, kernel))}"
            print(f"{label:38s} {mt['added_mib']:10.0f} "
                  + (f"{mp['added_mib']:10.0f}   ({mt['baseline_mib']:.0f}, {mp['baseline_mib']:.0f})"
                     if mp else f"{'-':>10s}"), flush=True)


def depthwise(args):
    import tensorlite as tl
    from tensorlite.functional import conv as C
    from tensorlite.kernels import conv_plan
    xs = (8, 64, 16, 56, 56)
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal(xs, dtype=np.float32), requires_grad=True)
    w = tl.tensor(rng.standard_normal((64, 1, 3, 3, 3), dtype=np.float32), requires_grad=True)
    direct = conv_plan._use_direct

    def step(use_direct, backward):
        conv_plan._use_direct = direct if use_direct else (lambda *a: False)
        try:
            if backward:
                y = C.conv3d(x, w, None, padding=1, groups=64)
                y.backward(tl.ones_like(y))
            else:
                with tl.no_grad():
                    C.conv3d(x, w, None, padding=1, groups=64)
        finally:
            conv_plan._use_direct = direct
    print(f"depthwise conv3d {xs}, 3x3x3, groups=64, float32: medians of {args.repeats}")
    for backward in (False, True):
        cases = [('direct kernels', True), ('vol2col + GEMM', False)]
        for _, d in cases:
            step(d, backward)
        times = {label: [] for label, _ in cases}
        for _ in range(args.repeats):
            for label, d in cases:
                times[label].append(timed(lambda: step(d, backward)))
        for label, ts in times.items():
            ms = statistics.median(ts) * 1e3
            print(f"  {['fwd', 'fwd+bwd'][backward]:8s} {label:16s} {ms:8.1f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--no-memory', action='store_true')
    p.add_argument('--only', type=lambda s: [int(v) for v in s.split(',')], default=None,
                   help='comma-separated case numbers (0-based)')
    p.add_argument('--depthwise', action='store_true')
    p.add_argument('--measure-memory', nargs=2, metavar=('SIDE', 'CASE'), help=argparse.SUPPRESS)
    p.add_argument('--time-worker', nargs=2, metavar=('SIDE', 'CASE'), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure_memory:
        measure_memory(args.measure_memory[0], int(args.measure_memory[1]))
    elif args.time_worker:
        time_worker(args.time_worker[0], int(args.time_worker[1]))
    elif args.depthwise:
        depthwise(args)
    else:
        run(args)


if __name__ == '__main__':
    main()

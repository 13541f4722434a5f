"""LSTM and attention speed and memory: tensorlite against PyTorch CPU in one run.

    python benchmarks/bench_rnn_attention.py [--repeats 7] [--only lstm,joint,divided] [--no-memory]
    python benchmarks/bench_rnn_attention.py --paths [--repeats 5]

Cases, float32:
    lstm     nn.LSTM(256, 512), sequence 32 x batch 32 (time-major), output seeded with ones
    joint    scaled_dot_product_attention on q = k = v of shape (64, 1568, 64): batch * heads = 64,
             1,568 tokens = 8 frames x 14 x 14 patches, every token attending to every token
    divided  the two attentions of a divided space-time block on the same tokens: temporal
             (64 * 196 groups of 8 frames) and spatial (64 * 8 groups of 196 patches), outputs summed

Time: forward (no graph recorded) and forward + backward (every input's gradient), tensorlite
and PyTorch (torch.set_num_threads(2)) interleaved in one process with a 50 ms pause before each
call (benchmarks/_timing.py), medians; ratio = tensorlite / PyTorch (<= 1: tensorlite as fast or
faster).  Memory: one forward + backward in a fresh subprocess per side that imports only its own
library; the number is the peak resident memory the step added above the resident set before it.

--paths times tensorlite's two attention paths against each other, forward + backward (the
measurement behind BLOCKWISE_MIN_SCORE_BYTES in tensorlite/functional/attention.py and
BLOCK_Q/BLOCK_K in tensorlite/kernels/attention_blocks.py): plain against blockwise on the spatial half of divided
attention, (512, 196, 64), and on the joint case (64, 1568, 64) plain against blockwise with
several tile sizes.
"""
import argparse
import json

import numpy as np

import _timing

CASES = ('lstm', 'joint', 'divided')
B, T, S, D = 64, 8, 196, 64           # batch * heads, frames, patches per frame, head width


def _inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    if case == 'lstm':
        return [rng.standard_normal((32, 32, 256), dtype=np.float32)]
    return [rng.standard_normal((B, T * S, D), dtype=np.float32) for _ in range(3)]


def tensorlite_side(case):
    """(forward, forward_backward) closures for one case."""
    import tensorlite as tl
    import tensorlite.functional as F
    from tensorlite.functional import spacetime as ST
    arrays = _inputs(case)
    xs = [tl.tensor(a, requires_grad=True) for a in arrays]
    if case == 'lstm':
        tl.manual_seed(0)
        lstm = tl.nn.LSTM(256, 512)

        def run():
            return lstm(xs[0])[0]
    elif case == 'joint':
        def run():
            return F.scaled_dot_product_attention(*xs)
    else:
        def run():
            q, k, v = (x.reshape(B, 1, T, S, D) for x in xs)
            return ST.temporal_attention(q, k, v) + ST.spatial_attention(q, k, v)

    def forward():
        with tl.no_grad():
            run()

    def forward_backward():
        for x in xs:
            x.grad = None
        y = run()
        y.backward(tl.ones_like(y))
    return forward, forward_backward


def torch_side(case):
    import torch
    import torch.nn.functional as TF
    torch.set_num_threads(2)
    xs = [torch.tensor(a, requires_grad=True) for a in _inputs(case)]
    if case == 'lstm':
        torch.manual_seed(0)
        lstm = torch.nn.LSTM(256, 512)

        def run():
            return lstm(xs[0])[0]
    elif case == 'joint':
        def run():
            return TF.scaled_dot_product_attention(*xs)
    else:
        def run():
            q, k, v = (x.reshape(B, T, S, D) for x in xs)
            temporal = TF.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)))
            return temporal.transpose(1, 2) + TF.scaled_dot_product_attention(q, k, v)

    def forward():
        with torch.no_grad():
            run()

    def forward_backward():
        for x in xs:
            x.grad = None
        y = run()
        y.backward(torch.ones_like(y))
    return forward, forward_backward


def paths(args):
    import tensorlite as tl
    from tensorlite.functional import attention as A
    rng = np.random.default_rng(0)
    print(f"tensorlite attention paths, float32 forward + backward, medians of {args.repeats}\n")
    for shape, variants in (((B * T, S, D), [('plain', None), ('blockwise', (256, 256))]),
                            ((B, T * S, D), [('plain', None), ('blockwise', (128, 256)),
                                             ('blockwise', (256, 128)), ('blockwise', (256, 256)),
                                             ('blockwise', (192, 384)), ('blockwise', (128, 512))])):
        xs = [tl.tensor(rng.standard_normal(shape, dtype=np.float32), requires_grad=True)
              for _ in range(3)]

        def step(path, blocks):
            for x in xs:
                x.grad = None
            if path == 'plain':
                y = A.plain_attention(*xs)
            else:
                y = A.blockwise_attention(*xs, block_q=blocks[0], block_k=blocks[1])
            y.backward(tl.ones_like(y))
        cases = [(f"{path} {'x'.join(map(str, blocks)) if blocks else ''}",
                  lambda p=path, b=blocks: step(p, b)) for path, blocks in variants]
        med = _timing.interleaved_medians(cases, args.repeats, pause=0.05)
        for label, t in med.items():
            print(f"{str(shape):18s} {label:20s} {t * 1e3:9.1f} ms", flush=True)


def measure_memory(side, case):
    """Run in a subprocess: print what one forward + backward added at its peak, in MiB."""
    make = tensorlite_side if side == 'tensorlite' else torch_side
    forward, step = make(case)
    forward()                             # imports, JIT and kernel caches, allocator warm-up
    print(json.dumps(_timing.peak_added_mib(step)))


def memory_of(side, case):
    return _timing.memory_in_subprocess(__file__, side, case)


def run(args):
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: tensorlite alone (pip install -e '.[bench]' to compare)")
    print(f"float32, medians of {args.repeats}, interleaved, 50 ms pause before each call\n")
    print(f"{'case':10s} {'pass':8s} {'tl ms':>9s} {'torch ms':>9s} {'tl/torch':>8s}")
    for case in args.only:
        sides = [('tl', tensorlite_side(case))]
        if have_torch:
            sides.append(('torch', torch_side(case)))
        for p, name in enumerate(('fwd', 'fwd+bwd')):
            med = _timing.interleaved_medians([(s, fns[p]) for s, fns in sides], args.repeats,
                                              pause=0.05)
            t_tl, t_th = med['tl'], med.get('torch')
            print(f"{case:10s} {name:8s} {t_tl * 1e3:9.1f} "
                  + (f"{t_th * 1e3:9.1f} {t_tl / t_th:8.2f}" if t_th else f"{'-':>9s} {'-':>8s}"),
                  flush=True)
        del sides
    if not args.no_memory:
        print("\npeak memory added by one forward + backward (separate processes, MiB)")
        print(f"{'case':10s} {'tensorlite':>10s} {'torch':>10s}")
        for case in args.only:
            mt = memory_of('tensorlite', case)
            mp = memory_of('torch', case) if have_torch else None
            print(f"{case:10s} {mt['added_mib']:10.0f} "
                  + (f"{mp['added_mib']:10.0f}" if mp else f"{'-':>10s}"), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--no-memory', action='store_true')
    p.add_argument('--only', type=lambda s: s.split(','), default=list(CASES),
                   help='comma-separated cases: ' + ', '.join(CASES))
    p.add_argument('--paths', action='store_true', help="tensorlite's plain vs blockwise attention")
    p.add_argument('--measure-memory', nargs=2, metavar=('SIDE', 'CASE'), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure_memory:
        measure_memory(*args.measure_memory)
        return
    if args.paths:
        paths(args)
        return
    unknown = [c for c in args.only if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; expected some of {', '.join(CASES)}")
    run(args)


if __name__ == '__main__':
    main()

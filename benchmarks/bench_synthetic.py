"""How fast the synthetic action datasets render, per family: one clip at a time (dataset[i], what a
data loader's worker calls) and a batch at once (dataset.batch(indices), array operations over the
whole batch), with and without ground-truth flow.

    python benchmarks/bench_synthetic.py [--repeats 5] [--batch 256] [--items 256]
                                         [--families scene motion order localization captioning]

The target is 2,000 clips of 16 x 32 x 32 per second on one core; rendering is NumPy on one thread
(elementwise ufuncs do not use threads).  The cases run interleaved (A, B, A, B, ...) and the
medians are printed, because this machine is shared and noisy.  Localization clips have 192 frames
by default: its line also says how many 16-frame clips' worth of frames that is.  With --batch
2048 and flow, one call returns 650 MB of fresh memory and the kernel's page faults dominate.
"""
import argparse

import numpy as np

from _timing import interleaved_medians
from tensorlite.data.synthetic import FAMILIES, SyntheticActions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=256, help='clips per batch() call')
    parser.add_argument('--items', type=int, default=256, help='clips per dataset[i] loop')
    parser.add_argument('--families', nargs='+', default=list(FAMILIES), choices=FAMILIES)
    args = parser.parse_args()

    cases, sizes = [], {}
    for family in args.families:
        for flow in (False, True):
            ds = SyntheticActions(family, 10 ** 9, return_flow=flow)
            # localization clips are 12 times longer: fewer of them for the same work
            scale = 16 / ds.num_frames
            batch, items = max(1, int(args.batch * scale)), max(1, int(args.items * scale))
            start = np.random.default_rng(0).integers(0, 10 ** 8)      # not only the first clips
            for path, count in (('item', items), ('batch', batch)):
                key = (family, 'flow' if flow else '', path)
                run = ((lambda ds=ds, n=count: [ds[int(start) + i] for i in range(n)])
                       if path == 'item' else
                       (lambda ds=ds, n=count: ds.batch(np.arange(start, start + n))))
                cases.append((key, run))
                sizes[key] = (count, ds)
    medians = interleaved_medians(cases, args.repeats)

    print(f"clips per second, median of {args.repeats} interleaved runs (one thread)")
    print(f"{'family':12s} {'flow':4s} {'path':5s} {'T x S x S':>10s} {'clips/s':>8s} "
          f"{'16-frame clips/s':>17s} {'ms/clip':>8s}")
    for (family, flow, path), seconds in medians.items():
        count, ds = sizes[family, flow, path]
        rate = count / seconds
        shape = f"{ds.num_frames}x{ds.size}x{ds.size}"
        print(f"{family:12s} {flow:4s} {path:5s} {shape:>10s} {rate:8.0f} "
              f"{rate * ds.num_frames / 16:17.0f} {1e3 / rate:8.3f}")


if __name__ == '__main__':
    main()

"""Which ops and kernels one training step of a model runs, and what each costs (tl.profiler).

    python examples/profile_step.py --model c3d                      # on the CPU twins
    TENSORLITE_SIMULATE_CUDA=1 python examples/profile_step.py --model c3d --device cuda
    python examples/profile_step.py --model timesformer --trace step.json --sort flops

One step -- forward, cross-entropy, backward, SGD step -- of the registry's tiny preset on one clip
of random numbers (16 x 32 x 32), profiled.  The table lists every
Function forward and backward and every kernel launch with the twin that ran it; --trace writes a
Chrome trace (open it in chrome://tracing or ui.perfetto.dev).  On the simulated device the times
are the simulator's (a step takes seconds to a minute): read the table for *which* kernels run,
not for speed.  A first step includes Numba's compilation or cache loading: --warmup runs one
unprofiled step first.
"""
import argparse
import sys

import numpy as np

import tensorlite as tl
import tensorlite.functional as F
from tensorlite.models import build_model, list_models


def clip_shapes(name, batch):
    """Every tiny preset takes (N, 3, 16, 32, 32) clips; two-stream also a 20-channel flow stack."""
    shapes = [(batch, 3, 16, 32, 32)]
    if name.startswith('two_stream'):
        shapes.append((batch, 20, 32, 32))
    return shapes


def step(model, optimizer, inputs, labels):
    loss = F.cross_entropy(model(*inputs), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', default='c3d', choices=list_models())
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--sort', default='self_cpu_time_total',
                   help="table order: self_cpu_time_total, cpu_time_total, count, flops, bytes, name")
    p.add_argument('--rows', type=int, default=25)
    p.add_argument('--trace', help='write a Chrome trace JSON here')
    p.add_argument('--warmup', action='store_true', help='one unprofiled step first')
    args = p.parse_args(argv)
    if args.device == 'cuda' and not tl.cuda.is_available():
        sys.exit(f"profile_step: device 'cuda' is not available: {tl.cuda.unavailable_reason()}")

    tl.manual_seed(0)
    model = build_model(args.model, num_classes=5).to(args.device)
    model.train()
    optimizer = tl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    inputs = [tl.tensor(rng.standard_normal(s, dtype=np.float32)).to(args.device)
              for s in clip_shapes(args.model, args.batch)]
    labels = tl.tensor(rng.integers(0, 5, args.batch)).to(args.device)
    if args.warmup:
        step(model, optimizer, inputs, labels)
    with tl.profiler.profile() as prof:
        loss = step(model, optimizer, inputs, labels)
    kernels = [e for e in prof.events() if e.kind == 'kernel']
    twins = sorted({e.device for e in kernels})
    print(f"{args.model} on {args.device}{' (simulated)' if tl.cuda.is_simulated() else ''}: "
          f"loss {loss.item():.4f}; {len(prof.events())} events, {len(kernels)} kernel launches "
          f"on the {'/'.join(twins) or 'no'} twin(s)")
    print(prof.table(sort_by=args.sort, row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"wrote {args.trace}")


if __name__ == '__main__':
    main()

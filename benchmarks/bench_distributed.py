"""Data parallelism on one machine: training clips/s of one process against `mpiexec -n 2`, one
thread per process, and the time a step spends communicating.

    python benchmarks/bench_distributed.py [--repeats 5] [--steps 12] [--models c3d timesformer]

For each model (tiny preset, 4 classes, clips (B, 3, 16, 32, 32) float32, SGD): a job of `--steps`
training steps (forward, cross entropy, backward through DistributedDataParallel, step) with B =
16 clips per process, run alone (1 process, 1 thread) and as 2 ranks (1 thread each, a global
batch of 32), the two jobs alternating `--repeats` times; clips/s is every rank's clips over the
slowest rank's time, medians quoted with their ratio (2 ranks / 1 process: 2.0 is perfect
scaling). Communication: inside the 2-rank job, the blocking all-reduce of one buffer as large as
all the model's gradients, timed alone (median of 20) -- the most a step could wait if nothing
overlapped -- and the time a step spends inside DDP's end-of-backward wait (what did not overlap).
The machine has 2 cores: 2 ranks of 1 thread each use both, as the one process with 1 thread
uses one; compare `--threads 2` for one process using both cores.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

JOB = r'''
import json, sys, time
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
import tensorlite.functional as F
from tensorlite import optim
from tensorlite.models import build_model
from tensorlite.nn.parallel import DistributedDataParallel
name, steps, batch, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
tl.manual_seed(0)
model = DistributedDataParallel(build_model(name, 4))
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
rng = np.random.default_rng(rank)
x = tl.tensor(rng.random((batch, 3, 16, 32, 32), dtype=np.float32))
y = tl.tensor(rng.integers(0, 4, batch))
waits = []
finish = model._finish_backward          # DDP's end-of-backward wait for the buckets, timed
def timed_finish():
    t = time.perf_counter()
    finish()
    waits.append(time.perf_counter() - t)
model._finish_backward = timed_finish
def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
step(); step()                                   # warm up: kernels compiled, memory touched
waits.clear()
dist.barrier()
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
slowest = tl.tensor(np.array([seconds]))
dist.all_reduce(slowest, op='max')
n = sum(int(np.prod(p.shape)) for p in model.parameters())
buffer = tl.tensor(np.zeros(n, np.float32))
times = []
for _ in range(20):
    dist.barrier()
    t = time.perf_counter(); dist.all_reduce(buffer, check=False); times.append(time.perf_counter() - t)
if rank == 0:
    json.dump({'seconds': float(slowest.numpy()[0]), 'clips': steps * batch * world,
               'params': n, 'allreduce_ms': 1000 * float(np.median(times)),
               'wait_ms': 1000 * float(np.median(waits)) if waits else 0.0}, open(out, 'w'))
'''


def run(job, name, steps, batch, ranks, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    with tempfile.NamedTemporaryFile(suffix='.json') as out:
        command = [sys.executable, job, name, str(steps), str(batch), out.name]
        if ranks > 1:
            mpiexec = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
            command = [mpiexec, '-n', str(ranks)] + command
        subprocess.run(command, check=True, timeout=1800, env=env)
        return json.load(open(out.name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--steps', type=int, default=12)
    parser.add_argument('--batch', type=int, default=16, help='clips per process and step')
    parser.add_argument('--models', nargs='+', default=['c3d', 'timesformer'])
    parser.add_argument('--threads', type=int, default=1, help='threads of the one process')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        job = os.path.join(folder, 'job.py')
        with open(job, 'w') as f:
            f.write(JOB)
        print(f"{'model':12s} {'params':>9s} {'1 proc clips/s':>15s} {'2 ranks clips/s':>16s} "
              f"{'ratio':>6s} {'step ms (2)':>12s} {'allreduce ms':>13s} {'wait ms':>8s}")
        for name in args.models:
            alone, ranks, comm, waits = [], [], [], []
            for _ in range(args.repeats):                       # interleaved: A, B, A, B, ...
                a = run(job, name, args.steps, args.batch, 1, args.threads)
                b = run(job, name, args.steps, args.batch, 2, 1)
                alone.append(a['clips'] / a['seconds'])
                ranks.append(b['clips'] / b['seconds'])
                comm.append(b['allreduce_ms'])
                waits.append(b['wait_ms'])
                step_ms = 1000 * b['seconds'] / args.steps
            one, two = statistics.median(alone), statistics.median(ranks)
            print(f"{name:12s} {b['params']:9,d} {one:15.1f} {two:16.1f} {two / one:6.2f} "
                  f"{step_ms:12.1f} {statistics.median(comm):13.2f} "
                  f"{statistics.median(waits):8.2f}", flush=True)


if __name__ == '__main__':
    main()

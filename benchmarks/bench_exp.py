"""Exponentials in Numba kernels: why the LSTM kernels write tanh with exp and the float32
attention kernels carry their own polynomial exp (kernels/cpu/recurrent.py, kernels/cpu/attention.py).

    python benchmarks/bench_exp.py [--repeats 21] [--size 4000000]

Nanoseconds per value, float32, one thread, interleaved medians (benchmarks/_timing.py), over
values in [-10, 0] (softmax exponents are shifted below 0): NumPy's np.exp (SIMD), a Numba loop
over math.exp, a Numba loop over math.tanh, and a Numba loop over the attention kernels'
vectorizable _exp32.
"""
import argparse
import math

import numba
import numpy as np

from _timing import interleaved_medians
from tensorlite.kernels.cpu.attention import _exp32


@numba.njit(cache=True)
def _loop_exp(x, out):
    for i in range(x.size):
        out[i] = math.exp(x[i])


@numba.njit(cache=True)
def _loop_tanh(x, out):
    for i in range(x.size):
        out[i] = math.tanh(x[i])


@numba.njit(cache=True)
def _loop_exp32(x, out):
    for i in range(x.size):
        out[i] = _exp32(x[i])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=21)
    p.add_argument('--size', type=int, default=4_000_000)
    args = p.parse_args()
    numba.set_num_threads(1)
    x = np.random.default_rng(0).uniform(-10, 0, args.size).astype(np.float32)
    out = np.empty_like(x)
    cases = [('np.exp', lambda: np.exp(x, out=out)),
             ('Numba math.exp', lambda: _loop_exp(x, out)),
             ('Numba math.tanh', lambda: _loop_tanh(x, out)),
             ('Numba _exp32 (polynomial)', lambda: _loop_exp32(x, out))]
    print(f"float32, {args.size:,d} values, medians of {args.repeats}")
    for label, seconds in interleaved_medians(cases, args.repeats).items():
        print(f"{label:28s} {seconds / args.size * 1e9:6.2f} ns per value")


if __name__ == '__main__':
    main()

"""Partial against full decoding: what a temporal sampler saves by asking read_video for its frames.

    python benchmarks/bench_io.py [--repeats 7]

Writes a 10 s, 320x240, 30 fps H.264 video (300 frames) to a temporary directory, then times,
interleaved (benchmarks/_timing.py), video_info, a full decode, and the frames a few samplers would
ask for: 16 frames at stride 2 from the start, the same from frame 240 (read_video seeks there),
and 8 evenly spread segment frames.  The figures are in docs/data.md.
"""
import argparse
import os
import tempfile

import numpy as np

from _timing import interleaved_medians
from tensorlite.data import io


def test_video(directory, t=300, h=240, w=320):
    """Moving colour ramps: every frame different, smooth enough for H.264 to code cheaply."""
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(x + 3 * k) % 256, (y + 2 * k) % 256, np.full_like(x, k % 256)], -1)
                       for k in range(t)]).astype(np.uint8)
    return io.write_video(os.path.join(directory, 'bench.mp4'), frames, fps=30)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=7)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = test_video(d)
        cases = [('video_info', lambda: io.video_info(path)),
                 ('full 300 frames', lambda: io.read_video(path)),
                 ('16 frames, stride 2, from 0', lambda: io.read_video(path, np.arange(0, 32, 2))),
                 ('16 frames, stride 2, from 240 (seek)',
                  lambda: io.read_video(path, np.arange(240, 272, 2))),
                 ('8 segments over all 300',
                  lambda: io.read_video(path, np.linspace(0, 299, 8).astype(int)))]
        print(f"read_video on a 300-frame 320x240 H.264 file, medians of {args.repeats}")
        for label, seconds in interleaved_medians(cases, args.repeats).items():
            print(f'{label:40s} {seconds * 1000:8.1f} ms')


if __name__ == '__main__':
    main()

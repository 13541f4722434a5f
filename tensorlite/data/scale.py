"""Input scale: how many numbers one clip is, the first thing to plan around.

A video is a 4D array, time x height x width x channels. `clip_numbers(T, H, W, C)` counts its
values and what they weigh as float32, the numbers the lesson starts from:

    python -m tensorlite.data.scale        # prints the lesson's examples
"""
from dataclasses import dataclass
import math
import numbers

import numpy as np

# The lesson's examples: (what, T, H, W, C)
LESSON_EXAMPLES = (
    ('one image, 224 x 224 RGB', 1, 224, 224, 3),
    ('32-frame training clip', 32, 224, 224, 3),
    ('64-frame clip', 64, 224, 224, 3),
    ('one minute at 30 fps', 60 * 30, 224, 224, 3),
)


def _two_figures(x, units):
    """x in the largest of `units` it reaches, to two significant figures ('9.6 M'); None when x
    is below the smallest unit. A value that rounds up to the next unit is written in it:
    999,999 is '1.0 M', not '1000 k'."""
    for suffix, unit in units:
        value = float(f"{x / unit:.2g}")
        if value >= 1:
            decimals = max(1 - math.floor(math.log10(value)), 0)
            return f"{value:.{decimals}f} {suffix}"
    return None


def human(count):
    """A count to two significant figures with a k / M / G suffix, as the lesson rounds:
    9633792 -> '9.6 M', 270950400 -> '270 M', 150528 -> '150 k'."""
    return _two_figures(count, (('G', 10 ** 9), ('M', 10 ** 6), ('k', 10 ** 3))) or str(count)


def human_bytes(nbytes):
    """Bytes to two significant figures in binary units: 38535168 -> '37 MiB'."""
    return (_two_figures(nbytes, (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)))
            or f"{nbytes} B")


@dataclass(frozen=True)
class ClipNumbers:
    """The size of one clip: its shape (T, H, W, C), `count` = T*H*W*C values, `float32_bytes`
    = 4 * count (the model's input; the decoded uint8 clip is a quarter of that), and `text`,
    e.g. '64 x 224 x 224 x 3 = 9,633,792 values (~9.6 M), ~37 MiB as float32'."""
    shape: tuple
    count: int

    @property
    def float32_bytes(self):
        return 4 * self.count

    @property
    def text(self):
        dims = ' x '.join(str(d) for d in self.shape)
        return (f"{dims} = {self.count:,} values (~{human(self.count)}), "
                f"~{human_bytes(self.float32_bytes)} as float32")

    def __str__(self):
        return self.text


def clip_numbers(T, H, W, C=3):
    """How many values a clip of T frames of H x W pixels with C channels holds: T * H * W * C,
    as a ClipNumbers (count, float32_bytes, text). clip_numbers(64, 224, 224).count == 9_633_792."""
    dims = (T, H, W, C)
    for name, d in zip('THWC', dims):
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"clip_numbers needs positive integer sizes; {name} = {d!r}")
    dims = tuple(int(d) for d in dims)
    return ClipNumbers(dims, int(np.prod(dims, dtype=object)))   # object: exact, no int64 overflow


def main():
    width = max(len(what) for what, *_ in LESSON_EXAMPLES)
    for what, *dims in LESSON_EXAMPLES:
        print(f"{what:<{width}}  {clip_numbers(*dims)}")


if __name__ == '__main__':
    main()

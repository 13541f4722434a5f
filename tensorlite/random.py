"""The one random generator behind every random op (rand, randn, dropout, initializers).

`manual_seed(seed)` makes every random op reproducible.  Random numbers are drawn on the CPU with
NumPy and copied to the device, so a seed gives the same numbers on 'cpu' and 'cuda'.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reset the generator; returns the seed."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return seed


seed = manual_seed


def generator():
    return _generator


def get_rng_state():
    """The generator's state as a dict (JSON-friendly), for checkpoints."""
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state

"""tensorlite.data.Subset and random_split, as torch.utils.data's: items by index, the forwarded
classes/targets, the lengths rule (ints, or fractions with the remainder dealt out in order),
seeded splits that repeat, a partition of the dataset, and the errors."""
import contextlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
import tensorlite.data as D


class Items:
    """dataset[i] = (i, label i % 3); optional classes, class_to_idx and targets."""

    def __init__(self, n, targets_as=list, labelled=True):
        self.n = n
        if labelled:
            self.classes = ['a', 'b', 'c']
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
            self.targets = targets_as([i % 3 for i in range(n)])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        i = range(self.n)[i]
        return i, i % 3


def test_subset_items_and_length():
    data = Items(10)
    part = D.Subset(data, [7, 2, -1, 2])
    assert len(part) == 4 and part.dataset is data and part.indices == [7, 2, -1, 2]
    assert [part[k] for k in range(4)] == [(7, 1), (2, 2), (9, 0), (2, 2)]
    assert part[-1] == (2, 2)
    with pytest.raises(IndexError):
        part[4]
    assert [s for s in D.Subset(D.Subset(data, [5, 6, 7]), [2, 0])] == [(7, 1), (5, 2)]


@pytest.mark.parametrize('targets_as', [list, np.asarray], ids=['list', 'ndarray'])
def test_subset_forwards_classes_and_targets(targets_as):
    data = Items(10, targets_as)
    part = D.Subset(data, np.array([4, 8, 0]))
    assert part.classes == ['a', 'b', 'c'] and part.class_to_idx == {'a': 0, 'b': 1, 'c': 2}
    assert list(part.targets) == [1, 2, 0] and type(part.targets) is type(data.targets)
    assert all(part[k][1] == part.targets[k] for k in range(len(part)))
    unlabelled = D.Subset(Items(10, labelled=False), [1])
    assert not hasattr(unlabelled, 'classes') and not hasattr(unlabelled, 'targets')
    synthetic = D.Subset(D.SyntheticActions('scene', num_clips=6), [0, 5])
    assert synthetic.classes == synthetic.dataset.classes and synthetic.num_classes == 6


def test_subset_errors():
    with pytest.raises(IndexError, match='Subset: index 10 is out of range for a dataset of 10'):
        D.Subset(Items(10), [0, 10])
    with pytest.raises(IndexError, match='index -11'):
        D.Subset(Items(10), [-11])
    with pytest.raises(TypeError, match=r"indices must be ints, got 1.5"):
        D.Subset(Items(10), [1.5])
    with pytest.raises(TypeError, match='indices must be a sequence of ints, got int'):
        D.Subset(Items(10), 3)


# ---- random_split -----------------------------------------------------------------------------

def torch_lengths(n, lengths):
    """PyTorch's rule, written out: fractions -> floor(n * f), then the remainder one item at a
    time to parts 0, 1, 2, ... (round robin)."""
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        return counts
    return list(lengths)


@given(n=st.integers(0, 40), parts=st.lists(st.integers(1, 9), min_size=1, max_size=5),
       as_fractions=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_random_split_is_a_seeded_partition(n, parts, as_fractions, seed):
    if as_fractions:
        lengths = [p / sum(parts) for p in parts]
        lengths[-1] = 1 - sum(lengths[:-1])                     # exactly 1 up to rounding
    else:                                                        # integers summing to n
        cuts = sorted(np.random.default_rng(seed).integers(0, n + 1, len(parts) - 1))
        lengths = [int(b - a) for a, b in zip([0] + cuts, cuts + [n])]
    data = Items(n)
    with _maybe_empty_warning(n, lengths):
        split = D.random_split(data, lengths, generator=seed)
    assert [len(s) for s in split] == torch_lengths(n, lengths)
    every = [i for s in split for i in s.indices]
    assert sorted(every) == list(range(n))                       # disjoint, and all of it
    assert all(s.dataset is data for s in split)
    again = D.random_split(data, lengths, generator=np.random.default_rng(seed))
    assert [s.indices for s in again] == [s.indices for s in split]


def _maybe_empty_warning(n, lengths):
    """PyTorch warns about an empty part when the lengths are fractions."""
    if math.isclose(sum(lengths), 1) and 0 in torch_lengths(n, lengths):
        return pytest.warns(UserWarning, match='is empty')
    return contextlib.nullcontext()


def test_random_split_fractions_like_pytorch():
    split = D.random_split(Items(10), [0.33, 0.33, 0.34], generator=0)
    assert [len(s) for s in split] == [4, 3, 3]                  # floor 3, 3, 3; 1 left -> part 0
    split = D.random_split(Items(7), [0.5, 0.5], generator=0)
    assert [len(s) for s in split] == [4, 3]
    assert [len(s) for s in D.random_split(Items(5), [1], generator=0)] == [5]


def test_random_split_seeds():
    data = Items(50)
    first = [s.indices for s in D.random_split(data, [30, 20], generator=7)]
    assert first == [s.indices for s in D.random_split(data, [30, 20], generator=7)]
    assert first != [s.indices for s in D.random_split(data, [30, 20], generator=8)]
    tl.manual_seed(3)                                            # generator=None: tensorlite's
    a = [s.indices for s in D.random_split(data, [0.5, 0.5])]
    tl.manual_seed(3)
    assert a == [s.indices for s in D.random_split(data, [0.5, 0.5])]


def test_random_split_feeds_a_loader():
    train, val = D.random_split(D.SyntheticActions('scene', num_clips=8), [6, 2], generator=0)
    clips, labels = next(iter(D.DataLoader(train, batch_size=6)))
    assert clips.shape == (6, 3, 16, 32, 32)
    np.testing.assert_array_equal(labels.numpy(), [train[k][1] for k in range(6)])


@pytest.mark.parametrize('lengths, error, message', [
    ([5, 4], ValueError, r'lengths \[5, 4\] sum to 9, the dataset has 10 items'),
    ([0.5, 0.6], ValueError, r"ints >= 0 summing to the dataset's 10 items, or fractions"),
    ([12, -2], ValueError, r'ints >= 0'),
    ([1.5, -0.5], ValueError, r'fraction 1.5 at position 0 is not between 0 and 1'),
    ([], ValueError, 'lengths is empty'),
    (['5', 5], TypeError, r"lengths must be ints or fractions, got '5' at position 0"),
])
def test_random_split_errors(lengths, error, message):
    with pytest.raises(error, match=message):
        D.random_split(Items(10), lengths, generator=0)


def test_random_split_generator_kinds():
    with pytest.raises(TypeError, match='generator must be None, an int seed or a '
                                        'numpy.random.Generator, got str'):
        D.random_split(Items(4), [2, 2], generator='0')

"""Subset and random_split, as torch.utils.data's: part of a dataset by indices, and a dataset cut
into random non-overlapping parts; stratified_split, a held-out part of every class; Relabelled,
a dataset's labels mapped onto another list of classes by name.

    train, val = D.random_split(dataset, [0.8, 0.2], generator=0)    # seeded: the same split always
    loader = D.DataLoader(train, batch_size=32, shuffle=True)
    train.indices, train.dataset                                     # which items, of what
    train_idx, val_idx = D.stratified_split(folder.targets, 0.2, seed=0)  # 20 % of each class

A Subset reads its items from the dataset it wraps (item k is dataset[indices[k]]) and forwards
the dataset's `classes`, `class_to_idx` and `num_classes`, and its `targets` restricted to the
subset's indices, where the dataset has them.  For VideoFolder and VideoList, `dataset.subset(indices)` is the stricter split:
skip_bad's substitutes for an unreadable video then come from the split only, while a Subset's come
from the whole dataset.
"""
import math
import numbers
import warnings

import numpy as np


class Subset:
    """Items `indices` of `dataset`, in that order: len(subset) == len(indices) and
    subset[k] == dataset[indices[k]].  Indices are ints in [-len(dataset), len(dataset)) when the
    dataset has a length (checked here, so a bad split fails when it is made)."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = _check_indices(dataset, indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    # classes, class_to_idx and num_classes are the dataset's, targets those of the items kept.
    # Only these are forwarded (hasattr is False where the dataset has none); the rest of the
    # dataset is reached through `subset.dataset`.
    @property
    def classes(self):
        return self.dataset.classes

    @property
    def class_to_idx(self):
        return self.dataset.class_to_idx

    @property
    def num_classes(self):
        return self.dataset.num_classes

    @property
    def targets(self):
        targets = self.dataset.targets
        if isinstance(targets, np.ndarray):
            return targets[np.asarray(self.indices, dtype=np.int64)]
        return [targets[i] for i in self.indices]

    def __repr__(self):
        return f"Subset({len(self.indices)} of {len(self.dataset)} items of {self.dataset!r})" \
            if hasattr(self.dataset, '__len__') else f"Subset({len(self.indices)} items of " \
            f"{self.dataset!r})"


def _check_indices(dataset, indices):
    if isinstance(indices, (str, bytes)) or not hasattr(indices, '__iter__'):
        raise TypeError(f"Subset: indices must be a sequence of ints, got "
                        f"{type(indices).__name__}")
    out = []
    for i in indices:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral):
            raise TypeError(f"Subset: indices must be ints, got {i!r} "
                            f"({type(i).__name__})")
        out.append(int(i))
    if hasattr(dataset, '__len__') and out:
        n = len(dataset)
        bad = [i for i in out if not -n <= i < n]
        if bad:
            raise IndexError(f"Subset: index {bad[0]} is out of range for a dataset of {n} items")
    return out


def random_split(dataset, lengths, generator=None):
    """Split `dataset` into len(lengths) Subsets of a random permutation of its items, as PyTorch's.

    lengths: ints summing to len(dataset), or fractions summing to 1 (each part gets
    floor(fraction * len(dataset)) items, then the items left over go one at a time to the parts
    in order, as PyTorch does).  generator: None (tensorlite's generator: tl.manual_seed fixes the
    split), an int seed (the same split every time) or a numpy.random.Generator."""
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty; give the sizes of the parts")
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or not isinstance(length, numbers.Real):
            raise TypeError(f"random_split: lengths must be ints or fractions, got {length!r} at "
                            f"position {i}")
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:                   # fractions (PyTorch's test)
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction {fraction} at position {i} is not "
                                 f"between 0 and 1")
        counts = [int(math.floor(n * fraction)) for fraction in lengths]
        for i in range(n - sum(counts)):                         # the rest, one by one, in order
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"random_split: part {i} is empty ({lengths[i]} of {n} items)",
                              stacklevel=2)
    elif all(isinstance(length, numbers.Integral) and length >= 0 for length in lengths):
        counts = [int(length) for length in lengths]
    else:
        raise ValueError(f"random_split: lengths must be ints >= 0 summing to the dataset's {n} "
                         f"items, or fractions summing to 1; got {lengths}")
    if sum(counts) != n:
        raise ValueError(f"random_split: lengths {counts} sum to {sum(counts)}, the dataset has "
                         f"{n} items")
    order = _generator(generator).permutation(n).tolist()
    parts, start = [], 0
    for count in counts:
        parts.append(Subset(dataset, order[start:start + count]))
        start += count
    return parts


def _generator(generator):
    if generator is None:
        from .. import random as tl_random
        return tl_random.generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(f"random_split: generator must be None, an int seed or a "
                    f"numpy.random.Generator, got {type(generator).__name__}")


def stratified_split(targets, val_split, seed):
    """(train indices, val indices), each sorted: `val_split` of each class's items held out (at
    least one when the class has two or more, never all of them), chosen by a generator seeded by
    `seed`.  `targets` holds one class label per item (e.g. VideoFolder.targets)."""
    if not 0 <= val_split < 1:
        raise ValueError(f"stratified_split: val_split must be in [0, 1), got {val_split}")
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets)
    train, val = [], []
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        held = int(round(val_split * len(members)))
        if val_split > 0 and len(members) >= 2:
            held = min(max(held, 1), len(members) - 1)
        val += members[:held].tolist()
        train += members[held:].tolist()
    return sorted(train), sorted(val)


class Relabelled:
    """A labelled dataset whose classes are some of `classes`, matched by name: its labels become
    indices into `classes` (e.g. a VideoFolder of other videos of some of a model's classes).
    `targets` and `bad_files` follow the dataset's."""

    def __init__(self, dataset, classes):
        self.dataset, self.classes = dataset, list(classes)
        unknown = [c for c in dataset.classes if c not in self.classes]
        if unknown:
            raise ValueError(f"Relabelled: the dataset's classes {unknown} are not among "
                             f"{self.classes}")
        self.mapping = [self.classes.index(c) for c in dataset.classes]
        self.targets = [self.mapping[t] for t in dataset.targets]

    @property
    def bad_files(self):
        return self.dataset.bad_files

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        clip, label = self.dataset[i]
        return clip, self.mapping[label]

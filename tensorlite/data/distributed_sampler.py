"""DistributedSampler: the share of a dataset's indices one process of a data-parallel run visits.

    sampler = DistributedSampler(dataset, shuffle=True, seed=0)     # rank, world size from MPI
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, seed=0)
    for epoch in range(10):
        for clips, labels in loader:      # the loader calls sampler.set_epoch(epoch) itself
            ...

PyTorch's torch.utils.data.DistributedSampler, rule for rule. With n = len(dataset) and
R = num_replicas, an epoch's indices are built in three steps:

1. Order. shuffle=True: `np.random.default_rng(seed + epoch).permutation(n)`, the same on every
   rank because every rank is given the same seed; shuffle=False: 0, 1, ..., n - 1. (PyTorch seeds
   a torch.Generator with seed + epoch too, so seed=0 at epoch 1 is seed=1 at epoch 0 in both; the
   permutations themselves differ, NumPy's not being torch's.)
2. Equal shares. Without drop_last the order is padded to total_size = R * ceil(n / R) by
   repeating it from its start (order[k] for the k-th padded place, cycling when the padding is
   longer than the dataset), so a few samples are seen twice per epoch; with drop_last it is cut to
   total_size = R * floor(n / R), so a few are not seen this epoch.
3. Shard. Rank r takes order[r::R]: num_samples = total_size / R indices, the same on every rank,
   which is what keeps the ranks' gradient all-reduces in step.

num_replicas and rank default to `tensorlite.distributed.get_world_size()` and `get_rank()` (a world
of one, rank 0, when no process group is initialized), read when the sampler is made.
"""
import numbers

import numpy as np


def _integer(name, value, low=None):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or (low is not None and value < low)):
        raise ValueError(f"DistributedSampler: {name} must be an integer"
                         + ("" if low is None else f" >= {low}") + f", got {value!r}")
    return int(value)


class DistributedSampler:
    """Indices of `dataset` for process `rank` of `num_replicas` (PyTorch's DistributedSampler; the
    module doc gives the rule). `len(sampler)` is num_samples, the indices one rank visits per
    epoch; `iter(sampler)` yields them as Python ints; `set_epoch(e)` picks the epoch whose
    permutation the next iteration uses (DataLoader calls it before every epoch).

    Attributes as PyTorch's: dataset, num_replicas, rank, epoch, shuffle, seed, drop_last,
    num_samples, total_size."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if not hasattr(dataset, '__len__'):
            raise TypeError(f"DistributedSampler needs a dataset with __len__, "
                            f"got {type(dataset).__name__}")
        if num_replicas is None or rank is None:
            from .. import distributed              # lazily: data/ is usable without mpi4py
            if num_replicas is None:
                num_replicas = distributed.get_world_size()
            if rank is None:
                rank = distributed.get_rank()
        num_replicas = _integer('num_replicas', num_replicas)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1 (the number of "
                             f"processes), got {num_replicas}")
        rank = _integer('rank', rank)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the "
                             f"interval [0, {num_replicas - 1}] for num_replicas={num_replicas}")
        self.dataset = dataset
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = _integer('seed', seed, low=0)   # NumPy seeds are non-negative
        self.epoch = 0
        n = len(dataset)
        # PyTorch's drop_last count, ceil((n - R) / R) when R does not divide n, is floor(n / R)
        self.num_samples = n // num_replicas if self.drop_last else -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """The epoch the next iteration's permutation is drawn for (seed + epoch)."""
        self.epoch = _integer('epoch', epoch, low=0)

    def epoch_order(self):
        """The whole epoch's order, padded or cut to total_size: an int64 array that every rank
        computes alike, of which this rank's share is `[rank::num_replicas]`."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n, dtype=np.int64)
        if self.total_size <= n:
            return order[:self.total_size]
        return np.resize(order, self.total_size)      # repeats order from its start, cyclically

    def __iter__(self):
        return iter(self.epoch_order()[self.rank::self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples

    def __repr__(self):
        return (f"DistributedSampler({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"num_replicas={self.num_replicas}, rank={self.rank}, shuffle={self.shuffle}, "
                f"seed={self.seed}, drop_last={self.drop_last}, epoch={self.epoch})")

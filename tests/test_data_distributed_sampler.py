"""DistributedSampler: PyTorch's rule written out independently as the reference, properties over
drawn sizes (equal shards, padding from the start, coverage), determinism per (seed, epoch), the
defaults from tensorlite.distributed (and 2 ranks under mpiexec), bad inputs, and, where torch is
installed, torch's own sampler. The loader with a sampler is tested in test_data_loader.py."""
import json
import math
import sys
import textwrap
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorlite
from mpi_helpers import needs_mpi, run_ranks
from tensorlite.data import DistributedSampler


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def reference_shard(n, num_replicas, rank, shuffle, seed, epoch, drop_last):
    """PyTorch's DistributedSampler.__iter__, line by line on Python lists, with the permutation
    rule tensorlite documents (NumPy's default_rng seeded by seed + epoch)."""
    if drop_last and n % num_replicas != 0:
        num_samples = math.ceil((n - num_replicas) / num_replicas)
    else:
        num_samples = math.ceil(n / num_replicas)
    total_size = num_samples * num_replicas
    if shuffle:
        indices = [int(i) for i in np.random.default_rng(seed + epoch).permutation(n)]
    else:
        indices = list(range(n))
    if not drop_last:
        padding_size = total_size - len(indices)
        if padding_size <= len(indices):
            indices += indices[:padding_size]
        else:
            indices += (indices * math.ceil(padding_size / len(indices)))[:padding_size]
    else:
        indices = indices[:total_size]
    assert len(indices) == total_size
    indices = indices[rank:total_size:num_replicas]
    assert len(indices) == num_samples
    return indices


def shards(n, num_replicas, **kwargs):
    epoch = kwargs.pop('epoch', 0)
    out = []
    for rank in range(num_replicas):
        sampler = DistributedSampler(Sized(n), num_replicas=num_replicas, rank=rank, **kwargs)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


# ---- the rule -----------------------------------------------------------------------------------

@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n, num_replicas", [(10, 3), (12, 4), (7, 1), (2, 5), (1, 2), (0, 3),
                                             (13, 13), (5, 16)])
def test_each_shard_is_the_reference_shard(n, num_replicas, shuffle, drop_last):
    for epoch in (0, 3):
        got = shards(n, num_replicas, shuffle=shuffle, seed=7, epoch=epoch, drop_last=drop_last)
        for rank, shard in enumerate(got):
            assert shard == reference_shard(n, num_replicas, rank, shuffle, 7, epoch, drop_last)
            assert all(type(i) is int for i in shard)


def test_unshuffled_shards_by_hand():
    assert shards(10, 3, shuffle=False) == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    assert shards(10, 3, shuffle=False, drop_last=True) == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    # a dataset shorter than the padding is repeated from its start as often as needed
    assert shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]
    assert shards(2, 5, shuffle=False, drop_last=True) == [[]] * 5


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), num_replicas=st.integers(1, 9), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2 ** 32), epoch=st.integers(0, 100))
def test_shards_are_equal_and_together_are_the_padded_or_cut_order(n, num_replicas, shuffle,
                                                                   drop_last, seed, epoch):
    got = shards(n, num_replicas, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last)
    length = n // num_replicas if drop_last else -(-n // num_replicas)
    assert [len(s) for s in got] == [length] * num_replicas
    assert len(DistributedSampler(Sized(n), num_replicas, 0, drop_last=drop_last)) == length
    whole = [None] * (length * num_replicas)        # undo the striding: order[rank::R] = shard
    for rank, shard in enumerate(got):
        whole[rank::num_replicas] = shard
    if drop_last:                                   # distinct indices: nothing seen twice
        assert len(set(whole)) == len(whole) and set(whole) <= set(range(n))
        assert n - len(whole) < num_replicas
    else:                                           # every index, then the start again
        assert sorted(whole[:n]) == list(range(n))
        assert whole[n:] == [whole[k % n] for k in range(len(whole) - n)]
        assert len(whole) - n < num_replicas
    if not shuffle:
        assert whole[:min(n, len(whole))] == list(range(min(n, len(whole))))


def test_disjoint_when_the_world_size_divides_the_dataset():
    got = shards(24, 4, seed=1, epoch=2)
    assert sorted(i for s in got for i in s) == list(range(24))


# ---- epochs and seeds ---------------------------------------------------------------------------

def test_the_order_is_fixed_by_seed_plus_epoch():
    def order(seed, epoch):
        return shards(20, 2, seed=seed, epoch=epoch)
    assert order(3, 4) == order(3, 4)
    assert order(3, 4) != order(3, 5) and order(3, 4) != order(4, 4)
    assert order(0, 1) == order(1, 0)                # PyTorch's rule: seed + epoch
    assert shards(20, 2, shuffle=False, epoch=0) == shards(20, 2, shuffle=False, epoch=9)


def test_set_epoch_reshuffles_and_iterating_again_repeats():
    sampler = DistributedSampler(Sized(30), num_replicas=3, rank=1, seed=5)
    first, again = list(sampler), list(sampler)
    assert first == again and sampler.epoch == 0
    sampler.set_epoch(1)
    assert list(sampler) != first and sampler.epoch == 1
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_attributes_and_repr():
    s = DistributedSampler(Sized(10), num_replicas=4, rank=3, shuffle=False, seed=2,
                           drop_last=True)
    assert (s.num_replicas, s.rank, s.shuffle, s.seed, s.drop_last) == (4, 3, False, 2, True)
    assert (s.num_samples, s.total_size, s.epoch) == (2, 8, 0)
    assert "num_replicas=4, rank=3" in repr(s) and "Sized of 10" in repr(s)


# ---- num_replicas and rank from tensorlite.distributed -------------------------------------------

def test_defaults_are_read_from_tensorlite_distributed(monkeypatch):
    fake = types.ModuleType('tensorlite.distributed')
    fake.get_world_size, fake.get_rank = (lambda: 4), (lambda: 2)
    monkeypatch.setitem(sys.modules, 'tensorlite.distributed', fake)
    monkeypatch.setattr(tensorlite, 'distributed', fake, raising=False)
    s = DistributedSampler(Sized(10))
    assert (s.num_replicas, s.rank, len(s)) == (4, 2, 3)
    assert DistributedSampler(Sized(10), rank=0).num_replicas == 4
    assert DistributedSampler(Sized(10), num_replicas=8).rank == 2


def test_without_a_process_group_the_world_is_one_process():
    distributed = pytest.importorskip('tensorlite.distributed')
    if distributed.is_initialized():
        pytest.skip("a process group is initialized in this process")
    s = DistributedSampler(Sized(5), shuffle=False)
    assert (s.num_replicas, s.rank, list(s)) == (1, 0, [0, 1, 2, 3, 4])


MPI_SCRIPT = textwrap.dedent("""
    import json
    from tensorlite import distributed
    from tensorlite.data import DataLoader, DistributedSampler

    class Numbers:
        def __len__(self):
            return 11
        def __getitem__(self, i):
            return i

    distributed.init_process_group(backend='mpi')
    rank, world = distributed.get_rank(), distributed.get_world_size()
    sampler = DistributedSampler(Numbers(), seed=3)
    loader = DataLoader(Numbers(), batch_size=2, sampler=sampler, seed=0)
    loader.set_epoch(1)
    seen = [int(i) for batch in loader for i in batch.data]
    with open(f'rank{rank}.json', 'w') as f:          # one file per rank: stdout interleaves
        json.dump({'world': world, 'num_replicas': sampler.num_replicas, 'seen': seen}, f)
    distributed.destroy_process_group()
""")


@needs_mpi
def test_under_mpiexec_each_rank_reads_its_share_from_the_process_group(tmp_path):
    run_ranks(tmp_path, MPI_SCRIPT)
    for rank in (0, 1):
        result = json.loads((tmp_path / f'rank{rank}.json').read_text())
        assert result['world'] == result['num_replicas'] == 2
        assert result['seen'] == reference_shard(11, 2, rank, True, 3, 1, False)


# ---- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(num_replicas=2, rank=2), r"invalid rank 2, rank should be in the interval \[0, 1\]"),
    (dict(num_replicas=2, rank=-1), r"invalid rank -1, rank should be in the interval \[0, 1\]"),
    (dict(num_replicas=0, rank=0), r"num_replicas must be >= 1 .*got 0"),
    (dict(num_replicas=-3, rank=0), r"num_replicas must be >= 1 .*got -3"),
    (dict(num_replicas=2.0, rank=0), r"num_replicas must be an integer, got 2.0"),
    (dict(num_replicas=2, rank=True), r"rank must be an integer, got True"),
    (dict(num_replicas=2, rank=0, seed=-1), r"seed must be an integer >= 0, got -1"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistributedSampler(Sized(4), **kwargs)


def test_bad_epoch_and_dataset():
    sampler = DistributedSampler(Sized(4), num_replicas=1, rank=0)
    with pytest.raises(ValueError, match=r"epoch must be an integer >= 0, got -1"):
        sampler.set_epoch(-1)
    with pytest.raises(TypeError, match="needs a dataset with __len__, got generator"):
        DistributedSampler((i for i in range(3)), num_replicas=1, rank=0)


# ---- against torch.utils.data.DistributedSampler ------------------------------------------------

SIZES = [(10, 3), (12, 4), (2, 5), (1, 2), (0, 3), (13, 13), (5, 16), (101, 8)]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("n, num_replicas", SIZES)
def test_matches_torch(n, num_replicas, drop_last):
    torch = pytest.importorskip('torch')
    import torch.utils.data

    def places(indices, permutation):
        """Where each index sits in the epoch's permutation: the padding and striding rule."""
        where = {int(i): k for k, i in enumerate(permutation)}
        return [where[int(i)] for i in indices]

    generator = torch.Generator().manual_seed(4 + 2)          # torch's rule: seed + epoch
    torch_permutation = torch.randperm(n, generator=generator).tolist()
    our_permutation = np.random.default_rng(4 + 2).permutation(n)
    for rank in range(num_replicas):
        for shuffle in (False, True):
            theirs = torch.utils.data.DistributedSampler(
                Sized(n), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=4,
                drop_last=drop_last)
            ours = DistributedSampler(Sized(n), num_replicas=num_replicas, rank=rank,
                                      shuffle=shuffle, seed=4, drop_last=drop_last)
            theirs.set_epoch(2)
            ours.set_epoch(2)
            assert (len(ours), ours.num_samples, ours.total_size) == (
                len(theirs), theirs.num_samples, theirs.total_size)
            if not shuffle:
                assert list(ours) == list(theirs)
            else:               # another permutation, taken from at the same places
                assert places(ours, our_permutation) == places(theirs, torch_permutation)

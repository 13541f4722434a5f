"""DataLoader: order and randomness fixed by the seed whatever the number of workers, epochs,
drop_last, a sampler (the shards of two ranks' DistributedSamplers), collate of nested samples,
worker errors naming the index, and shutdown (break, del, Ctrl-C, a dead worker). Worker tests use
tiny datasets: process start-up is the cost."""
import collections
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tensorlite as tl
from tensorlite.data import DistributedSampler
from tensorlite.data.loader import DataLoader, DataLoaderError, collate_arrays, default_collate
from tensorlite.data.samplers import RandomTemporalCrop, sample_generator


class RandomSamples:
    """Sample i: a random (2, 3) float32 array from the sample generator, the label i % 3 and a
    name. Module-level so that it pickles for 'spawn'."""

    def __init__(self, n=10, fail_at=None, exit_at=None, sleep=0.0):
        self.n, self.fail_at, self.exit_at, self.sleep = n, fail_at, exit_at, sleep

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise KeyError(f"no clip for index {i}")
        if i == self.exit_at:
            os._exit(3)                                   # a worker dying without a word
        time.sleep(self.sleep)
        return sample_generator().random((2, 3)).astype(np.float32), i % 3, f"video_{i}"


def as_numpy(batches):
    return [(x.data.copy(), y.data.copy(), names) for x, y, names in batches]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya, na), (xb, yb, nb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        assert na == nb


def test_same_batches_for_a_seed_with_and_without_workers():
    ds = RandomSamples(11)
    serial = as_numpy(DataLoader(ds, batch_size=3, shuffle=True, seed=4))
    parallel = as_numpy(DataLoader(ds, batch_size=3, shuffle=True, seed=4, num_workers=2,
                                   prefetch_factor=1))
    assert_same_batches(serial, parallel)
    x, y, names = serial[0]
    assert x.shape == (3, 2, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert sorted(i for _, _, n in serial for i in (int(s[6:]) for s in n)) == list(range(11))
    other_seed = as_numpy(DataLoader(ds, batch_size=3, shuffle=True, seed=5))
    assert not np.array_equal(serial[0][0], other_seed[0][0])


def test_spawn_workers_give_the_same_batches():
    ds = RandomSamples(4)
    serial = as_numpy(DataLoader(ds, batch_size=2, seed=1))
    spawned = as_numpy(DataLoader(ds, batch_size=2, seed=1, num_workers=1,
                                  multiprocessing_context='spawn'))
    assert_same_batches(serial, spawned)


def test_a_sample_depends_on_seed_epoch_and_index_only():
    ds = RandomSamples(6)
    by_index = {}
    for batch_size, shuffle in [(1, False), (4, True), (6, True)]:
        loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, seed=2)
        for x, _, names in loader:
            for row, name in zip(x.data, names):
                by_index.setdefault(name, []).append(row)
    for rows in by_index.values():
        for row in rows[1:]:
            np.testing.assert_array_equal(row, rows[0])


def test_epochs_reshuffle_reproducibly():
    def orders(loader, epochs):
        return [[n for _, _, names in loader for n in names] for _ in range(epochs)]
    a = orders(DataLoader(RandomSamples(8), batch_size=4, shuffle=True, seed=0), 3)
    b = orders(DataLoader(RandomSamples(8), batch_size=4, shuffle=True, seed=0), 3)
    assert a == b
    assert a[0] != a[1] and a[1] != a[2]
    loader = DataLoader(RandomSamples(8), batch_size=4, shuffle=True, seed=0)
    loader.set_epoch(2)
    assert orders(loader, 1)[0] == a[2] and loader.epoch == 3
    # the crops of a random sampler change from epoch to epoch too
    first, second = [next(iter(DataLoader(RandomSamples(2), batch_size=2, seed=0)))[0].data
                     for _ in range(2)]
    np.testing.assert_array_equal(first, second)             # a new loader starts at epoch 0
    loader = DataLoader(RandomSamples(2), batch_size=2, seed=0)
    e0, e1 = [next(iter(loader))[0].data for _ in range(2)]
    assert not np.array_equal(e0, e1)


def test_unshuffled_order_and_drop_last():
    ds = RandomSamples(10)
    sizes = [len(names) for _, _, names in DataLoader(ds, batch_size=4)]
    assert sizes == [4, 4, 2] and len(DataLoader(ds, batch_size=4)) == 3
    dropped = DataLoader(ds, batch_size=4, drop_last=True, shuffle=True, seed=0)
    assert [len(names) for _, _, names in dropped] == [4, 4] and len(dropped) == 2
    names = [n for _, _, batch in DataLoader(ds, batch_size=3) for n in batch]
    assert names == [f"video_{i}" for i in range(10)]


# ---- with a sampler ------------------------------------------------------------------------------

def names_of(batches):
    return [n for _, _, names in batches for n in names]


def shard_loaders(n=11, batch_size=3, **kwargs):
    """The loaders of ranks 0 and 1 of a world of two, rank given: no MPI needed. shuffle,
    drop_last and seed go to the DistributedSampler, the rest to the DataLoader."""
    sampler_args = {k: kwargs.pop(k) for k in ('shuffle', 'drop_last', 'seed') if k in kwargs}
    return [DataLoader(RandomSamples(n), batch_size=batch_size, seed=4,
                       sampler=DistributedSampler(RandomSamples(n), num_replicas=2, rank=rank,
                                                  **sampler_args), **kwargs)
            for rank in (0, 1)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_two_ranks_load_disjoint_shards_that_cover_the_dataset(num_workers):
    ranks = [as_numpy(loader) for loader in shard_loaders(num_workers=num_workers, seed=9)]
    shards = [[int(n[6:]) for n in names_of(batches)] for batches in ranks]
    assert [len(s) for s in shards] == [6, 6]                 # 11 padded to 12
    assert sorted(shards[0] + shards[1]) == sorted(list(range(11)) + [shards[0][0]])
    whole = [i for pair in zip(*shards) for i in pair]        # undo the striding
    assert sorted(whole[:11]) == list(range(11)) and whole[11] == whole[0]
    assert [len(names) for _, _, names in ranks[0]] == [3, 3]
    assert all(len(loader) == 2 for loader in shard_loaders())
    if num_workers:                                           # workers give the same batches
        for serial, batches in zip(shard_loaders(seed=9), ranks):
            assert_same_batches(as_numpy(serial), batches)
    # a sample's randomness is the same whatever rank or sampler loads it: (seed, epoch, index)
    alone = {name: x for x, _, names in as_numpy(DataLoader(RandomSamples(11), 11, seed=4))
             for name, x in zip(names, x)}
    for x, _, names in ranks[0]:
        for row, name in zip(x, names):
            np.testing.assert_array_equal(row, alone[name])


def test_the_loader_sets_the_samplers_epoch():
    loader, = shard_loaders(batch_size=4)[:1]
    sampler = loader.sampler
    epochs = [names_of(loader) for _ in range(3)]             # epochs 0, 1, 2
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2] and sampler.epoch == 2
    for epoch, names in enumerate(epochs):
        sampler.set_epoch(epoch)
        assert names == [f"video_{i}" for i in sampler]
    sampler.set_epoch(7)                                      # the loader's epoch counts
    loader.set_epoch(1)
    assert sampler.epoch == 1 and names_of(loader) == epochs[1]
    again, = shard_loaders(batch_size=4)[:1]
    assert [names_of(again) for _ in range(3)] == epochs      # reproducible


def test_an_unshuffled_sampler_keeps_the_order():
    for rank, loader in enumerate(shard_loaders(n=10, shuffle=False)):
        assert names_of(loader) == [f"video_{i}" for i in range(rank, 10, 2)]
        assert names_of(loader) == [f"video_{i}" for i in range(rank, 10, 2)]   # every epoch


def test_drop_last_in_the_sampler_and_in_the_loader():
    kept = shard_loaders(n=11, batch_size=2, shuffle=False, drop_last=True)
    assert [names_of(loader) for loader in kept] == [
        [f"video_{i}" for i in range(0, 10, 2)], [f"video_{i}" for i in range(1, 10, 2)]]
    assert [len(loader) for loader in kept] == [3, 3]         # 5 samples each: batches 2, 2, 1
    cut = shard_loaders(n=11, batch_size=4, shuffle=False, drop_last=True)[0]
    cut.drop_last = True
    assert len(cut) == 1 and [len(n) for _, _, n in cut] == [4]
    padded = shard_loaders(n=11, batch_size=4, shuffle=False)[1]
    padded.drop_last = True
    assert names_of(padded) == ["video_1", "video_3", "video_5", "video_7"]


def test_any_iterable_of_indices_is_a_sampler_and_bad_ones_are_named():
    loader = DataLoader(RandomSamples(5), batch_size=2, sampler=[4, 0, 4], seed=0)
    assert names_of(loader) == ["video_4", "video_0", "video_4"] and len(loader) == 2
    sampler = DistributedSampler(RandomSamples(5), num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(RandomSamples(5), shuffle=True, sampler=sampler)
    with pytest.raises(TypeError, match="sampler must be an iterable of indices with __len__"):
        DataLoader(RandomSamples(5), sampler=iter([0, 1]))
    for bad, shown in [([0, 5], "5"), ([-1], "-1"), ([0, 1.5], "1.5"), ([True], "True")]:
        with pytest.raises(ValueError, match=rf"sampler list gave {shown} in epoch 0; its indices "
                                             rf"must be integers in \[0, 5\)"):
            list(DataLoader(RandomSamples(5), sampler=bad))
    assert "sampler=DistributedSampler(RandomSamples of 5" in repr(
        DataLoader(RandomSamples(5), sampler=sampler))


def test_seed_none_follows_tensorlite_manual_seed():
    tl.manual_seed(3)
    a = DataLoader(RandomSamples(4), shuffle=True).seed
    tl.manual_seed(3)
    assert DataLoader(RandomSamples(4), shuffle=True).seed == a


Point = collections.namedtuple('Point', 'x y')


def test_collate_nested_structures():
    samples = [{'clip': np.full((3, 2, 4, 4), i, np.float32), 'label': i, 'weight': 0.5 * i,
                'flag': i % 2 == 0, 'meta': (f"v{i}", [np.int32(i), Point(i, 2 * i)]),
                'caption': None}
               for i in range(3)]
    batch = default_collate(samples)
    assert isinstance(batch['clip'], tl.Tensor) and batch['clip'].shape == (3, 3, 2, 4, 4)
    np.testing.assert_array_equal(batch['clip'].data[:, 0, 0, 0, 0], [0, 1, 2])
    assert batch['label'].dtype == np.int64 and batch['label'].data.tolist() == [0, 1, 2]
    assert batch['weight'].dtype == np.float32 and batch['flag'].dtype == np.bool_
    names, (ints, point) = batch['meta']
    assert names == ['v0', 'v1', 'v2'] and ints.dtype == np.int32
    assert isinstance(point, Point) and point.y.data.tolist() == [0, 2, 4]
    assert batch['caption'] == [None, None, None]
    assert isinstance(collate_arrays(samples)['clip'], np.ndarray)


def test_collate_names_what_does_not_fit():
    with pytest.raises(ValueError, match=r"different shapes \[\(2, 3\), \(2, 4\)\]"):
        collate_arrays([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="keys"):
        collate_arrays([{'a': 1}, {'b': 1}])
    with pytest.raises(TypeError, match="samples of type object"):
        collate_arrays([object(), object()])


def test_random_sampler_in_a_dataset_is_reproducible_through_the_loader():
    class Clips:
        crop = RandomTemporalCrop(4, 2)

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return self.crop(100 + i), i
    a = [idx.data for idx, _ in DataLoader(Clips(), batch_size=5, seed=8)]
    b = [idx.data for idx, _ in DataLoader(Clips(), batch_size=5, seed=8)]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_failing_sample_is_named_in_the_main_process(num_workers):
    loader = DataLoader(RandomSamples(8, fail_at=5), batch_size=2, num_workers=num_workers, seed=0)
    seen = []
    with pytest.raises(DataLoaderError) as info:
        for _, _, names in loader:
            seen += names
    assert seen == [f"video_{i}" for i in range(4)]          # batches before the bad one arrive
    err = info.value
    assert err.index == 5 and err.original_type == 'KeyError'
    assert "dataset[5] raised KeyError" in str(err) and "no clip for index 5" in str(err)
    assert "in __getitem__" in err.worker_traceback
    assert isinstance(err.__cause__, KeyError)
    if num_workers:
        assert err.worker == 0 and "Traceback in DataLoader worker 0" in str(err)


def test_breaking_early_and_deleting_the_iterator_stops_the_workers():
    loader = DataLoader(RandomSamples(40), batch_size=2, num_workers=2, seed=0)
    it = iter(loader)
    next(it)
    workers = list(it._workers)
    assert all(w.is_alive() for w in workers)
    start = time.monotonic()
    del it
    assert all(not w.is_alive() for w in workers)
    assert time.monotonic() - start < 3


def test_a_dead_worker_and_a_timeout_raise_instead_of_hanging():
    loader = DataLoader(RandomSamples(4, exit_at=1), batch_size=1, num_workers=2, seed=0)
    dead = r"worker 1 \(pid \d+\) exited unexpectedly with exit code 3"
    with pytest.raises(RuntimeError, match=dead):
        list(loader)
    slow = DataLoader(RandomSamples(2, sleep=1.2), batch_size=1, num_workers=1, timeout=0.2)
    with pytest.raises(TimeoutError, match="timed out after 0.2 s waiting for batch 0"):
        list(slow)


CTRL_C_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_data_loader import RandomSamples
    from tensorlite.data.loader import DataLoader

    loader = DataLoader(RandomSamples(1000, sleep=0.05), batch_size=1, num_workers=2, seed=0)
    it = iter(loader)
    try:
        next(it)
        print(' '.join(str(w.pid) for w in it._workers), flush=True)
        for _ in it:
            pass
    except KeyboardInterrupt:
        print('interrupted', flush=True)
        raise
""")


def _running(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            return not any(line.startswith('State:') and 'Z' in line for line in f)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="reads /proc")
def test_ctrl_c_stops_the_loop_and_leaves_no_workers():
    script = CTRL_C_SCRIPT.format(tests=os.path.dirname(__file__))
    proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)   # a liveness bound: a loaded machine is slow to shut down
    finally:
        proc.kill()
    assert 'interrupted' in out and 'KeyboardInterrupt' in err
    assert proc.returncode != 0
    assert not any(_running(pid) for pid in pids)


class BigSamples:
    """1 MiB float32 samples, so that a batch of two is passed as a memory file, not piped."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return np.full((512, 512), i, np.float32) + sample_generator().random(), i


def _open_fds():
    return len(os.listdir('/proc/self/fd'))


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="memory files are Linux's")
def test_large_batches_arrive_whole_and_writable_without_leaking_descriptors():
    serial = [(x.data.copy(), y.data.copy()) for x, y in DataLoader(BigSamples(), 2, seed=3)]
    fds = _open_fds()
    loader = DataLoader(BigSamples(), 2, seed=3, num_workers=1)
    for (x, y), (xs, ys) in zip(loader, serial):
        np.testing.assert_array_equal(x.data, xs)
        np.testing.assert_array_equal(y.data, ys)
        x.data[0, 0, 0] = -1.0                            # a batch belongs to the main process
    del x, y
    assert _open_fds() == fds

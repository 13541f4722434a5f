"""DataLoader: batches from a map-style dataset, loaded in worker processes, in a fixed order.

    loader = DataLoader(dataset, batch_size=8, shuffle=True, seed=0, num_workers=2)
    for epoch in range(10):
        for clips, labels in loader:        # Tensors (8, C, T, H, W) float32 and (8,) int64
            ...

The dataset needs `__len__` and `__getitem__(index)`. What the loader promises:

- Order. Epoch e visits the permutation drawn from (seed, e) when shuffle=True, else 0, 1, 2, ...,
  cut into batches of batch_size (the last one smaller unless drop_last). Batches come out in that
  order whatever the number of workers: num_workers=2 yields exactly the batches of num_workers=0.
  With a `sampler` (an iterable of dataset indices with `__len__`, e.g. a DistributedSampler) epoch
  e visits `list(sampler)` instead, after `sampler.set_epoch(e)` when it has that method.
- Epochs. Each `iter(loader)` uses `loader.epoch` and then increments it, so a plain loop over
  epochs reshuffles every time; `set_epoch(e)` chooses the epoch the next iteration uses (to resume
  from a checkpoint). Two loaders with the same seed give the same sequence of epochs.
- Per-sample randomness. Around each `dataset[index]` the sample generator
  (`samplers.sample_generator()`, which random samplers and transforms fall back to) is a NumPy
  Generator seeded by (seed, epoch, index). A sample's random crop therefore depends on the seed,
  the epoch and its index, not on which worker loaded it or in what order. Datasets that need other
  randomness should draw it from `sample_generator()` too.
- Workers. num_workers > 0 starts that many processes per epoch ('fork' on Linux, 'spawn'
  elsewhere or when asked: `multiprocessing_context='spawn'`, which needs a picklable dataset and a
  main module guarded by `if __name__ == '__main__'`). Batch i goes to worker i % num_workers; at
  most prefetch_factor * num_workers batches are in flight. A worker loads the samples of a batch
  and collates them with NumPy; the main process only wraps the arrays as Tensors (no copy).
- Errors. An exception in `dataset[index]` (or in collate_fn) is raised in the main process as
  `DataLoaderError`, naming the index, the worker, the original type and message, with the worker's
  traceback in the message and the original exception as `__cause__` when it can be pickled. A
  worker that dies (killed, segfault) raises RuntimeError with its exit code; `timeout` seconds
  without a batch raise TimeoutError.
- Unreadable files. A dataset's `skip_bad` record (VideoFolder, VideoList) is kept in the main
  process: what a worker finds unreadable is sent back with the batch, merged into the main
  process's dataset in batch order and warned about there, once per file; `dataset.num_bad` in
  the main process counts them all, and the next epoch's workers start from that record.
  `get_worker_info()` says, inside a dataset, whether it runs in a worker (as PyTorch's).
- Shutdown. Breaking out of the loop, deleting the iterator, an exception or Ctrl-C stops the
  workers: they are asked to exit, given a second, then terminated. Workers ignore SIGINT (the main
  process owns Ctrl-C) and exit by themselves if the main process disappears.

GNU OpenMP is not fork safe: a forked worker that runs Numba's parallel kernels with the 'omp'
threading layer after the parent has run them fails. For a dataset that runs parallel Numba kernels
(optical flow), use multiprocessing_context='spawn' or NUMBA_THREADING_LAYER=forksafe.
"""
import collections.abc
import mmap
import multiprocessing
import multiprocessing.connection
import multiprocessing.reduction
import numbers
import os
import pickle
import signal
import sys
import time
import traceback

import numpy as np

from .samplers import using_generator

# the stream a seed is spent on: the epoch's permutation, or one sample's randomness
_SHUFFLE_STREAM, _SAMPLE_STREAM = 0, 1
_POLL_SECONDS = 0.5            # how often an idle worker checks that the main process lives
_EXIT_GRACE_SECONDS = 1.0      # how long workers get to exit on their own before terminate()


def sample_rng(seed, epoch, index):
    """The Generator for dataset[index] in epoch `epoch` of a loader seeded with `seed`."""
    return np.random.default_rng([seed, epoch, _SAMPLE_STREAM, int(index)])


class DataLoaderError(RuntimeError):
    """A sample failed to load. Attributes: index (the dataset index, or the batch's indices when
    collate failed), worker (its number, None in the main process), original_type (the exception's
    class name), original_message, worker_traceback (text)."""

    def __init__(self, index, worker, original_type, original_message, worker_traceback):
        self.index, self.worker = index, worker
        self.original_type, self.original_message = original_type, original_message
        self.worker_traceback = worker_traceback
        where = "the main process" if worker is None else f"DataLoader worker {worker}"
        what = (f"dataset[{index}]" if isinstance(index, int)
                else f"collate_fn on the batch of indices {index}")
        message = f"{what} raised {original_type} in {where}: {original_message}"
        if worker is not None:      # in the main process the original is chained with its traceback
            message += f"\n\nTraceback in {where}:\n{worker_traceback}"
        super().__init__(message)

    def __reduce__(self):
        return type(self), (self.index, self.worker, self.original_type, self.original_message,
                            self.worker_traceback)


# ---- collate ------------------------------------------------------------------------------------

def collate_arrays(batch):
    """Stack a list of samples into one batch, as NumPy arrays (the part of collation workers do).

    Arrays and NumPy scalars are stacked along a new first axis (dtype kept); Python ints become
    int64, floats float32, bools bool; strings, bytes and None stay a list; dicts, tuples, named
    tuples and lists are collated field by field and keep their type."""
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError(f"collate expects a non-empty list of samples, got {batch!r:.80}")
    elem = batch[0]
    if _is_tensor(elem):
        return collate_arrays([s.data if _is_tensor(s) else s for s in batch])
    if isinstance(elem, np.ndarray):
        shapes = {np.shape(s) for s in batch}
        if len(shapes) > 1:
            raise ValueError(f"collate cannot stack arrays of different shapes {sorted(shapes)}; "
                             f"a sampler or transform must give every sample the same shape")
        return np.stack(batch)
    if isinstance(elem, np.generic):
        return np.array(batch)
    if isinstance(elem, (str, bytes)) or elem is None:
        return list(batch)
    if isinstance(elem, numbers.Number):
        values = np.array(batch)
        if values.dtype.kind == 'f':
            return values.astype(np.float32)
        if values.dtype.kind in 'iu':
            return values.astype(np.int64)
        if values.dtype.kind == 'b':
            return values
        raise TypeError(f"collate cannot batch numbers of type {type(elem).__name__}")
    if isinstance(elem, collections.abc.Mapping):
        keys = list(elem)
        for s in batch:
            if not isinstance(s, collections.abc.Mapping) or set(s) != set(keys):
                got = list(s) if isinstance(s, collections.abc.Mapping) else f"{s!r:.80}"
                raise ValueError(f"collate needs every sample to have the keys {keys}, got {got}")
        return {k: collate_arrays([s[k] for s in batch]) for k in keys}
    if isinstance(elem, (tuple, list)):
        lengths = {len(s) for s in batch}
        if len(lengths) > 1:
            raise ValueError(f"collate needs samples of one length, got lengths {sorted(lengths)}")
        fields = [collate_arrays(list(f)) for f in zip(*batch)]
        if hasattr(elem, '_fields'):                    # a named tuple
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise TypeError(f"collate cannot batch samples of type {type(elem).__name__}: expected NumPy "
                    f"arrays, numbers, strings, or dicts/tuples/lists of them")


def to_tensors(batch):
    """Every NumPy array in a collated batch (nested in dicts/tuples/lists) as a tensorlite Tensor
    sharing its memory; everything else as it is."""
    from ..creation import from_numpy            # lazily: tensorlite may import tensorlite.data
    if isinstance(batch, np.ndarray):
        return from_numpy(batch)
    if isinstance(batch, dict):
        return {k: to_tensors(v) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, '_fields'):
        return type(batch)(*(to_tensors(v) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_tensors(v) for v in batch)
    return batch


def default_collate(batch):
    """A list of samples -> one batch of tensorlite Tensors: `to_tensors(collate_arrays(batch))`.
    Clips (C, T, H, W) become (N, C, T, H, W); int labels an int64 Tensor (N,)."""
    return to_tensors(collate_arrays(batch))


def _is_tensor(x):
    from ..autograd import Tensor
    return isinstance(x, Tensor)


class WorkerInfo:
    """What `get_worker_info()` returns inside a worker: id (0 .. num_workers - 1), num_workers,
    seed (the loader's), dataset (this worker's copy)."""

    def __init__(self, id, num_workers, seed, dataset):
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self):
        return f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed})"


_worker_info = None


def get_worker_info():
    """A `WorkerInfo` in a DataLoader worker process, None in the main process (PyTorch's
    torch.utils.data.get_worker_info)."""
    return _worker_info


def _take_reports():
    """In a worker: what the datasets found unreadable since the last call (see datasets.py)."""
    from .datasets import take_worker_reports
    return take_worker_reports()


def _merge_reports(reports):
    """In the main process: a worker's reports into the main process's datasets."""
    if reports:
        from .datasets import merge_worker_reports
        merge_worker_reports(reports)


# ---- loading one batch (main process or worker) -------------------------------------------------

def _load_batch(dataset, indices, collate, seed, epoch, worker, stop=None):
    """collate([dataset[i] for i in indices]), each sample under its own seeded generator; a
    failure becomes a DataLoaderError naming the index. `stop` (an Event) set by the main process
    abandons the batch between two samples."""
    samples = []
    for i in indices:
        i = int(i)
        if stop is not None and stop.is_set():
            raise _Stopped
        try:
            with using_generator(sample_rng(seed, epoch, i)):
                samples.append(dataset[i])
        except Exception as e:
            raise _error(e, i, worker) from e
    try:
        return collate(samples)
    except Exception as e:
        raise _error(e, [int(i) for i in indices], worker) from e


class _Stopped(Exception):
    """The main process asked the workers to stop in the middle of a batch."""


def _error(exc, index, worker):
    text = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return DataLoaderError(index, worker, type(exc).__name__, str(exc), text)


# ---- the loader ---------------------------------------------------------------------------------

class DataLoader:
    """Iterate over batches of `dataset` (see the module doc for order, seeds, workers, errors).

    Arguments as PyTorch's: batch_size, shuffle, sampler, num_workers, drop_last, collate_fn
    (default: `default_collate`, which gives tensorlite Tensors), prefetch_factor (batches in flight
    per worker), timeout (seconds to wait for a batch; None waits forever), multiprocessing_context
    ('fork', 'spawn', a context, or None for fork on Linux and spawn elsewhere). `seed` (a
    non-negative int) fixes the shuffle and every sample's randomness; None draws one from
    tensorlite's generator, so `tensorlite.manual_seed` fixes it too. `len(loader)` is the number of
    batches in an epoch.

    sampler: an iterable of dataset indices (ints in [0, len(dataset))) with `__len__`, which
    chooses each epoch's order in place of shuffle (giving both is an error, as in PyTorch). The
    loader's epoch is the one that counts: before epoch e it calls `sampler.set_epoch(e)` if the
    sampler has that method, then takes `list(sampler)` in the main process. `len(loader)` follows
    `len(sampler)`."""

    def __init__(self, dataset, batch_size=1, shuffle=False, seed=None, num_workers=0,
                 drop_last=False, collate_fn=None, prefetch_factor=2, timeout=None,
                 multiprocessing_context=None, sampler=None):
        if not hasattr(dataset, '__len__') or not hasattr(dataset, '__getitem__'):
            raise TypeError(f"DataLoader needs a dataset with __len__ and __getitem__, "
                            f"got {type(dataset).__name__}")
        if sampler is not None:
            if shuffle:
                raise ValueError(f"DataLoader: sampler option is mutually exclusive with shuffle "
                                 f"(got shuffle=True and sampler={sampler!r:.120}): the sampler "
                                 f"chooses the order, so give it shuffle=True instead")
            if not hasattr(sampler, '__iter__') or not hasattr(sampler, '__len__'):
                raise TypeError(f"DataLoader: sampler must be an iterable of indices with "
                                f"__len__, got {type(sampler).__name__}")
        for name, value, low in (('batch_size', batch_size, 1), ('num_workers', num_workers, 0),
                                 ('prefetch_factor', prefetch_factor, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
        if seed is None:
            from .. import random as tl_random
            seed = int(tl_random.generator().integers(2 ** 63))
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.dataset, self.sampler = dataset, sampler
        self.batch_size, self.shuffle = int(batch_size), bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        self.num_workers, self.prefetch_factor = int(num_workers), int(prefetch_factor)
        self.collate_fn = collate_fn
        self.timeout = timeout or None                  # PyTorch's timeout=0 means no timeout
        self.multiprocessing_context = multiprocessing_context
        self.epoch = 0

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        """The epoch the next iteration uses (its shuffle or sampler's order, and sample seeds)."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)
        if hasattr(self.sampler, 'set_epoch'):      # so that sampler.epoch reads the same at once
            self.sampler.set_epoch(self.epoch)

    def _epoch_order(self, epoch):
        """The dataset indices `epoch` visits, in order: an int64 array."""
        n = len(self.dataset)
        if self.sampler is not None:
            return self._sampler_order(epoch, n)
        if self.shuffle:
            return np.random.default_rng([self.seed, epoch, _SHUFFLE_STREAM]).permutation(n)
        return np.arange(n, dtype=np.int64)

    def _sampler_order(self, epoch, n):
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)
        indices = list(self.sampler)
        order = np.array(indices) if indices else np.zeros(0, np.int64)
        # checked here, in the main process: a negative index would not even seed its generator
        if order.ndim != 1 or order.dtype.kind not in 'iu':
            bad = next((i for i in indices if isinstance(i, (bool, np.bool_))
                        or not isinstance(i, numbers.Integral)), indices[0])
        else:
            outside = (order < 0) | (order >= n)
            bad = int(order[outside.argmax()]) if outside.any() else None
        if bad is not None:
            raise ValueError(f"DataLoader: the sampler {type(self.sampler).__name__} gave "
                             f"{bad!r} in epoch {epoch}; its indices must be integers in "
                             f"[0, {n}) for a dataset of {n}")
        return order.astype(np.int64, copy=False)

    def batch_indices(self, epoch):
        """The dataset indices of each batch of `epoch`: a list of int64 arrays."""
        order = self._epoch_order(epoch)
        n = len(order)
        stop = n // self.batch_size * self.batch_size if self.drop_last else n
        return [order[k:k + self.batch_size] for k in range(0, stop, self.batch_size)]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if self.num_workers == 0:
            return _single_process_batches(self, epoch)
        return _WorkerIterator(self, epoch)

    def _context(self):
        ctx = self.multiprocessing_context
        if ctx is None:
            ctx = 'fork' if sys.platform.startswith('linux') else 'spawn'
        return multiprocessing.get_context(ctx) if isinstance(ctx, str) else ctx

    def __repr__(self):
        sampler = "" if self.sampler is None else f", sampler={self.sampler!r}"
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}{sampler}, "
                f"seed={self.seed}, num_workers={self.num_workers}, drop_last={self.drop_last})")


def _single_process_batches(loader, epoch):
    collate = loader.collate_fn or default_collate
    for indices in loader.batch_indices(epoch):
        yield _load_batch(loader.dataset, indices, collate, loader.seed, epoch, None)


# ---- worker processes ---------------------------------------------------------------------------
#
# Each worker has two connections of its own: tasks (batch number, indices) come in on one, results
# go out on the other. A result is pickled with protocol 5, its arrays kept out of band. Through a
# pipe, a batch of clips moves several times slower than a memory copy (on a busy machine, about as
# long as loading it takes), so on Linux a batch of 1 MiB or more is written into an anonymous
# in-memory file (memfd) whose descriptor is passed over the socket; the main process maps that
# file and the arrays use the mapping: one copy in all, and nothing left behind if either side
# dies. Smaller batches, and other systems, send the arrays' bytes over the connection.

_PASS_MEMORY_FILES = sys.platform.startswith('linux') and hasattr(os, 'memfd_create')
_MEMORY_FILE_MIN_BYTES = 1 << 20


def _send(conn, message):
    """Send a picklable object, its contiguous arrays out of band. Everything that can fail
    (pickling, the memory file) happens before the first byte is sent, so a failure never leaves
    half a message on the connection."""
    buffers = []
    header = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    sizes = [r.nbytes for r in raws]
    fd = None
    try:
        if _PASS_MEMORY_FILES and sum(sizes) >= _MEMORY_FILE_MIN_BYTES:
            fd = os.memfd_create('tensorlite-batch')
            for raw in raws:
                while raw.nbytes:                     # os.write may write less than asked
                    raw = raw[os.write(fd, raw):]
        conn.send_bytes(pickle.dumps((header, sizes, fd is not None), protocol=5))
        if fd is not None:
            multiprocessing.reduction.send_handle(conn, fd, None)
        else:
            for raw in raws:
                conn.send_bytes(raw)
    finally:
        if fd is not None:
            os.close(fd)                              # the message in flight holds its own copy


def _receive(conn):
    """The object `_send` sent; its arrays are writable."""
    header, sizes, in_file = pickle.loads(conn.recv_bytes())
    buffers = []
    if in_file:
        fd = multiprocessing.reduction.recv_handle(conn)
        try:
            memory = memoryview(mmap.mmap(fd, sum(sizes)))   # the mapping outlives the descriptor
        finally:
            os.close(fd)
        offset = 0
        for size in sizes:
            buffers.append(memory[offset:offset + size])
            offset += size
    else:
        for size in sizes:
            buffer = bytearray(size)
            conn.recv_bytes_into(buffer)
            buffers.append(buffer)
    return pickle.loads(header, buffers=buffers)


def _worker_loop(worker, num_workers, dataset, collate_fn, seed, epoch, tasks, results, done):
    """A worker process: load the batches named on `tasks` until None (or until the main process
    is gone), and send each on `results` as (batch number, ok, batch or DataLoaderError, the
    unreadable files met while loading it)."""
    global _worker_info
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # Ctrl-C is the main process's to handle
    _worker_info = WorkerInfo(worker, num_workers, seed, dataset)
    parent = multiprocessing.parent_process()
    collate = collate_fn or collate_arrays
    while True:
        if not tasks.poll(_POLL_SECONDS):
            if done.is_set() or (parent is not None and not parent.is_alive()):
                return
            continue
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        batch_number, indices = task
        try:
            message = (batch_number, True,
                       _load_batch(dataset, indices, collate, seed, epoch, worker, stop=done))
        except _Stopped:
            return
        except DataLoaderError as e:
            message = (batch_number, False, (e, _pickled_cause(e)))
        reports = _take_reports()
        try:
            _send(results, message + (reports,))
        except (BrokenPipeError, EOFError):           # the main process is gone
            return
        except Exception as e:                        # the batch cannot be pickled: say so
            err = _error(e, [int(i) for i in indices], worker)
            _send(results, (batch_number, False, (err, None), reports))


def _pickled_cause(err):
    try:
        return pickle.dumps(err.__cause__)
    except Exception:
        return None


def _unpickle(data):
    try:
        return pickle.loads(data)
    except Exception:
        return None


class _WorkerIterator:
    """One epoch's batches from worker processes, in order."""

    def __init__(self, loader, epoch):
        self._closed = True                           # until there are workers, nothing to stop
        self._workers, self._tasks, self._results = [], [], []
        self._batches = loader.batch_indices(epoch)
        self._default_collate = loader.collate_fn is None
        self._timeout = loader.timeout
        self._num_workers = loader.num_workers
        self._sent = self._received = 0
        self._ready = {}                              # batch number -> (ok, batch, reports)
        ctx = loader._context()
        self._done = ctx.Event()
        self._closed = False
        try:
            for w in range(loader.num_workers):
                task_reader, task_writer = ctx.Pipe(duplex=False)
                result_reader, result_writer = ctx.Pipe(duplex=True)   # a socket: passes fds
                process = ctx.Process(
                    target=_worker_loop, name=f"DataLoader worker {w}", daemon=True,
                    args=(w, loader.num_workers, loader.dataset, loader.collate_fn, loader.seed, epoch, task_reader,
                          result_writer, self._done))
                process.start()
                task_reader.close()                   # the worker's ends live in the worker
                result_writer.close()
                self._tasks.append(task_writer)
                self._results.append(result_reader)
                self._workers.append(process)
            for _ in range(loader.prefetch_factor * loader.num_workers):
                self._send_next()
        except BaseException:
            self.close()
            raise

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._batches)

    def _send_next(self):
        if self._sent < len(self._batches):
            worker = self._sent % self._num_workers
            self._tasks[worker].send((self._sent, self._batches[self._sent]))
            self._sent += 1

    def __next__(self):
        if self._closed or self._received >= len(self._batches):
            self.close()
            raise StopIteration
        try:
            while self._received not in self._ready:
                number, ok, payload, reports = self._get()
                self._ready[number] = (ok, payload, reports)
            ok, payload, reports = self._ready.pop(self._received)
            self._received += 1
            _merge_reports(reports)
            if not ok:
                err, cause = payload
                raise err from (_unpickle(cause) if cause is not None else None)
            self._send_next()
            return to_tensors(payload) if self._default_collate else payload
        except BaseException:                         # errors, Ctrl-C: stop the workers first
            self.close()
            raise

    def _get(self):
        """The next result from any worker. Waiting also watches the workers' sentinels, so a
        worker that dies is noticed at once."""
        start = time.monotonic()
        sentinels = {p.sentinel: w for w, p in enumerate(self._workers)}
        while True:
            wait = None
            if self._timeout is not None:
                wait = max(self._timeout - (time.monotonic() - start), 0.0)
            ready = multiprocessing.connection.wait(self._results + list(sentinels), wait)
            for w, conn in enumerate(self._results):
                if conn in ready:
                    try:
                        return _receive(conn)
                    except (EOFError, OSError):       # the worker died: say how
                        self._raise_dead(w)
            for sentinel in ready:
                self._raise_dead(sentinels[sentinel])
            if self._timeout is not None and time.monotonic() - start >= self._timeout:
                worker = self._received % self._num_workers
                raise TimeoutError(f"DataLoader timed out after {self._timeout} s waiting for "
                                   f"batch {self._received} (worker {worker})")

    def _raise_dead(self, w):
        process = self._workers[w]
        process.join(timeout=_POLL_SECONDS)
        code = process.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        raise RuntimeError(f"DataLoader worker {w} (pid {process.pid}) exited unexpectedly with "
                           f"{how} while batch {self._received} was awaited")

    def close(self):
        """Stop the workers: ask them, read and drop what they are still sending (a worker
        blocked on a full pipe could not hear the request), terminate any still running after a
        second. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._done.set()
        for conn in self._tasks:
            try:
                conn.send(None)
            except OSError:                           # that worker is already gone
                pass
        deadline = time.monotonic() + _EXIT_GRACE_SECONDS
        running = {p.sentinel: p for p in self._workers}
        readers = list(self._results)
        while running and time.monotonic() < deadline:
            ready = multiprocessing.connection.wait(
                readers + list(running), max(deadline - time.monotonic(), 0.0))
            for conn in ready:
                if conn in running:
                    running.pop(conn).join()
                else:
                    try:
                        _receive(conn)
                    except Exception:                 # a worker cut off mid-message
                        readers.remove(conn)
        for process in running.values():
            process.terminate()
            process.join(timeout=_EXIT_GRACE_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self._tasks + self._results:
            conn.close()

    def __del__(self):
        try:
            self.close()
        except Exception:                             # interpreter teardown: modules may be gone
            pass

"""`DistributedDataParallel`: one replica of the model per rank, gradients averaged over the ranks
while backward runs, as `torch.nn.parallel.DistributedDataParallel`.

    import tensorlite.distributed as dist
    dist.init_process_group()                       # mpiexec -n 2 python train.py
    model = nn.parallel.DistributedDataParallel(model)
    loss = criterion(model(clips), labels)          # each rank its own share of the batch
    loss.backward()                                 # .grad: the mean over the ranks
    optimizer.step()                                # the same step on every rank

Construction. Every rank must hold the same parameters and buffers (names, shapes, dtypes,
requires_grad) and the same bucket_cap_mb: one comparison across the ranks makes every rank raise
ValueError naming the differences otherwise. Then rank 0's values are broadcast to every rank, so
the ranks start from one model whatever their random initialization was.

Buckets. The parameters that require grad, in reverse order of `module.parameters()` (the order
backward usually produces their gradients), are grouped into buckets of about bucket_cap_mb MiB:
a bucket closes once it reaches the cap (a larger parameter is a bucket of its own), or when the
dtype or device changes.

Backward. A post-accumulate-grad hook on each parameter marks it ready once its `.grad` is final
for this backward. When every parameter of a bucket is ready, the bucket's gradients are copied
into one flat array and a non-blocking all-reduce (a sum) starts, while backward goes on through
the earlier layers. MPI matches collectives by the order they are issued, so buckets start in
index order on every rank: a bucket complete before an earlier one waits for it. At the end of the
backward (`autograd.engine.queue_callback`) the buckets not yet started start -- a parameter that
got no gradient in this backward counts as zeros --, all are waited on, divided by the world size,
and each parameter's `.grad` becomes its slice of its bucket's array (a view: nothing is copied
back). Every rank thus issues the same collectives in the same order, and an unused parameter
cannot hang the job.

Unused parameters. Each bucket also reduces one flag per parameter: whether the rank had a
gradient for it. A parameter no rank had a gradient for keeps `.grad` None (an optimizer skips it,
as it would on one process); one that only some ranks used gets the mean with zeros for the others.
This is what PyTorch gives with find_unused_parameters=True, without its search of the graph.

`no_sync()`: backward inside the block only accumulates local gradients (no communication); the
next backward outside it reduces what was accumulated. The choice is made when backward runs, so
the backward must be inside the block (the forward may be too).

Buffers. With broadcast_buffers=True (the default, as PyTorch), rank 0's buffers (BatchNorm's
running statistics) are broadcast before each forward that records a graph outside no_sync.

Rules, as in PyTorch: every rank calls forward and backward equally often, and each backward
reaches at least one parameter of the model (the ranks' collectives are paired by order). The
module must have its final device and dtype before it is wrapped. In a world of one the same path
runs, the collectives return at once, and the gradients are the plain model's.
"""
import contextlib
import hashlib
import weakref

import numpy as np

from .. import backend
from .. import distributed as dist
from ..autograd.engine import queue_callback
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..autograd.tensor import Tensor
from .module import Module

__all__ = ['DistributedDataParallel']

_MiB = 2 ** 20


class _Bucket:
    """Parameters whose gradients are reduced together, as one flat array:
    [grad of params[0], ..., grad of params[-1], one 'had a gradient' flag per parameter]."""

    def __init__(self, params):
        self.params = params
        self.slices, start = [], 0
        for p in params:
            self.slices.append((start, start + p.numel()))
            start += p.numel()
        self.numel = start
        self.waiting = len(params)          # parameters not ready yet in this backward
        self.flat = self.work = None

    def flatten(self):
        """The gradients into a fresh flat array (zeros for a missing one), flags after them."""
        first = self.params[0]
        xp = backend.array_module(first.data)
        flat = xp.empty(self.numel + len(self.params), dtype=first.dtype)
        for k, (p, (start, stop)) in enumerate(zip(self.params, self.slices)):
            if p.grad is None:
                flat[start:stop] = 0
                flat[self.numel + k] = 0
            else:
                flat[start:stop] = p.grad.data.reshape(-1)
                flat[self.numel + k] = 1
        return flat

    def unflatten(self, world):
        """Each parameter's .grad becomes its slice of the reduced array, divided by the world
        size; a parameter no rank had a gradient for keeps None."""
        flat, n = self.flat, self.numel
        if world > 1:
            flat[:n] /= world
        had = backend.as_numpy(flat[n:])
        for p, (start, stop), flag in zip(self.params, self.slices, had):
            if flag == 0:
                continue
            grad = flat[start:stop].reshape(p.shape)      # (p.shape), a view of the bucket
            if p.grad is None:
                p.grad = Tensor(grad)
            else:
                p.grad.data = grad
        self.flat = self.work = None
        self.waiting = len(self.params)


def _make_buckets(params, cap_bytes):
    """Buckets over `params` (already in reverse order): close one at cap_bytes, or at a change
    of dtype or device."""
    buckets, current, size = [], [], 0
    for p in params:
        if current and (p.dtype != current[0].dtype or p.device != current[0].device):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += p.numel() * p.dtype.itemsize
        if size >= cap_bytes:
            buckets.append(current)
            current, size = [], 0
    if current:
        buckets.append(current)
    return [_Bucket(b) for b in buckets]


class DistributedDataParallel(Module):
    """Wrap `module` for data-parallel training over the ranks of `tensorlite.distributed`.

    module: the model (same architecture on every rank; rank 0's values win).
    bucket_cap_mb: about how many MiB of gradients one all-reduce carries (default 25, PyTorch's).
    broadcast_buffers: copy rank 0's buffers to every rank before each recording forward.

    `.module` is the wrapped model; `forward` calls it; `state_dict()` and `load_state_dict()` are
    the module's, without a 'module.' prefix (a checkpoint moves freely between the plain and the
    wrapped model); `parameters()`, `train()`, `eval()` and `to()` reach the module."""

    def __init__(self, module, bucket_cap_mb=25, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a tensorlite Module, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) \
                or not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a number > 0, got "
                             f"{bucket_cap_mb!r}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the process group is not initialized: "
                               "call tensorlite.distributed.init_process_group() first (without "
                               "mpiexec it is a world of one)")
        self.module = module
        self.bucket_cap_mb = bucket_cap_mb
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self.world_size = dist.get_world_size()

        _check_same_on_every_rank(module, bucket_cap_mb)
        with no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t, src=0, check=False)

        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _make_buckets(params[::-1], bucket_cap_mb * _MiB)
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._next_bucket = 0               # buckets start in this order on every rank
        self._ready = set()                 # id(p) of the parameters ready in this backward
        self._finish_queued = False

        # the hooks hold the wrapper weakly: a dropped wrapper leaves a plain model behind
        ref = weakref.ref(self)

        def on_grad_ready(p):
            ddp = ref()
            if ddp is not None:
                ddp._grad_ready(p)
        handles = [p.register_post_accumulate_grad_hook(on_grad_ready) for p in params]
        weakref.finalize(self, _remove_all, handles)

    # ---- the module ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        self._drop_unfinished()
        if self.broadcast_buffers and self.require_backward_grad_sync and is_grad_enabled():
            with no_grad():
                for b in self.module.buffers():
                    dist.broadcast(b, src=0, check=False)
        return self.module(*args, **kwargs)

    def state_dict(self, destination=None, prefix='', keep_vars=False):
        """The module's state dict: the same keys as the plain model's (no 'module.')."""
        return self.module.state_dict(destination, prefix, keep_vars)

    def load_state_dict(self, state_dict, strict=True):
        """Load a plain model's state dict (or one whose every key starts with 'module.', as
        PyTorch's DistributedDataParallel saves them) into the module."""
        prefixed = state_dict and all(k.startswith('module.') for k in state_dict)
        if prefixed and not any(k.startswith('module.') for k in self.module.state_dict()):
            state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
        return self.module.load_state_dict(state_dict, strict)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward inside the block accumulates local gradients, without communication."""
        before = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = before

    def extra_repr(self):
        return f"world_size={self.world_size}, buckets={len(self._buckets)}"

    # ---- the reduction ---------------------------------------------------------------------------
    def _grad_ready(self, p):
        """Post-accumulate-grad hook of every parameter: start the buckets that are complete."""
        if not self.require_backward_grad_sync or id(p) in self._ready:
            return
        if not self._finish_queued:
            queue_callback(self._finish_backward)
            self._finish_queued = True
        self._ready.add(id(p))
        self._bucket_of[id(p)].waiting -= 1
        buckets = self._buckets
        while self._next_bucket < len(buckets) and buckets[self._next_bucket].waiting == 0:
            self._start(self._next_bucket)
            self._next_bucket += 1

    def _start(self, k):
        # polling the reductions in flight lets MPI progress them while backward computes
        for b in self._buckets[:k]:
            if b.work is not None:
                b.work.is_completed()
        bucket = self._buckets[k]
        bucket.flat = bucket.flatten()
        bucket.work = dist.all_reduce(Tensor(bucket.flat), op='sum', async_op=True, check=False)

    def _finish_backward(self):
        """End of backward: start what has not started (missing gradients count as zeros), wait
        for everything, write the averaged gradients."""
        try:
            while self._next_bucket < len(self._buckets):
                self._start(self._next_bucket)
                self._next_bucket += 1
            for bucket in self._buckets:
                bucket.work.wait()
                bucket.unflatten(self.world_size)
        finally:
            self._reset()

    def _drop_unfinished(self):
        """A backward that raised left buckets started: finish their requests, forget them."""
        if self._finish_queued:
            for bucket in self._buckets:
                if bucket.work is not None:
                    bucket.work.wait()
            self._reset()

    def _reset(self):
        for bucket in self._buckets:
            bucket.flat = bucket.work = None
            bucket.waiting = len(bucket.params)
        self._next_bucket = 0
        self._ready.clear()
        self._finish_queued = False


def _remove_all(handles):
    for h in handles:
        h.remove()


# ---- the same model on every rank ----------------------------------------------------------------

def _signature(module, bucket_cap_mb):
    """One line per parameter and buffer, 'kind name<TAB>shape dtype ...', and the bucket cap."""
    lines = [f"parameter {name}\t{tuple(p.shape)} {p.dtype} requires_grad={p.requires_grad}"
             for name, p in module.named_parameters()]
    lines += [f"buffer {name}\t{tuple(b.shape)} {b.dtype}" for name, b in module.named_buffers()]
    lines.append(f"setting bucket_cap_mb\t{bucket_cap_mb!r}")
    return '\n'.join(lines)


def _check_same_on_every_rank(module, bucket_cap_mb):
    """Compare the ranks' signatures through a digest (two all-reduces of two integers); when they
    differ, gather them all so that every rank raises the same ValueError naming the differences."""
    if dist.get_world_size() == 1:
        return
    text = _signature(module, bucket_cap_mb).encode()
    digest = np.frombuffer(hashlib.sha256(text).digest()[:16], np.int64).copy()
    low, high = Tensor(digest.copy()), Tensor(digest.copy())
    dist.all_reduce(low, op='min')
    dist.all_reduce(high, op='max')
    if np.array_equal(low.numpy(), high.numpy()):
        return
    length = Tensor(np.array([len(text)], np.int64))
    dist.all_reduce(length, op='max')
    mine = np.zeros(int(length.numpy()[0]), np.uint8)
    mine[:len(text)] = np.frombuffer(text, np.uint8)
    gathered = [Tensor(np.zeros_like(mine)) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, Tensor(mine))
    texts = [bytes(t.numpy()).rstrip(b'\0').decode() for t in gathered]
    problems = []
    for r in range(1, len(texts)):
        if texts[r] != texts[0]:
            problems = _differences(texts[0], texts[r], r)
            break
    shown = '; '.join(problems[:8])
    if len(problems) > 8:
        shown += f"; and {len(problems) - 8} more"
    raise ValueError(f"DistributedDataParallel: every rank must hold the same parameters and "
                     f"buffers (names, shapes, dtypes) and the same bucket_cap_mb; rank {r} "
                     f"differs from rank 0: {shown}")


def _differences(text0, text, r):
    def entries(t):
        return dict(line.split('\t', 1) for line in t.split('\n') if line)
    ours, theirs = entries(text0), entries(text)
    out = []
    for key, value in ours.items():
        if key not in theirs:
            out.append(f"{key} ({value}) only on rank 0")
        elif theirs[key] != value:
            out.append(f"{key}: rank 0 {value}, rank {r} {theirs[key]}")
    out += [f"{key} ({value}) only on rank {r}" for key, value in theirs.items() if key not in ours]
    return out or ['the order of the parameters differs']

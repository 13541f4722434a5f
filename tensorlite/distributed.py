"""Collectives across processes, named as `torch.distributed`, on MPI (mpi4py).

    import tensorlite.distributed as dist
    dist.init_process_group()                  # backend='mpi': the ranks mpiexec started
    rank, world = dist.get_rank(), dist.get_world_size()
    dist.all_reduce(t)                         # in place: the sum over the ranks
    dist.broadcast(t, src=0)                   # in place: rank 0's values everywhere
    dist.all_gather(outputs, t)                # outputs[r] = rank r's t

Run with `mpiexec -n 2 python train.py` (`pip install -e ".[dist]"` brings mpi4py and an MPICH
runtime with `mpiexec`, no system MPI needed). A process started without mpiexec is a world of
one: rank 0 of 1, and every collective leaves its tensor as it is (with or without mpi4py).

Tensors may live on either device. The 'mpi' backend moves CUDA tensors through host copies
(also under TENSORLITE_SIMULATE_CUDA=1, where "device" arrays are host arrays in disguise): a
CUDA-aware MPI could take device buffers directly, but which MPI is CUDA-aware cannot be told
portably, so the copies are always made. The 'nccl' backend is for CuPy arrays on real GPUs
(`cupy.cuda.nccl`, one GPU per rank); it needs MPI too, to hand the NCCL id to every rank.

Checks. A collective before `init_process_group` raises RuntimeError saying so. Before moving any
data, each collective compares what the ranks passed, in one small all-reduce of a header (the
shape and the dtype, as integers, reduced with MIN and MAX): a rank that passes another shape or
dtype makes every rank raise ValueError naming the two, instead of MPI reading the wrong number of
bytes or hanging. `check=False` skips it (DistributedDataParallel does, after checking its buckets
once at construction).

Failures. Once a group of more than one rank is initialized, an uncaught exception on any rank is
printed and then aborts the whole job (MPI_Abort, as `python -m mpi4py` does): the other ranks
would otherwise wait in their next collective forever.

Asynchronous work. `all_reduce(t, async_op=True)` starts a non-blocking MPI all-reduce and returns
a `Work` whose `wait()` finishes it (and copies back a CUDA tensor); the tensor must not be read or
written before.
"""
import os

import numpy as np

__all__ = ['init_process_group', 'is_initialized', 'get_rank', 'get_world_size', 'barrier',
           'destroy_process_group', 'all_reduce', 'broadcast', 'all_gather', 'Work',
           'broadcast_object_list', 'all_gather_object', 'is_mpi_available', 'launched_by_mpi',
           'BACKENDS', 'OPS']

BACKENDS = ('mpi', 'nccl')
OPS = ('sum', 'avg', 'max', 'min', 'product')
_HEADER_DIMS = 8
ABORT_GRACE_SECONDS = 1.0            # after an uncaught exception, before the job is aborted                     # shapes up to 8 dimensions are checked in the header

_group = None                        # the initialized process group, or None


class _Group:
    def __init__(self, backend, comm, nccl=None):
        self.backend, self.comm, self.nccl = backend, comm, nccl
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()


def is_mpi_available():
    """True when mpi4py imports (`pip install -e ".[dist]"`)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def launched_by_mpi():
    """True in a process that mpiexec started (MPICH, Open MPI and Intel MPI set these): where
    `tensorlite train` and `compare` join the group by themselves."""
    return any(key in os.environ for key in ('PMI_RANK', 'PMI_SIZE', 'OMPI_COMM_WORLD_SIZE',
                                             'PMIX_RANK', 'MPI_LOCALNRANKS'))


def init_process_group(backend='mpi'):
    """Join the processes mpiexec started (MPI_COMM_WORLD). Without mpiexec, a world of one.

    backend: 'mpi' (default) or 'nccl' (CuPy arrays on GPUs, one per rank; needs CuPy with NCCL).
    Raises RuntimeError when already initialized, or when started by mpiexec without mpi4py
    installed (which would silently train N unrelated copies)."""
    global _group
    if backend not in BACKENDS:
        raise ValueError(f"init_process_group: backend must be one of {BACKENDS}, got {backend!r}")
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialized "
                           "(destroy_process_group() first)")
    if not is_mpi_available():
        if launched_by_mpi():
            raise RuntimeError("init_process_group: this process was started by mpiexec but mpi4py "
                               "is not installed: pip install -e \".[dist]\" (mpi4py and mpich)")
        if backend == 'nccl':
            raise RuntimeError("init_process_group(backend='nccl') needs mpi4py to hand the NCCL "
                               "id to every rank: pip install -e \".[dist]\"")
        _group = _Group(backend, None)
        return
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    nccl = None
    if backend == 'nccl':
        nccl = _nccl_communicator(comm)
    _group = _Group(backend, comm, nccl)
    if _group.size > 1:
        _abort_on_uncaught_exception(comm)


def _abort_on_uncaught_exception(comm):
    """An exception that ends one rank would leave the others waiting in their next collective
    forever (and the failed rank in MPI_Finalize, waiting for them): after printing it, abort the
    whole job, as `python -m mpi4py` does, so that mpiexec exits non-zero at once."""
    import sys
    previous = sys.excepthook
    if getattr(previous, '_tensorlite_aborts', False):
        return

    def excepthook(kind, value, traceback):
        import time
        try:
            previous(kind, value, traceback)
            sys.stderr.flush()
            # mpiexec forwards the ranks' output through its proxy: give it a moment to pass the
            # traceback on before MPI_Abort kills every process of the job (under load it lost
            # the end of the message)
            time.sleep(ABORT_GRACE_SECONDS)
        finally:
            comm.Abort(1)
    excepthook._tensorlite_aborts = True
    sys.excepthook = excepthook


def _nccl_communicator(comm):
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise RuntimeError(f"init_process_group(backend='nccl') needs CuPy with NCCL "
                           f"(cupy.cuda.nccl): {e}") from None
    from . import cuda
    if cuda.is_simulated():
        raise RuntimeError("init_process_group(backend='nccl') needs real GPUs; under "
                           "TENSORLITE_SIMULATE_CUDA=1 use backend='mpi' (host copies)")
    cupy.cuda.Device(comm.Get_rank() % cupy.cuda.runtime.getDeviceCount()).use()
    uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
    uid = comm.bcast(uid, root=0)
    return nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())


def is_initialized():
    return _group is not None


def _require(op):
    if _group is None:
        raise RuntimeError(f"tensorlite.distributed.{op}: the process group is not initialized: "
                           f"call tensorlite.distributed.init_process_group() first")
    return _group


def get_rank():
    """This process's rank, 0 .. world size - 1 (0 when not initialized: a world of one)."""
    return 0 if _group is None else _group.rank


def get_world_size():
    """The number of ranks (1 when not initialized: a world of one)."""
    return 1 if _group is None else _group.size


def barrier():
    group = _require('barrier')
    if group.comm is not None:
        group.comm.Barrier()


def destroy_process_group():
    """Leave the group (MPI itself stays initialized until the process exits, as mpi4py wants)."""
    global _group
    _require('destroy_process_group')
    _group = None


# ---- arrays ---------------------------------------------------------------------------------------

def _array(tensor, op):
    from .autograd.tensor import Tensor
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensorlite.distributed.{op} takes a tensorlite Tensor, got "
                        f"{type(tensor).__name__}")
    return tensor


def _host(tensor):
    """(a contiguous host array holding the tensor's values, whether it must be copied back)."""
    from . import backend
    data = tensor.data
    if isinstance(data, np.ndarray):
        if data.flags['C_CONTIGUOUS'] and data.flags['WRITEABLE']:
            return data, False
        return np.ascontiguousarray(data), True
    return np.ascontiguousarray(backend.as_numpy(data)), True


def _copy_back(tensor, host):
    from . import backend
    data = tensor.data
    if isinstance(data, np.ndarray):
        data[...] = host
    else:
        data[...] = backend.array_module(data).asarray(host)


_DTYPE_CODES = {np.dtype(t): k for k, t in enumerate(
    ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8', 'bool'), 1)}


def _check_same(group, tensor, op):
    """One all-reduce of a small header (ndim, shape, dtype) with MIN and MAX: every rank raises
    ValueError when the ranks passed different shapes or dtypes."""
    from mpi4py import MPI
    shape = tuple(tensor.shape)
    dtype = np.dtype(tensor.dtype)
    if len(shape) > _HEADER_DIMS:
        raise ValueError(f"tensorlite.distributed.{op}: at most {_HEADER_DIMS} dimensions, got "
                         f"shape {shape}")
    if dtype not in _DTYPE_CODES:
        raise TypeError(f"tensorlite.distributed.{op}: dtype {dtype} is not supported; expected "
                        f"one of {', '.join(str(d) for d in _DTYPE_CODES)}")
    header = np.full(2 + _HEADER_DIMS, -1, np.int64)
    header[0], header[1] = len(shape), _DTYPE_CODES[dtype]
    header[2:2 + len(shape)] = shape
    low, high = np.empty_like(header), np.empty_like(header)
    group.comm.Allreduce(header, low, op=MPI.MIN)
    group.comm.Allreduce(header, high, op=MPI.MAX)
    if not np.array_equal(low, high):
        names = {v: str(k) for k, v in _DTYPE_CODES.items()}

        def describe(h):
            return f"shape {tuple(int(d) for d in h[2:2 + max(int(h[0]), 0)])} {names.get(int(h[1]), '?')}"
        raise ValueError(f"tensorlite.distributed.{op}: the ranks passed different tensors: rank "
                         f"{group.rank} has {describe(header)}; across the ranks the smallest "
                         f"header is {describe(low)} and the largest {describe(high)}")


def _mpi_op(op):
    from mpi4py import MPI
    return {'sum': MPI.SUM, 'avg': MPI.SUM, 'max': MPI.MAX, 'min': MPI.MIN,
            'product': MPI.PROD}[op]


class Work:
    """A collective in flight: `wait()` finishes it (idempotent); `is_completed()` polls."""

    def __init__(self, request=None, finish=None):
        self._request, self._finish, self._done = request, finish, request is None
        if self._done and finish is not None:
            finish()

    def is_completed(self):
        if not self._done and self._request.Test():
            self.wait()
        return self._done

    def wait(self):
        if not self._done:
            self._request.Wait()
            self._done = True
            if self._finish is not None:
                self._finish()
        return True


def all_reduce(tensor, op='sum', async_op=False, check=True):
    """Reduce `tensor` over the ranks, in place: 'sum' (default), 'avg', 'max', 'min' or
    'product'. async_op=True returns a Work to wait on (a non-blocking MPI all-reduce); else
    None, the values final."""
    _array(tensor, 'all_reduce')
    group = _require('all_reduce')
    if op not in OPS:
        raise ValueError(f"tensorlite.distributed.all_reduce: op must be one of {OPS}, got {op!r}")
    if group.comm is None or group.size == 1:
        return Work() if async_op else None
    if check:
        _check_same(group, tensor, 'all_reduce')
    if group.nccl is not None and not isinstance(tensor.data, np.ndarray):
        return _nccl_all_reduce(group, tensor, op, async_op)
    from mpi4py import MPI
    mpi_op = _mpi_op(op)
    host, copied = _host(tensor)

    def finish():
        if op == 'avg':                      # in place: host is the tensor's own array if it can
            divide = np.divide if host.dtype.kind == 'f' else np.floor_divide
            divide(host, group.size, out=host)
        if copied:
            _copy_back(tensor, host)
    if async_op:
        return Work(group.comm.Iallreduce(MPI.IN_PLACE, host, op=mpi_op), finish)
    group.comm.Allreduce(MPI.IN_PLACE, host, op=mpi_op)
    finish()
    return None


def _nccl_all_reduce(group, tensor, op, async_op):
    import cupy
    from cupy.cuda import nccl
    data = tensor.data
    if not data.flags.c_contiguous:
        raise ValueError("tensorlite.distributed.all_reduce (nccl): the tensor must be contiguous")
    types = {np.dtype('float16'): nccl.NCCL_FLOAT16, np.dtype('float32'): nccl.NCCL_FLOAT32,
             np.dtype('float64'): nccl.NCCL_FLOAT64, np.dtype('int32'): nccl.NCCL_INT32,
             np.dtype('int64'): nccl.NCCL_INT64}
    ops = {'sum': nccl.NCCL_SUM, 'avg': nccl.NCCL_SUM, 'max': nccl.NCCL_MAX,
           'min': nccl.NCCL_MIN, 'product': nccl.NCCL_PROD}
    stream = cupy.cuda.get_current_stream()
    group.nccl.allReduce(data.data.ptr, data.data.ptr, data.size, types[np.dtype(data.dtype)],
                         ops[op], stream.ptr)
    if op == 'avg':
        data /= group.size
    if not async_op:
        stream.synchronize()
        return None
    return Work(finish=stream.synchronize)


def _check_src(group, src, op):
    if not (isinstance(src, (int, np.integer)) and 0 <= src < group.size):
        raise ValueError(f"tensorlite.distributed.{op}: src must be a rank in "
                         f"0..{group.size - 1}, got {src!r}")


def broadcast(tensor, src=0, check=True):
    """Set `tensor`, in place, to rank `src`'s values on every rank."""
    _array(tensor, 'broadcast')
    group = _require('broadcast')
    _check_src(group, src, 'broadcast')
    if group.comm is None or group.size == 1:
        return None
    if check:
        _check_same(group, tensor, 'broadcast')
    host, copied = _host(tensor)
    group.comm.Bcast(host, root=int(src))
    if copied:
        _copy_back(tensor, host)
    return None


def all_gather(tensor_list, tensor, check=True):
    """tensor_list[r] = rank r's `tensor`, for every r (tensor_list: world-size Tensors of the
    tensor's shape and dtype, written in place)."""
    _array(tensor, 'all_gather')
    group = _require('all_gather')
    if len(tensor_list) != group.size:
        raise ValueError(f"tensorlite.distributed.all_gather: tensor_list must hold "
                         f"{group.size} Tensors (the world size), got {len(tensor_list)}")
    for r, out in enumerate(tensor_list):
        _array(out, 'all_gather')
        if tuple(out.shape) != tuple(tensor.shape) or out.dtype != tensor.dtype:
            raise ValueError(f"tensorlite.distributed.all_gather: tensor_list[{r}] is "
                             f"{tuple(out.shape)} {out.dtype}, the tensor {tuple(tensor.shape)} "
                             f"{tensor.dtype}")
    if group.comm is None or group.size == 1:
        host, _ = _host(tensor)
        _copy_back(tensor_list[0], host)
        return None
    if check:
        _check_same(group, tensor, 'all_gather')
    host, _ = _host(tensor)
    gathered = np.empty((group.size,) + host.shape, host.dtype)
    group.comm.Allgather(host, gathered)
    for r, out in enumerate(tensor_list):
        _copy_back(out, gathered[r])
    return None


# ---- small Python objects (a run folder's name, compare's records) ------------------------------

def broadcast_object_list(object_list, src=0):
    """Set object_list[k], in place, to rank `src`'s object_list[k] (small picklable objects:
    settings, names), as torch.distributed.broadcast_object_list."""
    group = _require('broadcast_object_list')
    _check_src(group, src, 'broadcast_object_list')
    if group.comm is None or group.size == 1:
        return None
    received = group.comm.bcast(list(object_list) if group.rank == src else None, root=int(src))
    if len(received) != len(object_list):
        raise ValueError(f"tensorlite.distributed.broadcast_object_list: rank {src} sent "
                         f"{len(received)} objects, this rank's list holds {len(object_list)}")
    object_list[:] = received
    return None


def all_gather_object(object_list, obj):
    """object_list[r] = rank r's `obj` (small picklable objects), as
    torch.distributed.all_gather_object; object_list must hold world-size entries."""
    group = _require('all_gather_object')
    if len(object_list) != group.size:
        raise ValueError(f"tensorlite.distributed.all_gather_object: object_list must hold "
                         f"{group.size} entries (the world size), got {len(object_list)}")
    object_list[:] = [obj] if group.comm is None else group.comm.allgather(obj)
    return None

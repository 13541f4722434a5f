"""Threads per process under mpiexec, decided before NumPy, Numba or OpenMP start their pools.

Every rank that mpiexec starts on a machine runs its own BLAS, OpenMP and Numba thread pools, each
as large as the machine by default: 2 ranks on 2 cores then run 4+ busy threads on 2 cores, and MPI
waits by polling: `mpiexec -n 2 tensorlite train --model c3d --data synthetic:order` takes
4 min 14 s so, against 12.6 s with one thread per rank (docs/distributed.md). So, in a process
started by mpiexec (MPICH, Open MPI and Intel MPI set PMI_SIZE, OMPI_COMM_WORLD_SIZE or
PMIX_RANK), each of OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and NUMBA_NUM_THREADS
that the user did not set becomes the cores this process may use divided by the ranks on this
machine (at least 1).
This module imports nothing heavy: tensorlite/__init__.py calls it first.
"""
import os

THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                    'NUMBA_NUM_THREADS')
_decided = {}


def _int(name):
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def ranks_on_this_machine():
    """The number of ranks mpiexec started on this machine (None when not under mpiexec)."""
    local = _int('MPI_LOCALNRANKS') or _int('OMPI_COMM_WORLD_LOCAL_SIZE')
    if local:
        return local
    return _int('PMI_SIZE') or _int('OMPI_COMM_WORLD_SIZE') or _int('PMIX_SIZE')


def share_cores_between_ranks():
    """Set the thread variables the user left unset to cores // local ranks, under mpiexec with
    more than one rank on this machine; returns {variable: value} of what it set."""
    ranks = ranks_on_this_machine()
    if not ranks or ranks < 2:
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    threads = str(max(1, (cores or 1) // ranks))
    for name in THREAD_VARIABLES:
        if name not in os.environ:
            os.environ[name] = threads
            _decided[name] = threads
    return dict(_decided)

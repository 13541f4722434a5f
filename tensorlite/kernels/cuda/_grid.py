"""Launch configurations of the CUDA twins: grid-stride loops, sized for the GPU or the simulator.

Every elementwise CUDA twin is a *grid-stride loop* (NVIDIA's "write flexible kernels" idiom):

    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        ...one element...

so it is correct for any grid, and the grid is a launch-time choice.  Kernels that give a block
to each row (or slab) stride over rows the same way (`range(cuda.blockIdx.x, rows,
cuda.gridDim.x)`, with a barrier at the end of each row so shared memory can be reused).

On a GPU `grid(n)` covers the work with one thread per element, capped at MAX_BLOCKS blocks of
THREADS (about a million threads: more than any current GPU keeps resident, so the cap only makes
the largest launches loop).  Numba's CUDA simulator runs every CUDA thread as an operating-system
thread -- about 130 us to create, against about 2 us per element for a loop inside one thread --
so under the simulator the grid is SIM_BLOCKS blocks of SIM_THREADS threads: still several
blocks and several threads per block, so the strides, the block indexing and the tree sums are
exercised, at a cost a test run can pay.  Kernels also read array attributes (`x.shape`) once,
before their loop: in the simulator each such read costs about 50 us (its array wrapper calls
dir()), 90 % of vol2col's time when it was read per element; on a GPU it is free either way.  tests/test_cuda_device.py runs kernels with the GPU's
launch configuration too, and checks they give the same result.
"""
from numba import config

SIMULATED = bool(config.ENABLE_CUDASIM)

GPU_THREADS = 256
GPU_MAX_BLOCKS = 4096
SIM_THREADS = 32            # a power of two: the block tree sums halve it
SIM_BLOCKS = 2

THREADS = SIM_THREADS if SIMULATED else GPU_THREADS
MAX_BLOCKS = SIM_BLOCKS if SIMULATED else GPU_MAX_BLOCKS


def grid(n, threads=None):
    """(blocks, threads) for a grid-stride loop over `n` elements."""
    threads = THREADS if threads is None else threads
    return max(1, min((n + threads - 1) // threads, MAX_BLOCKS)), threads


def row_blocks(rows):
    """Blocks for a kernel that gives each block one row at a time (a block-stride loop)."""
    return max(1, min(rows, MAX_BLOCKS))


def use_gpu_launch(flag=True):
    """Tests: launch with the GPU's configuration even under the simulator (slow: one OS thread
    per CUDA thread), or go back to the simulator's.  Returns the previous setting."""
    global THREADS, MAX_BLOCKS
    previous = THREADS == GPU_THREADS
    THREADS, MAX_BLOCKS = (GPU_THREADS, GPU_MAX_BLOCKS) if flag else (SIM_THREADS, SIM_BLOCKS)
    return previous

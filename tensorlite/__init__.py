"""tensorlite: a small autograd engine on NumPy (CPU) and CuPy (GPU), with hand-written Numba
kernels, for studying and training video-understanding models.

    import tensorlite as tl
    import tensorlite.functional as F
"""
from . import _rank_threads

_rank_threads.share_cores_between_ranks()  # under mpiexec: the cores shared out, before any pool

from . import backend as _backend  # noqa: E402

_backend.prepare_simulation()       # TENSORLITE_SIMULATE_CUDA=1: Numba's simulator, chosen in time
_backend.prepare_cpu_threads()      # OpenMP's passive wait policy, before Numba starts its pool

from . import (autograd, backend, cuda, dtypes, functional, kernels, nn, optim, plots,  # noqa: F401
               profiler, random, viz)
from .autograd import (Function, GradcheckError, Tensor, enable_grad, gradcheck,  # noqa: F401
                       gradgradcheck, is_grad_enabled, no_grad, set_grad_enabled)
from .creation import (arange, as_tensor, empty, empty_like, from_numpy, full, full_like,  # noqa: F401
                       ones, ones_like, rand, rand_like, randint, randn, randn_like, tensor, zeros,
                       zeros_like)
from .dtypes import (bool_, double, float16, float32, float64, half, int8, int16, int32,  # noqa: F401
                     int64, long, uint8)
from .functional import (abs, add, argmax, argmin, broadcast_to, cat, chunk, clamp,  # noqa: F401
                         clip, concatenate, div, dropout, einsum, erf, exp, flatten, gather, log,
                         log_softmax, logsumexp, masked_fill, matmul, max, maximum, mean, min,
                         minimum, mul, neg, permute, pow, reciprocal, relu, repeat, reshape,
                         sigmoid, softmax, split, sqrt, squeeze, stack, std, sub, sum, tanh,
                         transpose, unsqueeze, var, where)
from .random import manual_seed, seed  # noqa: F401
from .serialization import load, save  # noqa: F401

bool = bool_
__version__ = '0.1.0'

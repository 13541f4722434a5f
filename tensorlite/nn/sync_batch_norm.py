"""`SyncBatchNorm`: batch normalization whose statistics cover every rank's batch, as PyTorch's.

    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)     # every BatchNorm1d/2d/3d replaced

With data parallelism each rank sees N of the N * world samples of a step.  BatchNorm normalizes
each rank's share with that share's statistics; SyncBatchNorm normalizes it with the statistics of
the whole N * world batch, which is what one process holding the whole batch would compute: the
outputs, the running statistics and the gradients are those of BatchNorm on the concatenated batch
(tests/test_sync_batchnorm.py checks this on 2 ranks).

Forward.  Each rank computes per channel its count n_r, its mean m_r and its sum of squared
deviations M2_r (float64), and the ranks exchange these (3, C) rows in one all_gather.  Every rank
then combines them in rank order (Chan et al.'s pairwise formula):

    n = sum n_r     mean = sum n_r m_r / n     M2 = sum (M2_r + n_r (m_r - mean)^2)     var = M2 / n

(the mean computed as a correction to one rank's m_r).
A gather rather than an all-reduce of sum(x) and sum(x^2): var = sum(x^2) / n - mean^2 loses
every digit when the mean is large against the spread, and the deviations m_r - mean above do not.
The ranks' inputs are then normalized with (mean, var) as BatchNorm's are, and the running
statistics are updated with mean and the unbiased var M2 / (n - 1) of the whole batch.

Backward.  With g = dy weight, BatchNorm's input gradient dx = rstd (g - mean(g) - xhat mean(g
xhat)) takes its two means over the whole batch, so the ranks all-reduce the per-channel sums of dy
and of dy xhat (one (2, C) buffer) and divide by n.  weight and bias get this rank's sums only, as
PyTorch's: the sum over the ranks is the whole batch's gradient, and data-parallel training
reduces parameter gradients across the ranks anyway (DistributedDataParallel averages them).  Every
rank must therefore run backward through every SyncBatchNorm it ran forward through, as every rank
must run its forward.  Double backward (create_graph=True) is not implemented (nor is it in
PyTorch) and says so.

In eval mode, in a world of one (tensorlite.distributed not initialized, or one rank) and without
batch statistics (eval with running statistics), SyncBatchNorm is BatchNorm: it calls the same
`functional.batch_norm`, bit for bit.

The Function lives here, beside the layer, and not in tensorlite/functional: its forward and
backward move data between ranks, and tensorlite.distributed sits above functional in the layers of
the house (DESIGN.md).  The array work is functional.normalization's.
"""
import numbers

import numpy as np

from .. import backend, distributed, kernels
from .. import functional as F
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..autograd.tensor import Tensor
from ..functional.normalization import (_fused, _pays, batch_layout, check_batch_norm_arguments,
                                        normalize_arrays)
from .normalization import _BatchNorm

__all__ = ['SyncBatchNorm', 'sync_batch_norm']


def _synced():
    """Whether there are other ranks to share statistics with."""
    return distributed.is_initialized() and distributed.get_world_size() > 1


def _check_process_group(owner, process_group):
    if process_group is not None:
        raise ValueError(f"{owner}: process_group must be None (tensorlite.distributed has one "
                         f"group, every rank mpiexec started), got {process_group!r}")


# ==================================================================================================
# statistics: this rank's moments, every rank's, combined
# ==================================================================================================

def local_moments(x, layout, eps):
    """(3, C) float64 host array for this rank's input x (any shape of layout.view's size): per
    channel the count n, the mean and the sum of squared deviations from it (M2); zeros for an
    empty batch.  The fused kernel (float64 sums) where it pays, NumPy in float64 otherwise."""
    N, C, S = layout.view
    moments = np.zeros((3, C))
    moments[0] = N * S
    if x.size == 0:
        return moments
    xp = backend.array_module(x)
    if _fused(layout, x) and _pays(x):
        xv = xp.ascontiguousarray(x).reshape(layout.view)
        mean, var, rstd = (xp.empty(C, x.dtype) for _ in range(3))
        kernels.twin('norm', xv).batch_norm_stats(xv, eps, mean, var, rstd)
        moments[1] = backend.as_numpy(mean)
        moments[2] = backend.as_numpy(var) * (N * S)
    else:
        xv = x.reshape(layout.view).astype(np.float64)          # (N, C, S)
        mean = xv.mean(axis=(0, 2))                              # (C,)
        dev = xv - mean[:, None]
        moments[1] = backend.as_numpy(mean)
        moments[2] = backend.as_numpy((dev * dev).sum(axis=(0, 2)))
    return moments


def gather_moments(moments, input_shape):
    """(world, 3, C): every rank's local_moments, in rank order (one all_gather).  A rank whose
    input has another number of channels makes every rank raise ValueError."""
    if not _synced():
        return moments[None]
    world = distributed.get_world_size()
    gathered = [Tensor(np.empty_like(moments)) for _ in range(world)]
    try:
        distributed.all_gather(gathered, Tensor(moments))
    except ValueError as e:
        raise ValueError(f"SyncBatchNorm: the ranks' inputs have different numbers of channels: "
                         f"rank {distributed.get_rank()}'s input has shape {tuple(input_shape)} "
                         f"({moments.shape[1]} channels); the statistics exchanged are (3, C): "
                         f"{e}") from None
    return np.stack([t.data for t in gathered])


def combine_moments(gathered):
    """(count, mean (C,), biased var (C,)) of the union of the ranks' batches, in float64, from
    gather_moments' (world, 3, C); mean and var are NaN when the union is empty."""
    n, means, m2 = gathered[:, 0], gathered[:, 1], gathered[:, 2]      # (world, C) each
    count = n.sum(axis=0)
    # the mean as a correction to the largest share's mean, the sum of small differences: a sum of
    # n_r m_r would round at the scale of the mean, not of the spread
    shift = means[int(np.argmax(n[:, 0]))]
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = shift + (n * (means - shift)).sum(axis=0) / count
        var = (m2 + n * (means - mean) ** 2).sum(axis=0) / count
    return int(count[0]), mean, var


# ==================================================================================================
# the Function: normalize with given global statistics; backward with global sums
# ==================================================================================================

def _local_grad_sums(x, gy, mean, rstd, layout):
    """(2, C) float64 host array: per channel sum(dy) and sum(dy xhat) over this rank's batch."""
    N, C, S = layout.view
    sums = np.zeros((2, C))
    if x.size == 0:
        return sums
    xp, dt = backend.array_module(x), x.dtype
    xv = xp.ascontiguousarray(x).reshape(layout.view)
    gyv = xp.ascontiguousarray(gy, dtype=dt).reshape(layout.view)
    if _fused(layout, x) and _pays(x):
        sum_dy, sum_dy_xhat = xp.empty(C, dt), xp.empty(C, dt)
        kernels.twin('norm', xv).batch_norm_grad_sums(
            xv, gyv, xp.ascontiguousarray(mean.reshape(C)), xp.ascontiguousarray(rstd.reshape(C)),
            sum_dy, sum_dy_xhat)
        sums[0], sums[1] = backend.as_numpy(sum_dy), backend.as_numpy(sum_dy_xhat)
    else:
        xhat = (xv - mean) * rstd                                # (N, C, S)
        sums[0] = backend.as_numpy(gyv.sum(axis=(0, 2), dtype=np.float64))
        sums[1] = backend.as_numpy((gyv * xhat).sum(axis=(0, 2), dtype=np.float64))
    return sums


def _input_grad(x, gy, weight, mean, rstd, layout, mean_dy, mean_dy_xhat):
    """dx = weight rstd (dy - mean_dy - xhat mean_dy_xhat), the means (C,) taken over every
    rank's batch."""
    N, C, S = layout.view
    xp, dt = backend.array_module(x), x.dtype
    w = xp.ones(C, dt) if weight is None else xp.ascontiguousarray(weight.reshape(C), dtype=dt)
    if x.size == 0:
        return xp.zeros(x.shape, dt)
    xv = xp.ascontiguousarray(x).reshape(layout.view)
    gyv = xp.ascontiguousarray(gy, dtype=dt).reshape(layout.view)
    if _fused(layout, x) and _pays(x):
        # the kernel divides the sums it is given by its own count N S: hand it the global means
        # times N S, so that it divides them back to the global means
        dx = xp.empty_like(xv)
        kernels.twin('norm', xv).batch_norm_input_grad(
            xv, gyv, xp.ascontiguousarray(mean.reshape(C)), xp.ascontiguousarray(rstd.reshape(C)),
            w, xp.asarray(mean_dy * (N * S), dtype=dt),
            xp.asarray(mean_dy_xhat * (N * S), dtype=dt), dx)
    else:
        xhat = (xv - mean) * rstd                                # (N, C, S)
        dx = gyv - xp.asarray(mean_dy, dtype=dt).reshape(1, C, 1)
        dx -= xhat * xp.asarray(mean_dy_xhat, dtype=dt).reshape(1, C, 1)
        dx *= (w.reshape(1, C, 1) * rstd)
    return dx.reshape(x.shape)


class SyncBatchNormFunction(Function):
    """y = (x - mean) rstd weight + bias with `mean` and `var` the statistics of every rank's batch
    (host arrays (C,), from combine_moments; `count` values per channel in all); backward
    all-reduces the sums of dy and dy xhat when `synced`."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, count, synced, eps):
        ctx.layout, ctx.count, ctx.synced = batch_layout(x.shape), count, synced
        y, mean, _, rstd = normalize_arrays(x, weight, bias, ctx.layout, eps, stats=(mean, var),
                                            fused=_pays(x))
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, gy):
        if is_grad_enabled():
            raise NotImplementedError(
                "SyncBatchNorm: double backward (create_graph=True) is not implemented (nor is it "
                "in PyTorch); for second derivatives use BatchNorm in one process")
        x, weight, mean, rstd = (None if t is None else t.data for t in ctx.saved_tensors)
        gy = gy.data
        needs = ctx.needs_input_grad
        xp, dt = backend.array_module(x), x.dtype
        local = _local_grad_sums(x, gy, mean, rstd, ctx.layout)    # (2, C): sum dy, sum dy xhat
        total = local
        if ctx.synced:
            # every rank that ran forward runs this, whatever it needs: the all-reduce is collective
            summed = Tensor(local.copy())
            distributed.all_reduce(summed, check=False)
            total = summed.data
        dx = dw = db = None
        if needs[0]:
            with np.errstate(invalid='ignore', divide='ignore'):
                mean_dy, mean_dy_xhat = total / ctx.count
            dx = Tensor(_input_grad(x, gy, weight, mean, rstd, ctx.layout, mean_dy, mean_dy_xhat))
        if needs[1] and weight is not None:
            dw = Tensor(xp.asarray(local[1], dtype=dt))
        if needs[2]:
            db = Tensor(xp.asarray(local[0], dtype=dt))
        return dx, dw, db, None, None, None, None, None


def sync_batch_norm(input, running_mean, running_var, weight=None, bias=None, momentum=0.1,
                    eps=1e-5):
    """batch_norm in training (functional.batch_norm(..., training=True)) with the statistics of
    every rank's batch: input (N, C, *), N may differ between the ranks (0 included); weight and
    bias (C,) or None; running_mean and running_var (C,) or None, updated in place with
    running = (1 - momentum) running + momentum * statistic (the unbiased variance of the whole
    batch for running_var).  Every rank must call it (a collective); in a world of one it computes
    what batch_norm does."""
    op = 'SyncBatchNorm'
    check_batch_norm_arguments(op, input, weight, bias, running_mean, running_var)
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool):
        raise ValueError(f"{op}: momentum must be a number (the update factor), got {momentum!r}")
    if eps <= 0:
        raise ValueError(f"{op}: eps must be positive in training, got {eps}")
    layout = batch_layout(input.shape)
    synced = _synced()
    moments = local_moments(input.data, layout, eps)
    count, mean, var = combine_moments(gather_moments(moments, input.shape))
    if count == 1:          # every rank knows the global count: every rank raises
        raise ValueError(f"{op}: Expected more than 1 value per channel when training, got 1 "
                         f"over all ranks (this rank's input has shape {tuple(input.shape)})")
    y = SyncBatchNormFunction.apply(input, weight, bias, mean, var, count, synced, eps)
    if running_mean is not None and count > 0:      # an empty batch leaves them as they were
        xp = backend.array_module(input.data)
        batch_mean = Tensor(xp.asarray(mean, dtype=input.dtype))
        batch_var = Tensor(xp.asarray(var, dtype=input.dtype))
        with no_grad():     # the same expressions as batch_norm's update
            running_mean.mul_(1 - momentum).add_(batch_mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(batch_var * (count / (count - 1)), alpha=momentum)
    return y


# ==================================================================================================
# the layer
# ==================================================================================================

class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, *spatial) of every rank's batch: input (N, C), (N, C, L), (N, C, H, W),
    (N, C, T, H, W) or more dims.  Parameters, buffers, state-dict keys and arguments as
    BatchNorm1d/2d/3d's and torch.nn.SyncBatchNorm's (process_group must be None: tensorlite has
    one group).  In training with more than one rank, the statistics are those of the ranks'
    batches together; in eval or in a world of one, it is BatchNorm."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        _check_process_group('SyncBatchNorm', process_group)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                         dtype=dtype)
        self.process_group = None

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"SyncBatchNorm: input must be a Tensor, got {type(input).__name__}")
        if input.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected an input (N, C, *) of at least 2 "
                             f"dimensions, got {input.ndim}D input of shape {tuple(input.shape)}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm({self.num_features}): the input of shape "
                             f"{tuple(input.shape)} has {input.shape[1]} channels (dim 1), "
                             f"expected {self.num_features}")
        running_mean, running_var, use_batch_stats, factor = self._step_statistics()
        if self.training and _synced():
            return sync_batch_norm(input, running_mean, running_var, self.weight, self.bias,
                                   factor, self.eps)
        return F.batch_norm(input, running_mean, running_var, self.weight, self.bias,
                            use_batch_stats, factor, self.eps)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every BatchNorm1d/2d/3d in `module`'s tree (module itself included) by a
        SyncBatchNorm holding the same weight and bias Parameters, the same running_mean,
        running_var and num_batches_tracked buffers (shared, not copied: an optimizer built
        before keeps working), the same eps, momentum, affine, track_running_stats and training
        mode.  Returns the module (a new one when `module` itself is a BatchNorm).  A BatchNorm
        reached twice in the tree becomes one SyncBatchNorm, reached twice."""
        _check_process_group('convert_sync_batchnorm', process_group)
        converted = {}

        def convert(m):
            if not isinstance(m, _BatchNorm) or isinstance(m, SyncBatchNorm):
                return m
            if id(m) not in converted:
                converted[id(m)] = cls._from_batch_norm(m)
            return converted[id(m)]

        root = convert(module)
        for parent in list(root.modules()):            # iterative: deep trees are fine
            for name, child in list(parent._modules.items()):
                new = None if child is None else convert(child)
                if new is not child:
                    # in place in the dict: add_module would move the name to the end, which
                    # would reorder a Sequential
                    parent._modules[name] = new
        return root

    @classmethod
    def _from_batch_norm(cls, bn):
        sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            sync.weight, sync.bias = bn.weight, bn.bias
        sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
        sync.num_batches_tracked = bn.num_batches_tracked
        sync.training = bn.training
        return sync

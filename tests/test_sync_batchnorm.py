"""nn.SyncBatchNorm: on 2 MPI ranks (mpiexec -n 2, skipped without mpi4py) each rank's share of a
batch gives what plain BatchNorm gives on the whole batch in this process -- outputs, running
statistics, input/weight/bias gradients -- and a float64 gradcheck of the global function of both
ranks' inputs; in a world of one and in eval it is BatchNorm bit for bit; its Function gradchecks in
one process; convert_sync_batchnorm; bad input.

The reference is BatchNorm1d/2d/3d (itself checked against NumPy in test_normalization.py) run on
the concatenated batch: SyncBatchNorm shares no code path with it in training on 2 ranks (its
statistics are gathered and combined, its backward all-reduces sums).
"""
import json
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tensorlite as tl
import tensorlite.distributed as dist
import tensorlite.nn as nn
from tensorlite.functional import normalization as N
from tensorlite.nn.sync_batch_norm import sync_batch_norm

from helpers import shapes
from mpi_helpers import needs_mpi, results, run_ranks, world_of_one  # noqa: F401 (a fixture)

BATCH_NORM = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


def settings_of(case):
    return dict(momentum=case['momentum'], affine=case['affine'],
                track_running_stats=case['track'])


def case_arrays(case, k):
    """The case's batches (two training steps and one eval), output gradients and parameters."""
    rng = np.random.default_rng(100 + k)
    shape, C = tuple(case['shape']), case['shape'][1]
    arrays = {f'{k}_w': rng.standard_normal(C) + 1, f'{k}_b': rng.standard_normal(C)}
    for step in range(3):
        arrays[f'{k}_x{step}'] = case['offset'] + case['scale'] * rng.standard_normal(shape)
        arrays[f'{k}_g{step}'] = rng.standard_normal(shape)
    return arrays


def reference(case, arrays, k):
    """BatchNorm on the whole batch in this process: per training step (y, dx, dw, db), then the
    buffers, then the eval output."""
    bn = BATCH_NORM[len(case['shape'])](case['shape'][1], dtype=tl.float64, **settings_of(case))
    if case['affine']:
        bn.weight.data[...] = arrays[f'{k}_w']
        bn.bias.data[...] = arrays[f'{k}_b']
    steps = []
    for step in range(2):
        x = tl.tensor(arrays[f'{k}_x{step}'], requires_grad=True)
        y = bn(x)
        (y * tl.tensor(arrays[f'{k}_g{step}'])).sum().backward()
        steps.append((y.numpy(), x.grad.numpy(),
                      bn.weight.grad.numpy() if case['affine'] else None,
                      bn.bias.grad.numpy() if case['affine'] else None))
        bn.zero_grad()
    buffers = {name: b.numpy() for name, b in bn.named_buffers()}
    bn.eval()
    x = arrays[f'{k}_x2']
    if case['track']:
        return steps, buffers, bn(tl.tensor(x)).numpy()
    # eval without running statistics normalizes with each rank's own batch, as PyTorch's
    parts = np.split(x, np.cumsum(case['split'])[:-1])
    return steps, buffers, np.concatenate([bn(tl.tensor(p)).numpy() for p in parts if len(p)])


# ==================================================================================================
# 2 ranks, each with its share of the batch, against BatchNorm on the whole batch
# ==================================================================================================

# split: how many samples of the batch each rank holds (rank 0 the first ones)
CASES = [
    dict(shape=[6, 3], split=[4, 2], momentum=0.1, affine=True, track=True),
    dict(shape=[5, 3, 4], split=[2, 3], momentum=None, affine=True, track=True),
    dict(shape=[4, 2, 3, 3], split=[2, 2], momentum=0.3, affine=False, track=True),
    dict(shape=[3, 2, 2, 3, 3], split=[2, 1], momentum=0.1, affine=True, track=False),
    dict(shape=[3, 2, 2, 2, 2], split=[3, 0], momentum=0.1, affine=True, track=True),   # one empty
    dict(shape=[4, 3, 2, 4, 4], split=[1, 3], momentum=0.1, affine=True, track=True,
         fused=True),                                                   # the kernels, not NumPy
    # a mean far above the spread: sum(x^2)/n - mean^2 would keep 4 of the 16 digits of var here
    # (y to ~1e-4); one ulp of a rank's mean is 2e-10 of the spread, hence tol
    dict(shape=[6, 2, 5], split=[1, 5], momentum=0.1, affine=True, track=True, offset=1e4,
         scale=1e-2, tol=1e-8),
]
for _case in CASES:
    _case.setdefault('offset', 5.0)
    _case.setdefault('scale', 2.0)
    _case.setdefault('fused', False)
    _case.setdefault('tol', 1e-10)

EQUIVALENCE = '''
import json
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
import tensorlite.nn as nn
from tensorlite.functional import normalization as N
dist.init_process_group()
rank = dist.get_rank()
CASES = json.loads(open('cases.json').read())
data = np.load('inputs.npz')
small = N.FUSED_MIN_SIZE
for k, case in enumerate(CASES):
    N.FUSED_MIN_SIZE = 1 if case['fused'] else small
    start = sum(case['split'][:rank])
    part = slice(start, start + case['split'][rank])
    m = nn.SyncBatchNorm(case['shape'][1], momentum=case['momentum'], affine=case['affine'],
                         track_running_stats=case['track'], dtype=tl.float64)
    if case['affine']:
        m.weight.data[...] = data[f'{k}_w']
        m.bias.data[...] = data[f'{k}_b']
    out = {}
    for step in range(2):
        x = tl.tensor(data[f'{k}_x{step}'][part], requires_grad=True)
        y = m(x)
        (y * tl.tensor(data[f'{k}_g{step}'][part])).sum().backward()
        out[f'y{step}'] = y.numpy().tolist()
        out[f'dx{step}'] = x.grad.numpy().tolist()
        if case['affine']:
            out[f'dw{step}'] = m.weight.grad.numpy().tolist()
            out[f'db{step}'] = m.bias.grad.numpy().tolist()
        m.zero_grad()
    out['buffers'] = {name: b.numpy().tolist() for name, b in m.named_buffers()}
    m.eval()
    out['eval'] = m(tl.tensor(data[f'{k}_x2'][part])).numpy().tolist()
    report(**{str(k): out})
N.FUSED_MIN_SIZE = small

errors = {}
x = tl.tensor(np.arange(8.0).reshape(4, 2) * (rank + 1), requires_grad=True)
try:
    tl.autograd.grad(nn.SyncBatchNorm(2, dtype=tl.float64)(x).sum(), x, create_graph=True)
except NotImplementedError as e:
    errors['double'] = str(e)
try:
    nn.SyncBatchNorm(3 + rank)(tl.ones(2, 3 + rank))
except ValueError as e:
    errors['channels'] = str(e)
try:
    nn.SyncBatchNorm(2)(tl.ones(1 - rank, 2))
except ValueError as e:
    errors['one_value'] = str(e)
report(errors=errors)
dist.barrier()
'''


def _assert_close(got, expected, what, tol):
    got = np.asarray(got, dtype=np.float64)
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=tol, atol=tol,
                               err_msg=what)


@needs_mpi
def test_two_ranks_with_half_the_batch_each_equal_batch_norm_on_the_whole_batch(tmp_path):
    arrays = {}
    for k, case in enumerate(CASES):
        arrays.update(case_arrays(case, k))
    np.savez(tmp_path / 'inputs.npz', **arrays)
    (tmp_path / 'cases.json').write_text(json.dumps(CASES))
    started = time.monotonic()
    run_ranks(tmp_path, EQUIVALENCE)
    print(f"2-rank equivalence job: {time.monotonic() - started:.1f} s")
    got = results(tmp_path)
    assert sorted(got) == [0, 1]
    for k, case in enumerate(CASES):
        steps, buffers, y_eval = reference(case, arrays, k)
        ranks = [got[r][str(k)] for r in (0, 1)]
        shape, tol = case['shape'], case['tol']

        def joined(key):
            """The ranks' outputs put back together along N."""
            parts = [np.asarray(o[key], dtype=np.float64).reshape([n] + shape[1:])
                     for o, n in zip(ranks, case['split'])]
            return np.concatenate(parts)

        for step, (y, dx, dw, db) in enumerate(steps):
            _assert_close(joined(f'y{step}'), y, f'case {k} step {step}: output', tol)
            _assert_close(joined(f'dx{step}'), dx, f'case {k} step {step}: input gradient', tol)
            if case['affine']:
                # each rank holds its share; their sum is the whole batch's gradient
                for key, ref in ((f'dw{step}', dw), (f'db{step}', db)):
                    _assert_close(np.add(*(np.asarray(o[key]) for o in ranks)), ref,
                                  f'case {k} step {step}: {key}', tol)
        for r in (0, 1):
            assert sorted(ranks[r]['buffers']) == sorted(buffers)
            for name, ref in buffers.items():
                _assert_close(ranks[r]['buffers'][name], np.asarray(ref),
                              f'case {k} rank {r} {name}', tol)
        _assert_close(joined('eval'), y_eval, f'case {k}: eval output', tol)

    for r in (0, 1):
        errors = got[r]['errors']
        assert 'SyncBatchNorm: double backward (create_graph=True) is not implemented' \
            in errors['double']
        assert 'different numbers of channels' in errors['channels'] \
            and f'shape (2, {3 + r})' in errors['channels']
        assert 'Expected more than 1 value per channel when training, got 1 over all ranks' \
            in errors['one_value'] and f'shape ({1 - r}, 2)' in errors['one_value']


def test_the_gathered_moments_keep_the_digits_that_sums_of_squares_lose():
    """The large-mean case's batch, split as on the ranks: the variance from the gathered (n,
    mean, M2) against the exact one (long double), and against sum(x^2)/n - mean^2."""
    from tensorlite.nn.sync_batch_norm import combine_moments, local_moments
    k = len(CASES) - 1
    case = CASES[k]
    x = case_arrays(case, k)[f'{k}_x0']                              # (N, C, L)
    exact = x.astype(np.longdouble).var(axis=(0, 2))
    layout = N.batch_layout(x.shape)
    shares = np.split(x, np.cumsum(case['split'])[:-1])
    gathered = np.stack([local_moments(p, N.batch_layout(p.shape), 1e-5) for p in shares])
    count, _, var = combine_moments(gathered)
    assert count == layout.view[0] * layout.view[2]
    sums = np.stack([x.sum(axis=(0, 2)), (x * x).sum(axis=(0, 2))])
    naive = sums[1] / count - (sums[0] / count) ** 2
    assert np.abs(var / exact - 1).max() < 1e-10
    assert np.abs(naive / exact - 1).max() > 1e-5          # 1.7e-4: 4 of 16 digits left


# ==================================================================================================
# 2 ranks: gradcheck of the global function of both ranks' inputs
# ==================================================================================================

# Every rank evaluates the same global function f(x0, x1, weight, bias) = (y0, y1): rank r
# normalizes x_r with SyncBatchNorm, so a rank computes only its own part.  Three test-only
# Functions make the whole of f, and of its Jacobian, visible on every rank:
#   Scatter   (x0, x1) -> x_rank; backward all-reduces the zero-padded (g0, g1), so every rank
#             gets the input gradients that both ranks computed;
#   Replicate weight -> weight; backward sums the ranks' gradients (as data-parallel training does);
#   Gather    y_rank -> (y0, y1); backward hands rank r its own rows of the output gradient.
# tl.gradcheck then runs on every rank with the same inputs, the same one-hot output gradients and
# the same perturbations in the same order: when it perturbs x0[k], rank 0 normalizes the perturbed
# x0 and rank 1 its unperturbed x1 -- both evaluate f(x0 + eps e_k, x1), in lockstep -- and each
# compares f's full Jacobian, cross-rank terms included, with central differences.
GRADCHECK = '''
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
from tensorlite.autograd.function import Function
from tensorlite.nn import sync_batch_norm as sbn
dist.init_process_group()
rank = dist.get_rank()
SIZES = (3, 2)                                        # rank 0 holds 3 samples, rank 1 two
C, S = 2, (2,)


def all_reduce(a):
    t = tl.tensor(np.ascontiguousarray(a, dtype=np.float64))
    dist.all_reduce(t)
    return t.data


class Scatter(Function):
    @staticmethod
    def forward(ctx, x0, x1):
        return (x0, x1)[rank].copy()

    @staticmethod
    def backward(ctx, g):
        full = np.zeros((sum(SIZES), C) + S)
        full[sum(SIZES[:rank]):sum(SIZES[:rank + 1])] = g.data
        full = all_reduce(full)
        return tl.tensor(full[:SIZES[0]]), tl.tensor(full[SIZES[0]:])


class Replicate(Function):
    @staticmethod
    def forward(ctx, w):
        return w.copy()

    @staticmethod
    def backward(ctx, g):
        return tl.tensor(all_reduce(g.data))


class Gather(Function):
    @staticmethod
    def forward(ctx, y):
        full = np.zeros((sum(SIZES),) + y.shape[1:])
        full[sum(SIZES[:rank]):sum(SIZES[:rank + 1])] = y
        return all_reduce(full)

    @staticmethod
    def backward(ctx, g):
        return tl.tensor(g.data[sum(SIZES[:rank]):sum(SIZES[:rank + 1])].copy())


def f(x0, x1, w, b):
    return Gather.apply(sbn.sync_batch_norm(Scatter.apply(x0, x1), None, None,
                                            Replicate.apply(w), Replicate.apply(b)))


rng = np.random.default_rng(7)                        # the same inputs on both ranks
inputs = [tl.tensor(3 + 2 * rng.standard_normal((n, C) + S), requires_grad=True) for n in SIZES]
inputs += [tl.tensor(rng.standard_normal(C) + 1, requires_grad=True),
           tl.tensor(rng.standard_normal(C), requires_grad=True)]
report(full=bool(tl.gradcheck(f, inputs)), fast=bool(tl.gradcheck(f, inputs, fast_mode=True)))


Correct = sbn.SyncBatchNormFunction


class LocalSumsOnly(Correct):
    """A wrong backward: the means of dy and dy xhat over this rank's batch only."""
    @staticmethod
    def backward(ctx, gy):
        ctx.synced, ctx.count = False, ctx.layout.view[0] * ctx.layout.view[2]
        return Correct.backward(ctx, gy)


sbn.SyncBatchNormFunction = LocalSumsOnly
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    wrong = tl.gradcheck(f, inputs, raise_exception=False)
report(wrong_passes=bool(wrong), wrong_message=str(caught[0].message) if caught else '')
dist.barrier()
'''


@needs_mpi
def test_gradcheck_of_the_two_ranks_global_function(tmp_path):
    started = time.monotonic()
    run_ranks(tmp_path, GRADCHECK)
    print(f"2-rank gradcheck job: {time.monotonic() - started:.1f} s")
    got = results(tmp_path)
    assert sorted(got) == [0, 1]
    for r in (0, 1):
        assert got[r]['full'] and got[r]['fast']
        # the check sees the cross-rank terms: a backward without the all-reduce fails it
        assert not got[r]['wrong_passes']
        assert 'backward disagrees with central differences' in got[r]['wrong_message']


# ==================================================================================================
# one process: the Function, the world of one, eval
# ==================================================================================================

@given(data=st.data(), affine=st.booleans())
def test_the_function_gradchecks_in_one_process(data, affine):
    shape = data.draw(shapes(min_dims=2, max_dims=5, min_side=1, max_side=3).filter(
        lambda s: s[0] * int(np.prod(s[2:])) > 1), label='shape')
    rng = np.random.default_rng(int(np.prod(shape)) + len(shape))
    C = shape[1]
    x = tl.tensor(1 + 2 * rng.standard_normal(shape), requires_grad=True)
    params = [tl.tensor(rng.standard_normal(C), requires_grad=True)
              for _ in range(2 if affine else 0)]

    def fn(x, *wb):
        return sync_batch_norm(x, None, None, *wb)
    assert tl.gradcheck(fn, [x] + params)
    assert tl.gradcheck(fn, [x] + params, fast_mode=True)


@pytest.mark.parametrize('fused', [False, True], ids=['numpy', 'kernels'])
@pytest.mark.parametrize('shape', [(4, 3), (3, 3, 5), (2, 3, 4, 4), (2, 3, 2, 3, 3)])
def test_the_function_computes_batch_norm_in_one_process(shape, fused, monkeypatch):
    """Outputs, the three gradients and the running statistics, over two steps; the fused kernels
    as well as the NumPy path (FUSED_MIN_SIZE lowered)."""
    if fused:
        monkeypatch.setattr(N, 'FUSED_MIN_SIZE', 1)
    rng = np.random.default_rng(3)
    C = shape[1]
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    runs = []
    for fn in (sync_batch_norm, lambda x, rm, rv, w, b, m: N.batch_norm(x, rm, rv, w, b, True, m)):
        rng_x = np.random.default_rng(4)
        rm, rv = tl.zeros(C, dtype=tl.float64), tl.ones(C, dtype=tl.float64)
        wt, bt = tl.tensor(w, requires_grad=True), tl.tensor(b, requires_grad=True)
        run = []
        for _ in range(2):
            x = tl.tensor(7 + 3 * rng_x.standard_normal(shape), requires_grad=True)
            y = fn(x, rm, rv, wt, bt, 0.2)
            (y * tl.tensor(rng_x.standard_normal(shape))).sum().backward()
            run += [y.numpy(), x.grad.numpy(), wt.grad.numpy().copy(), bt.grad.numpy().copy()]
        runs.append(run + [rm.numpy(), rv.numpy()])
    for got, expected in zip(*runs):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32():
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32),
                  requires_grad=True)
    y = sync_batch_norm(x, None, None, tl.ones(3), tl.zeros(3))
    assert y.dtype == tl.float32
    y.sum().backward()
    assert x.grad.dtype == tl.float32
    expected = N.batch_norm(tl.tensor(x.numpy()), None, None, tl.ones(3), tl.zeros(3), True)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def _pair(shape, bn_class, settings, seed=0):
    """A BatchNorm and a SyncBatchNorm with the same random parameters and buffers."""
    C = shape[1]
    bn = bn_class(C, dtype=tl.float64, **settings)
    sync = nn.SyncBatchNorm(C, dtype=tl.float64, **settings)
    for m in (bn, sync):
        values = np.random.default_rng(seed + 1)
        for t in list(m.parameters()) + list(m.buffers()):
            if t.dtype.kind == 'f':
                t.data[...] = values.random(C) + 0.5
    return bn, sync, np.random.default_rng(seed)


SETTINGS = [dict(), dict(momentum=None), dict(affine=False), dict(track_running_stats=False)]


@pytest.mark.parametrize('settings', SETTINGS,
                         ids=['default', 'cumulative', 'no-affine', 'no-stats'])
@pytest.mark.parametrize('shape', [(4, 3), (3, 3, 5), (2, 3, 4, 4), (2, 3, 2, 3, 3)])
def test_in_a_world_of_one_and_in_eval_it_is_batch_norm_bit_for_bit(shape, settings, world_of_one):
    """Training steps, then eval: outputs, gradients and buffers equal to the last bit."""
    bn, sync, rng = _pair(shape, BATCH_NORM[len(shape)], settings)
    for mode in ('train', 'train', 'eval'):
        for m in (bn, sync):
            m.train(mode == 'train')
        x = rng.standard_normal(shape) * 2 + 1
        g = rng.standard_normal(shape)
        outs = []
        for m in (bn, sync):
            xt = tl.tensor(x, requires_grad=True)
            y = m(xt)
            (y * tl.tensor(g)).sum().backward()
            outs.append([y.numpy(), xt.grad.numpy()]
                        + [p.grad.numpy().copy() for p in m.parameters()]
                        + [b.numpy().copy() for b in m.buffers()])
            m.zero_grad()
        assert len(outs[0]) == len(outs[1])
        for a, b in zip(*outs):
            assert np.array_equal(a, b)


def test_without_a_process_group_it_is_batch_norm():
    if dist.is_initialized():
        dist.destroy_process_group()
    bn, sync, rng = _pair((3, 2, 4), nn.BatchNorm1d, {})
    x = rng.standard_normal((3, 2, 4))
    assert np.array_equal(bn(tl.tensor(x)).numpy(), sync(tl.tensor(x)).numpy())
    assert np.array_equal(bn.running_var.numpy(), sync.running_var.numpy())


def test_double_backward_in_a_world_of_one_is_batch_norms(world_of_one):
    """The layer calls batch_norm there, which has second derivatives."""
    x = tl.tensor(np.random.default_rng(1).standard_normal((4, 2, 3)), requires_grad=True)
    m = nn.SyncBatchNorm(2, dtype=tl.float64)
    assert tl.gradgradcheck(lambda x: m(x), [x])


def test_repr_and_state_dict_are_batch_norms():
    sync, bn = nn.SyncBatchNorm(4, momentum=None), nn.BatchNorm2d(4, momentum=None)
    assert repr(sync) == repr(bn).replace('BatchNorm2d', 'SyncBatchNorm')
    assert list(sync.state_dict()) == list(bn.state_dict())
    sync.load_state_dict(bn.state_dict())


# ==================================================================================================
# convert_sync_batchnorm
# ==================================================================================================

def _state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_convert_i3d_replaces_every_batch_norm_and_keeps_weights_and_buffers():
    from tensorlite.models import build_model
    tl.manual_seed(0)
    model = build_model('i3d', 4)
    x = tl.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 16, 16)).astype(np.float32))
    model(x)                                    # running statistics off their initial values
    model.eval()
    before_out = model(x).numpy()
    before = _state(model)
    params = [id(p) for p in model.parameters()]
    norms = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.BatchNorm3d)]
    assert len(norms) == 17

    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model
    modules = dict(model.named_modules())
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
                   for m in modules.values())
    for name, old in norms:
        new = modules[name]
        assert type(new) is nn.SyncBatchNorm and not new.training
        assert new.weight is old.weight and new.bias is old.bias
        assert new.running_mean is old.running_mean and new.running_var is old.running_var
        assert new.num_batches_tracked is old.num_batches_tracked
        assert (new.eps, new.momentum, new.affine, new.track_running_stats) == \
            (old.eps, old.momentum, old.affine, old.track_running_stats)
    after = _state(model)
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert [id(p) for p in model.parameters()] == params
    assert np.array_equal(model(x).numpy(), before_out)


def test_convert_keeps_settings_order_sharing_and_a_batch_norm_root():
    shared = nn.BatchNorm1d(3, affine=False)
    model = nn.Sequential(nn.Linear(2, 3), shared, nn.Sequential(
        nn.BatchNorm2d(3, momentum=None, eps=1e-3), nn.ReLU()), shared,
        nn.BatchNorm3d(3, track_running_stats=False))
    model.eval()
    model[2][0].train()
    converted = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    kinds = [type(m).__name__ for m in converted]
    assert kinds == ['Linear', 'SyncBatchNorm', 'Sequential', 'SyncBatchNorm', 'SyncBatchNorm']
    assert converted[1] is converted[3] and not converted[1].affine and converted[1].weight is None
    inner = converted[2][0]
    assert isinstance(inner, nn.SyncBatchNorm) and inner.momentum is None and inner.eps == 1e-3
    assert inner.training and not converted[1].training
    assert not converted[4].track_running_stats and converted[4].running_mean is None
    assert list(converted.state_dict()) == list(model.state_dict())

    root = nn.BatchNorm2d(5, dtype=tl.float64)
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(root)
    assert type(sync) is nn.SyncBatchNorm and sync.weight is root.weight
    assert sync.weight.dtype == tl.float64
    already = nn.SyncBatchNorm(2)
    assert nn.SyncBatchNorm.convert_sync_batchnorm(already) is already
    assert nn.SyncBatchNorm.convert_sync_batchnorm(nn.ReLU()).__class__ is nn.ReLU


# ==================================================================================================
# the simulated (or real) CUDA device, one process
# ==================================================================================================

@pytest.mark.parametrize('fused', [False, True], ids=['numpy', 'kernels'])
def test_the_function_on_cuda_matches_the_cpu(fused, monkeypatch):
    from numba.core import config

    from tensorlite import backend
    if backend.unavailable_reason() is not None or backend.simulation_requested():
        if not config.ENABLE_CUDASIM:
            pytest.skip("numba.cuda was imported for hardware: the simulator cannot be selected")
        monkeypatch.setenv(backend.SIMULATE_FLAG, '1')
    if fused:
        monkeypatch.setattr(N, 'FUSED_MIN_SIZE', 1)
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((3, 2, 2, 3)), rng.standard_normal((3, 2, 2, 3))
    w, b = rng.standard_normal(2), rng.standard_normal(2)
    runs = []
    for device in ('cpu', 'cuda'):
        xt = tl.tensor(x, requires_grad=True, device=device)
        wt, bt = (tl.tensor(a, requires_grad=True, device=device) for a in (w, b))
        rm, rv = tl.zeros(2, dtype=tl.float64, device=device), tl.ones(2, dtype=tl.float64,
                                                                          device=device)
        y = sync_batch_norm(xt, rm, rv, wt, bt)
        (y * tl.tensor(g, device=device)).sum().backward()
        assert y.device == device and xt.grad.device == device
        runs.append([t.to('cpu').numpy() for t in (y, xt.grad, wt.grad, bt.grad, rm, rv)])
    for a, c in zip(*runs):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-12)


# ==================================================================================================
# bad input
# ==================================================================================================

ERRORS = {
    'one dim': (lambda: nn.SyncBatchNorm(3)(tl.ones(3)), ValueError,
                r'SyncBatchNorm: expected an input \(N, C, \*\) of at least 2 dimensions, got 1D '
                r'input of shape \(3,\)'),
    'channels': (lambda: nn.SyncBatchNorm(3)(tl.ones(2, 4, 5)), ValueError,
                 r'SyncBatchNorm\(3\): the input of shape \(2, 4, 5\) has 4 channels \(dim 1\), '
                 r'expected 3'),
    'channels without parameters': (
        lambda: nn.SyncBatchNorm(3, affine=False, track_running_stats=False)(tl.ones(2, 4)),
        ValueError, r'input of shape \(2, 4\) has 4 channels'),
    'not a tensor': (lambda: nn.SyncBatchNorm(3)(np.ones((2, 3))), TypeError,
                     'SyncBatchNorm: input must be a Tensor, got ndarray'),
    'process group': (lambda: nn.SyncBatchNorm(3, process_group='world'), ValueError,
                      'SyncBatchNorm: process_group must be None'),
    'convert process group': (
        lambda: nn.SyncBatchNorm.convert_sync_batchnorm(nn.ReLU(), process_group=1), ValueError,
        'convert_sync_batchnorm: process_group must be None'),
    'num_features': (lambda: nn.SyncBatchNorm(0), ValueError,
                     'SyncBatchNorm: num_features must be an int >= 1, got 0'),
    'one value per channel': (lambda: nn.SyncBatchNorm(3)(tl.ones(1, 3)), ValueError,
                              r'Expected more than 1 value per channel when training'),
    'weight shape': (lambda: sync_batch_norm(tl.ones(2, 3), None, None, tl.ones(4)), ValueError,
                     r'SyncBatchNorm: weight has shape \(4,\), expected \(3,\) for an input of '
                     r'shape \(2, 3\)'),
    'eps': (lambda: sync_batch_norm(tl.ones(2, 3), None, None, eps=0.0), ValueError,
            'SyncBatchNorm: eps must be positive in training, got 0.0'),
    'integer input': (lambda: sync_batch_norm(tl.tensor(np.ones((2, 3), np.int64)), None, None),
                      TypeError, 'SyncBatchNorm: needs a floating-point input, got dtype int64'),
}


@pytest.mark.parametrize('call, error, match', ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()

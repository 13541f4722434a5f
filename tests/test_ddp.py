"""nn.parallel.DistributedDataParallel: a world of one in this process (the plain model, bucket
layout, state dict, errors), and 2 MPI ranks through mpiexec (equal to one process on all the data,
buckets reduced during backward, no_sync, unused parameters, different models refused)."""
import gc

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.distributed as dist
import tensorlite.nn as nn
from mpi_helpers import needs_mpi, results, run_ranks, world_of_one  # noqa: F401 (a fixture)
from tensorlite.nn.parallel import DistributedDataParallel


def small_video_net(seed, dtype=tl.float64):
    """A conv and a linear layer over (N, 3, T, H, W) clips: 5 classes."""
    tl.manual_seed(seed)
    net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                        nn.Flatten(), nn.Linear(4, 5))
    return net.to(dtype)


def clips(n, seed=0):
    rng = np.random.default_rng(seed)
    return (tl.tensor(rng.standard_normal((n, 3, 2, 4, 4))),
            tl.tensor(rng.integers(0, 5, n)))


def loss_of(model, x, y):
    return nn.CrossEntropyLoss()(model(x), y)


# ---- a world of one ------------------------------------------------------------------------------

def test_a_world_of_one_is_the_plain_model(world_of_one):
    plain, wrapped = small_video_net(0), small_video_net(0)
    ddp = DistributedDataParallel(wrapped, bucket_cap_mb=1e-4)
    assert ddp.module is wrapped and len(ddp._buckets) > 1
    assert [id(p) for p in ddp.parameters()] == [id(p) for p in wrapped.parameters()]
    opts = [tl.optim.SGD(m.parameters(), lr=0.5, momentum=0.9) for m in (plain, ddp)]
    for step in range(3):
        x, y = clips(4, seed=step)
        for model, opt in zip((plain, ddp), opts):
            opt.zero_grad()
            loss_of(model, x, y).backward()
            opt.step()
    for p, q in zip(plain.parameters(), ddp.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ddp(x).numpy(), plain(x).numpy(), rtol=0, atol=1e-12)


def test_buckets_run_in_reverse_parameter_order_up_to_the_cap(world_of_one):
    net = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4), nn.Linear(4, 4).double())
    net[0].bias.requires_grad_(False)                 # not reduced at all
    # 2 KiB: the float32 parameters (1,296 bytes) fit in one bucket, the float64 ones start another
    ddp = DistributedDataParallel(net, bucket_cap_mb=2 / 1024)
    names = {id(p): n for n, p in net.named_parameters()}
    layout = [[names[id(p)] for p in b.params] for b in ddp._buckets]
    assert layout == [['2.bias', '2.weight'],         # float64: a bucket of its own
                      ['1.bias', '1.weight', '0.weight']]
    assert [len(b.params) for b in DistributedDataParallel(net)._buckets] == [2, 3]
    assert len(DistributedDataParallel(net, bucket_cap_mb=1e-9)._buckets) == 5


def test_state_dict_without_prefix_moves_between_plain_and_wrapped(world_of_one):
    ddp = DistributedDataParallel(small_video_net(0))
    plain = small_video_net(1)
    state = ddp.state_dict()
    assert list(state) == list(plain.state_dict()) and not any(k.startswith('module.')
                                                              for k in state)
    plain.load_state_dict(state)
    other = DistributedDataParallel(small_video_net(2))
    other.load_state_dict(plain.state_dict())
    torch_style = {'module.' + k: v for k, v in plain.state_dict().items()}
    third = DistributedDataParallel(small_video_net(3))
    third.load_state_dict(torch_style)
    for a, b, c in zip(ddp.parameters(), other.parameters(), third.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(a.numpy(), c.numpy())
    ddp.eval()
    assert not any(m.training for m in ddp.module.modules())
    ddp.train()
    assert all(m.training for m in ddp.modules())


def test_no_sync_skips_the_reduction_until_the_next_backward(world_of_one, monkeypatch):
    calls = []
    reduce = dist.all_reduce
    monkeypatch.setattr(dist, 'all_reduce',
                        lambda t, **kw: calls.append(t.numel()) or reduce(t, **kw))
    ddp = DistributedDataParallel(small_video_net(0), bucket_cap_mb=1e-4)
    x, y = clips(4)
    with ddp.no_sync():
        loss_of(ddp, x, y).backward()
    assert calls == []
    loss_of(ddp, x, y).backward()
    assert len(calls) == len(ddp._buckets)
    plain = small_video_net(0)
    for _ in range(2):
        loss_of(plain, x, y).backward()
    for p, q in zip(plain.parameters(), ddp.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=0, atol=1e-12)


def test_a_parameter_used_twice_is_reduced_once_with_its_whole_gradient(world_of_one,
                                                                       monkeypatch):
    reduced = []
    reduce = dist.all_reduce
    monkeypatch.setattr(dist, 'all_reduce',
                        lambda t, **kw: reduced.append(t.numpy().copy()) or reduce(t, **kw))
    tl.manual_seed(0)
    shared = nn.Linear(3, 3).double()
    ddp = DistributedDataParallel(shared, bucket_cap_mb=1e-9)      # weight and bias: 2 buckets
    reduced.clear()
    x = tl.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    ddp.module(ddp(x)).pow(2).sum().backward()
    assert len(reduced) == 2                                        # bias, then weight
    np.testing.assert_array_equal(reduced[0][:-1], shared.bias.grad.numpy())
    np.testing.assert_array_equal(reduced[1][:-1], shared.weight.grad.numpy().ravel())
    plain = nn.Linear(3, 3).double()
    plain.load_state_dict(shared.state_dict())
    plain(plain(x)).pow(2).sum().backward()
    np.testing.assert_allclose(shared.weight.grad.numpy(), plain.weight.grad.numpy(), atol=1e-12)


def test_an_unused_parameter_keeps_no_gradient(world_of_one):
    net = nn.ModuleDict({'used': nn.Linear(3, 2), 'unused': nn.Linear(3, 2)})
    ddp = DistributedDataParallel(net, bucket_cap_mb=1e-9)
    ddp.module['used'](tl.randn(4, 3)).sum().backward()
    assert net['unused'].weight.grad is None and net['used'].weight.grad is not None


def test_a_dropped_wrapper_leaves_a_plain_model(world_of_one, monkeypatch):
    net = small_video_net(0)
    ddp = DistributedDataParallel(net)
    del ddp
    gc.collect()
    monkeypatch.setattr(dist, 'all_reduce', lambda *a, **k: pytest.fail('all_reduce was called'))
    loss_of(net, *clips(2)).backward()
    assert all(not p._post_accumulate_hooks for p in net.parameters())


def test_errors(monkeypatch):
    if dist.is_initialized():
        dist.destroy_process_group()
    with pytest.raises(RuntimeError, match='not initialized.*init_process_group'):
        DistributedDataParallel(nn.Linear(2, 2))
    monkeypatch.setattr(dist, 'is_mpi_available', lambda: False)
    dist.init_process_group()
    try:
        with pytest.raises(TypeError, match='must be a tensorlite Module'):
            DistributedDataParallel(lambda x: x)
        for bad in (0, -1, '25', True):
            with pytest.raises(ValueError, match='bucket_cap_mb must be a number > 0'):
                DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=bad)
    finally:
        dist.destroy_process_group()


# ---- two ranks -----------------------------------------------------------------------------------

PRELUDE = '''
import numpy as np
import tensorlite as tl
import tensorlite.distributed as dist
import tensorlite.nn as nn
from tensorlite.nn.parallel import DistributedDataParallel
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
assert world == 2

def small_video_net(seed):
    tl.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(4, 5)).double()

def clips(n, seed):
    rng = np.random.default_rng(seed)
    return tl.tensor(rng.standard_normal((n, 3, 2, 4, 4))), tl.tensor(rng.integers(0, 5, n))

def loss_of(model, x, y):
    return nn.CrossEntropyLoss()(model(x), y)

def values(model):
    return [p.numpy().ravel().tolist() for p in model.parameters()]
'''

EQUAL_TO_ONE_PROCESS = PRELUDE + '''
# each rank its own random weights: rank 0's win
ddp = DistributedDataParallel(small_video_net(seed=rank), bucket_cap_mb=1e-4)
report(start=values(ddp), buckets=len(ddp._buckets))
opt = tl.optim.SGD(ddp.parameters(), lr=0.5, momentum=0.9)
for step in range(3):
    x, y = clips(8, seed=step)
    opt.zero_grad()
    loss_of(ddp, x[4 * rank:4 * rank + 4], y[4 * rank:4 * rank + 4]).backward()
    opt.step()
report(trained=values(ddp))
if rank == 0:                        # one process, the 8 clips, from rank 0's weights
    plain = small_video_net(seed=0)
    opt = tl.optim.SGD(plain.parameters(), lr=0.5, momentum=0.9)
    for step in range(3):
        opt.zero_grad()
        loss_of(plain, *clips(8, seed=step)).backward()
        opt.step()
    report(reference=values(plain), reference_start=values(small_video_net(seed=0)))
'''


@needs_mpi
def test_two_ranks_on_4_clips_each_equal_one_process_on_8(tmp_path):
    run_ranks(tmp_path, EQUAL_TO_ONE_PROCESS)
    got = results(tmp_path)
    assert got[0]['buckets'] > 1
    for r in (0, 1):                 # the broadcast: both ranks start from rank 0's weights
        for a, b in zip(got[r]['start'], got[0]['reference_start']):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got[r]['trained'], got[0]['reference']):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    for a, b in zip(got[0]['trained'], got[1]['trained']):
        np.testing.assert_array_equal(a, b)
    moved = max(np.abs(np.subtract(a, b)).max()
                for a, b in zip(got[0]['trained'], got[0]['reference_start']))
    assert moved > 1e-2


DURING_BACKWARD = PRELUDE + '''
events = []
reduce, wait, poll = dist.all_reduce, dist.Work.wait, dist.Work.is_completed
dist.all_reduce = lambda t, **kw: events.append(['start', t.numel()]) or reduce(t, **kw)
polling = []
def logged_poll(work):
    polling.append(True)
    done = poll(work)
    polling.pop()
    if done:
        events.append(['completed'])     # finished while backward was still running
    return done
def logged_wait(work):
    if not polling:
        events.append(['wait'])          # a wait that may block
    return wait(work)
dist.Work.is_completed, dist.Work.wait = logged_poll, logged_wait
tl.manual_seed(rank)
net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
ddp = DistributedDataParallel(net, bucket_cap_mb=1e-9)            # one parameter per bucket
for name, p in net.named_parameters():                           # after DDP's: runs after its hook
    p.register_post_accumulate_grad_hook(lambda p, name=name: events.append(['grad', name]))
events.clear()                                                   # the construction's checks
x = tl.tensor(np.random.default_rng(rank).standard_normal((3, 16)).astype(np.float32))
ddp(x).pow(2).sum().backward()
report(events=events, buckets=len(ddp._buckets),
       grads={n: p.grad.numpy().ravel().tolist() for n, p in net.named_parameters()})
'''


@needs_mpi
def test_buckets_are_reduced_during_backward(tmp_path):
    run_ranks(tmp_path, DURING_BACKWARD)
    got = results(tmp_path)
    for r in (0, 1):
        events, buckets = got[r]['events'], got[r]['buckets']
        assert buckets == 6
        kinds = [e[0] for e in events]
        grads = [i for i, k in enumerate(kinds) if k == 'grad']
        starts = [i for i, k in enumerate(kinds) if k == 'start']
        waits = [i for i, k in enumerate(kinds) if k == 'wait']
        assert len(grads) == 6 and len(starts) == 6 and len(waits) >= 6
        # every bucket started before the last gradient was logged (DDP's hook for a parameter
        # runs before the script's), the first one before the second gradient arrived, and no
        # wait came before backward had produced every gradient
        assert events[grads[-1]][1].startswith('0.')
        assert sum(s < grads[-1] for s in starts) == 6
        assert starts[0] < grads[1]
        assert min(waits) > grads[-1]
        # the same all-reduces, in the same order, on both ranks: each parameter (reverse order)
        # and its flag
        assert [events[s][1] for s in starts] == [4 + 1, 64 + 1, 16 + 1, 256 + 1, 16 + 1, 256 + 1]
    for name in got[0]['grads']:
        np.testing.assert_array_equal(got[0]['grads'][name], got[1]['grads'][name])


NO_SYNC = PRELUDE + '''
calls = []
reduce = dist.all_reduce
dist.all_reduce = lambda t, **kw: calls.append(t.numel()) or reduce(t, **kw)
ddp = DistributedDataParallel(small_video_net(seed=rank), bucket_cap_mb=1e-4)
calls.clear()                                                   # the construction's checks
opt = tl.optim.SGD(ddp.parameters(), lr=0.5)
mine = slice(2 * rank, 2 * rank + 2)
for step in range(2):
    first, second = clips(4, seed=10 * step), clips(4, seed=10 * step + 1)
    opt.zero_grad()
    with ddp.no_sync():
        loss_of(ddp, first[0][mine], first[1][mine]).backward()
    report(**{f'calls_in_no_sync_{step}': len(calls),
              f'local_grad_{step}': ddp.module[0].weight.grad.numpy().ravel().tolist()})
    loss_of(ddp, second[0][mine], second[1][mine]).backward()
    opt.step()
report(trained=values(ddp), calls=len(calls), buckets=len(ddp._buckets))
if rank == 0:                       # one process, the same accumulation over all the clips
    plain = small_video_net(seed=0)
    opt = tl.optim.SGD(plain.parameters(), lr=0.5)
    for step in range(2):
        opt.zero_grad()
        loss_of(plain, *clips(4, seed=10 * step)).backward()
        loss_of(plain, *clips(4, seed=10 * step + 1)).backward()
        opt.step()
    report(reference=values(plain))
'''


@needs_mpi
def test_no_sync_accumulates_and_the_next_backward_reduces_the_sum(tmp_path):
    run_ranks(tmp_path, NO_SYNC)
    got = results(tmp_path)
    buckets = got[0]['buckets']
    for r in (0, 1):
        assert got[r]['calls_in_no_sync_0'] == 0 and got[r]['calls_in_no_sync_1'] == buckets
        assert got[r]['calls'] == 2 * buckets
        for a, b in zip(got[r]['trained'], got[0]['reference']):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert not np.allclose(got[0]['local_grad_0'], got[1]['local_grad_0'])   # not reduced


UNUSED_AND_DIFFERENT = PRELUDE + '''
class Net(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)
        self.never, self.c = nn.Linear(3, width), nn.Linear(3, 2)
        self.norm = nn.BatchNorm1d(3)

    def forward(self, x, use_b):
        h = self.norm(self.a(x))
        return self.c(self.b(h) if use_b else h)

# rank 1 builds another model: every rank raises, naming the difference, before any broadcast
try:
    DistributedDataParallel(Net(width=3 + rank))
    report(different='no error')
except ValueError as e:
    report(different=str(e))

tl.manual_seed(rank)
ddp = DistributedDataParallel(Net(), bucket_cap_mb=1e-9)
plain = Net()
plain.load_state_dict(ddp.state_dict())
x = tl.tensor(np.random.default_rng(rank).standard_normal((4, 3)).astype(np.float32))
for step in range(2):                    # b is used on rank 0 only; never on no rank
    ddp.zero_grad()
    plain.zero_grad()
    ddp(x, use_b=rank == 0).sum().backward()
    plain(x, use_b=rank == 0).sum().backward()
report(grads={n: (None if p.grad is None else p.grad.numpy().ravel().tolist())
              for n, p in ddp.module.named_parameters()},
       local={n: (None if p.grad is None else p.grad.numpy().ravel().tolist())
              for n, p in plain.named_parameters()})
# buffers: rank 0's running statistics reach every rank at the next recording forward
ddp.eval()
ddp(x, use_b=True)
report(running_mean=ddp.module.norm.running_mean.numpy().tolist())
'''


@needs_mpi
def test_unused_parameters_do_not_hang_and_different_models_are_refused(tmp_path):
    run_ranks(tmp_path, UNUSED_AND_DIFFERENT)
    got = results(tmp_path)
    for r in (0, 1):
        message = got[r]['different']
        assert 'same parameters' in message and 'rank 1 differs from rank 0' in message
        assert 'parameter never.weight: rank 0 (3, 3) float32' in message
        assert 'rank 1 (4, 3) float32' in message
        grads = got[r]['grads']
        assert grads['never.weight'] is None and grads['never.bias'] is None
        for name in ('a.weight', 'a.bias', 'c.weight', 'c.bias', 'norm.weight'):
            mean = (np.array(got[0]['local'][name]) + np.array(got[1]['local'][name])) / 2
            np.testing.assert_allclose(grads[name], mean, rtol=1e-6, atol=1e-6)
        # used on rank 0 only: the mean with rank 1's zeros
        assert got[1]['local']['b.weight'] is None
        np.testing.assert_allclose(grads['b.weight'], np.array(got[0]['local']['b.weight']) / 2,
                                   rtol=1e-6, atol=1e-6)
    assert got[0]['running_mean'] == got[1]['running_mean']


ON_SIMULATED_CUDA = PRELUDE + '''
tl.manual_seed(rank)
net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to('cuda')
ddp = DistributedDataParallel(net, bucket_cap_mb=1e-9)
x = tl.tensor(np.full((2, 3), rank + 1.0, np.float32)).to('cuda')
ddp(x).sum().backward()
report(devices=[p.grad.device for p in net.parameters()],
       grads=[p.grad.cpu().numpy().ravel().tolist() for p in net.parameters()])
'''


@needs_mpi
def test_cuda_parameters_are_reduced_through_host_copies(tmp_path):
    run_ranks(tmp_path, ON_SIMULATED_CUDA, env={'TENSORLITE_SIMULATE_CUDA': '1',
                                                'NUMBA_ENABLE_CUDASIM': '1'})
    got = results(tmp_path)
    for r in (0, 1):
        assert got[r]['devices'] == ['cuda'] * 4
    for a, b in zip(got[0]['grads'], got[1]['grads']):
        np.testing.assert_array_equal(a, b)

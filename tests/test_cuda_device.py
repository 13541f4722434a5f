"""Device 'cuda' end to end.  Without a GPU it is the simulated device (TENSORLITE_SIMULATE_CUDA=1:
tensorlite.testing.simcupy for CuPy, Numba's simulator for the kernels); with a GPU the same tests
run on the real one.

A tiny C3D, CNN+LSTM and TimeSformer each train one step on 'cuda' and must match the CPU run's
loss, every gradient and every SGD-updated parameter to 1e-4 (float32), with every kernel launch on
the CUDA twin; checkpoints and optimizer states cross devices both ways; device mixing is refused.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
from tensorlite import backend
from tensorlite.models import build_model
from tensorlite.testing import simcupy
from tensorlite.train import load_checkpoint, save_checkpoint

REAL_GPU = backend.unavailable_reason() is None and not backend.simulation_requested()


@pytest.fixture
def cuda(monkeypatch):
    """Device 'cuda': the real one when this machine has it, else the simulated one."""
    if not REAL_GPU:
        from numba.core import config
        if not config.ENABLE_CUDASIM:
            pytest.skip("numba.cuda was imported for hardware: the simulator cannot be selected")
        monkeypatch.setenv(backend.SIMULATE_FLAG, '1')
    assert tl.cuda.is_available(), tl.cuda.unavailable_reason()
    return 'cuda'


@pytest.fixture
def plain_machine(monkeypatch):
    """This machine as it is without the simulation flag (skipped where a GPU is present)."""
    monkeypatch.delenv(backend.SIMULATE_FLAG, raising=False)
    if REAL_GPU:
        pytest.skip('a GPU is present')


# ---- availability and its errors ---------------------------------------------------------------

def test_plain_machine_says_in_one_line_what_is_missing(plain_machine, monkeypatch):
    monkeypatch.setattr(backend, '_cupy', None)
    monkeypatch.setattr(backend, '_cupy_error', ImportError("No module named 'cupy'"))
    assert tl.cuda.is_available() is False and tl.cuda.device_count() == 0
    reason = tl.cuda.unavailable_reason()
    assert '\n' not in reason and 'CuPy' in reason and backend.SIMULATE_FLAG in reason
    with pytest.raises(RuntimeError, match="device 'cuda' is not available: CuPy is not installed"):
        tl.ones(2).to('cuda')
    with pytest.raises(RuntimeError, match=backend.SIMULATE_FLAG):
        tl.nn.Linear(2, 2).to('cuda')


def test_cupy_without_a_gpu_is_named_as_such(plain_machine, monkeypatch):
    class Runtime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError('cudaErrorNoDevice')

    class FakeCupy:
        class cuda:
            runtime = Runtime
    monkeypatch.setattr(backend, '_cupy', FakeCupy)
    assert tl.cuda.is_available() is False
    assert 'no CUDA device' in tl.cuda.unavailable_reason()
    with pytest.raises(RuntimeError, match='CuPy is installed but found no CUDA device'):
        tl.zeros(3).cuda()


def test_the_flag_selects_numbas_simulator_before_numba_is_imported():
    env = {k: v for k, v in os.environ.items() if k != 'NUMBA_ENABLE_CUDASIM'}
    env[backend.SIMULATE_FLAG] = '1'
    code = ("import tensorlite as tl, numpy as np; from numba.core import config; "
            "x = tl.ones(3).to('cuda') * 2; "
            "print(tl.cuda.is_available(), tl.cuda.is_simulated(), config.ENABLE_CUDASIM, "
            "type(x.data).__module__, x.cpu().numpy().tolist())")
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['True', 'True', '1', 'tensorlite.testing.simcupy',
                                  '[2.0,', '2.0,', '2.0]']


# ---- the stand-in behaves as CuPy where it matters -------------------------------------------------

def test_device_arrays_never_reach_numpy_implicitly(cuda):
    x = tl.arange(6, dtype=tl.float32).reshape(2, 3).to(cuda)
    assert x.device == 'cuda' and x.is_cuda and backend.is_cupy_array(x.data)
    with pytest.raises(TypeError, match=r'call \.cpu\(\) first'):
        x.numpy()
    with pytest.raises(TypeError):
        np.asarray(x.data)
    with pytest.raises(TypeError):
        x.data + np.ones(3, np.float32)          # a host array in a device op
    np.testing.assert_array_equal(x.cpu().numpy(), np.arange(6).reshape(2, 3))
    assert float(x.sum()) == 15.0 and x.max().item() == 5.0
    assert 'device=' in repr(x)


@pytest.mark.skipif(REAL_GPU, reason='the stand-in only')
def test_the_stand_in_names_what_it_does_not_model(cuda):
    with pytest.raises(AttributeError, match='cupy.fft'):
        simcupy.fft
    with pytest.raises(AttributeError, match=r'\.tofile'):
        simcupy.zeros(2).tofile
    a = simcupy.arange(4.0)
    assert type(a.sum()) is simcupy.ndarray and a.sum().ndim == 0      # 0-d, as in CuPy
    iface = a.__cuda_array_interface__
    assert iface['shape'] == (4,) and iface['typestr'] == '<f8' and iface['version'] == 3
    view = simcupy.host_view(a)                 # the hand-off: a view, not a copy
    view[0] = 7.0
    assert a[0].item() == 7.0
    simcupy.add.at(a, simcupy.asarray(np.array([1, 1])), 1.0)
    assert a.get().tolist() == [7.0, 3.0, 2.0, 3.0]


@pytest.mark.skipif(REAL_GPU, reason='the simulator only')
def test_the_simulators_shared_array_is_one_per_block_when_threads_race(monkeypatch):
    from numba.core import config
    if not config.ENABLE_CUDASIM:
        pytest.skip('the simulator is off')
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    simcupy.patch_numba_simulator()
    empty = np.empty

    def slow_empty(*args, **kwargs):       # the other threads run inside the allocation (without
        time.sleep(0.001)                  # the lock every round gets several arrays)
        return empty(*args, **kwargs)
    monkeypatch.setattr(np, 'empty', slow_empty)
    for _ in range(3):
        shared, got = FakeCUDAShared(0), []
        start = threading.Barrier(16)

        def thread():
            start.wait()
            got.append(shared.array(8, np.float64))        # one call site: one array per block
        threads = [threading.Thread(target=thread) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 16 and all(a is got[0] for a in got)


def test_device_mixing_is_refused_naming_both_devices(cuda):
    a, b = tl.ones(2, 3), tl.ones(2, 3).to(cuda)
    with pytest.raises(RuntimeError, match='cpu and cuda'):
        a + b
    with pytest.raises(RuntimeError, match='cpu and cuda'):
        F.matmul(a, b.transpose(0, 1))
    x = tl.randn(1, 2, 3, 4, 4).to(cuda)
    w = tl.randn(3, 2, 1, 1, 1)
    with pytest.raises(RuntimeError, match='Conv: expected all tensors on one device, found cuda '
                                           'and cpu'):
        F.conv3d(x, w)
    model = tl.nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match='cpu'):
        model(tl.ones(4, 3).to(cuda))


def test_to_and_cpu_are_differentiable_and_leave_the_leaf_on_its_device(cuda):
    a = tl.randn(3, 4, requires_grad=True)
    y = (a.to(cuda) * 3).sum()
    assert y.device == 'cuda'
    y.backward()
    assert a.grad.device == 'cpu'
    np.testing.assert_allclose(a.grad.numpy(), 3.0)
    assert a.to(cuda).to('cpu').device == 'cpu' and a.cuda().cpu().device == 'cpu'


# ---- kernels: every launch on the CUDA twin; the GPU's launch shape gives the same result ---------

def _conv_norm_step(device, x_shape=(2, 3, 4, 5, 5), c_out=4):
    rng = np.random.default_rng(0)
    x = tl.tensor(rng.standard_normal(x_shape, dtype=np.float32)).to(device)
    w = tl.tensor(rng.standard_normal((c_out, x_shape[1], 3, 3, 3), dtype=np.float32)).to(device)
    w.requires_grad = True
    y = F.gelu(F.conv3d(x, w, padding=1))
    y = F.layer_norm(y.reshape(x_shape[0], -1, x_shape[-1]), (x_shape[-1],))
    (y * y).sum().backward()
    return y.cpu().numpy(), w.grad.cpu().numpy()


def test_ops_on_cuda_tensors_launch_only_cuda_twins(cuda):
    with tl.profiler.profile() as prof:
        y_cuda, g_cuda = _conv_norm_step(cuda)
    kernels = [e for e in prof.events() if e.kind == 'kernel']
    assert {e.name for e in kernels} >= {'conv.vol2col', 'activation.gelu_fwd',
                                          'activation.gelu_bwd', 'norm.layer_norm_fwd',
                                          'norm.layer_norm_bwd'}
    assert {e.device for e in kernels} == {'cuda'}
    y_cpu, g_cpu = _conv_norm_step('cpu')
    np.testing.assert_allclose(y_cuda, y_cpu, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_cuda, g_cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(REAL_GPU, reason='the simulator only')
def test_the_gpus_launch_configuration_gives_the_same_result(cuda):
    from tensorlite.kernels.cuda import _grid
    shape = (1, 2, 2, 3, 3)                      # one OS thread per element: keep it small
    small = _conv_norm_step(cuda, shape, 2)
    previous = _grid.use_gpu_launch(True)        # 256-thread blocks, one thread per element
    try:
        full = _conv_norm_step(cuda, shape, 2)
    finally:
        _grid.use_gpu_launch(previous)
    for a, b in zip(small, full):
        np.testing.assert_array_equal(a, b)


# ---- whole models: one training step on 'cuda' equals the CPU's ----------------------------------

TINY = {
    'c3d': (dict(widths=(2,) * 8, fc_width=8, frames=16, size=16), (2, 3, 16, 16, 16),
            {'conv.vol2col', 'norm.batch_norm_stats', 'norm.batch_norm_grad_sums',
             'pool.max_pool_fwd', 'pool.max_pool_bwd'}),
    'cnn_lstm': (dict(widths=(2, 2, 2), input_size=8, fc_dims=(6,), hidden_size=4),
                 (2, 3, 3, 8, 8), {'conv.vol2col', 'recurrent.lstm_fwd', 'recurrent.lstm_bwd'}),
    'timesformer': (dict(frames=2, img_size=8, patch_size=2, embed_dim=8, depth=1, num_heads=2,
                         mlp_dim=8, stem=(2, 2)), (2, 3, 2, 8, 8),
                    {'conv.vol2col', 'attention.softmax_fwd', 'norm.layer_norm_fwd',
                     'activation.gelu_fwd'}),
}


def _one_step(name, device, profile=False):
    overrides, shape, _ = TINY[name]
    tl.manual_seed(0)
    model = build_model(name, num_classes=3, **overrides).to(device)
    model.train()
    # SGD: its step is linear in the gradient, so parameters agree as well as gradients do (Adam's
    # first step is lr * sign(g), which turns a 1e-9 gradient -- a conv bias before BatchNorm has
    # none -- into a full step of either sign; Adam on 'cuda' is checked with the checkpoints)
    optimizer = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    clip = tl.tensor(rng.standard_normal(shape, dtype=np.float32)).to(device)
    labels = tl.tensor(np.array([1, 2])).to(device)
    prof = tl.profiler.profile() if profile else None
    if prof:
        prof.__enter__()
    try:
        loss = F.cross_entropy(model(clip), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    finally:
        if prof:
            prof.__exit__(None, None, None)
    grads = {k: p.grad.cpu().numpy() for k, p in model.named_parameters()}
    params = {k: p.cpu().numpy() for k, p in model.named_parameters()}
    return loss.item(), grads, params, prof


@pytest.mark.parametrize('name', sorted(TINY))
def test_one_training_step_on_cuda_matches_the_cpu(cuda, name):
    loss_gpu, grads_gpu, params_gpu, prof = _one_step(name, cuda, profile=True)
    loss_cpu, grads_cpu, params_cpu, _ = _one_step(name, 'cpu')
    assert abs(loss_gpu - loss_cpu) <= 1e-4 * max(1.0, abs(loss_cpu))
    assert grads_gpu.keys() == grads_cpu.keys()
    for k in grads_cpu:
        np.testing.assert_allclose(grads_gpu[k], grads_cpu[k], rtol=1e-4, atol=1e-4, err_msg=k)
        np.testing.assert_allclose(params_gpu[k], params_cpu[k], rtol=1e-4, atol=1e-4, err_msg=k)
    kernels = [e for e in prof.events() if e.kind == 'kernel']
    assert {e.device for e in kernels} == {'cuda'}, 'a kernel ran on its CPU twin'
    assert {e.device for e in prof.events()} == {'cuda'}
    assert TINY[name][2] <= {e.name for e in kernels}
    table = prof.table(sort_by='self_cpu_time_total')
    for kernel in TINY[name][2]:
        assert kernel in table


# ---- checkpoints and optimizer states across devices ------------------------------------------------

def _trained(device):
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8), tl.nn.ReLU(), tl.nn.Linear(8, 3)).to(device)
    optimizer = tl.optim.Adam(model.parameters(), lr=1e-2)
    x = tl.tensor(np.random.default_rng(0).standard_normal((5, 4), dtype=np.float32)).to(device)
    for _ in range(2):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer, x


def _fresh(device):
    tl.manual_seed(5)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8), tl.nn.ReLU(), tl.nn.Linear(8, 3)).to(device)
    return model, tl.optim.Adam(model.parameters(), lr=1e-2)


@pytest.mark.parametrize('save_on, load_on', [('cuda', 'cpu'), ('cpu', 'cuda')])
def test_a_checkpoint_loads_on_the_other_device_and_training_goes_on_alike(cuda, tmp_path,
                                                                            save_on, load_on):
    model, optimizer, x = _trained(save_on)
    path = save_checkpoint(tmp_path / 'ckpt.npz', model=model, optimizer=optimizer, epoch=1)
    model2, optimizer2 = _fresh(load_on)
    load_checkpoint(path, model=model2, optimizer=optimizer2)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert q.device == load_on
        np.testing.assert_array_equal(p.cpu().numpy(), q.cpu().numpy())
    for state in optimizer2.state.values():
        for v in state.values():
            if hasattr(v, 'shape') and getattr(v, 'ndim', 0):
                assert backend.device_of(v) == load_on
    x2 = x.to(load_on)
    for m, opt, inp in ((model, optimizer, x), (model2, optimizer2, x2)):
        opt.zero_grad()
        m(inp).pow(2).mean().backward()
        opt.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_allclose(p.cpu().numpy(), q.cpu().numpy(), rtol=1e-6, atol=1e-6)


def test_module_to_keeps_the_parameters_an_optimizer_holds(cuda):
    model = tl.nn.Linear(3, 2)
    params = list(model.parameters())
    model.to(cuda)
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert all(p.device == 'cuda' for p in model.parameters())
    model.cpu()
    assert all(p.device == 'cpu' for p in model.parameters())


# ---- the profiler on the CPU ---------------------------------------------------------------------------

def test_profiler_records_forward_backward_and_kernels_with_flops_and_shapes(tmp_path):
    a = tl.randn(4, 5, requires_grad=True)
    b = tl.randn(5, 6, requires_grad=True)
    with tl.profiler.profile() as prof:
        y = F.gelu(a @ b)
        y.sum().backward()
    events = prof.events()
    mm = [e for e in events if e.name == 'MatMul' and e.kind == 'forward']
    assert mm and mm[0].flops == 2 * 4 * 5 * 6 and mm[0].input_shapes == ((4, 5), (5, 6))
    assert mm[0].bytes == (4 * 5 + 5 * 6 + 4 * 6) * 4
    assert any(e.kind == 'backward' and e.name == 'MatMulBackward' for e in events)
    assert any(e.kind == 'kernel' and e.name == 'activation.gelu_fwd' and e.device == 'cpu'
               for e in events)
    for e in events:
        assert 0 <= e.self_us <= e.duration_us + 1e-6
    backward = next(e for e in events if e.name == 'MatMulBackward')
    inner = [e for e in events if e.kind == 'forward' and e.depth > backward.depth
             and backward.start_us <= e.start_us <= backward.start_us + backward.duration_us]
    assert inner, "the ops a backward runs are recorded inside it"
    table = prof.table(sort_by='cpu_time_total', row_limit=3)
    assert 'Name' in table and len(table.splitlines()) == 3 + 3 + 2
    assert 'MatMul' in prof.table(sort_by='flops', row_limit=1)
    prof.export_chrome_trace(tmp_path / 'trace.json')
    trace = json.loads((tmp_path / 'trace.json').read_text())['traceEvents']
    assert len(trace) == len(events) and {t['ph'] for t in trace} == {'X'}
    assert {t['cat'] for t in trace} == {'forward', 'backward', 'kernel'}


def test_profiler_errors_and_scope():
    with pytest.raises(ValueError, match="sort_by must be one of .*got 'speed'"):
        tl.profiler.profile().table(sort_by='speed')
    with tl.profiler.profile():
        with pytest.raises(RuntimeError, match='already recording'):
            with tl.profiler.profile():
                pass
    with tl.profiler.profile() as prof:
        pass
    tl.ones(2) + 1                                   # after the block: not recorded
    assert prof.events() == []


def test_one_cuda_device_and_clear_device_errors(cuda):
    with pytest.raises(ValueError, match=r"device 'cuda:1': tensorlite uses one CUDA device.*"
                                         r"CUDA_VISIBLE_DEVICES=1"):
        tl.zeros(2, device='cuda:1')
    with pytest.raises(ValueError, match=r"device 'cuda:3'"):
        tl.ones(2).to('cuda:3')
    assert tl.zeros(2, device='cuda:0').device == 'cuda'
    logits = tl.tensor(np.random.default_rng(0).random((4, 3), dtype=np.float32)).to(cuda)
    target = tl.tensor(np.array([0, 1, 2, 0]))
    for loss in (F.cross_entropy, F.nll_loss):
        with pytest.raises(RuntimeError, match=rf"{loss.__name__}: expected input and target on "
                                               r"one device, found input on cuda and target on "
                                               r"cpu \(move it with .to\('cuda'\)\)"):
            loss(logits, target)
    with pytest.raises(RuntimeError, match=r"weight on cpu"):
        F.cross_entropy(logits, target.to(cuda), weight=tl.ones(3))
    assert np.isfinite(F.cross_entropy(logits, target.to(cuda)).item())

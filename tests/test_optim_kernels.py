"""The fused optimizer kernels (kernels/{cpu,cuda}/optim.py) and the optimizers' use of them.

- the CPU twins against NumPy references written here in float64, for every combination of the
  options, float32 and float64, several steps, hypothesis-drawn shapes and hyperparameters;
- the optimizers' fused step against their own NumPy expression path: equal to the last bit;
- the CUDA twins against the CPU twins (under NUMBA_ENABLE_CUDASIM=1 when there is no GPU);
- what the optimizers do with arrays the kernels do not take (float16, a strided parameter, a
  strided or float64 gradient, a Fortran-ordered state from a checkpoint), and the launch checks.
(tests/test_optim.py checks the optimizers against their update rules, and against torch.optim.)
"""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.kernels import twin
from tensorlite.kernels.cpu import optim as cpu
from tensorlite.optim import SGD, Adam, AdamW, Optimizer

cuda = pytest.importorskip('tensorlite.kernels.cuda.optim')

DTYPES = [np.float32, np.float64]
SGD_OPTIONS = [dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                    nesterov=nesterov, maximize=maximize)
               for momentum, dampening, weight_decay, nesterov, maximize
               in itertools.product([0.0, 0.9], [0.0, 0.3], [0.0, 0.1], [False, True],
                                    [False, True])]
ADAM_OPTIONS = [dict(weight_decay=weight_decay, decoupled=decoupled, amsgrad=amsgrad,
                     maximize=maximize)
                for weight_decay, decoupled, amsgrad, maximize
                in itertools.product([0.0, 0.1], [False, True], [False, True], [False, True])]


def _ids(options):
    return ','.join(f'{k}={v}' for k, v in options.items())


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


# ---- references: float64, written from the formulas, sharing nothing with the kernels ------------
def sgd_reference(p, grads, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """p and the momentum buffer after one SGD step per gradient in `grads`."""
    p, buf = p.astype(np.float64), None
    for g in grads:
        g = g.astype(np.float64)
        if maximize:
            g = -g
        g = g + weight_decay * p
        if momentum:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p, buf


def adam_reference(p, grads, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    """p, m, v and max(v) after steps 1, 2, ... with the gradients in `grads`."""
    p = p.astype(np.float64)
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if maximize:
            g = -g
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        vmax = np.maximum(vmax, v)
        m_hat = m / (1 - beta1 ** t)
        v_hat = (vmax if amsgrad else v) / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v, vmax


# ---- the kernels' runs ---------------------------------------------------------------------------
def run_sgd(module, p, grads, lr, momentum, dampening, weight_decay, nesterov, maximize):
    p = p.copy()
    buf = np.full_like(p, np.nan) if momentum else None        # the first step must not read it
    for step, g in enumerate(grads):
        module.sgd_step(p, g, buf, lr, momentum, dampening, weight_decay, nesterov, maximize,
                        first=step == 0)
    return p, buf


def run_adam(module, p, grads, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    p = p.copy()
    m, v = np.zeros_like(p), np.zeros_like(p)
    vmax = np.zeros_like(p) if amsgrad else None
    for step, g in enumerate(grads, start=1):
        module.adam_step(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                         amsgrad, maximize)
    return p, m, v, vmax


@st.composite
def problems(draw, dtype):
    """A parameter and 1-4 gradients of one drawn shape (possibly empty or 0-d)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    steps = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    p = rng.standard_normal(shape).astype(dtype)
    grads = [(rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 1.0, 30.0]))).astype(dtype)
             for _ in range(steps)]
    return p, grads


# ---- CPU twin against the references -------------------------------------------------------------
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('options', SGD_OPTIONS, ids=_ids)
@given(data=st.data())
def test_cpu_sgd_step_matches_the_reference(options, dtype, data):
    p, grads = data.draw(problems(dtype))
    lr = data.draw(st.sampled_from([1e-3, 0.1, 0.5]))
    got_p, got_buf = run_sgd(cpu, p, grads, lr, **options)
    want_p, want_buf = sgd_reference(p, grads, lr, **options)
    assert got_p.dtype == dtype
    np.testing.assert_allclose(got_p, want_p, **_tol(dtype))
    if options['momentum']:
        np.testing.assert_allclose(got_buf, want_buf, **_tol(dtype))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('options', ADAM_OPTIONS, ids=_ids)
@given(data=st.data())
def test_cpu_adam_step_matches_the_reference(options, dtype, data):
    p, grads = data.draw(problems(dtype))
    hyper = dict(lr=data.draw(st.sampled_from([1e-3, 0.1])),
                 beta1=data.draw(st.sampled_from([0.0, 0.8, 0.9])),
                 beta2=data.draw(st.sampled_from([0.99, 0.999])),
                 eps=data.draw(st.sampled_from([1e-8, 1e-3])))
    got = run_adam(cpu, p, grads, **hyper, **options)
    want = adam_reference(p, grads, **hyper, **options)
    names = ['p', 'm', 'v', 'vmax'] if options['amsgrad'] else ['p', 'm', 'v']
    for name, g, w in zip(names, got, want):
        assert g.dtype == dtype
        # float32: v holds g**2, whose rounding in the last step dominates for large gradients
        np.testing.assert_allclose(g, w, **_tol(dtype), err_msg=name)


def test_cpu_adam_first_step_moves_every_weight_by_lr():
    """Step 1: m_hat = g and v_hat = g**2, so each weight moves by lr * |g| / (|g| + eps)."""
    g = np.array([0.5, -4.0, 1e-3, 0.0])
    p, m, v, _ = run_adam(cpu, np.zeros(4), [g], 0.01, 0.9, 0.999, 1e-8, 0.0, False, False, False)
    np.testing.assert_allclose(p, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_nan_in_v_reaches_vmax_as_numpy_maximum_would():
    p, g = np.zeros(2), np.array([np.nan, 1.0])
    m, v, vmax = np.zeros(2), np.zeros(2), np.array([5.0, 5.0])
    cpu.adam_step(p, g, m, v, vmax, 1, 0.1, 0.9, 0.999, 1e-8, 0.0, False, True, False)
    assert np.isnan(vmax[0]) and vmax[1] == 5.0 and np.isnan(p[0])


# ---- the optimizers: fused step == their NumPy expressions, to the last bit ----------------------
OPTIMIZER_CASES = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, maximize=True)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    (Adam, dict(lr=0.05, eps=1e-3, maximize=True)),
    (AdamW, dict(lr=0.01)),
    (AdamW, dict(lr=0.05, weight_decay=0.3, amsgrad=True, maximize=True)),
]


def _train(cls, options, dtype, steps=5):
    """Parameters after `steps` steps on loss = sum(0.5 c p^2 + d p) (gradient c p + d)."""
    rng = np.random.default_rng(3)
    shapes = [(4, 3, 2), (5,), (1,)]
    params = [nn.Parameter(tl.tensor(rng.standard_normal(s).astype(dtype))) for s in shapes]
    c = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in shapes]
    d = [rng.standard_normal(s).astype(dtype) for s in shapes]
    opt = cls(params, **options)
    for _ in range(steps):
        opt.zero_grad()
        sum((0.5 * ci * p * p + di * p).sum() for p, ci, di in zip(params, c, d)).backward()
        opt.step()
    return [p.data.copy() for p in params], opt


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('cls, options', OPTIMIZER_CASES,
                         ids=lambda x: getattr(x, '__name__', None) or _ids(x))
def test_fused_step_equals_the_numpy_expressions_bit_for_bit(cls, options, dtype, monkeypatch):
    fused, opt = _train(cls, options, dtype)
    monkeypatch.setattr(Optimizer, '_fused_grad', staticmethod(lambda p, grad: None))
    numpy_path, opt_np = _train(cls, options, dtype)
    for a, b in zip(fused, numpy_path):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    for p, p_np in zip(opt.param_groups[0]['params'], opt_np.param_groups[0]['params']):
        for key, value in opt.state[p].items():
            np.testing.assert_array_equal(value, opt_np.state[p_np][key], err_msg=key)


@pytest.mark.parametrize('cls, options, kernel', [
    (SGD, dict(lr=0.1, momentum=0.9), 'optim.sgd_step'),
    (AdamW, dict(lr=0.1), 'optim.adam_step'),
])
def test_a_step_launches_one_fused_kernel_per_parameter(cls, options, kernel):
    params = [nn.Parameter(tl.ones(3)), nn.Parameter(tl.ones(2, 2)), nn.Parameter(tl.ones(1))]
    opt = cls(params, **options)
    for p in params[:2]:
        p.grad = tl.ones(*p.shape)
    with tl.profiler.profile() as prof:
        opt.step()
    launches = [e for e in prof.events() if e.kind == 'kernel']
    assert [(e.name, e.device) for e in launches] == [(kernel, 'cpu')] * 2


def test_dispatch_picks_the_cpu_twin_for_numpy_arrays():
    assert twin('optim', np.ones(2)) is cpu


# ---- arrays the kernels do not take, as the optimizers meet them ---------------------------------
@pytest.mark.parametrize('cls, options', [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
                                          (Adam, dict(lr=0.1, amsgrad=True)),
                                          (AdamW, dict(lr=0.1))],
                         ids=['SGD', 'Adam', 'AdamW'])
def test_float16_parameters_take_the_numpy_path_and_stay_float16(cls, options):
    got, opt = _train(cls, options, np.float16, steps=3)
    want, _ = _train(cls, options, np.float64, steps=3)
    for g, w in zip(got, want):
        assert g.dtype == np.float16
        np.testing.assert_allclose(g, w, rtol=2e-2, atol=2e-2)
    assert all(v.dtype == np.float16 for s in opt.state.values() for v in s.values()
               if hasattr(v, 'dtype'))


@pytest.mark.parametrize('cls', [SGD, Adam])
def test_strided_and_float64_gradients_give_the_contiguous_float32_result(cls):
    rng = np.random.default_rng(0)
    p0, g0 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 3))
    grads = {'contiguous float32': g0.T.astype(np.float32).copy(),
             'transposed float32': g0.astype(np.float32).T,
             'float64': g0.T.copy()}
    results = {}
    for name, g in grads.items():
        w = nn.Parameter(tl.tensor(p0.copy()))
        opt = cls([w], lr=0.1, **({'momentum': 0.9} if cls is SGD else {}))
        for _ in range(2):
            w.grad = tl.tensor(g)
            opt.step()
        assert w.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[w].values() if hasattr(v, 'dtype'))
        results[name] = w.data.copy()
    for name, r in results.items():
        np.testing.assert_array_equal(r, results['contiguous float32'], err_msg=name)


@pytest.mark.parametrize('cls', [SGD, Adam])
def test_a_strided_parameter_is_updated_in_place(cls):
    """A parameter whose array is a transposed view: the NumPy path writes through the view."""
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    w = nn.Parameter(tl.tensor(np.zeros((4, 3))))
    w.data = base.T
    want = nn.Parameter(tl.tensor(base.T.copy()))
    opts = [cls([x], lr=0.1, **({'momentum': 0.9} if cls is SGD else {})) for x in (w, want)]
    for _ in range(2):
        for x, opt in zip((w, want), opts):
            x.grad = tl.tensor(np.linspace(-1, 1, 12).reshape(4, 3))
            opt.step()
    assert w.data.base is base or np.shares_memory(w.data, base)
    np.testing.assert_allclose(base.T, want.data, rtol=1e-15)


def test_a_fortran_ordered_state_from_a_checkpoint_loads_as_c_contiguous():
    w = nn.Parameter(tl.tensor(np.ones((3, 4))))
    opt = Adam([w], lr=0.1)
    w.grad = tl.ones(3, 4, dtype=tl.float64)
    opt.step()
    sd = opt.state_dict()
    for key in ('exp_avg', 'exp_avg_sq'):
        sd['state'][0][key] = np.asfortranarray(sd['state'][0][key])
    opt.load_state_dict(sd)
    assert all(opt.state[w][k].flags.c_contiguous for k in ('exp_avg', 'exp_avg_sq'))
    opt.step()                                   # the kernel takes them


# ---- CUDA twins against the CPU twins ------------------------------------------------------------
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('options', SGD_OPTIONS, ids=_ids)
def test_cuda_twin_sgd_step_matches_cpu_twin(options, dtype):
    rng = np.random.default_rng(1)
    p = rng.standard_normal(70).astype(dtype)             # 70 > the simulator's 2 x 32 threads
    grads = [rng.standard_normal(70).astype(dtype) for _ in range(2)]
    for got, want in zip(run_sgd(cuda, p, grads, 0.1, **options),
                         run_sgd(cpu, p, grads, 0.1, **options)):
        if want is not None:
            np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('options', ADAM_OPTIONS, ids=_ids)
def test_cuda_twin_adam_step_matches_cpu_twin(options, dtype):
    rng = np.random.default_rng(2)
    p = rng.standard_normal(70).astype(dtype)
    grads = [rng.standard_normal(70).astype(dtype) for _ in range(2)]
    hyper = dict(lr=0.05, beta1=0.9, beta2=0.99, eps=1e-8)
    for got, want in zip(run_adam(cuda, p, grads, **hyper, **options),
                         run_adam(cpu, p, grads, **hyper, **options)):
        if want is not None:
            np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize('shape', [(0,), (), (1,), (3, 5)])
def test_cuda_twins_on_small_shapes(shape):
    rng = np.random.default_rng(3)
    p = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(2)]
    sgd = dict(momentum=0.9, dampening=0.0, weight_decay=0.1, nesterov=True, maximize=False)
    for got, want in zip(run_sgd(cuda, p, grads, 0.1, **sgd), run_sgd(cpu, p, grads, 0.1, **sgd)):
        np.testing.assert_allclose(got, want, **_tol(np.float32))
    adam = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, decoupled=True,
                amsgrad=True, maximize=False)
    for got, want in zip(run_adam(cuda, p, grads, **adam), run_adam(cpu, p, grads, **adam)):
        np.testing.assert_allclose(got, want, **_tol(np.float32))


# ---- launch checks -------------------------------------------------------------------------------
def _sgd(module, p, g, buf, momentum=0.9):
    module.sgd_step(p, g, buf, 0.1, momentum, 0.0, 0.0, False, False, False)


def _adam(module, p, g, m, v, vmax=None, amsgrad=False, step=1):
    module.adam_step(p, g, m, v, vmax, step, 0.1, 0.9, 0.999, 1e-8, 0.0, False, amsgrad, False)


f32, f64 = np.ones(6, dtype=np.float32), np.ones(6)
BAD_INPUTS = [
    (lambda k: _sgd(k, f64.copy(), f32, f64.copy()), TypeError,
     'sgd_step: g has dtype float32, p has float64'),
    (lambda k: _sgd(k, f64.copy(), f64, f32.copy()), TypeError, 'sgd_step: buf has dtype float32'),
    (lambda k: _sgd(k, np.ones(6, dtype=np.int64), np.ones(6, dtype=np.int64), None, 0.0),
     TypeError, 'p has dtype int64, expected float32 or float64'),
    (lambda k: _sgd(k, f64.copy(), np.ones(7), f64.copy()), ValueError,
     r"g has shape \(7,\), expected p's shape \(6,\)"),
    (lambda k: _sgd(k, np.ones((2, 3)), np.ones((3, 2)), np.ones((2, 3))), ValueError,
     r"g has shape \(3, 2\), expected p's shape \(2, 3\)"),
    (lambda k: _sgd(k, np.ones((3, 4))[:, ::2], np.ones((3, 2)), None, 0.0), ValueError,
     r'p \(shape \(3, 2\)\) is not C-contiguous'),
    (lambda k: _sgd(k, f64.copy(), f64, None), ValueError, 'momentum=0.9 needs a momentum buffer'),
    (lambda k: _adam(k, f64.copy(), f64, f64.copy(), np.ones((2, 3))), ValueError,
     r"v has shape \(2, 3\), expected p's shape \(6,\)"),
    (lambda k: _adam(k, f64.copy(), f64, np.ones(12)[::2], f64.copy()), ValueError,
     'm .*not C-contiguous'),
    (lambda k: _adam(k, f64.copy(), f64, f64.copy(), f64.copy(), f32.copy(), amsgrad=True),
     TypeError, 'adam_step: vmax has dtype float32, p has float64'),
    (lambda k: _adam(k, f64.copy(), f64, f64.copy(), f64.copy(), amsgrad=True), ValueError,
     'amsgrad=True needs a vmax array'),
    (lambda k: _adam(k, f64.copy(), f64, f64.copy(), f64.copy(), step=0), ValueError,
     'step must be 1 or more'),
]


@pytest.mark.parametrize('module', [cpu, cuda], ids=['cpu', 'cuda'])
@pytest.mark.parametrize('call, error, message', BAD_INPUTS)
def test_launch_refuses_bad_input_and_names_it(module, call, error, message):
    with pytest.raises(error, match=message):
        call(module)

"""tensorlite.optim: optimizers against their update rules written out in NumPy, state dicts,
schedulers against their closed forms, and gradient clipping.

- SGD (momentum, dampening, Nesterov, weight decay, maximize), Adam and AdamW (weight decay,
  amsgrad, maximize), several steps on a problem whose gradient depends on the parameters.
- param groups, in-place updates (same Parameter, same array, version bumped), zero_grad.
- state_dict / load_state_dict: a loaded optimizer continues exactly; mismatches raise.
- StepLR, LinearLR, CosineAnnealingLR, SequentialLR (warmup then cosine): sequences, resume, errors.
- clip_grad_norm_: hand-computed norms and scaling.
- optional: torch.optim and torch.optim.lr_scheduler on the same problems.
"""
import copy
import json
import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.optim import SGD, Adam, AdamW, Optimizer, clip_grad_norm_
from tensorlite.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR, StepLR

# ---- the problem: a quadratic whose gradient depends on the parameters -------------------------
# loss = sum(0.5 * c * p**2 + d * p) over each parameter, so grad = c * p + d: every step sees a
# different gradient, and a wrong state (a buffer not carried over) shows in the next step.

SHAPES = [(3, 2), (4,)]
STEPS = 4


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    c = [rng.uniform(0.5, 2.0, s) for s in SHAPES]
    d = [rng.standard_normal(s) for s in SHAPES]
    return p0, c, d


def tl_params(p0):
    return [nn.Parameter(tl.tensor(a.copy())) for a in p0]


def backward(params, c, d):
    loss = sum((0.5 * ci * p * p + di * p).sum() for p, ci, di in zip(params, c, d))
    loss.backward()


def run_tl(optimizer, params, c, d, steps=STEPS):
    for _ in range(steps):
        optimizer.zero_grad()
        backward(params, c, d)
        optimizer.step()
    return [p.data.copy() for p in params]


# ---- the update rules, written out independently -------------------------------------------------
def sgd_reference(p0, c, d, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                  nesterov=False, maximize=False):
    ps = [a.copy() for a in p0]
    bufs = [None] * len(ps)
    for _ in range(steps):
        for i, p in enumerate(ps):
            g = c[i] * p + d[i]
            if maximize:
                g = -g
            g = g + weight_decay * p
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = p - lr * g
    return ps


def adam_reference(p0, c, d, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   amsgrad=False, maximize=False, decoupled=False):
    b1, b2 = betas
    ps = [a.copy() for a in p0]
    m = [np.zeros_like(a) for a in ps]
    v = [np.zeros_like(a) for a in ps]
    vmax = [np.zeros_like(a) for a in ps]
    for t in range(1, steps + 1):
        for i, p in enumerate(ps):
            g = c[i] * p + d[i]
            if maximize:
                g = -g
            if decoupled:
                p = p * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g ** 2
            vmax[i] = np.maximum(vmax[i], v[i])
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = (vmax[i] if amsgrad else v[i]) / (1 - b2 ** t)
            ps[i] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return ps


SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.8, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.1, momentum=0.5, weight_decay=0.01, nesterov=True),
    dict(lr=0.02, momentum=0.9, maximize=True),
]


def _ids(options):
    return ','.join(f'{k}={v}' for k, v in options.items())


@pytest.mark.parametrize('options', SGD_CASES, ids=_ids)
def test_sgd_matches_update_rule(options):
    p0, c, d = make_problem()
    params = tl_params(p0)
    got = run_tl(SGD(params, **options), params, c, d)
    want = sgd_reference(p0, c, d, STEPS, **options)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


ADAM_CASES = [
    dict(lr=0.1),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.1, amsgrad=True),
    dict(lr=0.1, maximize=True),
]


@pytest.mark.parametrize('options', ADAM_CASES, ids=_ids)
def test_adam_matches_update_rule(options):
    p0, c, d = make_problem()
    params = tl_params(p0)
    got = run_tl(Adam(params, **options), params, c, d, steps=6)
    want = adam_reference(p0, c, d, 6, **options)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('options', [dict(lr=0.1), dict(lr=0.1, weight_decay=0.5, amsgrad=True)])
def test_adamw_matches_decoupled_rule(options):
    p0, c, d = make_problem()
    params = tl_params(p0)
    got = run_tl(AdamW(params, **options), params, c, d, steps=6)
    want = adam_reference(p0, c, d, 6, decoupled=True,
                          **{'weight_decay': 1e-2, **options})      # AdamW's default decay
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_adamw_decay_is_not_adams_l2():
    """The same weight decay gives different steps in Adam (through the moments) and AdamW."""
    p0, c, d = make_problem()
    a, b = tl_params(p0), tl_params(p0)
    run_tl(Adam(a, lr=0.1, weight_decay=0.5), a, c, d, steps=2)
    run_tl(AdamW(b, lr=0.1, weight_decay=0.5), b, c, d, steps=2)
    assert not np.allclose(a[0].data, b[0].data)


def test_adam_first_step_moves_each_weight_by_lr():
    """On the first step m_hat = g and v_hat = g**2, so every weight moves by lr * |g|/(|g|+eps)."""
    w = nn.Parameter(tl.tensor(np.array([1.0, -2.0, 3.0])))
    w.grad = tl.tensor(np.array([0.5, -4.0, 1e-3]))
    Adam([w], lr=0.01, eps=1e-8).step()
    g = np.array([0.5, -4.0, 1e-3])
    np.testing.assert_allclose(w.data, [1.0, -2.0, 3.0] - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


def test_sgd_one_step_by_hand():
    w = nn.Parameter(tl.tensor(np.array([1.0, 2.0])))
    w.grad = tl.tensor(np.array([10.0, -20.0]))
    opt = SGD([w], lr=0.1, momentum=0.9, weight_decay=0.5)
    opt.step()                                   # g = [10.5, -19], buffer = g
    np.testing.assert_allclose(w.data, [1.0 - 1.05, 2.0 + 1.9])
    np.testing.assert_allclose(opt.state[w]['momentum_buffer'], [10.5, -19.0])


def test_float32_parameters_stay_float32():
    p0, c, d = make_problem()
    params = [nn.Parameter(tl.tensor(a.astype(np.float32))) for a in p0]
    for opt in (SGD(params, lr=0.1, momentum=0.9), Adam(params, lr=0.1), AdamW(params)):
        run_tl(opt, params, c, d, steps=2)
        assert all(p.dtype == np.float32 for p in params)
    assert all(a.dtype == np.float32 for a in opt.state[params[0]].values() if hasattr(a, 'dtype'))


# ---- groups, in-place updates, zero_grad ---------------------------------------------------------
def test_param_groups_with_their_own_options():
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = SGD([{'params': [params[0]]}, {'params': params[1], 'lr': 0.01, 'momentum': 0.5}],
              lr=0.1, momentum=0.9)
    assert [g['lr'] for g in opt.param_groups] == [0.1, 0.01]
    assert [g['momentum'] for g in opt.param_groups] == [0.9, 0.5]
    got = run_tl(opt, params, c, d)
    want0 = sgd_reference(p0[:1], c[:1], d[:1], STEPS, lr=0.1, momentum=0.9)
    want1 = sgd_reference(p0[1:], c[1:], d[1:], STEPS, lr=0.01, momentum=0.5)
    np.testing.assert_allclose(got[0], want0[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want1[0], rtol=1e-12)


def test_add_param_group_and_parameters_without_grad_are_skipped():
    a, b = nn.Parameter(tl.ones(2)), nn.Parameter(tl.ones(2))
    opt = Adam([a], lr=0.1)
    opt.add_param_group({'params': [b], 'lr': 1.0})
    assert opt.param_groups[1]['betas'] == (0.9, 0.999)
    a.grad = tl.ones(2)
    opt.step()
    assert b not in opt.state and np.array_equal(b.data, np.ones(2, dtype=np.float32))
    assert opt.state[a]['step'] == 1


def test_step_updates_in_place_and_bumps_the_version():
    lin = nn.Linear(3, 2)
    weight, array = lin.weight, lin.weight.data
    opt = SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(tl.ones(1, 3)).sum().backward()
    version = weight._version
    opt.step()
    assert lin.weight is weight and lin.weight.data is array
    assert weight._version > version


def test_step_after_forward_makes_that_backward_raise():
    """An optimizer step between forward and backward changes values the backward saved."""
    w = nn.Parameter(tl.tensor(np.array([1.0, 2.0])))
    w.grad = tl.ones(2, dtype=tl.float64)
    y = (w * w).sum()                            # saves w
    SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match='in-place'):
        y.backward()


def test_zero_grad():
    w = nn.Parameter(tl.ones(2))
    opt = SGD([w], lr=0.1)
    w.grad = tl.ones(2)
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and np.array_equal(grad.data, np.zeros(2))
    opt.zero_grad()
    assert w.grad is None


def test_closure_returns_the_loss():
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = SGD(params, lr=0.1)

    def closure():
        opt.zero_grad()
        loss = sum((0.5 * ci * p * p + di * p).sum() for p, ci, di in zip(params, c, d))
        loss.backward()
        return loss

    loss = opt.step(closure)
    want = sum((0.5 * ci * p * p + di * p).sum() for p, ci, di in zip(p0, c, d))
    assert float(loss) == pytest.approx(want)
    np.testing.assert_allclose(params[0].data, sgd_reference(p0, c, d, 1, lr=0.1)[0])


@pytest.mark.parametrize('make, message', [
    (lambda p: SGD([], lr=0.1), 'empty parameter list'),
    (lambda p: SGD(p[0], lr=0.1), 'iterable'),
    (lambda p: SGD([p[0] * 2], lr=0.1), 'non-leaf'),
    (lambda p: SGD([np.ones(2)], lr=0.1), 'ndarray'),
    (lambda p: SGD({p[0], p[1]}, lr=0.1), 'ordered'),
    (lambda p: SGD([{'params': [p[0]]}, {'params': [p[0]]}], lr=0.1), 'more than one'),
    (lambda p: SGD([p[0], p[0]], lr=0.1), 'twice'),
    (lambda p: SGD(p, lr=0.1, nesterov=True), 'Nesterov'),
    (lambda p: SGD(p, lr=-1), 'learning rate'),
    (lambda p: Adam(p, betas=(0.9, 1.0)), 'beta parameter at index 1'),
    (lambda p: AdamW(p, eps=-1), 'epsilon'),
    # non-finite or out-of-range hyper-parameters are refused when the optimizer is built
    (lambda p: SGD(p, lr=float('inf')), r"Invalid learning rate: SGD: lr must be a finite number "
                                         r">= 0, got inf"),
    (lambda p: SGD(p, lr=float('nan')), r'SGD: lr .* got nan'),
    (lambda p: SGD(p, lr='0.1'), r"SGD: lr .* got '0.1'"),
    (lambda p: SGD(p, lr=0.1, momentum=float('inf')), r'SGD: momentum .* got inf'),
    (lambda p: SGD(p, lr=0.1, momentum=-0.5), r'SGD: momentum must be a finite number >= 0'),
    (lambda p: SGD(p, lr=0.1, dampening=2), r'SGD: dampening .* >= 0 and <= 1, got 2'),
    (lambda p: SGD(p, lr=0.1, weight_decay=float('nan')), r'SGD: weight_decay .* got nan'),
    (lambda p: Adam(p, lr=1e30 * 1e300), r'Adam: lr .* got inf'),
    (lambda p: Adam(p, eps=float('inf')), r'Adam: eps .* got inf'),
    (lambda p: Adam(p, betas=(float('nan'), 0.9)), r'beta parameter at index 0.* got nan'),
    (lambda p: Adam(p, betas=(0.9,)), r'betas must be a pair'),
    (lambda p: AdamW(p, weight_decay=-1e-2), r'AdamW: weight_decay must be a finite number >= 0'),
])
def test_constructor_errors(make, message):
    params = tl_params(make_problem()[0])
    with pytest.raises((TypeError, ValueError), match=message):
        make(params)


# ---- state dicts ---------------------------------------------------------------------------------
OPTIMIZERS = [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.1, amsgrad=True, weight_decay=0.01)),
    (AdamW, dict(lr=0.1)),
]


def _as_if_from_a_checkpoint(sd):
    """The state dict after a trip through .npz (arrays, 0-d arrays for numbers) and JSON (string
    keys, lists for tuples), as a checkpoint would store it."""
    state = {str(i): {k: np.array(v) for k, v in s.items()} for i, s in sd['state'].items()}
    groups = json.loads(json.dumps(sd['param_groups']))
    return {'state': state, 'param_groups': groups}


@pytest.mark.parametrize('cls, options', OPTIMIZERS, ids=lambda x: getattr(x, '__name__', ''))
@pytest.mark.parametrize('through_checkpoint', [False, True])
def test_state_dict_round_trip_continues_identically(cls, options, through_checkpoint):
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = cls(params, **options)
    run_tl(opt, params, c, d, steps=3)
    sd = opt.state_dict()
    assert sorted(sd['state']) == [0, 1] and sd['param_groups'][0]['params'] == [0, 1]
    if through_checkpoint:
        sd = _as_if_from_a_checkpoint(sd)
    else:
        sd = copy.deepcopy(sd)

    params2 = tl_params([p.data for p in params])
    opt2 = cls(params2, lr=123.0)                # the loaded options replace these
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]['lr'] == options['lr']
    assert opt2.param_groups[0]['params'][0] is params2[0]
    got = run_tl(opt2, params2, c, d, steps=3)
    want = run_tl(opt, params, c, d, steps=3)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_loaded_state_does_not_share_arrays():
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = Adam(params, lr=0.1)
    run_tl(opt, params, c, d, steps=1)
    sd = opt.state_dict()
    opt2 = Adam(tl_params(p0))
    opt2.load_state_dict(sd)
    assert opt2.state[opt2.param_groups[0]['params'][0]]['exp_avg'] is not sd['state'][0]['exp_avg']


def test_load_casts_state_to_the_parameter_dtype():
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = SGD(params, lr=0.1, momentum=0.9)
    run_tl(opt, params, c, d, steps=1)
    p32 = [nn.Parameter(tl.tensor(a.astype(np.float32))) for a in p0]
    opt32 = SGD(p32, lr=0.1, momentum=0.9)
    opt32.load_state_dict(opt.state_dict())
    assert opt32.state[p32[0]]['momentum_buffer'].dtype == np.float32


def _saved_sgd():
    p0, c, d = make_problem()
    params = tl_params(p0)
    opt = SGD(params, lr=0.1, momentum=0.9)
    run_tl(opt, params, c, d, steps=1)
    return opt.state_dict()


def test_load_errors_name_the_mismatch():
    sd = _saved_sgd()
    p0 = make_problem()[0]

    two_groups = SGD([{'params': tl_params(p0[:1])}, {'params': tl_params(p0[1:])}], lr=0.1,
                     momentum=0.9)
    with pytest.raises(ValueError, match=r'1 parameter group\(s\), but this SGD has 2'):
        two_groups.load_state_dict(sd)

    with pytest.raises(ValueError, match='group 0: the loaded state dict has 2 parameters, this '
                                         "optimizer's group has 1"):
        SGD(tl_params(p0[:1]), lr=0.1).load_state_dict(sd)

    wrong_shape = SGD(tl_params([np.zeros((2, 3)), np.zeros(4)]), lr=0.1, momentum=0.9)
    before = wrong_shape.state_dict()
    with pytest.raises(ValueError, match=r"'momentum_buffer' of parameter 0 \(group 0\) has shape "
                                         r"\(3, 2\), but the parameter has shape \(2, 3\)"):
        wrong_shape.load_state_dict(sd)
    assert wrong_shape.state_dict() == before     # unchanged by the failed load

    with pytest.raises(ValueError, match="no 'betas', 'eps', 'amsgrad'.*another optimizer"):
        Adam(tl_params(p0)).load_state_dict(sd)

    bad_index = copy.deepcopy(sd)
    bad_index['state'][7] = bad_index['state'].pop(1)
    with pytest.raises(ValueError, match='state for parameter 7'):
        SGD(tl_params(p0), lr=0.1).load_state_dict(bad_index)

    with pytest.raises(ValueError, match="no 'param_groups' entry"):
        SGD(tl_params(p0), lr=0.1).load_state_dict({'state': {}})


# ---- schedulers ----------------------------------------------------------------------------------
def _optimizer(lrs=(0.1, 0.02)):
    """An optimizer with one parameter group per learning rate."""
    return SGD([{'params': [nn.Parameter(tl.ones(1))], 'lr': lr} for lr in lrs], lr=lrs[0])


def _sequence(scheduler, epochs):
    """The rates of every group at epochs 0 .. epochs-1 (step() after each epoch)."""
    out = []
    for _ in range(epochs):
        out.append(scheduler.get_last_lr())
        assert scheduler.get_last_lr() == [g['lr'] for g in scheduler.optimizer.param_groups]
        scheduler.optimizer.step()
        scheduler.step()
    return np.array(out)


def _closed(fn, base_lrs, epochs):
    return np.array([[fn(base, e) for base in base_lrs] for e in range(epochs)])


def test_step_lr():
    s = StepLR(_optimizer(), step_size=3, gamma=0.5)
    assert s.base_lrs == [0.1, 0.02] and s.last_epoch == 0
    np.testing.assert_allclose(_sequence(s, 10), _closed(lambda b, e: b * 0.5 ** (e // 3),
                                                         [0.1, 0.02], 10), rtol=1e-12)


def test_linear_lr_is_a_linear_warmup():
    s = LinearLR(_optimizer(), start_factor=0.25, end_factor=1.0, total_iters=4)
    want = _closed(lambda b, e: b * (0.25 + 0.75 * min(e, 4) / 4), [0.1, 0.02], 8)
    np.testing.assert_allclose(_sequence(s, 8), want, rtol=1e-12)
    np.testing.assert_allclose(want[:5, 0], [0.025, 0.04375, 0.0625, 0.08125, 0.1])


@pytest.mark.parametrize('eta_min', [0.0, 0.001])
def test_cosine_annealing_follows_the_closed_form(eta_min):
    T = 6
    s = CosineAnnealingLR(_optimizer(), T_max=T, eta_min=eta_min)
    want = _closed(lambda b, e: eta_min + (b - eta_min) * (1 + math.cos(math.pi * e / T)) / 2,
                   [0.1, 0.02], 3 * T)           # past T_max the cosine climbs back up
    np.testing.assert_allclose(_sequence(s, 3 * T), want, rtol=1e-12, atol=1e-15)


def test_sequential_warmup_then_cosine():
    W, T, base = 3, 5, 0.1
    opt = _optimizer((base,))
    warmup = LinearLR(opt, start_factor=0.1, total_iters=W)
    cosine = CosineAnnealingLR(opt, T_max=T)
    s = SequentialLR(opt, [warmup, cosine], milestones=[W])
    assert s.base_lrs == [base]

    def lr(e):
        if e < W:
            return base * (0.1 + 0.9 * e / W)
        return base * (1 + math.cos(math.pi * (e - W) / T)) / 2

    want = np.array([[lr(e)] for e in range(W + T + 1)])
    np.testing.assert_allclose(_sequence(s, W + T + 1), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(want[:W + 2, 0],
                               [0.01, 0.04, 0.07, 0.1, base * (1 + math.cos(math.pi / 5)) / 2])


def test_schedulers_compose_on_one_optimizer():
    """Two schedulers stepping the same optimizer multiply their factors (chainable forms)."""
    opt = _optimizer((1.0,))
    a, b = StepLR(opt, step_size=2, gamma=0.5), LinearLR(opt, start_factor=0.5, total_iters=4)
    got = []
    for _ in range(7):
        got.append(opt.param_groups[0]['lr'])
        a.step()
        b.step()
    want = [0.5 ** (e // 2) * (0.5 + 0.5 * min(e, 4) / 4) for e in range(7)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _warmup_cosine(opt):
    return SequentialLR(opt, [LinearLR(opt, 0.1, total_iters=3), CosineAnnealingLR(opt, 6)], [3])


@pytest.mark.parametrize('make', [
    lambda o: StepLR(o, 2, gamma=0.3),
    lambda o: LinearLR(o, 0.2, total_iters=5),
    lambda o: CosineAnnealingLR(o, 7, eta_min=0.001),
    _warmup_cosine,
], ids=['StepLR', 'LinearLR', 'CosineAnnealingLR', 'SequentialLR'])
@pytest.mark.parametrize('resume_at', [2, 4])
def test_scheduler_resume_continues_identically(make, resume_at):
    """Stop after `resume_at` epochs, save optimizer and scheduler state through JSON, build both
    again, load (optimizer first), and go on: the rates are those of the uninterrupted run."""
    opt = _optimizer()
    uninterrupted = _sequence(make(opt), 10)

    opt = _optimizer()
    s = make(opt)
    first = _sequence(s, resume_at)
    saved_opt = json.loads(json.dumps(opt.state_dict()))
    saved_sched = json.loads(json.dumps(s.state_dict()))

    opt2 = _optimizer()
    s2 = make(opt2)
    opt2.load_state_dict(saved_opt)
    s2.load_state_dict(saved_sched)
    assert s2.last_epoch == s.last_epoch and s2.get_last_lr() == s.get_last_lr()
    rest = _sequence(s2, 10 - resume_at)
    np.testing.assert_array_equal(np.concatenate([first, rest]), uninterrupted)


def test_scheduler_load_errors():
    opt = _optimizer()
    with pytest.raises(ValueError, match=r"missing keys \['gamma', 'step_size'\].*unexpected keys "
                                         r"\['T_max', 'eta_min'\]"):
        StepLR(opt, 2).load_state_dict(CosineAnnealingLR(_optimizer(), 3).state_dict())
    with pytest.raises(ValueError, match="'base_lrs' has 1 entries, but the optimizer has 2"):
        StepLR(opt, 2).load_state_dict(StepLR(_optimizer((0.1,)), 2).state_dict())
    one = SequentialLR(opt, [StepLR(opt, 2)], milestones=[])
    with pytest.raises(ValueError, match='holds 2 scheduler states, this SequentialLR has 1'):
        one.load_state_dict(_warmup_cosine(_optimizer()).state_dict())


def test_scheduler_constructor_errors():
    opt, other = _optimizer(), _optimizer()
    with pytest.raises(TypeError, match='needs an Optimizer'):
        StepLR([1], 2)
    with pytest.raises(KeyError, match='initial_lr'):
        StepLR(opt, 2, last_epoch=4)
    with pytest.raises(ValueError, match='one milestone fewer'):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], milestones=[])
    with pytest.raises(ValueError, match='same optimizer'):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(other, 3)], milestones=[2])
    with pytest.raises(ValueError, match='start_factor'):
        LinearLR(opt, start_factor=0)


# ---- clip_grad_norm_ -----------------------------------------------------------------------------
def _with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(tl.zeros(*np.shape(g), dtype=tl.float64))
        p.grad = tl.tensor(np.array(g, dtype=np.float64))
        params.append(p)
    return params


@pytest.mark.parametrize('max_norm, norm_type, message', [
    (0.0, 2.0, r'max_norm must be a finite number > 0, got 0.0'),
    (-1.0, 2.0, r'max_norm must be a finite number >= 0, got -1.0'),
    (float('inf'), 2.0, r'max_norm .* got inf'),
    (float('nan'), 2.0, r'max_norm .* got nan'),
    (1.0, 0.0, r'norm_type must be a number > 0 or inf, got 0.0'),
    (1.0, float('nan'), r'norm_type .* got nan'),
])
def test_clip_grad_norm_refuses_bad_arguments(max_norm, norm_type, message):
    params = tl_params(make_problem()[0])
    with pytest.raises(ValueError, match=message):
        clip_grad_norm_(params, max_norm=max_norm, norm_type=norm_type)


def test_clip_grad_norm_scales_to_max_norm():
    params = _with_grads([3.0, 0.0], [[4.0]]) + [nn.Parameter(tl.ones(2))]   # the last: no grad
    norm = clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(norm, tl.Tensor) and norm.shape == () and float(norm) == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad.data, [3.0 * scale, 0.0], rtol=1e-15)
    np.testing.assert_allclose(params[1].grad.data, [[4.0 * scale]], rtol=1e-15)


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = _with_grads([0.3, -0.4])
    grad = params[0].grad.data
    assert float(clip_grad_norm_(params, max_norm=1.0)) == pytest.approx(0.5)
    np.testing.assert_array_equal(params[0].grad.data, [0.3, -0.4])
    assert params[0].grad.data is grad


@pytest.mark.parametrize('norm_type, want', [(1.0, 10.0), (math.inf, 4.0),
                                             (3.0, (1 + 8 + 27 + 64) ** (1 / 3))])
def test_clip_grad_norm_other_norms(norm_type, want):
    params = _with_grads([1.0, -2.0], [3.0, -4.0])
    norm = clip_grad_norm_((p for p in params), max_norm=2.0, norm_type=norm_type)
    assert float(norm) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(params[1].grad.data, np.array([3.0, -4.0]) * 2.0 / (want + 1e-6),
                               rtol=1e-12)


def test_clip_grad_norm_nonfinite_and_empty():
    params = _with_grads([1.0, np.inf])
    with pytest.raises(RuntimeError, match='total norm of order 2.0 of the gradients is inf'):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert float(clip_grad_norm_([nn.Parameter(tl.ones(2))], 1.0)) == 0.0
    assert float(clip_grad_norm_(_with_grads([3.0, 4.0])[0], 10.0)) == 5.0    # a single tensor


# ---- optional: PyTorch ---------------------------------------------------------------------------
TORCH_OPTIMIZERS = [
    ('SGD', dict(lr=0.1)),
    ('SGD', dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ('SGD', dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ('Adam', dict(lr=0.05, weight_decay=0.1)),
    ('Adam', dict(lr=0.05, betas=(0.8, 0.95), amsgrad=True, maximize=True)),
    ('AdamW', dict(lr=0.05)),
    ('AdamW', dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
]


@pytest.mark.optional
@pytest.mark.parametrize('name, options', TORCH_OPTIMIZERS)
def test_optimizers_match_torch(name, options):
    """5 steps of a least-squares problem with gradient clipping, in both frameworks."""
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    w0, b0 = rng.standard_normal((2, 3)), rng.standard_normal(2)

    tw, tb = (torch.tensor(a, requires_grad=True) for a in (w0, b0))
    topt = getattr(torch.optim, name)([{'params': [tw]}, {'params': [tb], 'lr': 0.01}], **options)
    lw, lb = (nn.Parameter(tl.tensor(a.copy())) for a in (w0, b0))
    lopt = {'SGD': SGD, 'Adam': Adam, 'AdamW': AdamW}[name](
        [{'params': [lw]}, {'params': [lb], 'lr': 0.01}], **options)
    tx, ty, lx, ly = torch.tensor(x), torch.tensor(y), tl.tensor(x), tl.tensor(y)
    for _ in range(5):
        topt.zero_grad()
        ((tx @ tw.T + tb - ty) ** 2).mean().backward()
        tnorm = torch.nn.utils.clip_grad_norm_([tw, tb], max_norm=1.0)
        topt.step()
        lopt.zero_grad()
        ((lx @ lw.T + lb - ly) ** 2).mean().backward()
        lnorm = clip_grad_norm_([lw, lb], max_norm=1.0)
        lopt.step()
        assert float(lnorm) == pytest.approx(float(tnorm), rel=1e-12)
    np.testing.assert_allclose(lw.data, tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lb.data, tb.detach().numpy(), rtol=1e-10, atol=1e-12)
    tstate, lstate = topt.state_dict(), lopt.state_dict()
    assert tstate['param_groups'][1]['params'] == lstate['param_groups'][1]['params'] == [1]
    assert sorted(lstate['state']) == sorted(tstate['state'])
    for key, value in lstate['state'].get(0, {}).items():
        np.testing.assert_allclose(np.asarray(value), np.asarray(tstate['state'][0][key]),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.optional
@pytest.mark.parametrize('make', [
    lambda m, o: m.StepLR(o, 3, gamma=0.5),
    lambda m, o: m.LinearLR(o, 0.2, 0.9, total_iters=4),
    lambda m, o: m.CosineAnnealingLR(o, 5, eta_min=0.01),
    lambda m, o: m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=3),
                                    m.CosineAnnealingLR(o, 8)], milestones=[3]),
], ids=['StepLR', 'LinearLR', 'CosineAnnealingLR', 'SequentialLR'])
def test_schedulers_match_torch(make):
    torch = pytest.importorskip('torch')
    import warnings

    from tensorlite.optim import lr_scheduler
    topt = torch.optim.SGD([{'params': [torch.zeros(1)], 'lr': lr} for lr in (0.1, 0.03)], lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # torch warns when no optimizer.step() ran
        ts = make(torch.optim.lr_scheduler, topt)
        want = []
        for _ in range(14):
            want.append(ts.get_last_lr())
            topt.step()
            ts.step()
    got = _sequence(make(lr_scheduler, _optimizer((0.1, 0.03))), 14)
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, atol=1e-15)


def test_optimizer_is_the_base_of_all():
    assert all(issubclass(cls, Optimizer) for cls in (SGD, Adam, AdamW))

"""Do the fused optimizer kernels earn their place?  A training step of the lesson's tiny models
with the fused update (kernels/cpu/optim.py, one call per parameter) against the NumPy expressions
the optimizers ran before (copied below as `BeforeSGD`, `BeforeAdamW`), and against one call per
parameter group (a Numba loop over numba.typed.List of the group's arrays):

    python benchmarks/bench_optim.py [--repeats 7] [--models c3d timesformer]

For each model (tiny preset, 4 classes, batch 16, clips (16, 3, 16, 32, 32), float32) and each
optimizer (SGD with momentum 0.9, AdamW): the optimizer step alone, then the whole training step
(forward, cross entropy, backward, step); last, the step alone on one parameter of 4M values.
The candidates run interleaved (A, B, C, A, B, C, ...)
on one model and the medians are printed with their ratio to 'before': the machine is shared and
noisy, so only ratios measured side by side mean anything.
"""
import argparse

import numba
import numpy as np
from numba import typed

import tensorlite as tl
import tensorlite.functional as F
from _timing import interleaved_medians
from tensorlite import backend
from tensorlite.kernels.cpu import optim as K
from tensorlite.models import build_model
from tensorlite.optim import SGD, AdamW


# ---- before: the NumPy expressions of tensorlite/optim before the kernels (commit e5a0c12) -------
class BeforeSGD(SGD):
    def _update_group(self, group):
        lr, momentum, dampening = group['lr'], group['momentum'], group['dampening']
        weight_decay, nesterov = group['weight_decay'], group['nesterov']
        maximize = group['maximize']
        for p, grad in self._params_with_grad(group):
            d_p = -grad if maximize else grad
            if weight_decay != 0:
                d_p = d_p + weight_decay * p.data
            if momentum != 0:
                state = self.state[p]
                buf = state.get('momentum_buffer')
                if buf is None:
                    buf = state['momentum_buffer'] = d_p.copy()
                else:
                    buf *= momentum
                    buf += (1 - dampening) * d_p
                d_p = d_p + momentum * buf if nesterov else buf
            p.sub_(lr * d_p)


class BeforeAdamW(AdamW):
    def _update_group(self, group):
        lr, (beta1, beta2), eps = group['lr'], group['betas'], group['eps']
        weight_decay, amsgrad, maximize = group['weight_decay'], group['amsgrad'], group['maximize']
        for p, grad in self._params_with_grad(group):
            xp = backend.array_module(p.data)
            state = self.state[p]
            if not state:
                state['step'] = 0
                state['exp_avg'] = xp.zeros_like(p.data)
                state['exp_avg_sq'] = xp.zeros_like(p.data)
            if amsgrad and 'max_exp_avg_sq' not in state:
                state['max_exp_avg_sq'] = xp.zeros_like(p.data)
            state['step'] += 1
            step = state['step']
            g = -grad if maximize else grad
            if weight_decay != 0:
                if self._decoupled_weight_decay:
                    p.mul_(1 - lr * weight_decay)
                else:
                    g = g + weight_decay * p.data
            m, v = state['exp_avg'], state['exp_avg_sq']
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
            if amsgrad:
                v_max = state['max_exp_avg_sq']
                xp.maximum(v_max, v, out=v_max)
                v = v_max
            denom = xp.sqrt(v) / bias_correction2_sqrt + eps
            p.sub_((lr / bias_correction1) * m / denom)


# ---- the alternative: one call per group over typed lists of its arrays --------------------------
@numba.njit
def _sgd_group(ps, gs, bufs, lr, momentum, one_minus_dampening, weight_decay, first):
    for k in range(len(ps)):
        K._sgd(ps[k], gs[k], bufs[k], lr, momentum, one_minus_dampening, weight_decay, True, False,
               False, first)


@numba.njit
def _adam_group(ps, gs, ms, vs, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                bias_correction2_sqrt, eps, weight_decay, decay):
    for k in range(len(ps)):
        K._adam(ps[k], gs[k], ms[k], vs[k], vs[k][:0], beta1, one_minus_beta1, beta2,
                one_minus_beta2, step_size, bias_correction2_sqrt, eps, weight_decay, decay, True,
                False, False)


def _flat_list(arrays):
    return typed.List([a.reshape(-1) for a in arrays])


class GroupedSGD(SGD):
    """SGD with momentum (no nesterov/maximize), all parameters with gradients: the bench case."""

    def _update_group(self, group):
        params = [p for p in group['params'] if p.grad is not None]
        first = not hasattr(self, '_lists')
        if first:
            for p in params:
                self.state[p]['momentum_buffer'] = np.empty_like(p.data)
            self._lists = (_flat_list(p.data for p in params),
                                   _flat_list(self.state[p]['momentum_buffer'] for p in params))
        ps, bufs = self._lists
        _sgd_group(ps, _flat_list(p.grad.data for p in params), bufs,
                   *K.sgd_scalars(params[0].dtype, group['lr'], group['momentum'],
                                  group['dampening'], group['weight_decay']), first)
        for p in params:
            self._written(p)


class GroupedAdamW(AdamW):
    """AdamW without amsgrad/maximize, all parameters with gradients and one step count."""

    def _update_group(self, group):
        params = [p for p in group['params'] if p.grad is not None]
        if not hasattr(self, '_lists'):
            for p in params:
                self.state[p].update(exp_avg=np.zeros_like(p.data),
                                     exp_avg_sq=np.zeros_like(p.data), step=0)
            self._lists = tuple(_flat_list(a) for a in (
                [p.data for p in params], [self.state[p]['exp_avg'] for p in params],
                [self.state[p]['exp_avg_sq'] for p in params]))
        for p in params:
            self.state[p]['step'] += 1
        ps, ms, vs = self._lists
        beta1, beta2 = group['betas']
        _adam_group(ps, _flat_list(p.grad.data for p in params), ms, vs,
                    *K.adam_scalars(params[0].dtype, self.state[params[0]]['step'], group['lr'],
                                    beta1, beta2, group['eps'], group['weight_decay']))
        for p in params:
            self._written(p)


OPTIMIZERS = {
    'SGD(momentum=0.9)': (dict(lr=0.01, momentum=0.9), BeforeSGD, SGD, GroupedSGD),
    'AdamW': (dict(lr=1e-3), BeforeAdamW, AdamW, GroupedAdamW),
}


def bench(model_name, repeats):
    tl.manual_seed(0)
    model = build_model(model_name, num_classes=4)
    model.train()
    rng = np.random.default_rng(0)
    clip = tl.tensor(rng.standard_normal((16, 3, 16, 32, 32), dtype=np.float32))
    labels = tl.tensor(rng.integers(0, 4, 16))
    params = list(model.parameters())
    print(f"{model_name}: {len(params)} parameters, {sum(p.numel() for p in params):,} values")

    def backward():
        for p in params:
            p.grad = None
        F.cross_entropy(model(clip), labels).backward()

    for opt_name, (options, *classes) in OPTIMIZERS.items():
        opts = {label: cls(params, **options)
                for label, cls in zip(('before', 'fused', 'grouped'), classes)}
        backward()
        step_alone = interleaved_medians([(k, o.step) for k, o in opts.items()], repeats * 10)

        def train_step(opt):
            return lambda: (backward(), opt.step())
        whole = interleaved_medians([(k, train_step(o)) for k, o in opts.items()], repeats)
        for what, med, unit in (('optimizer step', step_alone, 1e6), ('training step', whole, 1e3)):
            cells = '   '.join(f"{k} {med[k] * unit:8.1f}" + ('' if k == 'before' else
                               f" ({med[k] / med['before']:.2f}x)") for k in opts)
            print(f"  {opt_name:18s} {what:15s} {'us' if unit == 1e6 else 'ms'}:  {cells}")


def bench_large(repeats, values=1 << 22):
    """The optimizer step alone on one parameter of `values` float32 values (a 2048 x 2048 linear
    layer): where the update is memory-bound and the passes over memory, not the calls, count."""
    rng = np.random.default_rng(0)
    w = tl.nn.Parameter(tl.tensor(rng.standard_normal(values, dtype=np.float32)))
    w.grad = tl.tensor(rng.standard_normal(values, dtype=np.float32))
    print(f"one parameter of {values:,} values")
    for opt_name, (options, *classes) in OPTIMIZERS.items():
        opts = {label: cls([w], **options)
                for label, cls in zip(('before', 'fused'), classes)}
        med = interleaved_medians([(k, o.step) for k, o in opts.items()], repeats)
        print(f"  {opt_name:18s} optimizer step  ms:  before {med['before'] * 1e3:8.2f}   fused "
              f"{med['fused'] * 1e3:8.2f} ({med['fused'] / med['before']:.2f}x)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--models', nargs='+', default=['c3d', 'timesformer'])
    args = ap.parse_args()
    print(f"numba {numba.__version__}, {numba.get_num_threads()} threads")
    for name in args.models:
        bench(name, args.repeats)
    bench_large(args.repeats)


if __name__ == '__main__':
    main()

"""Adam and AdamW, as `torch.optim.Adam` and `torch.optim.AdamW` compute them (their
single-tensor path)."""
from .. import backend, kernels
from .optimizer import Optimizer, check_hyperparameter


class Adam(Optimizer):
    """For each parameter p with gradient g, step t = 1, 2, ... computes

        g = -g                                      if maximize
        g = g + weight_decay * p                    (Adam: L2 penalty, folded into the gradient)
        m = beta1 * m + (1 - beta1) * g             first moment  ('exp_avg')
        v = beta2 * v + (1 - beta2) * g * g         second moment ('exp_avg_sq')
        v_max = max(v_max, v)                       if amsgrad     ('max_exp_avg_sq')
        p = p - lr / (1 - beta1**t) * m / (sqrt(v or v_max) / sqrt(1 - beta2**t) + eps)

    The bias corrections divide m and sqrt(v) as PyTorch does: eps is added after sqrt(v) has
    been corrected.  State per parameter: 'step' (int), 'exp_avg', 'exp_avg_sq' and, with amsgrad,
    'max_exp_avg_sq' (arrays like p).
    """

    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, maximize=False):
        owner = type(self).__name__
        lr = check_hyperparameter(owner, 'lr', lr)
        eps = check_hyperparameter(owner, 'eps', eps)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Invalid beta parameters: {owner}: betas must be a pair (beta1, "
                             f"beta2), got {betas!r}")
        betas = tuple(check_hyperparameter(owner, f'betas[{i}]', beta, high=1.0)
                      for i, beta in enumerate(betas))
        weight_decay = check_hyperparameter(owner, 'weight_decay', weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

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
            g = self._fused_grad(p, grad)
            if g is None:
                self._update_with_numpy(group, p, grad, state)
                continue
            kernels.optim(p.data).adam_step(
                p.data, g, state['exp_avg'], state['exp_avg_sq'],
                state['max_exp_avg_sq'] if amsgrad else None, state['step'], lr, beta1, beta2,
                eps, weight_decay, self._decoupled_weight_decay, amsgrad, maximize)
            self._written(p)

    def _update_with_numpy(self, group, p, grad, state):
        """The same step in NumPy/CuPy expressions, for arrays the kernels do not take."""
        lr, (beta1, beta2), eps = group['lr'], group['betas'], group['eps']
        weight_decay, step = group['weight_decay'], state['step']
        xp = backend.array_module(p.data)
        g = -grad if group['maximize'] else grad
        if weight_decay != 0:
            if self._decoupled_weight_decay:
                p.mul_(1 - lr * weight_decay)       # AdamW: shrink p, outside the moments
            else:
                g = g + weight_decay * p.data

        m, v = state['exp_avg'], state['exp_avg_sq']
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)

        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        if group['amsgrad']:
            v_max = state['max_exp_avg_sq']
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        denom = xp.sqrt(v) / bias_correction2_sqrt + eps
        p.sub_((lr / bias_correction1) * m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): before the Adam step,

        p = p - lr * weight_decay * p

    instead of adding weight_decay * p to the gradient, so the decay is not rescaled by the
    second-moment estimate.  Everything else, and the state, is Adam's.
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

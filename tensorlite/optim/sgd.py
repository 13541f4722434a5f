"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay, as
`torch.optim.SGD` computes it."""
from .. import backend, kernels
from .optimizer import Optimizer, check_hyperparameter


class SGD(Optimizer):
    """For each parameter p with gradient g, one step computes

        g = -g                                     if maximize
        g = g + weight_decay * p                   (L2 penalty, folded into the gradient)
        b = g                                      on the first step (momentum != 0): the
                                                   gradient itself, undamped (PyTorch's choice)
        b = momentum * b + (1 - dampening) * g     afterwards
        g = g + momentum * b   if nesterov,   else   g = b
        p = p - lr * g

    State per parameter (only with momentum): 'momentum_buffer', an array like p.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        lr = check_hyperparameter('SGD', 'lr', lr)
        momentum = check_hyperparameter('SGD', 'momentum', momentum)
        dampening = check_hyperparameter('SGD', 'dampening', dampening, high=1.0,
                                         high_inclusive=True)
        weight_decay = check_hyperparameter('SGD', 'weight_decay', weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update_group(self, group):
        lr, momentum, dampening = group['lr'], group['momentum'], group['dampening']
        weight_decay, nesterov = group['weight_decay'], group['nesterov']
        maximize = group['maximize']
        for p, grad in self._params_with_grad(group):
            g = self._fused_grad(p, grad)
            if g is None:
                self._update_with_numpy(group, p, grad)
                continue
            buf = self.state[p].get('momentum_buffer') if momentum != 0 else None
            first = momentum != 0 and buf is None
            if first:                   # the kernel writes the first gradient into it
                buf = backend.array_module(p.data).empty_like(p.data)
            kernels.optim(p.data).sgd_step(p.data, g, buf, lr, momentum, dampening, weight_decay,
                                           nesterov, maximize, first)
            self._written(p)
            if first:
                self.state[p]['momentum_buffer'] = buf

    def _update_with_numpy(self, group, p, grad):
        """The same step in NumPy/CuPy expressions, for arrays the kernels do not take."""
        lr, momentum, dampening = group['lr'], group['momentum'], group['dampening']
        d_p = -grad if group['maximize'] else grad
        if group['weight_decay'] != 0:
            d_p = d_p + group['weight_decay'] * p.data
        if momentum != 0:
            state = self.state[p]
            buf = state.get('momentum_buffer')
            if buf is None:
                # the first buffer is the gradient itself, undamped (PyTorch's choice)
                buf = state['momentum_buffer'] = d_p.copy()
            else:
                buf *= momentum
                buf += (1 - dampening) * d_p
            d_p = d_p + momentum * buf if group['nesterov'] else buf
        p.sub_(lr * d_p)

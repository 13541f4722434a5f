"""Learning-rate schedules, as `torch.optim.lr_scheduler`: StepLR, CosineAnnealingLR, LinearLR (the
linear warmup) and SequentialLR, which runs one schedule after another (warmup, then cosine).

A scheduler changes `group['lr']` of its optimizer's parameter groups; call `scheduler.step()` once
per epoch (or per iteration), after `optimizer.step()`.  Each schedule computes the next rate from
the current one (PyTorch's recursive, "chainable" forms), so the sequences are PyTorch's, to
rounding, and two schedulers on one optimizer compose multiplicatively.

    optimizer = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    warmup = LinearLR(optimizer, start_factor=0.1, total_iters=5)
    cosine = CosineAnnealingLR(optimizer, T_max=95)
    scheduler = SequentialLR(optimizer, [warmup, cosine], milestones=[5])

Resuming from a checkpoint: build the optimizer and the scheduler, then load the optimizer's state
dict (it holds the current `lr` of every group), then the scheduler's.  Building a scheduler
overwrites the groups' `lr`, so it must come before the optimizer's `load_state_dict`.
"""
import bisect
import copy
import math
import warnings

from .optimizer import Optimizer

# PyTorch's bookkeeping entries that a scheduler state dict saved by PyTorch may carry and that
# mean nothing here.
_FOREIGN_KEYS = frozenset({'_get_lr_called_within_step', 'verbose'})


class LRScheduler:
    """Base class of the schedulers.  Subclasses implement `get_lr()`: the rates of the groups at
    epoch `self.last_epoch`, computed from the current ones; and may implement
    `_get_closed_form_lr()`: the same rates computed from `self.base_lrs` alone.

    `last_epoch=-1` (the default) starts a schedule: each group's current `lr` is remembered as
    `group['initial_lr']`, the base rate.  A scheduler then takes its first step, to epoch 0.
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"a scheduler needs an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault('initial_lr', group['lr'])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if 'initial_lr' not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   f"when resuming a scheduler with last_epoch={last_epoch}; load "
                                   "the optimizer's state dict first")
        self.base_lrs = [group['initial_lr'] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Step to the first epoch of the schedule (or, when resuming, to the next one)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The rate of each group at epoch `last_epoch`, from the rates of the epoch before."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr()")

    def get_last_lr(self):
        """The rates this scheduler set last, one per parameter group."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance the schedule by one epoch and set each group's `lr`.  `epoch` (deprecated in
        PyTorch, kept for compatibility) jumps to that epoch with the closed form."""
        self._step_count += 1
        if epoch is not None:
            warnings.warn("passing an epoch to scheduler.step() is deprecated (as in PyTorch); "
                          "call step() once per epoch instead", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, '_get_closed_form_lr', None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group['lr'] = lr
        self._last_lr = [group['lr'] for group in self.optimizer.param_groups]

    # ---- state dict ------------------------------------------------------------------------------
    def state_dict(self):
        """Every attribute but the optimizer: plain numbers and lists, JSON-serializable."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key not in ('optimizer', '_schedulers')}

    def load_state_dict(self, state_dict):
        """Restore the attributes saved by `state_dict()` of a scheduler of the same type on an
        optimizer with as many parameter groups; a mismatch raises ValueError naming it."""
        self._check_state_dict(state_dict)
        self._apply_state_dict(state_dict)

    def _check_state_dict(self, state_dict):
        expected = set(self.state_dict()) - {'_is_initial', '_schedulers'}
        given = set(state_dict) - {'_schedulers'}
        missing = sorted(expected - given)
        unexpected = sorted(given - expected - _FOREIGN_KEYS - {'_is_initial'})
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected} (was the state saved from another "
                             "scheduler?)")
        n_groups = len(self.optimizer.param_groups)
        for key in ('base_lrs', '_last_lr'):
            if key in state_dict and len(state_dict[key]) != n_groups:
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key!r} has "
                                 f"{len(state_dict[key])} entries, but the optimizer has "
                                 f"{n_groups} parameter group(s)")

    def _apply_state_dict(self, state_dict):
        keys = set(self.state_dict()) - {'_is_initial', '_schedulers'}
        self.__dict__.update({key: copy.deepcopy(state_dict[key]) for key in keys})


class StepLR(LRScheduler):
    """Multiply the rate by `gamma` every `step_size` epochs:

        lr(epoch) = base_lr * gamma ** (epoch // step_size)
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size}")
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group['lr'] for group in self.optimizer.param_groups]
        return [group['lr'] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the base rate by a factor that goes linearly from `start_factor` (epoch 0) to
    `end_factor` (epoch `total_iters` and after): with start_factor < 1 = end_factor, a linear
    warmup.

        t = min(epoch, total_iters) / total_iters
        lr(epoch) = base_lr * (start_factor + (end_factor - start_factor) * t)

    Computed, as in PyTorch, by multiplying the current rate by the ratio of consecutive factors.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(f"start_factor must be in (0, 1], got {start_factor}")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
        if int(total_iters) != total_iters or total_iters < 1:
            raise ValueError(f"total_iters must be a positive integer, got {total_iters}")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group['lr'] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group['lr'] for group in groups]
        # factor(e) / factor(e - 1), written over a common denominator
        slope = self.end_factor - self.start_factor
        ratio = 1.0 + slope / (self.total_iters * self.start_factor + (self.last_epoch - 1) * slope)
        return [group['lr'] * ratio for group in groups]

    def _get_closed_form_lr(self):
        factor = self.start_factor + ((self.end_factor - self.start_factor)
                                      * min(self.total_iters, self.last_epoch) / self.total_iters)
        return [base_lr * factor for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the rate from the base rate to `eta_min` along half a cosine over `T_max` epochs
    (SGDR without restarts; past T_max the cosine climbs again):

        lr(epoch) = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2

    Computed, as in PyTorch, from the current rate: lr(e) - eta_min = (lr(e-1) - eta_min) *
    (1 + cos(pi e / T_max)) / (1 + cos(pi (e-1) / T_max)), so it follows rates changed by others.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups, eta_min, T_max = self.optimizer.param_groups, self.eta_min, self.T_max
        e = self.last_epoch
        if self._is_initial:
            return [group['lr'] for group in groups]
        if self._step_count == 1 and e > 0:      # resumed at epoch e: no previous rate to follow
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(e * math.pi / T_max)) / 2
                    for base_lr in self.base_lrs]
        if (e - 1 - T_max) % (2 * T_max) == 0:   # at the trough the ratio below would be 0 / 0
            return [group['lr'] + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
                    for base_lr, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * e / T_max)) / (1 + math.cos(math.pi * (e - 1) / T_max))
                * (group['lr'] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run `schedulers` one after another: `schedulers[i + 1]` takes over at epoch
    `milestones[i]`, starting again from its own epoch 0 (so from the base rates).

        warmup = LinearLR(opt, start_factor=0.01, total_iters=5)
        cosine = CosineAnnealingLR(opt, T_max=45)
        SequentialLR(opt, [warmup, cosine], milestones=[5])   # 5 epochs of warmup, then cosine
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers, milestones = list(schedulers), list(milestones)
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got none")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"SequentialLR: schedulers[{i}] is a {type(scheduler).__name__}, "
                                "not a scheduler")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR expects all schedulers to belong to the same "
                                 f"optimizer, but schedulers[{i}] ({type(scheduler).__name__}) "
                                 "has another one")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"SequentialLR milestones must increase, got {milestones}")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        self.base_lrs = [group['initial_lr'] for group in optimizer.param_groups]

        # Building each scheduler took a first step; undo them all, and start only the one that
        # runs at epoch 0, from the base rates.
        for group in optimizer.param_groups:
            group['lr'] = group['initial_lr']
        self._recursive_undo()
        idx = bisect.bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def _recursive_undo(self, scheduler=None):
        scheduler = self if scheduler is None else scheduler
        if hasattr(scheduler, '_schedulers'):
            for s in scheduler._schedulers:
                self._recursive_undo(s)
        else:
            scheduler.last_epoch -= 1

    def step(self):
        """Advance by one epoch: step the scheduler in charge, or start the next one at epoch 0
        when a milestone is reached."""
        self.last_epoch += 1
        idx = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        """Its own attributes, and under '_schedulers' the state dict of each scheduler."""
        state = super().state_dict()
        state['_schedulers'] = [s.state_dict() for s in self._schedulers]
        return state

    def _check_state_dict(self, state_dict):
        super()._check_state_dict(state_dict)
        saved = state_dict.get('_schedulers')
        if saved is None or len(saved) != len(self._schedulers):
            n = 'no' if saved is None else len(saved)
            raise ValueError(f"SequentialLR.load_state_dict: the state dict holds {n} scheduler "
                             f"states, this SequentialLR has {len(self._schedulers)} schedulers")
        for i, (scheduler, s) in enumerate(zip(self._schedulers, saved)):
            try:
                scheduler._check_state_dict(s)
            except ValueError as e:
                raise ValueError(f"SequentialLR.load_state_dict: schedulers[{i}]: {e}") from None

    def _apply_state_dict(self, state_dict):
        super()._apply_state_dict(state_dict)
        for scheduler, s in zip(self._schedulers, state_dict['_schedulers']):
            scheduler._apply_state_dict(s)

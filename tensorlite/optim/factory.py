"""Optimizers and learning-rate schedules by name: the one factory `tensorlite train` and
`tensorlite compare` build theirs with.

    optimizer = optim.create_optimizer('adamw', model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = optim.create_scheduler('cosine', optimizer, epochs=10, warmup_epochs=1)
"""
from . import lr_scheduler as S
from .adam import Adam, AdamW
from .sgd import SGD

OPTIMIZERS = ('sgd', 'adam', 'adamw')
SCHEDULERS = ('none', 'step', 'cosine')


def create_optimizer(name, parameters, lr, weight_decay=None):
    """'sgd' (momentum 0.9), 'adam' or 'adamw' over `parameters`; weight_decay None keeps the
    optimizer's own default."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    kwargs = {} if weight_decay is None else {'weight_decay': weight_decay}
    if name == 'sgd':
        return SGD(parameters, lr=lr, momentum=0.9, **kwargs)
    return (Adam if name == 'adam' else AdamW)(parameters, lr=lr, **kwargs)


def create_scheduler(name, optimizer, epochs, warmup_epochs=0):
    """A schedule stepped once per epoch, or None: 'none' a constant rate; 'step' x0.1 after each
    third of the epochs past the warmup; 'cosine' half a cosine from the rate to 0 over the epochs
    past the warmup. warmup_epochs > 0 first raises the rate linearly from rate / (warmup + 1) to
    the rate (LinearLR), then hands over (SequentialLR)."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    rest = max(1, epochs - warmup_epochs)
    main = {'none': None,
            'step': lambda: S.StepLR(optimizer, step_size=max(1, rest // 3), gamma=0.1),
            'cosine': lambda: S.CosineAnnealingLR(optimizer, T_max=rest)}[name]
    if not warmup_epochs:
        return main() if main else None
    warmup = S.LinearLR(optimizer, start_factor=1.0 / (warmup_epochs + 1), total_iters=warmup_epochs)
    if main is None:
        return warmup
    return S.SequentialLR(optimizer, [warmup, main()], milestones=[warmup_epochs])

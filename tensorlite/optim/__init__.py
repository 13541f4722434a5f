"""`tensorlite.optim`: optimizers, learning-rate schedules and gradient clipping, as `torch.optim`.

    import tensorlite.optim as optim
    optimizer = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    ...
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    optimizer.zero_grad()

    optimizer = optim.create_optimizer('adamw', model.parameters(), lr=1e-3)   # by name
"""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .clip import clip_grad_norm_  # noqa: F401
from .factory import OPTIMIZERS, SCHEDULERS, create_optimizer, create_scheduler  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401

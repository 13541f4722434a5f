"""`tensorlite.nn.utils`, where PyTorch users look for clip_grad_norm_ (defined in tensorlite.optim)."""
from ..optim.clip import clip_grad_norm_  # noqa: F401

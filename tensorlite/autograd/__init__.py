"""Autograd: Tensor, Function, the graph walk, grad modes and gradient checking."""
from .engine import backward, grad  # noqa: F401
from .function import Context, Function  # noqa: F401
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: F401
from .tensor import Tensor, increment_version  # noqa: F401

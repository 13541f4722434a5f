"""Whether operations record the graph: `no_grad`, `enable_grad`, `set_grad_enabled`.

The flag is thread-local (as in PyTorch), so a data-loader thread cannot switch recording off for
the training thread.  Each context manager also works as a decorator.
"""
import functools
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, 'enabled', True)


def _set(enabled):
    _state.enabled = bool(enabled)


class _GradMode:
    enabled = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.enabled)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Operations inside do not record the graph: results have requires_grad=False."""
    enabled = False


class enable_grad(_GradMode):
    """Switch recording back on inside a `no_grad` block."""
    enabled = True


class set_grad_enabled:
    """`with set_grad_enabled(flag):` -- recording on or off by a boolean."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.mode)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

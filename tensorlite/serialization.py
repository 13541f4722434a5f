"""tl.save and tl.load, where PyTorch users look for them, for state dicts -- without pickle.

    tl.save(model.state_dict(), 'weights.npz')
    model.load_state_dict(tl.load('weights.npz'))
    tl.save(optimizer.state_dict(), 'opt.npz'); optimizer.load_state_dict(tl.load('opt.npz'))

The file is a checkpoint archive (tensorlite/train/checkpoint.py: an uncompressed .npz with a JSON
description of the nested structure), written atomically and verified entry by entry when read.
What it can hold: arrays, Tensors, numbers, strings, bools, None, and lists, tuples and dicts of
those -- what state dicts are made of.  Tensors come back as NumPy arrays, which load_state_dict
takes.  A Module, an optimizer or any object that would need pickle is refused: save its
state_dict() instead.  The path is used as given (no '.npz' is appended).
"""
import errno
import os


def save(obj, f):
    """Write `obj` (a state dict, or any nesting of dicts, lists and tuples of arrays, Tensors,
    numbers, strings, bools and None) to the file `f`, atomically.  TypeError, before anything is
    written, for a value that would need pickle (it names where in `obj` it is); FileNotFoundError
    if `f`'s folder does not exist."""
    from .train.checkpoint import save_object
    path = _path('save', f)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"tl.save: the folder {folder!r} does not exist "
                                "(create it first)", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "tl.save: the path is a directory; give a file "
                                "name, e.g. weights.npz", path)
    try:
        save_object(path, obj)
    except TypeError as error:
        raise TypeError(f"tl.save: {error}") from None


def load(f, map_location=None, weights_only=None):
    """The object tl.save wrote to `f`: dicts, lists and tuples as they were saved, arrays as NumPy
    arrays (so `model.load_state_dict(tl.load(f))` works).  Given a training checkpoint
    (tensorlite.train.save_checkpoint), a dict of its sections ('model', 'optimizer', ...).
    map_location: None or 'cpu' (arrays are NumPy arrays; load_state_dict copies them to the
    model's device).  weights_only is accepted for PyTorch scripts: nothing is ever unpickled.
    FileNotFoundError for a missing file; tensorlite.train.CheckpointError, naming the file, for
    one that is not such a file or is damaged."""
    from .train.checkpoint import load_object
    path = _path('load', f)
    if map_location not in (None, 'cpu'):
        raise ValueError(f"tl.load: map_location must be None or 'cpu' (the arrays come back as "
                         f"NumPy arrays; Module.load_state_dict moves them to the model's "
                         f"device), got {map_location!r}")
    if not os.path.lexists(path):
        raise FileNotFoundError(errno.ENOENT, "tl.load: no such file", path)
    return load_object(path)


def _path(op, f):
    try:
        return os.fspath(f)
    except TypeError:
        raise TypeError(f"tl.{op}: expected a file path (str or os.PathLike), got "
                        f"{type(f).__name__}; file objects are not supported") from None

"""Pretrained weights from the ecosystem: PyTorchVideo's and torchvision's state dicts, converted.

    from tensorlite.models import build_model, convert_state_dict
    state = convert_state_dict('torchvision', 'r3d_18', torch_state_dict)    # or a dict of arrays
    net = build_model('r3d_18', num_classes=400, preset='paper')
    net.load_state_dict(state)

A model registers how a source's keys map onto its own with `register_conversion(source, name,
rename)` (next to its @register_model); most reference models are named as their source, so
`rename` is None and only the values change.  `convert_state_dict` returns NumPy arrays under this
model's keys, in its order, and checks them against the paper-preset model it would load into,
built with the checkpoint's number of classes: a key it cannot place, a key of the model the
checkpoint lacks, or a shape that differs raises ConversionError listing every one of them.
Nothing is dropped silently.  The `tensorlite convert` command does the same for a file.
"""
import numpy as np

SOURCES = ('pytorchvideo', 'torchvision')

_CONVERSIONS = {}       # (source, name) -> (rename or None, head key, build overrides)


class ConversionError(ValueError):
    """A state dict that does not convert: the message lists every key that is in the way."""


def register_conversion(source, name, head, rename=None, **overrides):
    """Declare that `source`'s state dict of its model `name` loads into build_model(name,
    num_classes, preset='paper', **overrides).  head: the key (ours) of the classifier's weight,
    whose first dim is the number of classes; rename: a function from the source's key to ours
    (None: the same names)."""
    if source not in SOURCES:
        raise ValueError(f"register_conversion: source must be one of {', '.join(SOURCES)}, "
                         f"got {source!r}")
    _CONVERSIONS[(source, name)] = (rename, head, overrides)


def conversions():
    """The (source, model name) pairs convert_state_dict knows, sorted."""
    from .registry import _load_all
    _load_all()
    return sorted(_CONVERSIONS)


def conversion_head(source, name):
    """The key (ours) of the classifier weight of a registered conversion: its first dim is the
    number of classes."""
    conversions()
    if (source, name) not in _CONVERSIONS:
        raise ValueError(f"conversion_head: no conversion of {name!r} from {source!r}")
    return _CONVERSIONS[(source, name)][1]


def _as_array(value, key):
    """A NumPy array of a tensor-like value (a NumPy array, a torch tensor, a tensorlite Tensor)."""
    if hasattr(value, 'detach') and hasattr(value, 'cpu'):     # torch or tensorlite: on the CPU
        value = value.detach().cpu()
    try:
        return np.asarray(value)
    except Exception as e:
        raise ConversionError(f"convert_state_dict: the value of {key!r} ({type(value).__name__}) "
                              f"is not an array: {e}") from None


def _listing(keys, limit=20):
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else '')


def convert_state_dict(source, name, state_dict):
    """`source`'s ('pytorchvideo' or 'torchvision') state dict of model `name` as a tensorlite state
    dict for build_model(name, num_classes, preset='paper'): {key: NumPy array}, keys renamed where
    the names differ, values as they were (dtypes kept).  ConversionError lists what cannot be
    placed, what is missing and what has another shape."""
    from .registry import _load_all, build_model, list_models
    if source not in SOURCES:
        raise ValueError(f"convert_state_dict: source must be one of {', '.join(SOURCES)}, got "
                         f"{source!r}")
    _load_all()
    if (source, name) not in _CONVERSIONS:
        known = [n for s, n in sorted(_CONVERSIONS) if s == source]
        what = ('no registered model' if name not in list_models() else
                'a model without a conversion')
        raise ValueError(f"convert_state_dict: {name!r} is {what} from {source}; the {source} "
                         f"models it converts: {', '.join(known)}")
    if not hasattr(state_dict, 'items'):
        raise TypeError(f"convert_state_dict: state_dict must be a mapping of names to arrays, got "
                        f"{type(state_dict).__name__}")
    rename, head, overrides = _CONVERSIONS[(source, name)]
    converted, clashes = {}, []
    for key, value in state_dict.items():
        ours = key if rename is None else rename(key)
        if ours in converted:
            clashes.append(f"{key} -> {ours}")
        converted[ours] = _as_array(value, key)
    if clashes:
        raise ConversionError(f"convert_state_dict: several {source} keys map to one key of "
                              f"{name!r}: {_listing(clashes)}")
    if head not in converted or converted[head].ndim != 2:
        raise ConversionError(f"convert_state_dict: no classifier weight {head!r} (2-D) in the "
                              f"state dict: not a {source} {name} checkpoint (its keys begin "
                              f"{_listing(list(state_dict)[:5])})")
    num_classes = int(converted[head].shape[0])
    expected = {k: tuple(v.shape) for k, v in build_model(
        name, num_classes, preset='paper', **overrides).state_dict().items()}
    unknown = [k for k in converted if k not in expected]
    missing = [k for k in expected if k not in converted]
    shapes = [f"{k} {tuple(converted[k].shape)} (expected {expected[k]})"
              for k in expected if k in converted and tuple(converted[k].shape) != expected[k]]
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} key(s) with no place in {name!r}: {_listing(unknown)}")
    if missing:
        problems.append(f"{len(missing)} key(s) of {name!r} missing: {_listing(missing)}")
    if shapes:
        problems.append(f"{len(shapes)} shape(s) differ: {_listing(shapes)}")
    if problems:
        raise ConversionError(f"convert_state_dict({source!r}, {name!r}): " + '; '.join(problems)
                              + f" (the {source} models it converts: "
                              + ', '.join(n for s, n in sorted(_CONVERSIONS) if s == source) + ')')
    return {k: converted[k] for k in expected}


def read_state_dict(path):
    """The state dict in a file, as {key: NumPy array}: a .npz of arrays (np.savez; read without
    pickle), or a PyTorch .pt/.pth/.pyth file when torch is installed (torch.load with
    weights_only=True: tensors and containers only, never pickled code).  A checkpoint that wraps the weights in
    'state_dict', 'model_state' or 'model' gives those (the other entries, e.g. an optimizer's, are
    named in the returned dict's `skipped` attribute).  FileNotFoundError, or ValueError naming the
    file and what it holds."""
    import os
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == '.npz':
        try:
            with np.load(path, allow_pickle=False) as archive:
                loaded = {k: archive[k] for k in archive.files}
        except Exception as e:
            raise ValueError(f"{path!r} is not a readable .npz of arrays: {e}") from None
    elif ext in ('.pt', '.pth', '.pyth'):
        try:
            import torch
        except ImportError:
            raise ValueError(f"{path!r}: reading a PyTorch file needs torch (pip install torch); "
                             f"or save its state dict as a .npz of arrays") from None
        try:
            loaded = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise ValueError(f"{path!r} cannot be read as a PyTorch state dict with "
                             f"weights_only=True (tensors and containers only): {e}") from None
    else:
        raise ValueError(f"{path!r}: expected a .npz of arrays or a PyTorch .pt, .pth or .pyth "
                         f"file")
    skipped = []
    if isinstance(loaded, dict):
        for wrapper in ('state_dict', 'model_state', 'model'):
            if isinstance(loaded.get(wrapper), dict):
                skipped = [k for k in loaded if k != wrapper]
                loaded = loaded[wrapper]
                break
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ValueError(f"{path!r} holds {type(loaded).__name__}, not a state dict (names to "
                         f"tensors)")
    state = _StateDict((k, _as_array(v, k)) for k, v in loaded.items())
    state.skipped = skipped
    return state


class _StateDict(dict):
    """A dict that also says which entries of the file were not weights (`skipped`)."""

"""Checkpoints: everything a training run needs to resume, in one `.npz` file.

    save_checkpoint('run/last.npz', model, optimizer, scheduler, epoch=k,
                    rng_state=capture_rng_state(), config={'lr': 0.1, 'size': (112, 112)})
    info = load_checkpoint('run/last.npz', model, optimizer, scheduler)
    restore_rng_state(info['rng_state'])
    start_epoch = info['epoch'] + 1       # epochs numbered from 1, as fit numbers them

The file format
---------------
A checkpoint is a NumPy `.npz` archive (an uncompressed zip of `.npy` files) holding

* every array of the run as its own entry: the model's state dict, the optimizer's and the
  scheduler's state arrays, the random generators' state arrays, and arrays found in `config` or
  `extra`.  Entry names are readable labels such as ``model/layer1.0.conv1.weight`` or
  ``optimizer/state/0/exp_avg``; nothing relies on them but the metadata below;
* one reserved entry, ``__checkpoint__``: a 1-D uint8 array of the UTF-8 bytes of a JSON document,
  the metadata.  It records the format (``"format": "tensorlite-checkpoint"``, ``"version": 1``),
  the tensorlite version that wrote it, and the nested structure of every saved value with each
  array replaced by a reference ``{"__array__": "<entry name>"}``.

Keeping the metadata inside the archive makes the checkpoint one file, so one `os.replace` makes
all of it appear at once.  The JSON encodes what JSON itself cannot say with tagged objects:

* ``{"__array__": name}`` an array (with ``"scalar": true``: a NumPy scalar such as
  ``np.float32(1)``);
* ``{"__dict__": [[key, value], ...]}`` a dict with a key that is not a string (optimizer state
  is keyed by parameter index, ``{0: {...}}``) or a string key starting with ``"__"``; other
  dicts are plain JSON objects.  Key order is kept; an OrderedDict comes back as a dict;
* ``{"__tuple__": [...]}`` a tuple, so tuples come back as tuples and lists as lists;
* ``{"__float__": "nan" | "inf" | "-inf"}`` a non-finite float;
* ``{"__int__": "<decimal>"}`` an int beyond 2**53 in magnitude (a random generator's 128-bit
  state), which JSON readers other than Python's would round.

A value that is none of array, Tensor, number, string, bool, None, list, tuple or dict (a set, a
function, an object array) cannot be stored without pickle and is refused when saving, with its
place in the structure named.  Tensors are stored as arrays and come back as NumPy arrays, which
`Module.load_state_dict` accepts.

Objects (tl.save, tl.load)
--------------------------
`save_object(path, obj)` (what `tensorlite.save` calls) writes the same archive for one nested
value of the kinds above, a state dict usually: the metadata holds ``"object"``, the value's
structure, instead of the checkpoint's sections, and the arrays are entries ``obj/<key>``.
`load_object(path)` (`tensorlite.load`) returns that value, arrays as NumPy arrays, with the same
checks as `load_checkpoint`; given a checkpoint it returns its sections as a dict ('model',
'optimizer', 'scheduler', 'epoch', 'rng_state', 'config', 'extra').  `load_checkpoint` refuses an
object file, naming `tensorlite.load`.

Safety
------
Writing is atomic: the archive is written to a temporary file beside the target
(``.<name>.<pid>.<random>.tmp``), flushed and fsync'ed, then `os.replace`d onto the target; on any
error the temporary file is removed, and a process killed mid-save leaves the previous checkpoint
intact.  Such a killed save leaves its temporary file behind; the next save to the same path
removes leftovers whose writing process no longer runs.  Loading reads only the path it is given,
never a temporary file.

Loading verifies every byte before it parses it (`_read`): a regular file only; every zip entry
stored (never inflated), inside the file and matching its CRC-32 (the .npy header included); then a
header with a plain dtype (never objects, never pickle) and a shape that accounts for exactly the
entry's bytes.  A model entry of another dtype than the model's is refused, not cast, and the model,
optimizer and scheduler are loaded all or nothing.  A file that is missing raises
FileNotFoundError; everything else (not a regular file, not a zip archive, truncated or damaged,
compressed, a CRC or shape mismatch, an `.npz` without checkpoint metadata, malformed or too deeply
nested metadata, a newer format version, a state that does not fit the object it is loaded into)
raises `CheckpointError`, whose message names the file and the problem (for a model: the missing,
unexpected and shape-mismatched keys).
"""
import contextlib
import io
import json
import math
import os
import random as _python_random
import re
import stat
import struct
import zipfile
import zlib

import numpy as np

from .. import backend
from .._atomic import atomic_write
from ..autograd.tensor import Tensor

FORMAT_NAME = 'tensorlite-checkpoint'
FORMAT_VERSION = 1
METADATA_KEY = '__checkpoint__'
OBJECT_KEY = 'object'               # the metadata's key for what save_object stored
TEMP_SUFFIX = '.tmp'

_SECTIONS = ('model', 'optimizer', 'scheduler', 'rng_state', 'config', 'extra')
_JSON_SAFE_INT = 2 ** 53            # doubles hold every integer up to here exactly
_TAGS = ('__array__', '__dict__', '__tuple__', '__float__', '__int__')
MAX_DEPTH = 64                      # nesting levels of the metadata a checkpoint may have


class CheckpointError(ValueError):
    """A checkpoint file cannot be read, or does not fit what it is being loaded into.
    The message starts with the file's path."""


# ---- encoding a nested value into JSON + arrays -------------------------------------------------

class _Encoder:
    """Turns a nested value into a JSON-able structure, collecting its arrays in `self.arrays`
    (entry name -> ndarray) as it goes."""

    def __init__(self):
        self.arrays = {}

    def encode(self, value, where):
        """`where` is the list of keys leading to `value`, for entry names and error messages."""
        if isinstance(value, np.generic):     # first: np.float64 and np.str_ subclass float, str
            ref = self._array(np.asarray(value), where)
            ref['scalar'] = True
            return ref
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value if abs(value) <= _JSON_SAFE_INT else {'__int__': str(value)}
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return {'__float__': 'nan' if math.isnan(value) else ('inf' if value > 0 else '-inf')}
        if isinstance(value, Tensor):
            return self._array(backend.as_numpy(value.data), where)
        if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
            return self._array(backend.as_numpy(value), where)
        if isinstance(value, tuple):
            return {'__tuple__': [self.encode(v, where + [i]) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, where + [i]) for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith('__') for k in value):
                return {k: self.encode(v, where + [k]) for k, v in value.items()}
            for k in value:
                if not (k is None or isinstance(k, (bool, int, float, str, tuple, np.generic))):
                    raise TypeError(f"{_describe(where)} has a key of type {type(k).__name__} "
                                    f"({k!r}); a checkpoint stores keys that are str, int, float, "
                                    "bool, None or tuples of those")
            return {'__dict__': [[self.encode(k, where + ['key']), self.encode(v, where + [k])]
                                 for k, v in value.items()]}
        if callable(getattr(value, 'state_dict', None)):       # a Module, an optimizer
            raise TypeError(f"{_describe(where)} is a {type(value).__name__}, which would need "
                            "pickle; store its state_dict() instead (and load that into a new "
                            f"{type(value).__name__} with load_state_dict)")
        raise TypeError(f"{_describe(where)} is a {type(value).__name__}; a checkpoint stores "
                        "arrays, Tensors, numbers, strings, bools, None and lists, tuples and "
                        "dicts of those (anything else would need pickle)")

    def _array(self, array, where):
        if array.dtype.hasobject:
            raise TypeError(f"{_describe(where)} is an array of dtype {array.dtype}, which holds "
                            "Python objects; a checkpoint is loaded with allow_pickle=False and "
                            "stores only numeric, bool and string arrays")
        label = '/'.join(re.sub(r'[^A-Za-z0-9._-]', '_', str(part)) for part in where)
        name, n = label, 1
        while name in self.arrays:           # labels can collide after sanitizing: keep them apart
            n += 1
            name = f"{label}~{n}"
        self.arrays[name] = array
        return {'__array__': name}


def _describe(where):
    """['optimizer', 'state', 0, 'exp_avg'] -> "optimizer['state'][0]['exp_avg']"."""
    return str(where[0]) + ''.join(f"[{part!r}]" for part in where[1:])


class _Decoder:
    """The inverse of _Encoder, over the arrays read from the file."""

    def __init__(self, path, arrays):
        self.path, self.arrays, self.used = path, arrays, set()

    def decode(self, value, depth=0):
        if depth > MAX_DEPTH:
            raise CheckpointError(f"{self.path}: the metadata nests deeper than {MAX_DEPTH} "
                                  "levels, which no checkpoint does")
        depth += 1
        if isinstance(value, list):
            return [self.decode(v, depth) for v in value]
        if not isinstance(value, dict):
            return value
        tag = next((t for t in _TAGS if t in value), None)
        if tag is None:
            if any(k.startswith('__') for k in value):
                raise CheckpointError(f"{self.path}: the metadata holds an unknown tag among "
                                      f"{sorted(value)}: it was written by another program or "
                                      "a newer tensorlite")
            return {k: self.decode(v, depth) for k, v in value.items()}
        body = value[tag]
        if tag == '__array__':
            if not isinstance(body, str) or body not in self.arrays:
                raise CheckpointError(f"{self.path}: the metadata refers to the array '{body}', "
                                      "which the file does not hold")
            self.used.add(body)
            array = self.arrays[body]
            return array[()] if value.get('scalar') else array
        if tag == '__dict__':
            if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2
                                                     for p in body):
                raise CheckpointError(f"{self.path}: the metadata's __dict__ must hold [key, "
                                      f"value] pairs, got {str(body)[:80]}")
            return {self.decode(k, depth): self.decode(v, depth) for k, v in body}
        if tag == '__tuple__':
            if not isinstance(body, list):
                raise CheckpointError(f"{self.path}: the metadata's __tuple__ must hold a list, "
                                      f"got {str(body)[:80]}")
            return tuple(self.decode(v, depth) for v in body)
        if tag == '__float__':
            if body not in ('nan', 'inf', '-inf'):
                raise CheckpointError(f"{self.path}: the metadata's __float__ must be 'nan', "
                                      f"'inf' or '-inf', got {str(body)[:80]}")
            return float(body)
        if not isinstance(body, str) or not re.fullmatch(r'-?\d{1,4300}', body):   # '__int__'
            raise CheckpointError(f"{self.path}: the metadata's __int__ must be decimal digits, "
                                  f"got {str(body)[:80]}")
        return int(body)


# ---- writing ------------------------------------------------------------------------------------

def save_checkpoint(path, model=None, optimizer=None, scheduler=None, epoch=None, rng_state=None,
                    config=None, extra=None):
    """Write one checkpoint file at `path` (conventionally ending in '.npz'), atomically.

    `model`, `optimizer` and `scheduler` are objects with `state_dict()` (a tensorlite Module, an
    optimizer or scheduler of tensorlite.optim) or state dicts themselves; their state dicts may
    nest dicts, lists and tuples of arrays, Tensors, numbers, strings, bools and None.  `epoch` is
    the last finished epoch (fit numbers epochs from 1, so its checkpoints hold how many epochs
    were finished), `rng_state` what `capture_rng_state()` returned, `config` the run's
    settings and `extra` anything else of the same kinds (best accuracy, history).

    Everything is converted before the file is touched, so an unstorable value raises TypeError
    and leaves the previous checkpoint as it was.  Returns `path`."""
    path = os.fspath(path)
    sections = {'model': _state_of(model, 'model'), 'optimizer': _state_of(optimizer, 'optimizer'),
                'scheduler': _state_of(scheduler, 'scheduler'), 'rng_state': rng_state,
                'config': config, 'extra': extra}
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer))):
        raise TypeError(f"epoch must be an int or None, got {epoch!r}")
    encoder = _Encoder()
    metadata = _header()
    metadata['epoch'] = None if epoch is None else int(epoch)
    for name in _SECTIONS:
        metadata[name] = encoder.encode(sections[name], [name])
    _write_atomically(path, _entries(metadata, encoder))
    return path


def save_object(path, obj):
    """Write one nested value (a state dict, an optimizer's state dict, a dict of arrays and
    numbers: the kinds save_checkpoint stores) at `path`, atomically, with no pickle.  A value that
    would need pickle (a Module, a function, a set) raises TypeError naming its place, before the
    file is touched.  Returns `path`; `load_object(path)` gives the value back."""
    path = os.fspath(path)
    encoder = _Encoder()
    metadata = _header()
    metadata[OBJECT_KEY] = encoder.encode(obj, ['obj'])
    _write_atomically(path, _entries(metadata, encoder))
    return path


def _header():
    return {'format': FORMAT_NAME, 'version': FORMAT_VERSION,
            'tensorlite_version': _tensorlite_version()}


def _entries(metadata, encoder):
    """The archive's entries: the metadata as UTF-8 JSON bytes, then the encoder's arrays."""
    text = json.dumps(metadata, allow_nan=False, ensure_ascii=False)
    entries = {METADATA_KEY: np.frombuffer(text.encode('utf-8'), dtype=np.uint8)}
    entries.update(encoder.arrays)
    return entries


def _state_of(obj, name):
    if obj is None or isinstance(obj, dict):
        return obj
    if not callable(getattr(obj, 'state_dict', None)):
        raise TypeError(f"{name} must have a state_dict() method or be a dict, "
                        f"got {type(obj).__name__}")
    return obj.state_dict()


def _tensorlite_version():
    from .. import __version__
    return __version__


def _write_atomically(path, entries):
    """Write `entries` (name -> ndarray) as an .npz through tensorlite._atomic.atomic_write:
    readers see the old checkpoint or the new one, never a half-written one."""
    with atomic_write(path, suffix=TEMP_SUFFIX) as tmp, open(tmp, 'wb') as f:
        with zipfile.ZipFile(f, 'w', compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in entries.items():
                with zf.open(name + '.npy', 'w', force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


# ---- reading ------------------------------------------------------------------------------------

def load_checkpoint(path, model=None, optimizer=None, scheduler=None, strict=True):
    """Read the checkpoint at `path` and load its states into the objects given.

    `model`, `optimizer` and `scheduler` receive `load_state_dict(state)` (the model with
    `strict=strict`).  With strict=True, an object whose state the checkpoint lacks is an error;
    with strict=False it is left as it is, and a model may load with missing or unexpected keys
    (shapes must still match).  Every problem raises `CheckpointError` naming the file.  The
    objects are loaded in the order model, optimizer, scheduler, after the whole file was read and
    checked.  The global random generators are not touched: pass `rng_state` to
    `restore_rng_state` to resume them.

    Returns a dict with 'epoch', 'config', 'extra', 'rng_state', 'format_version' and
    'tensorlite_version' (the one that wrote the file); 'model', 'optimizer' and 'scheduler' with
    the stored state (None if none was stored) for each of them that was not loaded into an
    object; and 'incompatible_keys', the model's (missing_keys, unexpected_keys), when a model was
    loaded."""
    path = os.fspath(path)
    metadata, arrays = _read(path)
    if OBJECT_KEY in metadata:
        raise CheckpointError(f"{path}: holds one object written by tensorlite.save, not a "
                              "checkpoint's sections: read it with tensorlite.load(path)")
    sections = _decode(path, arrays, lambda decode: {name: decode(metadata.get(name))
                                                     for name in _SECTIONS})

    result = {'epoch': metadata.get('epoch'), 'config': sections['config'],
              'extra': sections['extra'], 'rng_state': sections['rng_state'],
              'format_version': metadata['version'],
              'tensorlite_version': metadata.get('tensorlite_version')}
    targets = []
    for name, obj in (('model', model), ('optimizer', optimizer), ('scheduler', scheduler)):
        state = sections[name]
        if obj is None:
            result[name] = state
            continue
        if state is None:
            if strict:
                raise CheckpointError(f"{path}: a {name} was given to load into, but the "
                                      f"checkpoint holds no {name} state")
            continue
        if name == 'model':
            _check_model_dtypes(path, obj, state)
        targets.append((name, obj, state))
    # All or nothing: each object's state is copied before any is loaded, and put back if a
    # later one does not fit, so a failed load leaves model, optimizer and scheduler as they were.
    before = [(obj, _copy_state(obj.state_dict())) for _, obj, _ in targets]
    loaded = 0
    try:
        for name, obj, state in targets:
            try:
                if name == 'model':
                    result['incompatible_keys'] = obj.load_state_dict(state, strict=strict)
                else:
                    obj.load_state_dict(state)
            except Exception as error:
                raise CheckpointError(f"{path}: the {name} state does not fit the "
                                      f"{type(obj).__name__} given: {error}") from error
            loaded += 1
    except CheckpointError:
        for obj, state in before[:loaded + 1]:       # the one that failed may be half-loaded
            with contextlib.suppress(Exception):
                obj.load_state_dict(state)
        raise
    return result


def load_object(path):
    """The value save_object wrote at `path`, arrays as NumPy arrays (nested dicts, lists and
    tuples as they were saved), so `model.load_state_dict(load_object(path))` works for a saved
    state dict.  For a file written by save_checkpoint: a dict of its sections, 'model',
    'optimizer', 'scheduler', 'epoch', 'rng_state', 'config' and 'extra'.  The file is verified as
    load_checkpoint verifies it: FileNotFoundError if missing, CheckpointError for anything else
    wrong."""
    path = os.fspath(path)
    metadata, arrays = _read(path)
    if OBJECT_KEY in metadata:
        return _decode(path, arrays, lambda decode: decode(metadata[OBJECT_KEY]))

    def sections(decode):
        state = {name: decode(metadata.get(name)) for name in _SECTIONS}
        state['epoch'] = metadata.get('epoch')
        return state
    return _decode(path, arrays, sections)


def _decode(path, arrays, build):
    """build(decode) over a decoder of `arrays`; malformed metadata and arrays the metadata does
    not mention are CheckpointError."""
    decoder = _Decoder(path, arrays)
    try:
        value = build(decoder.decode)
    except CheckpointError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise CheckpointError(f"{path}: the checkpoint metadata is malformed: {error}") from error
    unused = sorted(set(arrays) - decoder.used)
    if unused:
        raise CheckpointError(f"{path}: the file holds arrays its metadata does not describe: "
                              f"{', '.join(unused)}")
    return value


def _copy_state(value):
    """A deep copy of a state dict: arrays and Tensors become NumPy copies."""
    if isinstance(value, Tensor):
        return backend.as_numpy(value.data).copy()
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        return backend.as_numpy(value).copy()
    if isinstance(value, dict):
        return type(value)((k, _copy_state(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_state(v) for v in value)
    return value


def _check_model_dtypes(path, model, state):
    """Refuse an entry whose dtype differs from the model's tensor of the same name: a
    checkpoint is not cast silently (float16, int or str into float32)."""
    current = model.state_dict()
    for key, value in state.items():
        if key not in current or current[key] is None:
            continue
        mine = current[key]
        want = np.dtype(mine.dtype if hasattr(mine, 'dtype') else np.asarray(mine).dtype)
        have = value.dtype if hasattr(value, 'dtype') else np.asarray(value).dtype
        if np.dtype(have) != want:
            raise CheckpointError(f"{path}: the entry 'model/{key}' is {np.dtype(have)}, the "
                                  f"model's {key} is {want}: refused (a checkpoint is not cast; "
                                  f"convert the model, e.g. .double(), to load it)")


def _read(path):
    """(metadata dict, {entry name: ndarray}) of the file, every entry verified and parsed.

    The file must be a regular file (a directory, FIFO or device is refused before it is opened,
    so nothing waits on a pipe).  It is read whole, then for every entry of the zip's central
    directory, before anything of the entry is parsed: it must be stored, not compressed (the
    writer never compresses; a compressed entry could inflate far beyond the file), its bytes --
    the .npy header included -- must match the CRC-32 the directory records, checked here rather
    than left to the reader, and its declared dtype and shape must account for exactly the bytes
    it holds, so nothing is allocated beyond the file's size."""
    try:
        status = os.stat(path)
    except FileNotFoundError:                # a missing file raises FileNotFoundError as is
        raise
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read: {error}") from error
    if stat.S_ISDIR(status.st_mode):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(status.st_mode):
        raise CheckpointError(f"{path}: not a regular file (a FIFO, device or socket): a "
                              "checkpoint is a file; refused without opening it")
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read: {error}") from error
    if data[:4] not in (b'PK\x03\x04', b'PK\x05\x06'):
        raise CheckpointError(f"{path}: not a checkpoint: an .npz (zip) file starts with "
                              f"b'PK\\x03\\x04', this one with {data[:4]!r}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, struct.error,
            zlib.error, NotImplementedError) as error:
        raise CheckpointError(f"{path}: not a readable .npz archive (damaged or truncated "
                              f"file?): {error}") from error
    view = memoryview(data)
    arrays = {}
    for info in infos:
        name = info.filename
        entry = _entry_bytes(path, info, data, view)
        if not name.endswith('.npy') or name.endswith('/'):
            raise CheckpointError(f"{path}: the entry {name!r} is not an array (.npy); a "
                                  "checkpoint holds .npy entries only")
        key = name[:-len('.npy')]
        if key in arrays:
            raise CheckpointError(f"{path}: the entry {name!r} appears twice")
        arrays[key] = _parse_npy(path, name, entry)
    if METADATA_KEY not in arrays:
        raise CheckpointError(f"{path}: not a tensorlite checkpoint: an .npz without the "
                              f"'{METADATA_KEY}' metadata entry (it holds "
                              f"{', '.join(arrays) or 'nothing'})")
    raw = arrays.pop(METADATA_KEY)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: the '{METADATA_KEY}' entry must be a 1-D uint8 array of "
                              f"JSON text, got dtype {raw.dtype} and shape {raw.shape}")
    try:
        metadata = json.loads(raw.tobytes().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: the checkpoint metadata is not valid UTF-8 JSON: "
                              f"{error}") from error
    except RecursionError:
        raise CheckpointError(f"{path}: the checkpoint metadata is nested too deeply to be "
                              "a checkpoint's") from None
    if not isinstance(metadata, dict) or metadata.get('format') != FORMAT_NAME:
        found = metadata.get('format') if isinstance(metadata, dict) else type(metadata).__name__
        raise CheckpointError(f"{path}: the metadata's format is {found!r}, expected "
                              f"'{FORMAT_NAME}'")
    version = metadata.get('version')
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: the metadata's format version is {version!r}, expected a "
                              "positive integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written in checkpoint format version {version}; this "
                              f"tensorlite reads versions up to {FORMAT_VERSION}: upgrade it")
    return metadata, arrays


def _entry_bytes(path, info, data, view):
    """The stored bytes of one zip entry, after checking that it is stored (not compressed, not
    encrypted), lies inside the file, and matches its CRC-32."""
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{path}: the entry {name!r} is compressed (zip method "
                              f"{info.compress_type}); a checkpoint's entries are stored as they "
                              "are: refused before inflating it")
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{path}: the entry {name!r} is encrypted")
    if info.compress_size != info.file_size:
        raise CheckpointError(f"{path}: the entry {name!r} records {info.compress_size} stored "
                              f"bytes but a size of {info.file_size}")
    offset = info.header_offset
    if offset < 0 or offset + 30 > len(data) or data[offset:offset + 4] != b'PK\x03\x04':
        raise CheckpointError(f"{path}: the entry {name!r} has no local header where the zip "
                              f"directory says (offset {offset}): damaged or truncated file")
    name_length, extra_length = struct.unpack('<HH', data[offset + 26:offset + 30])
    start = offset + 30 + name_length + extra_length
    end = start + info.compress_size
    if end > len(data):
        raise CheckpointError(f"{path}: the entry {name!r} runs past the end of the file "
                              f"({end} > {len(data)} bytes): truncated file")
    entry = view[start:end]
    if zlib.crc32(entry) != info.CRC:
        raise CheckpointError(f"{path}: the entry {name!r} fails its CRC-32 check: its bytes were "
                              "changed or damaged")
    return entry


def _parse_npy(path, name, entry):
    """An ndarray (a copy) from the verified bytes of one .npy entry; its header must declare a
    plain dtype and a shape whose size is exactly the bytes after the header."""
    stream = io.BytesIO(entry)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = {1: np.lib.format.read_array_header_1_0,
                       2: np.lib.format.read_array_header_2_0}.get(major)
        if read_header is None:
            raise ValueError(f".npy format version {major} is not one np.save writes")
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, struct.error) as error:
        raise CheckpointError(f"{path}: the entry {name!r} has no valid .npy header: "
                              f"{error}") from error
    if dtype.hasobject or dtype.kind not in 'biufcSU':
        raise CheckpointError(f"{path}: the entry {name!r} declares dtype {dtype}, which a "
                              "checkpoint never holds (no objects, no pickle)")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CheckpointError(f"{path}: the entry {name!r} declares the shape {shape}")
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize != len(entry) - offset:
        raise CheckpointError(f"{path}: the entry {name!r} declares {count} values of {dtype} "
                              f"(shape {shape}: {count * dtype.itemsize} bytes), but holds "
                              f"{len(entry) - offset} bytes after its header")
    array = np.frombuffer(entry, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order='F' if fortran_order else 'C').copy(order='K')


# ---- random generator states --------------------------------------------------------------------

def capture_rng_state():
    """The state of every random generator a training run draws from, as a dict to pass to
    `save_checkpoint(rng_state=...)` and later to `restore_rng_state`:

    'tensorlite'   tensorlite.random's generator (rand, randn, dropout, initializers, the
                   DataLoader's default seed);
    'data_sampler' tensorlite.data's module generator (samplers and transforms called outside a
                   DataLoader; inside one, each sample gets a generator seeded from the loader's
                   seed, epoch and index, so the loader needs only its seed and epoch);
    'numpy'        NumPy's global generator (np.random.*);
    'python'       Python's `random` module."""
    from .. import random as tl_random
    from ..data import samplers
    version, internal, gauss_next = _python_random.getstate()
    return {'tensorlite': tl_random.get_rng_state(),
            'data_sampler': samplers.sample_generator().bit_generator.state,
            'numpy': np.random.get_state(legacy=False),
            'python': {'version': version, 'internal_state': np.asarray(internal, dtype=np.int64),
                       'gauss_next': gauss_next}}


def restore_rng_state(state):
    """Put every generator back in the state `capture_rng_state()` recorded (as saved and loaded
    by a checkpoint); afterwards they draw exactly the numbers they drew after the capture.
    Generators missing from `state` are left as they are."""
    from .. import random as tl_random
    from ..data import samplers
    if not isinstance(state, dict):
        raise TypeError(f"restore_rng_state expects the dict capture_rng_state() returns, "
                        f"got {type(state).__name__}")
    unknown = sorted(set(state) - {'tensorlite', 'data_sampler', 'numpy', 'python'})
    if unknown:
        raise ValueError(f"restore_rng_state: unknown generators {unknown}; expected 'tensorlite', "
                         "'data_sampler', 'numpy' and 'python'")
    if 'tensorlite' in state:
        tl_random.set_rng_state(state['tensorlite'])
    if 'data_sampler' in state:
        samplers.sample_generator().bit_generator.state = state['data_sampler']
    if 'numpy' in state:
        np.random.set_state(state['numpy'])
    if 'python' in state:
        py = state['python']
        _python_random.setstate((int(py['version']),
                                 tuple(int(x) for x in np.asarray(py['internal_state'])),
                                 py['gauss_next']))

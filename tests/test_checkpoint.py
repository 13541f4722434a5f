"""Checkpoints: an exact round trip of everything a run resumes from, atomic writes (a save killed
half way leaves the previous file loadable), and clear errors for damaged or mismatched files."""
import copy
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.train import (CheckpointError, capture_rng_state, load_checkpoint,
                              restore_rng_state, save_checkpoint)
from tensorlite.train import checkpoint as ckpt_module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeAdam:
    """Holds its state in PyTorch's optimizer format, as tensorlite.optim's optimizers do:
    per-parameter state keyed by int index, param_groups listing those indices."""

    def __init__(self, shapes, lr=1e-3):
        self.shapes = shapes
        self.state = {}
        self.param_groups = [{'lr': lr, 'betas': (0.9, 0.999), 'eps': 1e-8, 'weight_decay': 0.0,
                              'amsgrad': False, 'foreach': None,
                              'params': list(range(len(shapes)))}]

    def take_steps(self, rng, steps):
        for i, shape in enumerate(self.shapes):
            s = self.state.setdefault(i, {'step': np.float32(0.0),
                                          'exp_avg': np.zeros(shape, np.float32),
                                          'exp_avg_sq': np.zeros(shape, np.float32)})
            s['step'] = np.float32(s['step'] + steps)
            s['exp_avg'] = rng.standard_normal(shape).astype(np.float32)
            s['exp_avg_sq'] = rng.random(shape).astype(np.float32)

    def state_dict(self):
        return {'state': copy.deepcopy(self.state),
                'param_groups': copy.deepcopy(self.param_groups)}

    def load_state_dict(self, state_dict):
        groups = state_dict['param_groups']
        if len(groups) != len(self.param_groups) or \
                [len(g['params']) for g in groups] != [len(g['params']) for g in self.param_groups]:
            raise ValueError("loaded state dict has a different number of parameter groups or "
                             "parameters")
        self.state = copy.deepcopy(state_dict['state'])
        self.param_groups = copy.deepcopy(groups)


class FakeCosine:
    """A scheduler's state: plain numbers and lists, as PyTorch's LRScheduler.state_dict()."""

    def __init__(self):
        self.last_epoch, self.base_lrs, self.T_max, self.eta_min = 0, [1e-3], 10, 0.0
        self._last_lr = [1e-3]

    def state_dict(self):
        return dict(self.__dict__)

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


def small_model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def assert_same(a, b, where='value'):
    """Equal values of equal types all the way down (arrays: dtype, shape and bits)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(next(kb for kb in b if kb == k)), f"{where}: key {k!r} type"
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: values differ"
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def numpy_state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


# ---- round trip ----------------------------------------------------------------------------------

def test_round_trip_of_a_whole_run(tmp_path):
    path = tmp_path / 'last.npz'
    tl.manual_seed(1)
    model = small_model()
    model.train()
    for _ in range(3):                                   # running stats move away from 0 and 1
        model(tl.randn(8, 3))
    optimizer = FakeAdam([tuple(p.shape) for p in model.parameters()])
    optimizer.take_steps(np.random.default_rng(0), 7)
    scheduler = FakeCosine()
    scheduler.last_epoch, scheduler._last_lr = 4, [6.5e-4]
    config = {'model': 'c3d', 'size': (112, 112), 'lr': 1e-3, 'epochs': 10,
              'nested': {'a': [1, None]}}
    extra = {'best_accuracy': 0.75, 'history': [{'epoch': 0, 'loss': 2.3}]}

    tl.randn(3)                                          # the generators are somewhere mid-stream
    np.random.rand(2)
    random.random()
    rng_state = capture_rng_state()
    save_checkpoint(path, model, optimizer, scheduler, epoch=4, rng_state=rng_state,
                    config=config, extra=extra)
    after_save = (tl.randn(5).numpy().copy(), np.random.rand(3), random.random(),
                  tl.data.samplers.sample_generator().random(2))

    saved_model, saved_opt = numpy_state(model), optimizer.state_dict()
    saved_sched = scheduler.state_dict()

    tl.manual_seed(99)                                   # a fresh process, in effect
    np.random.seed(99)
    random.seed(99)
    model2, optimizer2, scheduler2 = small_model(), FakeAdam(optimizer.shapes), FakeCosine()
    info = load_checkpoint(path, model2, optimizer2, scheduler2)
    restore_rng_state(info['rng_state'])

    assert_same(numpy_state(model2), saved_model)
    assert model2.state_dict()['1.running_mean'].dtype == np.float32
    assert model2.state_dict()['1.num_batches_tracked'].item() == 3
    assert_same(optimizer2.state_dict(), saved_opt)      # int keys, tuple betas, None, np.float32
    assert_same(scheduler2.state_dict(), saved_sched)
    assert info['epoch'] == 4
    assert_same(info['config'], config)
    assert_same(info['extra'], extra)
    assert info['format_version'] == ckpt_module.FORMAT_VERSION
    assert info['incompatible_keys'] == ([], [])
    assert 'model' not in info and 'optimizer' not in info and 'scheduler' not in info

    after_load = (tl.randn(5).numpy(), np.random.rand(3), random.random(),
                  tl.data.samplers.sample_generator().random(2))
    np.testing.assert_array_equal(after_load[0], after_save[0])
    np.testing.assert_array_equal(after_load[1], after_save[1])
    assert after_load[2] == after_save[2]
    np.testing.assert_array_equal(after_load[3], after_save[3])


def test_states_not_loaded_into_objects_are_returned(tmp_path):
    path = tmp_path / 'c.npz'
    model = small_model()
    optimizer = FakeAdam([(2,)])
    optimizer.take_steps(np.random.default_rng(0), 1)
    save_checkpoint(path, model, optimizer)
    info = load_checkpoint(path)
    assert_same(info['model'], numpy_state(model))
    assert_same(info['optimizer'], optimizer.state_dict())
    assert info['scheduler'] is None and info['epoch'] is None and info['rng_state'] is None


ODD_VALUES = [
    {0: 'int key', 1.5: 'float key', True: 'bool key', None: 'none key', (1, 'a'): 'tuple key',
     'str': 'str key'},
    {'__array__': 'a string key that looks like a tag', '__dict__': [1, 2]},
    [float('nan'), float('inf'), -float('inf'), 0.1, -0.0, 2 ** 53, 2 ** 127 + 1, -2 ** 64],
    ((), [], {}, ((1,),), [()]),
    [np.float16(1.5), np.int64(-3), np.bool_(True), np.uint8(200), np.float64(0.1), np.str_('s')],
    [np.zeros((0, 3), np.float32), np.array(5, np.int32), np.array(['ab', 'cde']),
     np.array([True, False]), np.arange(6, dtype=np.float64).reshape(2, 3).T,
     np.array([1 + 2j], np.complex64)],
    {'ünïcode ☃': 'välue', 'slash/and space': np.ones(2), 'slash_and_space': np.zeros(2)},
]


@pytest.mark.parametrize('value', ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_nested_values_come_back_exactly(tmp_path, value):
    save_checkpoint(tmp_path / 'c.npz', extra=value)
    assert_same(load_checkpoint(tmp_path / 'c.npz')['extra'], value)


def test_metadata_is_readable_json_inside_the_npz(tmp_path):
    path = tmp_path / 'c.npz'
    save_checkpoint(path, small_model(), epoch=2, config={'lr': 0.1})
    with np.load(path, allow_pickle=False) as npz:
        metadata = json.loads(npz['__checkpoint__'].tobytes().decode('utf-8'))
        assert metadata['format'] == 'tensorlite-checkpoint' and metadata['version'] == 1
        assert metadata['epoch'] == 2 and metadata['config'] == {'lr': 0.1}
        ref = metadata['model']['0.weight']['__array__']
        assert npz[ref].shape == (4, 3) and npz[ref].dtype == np.float32


@pytest.mark.parametrize('bad, what', [({1, 2}, 'set'), (np.array([object()]), 'dtype object'),
                                       (lambda x: x, 'function'), ({'k': {frozenset(): 1}}, 'key')])
def test_unstorable_values_are_refused_before_the_file_is_touched(tmp_path, bad, what):
    path = tmp_path / 'c.npz'
    save_checkpoint(path, epoch=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=what):
        save_checkpoint(path, epoch=2, extra={'x': [bad]})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['c.npz']


# ---- atomic writes -------------------------------------------------------------------------------

def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'c.npz'
    save_checkpoint(path, small_model(), epoch=1)
    before = path.read_bytes()
    real_write, calls = np.lib.format.write_array, []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, 'No space left on device')
        return real_write(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, 'write_array', failing_write)
    with pytest.raises(OSError, match='No space left'):
        save_checkpoint(path, small_model(), epoch=2)
    assert len(calls) == 3
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['c.npz']
    assert load_checkpoint(path)['epoch'] == 1


# The child writes a checkpoint of 40 arrays, sleeping after each one, so the parent can kill it
# with SIGKILL while the temporary file is half written.
KILLED_WRITER = """
import sys, time
import numpy as np
from tensorlite.train import save_checkpoint
real_write = np.lib.format.write_array
def slow_write(*args, **kwargs):
    real_write(*args, **kwargs)
    time.sleep(0.1)
np.lib.format.write_array = slow_write
state = {f'layer{i}.weight': np.full((256, 256), 2.0, np.float32) for i in range(40)}
save_checkpoint(sys.argv[1], model=state, epoch=2)
print('finished', flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs SIGKILL (POSIX)')
def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / 'last.npz'
    old = {f'layer{i}.weight': np.full((256, 256), 1.0, np.float32) for i in range(40)}
    save_checkpoint(path, model=old, epoch=1)

    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    child = subprocess.Popen([sys.executable, '-c', KILLED_WRITER, str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        temp = []
        while time.monotonic() < deadline and child.poll() is None:
            temp = [p for p in tmp_path.iterdir() if p.name != 'last.npz']
            if temp and temp[0].stat().st_size > 1_000_000:     # several arrays in, far from done
                break
            time.sleep(0.02)
        assert child.poll() is None, f"the writer ended before it was killed: {child.communicate()}"
        assert temp and temp[0].stat().st_size > 1_000_000
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # The old checkpoint is whole; the dead writer's temporary file stays beside it, hidden and
    # with its own suffix, and loading the checkpoint's path never reads it.
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != 'last.npz']
    assert len(leftovers) == 1
    assert leftovers[0].startswith('.last.npz.') and leftovers[0].endswith(ckpt_module.TEMP_SUFFIX)
    info = load_checkpoint(path)
    assert info['epoch'] == 1
    assert_same(info['model'], old)

    # The next save removes the dead writer's leftover.
    save_checkpoint(path, model={'w': np.ones(2)}, epoch=3)
    assert os.listdir(tmp_path) == ['last.npz']
    assert load_checkpoint(path)['epoch'] == 3


def test_a_live_writers_temporary_file_is_not_removed(tmp_path):
    live = tmp_path / f'.c.npz.{os.getppid()}.abc123{ckpt_module.TEMP_SUFFIX}'
    dead = tmp_path / f'.c.npz.{2 ** 22 + 12345}.abc123{ckpt_module.TEMP_SUFFIX}'  # > pid_max
    other = tmp_path / f'.other.npz.{2 ** 22 + 12345}.abc123{ckpt_module.TEMP_SUFFIX}'
    for p in (live, dead, other):
        p.write_bytes(b'half')
    save_checkpoint(tmp_path / 'c.npz', epoch=0)
    assert sorted(os.listdir(tmp_path)) == sorted(['c.npz', live.name, other.name])


# ---- damaged, foreign and mismatched files -------------------------------------------------------

def saved_checkpoint(tmp_path):
    path = tmp_path / 'ckpt.npz'
    optimizer = FakeAdam([(4, 3), (4,)])
    optimizer.take_steps(np.random.default_rng(0), 2)
    save_checkpoint(path, small_model(), optimizer, epoch=3, rng_state=capture_rng_state())
    return path


@pytest.mark.parametrize('cut', ['keep_half', 'drop_last_byte', 'drop_middle', 'keep_100'])
def test_a_truncated_file_raises_naming_it(tmp_path, cut):
    path = saved_checkpoint(tmp_path)
    data = path.read_bytes()
    n = len(data)
    data = {'keep_half': data[:n // 2], 'drop_last_byte': data[:-1],
            'drop_middle': data[:n // 3] + data[n // 3 + 200:], 'keep_100': data[:100]}[cut]
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path, small_model())


def test_a_flipped_byte_in_an_array_raises_naming_the_entry(tmp_path):
    path = saved_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo('model/0.weight.npy')
    # the member's data starts after its local header (30 bytes + name + extra field)
    header = data[info.header_offset:info.header_offset + 30]
    name_len = int.from_bytes(header[26:28], 'little')
    extra_len = int.from_bytes(header[28:30], 'little')
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size - 1] ^= 0xFF             # the last byte of the weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*model/0\.weight"):
        load_checkpoint(path)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all',
                                     np.random.default_rng(0).bytes(5000)],
                         ids=['empty', 'text', 'random'])
def test_a_file_that_is_not_an_npz_raises_naming_it(tmp_path, content):
    path = tmp_path / 'weird.npz'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r'weird\.npz.*not a checkpoint'):
        load_checkpoint(path)


def test_an_npz_without_metadata_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'plain.npz'
    np.savez(path, weight=np.ones(3))
    with pytest.raises(CheckpointError, match=r"plain\.npz.*not a tensorlite checkpoint.*weight"):
        load_checkpoint(path)


def test_a_npy_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'array.npy'
    np.save(path, np.ones(3))
    with pytest.raises(CheckpointError, match=r'array\.npy.*not a checkpoint'):
        load_checkpoint(path)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        load_checkpoint(tmp_path / 'nowhere.npz')


def rewrite(path, metadata=None, add=None):
    """Rewrite a checkpoint with its metadata replaced and/or entries added, by plain np.savez."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {k: npz[k] for k in npz.files}
    if metadata is not None:
        entries['__checkpoint__'] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    entries.update(add or {})
    np.savez(path, **entries)


def read_metadata(path):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz['__checkpoint__'].tobytes().decode())


def test_loading_never_unpickles_an_object_array(tmp_path):
    path = saved_checkpoint(tmp_path)
    metadata = read_metadata(path)
    metadata['extra'] = {'__array__': 'extra/payload'}
    rewrite(path, metadata, add={'extra/payload': np.array([{'a': 1}], dtype=object)})
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*extra/payload.*declares dtype object.*"
                                              r"no pickle"):
        load_checkpoint(path)


@pytest.mark.parametrize('change, message', [
    (lambda m: m.update(version=2), 'format version 2'),
    (lambda m: m.update(version='1'), "format version is '1'"),
    (lambda m: m.update(format='something-else'), "format is 'something-else'"),
    (lambda m: m['model'].update({'0.weight': {'__array__': 'model/gone'}}), "'model/gone'"),
    (lambda m: m['model'].pop('0.bias'), 'does not describe: model/0.bias'),
    (lambda m: m.update(extra={'__pickle__': 'x'}), 'unknown tag'),
])
def test_inconsistent_metadata_raises(tmp_path, change, message):
    path = saved_checkpoint(tmp_path)
    metadata = read_metadata(path)
    change(metadata)
    rewrite(path, metadata)
    with pytest.raises(CheckpointError, match=r"ckpt\.npz") as error:
        load_checkpoint(path)
    assert message in str(error.value)


def test_metadata_that_is_not_json_raises(tmp_path):
    path = saved_checkpoint(tmp_path)
    rewrite(path, add={'__checkpoint__': np.frombuffer(b'{"format": ', np.uint8)})
    with pytest.raises(CheckpointError, match=r'ckpt\.npz.*not valid UTF-8 JSON'):
        load_checkpoint(path)


def test_a_mismatched_model_lists_every_key(tmp_path):
    path = saved_checkpoint(tmp_path)
    other = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2),
                          nn.Linear(2, 2))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, other)
    message = str(error.value)
    assert str(path) in message and 'model state does not fit the Sequential' in message
    for expected in ['0.weight: checkpoint (4, 3), model (5, 3)', '1.running_mean',
                     '3.weight: checkpoint (2, 4), model (2, 5)', 'missing keys: 4.weight, 4.bias']:
        assert expected in message


def test_strict_false_loads_what_fits_and_reports_the_rest(tmp_path):
    path = tmp_path / 'c.npz'
    source = small_model()
    save_checkpoint(path, source)
    bigger = nn.Sequential(*[m for m in small_model()], nn.Linear(2, 2))
    info = load_checkpoint(path, bigger, optimizer=FakeAdam([(2,)]), strict=False)
    assert info['incompatible_keys'] == (['4.weight', '4.bias'], [])
    np.testing.assert_array_equal(bigger[0].weight.numpy(), source[0].weight.numpy())
    with pytest.raises(CheckpointError, match=r"c\.npz.*holds no optimizer state"):
        load_checkpoint(path, small_model(), optimizer=FakeAdam([(2,)]))


def test_a_mismatched_optimizer_raises_naming_the_file(tmp_path):
    path = saved_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*optimizer state does not fit.*groups"):
        load_checkpoint(path, optimizer=FakeAdam([(4, 3)]))


def test_restore_rng_state_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="unknown generators.*'torch'"):
        restore_rng_state({'torch': 1})
    with pytest.raises(TypeError, match='capture_rng_state'):
        restore_rng_state([1, 2])


# ---- integrity: every entry verified before it is parsed (issue 17) ------------------------------

def _entries(path):
    """[(name, stored bytes)] of a checkpoint's zip entries, in order."""
    with zipfile.ZipFile(path) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def _write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, 'w', compression=compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)


def big_checkpoint(tmp_path):
    """A model with a > 8 KB weight (NumPy checks an entry's CRC only if it reads to its end)."""
    path = tmp_path / 'big.npz'
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 48), nn.Linear(48, 2))
    save_checkpoint(path, model, epoch=0)
    return path, model


def test_a_header_edit_with_a_valid_zip_is_caught_by_the_crc(tmp_path):
    path, model = big_checkpoint(tmp_path)
    data = path.read_bytes()
    at = data.index(b"'descr': '<f4'")              # the first float32 entry's .npy header
    path.write_bytes(data[:at] + b"'descr': '<f2'" + data[at + 14:])
    with pytest.raises(CheckpointError, match=r"big\.npz: the entry .* fails its CRC-32 check"):
        load_checkpoint(path, nn.Sequential(nn.Linear(64, 48), nn.Linear(48, 2)))


def test_compressed_entries_are_refused_before_inflating(tmp_path):
    path, _ = big_checkpoint(tmp_path)
    _write_zip(path, _entries(path), compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"is compressed \(zip method 8\).*refused before "
                                              r"inflating"):
        load_checkpoint(path)


def test_a_declared_shape_must_match_the_bytes(tmp_path):
    """A header claiming a huge shape, with a CRC that matches: refused before any allocation."""
    path, _ = big_checkpoint(tmp_path)
    entries = _entries(path)
    name, data = next((n, d) for n, d in entries if n.startswith('model/0.weight'))
    start = data.index(b"'shape': (48, 64)")
    forged = data[:start] + b"'shape': (480000, 64000)" + data[start + 17:]
    # keep the header's length a multiple of 64 as np.save pads it: drop spaces of the padding
    forged = forged.replace(b' ' * 7 + b'\n', b'\n', 1)
    _write_zip(path, [(n, forged if n == name else d) for n, d in entries])
    with pytest.raises(CheckpointError, match=r"declares 30720000000 values of float32 .*but holds "
                                              r"12288 bytes"):
        load_checkpoint(path)


def test_a_dtype_other_than_the_models_is_refused(tmp_path):
    path = tmp_path / 'f64.npz'
    save_checkpoint(path, small_model().double())
    target = small_model()
    before = {k: v.numpy().copy() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"'model/0.weight' is float64, the model's 0.weight "
                                              r"is float32: refused"):
        load_checkpoint(path, target)
    for k, v in target.state_dict().items():
        assert np.array_equal(v.numpy(), before[k]), k


def test_directories_and_fifos_are_refused_without_waiting(tmp_path):
    (tmp_path / 'dir.npz').mkdir()
    with pytest.raises(CheckpointError, match=r'dir\.npz: is a directory'):
        load_checkpoint(tmp_path / 'dir.npz')
    if hasattr(os, 'mkfifo'):
        os.mkfifo(tmp_path / 'pipe.npz')
        started = time.monotonic()
        with pytest.raises(CheckpointError, match=r'pipe\.npz: not a regular file'):
            load_checkpoint(tmp_path / 'pipe.npz')
        assert time.monotonic() - started < 5


@pytest.mark.parametrize('section, message', [
    ({'__float__': 'abc'}, r"__float__ must be 'nan', 'inf' or '-inf'"),
    ({'__int__': '12x'}, r'__int__ must be decimal digits'),
    ({'__array__': [1, 2]}, r"refers to the array '\[1, 2\]'"),
    ({'__dict__': 5}, r'__dict__ must hold \[key, value\] pairs'),
    ({'__tuple__': {'a': 1}}, r'__tuple__ must hold a list'),
    ({'__secret__': 1}, r'unknown tag'),
])
def test_malformed_metadata_raises_checkpoint_error(tmp_path, section, message):
    path = saved_checkpoint(tmp_path)
    metadata = read_metadata(path)
    metadata['extra'] = section
    rewrite(path, metadata)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_metadata_nested_too_deeply_raises_checkpoint_error(tmp_path):
    path = saved_checkpoint(tmp_path)
    metadata = read_metadata(path)
    deep = []
    for _ in range(200):
        deep = [deep]
    metadata['extra'] = deep
    rewrite(path, metadata)
    with pytest.raises(CheckpointError, match=r'nests deeper than 64 levels'):
        load_checkpoint(path)


def test_loading_is_all_or_nothing(tmp_path):
    """The model fits, the optimizer state does not: the model is left as it was."""
    path = saved_checkpoint(tmp_path)
    tl.manual_seed(5)
    model = small_model()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match='optimizer state does not fit'):
        load_checkpoint(path, model, FakeAdam([(2, 2)]))
    for k, v in model.state_dict().items():
        assert np.array_equal(v.numpy(), before[k]), k


def test_a_240_character_name_saves(tmp_path):
    path = tmp_path / ('c' * 236 + '.npz')
    save_checkpoint(path, small_model(), epoch=1)
    assert load_checkpoint(path)['epoch'] == 1
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_fuzzed_checkpoints_raise_or_load_the_original_values(tmp_path):
    """Hundreds of damaged copies (truncations, bit flips anywhere, header edits, a compressed
    entry): each either raises CheckpointError or loads exactly the original values."""
    path = saved_checkpoint(tmp_path)
    original = path.read_bytes()
    reference = load_checkpoint(path)
    rng = np.random.default_rng(0)
    damaged = [original[:n] for n in rng.integers(0, len(original), 60)]
    for _ in range(300):
        data = bytearray(original)
        at = int(rng.integers(0, len(data)))
        data[at] ^= 1 << int(rng.integers(0, 8))
        damaged.append(bytes(data))
    for old, new in ((b"'<f4'", b"'<f2'"), (b"'<f4'", b"'<i4'"), (b"'<f4'", b"'|u1'"),
                     (b'False', b'True ')):
        start = 0
        while (at := original.find(old, start)) >= 0:
            damaged.append(original[:at] + new + original[at + len(old):])
            start = at + 1
    silent = []
    outcomes = {'raised': 0, 'identical': 0}
    target = tmp_path / 'damaged.npz'
    for k, data in enumerate(damaged):
        target.write_bytes(data)
        try:
            loaded = load_checkpoint(target)
        except CheckpointError:
            outcomes['raised'] += 1
            continue
        try:
            for key in ('model', 'optimizer', 'epoch', 'config', 'extra'):
                assert_same(reference[key], loaded[key], key)
            outcomes['identical'] += 1
        except AssertionError as error:
            silent.append((k, str(error)[:200]))
    assert not silent, silent[:5]
    assert outcomes['raised'] > len(damaged) // 2, outcomes

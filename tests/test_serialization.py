"""tl.save / tl.load: state dicts round trip through the checkpoint archive without pickle, so
`model.load_state_dict(tl.load(path))` works; clear errors for missing files and for what would
need pickle; a damaged file is refused; checkpoints and object files are told apart."""
import os
import zipfile

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.nn as nn
from tensorlite.train import CheckpointError, load_checkpoint, save_checkpoint


def small_net():
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 5))


def test_model_state_dict_round_trip(tmp_path):
    tl.manual_seed(0)
    net = small_net()
    net.train()
    net(tl.randn(2, 3, 4, 6, 6))                           # running statistics move off their init
    path = tmp_path / 'weights.pt'                        # any name: used as given
    tl.save(net.state_dict(), path)
    assert sorted(os.listdir(tmp_path)) == ['weights.pt']
    state = tl.load(path)
    assert list(state) == list(net.state_dict())
    for key, value in net.state_dict().items():
        assert type(state[key]) is np.ndarray and state[key].dtype == value.dtype
        np.testing.assert_array_equal(state[key], value.numpy())
    tl.manual_seed(1)
    other = small_net()
    assert other.load_state_dict(tl.load(str(path))) == ([], [])
    net.eval(), other.eval()
    x = tl.randn(1, 3, 4, 6, 6)
    np.testing.assert_array_equal(other(x).numpy(), net(x).numpy())


def test_optimizer_state_dict_round_trip(tmp_path):
    """Int keys, tuples (betas), Python numbers and nested dicts come back as they were."""
    tl.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = tl.optim.Adam(net.parameters(), lr=0.01, betas=(0.8, 0.9))
    for _ in range(2):
        opt.zero_grad()
        net(tl.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    tl.save(opt.state_dict(), tmp_path / 'opt.npz')
    state = tl.load(tmp_path / 'opt.npz')
    assert set(state['state']) == {0, 1}
    assert state['param_groups'][0]['betas'] == (0.8, 0.9)
    assert state['state'][0]['step'] == opt.state_dict()['state'][0]['step']
    fresh = tl.optim.Adam(nn.Linear(3, 2).parameters(), lr=0.5)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]['lr'] == 0.01
    np.testing.assert_array_equal(fresh.state_dict()['state'][1]['exp_avg'],
                                  opt.state_dict()['state'][1]['exp_avg'])


def test_nested_values_round_trip(tmp_path):
    value = {'model': {'w': tl.ones(2, 2), 'b': np.arange(3, dtype=np.int16)},
             'epoch': 3, 'lr': 0.1, 'name': 'c3d', 'ok': True, 'none': None,
             'scalar': np.float32(2.5), 'sizes': (112, 112), 'history': [1.0, float('nan')]}
    tl.save(value, tmp_path / 'x.npz')
    back = tl.load(tmp_path / 'x.npz')
    assert back['model']['b'].dtype == np.int16 and back['model']['w'].dtype == np.float32
    assert (back['epoch'], back['lr'], back['name'], back['ok'], back['none']) == \
        (3, 0.1, 'c3d', True, None)
    assert back['scalar'] == np.float32(2.5) and type(back['scalar']) is np.float32
    assert back['sizes'] == (112, 112) and np.isnan(back['history'][1])
    tl.save(np.arange(4.0), tmp_path / 'a.npz')                        # a bare array
    np.testing.assert_array_equal(tl.load(tmp_path / 'a.npz'), np.arange(4.0))


def test_the_file_holds_no_pickle(tmp_path):
    tl.save(small_net().state_dict(), tmp_path / 'w.npz')
    with zipfile.ZipFile(tmp_path / 'w.npz') as archive:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in archive.infolist())
    with np.load(tmp_path / 'w.npz', allow_pickle=False) as arrays:      # raises on any pickle
        assert all(arrays[name].dtype != object for name in arrays.files)


@pytest.mark.parametrize('value, message', [
    (nn.Linear(2, 2), r"tl.save: obj is a Linear, which would need pickle; store its "
                      r"state_dict\(\) instead"),
    ({'net': nn.ReLU()}, r"obj\['net'\] is a ReLU, which would need pickle; store its state_dict"),
    ({'a': {1, 2}}, r"obj\['a'\] is a set; .*would need pickle"),
    ({'f': [lambda x: x]}, r"obj\['f'\]\[0\] is a function; .*would need pickle"),
    ({'o': np.array([None])}, r"obj\['o'\] is an array of dtype object"),
])
def test_what_would_need_pickle_is_refused_before_writing(tmp_path, value, message):
    path = tmp_path / 'w.npz'
    tl.save({'kept': np.ones(2)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=message):
        tl.save(value, path)
    assert path.read_bytes() == before                         # the previous file is untouched
    assert os.listdir(tmp_path) == ['w.npz']                   # and no temporary file is left


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tl.load: no such file: '.*nothing\.npz'"):
        tl.load(tmp_path / 'nothing.npz')
    with pytest.raises(FileNotFoundError, match=r"tl.save: the folder '.*no_folder' does not "):
        tl.save({}, tmp_path / 'no_folder' / 'w.npz')
    with pytest.raises(IsADirectoryError, match='tl.save: the path is a directory'):
        tl.save({}, tmp_path)
    with open(__file__, 'rb') as f, pytest.raises(TypeError, match='tl.load: expected a file path'):
        tl.load(f)
    with pytest.raises(ValueError, match=r"map_location must be None or 'cpu' .*, got 'cuda'"):
        tl.load(tmp_path / 'nothing.npz', map_location='cuda')


def test_damaged_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / 'w.npz'
    tl.save({'w': np.arange(1000, dtype=np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                                # one flipped byte inside the array
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"w\.npz: .*CRC-32"):
        tl.load(path)
    np.savez(tmp_path / 'plain.npz', w=np.ones(2))
    with pytest.raises(CheckpointError, match='not a tensorlite checkpoint'):
        tl.load(tmp_path / 'plain.npz')
    (tmp_path / 'text.npz').write_text('hello')
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        tl.load(tmp_path / 'text.npz')


def test_checkpoints_and_object_files_are_told_apart(tmp_path):
    net = nn.Linear(2, 3)
    save_checkpoint(tmp_path / 'last.npz', net, epoch=4, config={'lr': 0.1})
    sections = tl.load(tmp_path / 'last.npz')
    assert sections['epoch'] == 4 and sections['config'] == {'lr': 0.1}
    assert sections['optimizer'] is None
    net.load_state_dict(sections['model'])
    tl.save(net.state_dict(), tmp_path / 'w.npz')
    with pytest.raises(CheckpointError, match=r"w\.npz: holds one object written by "
                                              r"tensorlite.save.*tensorlite.load"):
        load_checkpoint(tmp_path / 'w.npz', net)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous file, and no temporary file."""
    path = tmp_path / 'w.npz'
    tl.save({'a': np.zeros(3)}, path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(np.lib.format, 'write_array', fail)
    with pytest.raises(OSError, match='disk full'):
        tl.save({'a': np.ones(3)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['w.npz']

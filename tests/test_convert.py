"""convert_state_dict and `tensorlite convert`: the bookkeeping (keys placed, nothing dropped, every
problem listed) on a registered model's own state dict, which is always at hand; the reference
libraries' checkpoints are compared in test_video_resnet.py and test_ptv_models.py."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite import cli
from tensorlite.models import (ConversionError, build_model, conversions, convert_state_dict,
                               read_state_dict)
from tensorlite.models import convert as C

HEAD = 'blocks.6.proj.weight'


@pytest.fixture(scope='module')
def slowfast_state():
    """SlowFast's paper state dict with 7 classes: PyTorchVideo's names (models/slowfast.py)."""
    return {k: np.asarray(v) for k, v in build_model('slowfast', 7, preset='paper').state_dict()
            .items()}


@pytest.fixture
def registered(monkeypatch):
    """A conversion of 'slowfast' from 'pytorchvideo' for these tests (its names are the
    source's)."""
    monkeypatch.setitem(C._CONVERSIONS, ('pytorchvideo', 'slowfast'), (None, HEAD, {}))


def test_a_state_dict_converts_to_the_models_keys_in_its_order(slowfast_state, registered):
    shuffled = dict(reversed(list(slowfast_state.items())))
    shuffled = {k: v.astype(np.float64) if v.dtype == np.float32 else v
                for k, v in shuffled.items()}
    out = convert_state_dict('pytorchvideo', 'slowfast', shuffled)
    assert list(out) == list(slowfast_state)
    assert all(np.array_equal(out[k], slowfast_state[k]) for k in out)
    assert out[HEAD].dtype == np.float64                   # values as they came
    net = build_model('slowfast', 7, preset='paper')
    net.load_state_dict(out)


def test_every_problem_is_listed(slowfast_state, registered):
    broken = dict(slowfast_state)
    broken['blocks.9.extra.weight'] = np.zeros(3, np.float32)
    del broken['blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight']
    broken['blocks.0.multipathway_blocks.0.conv.weight'] = np.zeros((64, 3, 1, 3, 3), np.float32)
    with pytest.raises(ConversionError) as info:
        convert_state_dict('pytorchvideo', 'slowfast', broken)
    message = str(info.value)
    assert "1 key(s) with no place in 'slowfast': blocks.9.extra.weight" in message
    assert "missing: blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight" in message
    assert ("blocks.0.multipathway_blocks.0.conv.weight (64, 3, 1, 3, 3) (expected "
            "(64, 3, 1, 7, 7))") in message


def test_renamed_keys_and_clashes(slowfast_state, monkeypatch):
    monkeypatch.setitem(C._CONVERSIONS, ('torchvision', 'slowfast'),
                        (lambda k: k.replace('model.', '', 1), HEAD, {}))
    prefixed = {'model.' + k: v for k, v in slowfast_state.items()}
    assert list(convert_state_dict('torchvision', 'slowfast', prefixed)) == list(slowfast_state)
    prefixed['blocks.6.proj.bias'] = slowfast_state['blocks.6.proj.bias']
    with pytest.raises(ConversionError, match=r"several torchvision keys map to one key of "
                       r"'slowfast': blocks.6.proj.bias -> blocks.6.proj.bias"):
        convert_state_dict('torchvision', 'slowfast', prefixed)


def test_bad_arguments_name_what_is_known(slowfast_state, registered):
    with pytest.raises(ValueError,
                       match="source must be one of pytorchvideo, torchvision, got 'hf'"):
        convert_state_dict('hf', 'slowfast', {})
    with pytest.raises(ValueError, match="'nope' is no registered model from pytorchvideo"):
        convert_state_dict('pytorchvideo', 'nope', {})
    with pytest.raises(ValueError, match="'c3d' is a model without a conversion from pytorchvideo"):
        convert_state_dict('pytorchvideo', 'c3d', {})
    with pytest.raises(TypeError, match='must be a mapping of names to arrays, got list'):
        convert_state_dict('pytorchvideo', 'slowfast', [])
    with pytest.raises(ConversionError, match=r"no classifier weight 'blocks.6.proj.weight'"):
        convert_state_dict('pytorchvideo', 'slowfast', {'fc.weight': np.zeros((3, 4))})
    assert ('pytorchvideo', 'slowfast') in conversions()


def test_torch_tensors_convert_without_grad():
    torch = pytest.importorskip('torch', reason='torch is not installed (optional)')
    t = torch.ones(2, 3, requires_grad=True)
    assert np.array_equal(C._as_array(t, 'w'), np.ones((2, 3), np.float32))
    assert np.array_equal(C._as_array(tl.tensor(np.ones(2)), 'w'), np.ones(2))


def test_read_state_dict_files(tmp_path, slowfast_state):
    np.savez(tmp_path / 'w.npz', **{'a.weight': np.ones(3)})
    assert list(read_state_dict(tmp_path / 'w.npz')) == ['a.weight']
    with pytest.raises(FileNotFoundError, match='no such file'):
        read_state_dict(tmp_path / 'missing.npz')
    (tmp_path / 'w.bin').write_bytes(b'x')
    with pytest.raises(ValueError, match=r'expected a .npz of arrays or a PyTorch .pt, .pth or'):
        read_state_dict(tmp_path / 'w.bin')
    (tmp_path / 'bad.npz').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='is not a readable .npz of arrays'):
        read_state_dict(tmp_path / 'bad.npz')


def test_read_a_wrapped_pytorch_checkpoint_with_weights_only(tmp_path):
    torch = pytest.importorskip('torch', reason='torch is not installed (optional)')
    torch.save({'model_state': {'fc.weight': torch.ones(2, 3)}, 'epoch': 5}, tmp_path / 'c.pyth')
    state = read_state_dict(tmp_path / 'c.pyth')
    assert list(state) == ['fc.weight'] and state.skipped == ['epoch']

    class Code:                                   # pickled code: refused, not run
        def __reduce__(self):
            return (print, ('ran',))
    torch.save({'fc.weight': Code()}, tmp_path / 'evil.pt')
    with pytest.raises(ValueError, match='weights_only=True'):
        read_state_dict(tmp_path / 'evil.pt')


def test_convert_command(tmp_path, slowfast_state, registered, capsys):
    np.savez(tmp_path / 'sf.npz', **slowfast_state)
    out = tmp_path / 'out' / 'sf_tl.npz'
    assert cli.main(['convert', 'pytorchvideo', 'slowfast', str(tmp_path / 'sf.npz'),
                     '-o', str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"for slowfast with 7 classes: {out}" in printed
    loaded = tl.load(str(out))
    assert list(loaded) == list(slowfast_state)
    build_model('slowfast', 7, preset='paper').load_state_dict(loaded)
    # a missing file: exit 3; a pair it does not convert, a state dict that does not fit: exit 2
    assert cli.main(['convert', 'pytorchvideo', 'slowfast', str(tmp_path / 'no.npz'),
                     '-o', str(out)]) == 3
    assert cli.main(['convert', 'pytorchvideo', 'c3d', str(tmp_path / 'sf.npz'),
                     '-o', str(out)]) == 2
    np.savez(tmp_path / 'short.npz', **{HEAD: slowfast_state[HEAD]})
    assert cli.main(['convert', 'pytorchvideo', 'slowfast', str(tmp_path / 'short.npz'),
                     '-o', str(out)]) == 2
    assert "key(s) of 'slowfast' missing" in capsys.readouterr().err
    assert cli.main(['convert', 'pytorchvideo', 'slowfast', str(tmp_path / 'sf.npz'),
                     '-o', str(tmp_path / 'x.pt')]) == 2

"""Tensor construction, members, dtypes, devices, printing and the refusals of bad input."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite import backend


@pytest.mark.parametrize('data,dtype', [
    (1.5, tl.float32), ([1.0, 2.0], tl.float32), (3, tl.int64), ([[1, 2]], tl.int64),
    (True, tl.bool_), (np.ones(2), tl.float64), (np.ones(2, dtype=np.float32), tl.float32),
    (np.arange(3, dtype=np.int32), tl.int32), (np.float64(2.0), tl.float64),
])
def test_tensor_infers_dtype_as_pytorch(data, dtype):
    t = tl.tensor(data)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_tensor_copies_and_from_numpy_shares():
    a = np.zeros(3)
    t, s = tl.tensor(a), tl.from_numpy(a)
    a[0] = 7
    assert t.numpy()[0] == 0 and s.numpy()[0] == 7


@pytest.mark.parametrize('factory', ['zeros', 'ones', 'empty', 'rand', 'randn'])
def test_factories_take_sizes_as_varargs_or_a_tuple(factory):
    fn = getattr(tl, factory)
    assert fn(2, 3).shape == (2, 3) == fn((2, 3)).shape
    assert fn(2, dtype=tl.float64).dtype == tl.float64
    assert fn(2).dtype == tl.float32
    assert fn(2, requires_grad=True).requires_grad


def test_like_factories_full_and_arange():
    x = tl.randn(2, 3, dtype=tl.float64)
    for fn in (tl.zeros_like, tl.ones_like, tl.randn_like):
        y = fn(x)
        assert y.shape == (2, 3) and y.dtype == tl.float64
    assert tl.full((2,), 3).dtype == tl.int64
    assert tl.full((2,), 0.5).dtype == tl.float32
    np.testing.assert_array_equal(tl.full((2, 2), 7.0).numpy(), np.full((2, 2), 7.0))
    assert tl.arange(5).dtype == tl.int64 and tl.arange(0, 1, 0.25).dtype == tl.float32
    np.testing.assert_array_equal(tl.arange(1, 7, 2).numpy(), [1, 3, 5])


def test_manual_seed_makes_random_ops_reproducible():
    tl.manual_seed(123)
    a = (tl.rand(3).numpy(), tl.randn(4).numpy(), tl.functional.dropout(tl.ones(50), 0.5).numpy())
    tl.manual_seed(123)
    b = (tl.rand(3).numpy(), tl.randn(4).numpy(), tl.functional.dropout(tl.ones(50), 0.5).numpy())
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    tl.manual_seed(124)
    assert not np.array_equal(tl.rand(3).numpy(), a[0])


def test_members():
    x = tl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and x.device == 'cpu'
    assert x.is_leaf and x.grad is None and x.size(1) == 3 and len(x) == 2
    assert tl.tensor([4.0]).item() == 4.0
    d = x.detach()
    assert not d.requires_grad and d.numpy() is x.numpy()
    c = x.clone()
    assert c.grad_fn is not None and c.numpy() is not x.numpy()
    assert x.double().dtype == tl.float64 and x.float().dtype == tl.float32
    assert x.to(tl.float32).dtype == tl.float32 and x.to('cpu') is x
    assert np.asarray(x).shape == (2, 3)
    z = tl.ones(3)
    z.zero_()
    assert z.numpy().sum() == 0 and z._version == 1


def test_item_of_many_elements_says_the_shape():
    with pytest.raises(ValueError, match=r'\(2, 2\)'):
        tl.ones(2, 2).item()


def test_cast_is_differentiable():
    x = tl.tensor(np.ones(3), requires_grad=True)
    y = x.float() * 2
    y.sum().backward()
    assert x.grad.dtype == tl.float64
    np.testing.assert_allclose(x.grad.numpy(), 2.0)


def test_comparisons_give_bool_tensors_without_grad():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for r in (x > 1.5, x >= 2, x < 2, x <= 1, x == 2, x != 2):
        assert r.dtype == tl.bool_ and not r.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    assert hash(x) != hash(tl.tensor([1.0, 2.0, 3.0]))


def test_repr_looks_like_pytorch():
    assert repr(tl.tensor([1.0, 2.0])) == 'tensor([1., 2.])'
    assert repr(tl.tensor([1.0], requires_grad=True)) == 'tensor([1.], requires_grad=True)'
    assert repr(tl.tensor(np.array([1.0]))) == 'tensor([1.], dtype=tl.float64)'
    y = tl.tensor([1.0], requires_grad=True) * 2
    assert repr(y) == 'tensor([2.], grad_fn=<MulBackward>)'
    assert repr(tl.tensor([[1, 2], [3, 4]])) == 'tensor([[1, 2],\n        [3, 4]])'


@pytest.mark.parametrize('bad', ['complex64', np.complex128, 'float128', 'str'])
def test_unknown_dtypes_are_refused_by_name(bad):
    with pytest.raises(TypeError, match='unsupported dtype'):
        tl.zeros(2, dtype=bad)


def test_unsupported_array_dtype_is_refused():
    with pytest.raises(TypeError, match='complex128'):
        tl.tensor(np.ones(2, dtype=np.complex128))


def test_unknown_device_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tl.zeros(2, device='tpu')
    with pytest.raises(ValueError, match="'tpu' is neither a device"):
        tl.ones(2).to('tpu')


@pytest.mark.skipif(tl.cuda.is_available(), reason='a GPU is present')
def test_cuda_without_cupy_or_gpu_says_which_is_missing():
    with pytest.raises(RuntimeError) as info:
        tl.ones(2).to('cuda')
    msg = str(info.value)
    assert ('CuPy' in msg and 'not installed' in msg) or 'no CUDA device' in msg
    assert tl.cuda.is_available() is False


class _FakeGpuArray(np.ndarray):
    """A CPU array posing as a GPU array, to test the two-device check without a GPU."""


def test_an_op_on_two_devices_names_both(monkeypatch):
    monkeypatch.setattr(backend, 'device_of',
                        lambda x: 'cuda' if isinstance(x, _FakeGpuArray) else 'cpu')
    a = tl.ones(2)
    b = tl.Tensor(np.ones(2, dtype=np.float32).view(_FakeGpuArray))
    assert b.device == 'cuda'
    with pytest.raises(RuntimeError, match='Add: .*cpu and cuda'):
        a + b


def test_incompatible_shapes_name_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r'add.*\(2, 3\).*\(4,\)'):
        tl.ones(2, 3) + tl.ones(4)
    with pytest.raises(ValueError, match=r'matmul.*\(2, 3\).*\(4, 5\)'):
        tl.ones(2, 3) @ tl.ones(4, 5)


@pytest.mark.parametrize('name', ['add', 'sub', 'mul', 'div', 'neg', 'pow', 'reciprocal', 'abs',
                                  'sqrt', 'exp', 'log', 'maximum', 'minimum', 'clamp', 'where',
                                  'matmul', 'einsum', 'sum', 'mean', 'var', 'std', 'max', 'min',
                                  'logsumexp', 'argmax', 'reshape', 'transpose', 'permute', 'flatten',
                                  'squeeze', 'unsqueeze', 'cat', 'stack', 'split', 'chunk', 'gather',
                                  'relu', 'sigmoid', 'tanh', 'softmax', 'log_softmax', 'erf'])
def test_ops_are_reachable_from_tl_and_F_as_in_pytorch(name):
    assert getattr(tl, name) is getattr(tl.functional, name)


def test_method_forms_of_where_and_erf():
    x = tl.tensor([1.0, -2.0])
    np.testing.assert_array_equal(x.where(x > 0, 0.0).numpy(), [1.0, 0.0])
    np.testing.assert_allclose(x.erf().numpy(), [0.8427007, -0.9953223], rtol=1e-6)

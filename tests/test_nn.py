"""tensorlite.nn: Module bookkeeping, state dicts with PyTorch's keys and shapes, initialization,
containers, and the layers that need no convolution/pooling/normalization op."""
import math

import numpy as np
import pytest

import tensorlite as tl
import tensorlite.functional as F
import tensorlite.nn as nn
from helpers import check_grads


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(8, 4, bias=False)
        self.register_buffer('scale', tl.ones(4))
        self.register_buffer('cache', tl.zeros(3), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 3))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def test_parameters_buffers_and_modules_are_found_by_name():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ['blocks.0.fc1.weight', 'blocks.0.fc1.bias', 'blocks.0.fc2.weight',
                     'blocks.1.fc1.weight', 'blocks.1.fc1.bias', 'blocks.1.fc2.weight',
                     'head.1.weight', 'head.1.bias']
    assert [n for n, _ in net.named_buffers()] == ['blocks.0.scale', 'blocks.0.cache',
                                                   'blocks.1.scale', 'blocks.1.cache']
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(net.state_dict()) == ['blocks.0.scale'] + names[:3] + ['blocks.1.scale'] + \
        names[3:6] + names[6:]
    assert [n for n, _ in net.named_children()] == ['blocks', 'head']
    assert len(list(net.modules())) == 1 + 1 + 2 * 4 + 1 + 2
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(seq.parameters())) == 2


def test_assigning_a_plain_tensor_to_a_parameter_name_is_refused():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        lin.weight = tl.ones(2, 2)
    lin.weight = nn.Parameter(tl.ones(2, 2))
    assert lin.weight.numpy().sum() == 4


def test_unknown_attribute_names_the_class():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        nn.Linear(2, 2).wieght


def test_forward_backward_and_zero_grad():
    tl.manual_seed(0)
    net = Net()
    x = tl.randn(5, 4)
    net(x).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net(x).sum().backward()
    net.zero_grad(set_to_none=False)
    assert all(float(abs(p.grad).sum()) == 0 for p in net.parameters())


def test_train_eval_propagate_and_dropout_obeys_them():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = tl.ones(2, 4)
    net.eval()
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(x).numpy(), net[0](x).numpy())
    net.train()
    assert all(m.training for m in net.modules())


def test_to_double_float_keeps_parameter_objects_and_integer_buffers():
    bn = nn.BatchNorm3d(4)
    lin = nn.Linear(3, 2)
    net = nn.Sequential(lin, bn)
    w = lin.weight
    net.double()
    assert lin.weight is w and w.dtype == tl.float64 and bn.running_mean.dtype == tl.float64
    assert bn.num_batches_tracked.dtype == tl.int64
    net.float()
    assert w.dtype == tl.float32
    assert net.to('cpu') is net


@pytest.mark.skipif(tl.cuda.is_available(), reason='a GPU is present')
def test_module_to_cuda_without_a_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match='CuPy|CUDA device'):
        nn.Linear(2, 2).to('cuda')


def test_state_dict_round_trip_with_numpy_arrays():
    tl.manual_seed(1)
    a, b = Net(), Net()
    sd = {k: v.numpy().copy() for k, v in a.state_dict().items()}
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = tl.randn(3, 4)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_state_dict_tensors_are_detached_copies_of_nothing():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert not sd['weight'].requires_grad
    assert sd['weight'].numpy() is lin.weight.numpy()            # shares, as PyTorch


def test_load_state_dict_lists_every_problem():
    lin = nn.Linear(3, 2)
    sd = {'weight': np.zeros((3, 3), np.float32), 'extra.weight': np.zeros(1)}
    with pytest.raises(RuntimeError) as info:
        lin.load_state_dict(sd)
    msg = str(info.value)
    assert 'weight: checkpoint (3, 3), model (2, 3)' in msg
    assert 'missing keys: bias' in msg and 'unexpected keys: extra.weight' in msg
    with pytest.raises(RuntimeError, match='shape mismatch'):
        lin.load_state_dict(sd, strict=False)
    res = lin.load_state_dict({'weight': np.ones((2, 3)), 'junk': np.ones(1)}, strict=False)
    assert res.missing_keys == ['bias'] and res.unexpected_keys == ['junk']
    np.testing.assert_array_equal(lin.weight.numpy(), 1.0)
    assert lin.weight.dtype == tl.float32


def test_repr_tree_as_pytorch():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert repr(net) == ('Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n'
                         '  (1): ReLU()\n)')


def test_apply_visits_every_module_children_first():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == 'Net' and seen.count('Linear') == 5


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[-1], nn.ReLU) and isinstance(seq[:1], nn.Sequential)
    seq.append(nn.Tanh())
    assert [type(m).__name__ for m in seq] == ['Linear', 'ReLU', 'Tanh']
    ml = nn.ModuleList([nn.ReLU()])
    ml.insert(0, nn.Linear(1, 1))
    assert [n for n, _ in ml.named_parameters()] == ['0.weight', '0.bias']
    md = nn.ModuleDict({'a': nn.Linear(1, 2)})
    md['b'] = nn.ReLU()
    assert list(md.keys()) == ['a', 'b'] and 'a' in md
    assert [n for n, _ in md.named_parameters()] == ['a.weight', 'a.bias']
    with pytest.raises(IndexError, match='out of range'):
        seq[5]


def test_forward_hooks_see_inputs_and_outputs():
    lin = nn.Linear(2, 2)
    seen = []
    h = lin.register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    lin(tl.ones(3, 2))
    h.remove()
    lin(tl.ones(3, 2))
    assert seen == [(3, 2)]


@pytest.mark.parametrize('fan_in,shape,make', [
    (16, (4, 16), lambda: nn.Linear(16, 4)),
    (3 * 27, (8, 3, 3, 3, 3), lambda: nn.Conv3d(3, 8, 3)),
    (2 * 9, (8, 2, 3, 3), lambda: nn.Conv2d(4, 8, 3, groups=2)),
    (5 * 27, (4, 5, 3, 3, 3), lambda: nn.ConvTranspose3d(4, 10, 3, groups=2)),
])
def test_default_init_is_pytorchs(fan_in, shape, make):
    tl.manual_seed(0)
    m = make()
    w = m.weight.numpy()
    assert w.shape == shape
    bound = 1 / math.sqrt(fan_in)                 # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), .)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(m.bias.numpy()).max() <= bound
    assert abs(w.mean()) < bound / 3


def test_norm_layers_init_and_state_dict_names():
    bn = nn.BatchNorm3d(6)
    assert list(bn.state_dict()) == ['weight', 'bias', 'running_mean', 'running_var',
                                     'num_batches_tracked']
    np.testing.assert_array_equal(bn.weight.numpy(), 1)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert bn.num_batches_tracked.shape == () and bn.num_batches_tracked.dtype == tl.int64
    ln = nn.LayerNorm([4, 5])
    assert ln.weight.shape == (4, 5) and list(ln.state_dict()) == ['weight', 'bias']
    gn = nn.GroupNorm(2, 6)
    assert gn.weight.shape == (6,)
    with pytest.raises(ValueError, match='divisible'):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match='divisible by groups'):
        nn.Conv3d(3, 8, 3, groups=2)


def test_init_functions():
    tl.manual_seed(0)
    w = tl.empty(200, 300)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 500)
    nn.init.kaiming_normal_(w, nonlinearity='relu')
    assert abs(w.numpy().std() - math.sqrt(2 / 300)) < 0.005
    nn.init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04)
    assert np.abs(w.numpy()).max() <= 0.04
    nn.init.constant_(w, 3)
    assert (w.numpy() == 3).all()
    assert nn.init.calculate_gain('tanh') == 5 / 3


def test_embedding_forward_grad_and_padding_row():
    tl.manual_seed(0)
    emb = nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(emb.weight.numpy()[2], 0)
    idx = tl.tensor([[1, 2, 1], [5, 0, 2]])
    out = emb(idx)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[idx.numpy()])
    out.sum().backward()
    g = emb.weight.grad.numpy()
    np.testing.assert_array_equal(g[:, 0], [1, 2, 0, 0, 0, 1])    # repeats add, padding row none
    with pytest.raises(IndexError, match='index 6 is out of range for 6'):
        emb(tl.tensor([6]))


def test_embedding_gradchecks():
    w = tl.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    idx = tl.tensor([[0, 3, 3], [4, 1, 0]])
    check_grads(lambda t: F.embedding(idx, t), (w,))
    # the padding row's gradient is zero by definition (not the true derivative), so gradcheck
    # the padded lookup on indices without it; test_embedding_forward_grad_and_padding_row covers it
    check_grads(lambda t: F.embedding(idx, t, padding_idx=2), (w,))


def test_modules_of_elementwise_layers_match_functional():
    x = tl.randn(3, 4)
    for mod, fn in [(nn.ReLU(), F.relu), (nn.Tanh(), F.tanh), (nn.Sigmoid(), F.sigmoid),
                    (nn.GELU(), F.gelu), (nn.SiLU(), F.silu), (nn.Softmax(dim=1), lambda t: F.softmax(t, 1)),
                    (nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)), (nn.Identity(), lambda t: t),
                    (nn.Flatten(0), lambda t: t.reshape(-1))]:
        np.testing.assert_array_equal(mod(x).numpy(), fn(x).numpy())


@pytest.mark.optional
def test_state_dict_keys_and_shapes_match_pytorch_and_load():
    torch = pytest.importorskip('torch')
    tnet = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1), torch.nn.BatchNorm3d(8),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(),
                               torch.nn.Linear(8, 5), torch.nn.Embedding(7, 4, padding_idx=0),
                               torch.nn.LayerNorm(4), torch.nn.GroupNorm(2, 4),
                               torch.nn.ConvTranspose3d(4, 6, 2, stride=2))
    net = nn.Sequential(nn.Conv3d(3, 8, 3, padding=1), nn.BatchNorm3d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 5),
                        nn.Embedding(7, 4, padding_idx=0), nn.LayerNorm(4), nn.GroupNorm(2, 4),
                        nn.ConvTranspose3d(4, 6, 2, stride=2))
    tsd = tnet.state_dict()
    sd = net.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        assert tuple(sd[k].shape) == tuple(tsd[k].shape), k
    net.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    np.testing.assert_array_equal(net[0].weight.numpy(), tsd['0.weight'].numpy())


def test_get_submodule_walks_a_dotted_path():
    import tensorlite.nn as nn
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    assert net.get_submodule('') is net
    assert net.get_submodule('1.1') is net[1][1]
    with pytest.raises(AttributeError, match=r"Sequential has no submodule '2' \(in '1.2'\)"):
        net.get_submodule('1.2')

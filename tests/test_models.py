"""The registry's contract, for every registered model and variant: build_model at the tiny preset,
(N, 3, 16, 32, 32) clips in (two-stream also its flow stack), (N, num_classes) logits out, a finite
gradient for every parameter, a clear error for a 4-D input; and the registry's own errors."""
import numpy as np
import pytest

import tensorlite as tl
from tensorlite.models import build_model, list_models, summary

NAMES = list_models()


def inputs_for(name, n=2, rng=None):
    rng = rng or np.random.default_rng(0)
    clip = tl.tensor(rng.random((n, 3, 16, 32, 32), dtype=np.float32))
    if name.startswith('two_stream'):
        return [clip, tl.tensor(rng.standard_normal((n, 20, 32, 32), dtype=np.float32))]
    return [clip]


def test_every_family_is_registered():
    for family in ('single_frame', 'late_fusion', 'early_fusion', 'c3d', 'i3d', 'two_stream',
                   'slowfast', 'cnn_lstm', 'timesformer', 'vivit'):
        assert family in NAMES, f"{family} is not registered"
    for variant in ('vivit_factorized_encoder', 'timesformer_joint'):
        assert variant in NAMES


@pytest.mark.parametrize('name', NAMES)
def test_forward_backward_finite_gradients(name):
    tl.manual_seed(0)
    model = build_model(name, num_classes=5)
    model.train()
    logits = model(*inputs_for(name))
    assert logits.shape == (2, 5) and logits.dtype == tl.float32
    loss = tl.functional.cross_entropy(logits, tl.tensor(np.array([1, 3])))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert np.isfinite(p.grad.numpy()).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize('name', NAMES)
def test_four_d_input_is_refused_naming_the_shape(name):
    model = build_model(name, num_classes=5)
    args = inputs_for(name)
    args[0] = args[0][:, :, 0]                                    # (N, 3, 32, 32): no time axis
    with pytest.raises(ValueError, match=r'\(N, 3, '):
        model(*args)


def test_summary_runs_on_every_model():
    for name in NAMES:
        shapes = [tuple(t.shape) for t in inputs_for(name, n=1)]
        s = summary(build_model(name, num_classes=5), shapes if len(shapes) > 1 else shapes[0])
        assert s.total_params == sum(p.numel() for p in build_model(name, 5).parameters())
        assert s.total_macs > 0


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown model 'c4d'.*c3d"):
        build_model('c4d', 10)
    with pytest.raises(ValueError, match=r"preset must be one of \('tiny', 'paper'\)"):
        build_model('c3d', 10, preset='huge')
    with pytest.raises(ValueError, match=r'num_classes must be a positive int'):
        build_model('c3d', 0)

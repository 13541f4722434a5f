"""The reference libraries of the optional tests: torchvision's video ResNets and PyTorchVideo's hub
models, built with random weights (no download).  A test skips, saying why, when they are missing
(the `bench` extra installs them: pip install -e ".[bench]").

torchvision's wheel on PyPI is built against the CUDA build of torch; beside the CPU build
(torch==2.13.0+cpu) its package __init__ fails while registering its C operators ("operator
torchvision::nms does not exist").  The video models are plain torch.nn code, and PyTorchVideo
needs torchvision only to import: so when the normal import fails, `torchvision` is entered in
sys.modules as a bare package on its own folder, without running that __init__ (its C operators
are then absent: nothing these models use).
"""
import importlib
import importlib.util
import sys
import types

import pytest


def torch_or_skip():
    return pytest.importorskip('torch', reason='torch is not installed (pip install -e ".[bench]")')


def _import_torchvision():
    try:
        return importlib.import_module('torchvision')
    except ImportError:
        raise
    except Exception:                    # its C operators do not load beside this torch build
        for name in [m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        spec = importlib.util.find_spec('torchvision')
        package = types.ModuleType('torchvision')
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__, package.__spec__ = spec.origin, spec
        sys.modules['torchvision'] = package
        return package


def torchvision_video_or_skip():
    """torchvision.models.video (r3d_18, mc3_18, r2plus1d_18)."""
    torch_or_skip()
    if 'torchvision' not in sys.modules and importlib.util.find_spec('torchvision') is None:
        pytest.skip('torchvision is not installed (pip install -e ".[bench]")')
    _import_torchvision()
    return importlib.import_module('torchvision.models.video')


def pytorchvideo_hub_or_skip():
    """pytorchvideo.models.hub (slowfast_r50, i3d_r50, slow_r50, c2d_r50)."""
    torchvision_video_or_skip()
    if importlib.util.find_spec('pytorchvideo') is None:
        pytest.skip('pytorchvideo is not installed (pip install -e ".[bench]")')
    return importlib.import_module('pytorchvideo.models.hub')


def randomize_batch_norm(torch_model, seed=0):
    """Random running statistics and affine parameters in every BatchNorm of a torch model, so that
    a comparison in eval mode exercises them (fresh ones are 0 and 1)."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in torch_model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return torch_model

"""The lesson's video architectures, built only from tensorlite.nn (installed as tensorlite.models).

    from tensorlite.models import build_model, list_models, summary, inflate_2d_to_3d
    net = build_model('slowfast', num_classes=4)        # tiny preset
    print(summary(net, (1, 3, 16, 32, 32)))             # per-layer shapes, parameters, multiply-adds
    state = convert_state_dict('torchvision', 'r3d_18', torch_state_dict)   # pretrained weights

Every model maps (N, C, T, H, W) float32 clips to (N, num_classes) logits (two-stream also takes
the flow stack).  docs/models.md has one section per architecture.
"""
from .registry import (build_model, clip_overrides, input_shapes, list_models,  # noqa: F401
                       paper_num_classes, preset_clip, register_model)
from .summary import model_summary, summary  # noqa: F401
from .inflate import inflate_2d_to_3d  # noqa: F401
from .convert import (ConversionError, conversion_head, conversions,  # noqa: F401
                      convert_state_dict, read_state_dict, register_conversion)

"""The registry: every architecture by name, built at a preset.

    from tensorlite.models import build_model, list_models
    net = build_model('c3d', num_classes=101, preset='paper')      # the published configuration
    net = build_model('timesformer_joint', num_classes=4)          # the tiny preset, a variant

A model module registers a builder with `@register_model('name')`; the builder takes
`(num_classes, preset='tiny', **overrides)` and returns an nn.Module that maps (N, C, T, H, W)
float32 clips to (N, num_classes) logits.  `tiny` trains on synthetic 16 x 32 x 32 clips in seconds
per epoch on 2 cores; `paper` is the published configuration (docs/models.md, ../shared/REFERENCES.md).
Overrides are the builder's keyword arguments (e.g. `fusion='max'`, `frames=8`).

What each model is built for, declared where it registers:

    paper_num_classes('c3d')             # 101: the classes of the configuration 'paper' reproduces
    preset_clip('c3d', 'paper')          # (16, 112): its clip, T frames of size x size
    clip_overrides('c3d', 8, 64)         # the builder arguments for another clip
    input_shapes(model, 8, 64)           # [(1, 3, 8, 64, 64)] (two-stream adds its flow stack)
    build_model('c3d', 101, 'paper', **clip_overrides('c3d', 8, 64))
"""
PRESETS = ('tiny', 'paper')
TINY_CLIP = (16, 32)                  # every tiny preset: 16 frames of 32 x 32

_BUILDERS = {}
_FACTS = {}


class _Facts:
    __slots__ = ('paper_num_classes', 'paper_clip', 'clip_arguments')

    def __init__(self, paper_num_classes, paper_clip, clip_arguments):
        self.paper_num_classes, self.paper_clip = paper_num_classes, paper_clip
        self.clip_arguments = clip_arguments


def register_model(name, paper_num_classes=None, paper_clip=None, clip_arguments=None):
    """Decorator: register `builder(num_classes, preset='tiny', **overrides)` under `name`.

    paper_num_classes: the number of classes of the published configuration the 'paper' preset
    reproduces (its parameter count in ../shared/REFERENCES.md is with these).  paper_clip:
    (frames, size) of that configuration's input clip.  clip_arguments: a function
    (frames, size) -> the builder's keyword arguments that build the model for clips of `frames`
    frames of size x size, for a model that fixes them (a flatten into a fully connected layer,
    position embeddings, frames stacked into channels); None for a model that takes any clip."""
    def register(builder):
        if name in _BUILDERS:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        _BUILDERS[name] = builder
        _FACTS[name] = _Facts(paper_num_classes, paper_clip, clip_arguments)
        return builder
    return register


def list_models():
    """The registered names, sorted (families and their variants)."""
    _load_all()
    return sorted(_BUILDERS)


def build_model(name, num_classes, preset='tiny', **overrides):
    """The model `name` at `preset` ('tiny' or 'paper') with a `num_classes`-way classifier."""
    _load_all()
    if name not in _BUILDERS:
        raise ValueError(f"build_model: unknown model {name!r}; the models are: "
                         f"{', '.join(sorted(_BUILDERS))}")
    if preset not in PRESETS:
        raise ValueError(f"build_model: preset must be one of {PRESETS}, got {preset!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"build_model: num_classes must be a positive int, got {num_classes!r}")
    return _BUILDERS[name](num_classes, preset=preset, **overrides)


def paper_num_classes(name):
    """The number of classes of the published configuration `name`'s 'paper' preset reproduces
    (C3D 101 for UCF101, the Kinetics models 400, Karpathy et al.'s networks 487 for Sports-1M),
    so that build_model(name, paper_num_classes(name), preset='paper') has the published
    parameter count; None for a model registered without one."""
    return _facts(name, 'paper_num_classes').paper_num_classes


def preset_clip(name, preset='tiny'):
    """(frames, size): the clip `name` is built for at `preset` -- tiny 16 x 32 x 32 for every
    model, paper the published input (C3D 16 x 112, I3D and TimeSformer 8 x 224, ...)."""
    facts = _facts(name, 'preset_clip')
    if preset not in PRESETS:
        raise ValueError(f"preset_clip: preset must be one of {PRESETS}, got {preset!r}")
    if preset == 'tiny':
        return TINY_CLIP
    if facts.paper_clip is None:
        raise ValueError(f"preset_clip: {name!r} was registered without its paper clip; give the "
                         "frames and the size")
    return tuple(facts.paper_clip)


def clip_overrides(name, frames, size):
    """The build_model keyword arguments that make `name` take clips of `frames` frames of
    size x size: {} for a model that takes any clip (I3D, SlowFast), else what its builder needs
    (C3D frames= and size=, and clamp_time_pools=True below 16 frames; the transformers frames=
    and img_size=; the 2-D CNNs input_size=; two-stream also flow_length = min(10, frames - 1))."""
    facts = _facts(name, 'clip_overrides')
    for what, value in (('frames', frames), ('size', size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"clip_overrides: {what} must be a positive int, got {value!r}")
    return {} if facts.clip_arguments is None else dict(facts.clip_arguments(frames, size))


def input_shapes(model, frames, size, batch=1, channels=3):
    """The shapes a model takes for clips of `frames` frames of size x size: [(batch, channels,
    frames, size, size)], and for a two-stream model (one with `flow_length` L) also its flow
    stack (batch, 2L, size, size)."""
    shapes = [(batch, channels, frames, size, size)]
    flow_length = getattr(model, 'flow_length', None)
    if isinstance(flow_length, int):
        shapes.append((batch, 2 * flow_length, size, size))
    return shapes


def _facts(name, op):
    _load_all()
    if name not in _FACTS:
        raise ValueError(f"{op}: unknown model {name!r}; the models are: "
                         f"{', '.join(sorted(_BUILDERS))}")
    return _FACTS[name]


def _load_all():
    """Import every model module once, so that their @register_model lines have run."""
    import importlib
    import pkgutil
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith('_') and info.name != 'registry':
            importlib.import_module(f'{__package__}.{info.name}')

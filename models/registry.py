"""The registry: every architecture by name, built at a preset.

    from tensorlite.models import build_model, list_models
    net = build_model('c3d', num_classes=101, preset='paper')      # the published configuration
    net = build_model('timesformer_joint', num_classes=4)          # the tiny preset, a variant

A model module registers a builder with `@register_model('name')`; the builder takes
`(num_classes, preset='tiny', **overrides)` and returns an nn.Module that maps (N, C, T, H, W)
float32 clips to (N, num_classes) logits.  `tiny` trains on synthetic 16 x 32 x 32 clips in seconds
per epoch on 2 cores; `paper` is the published configuration (docs/models.md, ../shared/REFERENCES.md).
Overrides are the builder's keyword arguments (e.g. `fusion='max'`, `frames=8`).
"""
PRESETS = ('tiny', 'paper')

_BUILDERS = {}


def register_model(name):
    """Decorator: register `builder(num_classes, preset='tiny', **overrides)` under `name`."""
    def register(builder):
        if name in _BUILDERS:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        _BUILDERS[name] = builder
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


def _load_all():
    """Import every model module once, so that their @register_model lines have run."""
    import importlib
    import pkgutil
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith('_') and info.name != 'registry':
            importlib.import_module(f'{__package__}.{info.name}')

"""Runs of `tensorlite train`: what a run is, training one, and rebuilding its model.

    from tensorlite.train import run_training, evaluate_run, load_run
    result = run_training('c3d', 'synthetic:order', out='runs/c3d')    # as `tensorlite train`
    model, config = load_run('runs/c3d')          # the folder (best.npz, else last.npz) or a .npz
    metrics = evaluate_run('runs/c3d', views=3)['metrics']               # as `tensorlite eval`

A run folder holds `best.npz` (the epoch of the best validation accuracy) and `last.npz` (the last
epoch); a run is read from its best checkpoint when it has one. A checkpoint's
`config['model_config']` is the run's schema, a dict of plain values:

    name, preset, num_classes   the model, as build_model(name, num_classes, preset=...)
    overrides                   the build arguments that fix its clip (models.clip_overrides)
    frames, size                the clip it takes: frames of size x size
    flow_length                 two-stream: the flow stack's length; else None
    data, data_kind, classes    the data spec (synthetic:FAMILY or a folder) and its class names
    family, train_data_seed, val_data_seed       synthetic data
    data_path, val_split, split_seed             a folder: its held-out split per class
    seed, train                 the run's seed and training options (TRAIN_OPTIONS)

`run_training` and `evaluate_run` print what the commands print. Options or data that cannot
make a run raise RunError (a ValueError); a file or folder a run needs that is missing or
unreadable raises RunFileError (an OSError).
"""
import contextlib
import os

import numpy as np

from ..data.subset import stratified_split
from .inference import clip_sampler, folder_transform, read_frames

__all__ = ['run_training', 'evaluate_run', 'load_run', 'resolve_checkpoint', 'build_from_config',
           'model_overrides', 'make_datasets', 'train_recipe', 'RunError', 'RunFileError',
           'CHECKPOINT_NAMES', 'CLASS_FAMILIES', 'TRAIN_OPTIONS']

# the synthetic families a classifier can be trained on (localization and captioning are tasks of
# their own, with other targets)
CLASS_FAMILIES = ('scene', 'occluded', 'motion', 'order')
DEFAULT_FRAMES, DEFAULT_SIZE = 16, 32
VAL_CLIPS = 256                      # at most this many synthetic validation clips by default


class RunError(ValueError):
    """Options or data that cannot make the run asked for (`tensorlite` exits with 2)."""


class RunFileError(OSError):
    """A file or folder the run needs is missing or unreadable (`tensorlite` exits with 3)."""


#: the checkpoints a run folder may hold, in the order a run is read from
CHECKPOINT_NAMES = ('best.npz', 'last.npz')


def resolve_checkpoint(path):
    """A run folder -> its best.npz, else its last.npz; a file -> itself. FileNotFoundError
    naming what was looked for otherwise."""
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in CHECKPOINT_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"{path!r} is a folder without {' or '.join(CHECKPOINT_NAMES)}: "
                                f"not the --out folder of a `tensorlite train` run")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r}: no such run folder or checkpoint file (expected the "
                                f"--out folder of `tensorlite train`, or a .npz in it)")
    return path


def model_overrides(name, frames, size):
    """The build_model keyword arguments that set a model's clip length and frame size, for the
    models that fix them (tensorlite.models.clip_overrides: an MLP over a flattened map, position
    embeddings, stacked frames; C3D below 16 frames also clamps its time pools). I3D and SlowFast
    take any T and H, W (adaptive pooling), so they get none; so does a model registered by a
    user, which is built as it comes."""
    from ..models import clip_overrides
    return clip_overrides(name, frames, size)


def build_from_config(config):
    """The model a `tensorlite train` run describes (its checkpoint's 'model_config'), with fresh
    weights; ValueError naming the model and its clip when it cannot be built."""
    from ..models import build_model
    try:
        return build_model(config['name'], config['num_classes'], preset=config['preset'],
                           **config.get('overrides', {}))
    except (ValueError, TypeError) as e:
        raise ValueError(f"cannot build model {config['name']!r} (preset {config['preset']!r}, "
                         f"{config['frames']} frames of {config['size']}x{config['size']}): "
                         f"{e}") from None


def load_run(path):
    """(model with the run's weights, in eval mode, its model_config) from a run folder (best.npz,
    else last.npz) or a checkpoint file of `tensorlite train`.

    Raises FileNotFoundError (no such run), tensorlite.train.CheckpointError (a damaged file) and
    ValueError (a checkpoint not written by `tensorlite train`, or weights that do not fit)."""
    from .checkpoint import load_checkpoint
    path = resolve_checkpoint(path)
    info = load_checkpoint(path)
    config = (info['config'] or {}).get('model_config')
    if not isinstance(config, dict) or info['model'] is None:
        raise ValueError(f"{path!r} holds no model_config: it was not written by `tensorlite "
                         f"train`, so the model cannot be rebuilt")
    model = build_from_config(config)
    try:
        model.load_state_dict(info['model'])
    except Exception as e:
        raise ValueError(f"{path!r}: its weights do not fit the model its config describes: "
                         f"{e}") from None
    model.eval()
    return model, config



# ---- what a run trains on -----------------------------------------------------------------------

def check_model_name(name):
    from ..models import list_models
    models = list_models()
    if name not in models:
        raise RunError(f"unknown model {name!r}; expected one of: {', '.join(models)}")
    return name


def parse_data(spec):
    """'synthetic:FAMILY' -> ('synthetic', family); anything else is a VideoFolder root ->
    ('folder', absolute path).  RunError for a bad family, RunFileError for a missing folder."""
    if spec.startswith('synthetic:') or spec == 'synthetic':
        family = spec.partition(':')[2]
        if family not in CLASS_FAMILIES:
            raise RunError(f"--data synthetic:FAMILY needs a family among "
                           f"{', '.join(CLASS_FAMILIES)}, got {spec!r}")
        return 'synthetic', family
    if not os.path.isdir(spec):
        raise RunFileError(f"--data {spec!r} is neither synthetic:FAMILY (FAMILY one of "
                           f"{', '.join(CLASS_FAMILIES)}) nor an existing folder laid out as "
                           f"root/<class>/<video>")
    return 'folder', os.path.abspath(spec)


def _video_folder(root, **kwargs):
    from ..data import VideoFolder
    try:
        return VideoFolder(root, **kwargs)
    except FileNotFoundError as e:
        raise RunFileError(str(e)) from None


def _new_config(model, data, preset, frames, size, seed, val_split):
    """(the model_config of a new run but its 'train', the number of training videos of a folder
    or None)."""
    from ..data import SyntheticActions
    kind, where = parse_data(data)
    frames = DEFAULT_FRAMES if frames is None else frames
    size = DEFAULT_SIZE if size is None else size
    config = {'name': model, 'preset': preset, 'frames': frames, 'size': size, 'data': data,
              'data_kind': kind, 'seed': seed}
    if kind == 'synthetic':
        probe = SyntheticActions(where, 0)
        config.update(family=where, classes=list(probe.classes), num_classes=probe.num_classes,
                      train_data_seed=seed, val_data_seed=seed + 1)
        num_train = None
    else:
        folder = _video_folder(where)
        config.update(data_path=where, classes=list(folder.classes),
                      num_classes=len(folder.classes), val_split=val_split, split_seed=seed)
        num_train = len(stratified_split(folder.targets, val_split, seed)[0])
    config['overrides'] = model_overrides(model, frames, size)
    config['flow_length'] = config['overrides'].get('flow_length')
    return config, num_train


class SyntheticViews:
    """A SyntheticActions transform: K windows of `frames` frames spread over the rendered clip
    (MultiClip), each as (C, T, H, W) float32, stacked to (K, C, T, H, W)."""

    def __init__(self, views, frames):
        from ..data import MultiClip
        self.sampler = MultiClip(views, frames)

    def __call__(self, frames, rng=None):
        from ..data import ToTensor
        return np.stack([ToTensor()(frames[idx]) for idx in self.sampler(len(frames))])


class _SqueezeView:
    """SyntheticViews with one view gives (1, C, T, H, W) items: drop the view axis."""

    def __init__(self, dataset):
        self.dataset = dataset
        for attribute in ('classes', 'num_classes', 'chance', 'family'):
            setattr(self, attribute, getattr(dataset, attribute))

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        clip, target = self.dataset[i]
        return clip[0], target


class OneVideo:
    """One video file as a dataset of one labelled clip: its label is its folder's name, which must
    be one of the run's classes (e.g. data/jump/clip.mp4 is a 'jump')."""

    def __init__(self, path, classes, sampler, transform):
        label = os.path.basename(os.path.dirname(os.path.abspath(path)))
        if label not in classes:
            raise RunError(f"--data {path!r}: a single video is scored against the class named "
                           f"by its folder, {label!r}, which is not one of the run's classes "
                           f"{list(classes)}; to see what the model says, use tensorlite "
                           f"predict")
        self.path, self.classes, self.targets = path, list(classes), [list(classes).index(label)]
        self.sampler, self.transform = sampler, transform

    def __len__(self):
        return 1

    def __getitem__(self, i):
        from ..data import video_info
        range(1)[i]                               # IndexError past the one item
        chosen = self.sampler(video_info(self.path).num_frames)
        return self.transform(read_frames(self.path, chosen)), self.targets[0]


def make_datasets(config, split, num_clips=None, seed=None, views=1, video_frames=None,
                  skip_bad=False):
    """The dataset of one split ('train', 'val' or 'all') of a run's data, as `config` (the
    run's model_config) describes it, with flow stacks for a two-stream model.  skip_bad: a
    folder's unreadable videos are replaced by others (VideoFolder's skip_bad)."""
    from .. import data as D
    frames, size = config['frames'], config['size']
    if config['data_kind'] == 'synthetic':
        rendered = frames if video_frames is None else video_frames
        if rendered < frames:
            raise RunError(f"--video-frames must be >= the model's {frames} frames, "
                           f"got {rendered}")
        # the views (or the one clip of a longer rendered video) are MultiClip windows
        transform = SyntheticViews(views, frames) if views > 1 or rendered != frames else None
        dataset = D.SyntheticActions(config['family'], num_clips, num_frames=rendered,
                                     size=size, seed=seed, transform=transform)
        if transform is not None and views == 1:
            dataset = _SqueezeView(dataset)
    elif config['data_kind'] == 'file':
        dataset = OneVideo(config['data_path'], config['classes'],
                           clip_sampler(frames, False, views), folder_transform(size, False, views))
    else:
        training = split == 'train'
        dataset = _video_folder(config['data_path'], sampler=clip_sampler(frames, training, views),
                                transform=folder_transform(size, training, views),
                                skip_bad=skip_bad)
        if list(dataset.classes) != list(config['classes']):
            if split != 'all' or not set(dataset.classes) <= set(config['classes']):
                unknown = [c for c in dataset.classes if c not in config['classes']]
                raise RunError(f"the folder {config['data_path']!r} has classes "
                               f"{list(dataset.classes)}, the model was trained on "
                               f"{list(config['classes'])}"
                               + (f": {unknown} are not among them" if unknown else ""))
            dataset = D.Relabelled(dataset, config['classes'])
        if split != 'all':
            train, val = stratified_split(dataset.targets, config['val_split'],
                                          config['split_seed'])
            # a subset of its own: skip_bad's substitutes stay inside the split
            dataset = dataset.subset(train if split == 'train' else val)
    if config.get('flow_length'):
        if views > 1:
            raise RunError("--views > 1 is not supported for two-stream models (their flow "
                           "stack is computed from one clip)")
        dataset = D.WithFlowStack(dataset, flow_length=config['flow_length'])
    if len(dataset) == 0:
        raise RunError(f"the {split} split of {config['data']!r} is empty")
    return dataset


@contextlib.contextmanager
def _as_run_error():
    """A ValueError raised while building a run's model or data is the options' fault: a
    RunError with its message."""
    try:
        yield
    except RunError:
        raise
    except ValueError as e:
        raise RunError(str(e)) from None


def skipped_files(dataset):
    """The unreadable files a skip_bad dataset (possibly wrapped, e.g. in WithFlowStack) met, as
    recorded in this process (DataLoader workers send theirs here)."""
    while dataset is not None and not hasattr(dataset, 'bad_files'):
        dataset = getattr(dataset, 'dataset', None)
    return [] if dataset is None else list(dataset.bad_files)


def report_skipped(dataset, what):
    bad = skipped_files(dataset)
    if bad:
        print(f"{what}: skipped {len(bad)} unreadable video{'s' if len(bad) > 1 else ''} "
              f"(--skip-bad; a video of the same class stood in for each): "
              f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")


def class_counts(config, dataset):
    """Clips per class of a split: a folder split's `targets`; synthetic clip i has label
    i % num_classes (SyntheticActions' rule)."""
    num_classes = len(config['classes'])
    if config['data_kind'] == 'synthetic':
        n = len(dataset)
        return np.array([(n - c + num_classes - 1) // num_classes for c in range(num_classes)])
    targets = getattr(dataset, 'targets', None)
    if targets is None:
        targets = getattr(getattr(dataset, 'dataset', None), 'targets', None)   # WithFlowStack
    if targets is None:
        return None
    return np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes)


def print_run_start(config, train_set, val_set):
    """What a run trains on, before it starts: the classes, and the clips of each split (per class
    when known)."""
    classes = config['classes']
    print(f"data: {config['data']}: {len(classes)} classes: {', '.join(map(str, classes))}")
    for name, dataset in (('train', train_set), ('val', val_set)):
        if dataset is None:
            print(f"{name}: none (--val-split 0: no validation, and no best.npz)")
            continue
        counts = class_counts(config, dataset)
        per_class = '' if counts is None else ' (' + ', '.join(
            f"{c} {n}" for c, n in zip(classes, counts.tolist())) + ')'
        print(f"{name}: {len(dataset)} clips{per_class}")


# ---- how a run trains ---------------------------------------------------------------------------

# the training options a run stores (model_config['train']) and a resumed run takes from it when
# they are left out
TRAIN_OPTIONS = ('optimizer', 'lr', 'weight_decay', 'batch_size', 'epochs', 'clip_grad_norm',
                 'scheduler', 'warmup_epochs', 'num_clips')

# what a resumed run must share with the run it continues
RESUME_FIXED = ('name', 'preset', 'frames', 'size', 'data', 'overrides')


def train_recipe(model, kind, family=None, num_train=None, batch_size=None, clips=None):
    """The settings `tensorlite train` uses for what the command line leaves out: `compare`'s
    recipe for the model (optimizer, lr, weight decay, batch size, epochs, gradient clipping; a
    model compare does not know gets its default recipe). Synthetic data: the recipe of that
    family, with compare's number of training clips ('clips'). A folder: the recipe for 'scene'
    (classes told apart by what they show), with as many epochs as it takes to make the same number
    of optimizer steps over `num_train` videos. `clips` (synthetic) replaces compare's number of
    clips; the epochs then still make at least the recipe's minimum of steps."""
    from .. import compare
    try:
        compare.base_model(model)
        name = model
    except ValueError:
        name = None
    overrides = {} if batch_size is None else {'batch_size': batch_size}
    if kind == 'synthetic' and clips is not None:
        overrides['clips'] = clips
    if name is None:
        recipe = dict(compare.DEFAULT_RECIPE)
        recipe['clips'] = compare.FAMILY_CLIPS[family if kind == 'synthetic' else 'scene']
        recipe.update(overrides)
    else:
        recipe = compare.recipe_for(name, family if kind == 'synthetic' else 'scene', **overrides)
    if kind != 'synthetic' and num_train:
        steps = recipe['epochs'] * -(-recipe['clips'] // recipe['batch_size'])
        recipe['epochs'] = max(1, -(-steps // -(-num_train // recipe['batch_size'])))
        recipe['clips'] = num_train
    return recipe


def _fill_from_recipe(opts, config, num_train):
    """Fill the training options left out (None) from `train_recipe`; returns the recipe line."""
    synthetic = config['data_kind'] == 'synthetic'
    recipe = train_recipe(opts.model, config['data_kind'], config.get('family'), num_train,
                          opts.batch_size, opts.num_clips)
    for key in ('optimizer', 'lr', 'weight_decay', 'batch_size', 'epochs', 'clip_grad_norm'):
        if getattr(opts, key) is None:
            setattr(opts, key, recipe[key])
    if synthetic and opts.num_clips is None:
        opts.num_clips = recipe['clips']
    clip = 'no gradient clipping' if opts.clip_grad_norm is None else \
        f"gradient norm clipped at {opts.clip_grad_norm:g}"
    schedule = 'a constant rate' if opts.scheduler == 'none' else f"the {opts.scheduler} schedule"
    if opts.warmup_epochs:
        schedule += f" after {opts.warmup_epochs} warmup epoch(s)"
    return (f"recipe: {opts.optimizer} lr {opts.lr:g}, weight decay {opts.weight_decay:g}, "
            f"batch {opts.batch_size}, {opts.epochs} epoch(s), {clip}, {schedule} (compare's "
            f"recipe for {opts.model} fills what the command line leaves out)")


def default_run_folder(model, root='runs'):
    """'runs/<model>/<YYYYmmdd-HHMMSS>' (with '-2', '-3', ... if that exists already): where
    `tensorlite train` saves when no --out is given."""
    import time
    base = os.path.join(root, model, time.strftime('%Y%m%d-%H%M%S'))
    folder, k = base, 1
    while os.path.exists(folder):
        k += 1
        folder = f"{base}-{k}"
    return folder


def check_resume(opts, config, path):
    """Before resuming from `path`: the run's model and data (RESUME_FIXED) must be the saved
    run's, or a RunError lists what differs. The training options left out (None) are the saved
    run's; an optimizer or scheduler other than the saved one is refused, an lr or weight decay
    other than the saved one is reported as ignored (the optimizer state comes from the
    checkpoint).  An unreadable checkpoint is a RunFileError.  Returns the checkpoint's info."""
    from .checkpoint import CheckpointError, load_checkpoint
    try:
        info = load_checkpoint(path)
    except (CheckpointError, OSError) as e:
        raise RunFileError(f"--resume: {e}") from None
    saved_run = info['config'] or {}
    saved = saved_run.get('model_config') or {}
    changed = [f"{key}: the run has {saved.get(key)!r}, this command {config.get(key)!r}"
               for key in RESUME_FIXED if saved.get(key) != config.get(key)]
    if changed:
        raise RunError(f"--resume: {path} continues another run; refused because "
                       + '; '.join(changed) + " (give another --out to start a new run)")
    names = {'SGD': 'sgd', 'Adam': 'adam', 'AdamW': 'adamw'}
    kept = dict(saved.get('train') or {})
    kept.setdefault('optimizer', names.get(saved_run.get('optimizer')))
    groups = ((info['optimizer'] or {}).get('param_groups') or [{}])
    for key in ('lr', 'weight_decay'):
        if groups[0].get(key) is not None:
            kept[key] = float(groups[0][key])
    for flag, key in (('--optimizer', 'optimizer'), ('--scheduler', 'scheduler')):
        value = getattr(opts, key)
        if value is not None and kept.get(key) is not None and value != kept[key]:
            raise RunError(f"--resume: the run was trained with {key} {kept[key]}, this "
                           f"command asks for {value} ({flag}); refused")
    for flag, key in (('--lr', 'lr'), ('--weight-decay', 'weight_decay')):
        value = getattr(opts, key)
        if value is not None and kept.get(key) is not None and float(kept[key]) != float(value):
            print(f"resuming: keeps the run's {key} {kept[key]:g} from the checkpoint "
                  f"({flag} {value:g} is ignored)")
            setattr(opts, key, kept[key])
    for key in TRAIN_OPTIONS:
        if getattr(opts, key, None) is None and kept.get(key) is not None:
            setattr(opts, key, kept[key])
    return info


def epochs_finished(info):
    """How many epochs the run of a `fit` checkpoint has finished (its `epoch` counted from 0 in
    checkpoints written before tensorlite counted epochs from 1)."""
    done = info['epoch'] or 0
    if info['epoch'] is not None and not (info['config'] or {}).get('epochs_finished'):
        done += 1
    return done


def run_training(model, data='synthetic:scene', *, preset='tiny', frames=None, size=None,
                 epochs=None, batch_size=None, lr=None, optimizer=None, weight_decay=None,
                 clip_grad_norm=None, scheduler=None, warmup_epochs=None, shuffle=True,
                 sync_bn=False, num_clips=None, val_clips=None, val_split=0.2, seed=0, out=None,
                 resume=False, workers=0, device='cpu', progress=True, skip_bad=False):
    """Train a registered model with `fit`, as `tensorlite train` does (its --help explains each
    option; None takes compare's recipe for the model, printed at the start).  Under mpiexec, with
    the process group initialized (tensorlite.distributed), it trains data-parallel.  Saves
    last.npz, best.npz and the history in `out` (default runs/<model>/<date-time>).

    Returns {'model', 'data', 'config' (the model_config), 'optimizer', 'epochs', 'checkpoint',
    'history', 'final' (validation metrics, or None without validation)}."""
    from types import SimpleNamespace

    from .. import data as D
    from .. import distributed
    from ..optim import create_optimizer, create_scheduler
    from .checkpoint import CheckpointError
    from .loop import BEST_NAME, CHECKPOINT_NAME, evaluate, fit, seed_everything
    opts = SimpleNamespace(model=model, batch_size=batch_size, lr=lr, optimizer=optimizer,
                           weight_decay=weight_decay, epochs=epochs, clip_grad_norm=clip_grad_norm,
                           scheduler=scheduler, warmup_epochs=warmup_epochs, num_clips=num_clips)
    check_model_name(model)
    if resume and not out:
        raise RunError("--resume needs --out, the folder holding last.npz")
    world = distributed.get_world_size()
    if out is None:
        chosen = [default_run_folder(model)]
        if world > 1:                        # rank 0's clock names the run for every rank
            distributed.broadcast_object_list(chosen, src=0)
        out = chosen[0]
        print(f"saving the run to {out} (no --out given)")
    elif not resume and os.path.exists(os.path.join(out, CHECKPOINT_NAME)):
        raise RunError(f"--out {out!r} already holds a run ({CHECKPOINT_NAME}); pass "
                       f"--resume to continue it, or choose another --out: nothing was changed")
    if not 0 <= val_split < 1:
        raise RunError(f"--val-split must be in [0, 1), got {val_split}")
    if warmup_epochs and epochs is not None and warmup_epochs >= epochs:
        raise RunError(f"--warmup-epochs {warmup_epochs} must be fewer than --epochs {epochs}")
    config, num_train = _new_config(model, data, preset, frames, size, seed, val_split)
    resumed = None
    if resume and os.path.exists(os.path.join(out, CHECKPOINT_NAME)):
        resumed = check_resume(opts, config, os.path.join(out, CHECKPOINT_NAME))
    if opts.scheduler is None:
        opts.scheduler = 'none'
    if opts.warmup_epochs is None:
        opts.warmup_epochs = 0
    recipe_line = _fill_from_recipe(opts, config, num_train)
    if opts.warmup_epochs and opts.warmup_epochs >= opts.epochs:
        raise RunError(f"--warmup-epochs {opts.warmup_epochs} must be fewer than the "
                       f"{opts.epochs} epochs")
    config['train'] = {key: getattr(opts, key) for key in TRAIN_OPTIONS}
    if resumed is not None and opts.epochs <= epochs_finished(resumed):
        print(f"resuming: the run has already trained {epochs_finished(resumed)} epoch(s); "
              f"--epochs {opts.epochs} is reached, nothing more to train (give a larger --epochs "
              f"to continue)")
    seed_everything(seed)               # the model's initial weights: a run repeats bit for bit
    with _as_run_error():
        net = build_from_config(config)
    if getattr(net, 'flow_length', None) is not None:
        config['flow_length'] = int(net.flow_length)

    with _as_run_error():
        if config['data_kind'] == 'synthetic':
            train_set = make_datasets(config, 'train', opts.num_clips, config['train_data_seed'])
            val_count = val_clips or min(VAL_CLIPS, max(1, opts.num_clips // 4))
            val_set = make_datasets(config, 'val', val_count, config['val_data_seed'])
        else:
            train_set = make_datasets(config, 'train', skip_bad=skip_bad)
            val_set = make_datasets(config, 'val', skip_bad=skip_bad) if val_split > 0 else None
    if sync_bn:
        from ..nn import SyncBatchNorm
        net = SyncBatchNorm.convert_sync_batchnorm(net)
    loader = dict(batch_size=opts.batch_size, seed=seed, num_workers=workers)
    if world > 1:
        from ..nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(net)       # rank 0's initial weights on every rank
        train_loader = D.DataLoader(train_set, **loader, sampler=D.DistributedSampler(
            train_set, shuffle=shuffle, seed=seed))
        val_loader = None if val_set is None else D.DataLoader(
            val_set, **loader, sampler=D.DistributedSampler(val_set, shuffle=False))
    else:
        train_loader = D.DataLoader(train_set, shuffle=shuffle, **loader)
        val_loader = None if val_set is None else D.DataLoader(val_set, **loader)
    print_run_start(config, train_set, val_set)
    print(recipe_line)
    if world > 1:
        print(f"data parallel: {world} processes (mpiexec), each {len(train_loader)} batches of "
              f"{opts.batch_size} per epoch: a global batch of {opts.batch_size * world} clips"
              + ("; BatchNorm synchronized across them (--sync-bn)" if sync_bn else ""))
    optim = create_optimizer(opts.optimizer, net.parameters(), opts.lr, opts.weight_decay)
    schedule = create_scheduler(opts.scheduler, optim, opts.epochs, opts.warmup_epochs)
    try:
        history = fit(net, train_loader, val_loader, optimizer=optim, scheduler=schedule,
                      epochs=opts.epochs, clip_grad_norm=opts.clip_grad_norm, device=device,
                      checkpoint_dir=out, resume=resume, progress=progress, seed=seed,
                      config={'model_config': config})
    except CheckpointError as e:             # --resume from a damaged or foreign last.npz
        raise RunFileError(f"--resume: {e}") from None
    report_skipped(train_set, 'training')
    final = None
    if val_loader is not None:
        final = evaluate(net, val_loader, device=device)
        print(f"validation: top-1 {final['top1']:.3f}, mean class accuracy "
              f"{final['mean_class_accuracy']:.3f}, loss {final['loss']:.4f} "
              f"({final['num_samples']} clips)")
        report_skipped(val_set, 'validation')
    checkpoint = os.path.join(out, CHECKPOINT_NAME)
    best = os.path.join(out, BEST_NAME)
    print(f"checkpoint: {checkpoint}" + (f" (best validation accuracy: {best})"
                                         if os.path.exists(best) else ""))
    return {'model': model, 'data': data, 'config': config, 'optimizer': opts.optimizer,
            'epochs': opts.epochs, 'checkpoint': checkpoint, 'history': history, 'final': final}


# ---- evaluating a run ---------------------------------------------------------------------------

def _eval_data(config, data):
    """(the config to read `data` with, the split): the run's own data by default (a folder's
    validation split, new synthetic clips of the validation seed); `data` a video file, a folder
    with some of the run's classes, or synthetic:FAMILY with the run's classes."""
    from ..data import SyntheticActions
    config = dict(config)
    if data is not None and os.path.isfile(data):
        config.update(data_kind='file', data_path=os.path.abspath(data), data=data)
        return config, 'all'
    if data is not None and data != config['data']:
        kind, where = parse_data(data)
        if kind == 'synthetic':
            if config['data_kind'] != 'synthetic' or where != config['family']:
                classes = SyntheticActions(where, 0).classes
                if list(classes) != list(config['classes']):
                    raise RunError(f"the model was trained on classes {config['classes']}; "
                                   f"{data} has {list(classes)}")
            config.update(data_kind='synthetic', family=where, data=data)
            config.setdefault('val_data_seed', 1)
        else:
            config.update(data_kind='folder', data_path=where, data=data)
        return config, 'all'
    split = 'val' if config['data_kind'] == 'folder' else 'all'
    if split == 'val' and not config.get('val_split'):
        print("note: the run held out no validation videos (--val-split 0), so these are "
              "its training videos: the accuracy below is not a test accuracy (give --data "
              "a folder of other videos)")
        split = 'all'                       # trained without a held-out part: every video
    return config, split


def evaluate_run(run, data=None, *, num_clips=64, data_seed=None, views=1, video_frames=None,
                 batch_size=16, workers=0, temporal=False, device='cpu', progress=True,
                 skip_bad=False):
    """Evaluate a run (its folder, a checkpoint file, or a (model, model_config) pair from
    `load_run`) on labelled videos, as `tensorlite eval` does (its --help explains each option):
    by default the run's own validation data.  Returns {'checkpoint', 'model', 'data', 'classes',
    'views', 'metrics' (evaluate's), 'temporal' (temporal_diagnostic's, or None)}."""
    from ..data import DataLoader
    from .loop import evaluate, temporal_diagnostic
    checkpoint = None
    if isinstance(run, (str, os.PathLike)):
        checkpoint = resolve_checkpoint(run)
        print(f"evaluating {checkpoint}")
        model, config = load_run(checkpoint)
    else:
        model, config = run
    config, split = _eval_data(config, data)
    seed = config.get('val_data_seed', 1) if data_seed is None else data_seed
    with _as_run_error():
        dataset = make_datasets(config, split, num_clips, seed, views=views, skip_bad=skip_bad,
                                video_frames=video_frames)
    loader = DataLoader(dataset, batch_size=batch_size, seed=0, num_workers=workers)
    metrics = evaluate(model, loader, device=device, progress=progress,
                       num_classes=len(config['classes']))
    line = (f"{config['name']} on {config['data']} ({metrics['num_samples']} clips, "
            f"{views} view{'s' if views > 1 else ''}): top-1 {metrics['top1']:.3f}")
    if 'top5' in metrics:
        line += f", top-5 {metrics['top5']:.3f}"
    print(line + f", mean class accuracy {metrics['mean_class_accuracy']:.3f}, "
                 f"loss {metrics['loss']:.4f}")
    report_skipped(dataset, 'evaluation')
    diagnostic = None
    if temporal:
        diagnostic = temporal_diagnostic(model, loader, device=device, progress=progress)
        print(f"temporal diagnostic: accuracy {diagnostic['accuracy']:.3f}, reversed frames "
              f"{diagnostic['reversed_accuracy']:.3f}, shuffled frames "
              f"{diagnostic['shuffled_accuracy']:.3f} (chance {diagnostic['chance']:.3f})")
    return {'checkpoint': None if checkpoint is None else os.path.abspath(checkpoint),
            'model': config['name'], 'data': config['data'], 'classes': config['classes'],
            'views': views, 'metrics': metrics, 'temporal': diagnostic}

"""The `tensorlite` command line: train, evaluate, compare and inspect video models.

    tensorlite train --model c3d --data synthetic:motion --epochs 5 --out runs/c3d --json run.json
    tensorlite eval --checkpoint runs/c3d/last.npz --views 3 --temporal --plot confusion.png
    tensorlite compare --quick --models single_frame,c3d --families scene,order
    tensorlite compare --experiment sampling --json sampling.json --plot sampling.png
    tensorlite summary slowfast --preset paper
    tensorlite gradcheck gelu conv3d
    tensorlite flow video.mp4 -o flow.png --frames 0:9
    tensorlite bench conv -- --repeats 3
    tensorlite info --json info.json

`python -m tensorlite ...` is the same.  Every subcommand has --help; `--json PATH` writes what the
command measured as JSON (atomically, no NaN: a non-finite number is null).

Exit codes
----------
    0    success
    1    the command ran but a check failed (a gradcheck failure, a benchmark that failed), or an
         unexpected error (its message is printed; --traceback prints the traceback too)
    2    bad arguments: an unknown model, family, preset or device, a malformed value
    3    a missing or unreadable file: checkpoint, video, data folder, the benchmarks folder
    130  interrupted (Ctrl-C)

Errors go to stderr as `tensorlite <command>: error: <message>`.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

from .runs import clip_sampler, folder_transform, model_overrides, read_frames

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit codes:
  0    success
  1    a check failed (gradcheck, a benchmark) or an unexpected error (--traceback shows it)
  2    bad arguments: unknown model, family, preset or device, malformed value
  3    a missing or unreadable file (checkpoint, video, data folder, benchmarks folder)
  130  interrupted (Ctrl-C)"""

# the synthetic families a classifier can be trained on (localization and captioning are tasks of
# their own, with other targets)
CLASS_FAMILIES = ('scene', 'occluded', 'motion', 'order')
DEFAULT_FRAMES, DEFAULT_SIZE = 16, 32
VAL_CLIPS = 256                      # at most this many synthetic validation clips by default


class CLIError(Exception):
    """An error the command reports as one line, with the exit code it stands for."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


def usage_error(message):
    return CLIError(message, EXIT_USAGE)


def missing_error(message):
    return CLIError(message, EXIT_MISSING)


# ---- shared helpers -----------------------------------------------------------------------------

def _plain(value):
    """A JSON-able copy of `value`: NumPy scalars and arrays to Python numbers and lists, tuples to
    lists, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json(path, value):
    """Write `value` (made JSON-able by _plain) to `path` atomically; creates the parent folder."""
    from ._atomic import atomic_write
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = json.dumps(_plain(value), indent=1, allow_nan=False) + '\n'
    with atomic_write(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
    return path


def check_device(device):
    """'cpu' passes; 'cuda' passes only when CuPy imports and sees a GPU (or the device is
    simulated), else a usage error saying what is missing."""
    if device == 'cuda':
        from . import backend
        try:
            backend.check_cuda()
        except RuntimeError as e:
            raise usage_error(f"--device cuda is not usable here: {e}") from None


def check_plots_available(option='--plot'):
    """Fail before any work when a plot was asked for and matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise usage_error(f'{option} needs matplotlib, which is not installed: '
                          f'pip install -e ".[plot]" (or pip install matplotlib)') from None


def _plots():
    # imported when a plot is asked for: tensorlite.plots imports matplotlib lazily itself
    from . import plots
    return plots


def check_model_name(name):
    from .models import list_models
    models = list_models()
    if name not in models:
        raise usage_error(f"unknown model {name!r}; expected one of: {', '.join(models)}")
    return name


def parse_data(spec):
    """'synthetic:FAMILY' -> ('synthetic', family); anything else is a VideoFolder root ->
    ('folder', absolute path).  A bad family is a usage error; a missing folder exit 3."""
    if spec.startswith('synthetic:') or spec == 'synthetic':
        family = spec.partition(':')[2]
        if family not in CLASS_FAMILIES:
            raise usage_error(f"--data synthetic:FAMILY needs a family among "
                              f"{', '.join(CLASS_FAMILIES)}, got {spec!r}")
        return 'synthetic', family
    if not os.path.isdir(spec):
        raise missing_error(f"--data {spec!r} is neither synthetic:FAMILY (FAMILY one of "
                            f"{', '.join(CLASS_FAMILIES)}) nor an existing folder laid out as "
                            f"root/<class>/<video>")
    return 'folder', os.path.abspath(spec)


def build_from_config(config):
    """The model a `tensorlite train` run describes (tensorlite.runs.build_from_config); a model
    that cannot be built is a usage error."""
    from .runs import build_from_config as build
    try:
        return build(config)
    except ValueError as e:
        raise usage_error(str(e)) from None


def split_folder(targets, val_split, seed):
    """(train indices, val indices): `val_split` of each class's videos (at least one when the
    class has two or more) held out, chosen by a generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets)
    train, val = [], []
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        held = int(round(val_split * len(members)))
        if val_split > 0 and len(members) >= 2:
            held = min(max(held, 1), len(members) - 1)
        val += members[:held].tolist()
        train += members[held:].tolist()
    return sorted(train), sorted(val)


class SyntheticViews:
    """A SyntheticActions transform: K windows of `frames` frames spread over the rendered clip
    (MultiClip), each as (C, T, H, W) float32, stacked to (K, C, T, H, W)."""

    def __init__(self, views, frames):
        from .data import MultiClip
        self.sampler = MultiClip(views, frames)

    def __call__(self, frames, rng=None):
        from .data import ToTensor
        return np.stack([ToTensor()(frames[idx]) for idx in self.sampler(len(frames))])


def make_datasets(config, split, num_clips=None, seed=None, views=1, video_frames=None,
                  skip_bad=False):
    """The dataset of one split ('train', 'val' or 'all') of a run's data, as `config` (the
    checkpoint's model_config) describes it, with flow stacks for a two-stream model.  skip_bad:
    a folder's unreadable videos are replaced by others (VideoFolder's skip_bad)."""
    from . import data as D
    frames, size = config['frames'], config['size']
    if config['data_kind'] == 'synthetic':
        rendered = frames if video_frames is None else video_frames
        if rendered < frames:
            raise usage_error(f"--video-frames must be >= the model's {frames} frames, "
                              f"got {rendered}")
        # the views (or the one clip of a longer rendered video) are MultiClip windows
        transform = SyntheticViews(views, frames) if views > 1 or rendered != frames else None
        dataset = D.SyntheticActions(config['family'], num_clips, num_frames=rendered, size=size,
                                     seed=seed, transform=transform)
        if transform is not None and views == 1:
            dataset = _SqueezeView(dataset)
    elif config['data_kind'] == 'file':
        dataset = OneVideo(config['data_path'], config['classes'],
                           clip_sampler(frames, False, views), folder_transform(size, False, views))
    else:
        training = split == 'train'
        try:
            dataset = D.VideoFolder(config['data_path'], sampler=clip_sampler(frames, training, views),
                                    transform=folder_transform(size, training, views),
                                    skip_bad=skip_bad)
        except FileNotFoundError as e:
            raise missing_error(str(e)) from None
        if list(dataset.classes) != list(config['classes']):
            if split != 'all' or not set(dataset.classes) <= set(config['classes']):
                unknown = [c for c in dataset.classes if c not in config['classes']]
                raise usage_error(f"the folder {config['data_path']!r} has classes "
                                  f"{list(dataset.classes)}, the model was trained on "
                                  f"{list(config['classes'])}"
                                  + (f": {unknown} are not among them" if unknown else ""))
            dataset = Relabelled(dataset, config['classes'])
        if split != 'all':
            train, val = split_folder(dataset.targets, config['val_split'], config['split_seed'])
            # a subset of its own: skip_bad's substitutes stay inside the split
            dataset = dataset.subset(train if split == 'train' else val)
    if config.get('flow_length'):
        if views > 1:
            raise usage_error("--views > 1 is not supported for two-stream models (their flow "
                              "stack is computed from one clip)")
        dataset = D.WithFlowStack(dataset, flow_length=config['flow_length'])
    if len(dataset) == 0:
        raise usage_error(f"the {split} split of {config['data']!r} is empty")
    return dataset


class Relabelled:
    """A VideoFolder whose classes are some of a run's, matched by name: its labels become the
    run's class indices (the run's `classes`); `bad_files` and `targets` follow."""

    def __init__(self, dataset, classes):
        self.dataset, self.classes = dataset, list(classes)
        self.mapping = [self.classes.index(c) for c in dataset.classes]
        self.targets = [self.mapping[t] for t in dataset.targets]

    @property
    def bad_files(self):
        return self.dataset.bad_files

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        clip, label = self.dataset[i]
        return clip, self.mapping[label]


class OneVideo:
    """One video file as a dataset of one labelled clip: its label is its folder's name, which must
    be one of the run's classes (e.g. data/jump/clip.mp4 is a 'jump')."""

    def __init__(self, path, classes, sampler, transform):
        label = os.path.basename(os.path.dirname(os.path.abspath(path)))
        if label not in classes:
            raise usage_error(f"--data {path!r}: a single video is scored against the class named "
                              f"by its folder, {label!r}, which is not one of the run's classes "
                              f"{list(classes)}; to see what the model says, use tensorlite "
                              f"predict")
        self.path, self.classes, self.targets = path, list(classes), [list(classes).index(label)]
        self.sampler, self.transform = sampler, transform

    def __len__(self):
        return 1

    def __getitem__(self, i):
        from .data import video_info
        range(1)[i]                               # IndexError past the one item
        chosen = self.sampler(video_info(self.path).num_frames)
        return self.transform(read_frames(self.path, chosen)), self.targets[0]


def skipped_files(dataset):
    """The unreadable files a --skip-bad dataset (possibly wrapped, e.g. in WithFlowStack) met, as
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


def _class_counts(config, dataset):
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
        counts = _class_counts(config, dataset)
        per_class = '' if counts is None else ' (' + ', '.join(
            f"{c} {n}" for c, n in zip(classes, counts.tolist())) + ')'
        print(f"{name}: {len(dataset)} clips{per_class}")


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


def _positive(kind, name):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a {kind.__name__}, "
                                             f"got {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number > 0, got {text!r}"
                                             if kind is float else
                                             f"{name} must be > 0, got {text!r}")
        return value
    return parse


def _non_negative_float(name):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number >= 0, got {text!r}")
        return value
    return parse


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _comma_list(text):
    return [item.strip() for item in text.split(',') if item.strip()]


# ---- train --------------------------------------------------------------------------------------

def make_optimizer(name, parameters, lr, weight_decay):
    """'sgd' (momentum 0.9), 'adam' or 'adamw' over `parameters`; weight_decay None keeps the
    optimizer's own default."""
    from . import optim
    kwargs = {} if weight_decay is None else {'weight_decay': weight_decay}
    if name == 'sgd':
        return optim.SGD(parameters, lr=lr, momentum=0.9, **kwargs)
    cls = optim.Adam if name == 'adam' else optim.AdamW
    return cls(parameters, lr=lr, **kwargs)


SCHEDULERS = ('none', 'step', 'cosine')


def make_scheduler(name, optimizer, epochs, warmup_epochs=0):
    """The learning-rate schedule of `tensorlite train` (stepped once per epoch), or None:
    'none' a constant rate; 'step' x0.1 after each third of the epochs past the warmup; 'cosine'
    half a cosine from the rate to 0 over the epochs past the warmup. warmup_epochs > 0 first
    raises the rate linearly from rate / (warmup + 1) to the rate (LinearLR), then hands over."""
    from .optim import lr_scheduler as S
    if name not in SCHEDULERS:
        raise usage_error(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")
    rest = max(1, epochs - warmup_epochs)
    main = {'none': None,
            'step': lambda: S.StepLR(optimizer, step_size=max(1, rest // 3), gamma=0.1),
            'cosine': lambda: S.CosineAnnealingLR(optimizer, T_max=rest)}[name]
    if not warmup_epochs:
        return main() if main else None
    warmup = S.LinearLR(optimizer, start_factor=1.0 / (warmup_epochs + 1), total_iters=warmup_epochs)
    if main is None:
        return warmup
    return S.SequentialLR(optimizer, [warmup, main()], milestones=[warmup_epochs])


def train_recipe(model, kind, family=None, num_train=None, batch_size=None, clips=None):
    """The settings `tensorlite train` uses for what the command line leaves out: `compare`'s
    recipe for the model (optimizer, lr, weight decay, batch size, epochs, gradient clipping; a
    model compare does not know gets its default recipe). Synthetic data: the recipe of that
    family, with compare's number of training clips ('clips'). A folder: the recipe for 'scene'
    (classes told apart by what they show), with as many epochs as it takes to make the same number
    of optimizer steps over `num_train` videos. `clips` (synthetic) replaces compare's number of
    clips; the epochs then still make at least the recipe's minimum of steps."""
    from . import compare
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


def resolve_train_options(args, kind, family=None, num_train=None):
    """Fill the train options left out (None) from `train_recipe`; returns the recipe line."""
    recipe = train_recipe(args.model, kind, family, num_train, args.batch_size, args.num_clips)
    for key in ('optimizer', 'lr', 'weight_decay', 'batch_size', 'epochs', 'clip_grad_norm'):
        if getattr(args, key) is None:
            setattr(args, key, recipe[key])
    if kind == 'synthetic' and args.num_clips is None:
        args.num_clips = recipe['clips']
    clip = 'no gradient clipping' if args.clip_grad_norm is None else \
        f"gradient norm clipped at {args.clip_grad_norm:g}"
    schedule = 'a constant rate' if args.scheduler == 'none' else f"the {args.scheduler} schedule"
    if args.warmup_epochs:
        schedule += f" after {args.warmup_epochs} warmup epoch(s)"
    return (f"recipe: {args.optimizer} lr {args.lr:g}, weight decay {args.weight_decay:g}, "
            f"batch {args.batch_size}, {args.epochs} epoch(s), {clip}, {schedule} (compare's "
            f"recipe for {args.model} fills what the command line leaves out)")


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


# what a resumed run must share with the run it continues, and what it takes from the checkpoint
RESUME_FIXED = ('name', 'preset', 'frames', 'size', 'data', 'overrides')


# the training options a run stores (model_config['train']) and a resumed run takes from it when
# the command line leaves them out
TRAIN_OPTIONS = ('optimizer', 'lr', 'weight_decay', 'batch_size', 'epochs', 'clip_grad_norm',
                 'scheduler', 'warmup_epochs', 'num_clips')


def check_resume(args, config, path):
    """Before resuming from `path`: the run's model and data (RESUME_FIXED) must be the saved
    run's, or a usage error lists what differs. The training options the command line leaves out
    (None) are the saved run's; an --optimizer or --scheduler other than the saved one is refused,
    an --lr or --weight-decay other than the saved one is reported as ignored (the optimizer state
    comes from the checkpoint).  An unreadable checkpoint is exit 3.  Returns (the checkpoint's
    info, the lines it printed)."""
    from .train import load_checkpoint
    from .train.checkpoint import CheckpointError
    try:
        info = load_checkpoint(path)
    except (CheckpointError, OSError) as e:
        raise missing_error(f"--resume: {e}") from None
    saved_run = info['config'] or {}
    saved = saved_run.get('model_config') or {}
    changed = [f"{key}: the run has {saved.get(key)!r}, this command {config.get(key)!r}"
               for key in RESUME_FIXED if saved.get(key) != config.get(key)]
    if changed:
        raise usage_error(f"--resume: {path} continues another run; refused because "
                          + '; '.join(changed) + " (give another --out to start a new run)")
    lines = []
    names = {'SGD': 'sgd', 'Adam': 'adam', 'AdamW': 'adamw'}
    kept = dict(saved.get('train') or {})
    kept.setdefault('optimizer', names.get(saved_run.get('optimizer')))
    groups = ((info['optimizer'] or {}).get('param_groups') or [{}])
    for key in ('lr', 'weight_decay'):
        if groups[0].get(key) is not None:
            kept[key] = float(groups[0][key])
    for flag, key in (('--optimizer', 'optimizer'), ('--scheduler', 'scheduler')):
        value = getattr(args, key)
        if value is not None and kept.get(key) is not None and value != kept[key]:
            raise usage_error(f"--resume: the run was trained with {key} {kept[key]}, this "
                              f"command asks for {value} ({flag}); refused")
    for flag, key in (('--lr', 'lr'), ('--weight-decay', 'weight_decay')):
        value = getattr(args, key)
        if value is not None and kept.get(key) is not None and float(kept[key]) != float(value):
            lines.append(f"resuming: keeps the run's {key} {kept[key]:g} from the checkpoint "
                         f"({flag} {value:g} is ignored)")
            setattr(args, key, kept[key])
    for key in TRAIN_OPTIONS:
        if getattr(args, key, None) is None and kept.get(key) is not None:
            setattr(args, key, kept[key])
    for line in lines:
        print(line)
    return info, lines


def epochs_finished(info):
    """How many epochs the run of a `fit` checkpoint has finished (its `epoch` counted from 0 in
    checkpoints written before tensorlite counted epochs from 1)."""
    done = info['epoch'] or 0
    if info['epoch'] is not None and not (info['config'] or {}).get('epochs_finished'):
        done += 1
    return done


def join_mpi_job():
    """Under `mpiexec -n N`, join the process group (tensorlite.distributed) and keep the console
    to rank 0: the other ranks' stdout goes to /dev/null (errors still reach stderr). Returns
    (rank, world size); (0, 1) for a plain process."""
    from . import distributed
    if distributed.launched_by_mpi() and not distributed.is_initialized():
        distributed.init_process_group()
    rank, world = distributed.get_rank(), distributed.get_world_size()
    if rank != 0:
        sys.stdout = open(os.devnull, 'w')
    return rank, world


def cmd_train(args):
    from . import data as D
    from .train import evaluate, fit
    from .train.loop import BEST_NAME, CHECKPOINT_NAME, seed_everything
    check_model_name(args.model)
    check_device(args.device)
    if args.plot:
        check_plots_available()
    if args.resume and not args.out:
        raise usage_error("--resume needs --out, the folder holding last.npz")
    rank, world = join_mpi_job()
    if args.out is None:
        from . import distributed
        chosen = [default_run_folder(args.model)]
        if world > 1:                        # rank 0's clock names the run for every rank
            distributed.broadcast_object_list(chosen, src=0)
        args.out = chosen[0]
        print(f"saving the run to {args.out} (no --out given)")
    elif not args.resume and os.path.exists(os.path.join(args.out, CHECKPOINT_NAME)):
        raise usage_error(f"--out {args.out!r} already holds a run ({CHECKPOINT_NAME}); pass "
                          f"--resume to continue it, or choose another --out: nothing was "
                          f"changed")
    if not 0 <= args.val_split < 1:
        raise usage_error(f"--val-split must be in [0, 1), got {args.val_split}")
    if args.warmup_epochs and args.epochs is not None and args.warmup_epochs >= args.epochs:
        raise usage_error(f"--warmup-epochs {args.warmup_epochs} must be fewer than --epochs "
                          f"{args.epochs}")
    kind, where = parse_data(args.data)
    frames = DEFAULT_FRAMES if args.frames is None else args.frames
    size = DEFAULT_SIZE if args.size is None else args.size

    config = {'name': args.model, 'preset': args.preset, 'frames': frames, 'size': size,
              'data': args.data, 'data_kind': kind, 'seed': args.seed}
    if kind == 'synthetic':
        probe = D.SyntheticActions(where, 0)
        config.update(family=where, classes=list(probe.classes), num_classes=probe.num_classes,
                      train_data_seed=args.seed, val_data_seed=args.seed + 1)
    else:
        try:
            folder = D.VideoFolder(where)
        except FileNotFoundError as e:
            raise missing_error(str(e)) from None
        config.update(data_path=where, classes=list(folder.classes),
                      num_classes=len(folder.classes), val_split=args.val_split,
                      split_seed=args.seed)
    config['overrides'] = model_overrides(args.model, frames, size)
    config['flow_length'] = config['overrides'].get('flow_length')
    num_train = None
    if kind == 'folder':
        num_train = len(split_folder(folder.targets, args.val_split, args.seed)[0])
    resumed = None
    if args.resume and os.path.exists(os.path.join(args.out, CHECKPOINT_NAME)):
        resumed, _ = check_resume(args, config, os.path.join(args.out, CHECKPOINT_NAME))
    if args.scheduler is None:
        args.scheduler = 'none'
    if args.warmup_epochs is None:
        args.warmup_epochs = 0
    recipe_line = resolve_train_options(args, kind, where if kind == 'synthetic' else None,
                                        num_train)
    if args.warmup_epochs and args.warmup_epochs >= args.epochs:
        raise usage_error(f"--warmup-epochs {args.warmup_epochs} must be fewer than the "
                          f"{args.epochs} epochs")
    config['train'] = {key: getattr(args, key) for key in TRAIN_OPTIONS}
    if resumed is not None and args.epochs <= epochs_finished(resumed):
        print(f"resuming: the run has already trained {epochs_finished(resumed)} epoch(s); "
              f"--epochs {args.epochs} is reached, nothing more to train (give a larger --epochs "
              f"to continue)")
    seed_everything(args.seed)          # the model's initial weights: a run repeats bit for bit
    model = build_from_config(config)
    if getattr(model, 'flow_length', None) is not None:
        config['flow_length'] = int(model.flow_length)

    try:
        if kind == 'synthetic':
            train_set = make_datasets(config, 'train', args.num_clips, config['train_data_seed'])
            val_clips = args.val_clips or min(VAL_CLIPS, max(1, args.num_clips // 4))
            val_set = make_datasets(config, 'val', val_clips, config['val_data_seed'])
        else:
            train_set = make_datasets(config, 'train', skip_bad=args.skip_bad)
            val_set = make_datasets(config, 'val', skip_bad=args.skip_bad) \
                if args.val_split > 0 else None
    except ValueError as e:                    # e.g. a family that needs more frames
        raise usage_error(str(e)) from None
    if args.sync_bn:
        from .nn import SyncBatchNorm
        model = SyncBatchNorm.convert_sync_batchnorm(model)
    if world > 1:
        from .nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(model)       # rank 0's initial weights on every rank
        train_loader = D.DataLoader(train_set, batch_size=args.batch_size, seed=args.seed,
                                    num_workers=args.workers,
                                    sampler=D.DistributedSampler(train_set, shuffle=not args.no_shuffle,
                                                                 seed=args.seed))
        val_loader = None if val_set is None else D.DataLoader(
            val_set, batch_size=args.batch_size, seed=args.seed, num_workers=args.workers,
            sampler=D.DistributedSampler(val_set, shuffle=False))
    else:
        train_loader = D.DataLoader(train_set, batch_size=args.batch_size,
                                    shuffle=not args.no_shuffle, seed=args.seed,
                                    num_workers=args.workers)
        val_loader = None if val_set is None else D.DataLoader(
            val_set, batch_size=args.batch_size, seed=args.seed, num_workers=args.workers)
    print_run_start(config, train_set, val_set)
    print(recipe_line)
    if world > 1:
        print(f"data parallel: {world} processes (mpiexec), each {len(train_loader)} batches of "
              f"{args.batch_size} per epoch: a global batch of {args.batch_size * world} clips"
              + ("; BatchNorm synchronized across them (--sync-bn)" if args.sync_bn else ""))
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    scheduler = make_scheduler(args.scheduler, optimizer, args.epochs, args.warmup_epochs)
    from .train.checkpoint import CheckpointError
    try:
        history = fit(model, train_loader, val_loader, optimizer=optimizer, scheduler=scheduler,
                      epochs=args.epochs, clip_grad_norm=args.clip_grad_norm,
                      device=args.device, checkpoint_dir=args.out, resume=args.resume,
                      progress='epochs' if args.no_progress else True, seed=args.seed,
                      config={'model_config': config})
    except CheckpointError as e:             # --resume from a damaged or foreign last.npz
        raise missing_error(f"--resume: {e}") from None
    report_skipped(train_set, 'training')
    final = None
    if val_loader is not None:
        final = evaluate(model, val_loader, device=args.device)
        print(f"validation: top-1 {final['top1']:.3f}, mean class accuracy "
              f"{final['mean_class_accuracy']:.3f}, loss {final['loss']:.4f} "
              f"({final['num_samples']} clips)")
        report_skipped(val_set, 'validation')
    checkpoint = os.path.join(args.out, CHECKPOINT_NAME)
    best = os.path.join(args.out, BEST_NAME)
    print(f"checkpoint: {checkpoint}" + (f" (best validation accuracy: {best})"
                                         if os.path.exists(best) else ""))
    if args.json:
        write_json(args.json, {'model': args.model, 'data': args.data, 'config': config,
                               'optimizer': args.optimizer, 'epochs': args.epochs,
                               'checkpoint': checkpoint, 'history': history, 'final': final})
    if args.plot:
        _plots().plot_history(history, args.plot)
        print(f"learning curves: {args.plot}")
    return EXIT_OK


# ---- eval ---------------------------------------------------------------------------------------

def load_run(path, option='RUN'):
    """(model with the run's weights, its model_config, the checkpoint file) from a run folder
    (best.npz, else last.npz) or a checkpoint file of `tensorlite train` (tensorlite.runs);
    anything unreadable is exit 3."""
    from .runs import load_run as load, resolve_checkpoint
    from .train import CheckpointError
    try:
        checkpoint = resolve_checkpoint(path)
        model, config = load(checkpoint)
    except (FileNotFoundError, CheckpointError, OSError, ValueError) as e:
        raise missing_error(f"{option} {path!r}: {e}") from None
    return model, config, checkpoint


def cmd_eval(args):
    from . import data as D
    from .train import evaluate, temporal_diagnostic
    check_device(args.device)
    if args.plot:
        check_plots_available()
    if args.run is not None and args.checkpoint is not None:
        raise usage_error("give the run either as RUN or as --checkpoint, not both")
    if args.run is None and args.checkpoint is None:
        raise usage_error("which run? give RUN: a `tensorlite train` --out folder (its best.npz, "
                          "else last.npz) or a checkpoint file")
    model, config, checkpoint = load_run(args.run or args.checkpoint,
                                         'RUN' if args.run else '--checkpoint')
    print(f"evaluating {checkpoint}")
    config = dict(config)
    if args.data is not None and os.path.isfile(args.data):
        config.update(data_kind='file', data_path=os.path.abspath(args.data), data=args.data)
        split = 'all'
    elif args.data is not None and args.data != config['data']:
        kind, where = parse_data(args.data)
        if kind == 'synthetic':
            if config['data_kind'] != 'synthetic' or where != config['family']:
                classes = D.SyntheticActions(where, 0).classes
                if list(classes) != list(config['classes']):
                    raise usage_error(f"the model was trained on classes {config['classes']}; "
                                      f"{args.data} has {list(classes)}")
            config.update(data_kind='synthetic', family=where, data=args.data)
            config.setdefault('val_data_seed', 1)
        else:
            config.update(data_kind='folder', data_path=where, data=args.data)
        split = 'all'
    else:
        split = 'val' if config['data_kind'] == 'folder' else 'all'
        if split == 'val' and not config.get('val_split'):
            split = 'all'                       # trained without a held-out part: every video
            print("note: the run held out no validation videos (--val-split 0), so these are "
                  "its training videos: the accuracy below is not a test accuracy (give --data "
                  "a folder of other videos)")
    seed = config.get('val_data_seed', 1) if args.data_seed is None else args.data_seed
    try:
        dataset = make_datasets(config, split, args.num_clips, seed, views=args.views,
                                skip_bad=args.skip_bad,
                                video_frames=args.video_frames)
    except ValueError as e:
        raise usage_error(str(e)) from None
    loader = D.DataLoader(dataset, batch_size=args.batch_size, seed=0, num_workers=args.workers)
    metrics = evaluate(model, loader, device=args.device, progress=not args.no_progress,
                       num_classes=len(config['classes']))
    line = (f"{config['name']} on {config['data']} ({metrics['num_samples']} clips, "
            f"{args.views} view{'s' if args.views > 1 else ''}): top-1 {metrics['top1']:.3f}")
    if 'top5' in metrics:
        line += f", top-5 {metrics['top5']:.3f}"
    print(line + f", mean class accuracy {metrics['mean_class_accuracy']:.3f}, "
                 f"loss {metrics['loss']:.4f}")
    report_skipped(dataset, 'evaluation')
    temporal = None
    if args.temporal:
        temporal = temporal_diagnostic(model, loader, device=args.device,
                                       progress=not args.no_progress)
        print(f"temporal diagnostic: accuracy {temporal['accuracy']:.3f}, reversed frames "
              f"{temporal['reversed_accuracy']:.3f}, shuffled frames "
              f"{temporal['shuffled_accuracy']:.3f} (chance {temporal['chance']:.3f})")
    if args.json:
        write_json(args.json, {'checkpoint': os.path.abspath(checkpoint),
                               'model': config['name'], 'data': config['data'],
                               'classes': config['classes'], 'views': args.views,
                               'metrics': metrics, 'temporal': temporal})
    if args.plot:
        _plots().plot_confusion_matrix(metrics['confusion_matrix'], args.plot,
                                       class_names=list(config['classes']))
        print(f"confusion matrix: {args.plot}")
    return EXIT_OK


# ---- predict ------------------------------------------------------------------------------------

def cmd_predict(args):
    from .data import VideoReadError
    from .runs import predict
    check_device(args.device)
    model, config, checkpoint = load_run(args.run)
    for video in args.videos:
        if not os.path.exists(video):
            raise missing_error(f"video {video!r} not found")
    try:
        results = predict((model, config), args.videos, topk=args.topk, views=args.views,
                          device=args.device)
    except VideoReadError as e:
        raise missing_error(str(e)) from None
    except ValueError as e:
        raise usage_error(str(e)) from None
    print(f"{config['name']} from {checkpoint} ({len(config['classes'])} classes, {args.views} "
          f"view{'s' if args.views > 1 else ''} per video)")
    for item in results:
        shown = ', '.join(f"{p['label']} {p['probability']:.3f}" for p in item['predictions'])
        print(f"{item['video']}: {shown}")
    if args.json:
        write_json(args.json, results)
    return EXIT_OK


# ---- compare ------------------------------------------------------------------------------------

def cmd_experiment(args):
    """`tensorlite compare --experiment NAME`: one of tensorlite.experiments' runs."""
    if args.models is not None or args.families is not None:
        raise usage_error(f"--models and --families do not go with --experiment (the experiment "
                          f"{args.experiment!r} fixes its models and data)")
    if args.device != 'cpu':
        raise usage_error(f"--experiment runs on the CPU only, got --device {args.device}")
    if args.plot:
        check_plots_available()
    from . import compare, experiments
    jobs = args.jobs if args.jobs is not None else compare.default_jobs()
    result = experiments.run_experiment(args.experiment, quick=args.quick, seed=args.seed,
                                        progress=not args.no_progress, jobs=jobs)
    print(experiments.format_experiment(result))
    if args.quick:
        print("(the quick run does not promise the claims: too few clips and steps)")
    if args.json:
        write_json(args.json, result)
    if args.plot:
        _plots().plot_experiment(result, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


def cmd_compare(args):
    if args.experiment:
        return cmd_experiment(args)
    check_device(args.device)
    if args.plot:
        check_plots_available()
    models = None
    if args.models is not None:
        models = _comma_list(args.models)
        if not models:
            raise usage_error(f"--models needs comma-separated model names, got {args.models!r}")
        for name in models:
            check_model_name(name)
    families = None
    if args.families is not None:
        families = _comma_list(args.families)
        bad = [f for f in families if f not in CLASS_FAMILIES]
        if bad or not families:
            raise usage_error(f"--families must be comma-separated names among "
                              f"{', '.join(CLASS_FAMILIES)}, got {args.families!r}")
    from . import compare
    join_mpi_job()
    jobs = args.jobs if args.jobs is not None else compare.default_jobs()
    records = compare.run_compare(models=models, families=families, quick=args.quick,
                                  seed=args.seed, device=args.device,
                                  progress=not args.no_progress, jobs=jobs)
    print(compare.format_table(records))
    checks = compare.lesson_checks(records)
    if checks:
        print("the lesson's claims" + (" (the quick run does not promise them: too few clips "
                                       "for the models that read time)" if args.quick else "")
              + ":")
        for claim, passed in checks:
            print(f"  {'yes' if passed else 'NO '}  {claim}")
    for finding in compare.lesson_findings(records):
        print(finding)
    if args.json:
        write_json(args.json, records)
    if args.plot:
        _plots().plot_compare(records, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


# ---- summary ------------------------------------------------------------------------------------

def parse_shape(text):
    try:
        shape = tuple(int(d) for d in text.replace('x', ',').split(','))
    except ValueError:
        shape = ()
    if len(shape) != 5 or min(shape) < 1:
        raise usage_error(f"--input-shape must be five positive ints N,C,T,H,W, got {text!r}")
    return shape


def cmd_summary(args):
    from .models import model_summary
    check_model_name(args.model)
    frames, size, batch = args.frames, args.size, 1
    if args.input_shape is not None:
        if args.frames is not None or args.size is not None:
            raise usage_error("give either --input-shape or --frames/--size, not both")
        batch, channels, frames, height, width = parse_shape(args.input_shape)
        if height != width:
            raise usage_error(f"--input-shape: frames must be square (H = W), got "
                              f"{height}x{width}")
        if channels != 3:
            raise usage_error(f"--input-shape: clips are RGB (C = 3), got C = {channels}")
        size = height
    try:
        result = model_summary(args.model, args.num_classes, preset=args.preset, frames=frames,
                               size=size, batch=batch)
    except ValueError as e:                   # a clip the model cannot take, named by the model
        raise usage_error(f"{args.model}: {e}") from None
    print(result)
    if args.json:
        layers = [{'name': r.name, 'type': r.kind, 'output_shape': r.shape, 'params': r.params,
                   'macs': r.macs, 'activation_bytes': r.activation_bytes, 'leaf': r.leaf,
                   'calls': r.calls}
                  for r in result.rows]
        write_json(args.json, {'model': args.model, 'preset': args.preset,
                               'num_classes': result.config['num_classes'],
                               'frames': result.config['frames'], 'size': result.config['size'],
                               'input_shapes': result.input_shapes,
                               'layers': layers, 'total_params': result.total_params,
                               'total_macs': result.total_macs,
                               'total_activation_bytes': result.total_activation_bytes})
    return EXIT_OK


# ---- gradcheck ----------------------------------------------------------------------------------

def cmd_gradcheck(args):
    from . import gradcheck_suite as G
    names = G.matching_ops(args.words)
    if not names:
        raise usage_error(f"no op name contains any of {args.words}; the ops are: "
                          f"{', '.join(G.OPS)}")
    print(G.format_header(), flush=True)

    def show(row):
        for message in row['errors']:
            print(f"  {row['op']}: {message}", file=sys.stderr)
        print(G.format_row(row), flush=True)

    rows = G.run_suite(args.words, seed=args.seed, on_row=show)
    print(G.format_footer(rows))
    failed = [row['op'] for row in rows if row['failed']]
    if args.json:
        write_json(args.json, {'rows': rows, 'checked': len(rows), 'failed': failed})
    if failed:
        raise CLIError(f"{len(failed)} of {len(rows)} ops failed: {', '.join(failed)}")
    return EXIT_OK


# ---- flow ---------------------------------------------------------------------------------------

def parse_frame_range(text, num_frames):
    """'a:b' (b exclusive; either may be empty or negative, as a Python slice) -> frame indices,
    at least two."""
    start, sep, stop = text.partition(':')
    try:
        start = int(start) if start.strip() else None
        stop = int(stop) if stop.strip() else None
    except ValueError:
        start = sep = None
    if not sep:
        raise usage_error(f"--frames must be a:b (frame indices, b exclusive), got {text!r}")
    indices = np.arange(num_frames)[slice(start, stop)]
    if len(indices) < 2:
        raise usage_error(f"--frames {text!r} selects {len(indices)} of the video's {num_frames} "
                          f"frames; flow needs at least 2")
    return indices


def cmd_flow(args):
    from . import data as D
    from .data.flow import flow_to_color
    from .plots import flow_scale
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in ('.png', '.gif'):
        raise usage_error(f"-o/--output must end in .png (a figure) or .gif (an animation), "
                          f"got {args.output!r}")
    if ext == '.png':
        check_plots_available('-o .png')
    if args.max_flow is not None and not args.max_flow > 0:
        raise usage_error(f"--max-flow must be > 0 pixels, got {args.max_flow}")
    if not os.path.exists(args.video):
        raise missing_error(f"video {args.video!r}: no such file or folder")
    try:
        info = D.video_info(args.video)
        indices = parse_frame_range(args.frames, info.num_frames)
        frames, info = D.read_video(args.video, frames=indices)
    except (D.VideoReadError, OSError) as e:
        raise missing_error(f"video {args.video!r} cannot be read: {e}") from None
    flows = D.clip_flows(frames)                                    # (T-1, H, W, 2)
    magnitude = np.sqrt((flows ** 2).sum(-1))
    # one scale for every panel, so that colours compare across time: a high percentile of the
    # magnitude, a scene cut left out (plots.flow_scale), not the maximum
    max_flow = args.max_flow or flow_scale(flows)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    if ext == '.png':
        _plots().plot_flow(flows, args.output, frames=frames, max_flow=args.max_flow,
                           columns=args.columns, frame_indices=[int(k) for k in indices])
    else:
        colours = np.stack([flow_to_color(f, max_flow=max_flow) for f in flows])   # (T-1, H, W, 3)
        side_by_side = np.concatenate([frames[:-1], colours], axis=2)   # (T-1, H, 2W, 3)
        D.write_video(args.output, side_by_side, fps=args.fps or info.fps or 8)
    print(f"{len(flows)} flows of frames {int(indices[0])}..{int(indices[-1])} "
          f"(max |flow| {float(magnitude.max()):.2f} px, colour scale {max_flow:.2f} px): "
          f"{args.output}")
    return EXIT_OK


# ---- bench --------------------------------------------------------------------------------------

def benchmarks_folder():
    from . import __file__ as package_file
    return Path(package_file).resolve().parents[1] / 'benchmarks'


def list_benchmarks(folder):
    """{name: (script path, first line of its docstring)}, name = file name without bench_/.py."""
    import ast
    found = {}
    for script in sorted(folder.glob('bench_*.py')):
        try:
            doc = ast.get_docstring(ast.parse(script.read_text(encoding='utf-8'))) or ''
        except (SyntaxError, UnicodeDecodeError):
            doc = ''
        found[script.stem[len('bench_'):]] = (script, ' '.join(doc.split('\n\n')[0].split()))
    return found


def cmd_bench(args):
    folder = benchmarks_folder()
    if not folder.is_dir():
        raise missing_error(f"the benchmarks folder {str(folder)!r} does not exist: benchmarks ship "
                            f"with the repository, not the installed package (clone it and "
                            f"pip install -e .)")
    scripts = list_benchmarks(folder)
    if args.list:
        for name, (_, doc) in scripts.items():
            print(f"{name:16s} {doc[:100]}")
        return EXIT_OK
    names = []
    for word in args.names or list(scripts):
        name = word[:-3] if word.endswith('.py') else word
        name = name[len('bench_'):] if name.startswith('bench_') else name
        if name not in scripts:
            raise usage_error(f"unknown benchmark {word!r}; expected one of: "
                              f"{', '.join(scripts)}")
        names.append(name)
    failed = []
    for name in names:
        script = scripts[name][0]
        print(f"== {name}: {script.name} {' '.join(args.extra)}".rstrip(), flush=True)
        try:
            code = subprocess.call([sys.executable, str(script)] + list(args.extra),
                                   cwd=str(folder), timeout=args.timeout)   # killed on timeout
        except subprocess.TimeoutExpired:
            failed.append(f"{name} (killed after --timeout {args.timeout:g} s)")
            continue
        if code != 0:
            failed.append(f"{name} (exit {code})")
    if failed:
        raise CLIError(f"benchmarks failed: {', '.join(failed)}")
    return EXIT_OK


GPU_REPORT_EXAMPLES = """examples:
  tensorlite gpu-report
  tensorlite gpu-report --arch sm_90 --json gpu-sm_90.json
"""


def cmd_gpu_report(args):
    """Every CUDA twin compiled by NVIDIA's compilers (no GPU needed): kernels/cuda/_report.py."""
    from .kernels.cuda import _report
    try:
        result = _report.report(args.arch)
    except (RuntimeError, ValueError) as e:
        raise CLIError(str(e), EXIT_MISSING if 'not installed' in str(e) else EXIT_FAILED)
    print(_report.table(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return EXIT_OK


# ---- info ---------------------------------------------------------------------------------------

def collect_info():
    import numba

    from . import __version__, backend, cuda
    from .data.synthetic import SyntheticActions
    from .models import list_models
    reason = cuda.unavailable_reason()
    cuda_available = reason is None
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except AttributeError:                      # not on Linux
        usable_cpus = os.cpu_count()
    return {'tensorlite': __version__, 'numpy': np.__version__, 'numba': numba.__version__,
            'python': platform.python_version(), 'platform': platform.platform(),
            'cpu_count': os.cpu_count(), 'usable_cpus': usable_cpus,
            'cupy_importable': backend.cupy_available(), 'cuda_available': cuda_available,
            'cuda_unavailable_reason': reason, 'cpu_threads': backend.cpu_threads(),
            'numba_threads': numba.get_num_threads(), 'models': list_models(),
            'synthetic_families': {f: list(SyntheticActions(f, 0).classes)
                                   for f in CLASS_FAMILIES}}


def cmd_info(args):
    info = collect_info()
    print(f"tensorlite {info['tensorlite']}  numpy {info['numpy']}  numba {info['numba']}  "
          f"python {info['python']}")
    print(f"platform   {info['platform']}")
    print(f"CPUs       {info['cpu_count']} ({info['usable_cpus']} usable by this process)")
    threads = info['cpu_threads']
    policy = threads['omp_wait_policy'] or 'libgomp default (active)'
    print(f"threads    {info['numba_threads']} Numba threads; OpenMP wait policy {policy}"
          + (' (set by tensorlite)' if threads['set_by_tensorlite'] else '')
          + ('; NOT in effect: libgomp was loaded before tensorlite'
             if threads['in_effect'] is False else ''))
    print(f"CuPy       {'importable' if info['cupy_importable'] else 'not importable'}")
    from . import cuda
    simulated = ' (simulated: TENSORLITE_SIMULATE_CUDA=1)' if cuda.is_simulated() else ''
    print(f"CUDA       {'available' + simulated if info['cuda_available'] else 'not available'}"
          + (f": {info['cuda_unavailable_reason']}" if info['cuda_unavailable_reason'] else ''))
    print(f"models     {', '.join(info['models'])}")
    for family, classes in info['synthetic_families'].items():
        print(f"synthetic:{family:7s} {len(classes)} classes: {', '.join(classes)}")
    if args.json:
        write_json(args.json, info)
    return EXIT_OK


# ---- the parser ---------------------------------------------------------------------------------

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout, and ends every option's help with its default when the help
    does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ''
        if (action.option_strings and 'default' not in text.lower()
                and action.default is not argparse.SUPPRESS
                and action.nargs != 0):                       # flags: on when given
            shown = 'none' if action.default is None else action.default
            text += f" (default: {shown})"
        return text


TRAIN_EXAMPLES = """examples:
  tensorlite train --model single_frame --data synthetic:scene      # ~10 s, >= 90 % accuracy
  tensorlite train --model c3d --data synthetic:order --out runs/c3d_order
  tensorlite train --model i3d --data my_videos/ --frames 8 --size 64 --epochs 20 --scheduler cosine
  tensorlite train --model c3d --data synthetic:order --out runs/c3d_order --resume --epochs 4
"""
EVAL_EXAMPLES = """examples:
  tensorlite eval runs/c3d_order                      # its best.npz, on its validation clips
  tensorlite eval runs/c3d_order --views 3 --temporal --plot confusion.png
  tensorlite eval runs/my_i3d --data other_videos/    # a folder with some of the run's classes
  tensorlite eval runs/my_i3d --data other_videos/jump/clip.mp4
"""
PREDICT_EXAMPLES = """examples:
  tensorlite predict runs/my_i3d clip.mp4 other.avi
  tensorlite predict runs/my_i3d/last.npz clips/*.mp4 --topk 3 --views 3 --json predictions.json
"""
COMPARE_EXAMPLES = """examples:
  tensorlite compare --quick                          # about a minute on 2 cores
  tensorlite compare --models single_frame,c3d --families scene,order --plot compare.png
  tensorlite compare --experiment sampling --json sampling.json --plot sampling.png
"""
SUMMARY_EXAMPLES = """examples:
  tensorlite summary c3d
  tensorlite summary c3d --preset paper               # 101 classes: 78,409,573 parameters
  tensorlite summary c3d --frames 8 --size 64
  tensorlite summary slowfast --preset paper --json slowfast.json
"""
GRADCHECK_EXAMPLES = """examples:
  tensorlite gradcheck                                # every op
  tensorlite gradcheck conv3d lstm attention
"""
FLOW_EXAMPLES = """examples:
  tensorlite flow clip.mp4 -o flow.png --frames 0:9
  tensorlite flow clip.mp4 -o flow.gif --frames 0:33
"""
BENCH_EXAMPLES = """examples:
  tensorlite bench --list
  tensorlite bench conv -- --repeats 3
"""
INFO_EXAMPLES = """examples:
  tensorlite info
  tensorlite info --json info.json
"""


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--traceback', action='store_true',
                        help='print the full traceback of an unexpected error')

    from . import __version__
    parser = argparse.ArgumentParser(
        prog='tensorlite', description='Train, evaluate, compare and inspect tensorlite video '
        'models.', epilog=EPILOG, formatter_class=_Formatter)
    parser.add_argument('--version', action='version', version=f"tensorlite {__version__}")
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')

    def command(name, handler, help_text, examples=''):
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                           epilog=(examples + '\n' if examples else '') + EPILOG,
                           formatter_class=_Formatter)
        p.set_defaults(handler=handler)
        return p

    def device(p):
        p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu',
                       help='cpu (default) or cuda (needs CuPy and a GPU, or '
                            'TENSORLITE_SIMULATE_CUDA=1)')

    # train
    p = command('train', cmd_train, 'train a model with tensorlite.train.fit',
                examples=TRAIN_EXAMPLES)
    p.add_argument('--model', required=True, help='a registered model (tensorlite info lists them)')
    p.add_argument('--skip-bad', action='store_true',
                   help="replace a folder's unreadable videos by others instead of stopping "
                        "(VideoFolder's skip_bad; each is reported once)")
    p.add_argument('--preset', choices=('tiny', 'paper'), default='tiny',
                   help='tiny (trains in seconds on a CPU) or paper (the published configuration)')
    p.add_argument('--data', default='synthetic:scene',
                   help='synthetic:FAMILY (scene, motion, order) or a folder root/<class>/<video> '
                        '(default synthetic:scene)')
    p.add_argument('--epochs', type=_non_negative_int, default=None,
                   help="default: the model's recipe (compare's; printed when the run starts)")
    p.add_argument('--batch-size', type=_positive(int, '--batch-size'), default=None,
                   help="clips per batch, per process under mpiexec (default: the model's recipe, 16)")
    p.add_argument('--lr', type=_positive(float, '--lr'), default=None,
                   help="learning rate (default: the model's recipe, e.g. 1e-3)")
    p.add_argument('--optimizer', choices=('sgd', 'adam', 'adamw'), default=None,
                   help="sgd (momentum 0.9), adam or adamw (default: the model's recipe, adamw)")
    p.add_argument('--weight-decay', type=_non_negative_float('--weight-decay'), default=None,
                   help="default: the model's recipe (1e-4)")
    p.add_argument('--clip-grad-norm', type=_positive(float, '--clip-grad-norm'), default=None,
                   help="clip the gradients' global norm to this (default: the model's recipe: "
                        "5 for i3d, none for the others)")
    p.add_argument('--scheduler', choices=SCHEDULERS, default=None,
                   help="learning-rate schedule, stepped per epoch: none (constant), step (x0.1 "
                        "after each third of the epochs) or cosine (to 0) (default none)")
    p.add_argument('--warmup-epochs', type=_non_negative_int, default=None,
                   help='epochs of linear warmup before the schedule (default 0)')
    p.add_argument('--no-shuffle', action='store_true',
                   help='keep the training clips in order (no reshuffling per epoch)')
    p.add_argument('--sync-bn', action='store_true',
                   help='convert BatchNorm layers to SyncBatchNorm: batch statistics over every '
                        'process of an mpiexec run')
    p.add_argument('--frames', type=_positive(int, '--frames'), default=None,
                   help=f'frames per clip (default {DEFAULT_FRAMES})')
    p.add_argument('--size', type=_positive(int, '--size'), default=None,
                   help=f'frame height and width (default {DEFAULT_SIZE})')
    p.add_argument('--num-clips', type=_positive(int, '--num-clips'), default=None,
                   help="synthetic training clips (default: compare's for the family: scene 384, "
                        "occluded 1024, motion and order 2048)")
    p.add_argument('--val-clips', type=_positive(int, '--val-clips'), default=None,
                   help='synthetic validation clips, another seed (default num-clips / 4, at '
                        'most 256)')
    p.add_argument('--val-split', type=float, default=0.2,
                   help="a folder's held-out fraction per class (default 0.2; 0: no validation)")
    p.add_argument('--seed', type=_non_negative_int, default=0,
                   help='seeds the weights, the data and its order: a run repeats bit for bit')
    p.add_argument('--out', help='checkpoint folder: last.npz, history.csv and history.json '
                                 '(default: runs/<model>/<date-time>; a folder that already holds '
                                 'a run needs --resume)')
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.npz if present')
    p.add_argument('--workers', type=_non_negative_int, default=0, help='DataLoader workers')
    device(p)
    p.add_argument('--no-progress', action='store_true',
                   help='no progress bars (one line per epoch is still printed)')
    p.add_argument('--json', help='write the history and the final validation metrics here')
    p.add_argument('--plot', help='write the learning curves here (PNG; needs matplotlib)')

    # eval
    p = command('eval', cmd_eval, 'evaluate a run of tensorlite train on labelled videos',
                examples=EVAL_EXAMPLES)
    p.add_argument('run', nargs='?', default=None,
                   help='a run folder (the --out of tensorlite train: its best.npz, else '
                        'last.npz) or a checkpoint file')
    p.add_argument('--checkpoint', default=None, help='the same as RUN (a checkpoint file)')
    p.add_argument('--skip-bad', action='store_true',
                   help="replace a folder's unreadable videos by others instead of stopping "
                        "(VideoFolder's skip_bad; each is reported once)")
    p.add_argument('--data', default=None,
                   help="synthetic:FAMILY or a folder (default: the run's data: new synthetic "
                        "clips of its validation seed, or the folder's validation split)")
    p.add_argument('--num-clips', type=_positive(int, '--num-clips'), default=64,
                   help='synthetic clips to evaluate (default 64)')
    p.add_argument('--data-seed', type=_non_negative_int, default=None,
                   help="synthetic data seed (default: the run's validation seed)")
    p.add_argument('--views', type=_positive(int, '--views'), default=1,
                   help='clips per video, their softmax averaged (MultiClip; default 1)')
    p.add_argument('--video-frames', type=_positive(int, '--video-frames'), default=None,
                   help="synthetic: render videos this long and take the views from them "
                        "(default: the model's clip length, so views coincide)")
    p.add_argument('--batch-size', type=_positive(int, '--batch-size'), default=16,
                   help='clips per batch')
    p.add_argument('--workers', type=_non_negative_int, default=0, help='DataLoader workers')
    p.add_argument('--temporal', action='store_true',
                   help='also report accuracy on reversed and shuffled frames')
    device(p)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--json', help='write the metrics here')
    p.add_argument('--plot', help='write the confusion matrix here (PNG; needs matplotlib)')

    # predict
    p = command('predict', cmd_predict, "a trained run's top classes for each video",
                examples=PREDICT_EXAMPLES)
    p.add_argument('run', help='a run folder (its best.npz, else last.npz) or a checkpoint file')
    p.add_argument('videos', nargs='+', metavar='VIDEO',
                   help='video files (.mp4, .avi, .mkv, .webm, ...), GIFs or folders of frames')
    p.add_argument('--topk', type=_positive(int, '--topk'), default=5,
                   help='classes shown per video (default 5)')
    p.add_argument('--views', type=_positive(int, '--views'), default=1,
                   help='clips per video, evenly spaced, probabilities averaged (default 1)')
    p.add_argument('--json', help='write [{"video", "predictions": [{"label", "probability"}]}] '
                                  'here')
    device(p)

    # compare
    p = command('compare', cmd_compare,
                'train every model on the synthetic families and compare (tensorlite.compare)',
                examples=COMPARE_EXAMPLES)
    p.add_argument('--quick', action='store_true', help='fewer clips and epochs')
    p.add_argument('--models', help='comma-separated model names (default: all)')
    p.add_argument('--families', help=f"comma-separated, among {','.join(CLASS_FAMILIES)} "
                                      "(default: all)")
    p.add_argument('--seed', type=_non_negative_int, default=0,
                   help='seeds the weights and the synthetic clips')
    p.add_argument('--jobs', type=_positive(int, '--jobs'), default=None,
                   help='cells trained at once, one process each (default: the CPU cores, at '
                        'most 4)')
    device(p)
    p.add_argument('--no-progress', action='store_true', help='no progress lines')
    p.add_argument('--json', help='write the records here')
    p.add_argument('--plot', help='write the bar chart here (PNG; needs matplotlib)')
    from .experiments import EXPERIMENTS
    p.add_argument('--experiment', choices=EXPERIMENTS, default=None,
                   help='run one of the experiments of tensorlite.experiments instead: '
                        'sampling (random crops, multi-clip evaluation), frames (4/8/16 frames: '
                        'accuracy and cost), data (accuracy against training clips); --json '
                        'and --plot then write its result and figure')

    # summary
    p = command('summary', cmd_summary, "a model's layers: output shapes, parameters, "
                'multiply-adds, activation memory',
                examples=SUMMARY_EXAMPLES)
    p.add_argument('model', help='a registered model')
    p.add_argument('--preset', choices=('tiny', 'paper'), default='tiny',
                   help='tiny (trains in seconds on a CPU) or paper (the published configuration)')
    p.add_argument('--num-classes', type=_positive(int, '--num-classes'), default=None,
                   help="classes of the classifier (default: the published number for --preset "
                        "paper, e.g. C3D 101, the Kinetics models 400; 10 for tiny)")
    p.add_argument('--frames', type=_positive(int, '--frames'), default=None,
                   help="frames per clip; the model is built for them where it fixes its clip "
                        "(default: the preset's, e.g. tiny 16, paper C3D 16, I3D 8)")
    p.add_argument('--size', type=_positive(int, '--size'), default=None,
                   help="frame height and width (default: the preset's, e.g. tiny 32, paper C3D "
                        "112, I3D 224)")
    p.add_argument('--input-shape', help="N,C,T,H,W (default: one clip of the model's own size)")
    p.add_argument('--json', help='write the per-layer rows and the totals here')

    # gradcheck
    p = command('gradcheck', cmd_gradcheck,
                'gradient-check every differentiable op in float64 (first and second order)',
                examples=GRADCHECK_EXAMPLES)
    p.add_argument('words', nargs='*', help='only ops whose name contains one of these')
    p.add_argument('--seed', type=_non_negative_int, default=0, help='seed of the inputs')
    p.add_argument('--json', help='write the rows here')

    # flow
    p = command('flow', cmd_flow, "a video's optical flow (Farnebaeck), colour-coded",
                examples=FLOW_EXAMPLES)
    p.add_argument('video', help='a video file, GIF or folder of frames')
    p.add_argument('-o', '--output', required=True,
                   help='.png: the frames and their flows in rows, with the colour key; .gif: '
                        'frame | flow animation')
    p.add_argument('--frames', default='0:9', help='frames a:b, b exclusive (default 0:9)')
    p.add_argument('--max-flow', type=float, default=None,
                   help='pixels of displacement at full saturation (default: the 99th percentile '
                        'of |flow|, a scene cut left out)')
    p.add_argument('--columns', type=_positive(int, '--columns'), default=None,
                   help='flows per row of the PNG figure (default: up to 6, rows filled evenly)')
    p.add_argument('--fps', type=_positive(float, '--fps'), default=None,
                   help="GIF frame rate (default: the video's)")

    # bench
    p = command('bench', cmd_bench, "run the repository's benchmarks/ scripts "
                '(arguments after -- go to each script)',
                examples=BENCH_EXAMPLES)
    p.add_argument('names', nargs='*', help='benchmarks to run, e.g. conv flow (default: all)')
    p.add_argument('--list', action='store_true', help='list the benchmarks and stop')
    p.add_argument('--timeout', type=_positive(float, '--timeout'), default=3600.0,
                   help='seconds each benchmark may run before it is killed (default 3600)')

    # gpu-report
    p = command('gpu-report', cmd_gpu_report, 'compile every CUDA kernel with NVIDIA\'s compilers '
                '(pip install .[gpu-check]; no GPU needed): registers, spills, float64, occupancy',
                examples=GPU_REPORT_EXAMPLES)
    p.add_argument('--arch', default='sm_80', help='sm_80 (default), sm_86, sm_89 or sm_90')
    p.add_argument('--json', help='write the records as JSON here')

    # info
    p = command('info', cmd_info, 'versions, CPUs, CUDA, models, synthetic families',
                examples=INFO_EXAMPLES)
    p.add_argument('--json', help='write the same as JSON here')
    return parser


def _split_extra(argv):
    """bench's arguments after '--' are the scripts'; argparse would take them as NAMES."""
    command = next((a for a in argv if not a.startswith('-')), None)
    if command == 'bench' and '--' in argv:
        k = argv.index('--')
        return argv[:k], argv[k + 1:]
    return argv, []


def main(argv=None):
    """Run the command line `argv` (default sys.argv[1:]); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, extra = _split_extra(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:                   # --help (0) or a usage error argparse printed (2)
        return EXIT_USAGE if e.code not in (0, None) else EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.extra = extra
    try:
        return args.handler(args)
    except CLIError as e:
        print(f"tensorlite {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"tensorlite {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if args.traceback:
            traceback.print_exc()
        print(f"tensorlite {args.command}: error: {type(e).__name__}: {e}"
              + ('' if args.traceback else ' (run with --traceback for the traceback)'),
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == '__main__':
    sys.exit(main())

"""Train a video classifier on your own videos, laid out one folder per class (UCF101's layout).

    python examples/train_on_folder.py                        # writes a small demo folder first
    python examples/train_on_folder.py ~/videos/my_actions --model c3d --frames 16 --epochs 10
    python examples/train_on_folder.py ROOT --sampler segments --checkpoint-dir runs/mine
    python examples/train_on_folder.py --quick                # a few steps (the smoke test)

ROOT holds one folder per class; a video is a file (.mp4 .avi .mkv .webm .mov .gif ...) or a
folder of .jpg/.png frames:

    ROOT/jump/clip_001.mp4
    ROOT/jump/clip_002/000000.png 000001.png ...
    ROOT/run/...

Without ROOT the script writes a demo folder (into a temporary directory, or --demo-dir, which is
reused on the next run): synthetic clips of one family of tensorlite.data.SyntheticActions
('scene' by default: the class is the background; 'motion': the direction an object moves),
mostly as H.264 .mp4 files via D.write_video, some as folders of PNG frames, and one file that is
not a video at all, to show what happens to unreadable files.

The pipeline, all of it public API:

- D.VideoFolder(root, sampler, transform, skip_bad=True): classes are the sorted folder names.
  `check_files()` probes every video up front (no decoding) and reports the unreadable ones in one
  warning; they are left out of the split. skip_bad=True stays on for files whose header is sound
  but whose data is corrupt further in (found only when decoded): such a sample is replaced by the
  next readable one of its class and reported once.
- Temporal sampling (--sampler): 'uniform' takes --frames frames --stride apart, at a random
  position in training (D.RandomTemporalCrop) and centred in evaluation (D.UniformStride);
  'segments' takes one frame from each of --frames equal segments (D.SegmentSampler, TSN), random
  within the segment in training and the segment's centre in evaluation.
- Spatial transforms, the same for every frame of a clip: D.Resize (short side), then
  D.RandomResizedCrop (training) or D.CenterCrop (evaluation) to --size, then D.ToTensor ->
  (C, T, H, W) float32 in [0, 1].
- A stratified train/val split (--val-fraction of each class), D.DataLoader with --workers
  processes, build_model(--model), tensorlite.train.fit with a checkpoint directory (rerun with
  the same --checkpoint-dir and it resumes), then evaluate: top-1, mean class accuracy and the
  confusion matrix on the centred clip, and again with --eval-clips clips per video
  (D.MultiClip, softmax scores averaged).
"""
import argparse
import json
import os
import tempfile
import time
import warnings

import numpy as np

import tensorlite as tl
import tensorlite.data as D
import tensorlite.optim as optim
from tensorlite._atomic import atomic_write
from tensorlite.cli import write_json
from tensorlite.models import build_model, list_models
from tensorlite.train import evaluate, fit, load_checkpoint

DEMO_MARKER = 'demo.json'          # the settings a demo folder was written with


# ---- the demo folder -----------------------------------------------------------------------------

def write_demo_folder(root, family='scene', videos_per_class=16, num_frames=24, size=40, fps=12,
                      frame_folder_every=4, seed=0):
    """Write SyntheticActions(family) clips into root/<class name>/ as .mp4 files, every
    `frame_folder_every`-th one as a folder of PNG frames instead, plus one unreadable file
    root/<first class>/unreadable.mp4. A folder already written with the same settings is reused.
    Returns the number of videos written (0 when reused)."""
    settings = {'family': family, 'videos_per_class': videos_per_class, 'num_frames': num_frames,
                'size': size, 'fps': fps, 'frame_folder_every': frame_folder_every, 'seed': seed}
    marker = os.path.join(root, DEMO_MARKER)
    if os.path.exists(marker):
        with open(marker, encoding='utf-8') as f:
            if json.load(f) == settings:
                return 0
    os.makedirs(root, exist_ok=True)
    data = D.SyntheticActions(family, videos_per_class * len(D.SyntheticActions(family, 0).classes),
                              num_frames=num_frames, size=size, seed=seed)
    for c in data.classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(len(data)):
        label = i % data.num_classes                  # SyntheticActions labels are i % classes
        k = i // data.num_classes                     # the k-th video of its class
        name = data.classes[label]
        stem = os.path.join(root, name, f'{name}_{k:03d}')
        if frame_folder_every and k % frame_folder_every == frame_folder_every - 1:
            D.write_video(stem + '/', data.frames(i), fps=fps)     # a folder of PNG frames
        else:
            D.write_video(stem + '.mp4', data.frames(i), fps=fps)
    # not a video: VideoFolder lists it (by its extension), check_files() finds it unreadable
    with atomic_write(os.path.join(root, data.classes[0], 'unreadable.mp4')) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'this is not a video file\n')
    write_json(marker, settings)
    return len(data)


# ---- datasets ------------------------------------------------------------------------------------

class Subset:
    """The items `indices` of `dataset`, in that order (a train or validation part)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, [int(i) for i in indices]

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def stratified_split(targets, val_fraction, seed, exclude=()):
    """(train indices, val indices): in each class, a shuffled `val_fraction` of its videos
    (at least one when the class has two or more) goes to validation. `exclude`: indices to
    leave out (unreadable files)."""
    rng = np.random.default_rng(seed)
    excluded = set(exclude)
    train, val = [], []
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label and i not in excluded]
        members = list(rng.permutation(members))
        n_val = int(round(val_fraction * len(members)))
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


def stack_views(clips, rng=None):
    """MultiClip's list of K clips (T, H, W, C) -> one array (K, T, H, W, C), which ToTensor makes
    (K, C, T, H, W): the multi-view layout evaluate() averages over."""
    return np.stack(clips)


def samplers(kind, frames, stride, num_clips):
    """(training sampler, evaluation sampler, multi-clip sampler) for --sampler `kind`."""
    if kind == 'uniform':
        return (D.RandomTemporalCrop(frames, stride, training=True),
                D.UniformStride(frames, stride), D.MultiClip(num_clips, frames, stride))
    # segments: every clip covers the whole video; multi-clip views are TSN's random draws made
    # deterministic by the loader's per-sample seed, so evaluation averages over num_clips draws
    return (D.SegmentSampler(frames, training=True), D.SegmentSampler(frames, training=False),
            _SegmentViews(num_clips, frames))


class _SegmentViews:
    """num_clips SegmentSampler draws (training mode) of one video: a list of index arrays."""

    def __init__(self, num_clips, frames):
        self.num_clips, self.sampler = num_clips, D.SegmentSampler(frames, training=True)

    def __call__(self, n, rng=None):
        return [self.sampler(n, rng) for _ in range(self.num_clips)]

    def __repr__(self):
        return f"_SegmentViews(num_clips={self.num_clips}, {self.sampler!r})"


def build_for_clips(name, num_classes, frames, size):
    """build_model(name) for clips (3, frames, size, size): models whose input shape is fixed at
    build time get `frames=` and/or `size=` (the first combination their builder accepts), and one
    forward on a zero clip checks that the model takes the clip."""
    model, last_error = None, None
    for overrides in ({'frames': frames, 'size': size}, {'frames': frames}, {'size': size}, {}):
        try:
            model = build_model(name, num_classes, **overrides)
            break
        except (TypeError, ValueError) as err:
            last_error = err
    if model is None:
        raise SystemExit(f"cannot build model {name!r}: {last_error}")
    model.eval()
    try:
        with tl.no_grad():
            model(tl.zeros((1, 3, frames, size, size)))
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"model {name!r} does not take clips (N, 3, {frames}, {size}, {size}) "
                         f"(--frames {frames} --size {size}): {err}")
    return model


# ---- the run -------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('root', nargs='?', help='ROOT/<class>/<video>; omitted: a demo folder')
    demo = ap.add_argument_group('demo folder (without ROOT)')
    demo.add_argument('--demo-dir', help='write (or reuse) the demo folder here instead of a '
                                         'temporary directory')
    demo.add_argument('--family', default='scene', choices=('scene', 'motion'),
                      help="synthetic family of the demo videos (default 'scene')")
    demo.add_argument('--videos-per-class', type=int, default=12,
                      help='demo videos per class (default 12)')
    ap.add_argument('--model', default='early_fusion',
                    help="a tensorlite.models name (default early_fusion): "
                         + ', '.join(list_models()))
    ap.add_argument('--frames', type=int, default=8, help='frames per clip (default 8)')
    ap.add_argument('--stride', type=int, default=2,
                    help="frames between sampled frames, --sampler uniform (default 2)")
    ap.add_argument('--sampler', default='uniform', choices=('uniform', 'segments'))
    ap.add_argument('--size', type=int, default=32, help='crop size in pixels (default 32)')
    ap.add_argument('--epochs', type=int, default=5)
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--lr', type=float, default=1e-3, help='Adam learning rate (default 1e-3)')
    ap.add_argument('--val-fraction', type=float, default=0.25)
    ap.add_argument('--workers', type=int, default=2, help='DataLoader worker processes')
    ap.add_argument('--eval-clips', type=int, default=3,
                    help='clips per video in the multi-clip evaluation (default 3)')
    ap.add_argument('--checkpoint-dir', help="fit's checkpoint folder (default: a temporary one); "
                                             "an existing one is resumed")
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--no-progress', action='store_true', help='no progress bars')
    ap.add_argument('--json', metavar='PATH', help='also write the results to this JSON file')
    ap.add_argument('--quick', action='store_true',
                    help='a tiny demo folder and one short epoch (the smoke test)')
    args = ap.parse_args(argv)
    if args.quick:
        args.videos_per_class, args.epochs, args.eval_clips = 4, 1, 2
        args.workers = min(args.workers, 1)
    if not 0 < args.val_fraction < 1:
        ap.error(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    for name in ('frames', 'stride', 'size', 'epochs', 'batch_size', 'eval_clips',
                 'videos_per_class'):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def print_confusion(matrix, classes):
    width = max(5, max(len(c) for c in classes))
    header = ' '.join(f"{c[:width]:>{width}}" for c in classes)
    print('    ' + ' ' * width + header + '  <- predicted')
    for c, row in zip(classes, matrix):
        print(f"    {c:>{width}}" + ' '.join(f"{int(v):>{width}}" for v in row))


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    tl.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix='train_on_folder.') as scratch:
        root = args.root
        if root is None:
            root = args.demo_dir or os.path.join(scratch, 'demo')
            t = time.perf_counter()
            written = write_demo_folder(root, args.family, args.videos_per_class, seed=args.seed)
            print(f"demo folder {root}: " + (f"wrote {written} '{args.family}' videos in "
                                             f"{time.perf_counter() - t:.1f} s" if written else
                                             "reused"))
        checkpoint_dir = args.checkpoint_dir or os.path.join(scratch, 'checkpoints')
        return run(args, root, checkpoint_dir, started)


def run(args, root, checkpoint_dir, started):
    train_sampler, eval_sampler, multi_sampler = samplers(args.sampler, args.frames, args.stride,
                                                          args.eval_clips)
    short_side = int(round(args.size * 1.15))
    train_tf = D.Compose([D.Resize(short_side), D.RandomResizedCrop(args.size, scale=(0.6, 1.0)),
                          D.ToTensor()])
    eval_tf = D.Compose([D.Resize(short_side), D.CenterCrop(args.size), D.ToTensor()])
    multi_tf = D.Compose([D.Resize(short_side), D.CenterCrop(args.size), stack_views,
                          D.ToTensor()])
    # three views of one folder: the same files and labels, different sampling and transforms
    train_full = D.VideoFolder(root, train_sampler, train_tf, skip_bad=True)
    val_full = D.VideoFolder(root, eval_sampler, eval_tf, skip_bad=True)
    multi_full = D.VideoFolder(root, multi_sampler, multi_tf, skip_bad=True)
    classes = train_full.classes
    print(f"{root}: {len(train_full)} videos, {len(classes)} classes ({', '.join(classes)})")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        bad = train_full.check_files()                  # probes headers, decodes nothing
    for w in caught:
        print(f"  warning: {w.message}")
    bad_indices = [i for i, (path, _) in enumerate(train_full.samples) if path in set(bad)]
    if bad:
        print(f"  {len(bad)} unreadable, left out: " + ', '.join(os.path.relpath(p, root)
                                                                 for p in bad))
        # what skip_bad=True does when a file is found bad only at loading time (no check_files):
        # the sample is replaced by the next readable one of its class, and the file is reported once
        fresh = D.VideoFolder(root, eval_sampler, eval_tf, skip_bad=True)
        with warnings.catch_warnings(record=True):
            warnings.simplefilter('always')
            clip, label = fresh[bad_indices[0]]
        print(f"  skip_bad=True: dataset[{bad_indices[0]}] gave the next readable video of its "
              f"class instead, "
              f"clip {clip.shape} of class {classes[label]!r}; dataset.bad_files = "
              f"{[os.path.relpath(p, root) for p in fresh.bad_files]}")
    skipped = None if not bad else {'index': bad_indices[0], 'label': int(label),
                                    'bad_files': list(fresh.bad_files)}
    train_idx, val_idx = stratified_split(train_full.targets, args.val_fraction, args.seed,
                                          exclude=bad_indices)
    if not train_idx or not val_idx:
        raise SystemExit(f"{root}: too few readable videos to split ({len(train_idx)} train, "
                         f"{len(val_idx)} val); put at least two videos in each class folder")
    print(f"  split: {len(train_idx)} train, {len(val_idx)} val (stratified, seed {args.seed}); "
          f"sampler {train_sampler!r} / {eval_sampler!r}")

    train = D.DataLoader(Subset(train_full, train_idx), batch_size=args.batch_size, shuffle=True,
                         seed=args.seed, num_workers=args.workers)
    val = D.DataLoader(Subset(val_full, val_idx), batch_size=args.batch_size,
                       num_workers=args.workers)
    multi = D.DataLoader(Subset(multi_full, val_idx), batch_size=args.batch_size,
                         num_workers=args.workers)

    model = build_for_clips(args.model, len(classes), args.frames, args.size)
    params = sum(p.numel() for p in model.parameters())
    print(f"model {args.model}: {params:,d} parameters; clips (3, {args.frames}, {args.size}, "
          f"{args.size}); {args.epochs} epochs of {len(train)} batches; checkpoints in "
          f"{checkpoint_dir}")
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    history = fit(model, train, val, optimizer=optimizer, epochs=args.epochs,
                  checkpoint_dir=checkpoint_dir, resume=True, seed=args.seed,
                  progress=not args.no_progress,
                  config={'root': os.path.abspath(root), 'classes': classes,
                          'model_name': args.model, 'frames': args.frames, 'size': args.size,
                          'sampler': args.sampler})
    if args.no_progress:
        for row in history:
            print(f"  epoch {row['epoch'] + 1}: train loss {row['train_loss']:.4f} acc "
                  f"{row['train_accuracy']:.3f}, val loss {row['val_loss']:.4f} acc "
                  f"{row['val_accuracy']:.3f}, {row['clips_per_second']:.1f} clips/s")

    # the checkpoint holds what a later script needs to rebuild and reload the model
    checkpoint = os.path.join(checkpoint_dir, 'last.npz')
    reloaded = build_for_clips(args.model, len(classes), args.frames, args.size)
    info = load_checkpoint(checkpoint, reloaded)
    print(f"checkpoint {checkpoint}: epoch {info['epoch']}, classes {info['config']['classes']}")

    single = evaluate(reloaded, val)
    views = evaluate(reloaded, multi)
    chance = 1 / len(classes)
    print(f"validation, {single['num_samples']} videos (chance {chance:.3f}):")
    for label, result in (('one centred clip', single),
                          (f"{args.eval_clips} clips averaged", views)):
        print(f"  {label + ':':<20} top-1 {result['top1']:.3f}, mean class accuracy "
              f"{result['mean_class_accuracy']:.3f}, loss {result['loss']:.4f}")
    print("  confusion matrix (one centred clip; rows true):")
    print_confusion(single['confusion_matrix'], classes)
    seconds = time.perf_counter() - started
    print(f"done in {seconds:.1f} s")

    results = {'root': root, 'classes': classes, 'unreadable': bad, 'skip_bad_demo': skipped,
               'num_train': len(train_idx), 'num_val': len(val_idx), 'model': args.model,
               'history': history, 'top1': single['top1'],
               'mean_class_accuracy': single['mean_class_accuracy'],
               'confusion_matrix': np.asarray(single['confusion_matrix']).tolist(),
               'multi_clip_top1': views['top1'], 'eval_clips': args.eval_clips,
               'checkpoint_epoch': info['epoch'], 'chance': chance, 'seconds': seconds}
    if args.json:
        write_json(args.json, results)   # atomic, parent folder created
    return results


if __name__ == '__main__':
    main()

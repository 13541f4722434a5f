"""Train a video classifier on your own videos, laid out one folder per class (UCF101's layout),
with `tensorlite train`'s own code, options and run folder.

    python examples/train_on_folder.py                           # writes a demo folder first
    python examples/train_on_folder.py ~/videos/my_actions --model c3d --epochs 10 --out runs/mine
    python examples/train_on_folder.py --quick                   # a few seconds (the smoke test)

and then, on the run folder it printed (the same as after `tensorlite train`):

    tensorlite eval runs/mine                    # accuracy on the run's held-out videos
    tensorlite predict runs/mine clip.mp4        # the run's top classes for any video

ROOT (when given, it comes first) holds one folder per class; a video is a file (.mp4 .avi .mkv
.webm .mov .gif ...) or a folder of .jpg/.png frames:

    ROOT/jump/clip_001.mp4
    ROOT/jump/clip_002/000000.png 000001.png ...
    ROOT/run/...

Without ROOT the script writes a demo folder (--demo-dir, default runs/demo_videos, reused when
written with the same settings): clips of one tensorlite.data.SyntheticActions family ('scene':
the class is the background), as .mp4 files and folders of PNG frames (tensorlite.data.write_video),
plus one file that is not a video; the demo trains with --skip-bad, which replaces an unreadable
video by another of its class and reports it (without it, training stops at that file).

The script is three calls of public API:
  1. tensorlite.cli.main(['train', '--data', ROOT, '--model', M, '--out', OUT, ...]), i.e.
     `tensorlite train`: every other option is passed through unchanged (`tensorlite train --help`
     lists them: --frames, --size, --epochs, --batch-size, --lr, --val-split, --seed, --skip-bad,
     --resume, --workers, --no-progress ...), with the same defaults. OUT (default
     runs/<model>/<date-time>) gets last.npz and best.npz;
  2. tensorlite.cli.main(['eval', OUT]): top-1 and mean class accuracy on the held-out videos;
  3. tensorlite.train.predict(OUT, videos, topk=3): the top classes of a few held-out videos.
--json PATH writes what the three returned.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import tensorlite.data as D
from tensorlite import cli
from tensorlite.train import load_run, predict, run

DEMO_MARKER = 'demo.json'          # the settings a demo folder was written with


def write_demo_folder(root, family='scene', videos_per_class=16, num_frames=24, size=40, fps=12,
                      frame_folder_every=4, seed=0):
    """Write SyntheticActions(family) clips into root/<class>/: .mp4 files, every
    `frame_folder_every`-th one a folder of PNG frames, and root/<first class>/unreadable.mp4,
    which is not a video. A demo folder written with the same settings is reused, one written
    with other settings replaced. Returns the number of videos written (0 when reused)."""
    settings = {'family': family, 'videos_per_class': videos_per_class, 'num_frames': num_frames,
                'size': size, 'fps': fps, 'frame_folder_every': frame_folder_every, 'seed': seed}
    marker = os.path.join(root, DEMO_MARKER)
    if os.path.exists(marker):
        with open(marker, encoding='utf-8') as f:
            if json.load(f) == settings:
                return 0
        shutil.rmtree(root)                 # a demo folder of other settings: its videos would stay
    elif os.path.isdir(root) and os.listdir(root):
        raise SystemExit(f"--demo-dir {root!r} holds files but no {DEMO_MARKER}: it is not a demo "
                         f"folder (to train on it, give it as ROOT)")
    classes = D.SyntheticActions(family, 0).classes
    data = D.SyntheticActions(family, videos_per_class * len(classes), num_frames=num_frames,
                              size=size, seed=seed)
    for i in range(len(data)):
        name, k = classes[i % len(classes)], i // len(classes)   # clip i has label i % classes
        os.makedirs(os.path.join(root, name), exist_ok=True)
        folder = frame_folder_every and k % frame_folder_every == frame_folder_every - 1
        D.write_video(os.path.join(root, name, f'{name}_{k:03d}' + ('/' if folder else '.mp4')),
                      data.frames(i), fps=fps)
    with open(os.path.join(root, classes[0], 'unreadable.mp4'), 'w') as f:
        f.write('this is not a video file\n')
    with open(marker, 'w', encoding='utf-8') as f:
        json.dump(settings, f)
    return len(data)


def parse_args(argv):
    """(the script's options, ROOT or None, the options passed on to `tensorlite train`)."""
    ap = argparse.ArgumentParser(
        usage='%(prog)s [ROOT] [--demo-dir DIR] [--quick] [--json PATH] '
              '[options of tensorlite train]',
        description=' '.join(__doc__.split('\n\n')[0].split()), allow_abbrev=False,
        epilog='Any other option is `tensorlite train`\'s: see `tensorlite train --help`.')
    ap.add_argument('--model', default='early_fusion',
                    help='a registered model, as for tensorlite train (default early_fusion)')
    ap.add_argument('--out', help='the run folder, as for tensorlite train (default '
                                  'runs/<model>/<date-time>)')
    ap.add_argument('--demo-dir', default=os.path.join('runs', 'demo_videos'),
                    help='without ROOT: write (or reuse) the demo folder here '
                         '(default runs/demo_videos)')
    ap.add_argument('--videos-per-class', type=int, default=12,
                    help='demo videos per class (default 12)')
    ap.add_argument('--quick', action='store_true',
                    help='4 demo videos per class, and --epochs 1 --frames 8 unless given')
    ap.add_argument('--json', metavar='PATH', help="write the run's results here")
    root = argv[0] if argv and not argv[0].startswith('-') else None
    args, train_options = ap.parse_known_args(argv[1:] if root else argv)
    if any(a.split('=')[0] == '--data' for a in train_options):
        ap.error('the data is ROOT (the first argument), not --data')
    if args.quick:
        args.videos_per_class = 4
        for flag, value in (('--epochs', '1'), ('--frames', '8')):
            if not any(a == flag or a.startswith(flag + '=') for a in train_options):
                train_options += [flag, value]
    return args, root, train_options


def main(argv=None):
    args, root, train_options = parse_args(list(sys.argv[1:] if argv is None else argv))
    started = time.perf_counter()
    if root is None:
        root = args.demo_dir
        written = write_demo_folder(root, videos_per_class=args.videos_per_class)
        print(f"demo folder {root}: " + (f"wrote {written} videos" if written else "reused"))
        if '--skip-bad' not in train_options:
            train_options.append('--skip-bad')     # the demo holds an unreadable file
    out = args.out or run.default_run_folder(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        train_json = os.path.join(scratch, 'train.json')      # what train and eval measured
        eval_json = os.path.join(scratch, 'eval.json')
        train = ['train', '--model', args.model, '--data', root, '--out', out, *train_options]
        print('$ tensorlite ' + ' '.join(train))
        code = cli.main(train + ['--json', train_json])
        if code:
            sys.exit(code)                       # tensorlite's exit code; the error is printed
        evaluate = ['eval', out] + [a for a in train_options
                                    if a in ('--skip-bad', '--no-progress')]
        print('$ tensorlite ' + ' '.join(evaluate))
        code = cli.main(evaluate + ['--json', eval_json])
        if code:
            sys.exit(code)
        with open(train_json, encoding='utf-8') as f, open(eval_json, encoding='utf-8') as g:
            trained, evaluated = json.load(f), json.load(g)

    # a few held-out videos, one per class, chosen the way the run split the folder
    model, config = load_run(out)
    folder = D.VideoFolder(root)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # tensorlite train has reported them
        unreadable = folder.check_files()
    held_out = D.stratified_split(folder.targets, config['val_split'], config['split_seed'])[1]
    videos = {}
    for i in held_out or range(len(folder)):
        path, label = folder.samples[i]
        if path not in unreadable:
            videos.setdefault(label, path)
    predictions = predict((model, config), list(videos.values()), topk=3)
    print(f"predictions of {out} (tensorlite.train.predict, topk=3):")
    for item in predictions:
        shown = ', '.join(f"{p['label']} {p['probability']:.3f}" for p in item['predictions'])
        print(f"  {os.path.relpath(item['video'], root)}: {shown}")
    seconds = time.perf_counter() - started
    print(f"done in {seconds:.1f} s; now try: tensorlite eval {out}; "
          f"tensorlite predict {out} {next(iter(videos.values()))}")
    results = {'root': root, 'out': out, 'classes': config['classes'], 'unreadable': unreadable,
               'checkpoints': sorted(n for n in run.CHECKPOINT_NAMES
                                     if os.path.isfile(os.path.join(out, n))),
               'history': trained['history'], 'final': trained['final'],
               'eval': evaluated['metrics'], 'predictions': predictions, 'seconds': seconds}
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()

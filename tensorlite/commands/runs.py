"""`tensorlite train`, `eval` and `predict`: runs of tensorlite.train.run (run_training,
evaluate_run, load_run) and tensorlite.train.inference (predict)."""
import os

from ..cli import EXIT_OK, check_device, check_plots_available, join_mpi_job, missing_error
from ..cli import number, plots, usage_error, write_outputs

EXAMPLES = {
    'train': """\
tensorlite train --model single_frame --data synthetic:scene      # ~10 s, >= 90 % accuracy
tensorlite train --model c3d --data synthetic:order --out runs/c3d_order
tensorlite train --model i3d --data my_videos/ --frames 8 --size 64 --epochs 20 --scheduler cosine
tensorlite train --model c3d --data synthetic:order --out runs/c3d_order --resume --epochs 4""",
    'eval': """\
tensorlite eval runs/c3d_order                      # its best.npz, on its validation clips
tensorlite eval runs/c3d_order --views 3 --temporal --plot confusion.png
tensorlite eval runs/my_i3d --data other_videos/    # a folder with some of the run's classes
tensorlite eval runs/my_i3d --data other_videos/jump/clip.mp4""",
    'predict': """\
tensorlite predict runs/my_i3d clip.mp4 other.avi
tensorlite predict runs/my_i3d/last.npz clips/*.mp4 --topk 3 --views 3 --json predictions.json""",
}


def cmd_train(args):
    from ..train import run_training
    check_device(args.device)
    if args.plot:
        check_plots_available()
    join_mpi_job()
    # the parser's train options are run_training's keyword arguments, named alike
    options = {k: v for k, v in vars(args).items() if k not in ('command', 'handler', 'extra',
               'traceback', 'json', 'plot', 'no_progress', 'no_shuffle')}
    result = run_training(**options, shuffle=not args.no_shuffle,
                          progress='epochs' if args.no_progress else True)
    write_outputs(args, result)
    if args.plot:
        plots().plot_history(result['history'], args.plot)
        print(f"learning curves: {args.plot}")
    return EXIT_OK


def cmd_eval(args):
    from ..train import evaluate_run
    check_device(args.device)
    if args.plot:
        check_plots_available()
    if (args.run is None) == (args.checkpoint is None):
        raise usage_error("give the run either as RUN or as --checkpoint, not both" if args.run else
                          "which run? give RUN: a `tensorlite train` --out folder (its best.npz, "
                          "else last.npz) or a checkpoint file")
    model, config, checkpoint = load_run_or_exit(args.run or args.checkpoint,
                                                 'RUN' if args.run else '--checkpoint')
    print(f"evaluating {checkpoint}")
    options = {k: getattr(args, k) for k in ('data', 'num_clips', 'data_seed', 'views', 'workers',
               'video_frames', 'batch_size', 'temporal', 'device', 'skip_bad')}
    result = evaluate_run((model, config), **options, progress=not args.no_progress)
    result['checkpoint'] = os.path.abspath(checkpoint)
    write_outputs(args, result)
    if args.plot:
        plots().plot_confusion_matrix(result['metrics']['confusion_matrix'], args.plot,
                                      class_names=list(config['classes']))
        print(f"confusion matrix: {args.plot}")
    return EXIT_OK


def cmd_predict(args):
    from ..data import VideoReadError
    from ..train import predict
    check_device(args.device)
    model, config, checkpoint = load_run_or_exit(args.run)
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
    write_outputs(args, results)
    return EXIT_OK


def load_run_or_exit(path, option='RUN'):
    from ..train import CheckpointError, load_run, resolve_checkpoint
    try:
        checkpoint = resolve_checkpoint(path)
        return load_run(checkpoint) + (checkpoint,)
    except (FileNotFoundError, CheckpointError, OSError, ValueError) as e:
        raise missing_error(f"{option} {path!r}: {e}") from None


def add_commands(command, s):
    """The subcommands of this module, on the parser of `tensorlite` (cli.build_parser)."""
    from ..optim import OPTIMIZERS, SCHEDULERS
    recipe = "default: the model's recipe (compare's; printed when the run starts)"
    p = command('train', cmd_train, 'train a model with tensorlite.train.fit', s.clip, s.data,
                s.device, s.quiet, s.json_out, s.plot)
    p.set_defaults(data='synthetic:scene')
    p.add_argument('--model', required=True, help='a registered model (tensorlite info lists them)')
    p.add_argument('--epochs', type=number(int, '--epochs', strict=False), help=recipe)
    p.add_argument('--batch-size', type=number(int, '--batch-size'),
                   help=f'clips per batch, per process under mpiexec; {recipe}')
    p.add_argument('--lr', type=number(float, '--lr'), help=f'learning rate; {recipe}')
    p.add_argument('--optimizer', choices=OPTIMIZERS, help=f'sgd (momentum 0.9), adam or adamw; '
                                                           f'{recipe}')
    p.add_argument('--weight-decay', type=number(float, '--weight-decay', strict=False),
                   help=recipe)
    p.add_argument('--clip-grad-norm', type=number(float, '--clip-grad-norm'),
                   help=f"clip the gradients' global norm to this; {recipe}: 5 for i3d, none else")
    p.add_argument('--scheduler', choices=SCHEDULERS, help=(
        'learning-rate schedule, stepped per epoch: none (constant), step (x0.1 after each third '
        'of the epochs) or cosine (to 0) (default none)'))
    p.add_argument('--warmup-epochs', type=number(int, '--warmup-epochs', strict=False),
                   help='epochs of linear warmup (default 0)')
    p.add_argument('--no-shuffle', action='store_true', help='keep the training clips in order')
    p.add_argument('--sync-bn', action='store_true', help=(
        'BatchNorm statistics over every process of an mpiexec run (SyncBatchNorm)'))
    p.add_argument('--val-clips', type=number(int, '--val-clips'), help=(
        'synthetic validation clips, another seed (default num-clips / 4, at most 256)'))
    p.add_argument('--val-split', type=float, default=0.2,
                   help="a folder's held-out fraction per class (0: no validation)")
    p.add_argument('--seed', type=number(int, '--seed', strict=False), default=0,
                   help='seeds the weights, the data and its order: a run repeats bit for bit')
    p.add_argument('--out', help=('checkpoint folder: last.npz, best.npz, history.csv and .json '
                                  '(default: runs/<model>/<date-time>; a run needs --resume)'))
    p.add_argument('--resume', action='store_true', help='continue from OUT/last.npz if present')

    p = command('eval', cmd_eval, 'evaluate a run of tensorlite train on labelled videos', s.data,
                s.device, s.quiet, s.json_out, s.plot)
    p.set_defaults(num_clips=64)
    p.add_argument('run', nargs='?', help=('a run folder (the --out of tensorlite train: its '
                                           'best.npz, else last.npz) or a checkpoint file'))
    p.add_argument('--checkpoint', help='the same as RUN (a checkpoint file)')
    p.add_argument('--data-seed', type=number(int, '--data-seed', strict=False),
                   help="synthetic data seed (default: the run's "
                                                   "validation seed)")
    p.add_argument('--views', type=number(int, '--views'), default=1,
                   help='clips per video, their softmax averaged (MultiClip)')
    p.add_argument('--video-frames', type=number(int, '--video-frames'), help=(
        "synthetic: render videos this long and take the views from them (default: the "
        "model's clip length)"))
    p.add_argument('--batch-size', type=number(int, '--batch-size'), default=16,
                   help='clips per batch')
    p.add_argument('--temporal', action='store_true',
                   help='also report accuracy on reversed and shuffled frames')

    p = command('predict', cmd_predict, "a trained run's top classes for each video", s.device,
                s.json_out)
    p.add_argument('run', help='a run folder (its best.npz, else last.npz) or a checkpoint file')
    p.add_argument('videos', nargs='+', metavar='VIDEO',
                   help='video files (.mp4, .avi, .mkv, .webm, ...), GIFs or folders of frames')
    p.add_argument('--topk', type=number(int, '--topk'), default=5, help='classes per video')
    p.add_argument('--views', type=number(int, '--views'), default=1,
                   help='clips per video, evenly spaced, probabilities averaged')

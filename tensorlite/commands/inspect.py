"""`tensorlite summary`, `gradcheck` and `flow`: a model's layers, the ops' gradients, a video's
optical flow."""
import os
import sys

from ..cli import EXIT_OK, CLIError, check_plots_available, missing_error, number, write_outputs
from ..cli import usage_error

EXAMPLES = {
    'summary': """\
tensorlite summary c3d
tensorlite summary c3d --preset paper               # 101 classes: 78,409,573 parameters
tensorlite summary c3d --frames 8 --size 64
tensorlite summary slowfast --preset paper --json slowfast.json""",
    'gradcheck': """\
tensorlite gradcheck                                # every op
tensorlite gradcheck conv3d lstm attention""",
    'flow': """\
tensorlite flow clip.mp4 -o flow.png --frames 0:9
tensorlite flow clip.mp4 -o flow.gif --frames 0:33""",
}


def cmd_summary(args):
    from ..models import model_summary
    from ..train.run import check_model_name
    check_model_name(args.model)
    frames, size, batch = args.frames, args.size, 1
    if args.input_shape is not None:
        if args.frames is not None or args.size is not None:
            raise usage_error("give either --input-shape or --frames/--size, not both")
        try:
            shape = tuple(int(d) for d in args.input_shape.replace('x', ',').split(','))
        except ValueError:
            shape = ()
        if len(shape) != 5 or min(shape) < 1:
            raise usage_error(f"--input-shape must be five positive ints N,C,T,H,W, got "
                              f"{args.input_shape!r}")
        batch, channels, frames, height, size = shape
        if height != size:
            raise usage_error(f"--input-shape: frames must be square (H = W), got {height}x{size}")
        if channels != 3:
            raise usage_error(f"--input-shape: clips are RGB (C = 3), got C = {channels}")
    try:
        result = model_summary(args.model, args.num_classes, preset=args.preset, frames=frames,
                               size=size, batch=batch)
    except ValueError as e:                   # a clip the model cannot take, named by the model
        raise usage_error(f"{args.model}: {e}") from None
    print(result)
    layers = [{'name': r.name, 'type': r.kind, 'output_shape': r.shape, 'params': r.params,
               'macs': r.macs, 'activation_bytes': r.activation_bytes, 'leaf': r.leaf,
               'calls': r.calls} for r in result.rows]
    write_outputs(args, {'model': args.model, 'preset': args.preset,
                   'num_classes': result.config['num_classes'],
                   'frames': result.config['frames'], 'size': result.config['size'],
                   'input_shapes': result.input_shapes, 'layers': layers,
                   'total_params': result.total_params, 'total_macs': result.total_macs,
                   'total_activation_bytes': result.total_activation_bytes})
    return EXIT_OK


def cmd_gradcheck(args):
    from .. import gradcheck_suite as G
    if not G.matching_ops(args.words):
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
    write_outputs(args, {'rows': rows, 'checked': len(rows), 'failed': failed})
    if failed:
        raise CLIError(f"{len(failed)} of {len(rows)} ops failed: {', '.join(failed)}")
    return EXIT_OK


def cmd_flow(args):
    from ..data import VideoReadError
    from ..viz import flow_visual
    if args.output.lower().endswith('.png'):
        check_plots_available('-o .png')
    start, sep, stop = args.frames.partition(':')
    try:
        frames = slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        sep = None
    if not sep:
        raise usage_error(f"--frames must be a:b (frame indices, b exclusive), got {args.frames!r}")
    if not os.path.exists(args.video):
        raise missing_error(f"video {args.video!r}: no such file or folder")
    try:
        shown = flow_visual(args.video, args.output, frames, args.max_flow, args.columns, args.fps)
    except (VideoReadError, OSError) as e:
        raise missing_error(f"video {args.video!r} cannot be read: {e}") from None
    except ValueError as e:
        raise usage_error(str(e)) from None
    print(f"{len(shown['flows'])} flows of frames {int(shown['indices'][0])}.."
          f"{int(shown['indices'][-1])} (max |flow| {shown['max_magnitude']:.2f} px, colour scale "
          f"{shown['max_flow']:.2f} px): {args.output}")
    return EXIT_OK


def add_commands(command, s):
    """The subcommands of this module, on the parser of `tensorlite` (cli.build_parser)."""
    p = command('summary', cmd_summary, "a model's layers: output shapes, parameters, "
                'multiply-adds, activation memory', s.clip, s.json_out)
    p.add_argument('model', help='a registered model')
    p.add_argument('--num-classes', type=number(int, '--num-classes'), help=(
        'classes of the classifier (default: the published number for --preset paper, e.g. '
        'C3D 101, the Kinetics models 400; 10 for tiny)'))
    p.add_argument('--input-shape', help="N,C,T,H,W (default: one clip of the model's own size)")

    p = command('gradcheck', cmd_gradcheck, 'gradient-check every differentiable op in float64 '
                '(first and second order)', s.json_out)
    p.add_argument('words', nargs='*', help='only ops whose name contains one of these')
    p.add_argument('--seed', type=number(int, '--seed', strict=False), default=0,
                   help='seed of the inputs')

    p = command('flow', cmd_flow, "a video's optical flow (Farnebaeck), colour-coded")
    p.add_argument('video', help='a video file, GIF or folder of frames')
    p.add_argument('-o', '--output', required=True, help=(
        '.png: the frames and their flows in rows, with the colour key; .gif: frame | flow'))
    p.add_argument('--frames', default='0:9', help='frames a:b, b exclusive')
    p.add_argument('--max-flow', type=float, help=(
        'pixels of displacement at full saturation (default: the 99th percentile of |flow|, a '
        'scene cut left out)'))
    p.add_argument('--columns', type=number(int, '--columns'), help=(
        'flows per row of the PNG figure (default: up to 6, rows filled evenly)'))
    p.add_argument('--fps', type=number(float, '--fps'), help="GIF frame rate (default: the "
                                                               "video's)")

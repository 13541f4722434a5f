"""`tensorlite convert`: a PyTorchVideo or torchvision checkpoint as tensorlite weights
(tensorlite.models.convert_state_dict)."""
from ..cli import EXIT_OK, missing_error, usage_error

EXAMPLES = {
    'convert': """\
tensorlite convert torchvision r3d_18 r3d_18-b3b3357e.pth -o r3d_18.npz
tensorlite convert pytorchvideo slowfast_r50 SLOWFAST_8x8_R50.pyth -o slowfast_r50.npz
tensorlite convert pytorchvideo i3d i3d_r50.npz -o i3d.npz      # into i3d's torchvision names""",
}


def cmd_convert(args):
    import os

    from .. import serialization
    from ..models import ConversionError, conversion_head, convert_state_dict, read_state_dict
    if not args.output.endswith('.npz'):
        raise usage_error(f"-o/--output must end in .npz, got {args.output!r}")
    try:
        source = read_state_dict(args.checkpoint)
    except FileNotFoundError as e:
        raise missing_error(f"checkpoint {e}") from None
    except ValueError as e:
        raise missing_error(str(e)) from None
    if source.skipped:
        print(f"{args.checkpoint}: the weights of its model entry; not converted: "
              f"{', '.join(map(str, source.skipped))}")
    try:
        state = convert_state_dict(args.source, args.model, source)
    except (ConversionError, ValueError, TypeError) as e:
        raise usage_error(str(e)) from None
    folder = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(folder, exist_ok=True)
    serialization.save(state, args.output)
    classes = state[conversion_head(args.source, args.model)].shape[0]
    values = sum(int(v.size) for v in state.values())
    print(f"{len(state)} arrays ({values:,} values) for {args.model} with {classes} classes: "
          f"{args.output}\n(load with build_model({args.model!r}, {classes}, preset='paper')"
          f".load_state_dict(tl.load({args.output!r})))")
    return EXIT_OK


def add_commands(command, s):
    """The subcommands of this module, on the parser of `tensorlite` (cli.build_parser)."""
    from ..models.convert import SOURCES
    p = command('convert', cmd_convert, "convert a PyTorchVideo or torchvision checkpoint to "
                "tensorlite weights (.npz of arrays, or .pt/.pth/.pyth when torch is installed)")
    p.add_argument('source', choices=SOURCES, help='where the checkpoint comes from')
    p.add_argument('model', help='the tensorlite model it loads into (tensorlite info lists them)')
    p.add_argument('checkpoint', help='the source state dict: .npz of arrays, or .pt/.pth/.pyth')
    p.add_argument('-o', '--output', required=True, help='the tensorlite weights (.npz)')

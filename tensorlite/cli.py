"""The `tensorlite` command line: the entry point, the parser, the exit codes and the options
the commands share.  Each subcommand's arguments and printing are in tensorlite/commands/ (train,
eval, predict: commands/runs.py; compare; summary, gradcheck, flow: commands/inspect.py; bench,
gpu-report, info: commands/system.py); the work is done by the library they call.

`python -m tensorlite ...` is the same.  Every subcommand has --help (with examples and the exit
codes); `--json PATH` writes what the command measured as JSON (atomically; NaN as null).  Errors
go to stderr as `tensorlite <command>: error: <message>`.
"""
import argparse
import math
import os
import sys
import traceback

from .utils import write_json

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit codes:
  0    success
  1    a check failed (gradcheck, a benchmark) or an unexpected error (--traceback shows it)
  2    bad arguments: unknown model, family, preset or device, malformed value
  3    a missing or unreadable file (checkpoint, video, data folder, benchmarks folder)
  130  interrupted (Ctrl-C)"""


class CLIError(Exception):
    """An error the command reports as one line, with the exit code it stands for."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code


def usage_error(message):
    return CLIError(message, EXIT_USAGE)


def missing_error(message):
    return CLIError(message, EXIT_MISSING)


def check_device(device):
    """'cuda' only when CuPy imports and sees a GPU (or the device is simulated)."""
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


def number(kind, name, minimum=0, strict=True):
    """An argparse type: `kind` (int or float, finite) > minimum (>= when not strict)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or \
                not (value > minimum if strict else value >= minimum):
            what = 'an int' if kind is int else 'a finite number'
            raise argparse.ArgumentTypeError(f"{name} must be {what} {'>' if strict else '>='} "
                                             f"{minimum}, got {text!r}")
        return value
    return parse


def join_mpi_job():
    """Under `mpiexec -n N`, join the process group (tensorlite.distributed) and keep the console
    to rank 0: the other ranks' stdout goes to /dev/null (errors still reach stderr)."""
    from . import distributed
    if distributed.launched_by_mpi() and not distributed.is_initialized():
        distributed.init_process_group()
    if distributed.get_rank() != 0:
        sys.stdout = open(os.devnull, 'w')


def write_outputs(args, value):
    """--json: `value` as JSON."""
    if args.json:
        write_json(args.json, value)


def plots():
    """tensorlite.plots, imported when a plot is asked for (it imports matplotlib itself)."""
    from . import plots
    return plots


# ---- the parser ---------------------------------------------------------------------------------

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout; ends an option's help with its default unless it says it."""

    def _get_help_string(self, action):
        text = action.help or ''
        if (action.option_strings and 'default' not in text.lower() and action.nargs != 0
                and action.default is not argparse.SUPPRESS):         # flags: on when given
            text += f" (default: {'none' if action.default is None else action.default})"
        return text


def _parent(*options):
    """A parent parser holding `options`, each (flags, add_argument keywords)."""
    parent = argparse.ArgumentParser(add_help=False)
    for flags, kwargs in options:
        parent.add_argument(*flags, **kwargs)
    return parent


def build_parser():
    from . import __version__
    from .commands import compare, inspect, runs, system, weights
    from .train.run import CLASS_FAMILIES, DEFAULT_FRAMES, DEFAULT_SIZE
    common = _parent((['--traceback'], dict(
        action='store_true', help='print the full traceback of an unexpected error')))
    # the options commands share: a new parent parser for each command (argparse shares a parent's
    # actions, so one command's set_defaults would change another's default)
    shared = argparse.Namespace(
        json_out=lambda: _parent((['--json'], dict(help='write what the command measured here'))),
        device=lambda: _parent((['--device'], dict(choices=('cpu', 'cuda'), default='cpu', help=(
            'cpu or cuda (needs CuPy and a GPU, or TENSORLITE_SIMULATE_CUDA=1)')))),
        plot=lambda: _parent((['--plot'], dict(
            help='write the figure here (PNG; needs matplotlib)'))),
        quiet=lambda: _parent((['--no-progress'], dict(action='store_true',
                                                      help='no progress bars'))),
        clip=lambda: _parent(
            (['--preset'], dict(choices=('tiny', 'paper'), default='tiny', help=(
                'tiny (trains in seconds on a CPU) or paper (the published configuration)'))),
            (['--frames'], dict(type=number(int, '--frames'), help=(
                f"frames per clip (default: train {DEFAULT_FRAMES}, summary the preset's)"))),
            (['--size'], dict(type=number(int, '--size'), help=(
                f"frame height and width (default: train {DEFAULT_SIZE}, summary the preset's)")))),
        data=lambda: _parent(
            (['--data'], dict(help=(
                f"synthetic:FAMILY ({', '.join(CLASS_FAMILIES)}) or a folder root/<class>/<video> "
                "(eval: also one video; default: train synthetic:scene, eval the run's "
                "validation data)"))),
            (['--skip-bad'], dict(action='store_true', help=(
                "replace a folder's unreadable videos by others of their class instead of "
                "stopping (each is reported once)"))),
            (['--num-clips'], dict(type=number(int, '--num-clips'), help=(
                "synthetic clips (default: train compare's for the family, e.g. scene 384, order "
                "2048; eval 64)"))),
            (['--workers'], dict(type=number(int, '--workers', strict=False), default=0,
                                 help='DataLoader workers'))))
    parser = argparse.ArgumentParser(
        prog='tensorlite', description='Train, evaluate, compare and inspect tensorlite video '
        'models.', epilog=EPILOG, formatter_class=_Formatter)
    parser.add_argument('--version', action='version', version=f"tensorlite {__version__}")
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for module in (runs, compare, inspect, weights, system):
        def command(name, handler, help_text, *parents, examples=module.EXAMPLES):
            p = sub.add_parser(name, help=help_text, description=help_text,
                               parents=[common, *(make() for make in parents)],
                               formatter_class=_Formatter, epilog='examples:\n  ' + examples[
                                   name].replace('\n', '\n  ') + '\n\n' + EPILOG)
            p.set_defaults(handler=handler)
            return p
        module.add_commands(command, shared)
    return parser


# ---- main ---------------------------------------------------------------------------------------

def _split_extra(argv):
    """bench's arguments after '--' are the scripts'; argparse would take them as NAMES."""
    command = next((a for a in argv if not a.startswith('-')), None)
    if command == 'bench' and '--' in argv:
        k = argv.index('--')
        return argv[:k], argv[k + 1:]
    return argv, []


def main(argv=None):
    """Run the command line `argv` (default sys.argv[1:]); returns the exit code."""
    from .data import VideoReadError
    from .train import RunError, RunFileError
    argv, extra = _split_extra(list(sys.argv[1:] if argv is None else argv))
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
    except (CLIError, RunError, RunFileError, VideoReadError) as e:
        print(f"tensorlite {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, 'code', EXIT_USAGE if isinstance(e, RunError) else EXIT_MISSING)
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

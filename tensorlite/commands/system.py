"""`tensorlite bench`, `gpu-report` and `info`: the benchmarks, the CUDA kernels compiled, this
machine."""
from ..cli import EXIT_FAILED, EXIT_MISSING, EXIT_OK, CLIError, missing_error, number, write_outputs
from ..cli import usage_error

EXAMPLES = {
    'bench': """\
tensorlite bench --list
tensorlite bench conv -- --repeats 3""",
    'gpu-report': """\
tensorlite gpu-report
tensorlite gpu-report --arch sm_90 --json gpu-sm_90.json""",
    'info': """\
tensorlite info
tensorlite info --json info.json""",
}


def cmd_bench(args):
    from .. import bench
    try:
        scripts = bench.list_benchmarks()
        if args.list:
            for name, (_, doc) in scripts.items():
                print(f"{name:16s} {doc[:100]}")
            return EXIT_OK
        failed = bench.run_benchmarks(args.names, args.extra, args.timeout)
    except FileNotFoundError as e:
        raise missing_error(str(e)) from None
    except ValueError as e:
        raise usage_error(str(e)) from None
    if failed:
        raise CLIError(f"benchmarks failed: {', '.join(failed)}")
    return EXIT_OK


def cmd_gpu_report(args):
    """Every CUDA twin compiled by NVIDIA's compilers (no GPU needed): kernels/cuda/_report.py."""
    from ..kernels.cuda import _report
    try:
        result = _report.report(args.arch)
    except (RuntimeError, ValueError) as e:
        raise CLIError(str(e), EXIT_MISSING if 'not installed' in str(e) else EXIT_FAILED)
    print(_report.table(result))
    write_outputs(args, result)
    return EXIT_OK


def cmd_info(args):
    from .. import cuda
    from .. import utils
    info = utils.collect_info()
    print(f"tensorlite {info['tensorlite']}  numpy {info['numpy']}  numba {info['numba']}  "
          f"python {info['python']}")
    print(f"platform   {info['platform']}")
    print(f"CPUs       {info['cpu_count']} ({info['usable_cpus']} usable by this process)")
    threads = info['cpu_threads']
    print(f"threads    {info['numba_threads']} Numba threads; OpenMP wait policy "
          f"{threads['omp_wait_policy'] or 'libgomp default (active)'}"
          + (' (set by tensorlite)' if threads['set_by_tensorlite'] else '')
          + ('; NOT in effect: libgomp was loaded before tensorlite'
             if threads['in_effect'] is False else ''))
    print(f"CuPy       {'importable' if info['cupy_importable'] else 'not importable'}")
    simulated = ' (simulated: TENSORLITE_SIMULATE_CUDA=1)' if cuda.is_simulated() else ''
    print(f"CUDA       {'available' + simulated if info['cuda_available'] else 'not available'}"
          + (f": {info['cuda_unavailable_reason']}" if info['cuda_unavailable_reason'] else ''))
    print(f"models     {', '.join(info['models'])}")
    for family, classes in info['synthetic_families'].items():
        print(f"synthetic:{family:7s} {len(classes)} classes: {', '.join(classes)}")
    write_outputs(args, info)
    return EXIT_OK


def add_commands(command, s):
    """The subcommands of this module, on the parser of `tensorlite` (cli.build_parser)."""
    p = command('bench', cmd_bench, "run the repository's benchmarks/ scripts (arguments after "
                '-- go to each script)')
    p.add_argument('names', nargs='*', help='benchmarks to run, e.g. conv flow (default: all)')
    p.add_argument('--list', action='store_true', help='list the benchmarks and stop')
    p.add_argument('--timeout', type=number(float, '--timeout'), default=3600.0,
                   help='seconds each benchmark may run before it is killed')

    p = command('gpu-report', cmd_gpu_report, "compile every CUDA kernel with NVIDIA's compilers "
                '(pip install .[gpu-check]; no GPU needed): registers, spills, float64, '
                'occupancy', s.json_out)
    p.add_argument('--arch', default='sm_80', help='sm_80, sm_86, sm_89 or sm_90')

    command('info', cmd_info, 'versions, CPUs, CUDA, models, synthetic families', s.json_out)

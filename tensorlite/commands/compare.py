"""`tensorlite compare`: tensorlite.compare's table, or one of tensorlite.experiments."""
from ..cli import EXIT_OK, check_device, check_plots_available, join_mpi_job, number, plots
from ..cli import usage_error, write_outputs

EXAMPLES = {
    'compare': """\
tensorlite compare --quick                          # about a minute on 2 cores
tensorlite compare --models single_frame,c3d --families scene,order --plot compare.png
tensorlite compare --experiment sampling --json sampling.json --plot sampling.png""",
}


def cmd_compare(args):
    from .. import compare, experiments
    from ..train.run import check_model_name
    jobs = args.jobs if args.jobs is not None else compare.default_jobs()
    if args.plot:
        check_plots_available()
    if args.experiment:
        if args.models is not None or args.families is not None:
            raise usage_error(f"--models and --families do not go with --experiment (the "
                              f"experiment {args.experiment!r} fixes its models and data)")
        if args.device != 'cpu':
            raise usage_error(f"--experiment runs on the CPU only, got --device {args.device}")
        result = experiments.run_experiment(args.experiment, quick=args.quick, seed=args.seed,
                                            progress=not args.no_progress, jobs=jobs)
        print(experiments.format_experiment(result))
        if args.quick:
            print("(the quick run does not promise the claims: too few clips and steps)")
        write_outputs(args, result)
        if args.plot:
            plots().plot_experiment(result, args.plot)
            print(f"plot: {args.plot}")
        return EXIT_OK
    check_device(args.device)
    models = args.models and _comma_list('--models', args.models, check_model_name)
    families = args.families and _comma_list('--families', args.families, _check_family)
    join_mpi_job()
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
    write_outputs(args, records)
    if args.plot:
        plots().plot_compare(records, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


def _comma_list(option, text, check):
    """The names of a comma-separated option, each passed to check (which raises for a bad one)."""
    items = [item.strip() for item in text.split(',') if item.strip()]
    if not items:
        raise usage_error(f"{option} needs comma-separated names, got {text!r}")
    for item in items:
        check(item)
    return items


def _check_family(family):
    from ..train.run import CLASS_FAMILIES
    if family not in CLASS_FAMILIES:
        raise usage_error(f"--families must be comma-separated names among "
                          f"{', '.join(CLASS_FAMILIES)}, got {family!r}")


def add_commands(command, s):
    """The subcommands of this module, on the parser of `tensorlite` (cli.build_parser)."""
    from ..experiments import EXPERIMENTS
    from ..train.run import CLASS_FAMILIES
    p = command('compare', cmd_compare, 'train every model on the synthetic families and compare '
                '(tensorlite.compare)', s.device, s.quiet, s.json_out, s.plot)
    p.add_argument('--quick', action='store_true', help='fewer clips and epochs')
    p.add_argument('--models', help='comma-separated model names (default: all)')
    p.add_argument('--families', help=f"comma-separated, among {','.join(CLASS_FAMILIES)} "
                                      "(default: all)")
    p.add_argument('--seed', type=number(int, '--seed', strict=False), default=0,
                   help='seeds the weights and the clips')
    p.add_argument('--jobs', type=number(int, '--jobs'), help=(
        'cells trained at once, one process each (default: the CPU cores, at most 4)'))
    p.add_argument('--experiment', choices=EXPERIMENTS, help=(
        'run an experiment of tensorlite.experiments instead: sampling (random crops, '
        'multi-clip evaluation), frames (4/8/16 frames: accuracy and cost), data (accuracy '
        'against training clips)'))

"""`repro reproduce TABLE|all`: fetch what is missing, train every run of the table in dependency order
(teachers before their students), evaluate each finished run once, and write the table beside the
printed one (`OUT/results.csv`, `OUT/tables/TABLE.md` and `.tex`) and the report
(`OUT/report/report.html`, see `repro report`). Running it again trains nothing.

Examples:
    repro reproduce table3 --profile smoke --out results/smoke
    repro reproduce table3 --profile paper --jobs 4              # 4 GPUs, one run each
    repro reproduce all --profile paper --runs-per-gpu 4         # one GPU, 4 runs sharing it
    repro reproduce all --profile paper --jobs 2 --runs-per-gpu 4   # 2 GPUs, 4 runs on each
    repro reproduce all --profile paper --launcher slurm --partition gpu --time 2880
    repro reproduce all --profile smoke --eval-images 2 --eval-crop 96   # every step, in minutes
"""

from __future__ import annotations

import argparse

from repro.commands.plan import add_plan_arguments, check_outputs, profile_for

LAUNCHERS = ("local", "pool", "slurm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="train, evaluate and tabulate a table (or all) beside the paper",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_arguments(p)
    p.add_argument("--launcher", choices=LAUNCHERS, default=None,
                   help="local: one run after another (default); pool: --jobs x --runs-per-gpu worker "
                        "processes (--runs-per-gpu on each GPU when there are GPUs); slurm: one Slurm job "
                        "per run, or per --runs-per-gpu runs (submitit)")
    p.add_argument("--jobs", type=int, default=1,
                   help="slots of the pool launcher, one GPU each when there are GPUs (default 1)")
    p.add_argument("--runs-per-gpu", type=int, default=1, metavar="K",
                   help="K runs share each GPU, in separate processes (the networks are too small for one "
                        "run to fill a GPU; `python -m repro.bench --only gpu` measures the best K). pool: "
                        "--jobs x K workers, K per GPU (on a CPU: K processes sharing the cores); slurm: one "
                        "job with one GPU per K runs (default 1)")
    p.add_argument("--data-root", help="data root (default $REPRO_DATA, else ~/.cache/dssd-repro/data)")
    p.add_argument("--no-report", action="store_true", help="do not write OUT/report/ (`repro report`)")
    q = p.add_argument_group("quick checks (not the protocol: the report says so)")
    q.add_argument("--eval-images", type=int, metavar="N",
                   help="evaluate on the first N images of each test set only")
    q.add_argument("--eval-crop", type=int, metavar="P",
                   help="evaluate on the top-left P x P HR pixels of each image only")
    s = p.add_argument_group("slurm (with --launcher slurm)")
    s.add_argument("--partition", help="Slurm partition")
    s.add_argument("--time", type=int, default=4320, help="minutes per job (default 4320 = 3 days)")
    s.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per job (default 1)")
    s.add_argument("--cpus-per-job", type=int, default=8, help="CPUs per job (default 8)")
    s.add_argument("--account", help="Slurm account")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.errors import ReproError
    from repro.plan.execute import training_device
    from repro.plan.orchestrate import Options, carry_out
    from repro.results.tabulate import tabulate
    from repro.specs import tables as select

    check_outputs(args)
    for flag, value in (("--eval-images", args.eval_images), ("--eval-crop", args.eval_crop)):
        if value is not None and value < 1:
            raise ReproError(f"{flag} must be at least 1, got {value} (leave it out to evaluate whole images "
                             "of every set)")
    tables = select(args.table)
    launcher = args.launcher or ("pool" if args.jobs > 1 or args.runs_per_gpu > 1 else "local")
    if args.jobs < 1:
        raise ReproError(f"--jobs must be at least 1, got {args.jobs}")
    if args.runs_per_gpu < 1:
        raise ReproError(f"--runs-per-gpu must be at least 1, got {args.runs_per_gpu}")
    slurm = None
    if launcher == "slurm":
        from repro.plan.slurm import SlurmOptions

        slurm = SlurmOptions(partition=args.partition, time=args.time, gpus=args.gpus_per_job,
                             cpus_per_task=args.cpus_per_job, account=args.account,
                             runs_per_gpu=args.runs_per_gpu)
    options = Options(profile=profile_for(args, tables), seeds=args.seeds, launcher=launcher, jobs=args.jobs,
                      runs_per_gpu=args.runs_per_gpu,
                      data_root=args.data_root, estimate=args.estimate, slurm=slurm,
                      overrides=tuple(args.overrides), eval_images=args.eval_images,
                      eval_crop=args.eval_crop)
    plan = carry_out(tables, args.out, options)
    tabulate(plan, args.out, data_root=args.data_root, device=training_device())
    if not args.no_report:
        from repro.report.build import build_report

        build_report(args.out, data_root=args.data_root, progress=True)
    return 0

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
from repro.plan.launchers import add_launcher_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="train, evaluate and tabulate a table (or all) beside the paper",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_arguments(p)
    add_launcher_arguments(p)  # --launcher, and each launcher's own options (repro.plan.launchers)
    p.add_argument("--data-root", help="data root (default $REPRO_DATA, else ~/.cache/dssd-repro/data)")
    p.add_argument("--no-report", action="store_true", help="do not write OUT/report/ (`repro report`)")
    q = p.add_argument_group("quick checks (not the protocol: the report says so)")
    q.add_argument("--eval-images", type=int, metavar="N",
                   help="evaluate on the first N images of each test set only")
    q.add_argument("--eval-crop", type=int, metavar="P",
                   help="evaluate on the top-left P x P HR pixels of each image only")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.errors import ReproError
    from repro.plan.execute import training_device
    from repro.plan.launchers import launcher_from_arguments
    from repro.plan.orchestrate import Options, carry_out
    from repro.results.tabulate import tabulate
    from repro.specs import tables as select

    check_outputs(args)
    for flag, value in (("--eval-images", args.eval_images), ("--eval-crop", args.eval_crop)):
        if value is not None and value < 1:
            raise ReproError(f"{flag} must be at least 1, got {value} (leave it out to evaluate whole images "
                             "of every set)")
    tables = select(args.table)
    options = Options(profile=profile_for(args, tables), seeds=args.seeds,
                      launcher=launcher_from_arguments(args), data_root=args.data_root,
                      estimate=args.estimate, overrides=tuple(args.overrides),
                      eval_images=args.eval_images, eval_crop=args.eval_crop, fleet=args.fleet)
    plan = carry_out(tables, args.out, options)
    tabulate(plan, args.out, data_root=args.data_root, device=training_device())
    if not args.no_report:
        from repro.report.build import build_report

        build_report(args.out, data_root=args.data_root, progress=True)
    return 0

"""`repro quickstart`: the whole DSSD pipeline in miniature on the embedded sample images (offline).

`repro reproduce quickstart` by another name: trains FSRCNN alone, a DSSD teacher and its distilled
student at x4 on the `sample` photos bundled with scikit-image, then measures them beside bicubic on
the sample test images (Y-channel PSNR/SSIM, docs/protocol.md, "Evaluation"), and writes the report
(OUT/report/report.html: the table, figures, settings and provenance). A few minutes on a laptop
CPU; runs resume if interrupted, finished ones are left alone. Not the paper's settings (see
`repro/profiles/quickstart.toml` and `repro/specs/quickstart.py`); `repro reproduce table3` is a table
of the paper.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the pipeline in miniature, offline: bicubic, FSRCNN*, DSSD "
                       "teacher and student on the embedded sample images", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/quickstart",
                   help="folder of the runs, results.csv and tables/ (default runs/quickstart)")
    p.add_argument("--profile", default="quickstart", help="training profile (default quickstart)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting of every run, e.g. optim.epochs=1")
    p.add_argument("--estimate", choices=("model", "timed", "none"), default="model",
                   help="how the plan's cost is estimated (see `repro plan --help`; default model)")
    p.add_argument("--no-estimate", dest="estimate", action="store_const", const="none",
                   help="no cost estimate (= --estimate none)")
    p.add_argument("--no-report", action="store_true", help="do not write OUT/report/ (`repro report`)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.io_utils import check_output_folder
    from repro.plan.execute import training_device
    from repro.plan.orchestrate import Options, carry_out
    from repro.results.tabulate import tabulate
    from repro.specs import tables

    check_output_folder(args.out)
    options = Options(profile=args.profile, estimate=args.estimate, overrides=tuple(args.overrides))
    plan = carry_out(tables("quickstart"), args.out, options)
    tabulate(plan, args.out, device=training_device())
    if not args.no_report:
        from repro.report.build import build_report

        build_report(args.out, progress=True)
    return 0

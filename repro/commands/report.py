"""`repro report --results DIR`: the report of a results folder (what `repro reproduce` or `repro
quickstart` wrote): one self-contained HTML page (styles and images inline), its Markdown twin, every
table in LaTeX (booktabs), the figures as PNG and PDF, and `comparison.csv` (every printed cell beside
its measurement). Built from the folder alone: nothing is trained or evaluated again.

Examples:
    repro report --results runs/quickstart                 # -> runs/quickstart/report/report.html
    repro report --results results/paper --out site/ --tolerance psnr=0.05
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="the HTML + Markdown report of a results folder, with LaTeX tables "
                       "and figures", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="a results folder: the --out of `repro reproduce` or `repro quickstart`")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default DIR/report)")
    p.add_argument("--data-root", help="where the test images are, for the visual crops (default "
                                       "$REPRO_DATA, else ~/.cache/dssd-repro/data)")
    p.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                   help="what counts as reproduced: psnr=0.1 (dB), ssim=0.002, params_k=0.02 and "
                        "multiadds_g=0.02 (relative) by default")
    p.add_argument("--no-figures", action="store_true", help="leave the figures out (faster)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.io_utils import check_output_folder
    from repro.report.build import build_report
    from repro.report.summary import parse_tolerances

    if args.out:
        check_output_folder(args.out)
    build_report(args.results, args.out, data_root=args.data_root,
                 tolerances=parse_tolerances(args.tolerance), figures=not args.no_figures, progress=True)
    return 0

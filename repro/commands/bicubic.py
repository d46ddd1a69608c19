"""`repro bicubic`: the Bicubic row of Appendix Table I, measured from the images, beside the printed one."""

from __future__ import annotations

import argparse
import json

from repro.commands._lists import DEFAULT_SETS, SET_CHOICES, parse_scales, parse_sets
from repro.formatting import number
from repro.scales import SCALES


def _diff(measured: float, printed: float | None, digits: int) -> str:
    return "-" if printed is None else f"{measured - printed:+.{digits}f}"


def markdown_table(rows: list[dict[str, object]]) -> str:
    """The measured row beside the printed values of Appendix Table I (differences measured - printed)."""
    from repro.published import published

    lines = [
        "| dataset | scale | PSNR printed | PSNR measured | diff "
        "| SSIM printed | SSIM measured | diff | images |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ds, sc = str(r["dataset"]), int(r["scale"])
        p, s = float(r["psnr"]), float(r["ssim"])
        pp = published("appendix1", "Bicubic", sc, ds, "psnr")
        ps = published("appendix1", "Bicubic", sc, ds, "ssim")
        lines.append(f"| {ds} | x{sc} | {number(pp, 2)} | {number(p, 4)} | {_diff(p, pp, 4)} "
                     f"| {number(ps, 4)} | {number(s, 5)} | {_diff(s, ps, 5)} | {r['n_images']} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    sets, scales = parse_sets(args.sets), parse_scales(args.scales)
    from repro.evaluate.bicubic_row import bicubic_row  # after validation: bad input answers at once
    from repro.io_utils import atomic_write_text, check_output_file

    if args.json:
        check_output_file(args.json)
    rows = bicubic_row(sets, scales, root=args.data_root, workers=args.workers, progress=not args.no_progress)
    print(markdown_table(rows))
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bicubic",
        help="measure the Bicubic row of Appendix Table I from the test images, beside the printed one",
        description="MATLAB-bicubic upscaling of each LR test image, PSNR/SSIM on Y (border = scale), "
                    "mean per set, next to the values printed in the paper.",
    )
    parser.add_argument("--sets", default=DEFAULT_SETS,
                        help=f"comma-separated test sets from {SET_CHOICES} (default: the four "
                        "benchmarks)")
    parser.add_argument("--scales", default=",".join(map(str, SCALES)),
                        help="comma-separated scales (default 2,3,4)")
    parser.add_argument("--data-root",
                        help="data root holding benchmark/<set>/ (default: $REPRO_DATA, else the cache)")
    parser.add_argument("--json", help="also write the measured rows to this JSON file")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=main)

"""`repro evaluate RUN_DIR`: PSNR/SSIM (Y channel; docs/protocol.md, "Evaluation") of a trained network
on benchmark sets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from repro.commands._lists import DEFAULT_SETS, SET_CHOICES, parse_sets


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure a trained run's PSNR/SSIM on benchmark sets",
                       description=__doc__)
    p.add_argument("run_dir", metavar="DIR", help="a finished `repro train` run (or its model.pt)")
    p.add_argument("--sets", default=DEFAULT_SETS,
                   help=f"comma-separated test sets: {SET_CHOICES} (default all but sample)")
    p.add_argument("--data-root", help="data root (default $REPRO_DATA, else ~/.cache/dssd-repro/data)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--json", metavar="PATH", help="write per-image rows and set means to this JSON file")
    p.add_argument("--csv", metavar="PATH", help="write the per-image rows to this CSV file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from repro.evaluate.sr import evaluate_run_dir, summarise
    from repro.io_utils import atomic_write_text, check_output_file

    for flag, path in (("--json", args.json), ("--csv", args.csv)):
        if path:
            check_output_file(path, flag)
    sets = parse_sets(args.sets)
    # a teacher is given the HR image (privileged)
    df, record = evaluate_run_dir(args.run_dir, sets, root=args.data_root, device=args.device)
    scale = int(record["scale"])
    means = summarise(df)
    with pd.option_context("display.float_format", "{:.4f}".format):
        print(f"{args.run_dir}: {record['model']} x{scale} ({record['kind']})")
        print(means.to_string(index=False))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps({
            "run": str(args.run_dir), "model": record["model"], "kind": record["kind"], "scale": scale,
            "means": means.to_dict(orient="records"), "images": df.to_dict(orient="records"),
        }, indent=2) + "\n")
    if args.csv:
        atomic_write_text(Path(args.csv), df.to_csv(index=False))
    return 0

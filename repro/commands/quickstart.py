"""`repro quickstart`: the whole DSSD pipeline in miniature on the embedded sample images (offline).

Trains FSRCNN alone, a DSSD teacher and its distilled student at x4 on the `sample` photos bundled
with scikit-image, then measures them beside bicubic on the sample test images (Y-channel PSNR/SSIM,
docs/protocol.md, "Evaluation"). A few minutes on a laptop CPU; runs resume if interrupted. These
are not the paper's settings (see `repro/profiles/quickstart.toml`); `repro train --profile paper` is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from repro.scales import SCALES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the pipeline in miniature, offline: bicubic, FSRCNN*, DSSD "
                       "teacher and student on the embedded sample images", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/quickstart", help="folder for the runs (default runs/quickstart)")
    p.add_argument("--scale", type=int, choices=SCALES, default=4, help="upscaling factor (default 4)")
    p.add_argument("--profile", default="quickstart", help="training profile (default quickstart)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training setting for every run, e.g. optim.epochs=1")
    p.add_argument("--json", metavar="PATH", help="also write the tidy result rows as JSON")
    p.add_argument("--force", action="store_true", help="retrain the runs even if they are finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.experiments.quickstart import run_quickstart, to_markdown
    from repro.io_utils import atomic_write_text

    rows = run_quickstart(args.out, args.scale, args.profile, tuple(args.overrides), args.force,
                          progress=False if args.no_progress else None)
    print(f"\nx{args.scale} on the sample test images ({args.profile} profile):\n")
    print(to_markdown(rows))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows.to_dict(orient="records"), indent=2) + "\n")
    return 0

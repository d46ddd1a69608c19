"""`repro train baseline|teacher|student`: train one network; resumes, and leaves finished runs alone.

Examples:
    repro train baseline --model fsrcnn --scale 4 --profile paper
    repro train teacher --model dssd_teacher --scale 4 --profile paper --set model.downsampler=hfrm
    repro train student --teacher runs/teacher-dssd_teacher-x4-1a2b3c4d --profile paper
    torchrun --nproc_per_node=4 -m repro train teacher --model dssd_teacher --profile paper
"""

from __future__ import annotations

import argparse

from repro.runs.config import KINDS
from repro.runs.profiles import profile_names
from repro.scales import SCALES

DEFAULT_MODEL = {"baseline": "fsrcnn", "teacher": "dssd_teacher"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a baseline, teacher or student network (resumable, multi-GPU)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, help="baseline: an SR network alone (the * rows); teacher: a "
                   "privileged teacher on HR; student: distilled from --teacher")
    p.add_argument("--model", help="network name (`repro models` lists them); default fsrcnn for a "
                   "baseline, dssd_teacher for a teacher, the teacher's backbone for a student")
    p.add_argument("--scale", type=int, choices=SCALES, help="upscaling factor (default 4; a student: "
                   "its teacher's)")
    p.add_argument("--profile", default="paper",
                   help=f"settings profile: {', '.join(profile_names())}, a TOML file, or several joined by "
                   "commas (e.g. smoke,pisr_code); default paper")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. optim.lr=5e-4 or model.downsampler=bicubic (repeatable)")
    p.add_argument("--out", help="run folder (default runs/<kind>-<model>-x<scale>-<hash of the settings>)")
    p.add_argument("--teacher", metavar="RUN_DIR", help="a finished teacher run (students only)")
    p.add_argument("--data-root", help="data root (default $REPRO_DATA, else ~/.cache/dssd-repro/data)")
    p.add_argument("--force", action="store_true", help="train again from scratch even if the run exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per checkpoint)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from repro.runs.config import resolve
    from repro.runs.folder import read_teacher
    from repro.runs.profiles import load_profile
    from repro.train.engine import train

    # a student's model, scale and settings follow its teacher; resolve() refuses a student without one,
    # or a teacher given to another kind of run
    teacher = read_teacher(args.teacher) if args.teacher else None
    model = args.model
    has_name = any(s.split("=", 1)[0].strip() == "model.name" for s in args.overrides)
    has_name = has_name or "name" in load_profile(args.profile).get("model", {})
    if model is None and not has_name and args.kind in DEFAULT_MODEL:
        model = DEFAULT_MODEL[args.kind]
    cfg = resolve(args.profile, kind=args.kind, model=model, scale=args.scale, overrides=args.overrides,
                  teacher=teacher)
    train(cfg, out=args.out, teacher_dir=args.teacher, force=args.force, data_root=args.data_root,
          progress=False if args.no_progress else None)
    return 0

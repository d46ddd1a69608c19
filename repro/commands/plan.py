"""`repro plan TABLE|all`: every run a table needs, its status, and what the missing part costs.

Examples:
    repro plan table3 --profile smoke
    repro plan all --profile paper --json plan.json
"""

from __future__ import annotations

import argparse

from repro.runs.profiles import profile_names
from repro.specs import table_choices


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments `plan` and `reproduce` share."""
    p.add_argument("table", help=f"which table: {', '.join(table_choices())}")
    p.add_argument("--profile", default=None,
                   help=f"settings profile ({', '.join(profile_names())}, a TOML file, or several joined by "
                        "commas); default: the table's own (paper; quickstart for the quickstart)")
    p.add_argument("--seeds", type=int, default=1, help="train seeds 0..N-1 of every run (default 1)")
    p.add_argument("--out", default="results/reproduce", help="folder of the runs and results "
                   "(default results/reproduce)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of every run, after each row's own (repeatable)")
    p.add_argument("--estimate", choices=("model", "timed", "none"), default="model",
                   help="how the cost of what is missing is estimated: model (default: each step's counted "
                        "FLOPs, bytes and operations at this device's measured rates, seconds on a cold "
                        "cache), timed (time each distinct step here too, minutes; shown beside the model) "
                        "or none")
    p.add_argument("--no-estimate", dest="estimate", action="store_const", const="none",
                   help="no cost estimate (= --estimate none)")
    p.add_argument("--fleet", default="auto", metavar="N|auto|off",
                   help="train runs of one structure together in one process, up to N per fleet (each still "
                        "its own run; `auto`: up to 16 on a GPU, none on a CPU; default auto)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="the runs a table needs, their status and the cost of what is missing",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_arguments(p)
    p.add_argument("--json", metavar="PATH", help="also write the plan as JSON (runs and cells)")
    p.set_defaults(func=main)


def profile_for(args: argparse.Namespace, tables: list) -> str:
    if args.profile:
        from repro.runs.profiles import load_profile

        load_profile(args.profile)  # an unknown profile fails here, listing the valid ones
        return args.profile
    return tables[0].profile if len(tables) == 1 else "paper"


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse what would fail after the work (an --out that is a file, a --json into a missing folder)
    before any of it."""
    from repro.io_utils import check_output_file, check_output_folder

    check_output_folder(args.out)
    if getattr(args, "json", None):
        check_output_file(args.json)


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from repro.io_utils import atomic_write_text
    from repro.plan.export import describe, plan_json
    from repro.plan.orchestrate import fleets_and_cost
    from repro.plan.runs import make_plan
    from repro.specs import tables as select

    check_outputs(args)
    tables = select(args.table)
    plan = make_plan(tables, profile_for(args, tables), args.seeds, tuple(args.overrides))
    out = Path(args.out)
    fleets, cost = fleets_and_cost(plan, out, args.fleet, args.estimate)
    print(describe(plan, out, cost, fleets))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(plan_json(plan, out, cost), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0

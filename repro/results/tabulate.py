"""The last step of `repro reproduce`: from trained, evaluated runs to `results.csv` and the tables.

Everything is read from disk (run folders, the cached Bicubic and complexity measurements), so calling
it again measures nothing new and writes the same files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from repro.io_utils import atomic_write_text
from repro.plan.cost import device_name, run_threads
from repro.plan.export import plan_json
from repro.plan.runs import Plan
from repro.provenance import git_commit
from repro.results.collect import bicubic_rows, complexity_rows, frame, measured_rows, write_results
from repro.results.tables import render_markdown, write_tables


def tabulate(plan: Plan, out: str | os.PathLike[str], *, data_root: str | None = None,
             device: str = "cpu", log=print) -> pd.DataFrame:
    """Collect every measured, Bicubic and complexity row of `plan`'s tables into `out/results.csv`, the
    plan into `out/plan.json` (what the report reads), and write `out/tables/<table>.md` and `.tex`;
    returns the rows."""
    out = Path(out)
    commit = git_commit()
    frames = [measured_rows(plan, out, profile=plan.profile, commit=commit,
                            device=lambda run: device_name(device, run_threads(run.cfg))),
              bicubic_rows(plan.tables, out, data_root, commit=commit),
              complexity_rows(plan.tables, plan, out, commit=commit,
                              device="cuda" if str(device).startswith("cuda") else "cpu")]
    results = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frame()
    write_results(results, out)
    atomic_write_text(out / "plan.json", json.dumps(plan_json(plan, out), indent=1) + "\n")
    write_tables(plan.tables, results, out, plan.seeds)
    for table in plan.tables:
        log("\n" + render_markdown(table, results, plan.seeds))
    log(f"[reproduce] wrote {out / 'results.csv'} and {out / 'tables'}/")
    return results

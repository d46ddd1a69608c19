"""The one context the report is rendered from: `report.html.j2` and `report.md.j2` show the same
numbers, banners and sections, each decided here once (which banners apply, what is absent and the
command that would produce it, how each cell is formatted and marked)."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repro.metric_table import METRICS, metric
from repro.provenance import git_commit, threads_text
from repro.report import decisions, findings, provenance, summary
from repro.report.inputs import ReportInputs
from repro.results.tables import Cell, md_cell, table_context

MEASURES = {"complexity": "`repro reproduce appendix1`"}  # what measures a section a report may lack


def _fmt(value: float | None, name: str, signed: bool = False) -> str:
    return metric(name).format(value, signed)


# ---------------------------------------------------------------- tables
def _cell(cell: Cell, tolerances: Mapping[str, float], first: bool) -> dict[str, Any]:
    """A table cell for the templates: its text and mark, and (HTML) its class: Δ shaded by tolerance."""
    cls = ["num"] + (["first"] if first else [])
    if cell.delta is not None:
        tol = summary.tolerance_of(cell.metric, cell.printed or 0.0, tolerances)
        if tol is not None:
            cls.append("ok" if abs(cell.delta) <= tol + 1e-12 else "bad")
    elif cell.text == "-":
        cls.append("na")
    return {"text": cell.text, "mark": cell.mark, "md": md_cell(cell), "cls": " ".join(cls)}


def _table(table, inputs: ReportInputs, tolerances: Mapping[str, float]) -> dict[str, Any]:
    t = table_context(table, inputs.results, inputs.seeds)
    step, first_measured = (3, 1) if t["with_printed"] else (1, 0)
    for g in t["grids"]:
        for line in g["lines"]:
            line["cells"] = [_cell(c, tolerances, i % step == 0) for i, c in enumerate(line["cells"])]
        measured = [c for line in g["lines"] for c in line["cells"][first_measured::step]]
        g["measured"] = any(c["text"] != "-" for c in measured)
    t["short"] = table.short
    t["nothing_measured"] = not any(g["measured"] for g in t["grids"])
    t["absent"] = (f"Nothing of {t['short']} is measured in these results: `repro reproduce {table.name}` "
                   "measures it" + (" (the paper's printed cells: tables/published/published_values.csv)."
                                    if t["with_printed"] else "."))
    return t


# ---------------------------------------------------------------- complexity
def _complexity(inputs: ReportInputs, paper: list[findings.Finding]) -> dict[str, Any]:
    rows = findings.complexity_rows(inputs)
    if not rows:
        return {"rows": [], "absent": "No complexity measured in these results: "
                                      f"{MEASURES['complexity']} measures it."}
    from repro.complexity.table import PAPER_ROWS, table_rows

    order = list(PAPER_ROWS)
    rows.sort(key=lambda r: (order.index(r["model"]) if r["model"] in order else 99, r["scale"]))
    display = table_rows(rows)
    # each measured column beside its printed one; the printed runtime beside the throughput it implies
    # and the GPU runtime measured here
    columns = [("Model", "model"), ("Scale", "scale"), ("Params", "params"), ("printed", "p_params"),
               ("MultiAdds true (G)", "macs"), ("legacy (G)", "legacy"), ("fvcore (G)", "fvcore"),
               ("thop (G)", "thop"), ("printed (G)", "p_macs"), ("CPU (ms)", "cpu"),
               ("printed runtime (ms)", "p_runtime"), ("implies (TFLOP/s)", "p_implied"),
               ("GPU here (ms)", "gpu"), ("implies (TFLOP/s)", "gpu_implied")]
    header, keys = [h for h, _ in columns], [k for _, k in columns]
    # counters not run for these results (fvcore, thop: `repro complexity` runs them) leave no column
    empty = {k for k in ("fvcore", "thop", "cpu") if all(r[k] == "-" for r in display)}
    header = [h for h, k in zip(header, keys, strict=True) if k not in empty]
    keys = [k for k in keys if k not in empty]
    env = rows[0].get("environment") or {}
    legend = ("MultiAdds at a 1280x720 HR output; true: a transposed convolution costs k·k·Cin·Cout per "
              "input pixel; legacy: per output pixel (the CARN-era convention of the printed figures). "
              f"Runtime: median forward after warm-up, CPU {env.get('cpu', '?')}, "
              f"{threads_text(env.get('torch_threads', '?'))}, torch {env.get('torch', '?')}"
              + (f"; GPU {env['gpu']}" if env.get("gpu") else "; no GPU runtime measured "
                 "(`repro reproduce appendix1` on a GPU, or `repro complexity --device cuda`)") + ". "
              "The printed runtimes name a Titan RTX; the throughput a runtime implies is 2 FLOPs per "
              "multiply-add over it, ! above the GPU's fp32 peak, !! above every peak "
              "(tables/hardware/gpu_peaks.toml).")
    return {"rows": [[r[k] for k in keys] for r in display], "header": header, "legend": legend,
            "findings": [f for f in paper if f.source == "measured complexity"]}


# ---------------------------------------------------------------- figures
def _figures(figs, folder: Path) -> dict[str, Any]:
    """Figures grouped as drawn (a figure may be several images, each readable on a phone), and one line
    for each figure that could not be drawn."""
    groups: dict[str, dict[str, Any]] = {}
    absent = []
    for f in figs:
        if f.missing is not None:
            absent.append({"title": f.title, "why": f.missing})
            continue
        key = f.group or f.key
        group = groups.setdefault(key, {"key": key, "title": f.group_title or f.title, "caption": f.caption,
                                        "notes": [], "parts": []})
        data = None
        if f.png is not None and Path(f.png).exists():
            data = "data:image/png;base64," + base64.b64encode(Path(f.png).read_bytes()).decode("ascii")
        group["parts"].append({"title": f.title if f.group_title else "", "data": data,
                               "width": f.width_px, "png": os.path.relpath(f.png, folder) if f.png else None,
                               "files": ", ".join(os.path.relpath(p, folder) for p in (f.png, f.pdf) if p)})
        group["notes"] += [n for n in f.notes if n not in group["notes"]]
    return {"groups": list(groups.values()), "absent": absent}


# ---------------------------------------------------------------- banners and the rest
def _profile_note(profile: str) -> str:
    from repro.runs.profiles import profile_dir

    path = profile_dir() / f"{profile.split(',')[0].strip()}.toml"
    if not path.exists():
        return "a profile of this suite"
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    first = " ".join(lines).split(". ")[0]  # its first sentence: the banner says what it is, not all of it
    return first.rstrip(".") or "a profile of this suite"


def banners(s: summary.Summary) -> list[dict[str, str]]:
    """What a reader must know before any number, decided once for both pages: results of part of each
    test set, and results that are not the paper's protocol (another profile, or profiles mixed)."""
    out = []
    if s.subset:
        out.append({"title": "Evaluated on part of each test set.",
                    "text": f"A quick check (`--eval-images` / `--eval-crop`) measured {s.subset} only: no "
                            "cell here is a test-set mean of the protocol."})
    profiles = [p.strip() for p in s.profile.split(",") if p.strip()]
    if len(profiles) > 1 and all(p in summary.PAPER_PROFILES for p in profiles):
        out.append({"title": "Not the paper's protocol.",
                    "text": f"These results mix the {' and '.join(f'`{p}`' for p in profiles)} profiles: "
                            "rows trained under different readings of the protocol (the paper's text, PISR's "
                            "code) sit side by side, so their differences mix the readings with the methods. "
                            "Reproduce each table under one profile to compare its rows."})
    elif not (len(profiles) == 1 and profiles[0] in summary.PAPER_PROFILES):
        out.append({"title": "Not the paper's protocol.",
                    "text": f"These results come from the `{s.profile}` profile "
                            f"({_profile_note(s.profile)}). They check that every step runs; their "
                            "differences from the printed numbers say nothing about the paper. The paper's "
                            "protocol is `--profile paper`."})
    return out


def _paper_findings(paper: list[findings.Finding]) -> list[dict[str, Any]]:
    """Each known discrepancy; its cells shown only where these results measured one of them."""
    out = []
    for f in paper:
        measured = any(c["measured"] != "-" for c in f.cells)
        tables = sorted({c["cell"].split(" / ")[0] for c in f.cells})
        absent = "" if measured or not f.cells else (
            f"its {len(f.cells)} cell(s) are not measured in these results: "
            + " or ".join(f"`repro reproduce {t}`" for t in tables) + " measures them")
        out.append({"topic": f.topic, "text": f.text, "source": f.source,
                    "cells": f.cells if measured else [], "absent": absent})
    return out


def context(inputs: ReportInputs, figs: list, folder: Path,
            tolerances: Mapping[str, float] = summary.TOLERANCES) -> dict[str, Any]:
    """Everything the HTML and Markdown templates show."""
    comps = summary.comparisons(inputs, tolerances)
    found = findings.complexity_findings(inputs)
    paper = findings.paper_findings(inputs, found)
    s = summary.summarise(inputs, comps)
    spread = [{"where": c.where, "printed": _fmt(c.printed, c.metric),
               "measured": f"{_fmt(c.measured, c.metric)} ± {_fmt(c.std, c.metric)}, n={c.n}",
               "delta": _fmt(c.delta, c.metric, signed=True),
               "threshold": _fmt(2 * (c.standard_error or 0.0), c.metric)}
              for c in summary.beyond_spread(comps)]
    one_seed = summary.one_seed_cells(comps)
    misses = [{"where": c.where, "printed": _fmt(c.printed, c.metric), "measured": _fmt(c.measured, c.metric),
               "delta": _fmt(c.delta, c.metric, signed=True), "tolerance": _fmt(c.tolerance, c.metric),
               "times": f"{c.misses_by:,.0f}×" if c.misses_by >= 10 else f"{c.misses_by:.1f}×"}
              for c in s.largest_misses]
    runs = provenance.run_table(inputs)
    total = sum(r["seconds_value"] for r in runs)
    tolerance_text = ", ".join(f"{name} ±{v:g}{' (relative)' if metric(name).relative else metric(name).unit}"
                               for name, v in tolerances.items())
    return {
        "title": "DSSD reproduction report: " + ", ".join(t.short for t in inputs.tables),
        "built": time.strftime("%Y-%m-%d %H:%M %Z"), "results_name": inputs.folder.name or str(inputs.folder),
        "commit": (git_commit() or "-")[:12], "summary": s, "hardware": "; ".join(s.hardware) or "-",
        "banners": banners(s), "tolerance_text": tolerance_text,
        "not_judged_note": METRICS["runtime_ms"].not_judged, "misses": misses, "spread": spread,
        "one_seed": one_seed,
        "spread_none": ("No measured difference is larger than the seed spread." if inputs.seeds > 1 else
                        f"Every row has one seed, so no difference can be set against a spread ({one_seed} "
                        "judged cells). Rerun with `--seeds 3` to see which differences stand."),
        "tables": [_table(t, inputs, tolerances) for t in inputs.tables],
        "complexity": _complexity(inputs, paper), "figures": _figures(figs, folder),
        "paper_findings": _paper_findings(paper), "complexity_found": found,
        "decisions": decisions.settings_in_force(inputs), "readings": decisions.reading(inputs),
        "environment": provenance.environments(inputs), "datasets": provenance.datasets(inputs), "runs": runs,
        "total_time": f"{total:,.0f} s ({total / 3600:.2f} h) over {len(runs)} runs",
        "total_short": f"{total / 60:,.1f} min" if total < 7200 else f"{total / 3600:,.1f} h",
        "measured_cells": int((inputs.results["run"] != "").sum()) if len(inputs.results) else 0,
        "comparisons": comps,
    }

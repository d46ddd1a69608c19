"""`build_report`: a results folder -> one self-contained HTML page, its Markdown twin, LaTeX tables,
figures (PNG + PDF) and `comparison.csv`, all under `<results>/report/` unless told otherwise.

The page embeds its styles and images (data: URIs) and references nothing outside itself;
`external_references` checks that, and `build_report` refuses to write a page that fails it.
"""

from __future__ import annotations

import base64
import math
import os
import re
import time
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2

from repro.errors import ReproError
from repro.formatting import number
from repro.io_utils import atomic_write_text
from repro.provenance import git_commit
from repro.report import decisions, findings, provenance, summary
from repro.report.inputs import ReportInputs, load_inputs
from repro.report.markdown import render_report_markdown
from repro.results.tables import (
    BEST,
    DIGITS,
    LEGEND,
    SECOND,
    SPREAD_RULE,
    Cell,
    check_claims,
    claim_sentence,
    footnotes,
    grid,
    has_printed,
    is_marked,
    provenance_line,
    render_latex,
    row_marks,
)

TEMPLATES = Path(__file__).parent / "templates"
HTML = "report.html"
MARKDOWN = "report.md"
COMPARISON = "comparison.csv"
NOT_PRINTED = "Not a table of the paper: nothing printed to compare with."


# ---------------------------------------------------------------- self-containment
class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            fetched = name in ("src", "href", "srcset", "poster", "data", "action", "background")
            if fetched and value and not value.startswith(("data:", "#")):
                self.refs.append(f"<{tag} {name}={value!r}>")
            if name == "style" and value:
                self.refs += _css_refs(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.refs += _css_refs(data)


def _css_refs(css: str) -> list[str]:
    out = [f"url({u.strip()})" for u in re.findall(r"url\(([^)]*)\)", css)
           if not u.strip(" '\"").startswith("data:")]
    return out + [f"@import {m}" for m in re.findall(r"@import\s+([^;]+)", css)]


def external_references(html: str) -> list[str]:
    """Everything in `html` a browser would fetch from outside the page (empty: self-contained)."""
    parser = _Refs()
    parser.feed(html)
    return parser.refs


# ---------------------------------------------------------------- context
def _fmt(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    digits = DIGITS.get(metric, 2)
    return f"{value:+.{digits}f}" if signed else number(value, digits)


def _cell_class(cell: Cell, tolerances: Mapping[str, float], first: bool) -> str:
    cls = ["num"] + (["first"] if first else [])
    if cell.delta is not None:
        tol = summary.tolerance_of(cell.metric, cell.printed or 0.0, tolerances)
        if tol is not None:
            cls.append("ok" if abs(cell.delta) <= tol + 1e-12 else "bad")
    elif cell.text == "-":
        cls.append("na")
    return " ".join(cls)


def _table_context(table, inputs: ReportInputs, tolerances: Mapping[str, float]) -> dict[str, Any]:
    with_printed = has_printed(table)
    grids = []
    for scale, header, lines in grid(table, inputs.results, inputs.seeds):
        step = 3 if with_printed else 1
        groups = [h.rsplit(" printed", 1)[0] for h in header[::step]]
        rows = []
        for row, line in zip(table.rows, lines, strict=True):
            cells = []
            for i, c in enumerate(line):
                cells.append({"text": c.text, "mark": {BEST: "best", SECOND: "second"}.get(c.mark, ""),
                              "cls": _cell_class(c, tolerances, i % step == 0)})
            rows.append({"label": row.label, "name": row.name, "marks": row_marks(row), "cells": cells})
        grids.append({"scale": scale, "groups": groups, "lines": rows})
    claims = [claim_sentence(table, c, lambda r: r.label) for c in check_claims(table, inputs.results,
                                                                                    inputs.seeds)]
    return {"id": table.name, "short": table.short, "title": table.title,
            "provenance": provenance_line(table, inputs.results, inputs.seeds),
            "legend": LEGEND if with_printed else NOT_PRINTED,
            "marks": is_marked(table), "with_printed": with_printed, "grids": grids,
            "footnotes": footnotes(table), "claims": claims,
            "rule": f"Rule: {SPREAD_RULE}." if inputs.seeds > 1 and claims else ""}


def _complexity_context(inputs: ReportInputs, paper: list[findings.Finding]) -> dict[str, Any]:
    rows = findings.complexity_rows(inputs)
    if not rows:
        return {"rows": [], "missing": "No complexity was measured for these results: Appendix Table I "
                                       "(`repro reproduce appendix1`) measures it."}
    from repro.complexity.table import PAPER_ROWS, table_rows

    order = list(PAPER_ROWS)
    rows.sort(key=lambda r: (order.index(r["model"]) if r["model"] in order else 99, r["scale"]))
    display = table_rows(rows)
    header = ["Model", "Scale", "Params", "MultiAdds true (G)", "legacy (G)", "fvcore (G)", "thop (G)",
              "CPU (ms)", "GPU (ms)", "printed Params", "printed MultiAdds (G)", "printed Runtime (ms)"]
    keys = ["model", "scale", "params", "macs", "legacy", "fvcore", "thop", "cpu", "gpu", "p_params",
            "p_macs", "p_runtime"]
    env = rows[0].get("environment") or {}
    legend = ("MultiAdds at a 1280x720 HR output; true: a transposed convolution costs k·k·Cin·Cout per "
              "input pixel; legacy: per output pixel (the CARN-era convention of the printed figures). "
              f"Runtime: median forward after warm-up, CPU {env.get('cpu', '?')}, "
              f"{env.get('torch_threads', '?')} threads, torch {env.get('torch', '?')}"
              + (f"; GPU {env['gpu']}" if env.get("gpu") else "; no GPU runtime measured") + ". "
              "The printed runtimes name a Titan RTX.")
    return {"rows": [[r[k] for k in keys] for r in display], "header": header, "legend": legend,
            "findings": [f for f in paper if f.source == "measured complexity"]}


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
    return " ".join(lines).rstrip(".") or "a profile of this suite"


def _figure_context(figs, folder: Path) -> list[dict[str, Any]]:
    out = []
    for f in figs:
        data = None
        if f.png is not None and Path(f.png).exists():
            data = "data:image/png;base64," + base64.b64encode(Path(f.png).read_bytes()).decode("ascii")
        files = ", ".join(os.path.relpath(p, folder) for p in (f.png, f.pdf) if p is not None)
        out.append({"key": f.key, "title": f.title, "caption": f.caption, "notes": list(f.notes),
                    "missing": f.missing, "data": data, "files": files})
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
    units = {"psnr": " dB", **{m: " (relative)" for m in summary.RELATIVE}}
    tolerance_text = ", ".join(f"{m} ±{v:g}{units.get(m, '')}" for m, v in tolerances.items())
    hardware = "; ".join(s.hardware) or "-"
    return {
        "title": "DSSD reproduction report: " + ", ".join(t.short for t in inputs.tables),
        "built": time.strftime("%Y-%m-%d %H:%M %Z"), "results_name": inputs.folder.name or str(inputs.folder),
        "commit": (git_commit() or "-")[:12], "summary": s, "hardware": hardware,
        "profile_note": _profile_note(s.profile), "tolerance_text": tolerance_text,
        "not_judged_note": summary.NOT_JUDGED["runtime_ms"], "misses": misses, "spread": spread,
        "one_seed": one_seed,
        "spread_none": ("No measured difference is larger than the seed spread." if inputs.seeds > 1 else
                        f"Every row has one seed, so no difference can be set against a spread ({one_seed} "
                        "judged cells). Rerun with `--seeds 3` to see which differences stand."),
        "tables": [_table_context(t, inputs, tolerances) for t in inputs.tables],
        "tables_with_printed": any(has_printed(t) for t in inputs.tables),
        "complexity": _complexity_context(inputs, paper), "figures": _figure_context(figs, folder),
        "paper_findings": paper, "complexity_found": found, "decisions": decisions.settings_in_force(inputs),
        "readings": decisions.reading(inputs), "environment": provenance.environments(inputs),
        "datasets": provenance.datasets(inputs), "runs": runs,
        "total_time": f"{total:,.0f} s ({total / 3600:.2f} h) over {len(runs)} runs",
        "total_short": f"{total / 60:,.1f} min" if total < 7200 else f"{total / 3600:,.1f} h",
        "measured_cells": int((inputs.results["run"] != "").sum()) if len(inputs.results) else 0,
        "comparisons": comps,
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def build_report(results: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 data_root: str | os.PathLike[str] | None = None,
                 tolerances: Mapping[str, float] = summary.TOLERANCES, figures: bool = True,
                 progress: bool = False, log=print) -> dict[str, Path]:
    """Write the report of `results` into `out` (default `<results>/report`); returns the paths."""
    inputs = load_inputs(results, data_root)
    folder = Path(out) if out else inputs.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    figs = []
    if figures:
        from repro.report.figures import make_figures

        figs = make_figures(inputs, folder / "figures", progress=progress)
    ctx = context(inputs, figs, folder, tolerances)
    html = _environment().get_template("report.html.j2").render(**ctx)
    refs = external_references(html)
    if refs:
        raise ReproError("the report would reference files outside itself: " + "; ".join(refs[:5]))
    paths = {"html": atomic_write_text(folder / HTML, html),
             "markdown": atomic_write_text(folder / MARKDOWN, render_report_markdown(ctx, inputs))}
    latex = folder / "latex"
    for table in inputs.tables:
        paths[f"latex:{table.name}"] = atomic_write_text(latex / f"{table.name}.tex",
                                                         render_latex(table, inputs.results, inputs.seeds))
    rows = findings.complexity_rows(inputs)
    if rows:
        from repro.complexity.table import render

        paths["latex:complexity"] = atomic_write_text(latex / "complexity.tex",
                                                      render(rows, ctx["complexity_found"])["complexity.tex"])
    paths["latex:document"] = atomic_write_text(latex / "tables.tex", _latex_document(
        [p.name for k, p in paths.items() if k.startswith("latex:")]))
    paths["comparison"] = atomic_write_text(folder / COMPARISON,
                                            summary.frame(ctx["comparisons"]).to_csv(index=False))
    log(f"[report] wrote {paths['html']} (and report.md, latex/, figures/, comparison.csv)")
    return paths


def _latex_document(files: list[str]) -> str:
    """A standalone document that inputs every table (what a paper's appendix would do)."""
    body = "\n".join(f"\\input{{{name}}}\n\\clearpage" for name in files)
    return ("% Generated by `repro report`: every table of the report; compile with pdflatex tables.tex\n"
            "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
            "\\usepackage{booktabs}\n\\usepackage[normalem]{ulem}\n\\usepackage{textcomp}\n"
            "\\usepackage[margin=1.5cm,landscape]{geometry}\n\\begin{document}\n"
            + body + "\n\\end{document}\n")

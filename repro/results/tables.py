"""Each table as the paper prints it beside what was measured: Markdown and LaTeX (booktabs).

For every cell (scale x dataset x metric): the printed value, the measured one (mean ± standard deviation
over seeds when there are several) and the difference measured - printed. A cell that was not measured
shows `-`, never a number. Rows whose printed numbers come from other papers, and equal-compute control
rows, are marked with a footnote. Below each table, every claim of the spec: the printed gain, the
measured gain and whether it stands above the seed spread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from repro.io_utils import atomic_write_text
from repro.metric_table import COMPLEXITY
from repro.metric_table import metric as metric_of
from repro.published import published_values
from repro.results.collect import normalise
from repro.specs import TableSpec
from repro.specs.base import Claim, Row

OTHER_PAPER = "†"
CONTROL = "‡"
OTHER_PAPER_NOTE = "printed numbers from another paper's protocol"
CONTROL_NOTE = ("equal-compute control: trained for as many iterations as the teacher and the student "
                "together; it shows what the longer training alone gives")
SPREAD_RULE = ("a measured gain stands above the seed spread when it exceeds 2·sqrt(s_b²/n_b + s_w²/n_w), "
               "twice the standard error of the difference of the two means (s: the standard deviation "
               "over seeds of a row, n: its number of seeds)")
LEGEND = "Δ = measured − printed; -: not printed, or not measured."
ONE_SEED = "one seed: no spread to compare with"
STANDS = "stands above the seed spread"
WITHIN = "within the seed spread"
REVERSED = "reversed beyond the seed spread"


# ---------------------------------------------------------------- the numbers
@dataclass(frozen=True)
class Stat:
    """The measured values of one cell: mean, standard deviation over seeds (NaN for one), count."""

    mean: float
    std: float
    n: int
    seeded: bool = True  # False for what depends on no seed (Bicubic, complexity)


@lru_cache(maxsize=1)
def _printed_cells() -> dict[tuple[str, str, int, str, str], float]:
    """(table, row, scale, dataset or "", metric) -> printed value (the first, as `published` gives)."""
    out: dict[tuple[str, str, int, str, str], float] = {}
    for r in published_values().itertuples():
        if pd.isna(r.value) or pd.isna(r.scale):
            continue
        dataset = "" if pd.isna(r.dataset) else str(r.dataset)
        out.setdefault((str(r.table), str(r.row), int(r.scale), dataset, str(r.metric)), float(r.value))
    return out


def printed(table: str, row: str, scale: int, dataset: str, metric: str) -> float | None:
    return _printed_cells().get((table, row, int(scale), dataset, metric))


def cell_stats(results: pd.DataFrame, table: str, seeds: int) -> dict[tuple[str, int, str, str], Stat]:
    """(row, scale, dataset, metric) -> Stat of the measured values of `table` (seeds 0 .. seeds-1)."""
    if results.empty:
        return {}
    df = normalise(results)
    df = df[(df["table"] == table) & (df["seed"].isna() | (df["seed"] < seeds))]
    out = {}
    for (row, scale, dataset, metric), g in df.groupby(["row", "scale", "dataset", "metric"], sort=False):
        values = g["value"].astype(float)
        out[str(row), int(scale), str(dataset), str(metric)] = Stat(
            float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan, len(values),
            bool(g["seed"].notna().any()))
    return out


def cells(table: TableSpec) -> list[tuple[str, str]]:
    """(dataset, metric) of one scale's columns: the quality cells, then the complexity ones."""
    out = [(d, m) for d in table.datasets for m in table.metrics]
    if table.complexity:
        out += [("", m) for m in COMPLEXITY]
    return out


def _fmt(value: float | None, name: str) -> str:
    return metric_of(name).format(value)


def _signed(value: float | None, name: str) -> str:
    return metric_of(name).format(value, signed=True)


def _measured(stat: Stat | None, metric: str, seeds: int) -> str:
    if stat is None:
        return "-"
    text = _fmt(stat.mean, metric)
    if stat.n > 1:
        text += f" ± {_fmt(stat.std, metric)}"
    if seeds > 1 and stat.seeded and stat.n < seeds:
        text += f" (n={stat.n})"
    return text


def _header_cell(dataset: str, name: str) -> str:
    return " ".join([*([dataset] if dataset else []), metric_of(name).label])


# ---------------------------------------------------------------- claims
def spread_threshold(b: Stat, w: Stat) -> float | None:
    """2 * sqrt(s_b^2/n_b + s_w^2/n_w), None when a side has a single value (no spread)."""
    if b.n < 2 or w.n < 2:
        return None
    return 2.0 * math.sqrt(b.std**2 / b.n + w.std**2 / w.n)


def verdict(b: Stat, w: Stat) -> str:
    threshold = spread_threshold(b, w)
    if threshold is None:
        return ONE_SEED if max(b.n, w.n) < 2 else "one side has one seed: no spread to compare with"
    gain = b.mean - w.mean
    if gain > threshold:
        return STANDS
    if gain < -threshold:
        return REVERSED
    return WITHIN


@dataclass(frozen=True)
class ClaimCheck:
    claim: Claim
    printed_gain: float | None
    measured_gain: float | None
    verdict: str
    threshold: float | None
    control: str | None = None  # the equal-compute control row of `claim.better`
    control_gain: float | None = None
    control_verdict: str | None = None


def check_claims(table: TableSpec, results: pd.DataFrame, seeds: int) -> list[ClaimCheck]:
    stats = cell_stats(results, table.name, seeds)
    out = []
    for c in table.claims:
        def stat(row: str, c: Claim = c) -> Stat | None:
            return stats.get((row, c.scale, c.dataset, c.metric))

        pb, pw = (printed(table.name, r, c.scale, c.dataset, c.metric) for r in (c.better, c.worse))
        b, w = stat(c.better), stat(c.worse)
        measured = verdict_text = threshold = None
        if b is not None and w is not None:
            measured, verdict_text, threshold = b.mean - w.mean, verdict(b, w), spread_threshold(b, w)
        control = next((r.name for r in table.rows if c.better in r.control_for), None)
        ctrl_gain = ctrl_verdict = None
        ctrl = stat(control) if control else None
        if b is not None and ctrl is not None:
            ctrl_gain, ctrl_verdict = b.mean - ctrl.mean, verdict(b, ctrl)
        out.append(ClaimCheck(c, None if pb is None or pw is None else pb - pw, measured,
                              verdict_text or "not measured", threshold, control, ctrl_gain, ctrl_verdict))
    return out


def claim_sentence(table: TableSpec, check: ClaimCheck, label) -> str:
    c = check.claim
    where = f"x{c.scale} {c.dataset} {metric_of(c.metric).label}"
    text = (f"{label(table.row(c.better))} over {label(table.row(c.worse))} ({where}): "
            f"printed gain {_signed(check.printed_gain, c.metric)}, ")
    if check.measured_gain is None:
        text += "measured gain: not measured"
    else:
        text += f"measured gain {_signed(check.measured_gain, c.metric)}: {check.verdict}"
    if check.threshold is not None:
        text += f" (2 x standard error {_fmt(check.threshold, c.metric)})"
    if check.control is not None:
        text += "; over equal compute (the control row): "
        text += ("not measured" if check.control_gain is None
                 else f"{_signed(check.control_gain, c.metric)}, {check.control_verdict}")
    return text + "."


# ---------------------------------------------------------------- shared layout
def row_marks(row: Row) -> str:
    return (OTHER_PAPER if row.from_other_paper else "") + (CONTROL if row.control_for else "")


def footnotes(table: TableSpec) -> list[tuple[str, str]]:
    """(mark, text) below the table."""
    notes = []
    others = [r for r in table.rows if r.from_other_paper]
    if others:
        sources = "; ".join(f"{r.label}: {r.source}" for r in others)
        notes.append((OTHER_PAPER, f"{OTHER_PAPER_NOTE[0].upper()}{OTHER_PAPER_NOTE[1:]} ({sources}); "
                                   "measured here under this suite's protocol, so the printed comparison "
                                   "crosses protocols."))
    for r in table.rows:
        if r.control_for:
            controls = ", ".join(table.row(n).label for n in r.control_for if _has_row(table, n))
            notes.append((CONTROL, f"{CONTROL_NOTE[0].upper()}{CONTROL_NOTE[1:]} ({r.label}; "
                                   f"it controls {controls})."))
    return notes


def _has_row(table: TableSpec, name: str) -> bool:
    return any(r.name == name for r in table.rows)


def provenance_line(table: TableSpec, results: pd.DataFrame, seeds: int) -> str:
    df = normalise(results) if not results.empty else results
    mine = df[df["table"] == table.name] if not df.empty else df
    profiles = sorted({p for p in mine["profile"] if p}) if not mine.empty else []
    commits = sorted({c for c in mine["commit"] if c}) if not mine.empty else []
    devices = sorted({d for d in mine["device"] if d}) if not mine.empty else []
    if any(d.startswith("cpu:") for d in devices):  # the Bicubic rows name only "cpu"
        devices = [d for d in devices if d != "cpu"]
    parts = [f"profile {', '.join(profiles) or '-'}",
             f"{seeds} seed{'s' if seeds > 1 else ''}" + (" (mean ± standard deviation over seeds)"
                                                          if seeds > 1 else ""),
             f"commit {', '.join(commits) or '-'}", f"device {'; '.join(devices) or '-'}"]
    return "Measured: " + ", ".join(parts) + "."


def has_printed(table: TableSpec) -> bool:
    """Whether the paper prints any cell of `table` (the quickstart has none: measured columns only)."""
    return any(printed(table.name, row.name, scale, dataset, metric) is not None
               for row in table.rows for scale in table.scales for dataset, metric in cells(table))


@dataclass(frozen=True)
class Cell:
    """One printed / measured / Δ cell as text, with the paper's mark (best or second best of its column)
    and, for Δ, the number (the report colours it)."""

    text: str
    mark: str = ""  # BEST, SECOND or ""
    delta: float | None = None
    metric: str = ""
    printed: float | None = None  # for Δ: the printed value (a relative tolerance needs it)


BEST = "best"
SECOND = "second"
MARKS_NOTE = ("best and second best of a column (printed and measured ranked apart, control rows left out) "
              "marked as Appendix Table I marks them: a solid underline and a wavy underline")


def _ranks(values: dict[str, float], name: str) -> dict[str, str]:
    """row -> BEST / SECOND among `values`, compared as the table shows them (two cells that read the
    same tie and share a mark)."""
    m = metric_of(name)
    values = {row: m.shown(v) for row, v in values.items()}
    distinct = sorted(set(values.values()), reverse=m.higher_is_better)
    out = {}
    for row, value in values.items():
        if value == distinct[0]:
            out[row] = BEST
        elif len(distinct) > 1 and value == distinct[1]:
            out[row] = SECOND
    return out


Grid = list[tuple[int, list[str], list[list[Cell]]]]


def grid(table: TableSpec, results: pd.DataFrame, seeds: int) -> Grid:
    """For each scale: the header and one line of cells per row (printed, measured, Δ per column; measured
    alone when the paper prints nothing of the table)."""
    stats = cell_stats(results, table.name, seeds)
    with_printed = has_printed(table)
    ranked = [r for r in table.rows if not r.control_for]
    out = []
    for scale in table.scales:
        marks: dict[tuple[str, str, str], dict[str, str]] = {}
        for dataset, metric in cells(table):
            if not metric_of(metric).ranked:
                continue
            p = {r.name: v for r in ranked
                 if (v := printed(table.name, r.name, scale, dataset, metric)) is not None}
            m = {r.name: st.mean for r in ranked if (st := stats.get((r.name, scale, dataset, metric)))}
            marks[dataset, metric, "printed"] = _ranks(p, metric)
            marks[dataset, metric, "measured"] = _ranks(m, metric)
        header = []
        for dataset, metric in cells(table):
            head = _header_cell(dataset, metric)
            header += [f"{head} printed", f"{head} measured", f"{head} Δ"] if with_printed else [head]
        lines = []
        for row in table.rows:
            line = []
            for dataset, metric in cells(table):
                p = printed(table.name, row.name, scale, dataset, metric)
                s = stats.get((row.name, scale, dataset, metric))
                diff = None if p is None or s is None else s.mean - p
                m_mark, p_mark = (marks.get((dataset, metric, w), {}).get(row.name, "")
                                  for w in ("measured", "printed"))
                measured = Cell(_measured(s, metric, seeds), m_mark, metric=metric)
                if with_printed:
                    line += [Cell(_fmt(p, metric), p_mark, metric=metric), measured,
                             Cell(_signed(diff, metric), delta=diff, metric=metric, printed=p)]
                else:
                    line.append(measured)
            lines.append(line)
        out.append((scale, header, lines))
    return out


def is_marked(table: TableSpec) -> bool:
    return any(metric_of(m).ranked for m in table.metrics)


# ---------------------------------------------------------------- Markdown (and the report's context)
NOT_PRINTED = "Not a table of the paper: nothing printed to compare with."
TEMPLATES = Path(__file__).parent / "templates"


def md_escape(text: object) -> str:
    """Text that Markdown shows as it is (a `|` would end a table cell, `*` and `_` emphasise)."""
    text = str(text)
    for a, b in (("\\", "\\\\"), ("|", "\\|"), ("*", "\\*"), ("_", "\\_")):
        text = text.replace(a, b)
    return text


def md_cell(cell: Cell | dict) -> str:
    """A cell with its mark as Markdown emphasis (a report's cell, a dict, carries its own)."""
    if isinstance(cell, dict):
        return cell["md"]
    return {BEST: f"**{cell.text}**", SECOND: f"*{cell.text}*"}.get(cell.mark, cell.text)


def markdown_environment(*folders: Path):
    """A Jinja environment for Markdown templates (these and `folders`): no HTML escaping, the `md`
    and `md_cell` filters."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader([*folders, TEMPLATES]), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["md"] = md_escape
    env.filters["md_cell"] = md_cell
    return env


def table_context(table: TableSpec, results: pd.DataFrame, seeds: int) -> dict:
    """Everything a page shows of one table (the Markdown of `render_markdown`, the report's HTML and
    Markdown): its grids of cells, footnotes, claims and the lines that explain them."""
    with_printed = has_printed(table)
    grids = []
    for scale, header, lines in grid(table, results, seeds):
        step = 3 if with_printed else 1
        grids.append({"scale": scale, "header": header,
                      "groups": [h.rsplit(" printed", 1)[0] for h in header[::step]],
                      "lines": [{"label": row.label, "name": row.name, "marks": row_marks(row), "cells": line}
                                for row, line in zip(table.rows, lines, strict=True)]})
    checks = check_claims(table, results, seeds)
    return {"id": table.name, "title": table.title, "provenance": provenance_line(table, results, seeds),
            "legend": LEGEND if with_printed else NOT_PRINTED, "with_printed": with_printed,
            "marks": is_marked(table), "marks_note": MARKS_NOTE, "grids": grids,
            "many_scales": len(table.scales) > 1, "footnotes": footnotes(table),
            "claims": [claim_sentence(table, c, lambda r: r.label) for c in checks],
            "rule": f"Rule: {SPREAD_RULE}." if seeds > 1 and checks else ""}


def render_markdown(table: TableSpec, results: pd.DataFrame, seeds: int) -> str:
    """The table as Markdown: printed, measured and their difference per cell; footnotes; claims."""
    text = markdown_environment().get_template("table.md.j2").render(t=table_context(table, results, seeds),
                                                                     level=1)
    return text.rstrip("\n") + "\n"


# ---------------------------------------------------------------- LaTeX
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "*": r"$^*$",
        OTHER_PAPER: r"$^\dagger$", CONTROL: r"$^\ddagger$", "±": r"$\pm$", "Δ": r"$\Delta$", "−": "--",
        "·": r"$\cdot$", "²": r"$^2$"}


def _tex(text: str) -> str:
    """`text` escaped for LaTeX (one pass, so no replacement is escaped again)."""
    return "".join(_TEX.get(ch, ch) for ch in text)


def _tex_cell(cell: Cell) -> str:
    return {BEST: f"\\underline{{{_tex(cell.text)}}}", SECOND: f"\\uwave{{{_tex(cell.text)}}}"}.get(
        cell.mark, _tex(cell.text))


def render_latex(table: TableSpec, results: pd.DataFrame, seeds: int) -> str:
    """The table as LaTeX (booktabs), with the same cells, footnotes and claims as the Markdown."""
    out = [f"% {table.name}: printed beside measured; generated by repro.results.tables",
           r"% needs \usepackage{booktabs} and \usepackage[normalem]{ulem} (\uwave: the second-best mark)",
           r"\begin{table}[htbp]", r"\centering", r"\footnotesize", f"\\caption{{{_tex(table.title)}}}",
           f"\\label{{tab:{table.name}}}"]
    for scale, header, lines in grid(table, results, seeds):
        if len(table.scales) > 1:
            out.append(f"\\par\\smallskip\\textbf{{x{scale}}}\\par")
        out.append(r"\begin{tabular}{l" + "r" * len(header) + "}")
        out.append(r"\toprule")
        out.append("Row & " + " & ".join(_tex(h) for h in header) + r" \\")
        out.append(r"\midrule")
        for row, line in zip(table.rows, lines, strict=True):
            cells_tex = " & ".join(_tex_cell(c) for c in line)
            out.append(_tex(row.label + row_marks(row)) + " & " + cells_tex + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
    out.append(r"\par\smallskip")
    out.append(_tex(f"{provenance_line(table, results, seeds)} {LEGEND}") + r"\par")
    if is_marked(table):
        out.append(_tex(f"Marks: {MARKS_NOTE}.") + r"\par")
    out += [_tex(f"{mark} {text}") + r"\par" for mark, text in footnotes(table)]
    checks = check_claims(table, results, seeds)
    if checks:
        if seeds > 1:
            out.append(_tex(f"Rule: {SPREAD_RULE}.") + r"\par")
        out.append(r"\begin{itemize}")
        out += [r"\item " + _tex(claim_sentence(table, c, lambda r: r.label)) for c in checks]
        out.append(r"\end{itemize}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def write_tables(tables: Sequence[TableSpec], results: pd.DataFrame, out: str | os.PathLike[str],
                 seeds: int) -> list[Path]:
    """`<out>/tables/<name>.md` and `.tex` for each table, atomically; returns the paths written."""
    folder = Path(out) / "tables"
    paths = []
    for table in tables:
        paths.append(atomic_write_text(folder / f"{table.name}.md", render_markdown(table, results, seeds)))
        paths.append(atomic_write_text(folder / f"{table.name}.tex", render_latex(table, results, seeds)))
    return paths

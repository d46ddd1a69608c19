"""The findings section: what the paper says that its own numbers or a measurement contradict (data in
`tables/published/discrepancies.toml`, the note column of `published_values.csv`, and the measured
complexity findings of `repro complexity`), each shown beside the measured figure where there is one."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from repro.errors import ReproError
from repro.metric_table import metric as metric_of
from repro.paths import project_file
from repro.published import published_values
from repro.report.inputs import ReportInputs
from repro.results.tables import cell_stats, printed

DISCREPANCIES = ("tables", "published", "discrepancies.toml")


@dataclass(frozen=True)
class Finding:
    topic: str
    text: str
    source: str  # "paper" (its text against its numbers), "published values", "measured complexity"
    cells: list[dict[str, Any]] = field(default_factory=list)  # cell, printed, measured


@lru_cache(maxsize=1)
def _discrepancies() -> list[dict[str, Any]]:
    path = project_file(*DISCREPANCIES)
    try:
        return tomllib.loads(path.read_text()).get("finding", [])
    except tomllib.TOMLDecodeError as exc:
        raise ReproError(f"{path} is not valid TOML: {exc}") from exc


def _cell_values(inputs: ReportInputs, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    stats_by_table: dict[str, dict] = {}
    for c in cells:
        table, row, scale, dataset, metric = c["table"], c["row"], int(c["scale"]), c["dataset"], c["metric"]
        if table not in stats_by_table:
            stats_by_table[table] = cell_stats(inputs.results, table, inputs.seeds)
        st = stats_by_table[table].get((row, scale, dataset, metric))
        m = metric_of(metric)
        out.append({"cell": f"{table} / {row} / x{scale} {dataset} {metric}".replace("  ", " "),
                    "printed": m.format(printed(table, row, scale, dataset, metric)),
                    "measured": m.format(None if st is None else st.mean)
                    + ("" if st is None or st.n < 2 else f" ± {m.format(st.std)}")})
    return out


def _published_notes() -> list[Finding]:
    """The transcription notes (typos of row names, cells quoted from the text), one finding per note."""
    df = published_values()
    df = df[df["note"].notna() & (df["note"].astype(str).str.len() > 0)]
    out = []
    for note, group in df.groupby("note", sort=False):
        where = sorted({f"{t} / {r}" for t, r in zip(group["table"], group["row"], strict=True)})
        out.append(Finding(topic=", ".join(where), text=f"{note} ({len(group)} printed cells).",
                           source="published values"))
    return out


def complexity_rows(inputs: ReportInputs) -> list[dict[str, Any]]:
    """The complexity records of the results (a network that could not be measured left out)."""
    return [e for e in inputs.complexity.values() if isinstance(e, dict) and e.get("params") is not None]


def complexity_findings(inputs: ReportInputs) -> list[dict[str, str]]:
    """`repro complexity`'s findings for these results (measuring some variants: a few seconds)."""
    rows = complexity_rows(inputs)
    if not rows:
        return []
    from repro.complexity.table import findings

    return findings(rows)


def _complexity_findings(found: list[dict[str, str]]) -> list[Finding]:
    # the "DSSD beats PISR at every scale" claim is in discrepancies.toml, with its measured cells
    return [Finding(topic=f["topic"], text=f["text"], source="measured complexity") for f in found
            if not f["topic"].startswith("claim:")]


def paper_findings(inputs: ReportInputs, found: list[dict[str, str]] | None = None) -> list[Finding]:
    """Every known discrepancy of the paper, with the measured figures the results hold (`found`: the
    complexity findings, if already made)."""
    out = [Finding(topic=d["topic"], text=" ".join(d["text"].split()), source="paper",
                   cells=_cell_values(inputs, d.get("cells", [])))
           for d in _discrepancies()]
    out += _complexity_findings(complexity_findings(inputs) if found is None else found)
    out += _published_notes()
    return out

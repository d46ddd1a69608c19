"""The report as Markdown: the same sections as the HTML page, the tables as `repro.results.tables`
renders them, the figures as links to their PNG files beside it."""

from __future__ import annotations

import re
from typing import Any

from repro.report.inputs import ReportInputs
from repro.results.tables import render_markdown


def _esc(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_esc(v) for v in row) + " |" for row in rows]
    return out + [""]


def _demote(markdown: str, levels: int = 1) -> str:
    """Headings one level down (a table's own `#` title becomes a section of the report)."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def render_report_markdown(ctx: dict[str, Any], inputs: ReportInputs) -> str:
    s = ctx["summary"]
    out = [f"# {ctx['title']}", "",
           f"Profile **{s.profile}**, {s.seeds} seed(s), {ctx['hardware']}. Built {ctx['built']} by "
           f"`repro report`, commit {ctx['commit']}.", ""]
    out += ["## Summary", ""]
    if s.subset:
        out += [f"> **Evaluated on part of each test set.** A quick check measured {s.subset} only: no cell "
                "here is a test-set mean of the protocol.", ""]
    if s.profile not in ("paper", "pisr_code"):
        out += [f"> **Not the paper's protocol.** These results come from the `{s.profile}` profile "
                f"({ctx['profile_note']}). They check that every step runs; their differences from the "
                "printed numbers say nothing about the paper.", ""]
    out += [f"- printed cells in these tables: {s.printed}; measured: {s.measured}",
            f"- within tolerance ({ctx['tolerance_text']}): {s.within} of {s.judged} judged",
            f"- differences beyond the seed spread: {len(ctx['spread'])}"
            + (f" ({ctx['one_seed']} cells with one seed: no spread)" if ctx["one_seed"] else ""), ""]
    if ctx["misses"]:
        out += ["Largest misses:", ""]
        out += _table(["Cell", "printed", "measured", "Δ", "tolerance", "× tol."],
                      [[m["where"], m["printed"], m["measured"], m["delta"], m["tolerance"], m["times"]]
                       for m in ctx["misses"]])
    for table in inputs.tables:
        out += [_demote(render_markdown(table, inputs.results, inputs.seeds)), ""]
    out += ["## Complexity", ""]
    cx = ctx["complexity"]
    if cx["rows"]:
        out += [cx["legend"], ""] + _table(cx["header"], cx["rows"])
        out += [f"- **{f.topic}**: {f.text}" for f in cx["findings"]] + [""]
    else:
        out += [cx["missing"], ""]
    out += ["## Figures", ""]
    for f in ctx["figures"]:
        out += [f"### {f['title']}", ""]
        png = next((p for p in f["files"].split(", ") if p.endswith(".png")), None) if f["files"] else None
        out += [f"![{f['title']}]({png})" if png else f"Not drawn: {f['missing']}", "", f["caption"], ""]
        out += [f"- {n}" for n in f["notes"]] + ([""] if f["notes"] else [])
    out += ["## Findings", "", "### Measured differences larger than the seed spread", ""]
    if ctx["spread"]:
        out += _table(["Cell", "printed", "measured", "Δ", "2 × std. error"],
                      [[x["where"], x["printed"], x["measured"], x["delta"], x["threshold"]]
                       for x in ctx["spread"]])
    else:
        out += [ctx["spread_none"], ""]
    out += ["### Known discrepancies of the paper", ""]
    for f in ctx["paper_findings"]:
        out.append(f"- **{f.topic}** ({f.source}): {f.text}")
        out += [f"  - {c['cell']}: printed {c['printed']}, measured {c['measured']}" for c in f.cells]
    out += ["", "## Open decisions and the settings in force", ""]
    out += _table(["Question", "Default", "Setting", "Used here"],
                  [[d["question"], d["default"], f"`{d['setting']}`", d["used"]] for d in ctx["decisions"]])
    out += ["Paper text or PISR code:", ""]
    out += _table(["Setting", "Paper text", "PISR code", "Used here", "Reading"],
                  [[f"`{r['setting']}`", r["text"], r["code"], r["used"], r["reading"]]
                   for r in ctx["readings"]])
    out += [f"Tolerances of this report: {ctx['tolerance_text']}; runtime: {ctx['not_judged_note']}.", ""]
    out += ["## Provenance", ""]
    out += _table(["What", "Value"], [["profile", s.profile], ["seeds", s.seeds], ["device", ctx["hardware"]]]
                  + [[e["key"], e["value"]] for e in ctx["environment"]]
                  + [["training time of all runs (wall clock, evaluation not included)", ctx["total_time"]]])
    out += _table(["Role", "Set", "Manifest", "Checksums"],
                  [[d["role"], d["name"], d["manifest"], d["checksums"]] for d in ctx["datasets"]])
    out += _table(["Run", "Kind", "Network", "Scale", "Seed", "Iterations", "Training (s)", "it/s", "Device",
                   "Rows"],
                  [[f"`{r['run']}`", r["kind"], r["model"], f"x{r['scale']}", r["seed"], r["iterations"],
                    r["seconds"], r["it_per_s"], r["device"], r["rows"]] for r in ctx["runs"]])
    return "\n".join(out).rstrip() + "\n"

"""`repro report`: a results folder -> a self-contained HTML page that holds every table and figure it
promises, its Markdown twin, LaTeX that compiles, and honest summary numbers."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from repro.cli import main
from repro.errors import ReproError
from repro.io_utils import FILE_MODE
from repro.paths import PROJECT_ROOT
from repro.report.build import _latex_document, external_references
from repro.report.decisions import DECISIONS
from repro.report.inputs import load_inputs
from repro.report.summary import TOLERANCES, comparisons, parse_tolerances, summarise
from repro.results.collect import frame, write_results
from repro.results.tables import render_latex
from repro.specs import tables

FAST = ["--profile", "smoke", "--no-estimate", "--set", "optim.iters_per_epoch=10"]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """A smoke quickstart (trained, evaluated, tabulated) and its report, as the README's main job."""
    out = tmp_path_factory.mktemp("report") / "qs"
    assert main(["quickstart", "--out", str(out), *FAST]) == 0
    return out


@pytest.mark.slow
def test_report_holds_every_table_and_figure_and_nothing_outside(quickstart):
    html = (quickstart / "report" / "report.html").read_text()
    assert stat.S_IMODE((quickstart / "report" / "report.html").stat().st_mode) == FILE_MODE  # shareable
    assert external_references(html) == []
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    inputs = load_inputs(quickstart)
    for table in inputs.tables:
        assert f'<section id="{table.name}">' in html and table.title in html
    for section in ("summary", "complexity", "figures", "findings", "settings", "provenance"):
        assert f'<section id="{section}">' in html
    # what was drawn for the quickstart: the crops of its test photos, the compact LR, the training curves
    for key in ("crops", "compact_lr", "curves"):
        block = html.split(f'<figure id="fig-{key}">', 1)[1].split("</figure>")[0]
        assert 'src="data:image/png;base64,' in block
    # what could not be: one line each, with the command that would produce it
    absent = html.split('<ul class="absent">', 1)[1].split("</ul>", 1)[0]
    assert "PSNR against MultiAdds" in absent and "repro reproduce appendix1" in absent
    assert "PSNR across seeds" in absent and "--seeds 3" in absent
    assert '<figure id="fig-frontier">' not in html
    for run in inputs.runs:  # provenance: every run with its wall time
        assert run in html
    md = (quickstart / "report" / "report.md").read_text()
    assert "## Summary" in md and "## Quickstart" in md and "figures/crops.png" in md
    # one context: the same banner and absences on both pages
    assert "> **Not the paper's protocol.**" in md and "Not the paper&#39;s protocol." in html
    assert "- **PSNR across seeds**: one seed per row" in md
    assert (quickstart / "report" / "figures" / "crops.pdf").exists()
    assert (quickstart / "report" / "latex" / "quickstart.tex").exists()
    header = (quickstart / "report" / "comparison.csv").read_text().splitlines()[0]
    assert header.startswith("table,row,scale,dataset,metric,printed,measured")  # empty: nothing printed


@pytest.mark.slow
def test_report_again_from_the_folder_alone(quickstart, tmp_path, capsys):
    """`repro report` rebuilds it from the folder (moved elsewhere: nothing outside it is read)."""
    moved = tmp_path / "moved"
    shutil.copytree(quickstart, moved, ignore=shutil.ignore_patterns("report"))
    assert main(["report", "--results", str(moved), "--no-figures"]) == 0
    html = (moved / "report" / "report.html").read_text()
    assert "Not the paper&#39;s protocol" in html or "Not the paper's protocol" in html
    assert external_references(html) == []


def test_external_references_are_found():
    page = ('<html><head><link rel="stylesheet" href="style.css"><style>body{background:url(x.png)}'
            '@import "y.css";</style></head><body><img src="a.png"><img src="data:image/png;base64,AA">'
            '<a href="#top">top</a><a href="https://example.org">out</a>'
            '<div style="background-image:url(\'http://e/z.png\')"></div></body></html>')
    refs = external_references(page)
    assert len(refs) == 6, refs
    assert external_references('<img src="data:image/png;base64,AA"><a href="#x">x</a>') == []


def test_missing_results_folder_names_the_fix(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.csv" in err and "repro quickstart" in err


def test_tolerances_parse_and_refuse_unknown_metrics():
    assert parse_tolerances(["psnr=0.05"])["psnr"] == 0.05
    with pytest.raises(ReproError, match="psnr, ssim"):
        parse_tolerances(["lpips=0.1"])
    with pytest.raises(ReproError, match="not a number"):
        parse_tolerances(["psnr=abc"])


def _results(tmp_path: Path, values: dict[str, float]) -> Path:
    rows = [{"table": "table3", "row": row, "scale": 4, "dataset": "Set5", "metric": "psnr", "value": v,
             "seed": 0, "run": "", "profile": "paper", "commit": "", "device": "cpu"}
            for row, v in values.items()]
    write_results(frame(rows), tmp_path)
    return tmp_path


def test_summary_counts_cells_within_tolerance(tmp_path):
    # printed: recon_only 30.99, first_level 31.05, deep_supervision 31.07
    inputs = load_inputs(_results(tmp_path, {"recon_only": 30.95, "first_level": 30.80}))
    comps = comparisons(inputs, TOLERANCES)
    s = summarise(inputs, comps)
    assert (s.printed, s.measured, s.judged, s.within) == (3, 2, 2, 1)
    assert [c.row for c in s.largest_misses] == ["first_level"]
    assert s.paper_profile


def test_spread_findings_need_several_seeds(tmp_path):
    rows = [{"table": "table3", "row": "deep_supervision", "scale": 4, "dataset": "Set5", "metric": "psnr",
             "value": v, "seed": i, "run": "", "profile": "paper", "commit": "", "device": "cpu"}
            for i, v in enumerate((30.50, 30.52, 30.48))]
    write_results(frame(rows), tmp_path)
    plan = {"profile": "paper", "seeds": 3, "cells": [{"table": "table3"}], "runs": []}
    (tmp_path / "plan.json").write_text(pd.Series(plan).to_json())
    inputs = load_inputs(tmp_path)
    comps = comparisons(inputs)
    deep = next(c for c in comps if c.row == "deep_supervision")
    assert deep.n == 3 and deep.beyond_spread  # 0.57 dB below, std 0.02


def test_open_decisions_agree_with_the_protocol_document():
    text = (PROJECT_ROOT / "docs" / "protocol.md").read_text().split("## Open decisions", 1)[1]
    for d in DECISIONS:
        if d.setting and d.setting.split(".")[0] in ("optim", "loss", "model", "data"):
            assert f"`{d.setting}`" in text, d.setting


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (Debian texlive-latex-base)")
def test_latex_tables_compile(quickstart, tmp_path):
    if subprocess.run(["kpsewhich", "ulem.sty"], capture_output=True, text=True).stdout.strip() == "":
        pytest.skip("no ulem.sty (Debian texlive-plain-generic)")
    latex = quickstart / "report" / "latex"
    work = tmp_path / "latex"
    shutil.copytree(latex, work)
    # every table of the paper too (its labels, footnotes and claims), as a report of `all` writes them
    names = [p.name for p in sorted(work.glob("*.tex")) if p.name != "tables.tex"]
    for table in tables("all"):
        (work / f"{table.name}.tex").write_text(render_latex(table, frame(), 1))
        names.append(f"{table.name}.tex")
    (work / "tables.tex").write_text(_latex_document(names))
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"], cwd=work,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (work / "tables.pdf").stat().st_size > 1000


def test_the_protocol_banner_is_decided_once_for_both_pages(tmp_path):
    """Results mixing the `paper` and `pisr_code` profiles carry the banner in report.html as in
    report.md (both render one context)."""
    from repro.report.build import build_report

    rows = [{"table": "table3", "row": row, "scale": 4, "dataset": "Set5", "metric": "psnr", "value": v,
             "seed": 0, "run": "", "profile": profile, "commit": "", "device": "cpu"}
            for row, v, profile in (("recon_only", 30.9, "paper"), ("first_level", 30.8, "pisr_code"))]
    write_results(frame(rows), tmp_path)
    paths = build_report(tmp_path, figures=False, log=lambda *a: None)
    html, md = paths["html"].read_text(), paths["markdown"].read_text()
    for page in (html, md):
        assert "Not the paper" in page and "mix the" in page and "pisr_code" in page
    one = tmp_path / "one"
    write_results(frame([{**r, "profile": "paper"} for r in rows]), one)
    paths = build_report(one, figures=False, log=lambda *a: None)
    assert "Not the paper" not in paths["html"].read_text() + paths["markdown"].read_text()


def test_cells_that_read_the_same_share_a_mark(tmp_path):
    """28.3812 and 28.3755 both read 28.38: both best, and the next value second (not best and second)."""
    from repro.report.build import build_report

    rows = [{"table": "quickstart", "row": row, "scale": 4, "dataset": "sample", "metric": "psnr", "value": v,
             "seed": 0, "run": "", "profile": "quickstart", "commit": "", "device": "cpu"}
            for row, v in (("fsrcnn_baseline", 28.3812), ("fsrcnn_dssd", 28.3755), ("dssd_teacher", 27.42))]
    write_results(frame(rows), tmp_path)
    paths = build_report(tmp_path, figures=False, log=lambda *a: None)
    html, md = paths["html"].read_text(), paths["markdown"].read_text()
    assert html.count('<span class="best">28.38</span>') == 2 and '<span class="second">27.42</span>' in html
    assert md.count("**28.38**") == 2 and "*27.42*" in md


def test_a_table_with_nothing_measured_is_one_line_with_its_command(tmp_path):
    import json

    from repro.report.build import build_report

    write_results(frame([{"table": "table3", "row": "recon_only", "scale": 4, "dataset": "Set5",
                          "metric": "psnr", "value": 30.9, "seed": 0, "run": "", "profile": "paper",
                          "commit": "", "device": "cpu"}]), tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps({"profile": "paper", "seeds": 1, "runs": [],
                                                    "cells": [{"table": "table3"}, {"table": "table4"}]}))
    paths = build_report(tmp_path, figures=False, log=lambda *a: None)
    html, md = paths["html"].read_text(), paths["markdown"].read_text()
    line = "Nothing of Table 4 is measured in these results: "
    assert line in md and "`repro reproduce table4` measures it" in md
    table4 = html.split('<section id="table4">', 1)[1].split("</section>", 1)[0]
    assert line in table4 and "<table>" not in table4 and "<code>repro reproduce table4</code>" in table4
    assert "<table>" in html.split('<section id="table3">', 1)[1].split("</section>", 1)[0]
    assert "No complexity measured in these results: `repro reproduce appendix1` measures it." in md

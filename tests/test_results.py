"""`repro.results`: results.csv from faked run evaluations (no training), the rendered tables (printed,
measured, difference; `-` for what was not measured), claim verdicts against the seed spread, markers of
rows from other papers and of equal-compute controls, and the Bicubic / complexity caches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from repro.errors import ReproError
from repro.plan.runs import make_plan
from repro.results import (
    COLUMNS,
    bicubic_rows,
    complexity_rows,
    measured_rows,
    read_results,
    render_latex,
    render_markdown,
    write_results,
    write_tables,
)
from repro.results.tables import CONTROL_NOTE, ONE_SEED, OTHER_PAPER_NOTE, STANDS, WITHIN
from repro.runs.folder import write_json
from repro.specs import Claim, Row, TableSpec, get_table
from repro.specs.base import baseline, student, teacher

KEY = ["table", "row", "scale", "dataset", "metric", "seed"]


def fake(plan, out: Path, values: dict[str, list[float | None]], scale: int = 4, dataset: str = "Set5",
         table: str | None = None) -> None:
    """Write evaluation.json for each row's run at `scale`: values[row][seed] (None: no evaluation)."""
    for (t, row, s, seed), run_id in plan.measured.items():
        if (table and t != table) or s != scale or row not in values or values[row][seed] is None:
            continue
        run = plan.runs[run_id]
        psnr = values[row][seed]
        write_json(Path(run.folder(out)) / "evaluation.json",
                   {"run": run.name, "hash": run.id,
                    "sets": {dataset: {"psnr": psnr, "ssim": 0.8 + psnr / 1000, "images": 5}}})


def collect(plan, out: Path) -> pd.DataFrame:
    df = measured_rows(plan, out, profile="smoke", commit="abc123", device="cpu")
    write_results(df, out)
    return read_results(out)


def line_of(text: str, row: str) -> str:
    lines = [ln for ln in text.splitlines() if f"(`{row}`)" in ln]
    assert len(lines) == 1, lines
    return lines[0]


def section(md: str, scale: int) -> str:
    """The part of a multi-scale table's Markdown under its `## x<scale>` heading."""
    return md.split(f"## x{scale}\n", 1)[1].split("\n## ", 1)[0]


def cells_of(line: str) -> list[str]:
    """The cells of a Markdown row after its label, without the best / second-best marks (** and *)."""
    return [c.strip().strip("*") for c in line.strip().strip("|").split(" | ")][1:]


@pytest.fixture(scope="module")
def table3():
    return get_table("table3")


@pytest.fixture(scope="module")
def plan3(table3):
    return make_plan([table3], "smoke", seeds=2)


TABLE3_VALUES = {  # recon_only -> first_level: tiny gain; -> deep_supervision: big gain
    "recon_only": [30.90, 30.94],
    "first_level": [30.91, 30.95],
    "deep_supervision": [31.20, 31.24],
    "equal_compute_fsrcnn": [30.96, None],  # one seed not evaluated yet
}


def test_results_csv(tmp_path, plan3):
    fake(plan3, tmp_path, TABLE3_VALUES)
    df = measured_rows(plan3, tmp_path, profile="smoke", commit="abc123", device="cpu")
    path = write_results(df, tmp_path)
    raw = pd.read_csv(path)
    assert list(raw.columns) == list(COLUMNS)
    assert not raw.duplicated(KEY).any()
    # 3 rows x 2 seeds + 1 seed of the control, PSNR only (table 3's metric); baseline_fsrcnn absent
    assert len(raw) == 7
    assert set(raw["row"]) == {"recon_only", "first_level", "deep_supervision", "equal_compute_fsrcnn"}
    assert set(raw["profile"]) == {"smoke"} and set(raw["commit"]) == {"abc123"}
    assert raw["run"].str.startswith(("student-fsrcnn-x4-", "baseline-fsrcnn-x4-")).all()
    back = read_results(tmp_path)
    assert back[KEY].values.tolist() == back.sort_values(KEY)[KEY].values.tolist()  # sorted by key
    # the same cell twice is refused
    with pytest.raises(ReproError, match="same cell twice"):
        write_results(pd.concat([df, df.iloc[:1]]), tmp_path)
    # deterministic: writing again gives the same bytes
    first = path.read_bytes()
    write_results(df.sample(frac=1, random_state=0), tmp_path)
    assert path.read_bytes() == first


def test_markdown_table3(tmp_path, table3, plan3):
    fake(plan3, tmp_path, TABLE3_VALUES)
    md = render_markdown(table3, collect(plan3, tmp_path), seeds=2)
    assert cells_of(line_of(md, "recon_only")) == ["30.99", "30.92 ± 0.03", "-0.07"]
    assert cells_of(line_of(md, "first_level")) == ["31.05", "30.93 ± 0.03", "-0.12"]
    assert cells_of(line_of(md, "deep_supervision")) == ["31.07", "31.22 ± 0.03", "+0.15"]
    # not measured: `-`, never a number; not printed either
    assert cells_of(line_of(md, "baseline_fsrcnn")) == ["-", "-", "-"]
    # one of two seeds evaluated: the one value, said to be one
    control = line_of(md, "equal_compute_fsrcnn")
    assert cells_of(control) == ["-", "30.96 (n=1)", "-"]
    assert "‡" in control and CONTROL_NOTE[1:] in md
    # the paper's marks, printed and measured ranked apart; the control row (30.96) takes no mark
    assert "| **31.07** | **31.22 ± 0.03** |" in line_of(md, "deep_supervision")
    assert "| *31.05* | *30.93 ± 0.03* |" in line_of(md, "first_level")
    assert "| 30.99 | 30.92 ± 0.03 |" in line_of(md, "recon_only") and "*" not in control.split("|", 2)[2]


def test_claim_verdicts(tmp_path, table3, plan3):
    fake(plan3, tmp_path, {**TABLE3_VALUES, "equal_compute_fsrcnn": [30.96, 31.00]})
    md = render_markdown(table3, collect(plan3, tmp_path), seeds=2)
    claims = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert len(claims) == 2
    tiny, big = claims
    assert "printed gain +0.06" in tiny and "measured gain +0.01" in tiny and WITHIN in tiny
    assert "printed gain +0.08" in big and "measured gain +0.30" in big and STANDS in big
    # over the equal-compute control (30.98): +0.24 for deep supervision
    assert "over equal compute" in big and "+0.24" in big
    assert md.count("Rule: ") == 1 and "2·sqrt(" in md


def test_one_seed_claims(tmp_path, table3):
    plan = make_plan([table3], "smoke", seeds=1)
    fake(plan, tmp_path, {"recon_only": [30.90], "first_level": [31.50], "deep_supervision": [30.91]})
    md = render_markdown(table3, collect(plan, tmp_path), seeds=1)
    claims = [ln for ln in md.splitlines() if ln.startswith("- ")]
    assert len(claims) == 2 and all(ONE_SEED in c for c in claims)
    assert "Rule: " not in md and "±" not in md
    assert cells_of(line_of(md, "first_level")) == ["31.05", "31.50", "+0.45"]


def test_latex(tmp_path, plan3):
    spec = TableSpec(
        name="table3", title="Hand-made: 50% & more_of it",
        rows=(Row("recon_only", "recon_only row", get_table("table3").row("recon_only").runs),
              Row("x", "FSRCNN* control", (baseline("fsrcnn", 4),), control_for=("recon_only",))),
        claims=(Claim("recon_only", "x"),))
    fake(plan3, tmp_path, TABLE3_VALUES)
    tex = render_latex(spec, collect(plan3, tmp_path), seeds=2)
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}"):
        assert rule in tex
    # the only ranked row (the control is left out) is the best of its column: a solid underline
    assert r"recon\_only row & \underline{30.99} & \underline{30.92 $\pm$ 0.03} & -0.07 \\" in tex
    assert r"50\% \& more\_of it" in tex and r"FSRCNN$^*$ control$^\ddagger$" in tex
    # every underscore escaped, outside the LaTeX we write ourselves
    assert "_" not in tex.replace(r"\_", "")


def test_rows_from_other_papers_are_marked(tmp_path):
    table = get_table("appendix1")
    plan = make_plan([table], "smoke", seeds=1)
    fake(plan, tmp_path, {"DRCN": [37.50]}, scale=2, table="appendix1")
    results = collect(plan, tmp_path)
    assert set(results["row"]) == {"DRCN"} and set(results["metric"]) == {"psnr", "ssim"}
    md = render_markdown(table, results, seeds=1)
    x2 = section(md, 2)
    drcn = line_of(x2, "DRCN")
    assert "DRCN†" in drcn and cells_of(drcn)[:3] == ["37.63", "37.50", "-0.13"]
    assert cells_of(line_of(section(md, 4), "DRCN"))[:3] == ["31.53", "-", "-"]  # x4 not measured
    assert "†" not in line_of(x2, "DSSD") and "†" not in line_of(x2, "FSRCNN*")
    assert OTHER_PAPER_NOTE in md.lower() and "Kim et al., CVPR 2016 (DRCN)" in md
    assert "‡" in line_of(x2, "equal_compute_fsrcnn")
    assert r"$^\dagger$" in render_latex(table, results, seeds=1)
    paths = write_tables([table], results, tmp_path, seeds=1)
    assert sorted(p.name for p in paths) == ["appendix1.md", "appendix1.tex"]
    assert (tmp_path / "tables" / "appendix1.md").read_text() == md


def test_bicubic_rows_are_cached(tmp_path, monkeypatch):
    import repro.evaluate.bicubic_row as module

    calls = []

    def fake_bicubic(sets, scales, root=None, workers=None, progress=True):
        calls.append((list(sets), list(scales)))
        return [{"dataset": s, "scale": sc, "psnr": 28.0 + sc, "ssim": 0.8, "n_images": 3}
                for s in sets for sc in scales]

    monkeypatch.setattr(module, "bicubic_row", fake_bicubic)
    table = get_table("quickstart")
    first = bicubic_rows([table], tmp_path, commit="abc123")
    assert calls == [(["sample"], [4])]
    assert first[["row", "scale", "dataset", "metric", "value"]].values.tolist() == [
        ["bicubic", 4, "sample", "psnr", 32.0], ["bicubic", 4, "sample", "ssim", 0.8]]
    assert first["seed"].isna().all() and (first["run"] == "").all()
    assert json.loads((tmp_path / "bicubic.json").read_text())["cells"]["sample/x4"]["psnr"] == 32.0
    second = bicubic_rows([table], tmp_path)
    assert len(calls) == 1  # measured nothing
    pd.testing.assert_frame_equal(first, second)
    md = render_markdown(table, second, seeds=2)
    # the quickstart prints nothing: measured columns only; no seed: no (n=...)
    assert cells_of(line_of(md, "bicubic")) == ["32.00", "0.8000"]


def test_complexity_rows(tmp_path, monkeypatch):
    from repro.complexity.measure import Options

    dssd = student(teacher("dssd_teacher", 4, "model.backbone=fsrcnn"))
    spec = TableSpec(name="appendix1", title="tiny", scales=(4,), complexity=True,
                     rows=(Row("Bicubic", "Bicubic"), Row("DSSD", "DSSD", (dssd,))))
    opts = Options(tools=False, runtime=True, runtime_max_gmacs=0.0)  # above the ceiling: no runtime
    df = complexity_rows([spec], None, tmp_path, options=opts)
    got = dict(zip(df["metric"], df["value"], strict=True))
    assert set(df["row"]) == {"DSSD"} and set(df["dataset"]) == {""}
    assert set(got) == {"params_k", "multiadds_g"}  # runtime skipped: absent, never filled in
    assert got["params_k"] == pytest.approx(12.8, abs=0.1)
    assert got["multiadds_g"] == pytest.approx(4.64, rel=5e-3)  # legacy convention, as printed
    cache = json.loads((tmp_path / "complexity.json").read_text())["networks"]["fsrcnn/x4"]
    assert cache["macs_g"] == pytest.approx(0.72, rel=5e-3)  # true MACs kept too
    import repro.complexity.measure as module

    monkeypatch.setattr(module, "measure", lambda *a, **k: pytest.fail("measured again"))
    pd.testing.assert_frame_equal(df, complexity_rows([spec], None, tmp_path, options=opts))
    md = render_markdown(spec, df, seeds=1)
    assert cells_of(line_of(md, "DSSD")) == ["31.07", "-", "-", "13.0", "12.8", "-0.2", "6.0", "4.6", "-1.4",
                                             "0.83", "-", "-"]


def test_no_training_code_imported():
    code = ("import sys, repro.results; "
            "sys.exit(any(m == 'repro.train' or m.startswith('repro.train.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""`repro regression`: golden cells against results, exit codes, --update-golden, and the golden files of
tests/golden/ (no training: results frames are built in memory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.cli import main
from repro.published import published, published_values
from repro.results.collect import frame, write_results
from repro.results.regression import (
    Golden,
    GoldenCell,
    check,
    compare,
    dumps_golden,
    load_golden,
    load_results,
    update_golden,
    write_golden,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
RECON = ("table3", "recon_only", 4, "Set5", "psnr")
DEEP = ("table3", "deep_supervision", 4, "Set5", "psnr")
BICUBIC = ("appendix1", "Bicubic", 2, "Set5", "psnr")


def _row(key, value, seed=0, commit="abc123"):
    table, row, scale, dataset, metric = key
    return {"table": table, "row": row, "scale": scale, "dataset": dataset, "metric": metric, "value": value,
            "seed": seed, "run": f"run-{row}", "profile": "smoke", "commit": commit, "device": "cpu"}


def _results(tmp_path: Path, recon: float = 18.45, deep: float | None = 18.84) -> Path:
    rows = [_row(RECON, recon), _row(BICUBIC, 33.66, seed=None),
            _row(("table3", "baseline_fsrcnn", 4, "Set5", "psnr"), 13.44)]  # the last is in no golden file
    if deep is not None:
        rows += [_row(DEEP, deep - 0.01, seed=0), _row(DEEP, deep + 0.01, seed=1)]  # mean over seeds: deep
    out = tmp_path / "results"
    write_results(frame(rows), out)
    return out


def _golden(tmp_path: Path, recon: float = 18.45) -> Path:
    cells = {RECON: GoldenCell(recon, 0.05, "smoke"), DEEP: GoldenCell(18.84, 0.05, "smoke"),
             BICUBIC: GoldenCell(33.66, 0.02, "paper")}
    path = tmp_path / "golden.json"
    write_golden(Golden({"profile": "smoke", "tolerance_note": "test"}, cells), path)
    return path


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(["regression", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_within_tolerance_exits_0_and_lists_each_cell(tmp_path, capsys):
    code, out = _run(capsys, "--results", str(_results(tmp_path, recon=18.45 + 0.049)), "--golden",
                     str(_golden(tmp_path)))
    assert code == 0, out
    assert "ok: table3/recon_only/x4/Set5/psnr: measured 18.4990, golden 18.4500, diff +0.0490" in out
    assert "ok: table3/deep_supervision/x4/Set5/psnr: measured 18.8400" in out and "mean of 2 seeds" in out
    assert "3 ok, 0 outside tolerance, 0 not measured; 1 cells of the results not in this golden file" in out


def test_outside_tolerance_exits_1_and_names_the_cell(tmp_path, capsys):
    golden = _golden(tmp_path, recon=18.45 + 0.06)  # the golden value perturbed beyond its tolerance
    code, out = _run(capsys, "--results", str(_results(tmp_path)), "--golden", str(golden), "--quiet")
    assert code == 1
    miss = [ln for ln in out.splitlines() if "FAILED" not in ln and "OUTSIDE TOLERANCE" in ln]
    assert miss and all("table3/recon_only/x4/Set5/psnr" in ln for ln in miss)
    assert "measured 18.4500, golden 18.5100, diff -0.0600, tolerance 0.05" in miss[-1]
    assert "deep_supervision" not in out  # --quiet: only the misses and the summary


def test_missing_cell_is_not_measured_and_fails(tmp_path, capsys):
    results, golden = _results(tmp_path, deep=None), _golden(tmp_path)
    code, out = _run(capsys, "--results", str(results), "--golden", str(golden))
    assert code == 1
    assert "NOT MEASURED: table3/deep_supervision/x4/Set5/psnr: not measured (golden 18.8400, smoke)" in out
    assert "OUTSIDE TOLERANCE" not in out
    misses = compare(load_results(results), load_golden(golden))
    assert [(m.kind, m.check.key) for m in misses] == [("not measured", DEEP)]


def test_update_golden_rewrites_measured_values_only(tmp_path, capsys):
    golden = _golden(tmp_path, recon=18.0)
    results = tmp_path / "results"
    write_results(frame([_row(RECON, 18.45), _row(DEEP, 18.84), _row(BICUBIC, 33.9, seed=None)]), results)
    code, out = _run(capsys, "--results", str(results), "--golden", str(golden), "--update-golden")
    assert "table3/recon_only/x4/Set5/psnr: 18.0000 -> 18.4500 (+0.4500)" in out
    assert "1 of 2 measured cells changed" in out
    updated = load_golden(golden)
    assert updated.cells[RECON] == GoldenCell(18.45, 0.05, "smoke")  # tolerance and source kept
    assert updated.cells[BICUBIC].value == 33.66  # a printed value is never rewritten...
    assert code == 1 and "OUTSIDE TOLERANCE: appendix1/Bicubic/x2/Set5/psnr" in out  # ...so it still fails
    assert updated.header["commit"] == "abc123" and updated.header["tolerance_note"] == "test"
    assert "--update-golden" in updated.header["updated_by"]
    assert not list(tmp_path.glob(".golden.json.*"))  # no temp file left behind
    assert update_golden(load_results(results), golden, log=lambda _: None) == []  # again: nothing changes


def test_update_golden_refuses_another_profile(tmp_path, capsys):
    results = tmp_path / "results"
    write_results(frame([{**_row(RECON, 30.0), "profile": "paper"}]), results)
    code, out = _run(capsys, "--results", str(results), "--golden", str(_golden(tmp_path)), "--update-golden")
    assert code == 2 and "smoke-profile values but the results were measured with paper" in out


@pytest.mark.parametrize("what", ["results_missing", "results_csv_missing", "golden_missing", "golden_bad"])
def test_bad_paths_exit_2_naming_the_file(tmp_path, capsys, what):
    results, golden = _results(tmp_path), _golden(tmp_path)
    named = {"results_missing": tmp_path / "nowhere",
             "results_csv_missing": tmp_path / "empty" / "results.csv",
             "golden_missing": tmp_path / "nope.json", "golden_bad": tmp_path / "bad.json"}[what]
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    if what.startswith("results"):
        results = named if what == "results_missing" else named.parent
    else:
        golden = named
    code, out = _run(capsys, "--results", str(results), "--golden", str(golden))
    assert code == 2
    assert out.startswith("repro: error: ") and str(named) in out


def test_bicubic_json_is_read_as_the_appendix_row(tmp_path):
    path = tmp_path / "bicubic.json"
    path.write_text(json.dumps([{"dataset": "Set5", "scale": 2, "psnr": 33.67, "ssim": 0.93, "n_images": 5}]))
    comparison = check(load_results(path), load_golden(_golden(tmp_path)))
    by_key = {c.key: c for c in comparison.checks}
    assert by_key[BICUBIC].status == "ok" and by_key[BICUBIC].measured == 33.67
    assert by_key[RECON].status == "not measured" and comparison.ignored == 1  # the SSIM cell


def test_bicubic_paper_golden_equals_the_printed_values():
    golden = load_golden(GOLDEN_DIR / "bicubic_paper.json")
    pub = published_values()
    printed = pub[(pub["table"] == "appendix1") & (pub["row"] == "Bicubic")]
    assert len(golden.cells) == len(printed) == 24
    for (table, row, scale, dataset, metric), cell in golden.cells.items():
        assert cell.value == published(table, row, scale, dataset, metric), (scale, dataset, metric)
        assert cell.source == "paper"
        assert cell.tolerance == {"psnr": 0.02, "ssim": 0.0015}[metric]
    assert {"profile", "command", "commit", "date", "tolerance_note"} <= set(golden.header)


def test_smoke_golden_is_well_formed():
    golden = load_golden(GOLDEN_DIR / "smoke.json")
    assert {"profile", "command", "commit", "date", "tolerance_note"} <= set(golden.header)
    assert golden.header["profile"] == "smoke"
    assert RECON in golden.cells and all(c.source == "smoke" for c in golden.cells.values())
    assert all(c.tolerance > 0 for c in golden.cells.values())
    for name in ("smoke.json", "bicubic_paper.json"):  # in the canonical form: sorted, a line per cell
        path = GOLDEN_DIR / name
        assert dumps_golden(load_golden(path)) == path.read_text(), f"rewrite {path} with write_golden"

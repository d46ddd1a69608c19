"""`repro quickstart` end to end on the smoke profile: tidy rows, all four rows, resumable."""

from __future__ import annotations

import json

import pytest

from repro.cli import main


@pytest.mark.slow
def test_quickstart_smoke_end_to_end(tmp_path, capsys):
    out, rows_path = tmp_path / "runs", tmp_path / "rows.json"
    argv = ["quickstart", "--profile", "smoke", "--out", str(out), "--json", str(rows_path), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for label in ("Bicubic", "FSRCNN*", "DSSD teacher", "distilled"):
        assert label in printed
    rows = json.loads(rows_path.read_text())
    assert {r["row"] for r in rows} == {"bicubic", "fsrcnn_baseline", "dssd_teacher", "fsrcnn_dssd"}
    assert {r["metric"] for r in rows} == {"psnr", "ssim"}
    for r in rows:
        assert {"table", "row", "scale", "dataset", "metric", "value", "seed", "run"} <= set(r)
        assert r["table"] == "quickstart" and r["dataset"] == "sample" and r["scale"] == 4
    bicubic = next(r["value"] for r in rows if r["row"] == "bicubic" and r["metric"] == "psnr")
    assert 20 < bicubic < 40  # the sample test photos at x4, measured, not a fixed figure
    for step in ("fsrcnn_baseline", "dssd_teacher", "fsrcnn_dssd"):
        assert (out / f"{step}-x4" / "done.json").exists()

    # a second call leaves the finished runs alone and reports the same numbers
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/model.pt")} == stamps
    assert json.loads(rows_path.read_text()) == rows


def test_quickstart_unknown_setting_is_one_clear_line(tmp_path, capsys):
    code = main(["quickstart", "--profile", "smoke", "--out", str(tmp_path), "--set", "optim.nosuch=1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "optim.nosuch" in err and "optim.lr" in err

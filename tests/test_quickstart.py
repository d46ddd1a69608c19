"""`repro quickstart` (the README's main job) end to end on the smoke profile: the quickstart table,
tidy rows, resumable; a bad setting is one clear line."""

from __future__ import annotations

import pandas as pd
import pytest

from repro.cli import main

FAST = ["--profile", "smoke", "--no-estimate", "--set", "optim.iters_per_epoch=10"]


@pytest.mark.slow
def test_quickstart_smoke_end_to_end(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    for label in ("Bicubic", "FSRCNN\\* (trained alone)", "DSSD teacher", "distilled"):
        assert label in printed
    rows = pd.read_csv(out / "results.csv")
    assert set(rows.row) == {"bicubic", "fsrcnn_baseline", "dssd_teacher", "fsrcnn_dssd"}
    assert set(rows.metric) == {"psnr", "ssim"} and set(rows.dataset) == {"sample"}
    assert set(rows.table) == {"quickstart"} and set(rows.scale) == {4}
    bicubic = rows[(rows.row == "bicubic") & (rows.metric == "psnr")].value.item()
    assert 20 < bicubic < 40  # the sample test photos at x4, measured, not a fixed figure
    assert len(list(out.glob("runs/*/done.json"))) == 3
    assert (out / "tables" / "quickstart.md").exists()

    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")}
    assert main(["quickstart", "--out", str(out), *FAST]) == 0  # finished runs are left alone
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model.pt")} == stamps
    assert pd.read_csv(out / "results.csv").equals(rows)


def test_quickstart_unknown_setting_is_one_clear_line(tmp_path, capsys):
    code = main(["quickstart", "--profile", "smoke", "--out", str(tmp_path / "q"), "--no-estimate",
                 "--set", "optim.nosuch=1"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "optim.nosuch" in err and "optim.lr" in err
    assert not (tmp_path / "q").exists()

"""`repro bicubic`: the Bicubic row of Appendix Table I from the images, and its errors on bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from repro.cli import main
from repro.data.images import write_image
from repro.published import published


def _data_root() -> str:
    root = os.environ.get("REPRO_DATA")
    if not root:
        pytest.skip("REPRO_DATA is not set: it must point at the folder holding benchmark/<set>/")
    return root


def _error_line(capsys) -> str:
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    err = [ln for ln in lines if ln.strip() and not ln.startswith("bicubic:")]  # not the progress bar
    assert len(err) == 1, err  # one line
    assert err[0].startswith("repro: error: ")
    return err[0]


@pytest.mark.data
@pytest.mark.slow
def test_bicubic_row_matches_the_paper(tmp_path, capsys):
    """All 24 printed values (4 sets x 3 scales x PSNR/SSIM) within 0.02 dB and 0.0015 SSIM."""
    out = tmp_path / "bicubic.json"
    assert main(["bicubic", "--data-root", _data_root(), "--json", str(out), "--no-progress"]) == 0
    table = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert len(rows) == 12
    expected_n = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}
    for r in rows:
        assert set(r) == {"dataset", "scale", "psnr", "ssim", "n_images"}
        assert r["n_images"] == expected_n[r["dataset"]]
        pp = published("appendix1", "Bicubic", r["scale"], r["dataset"], "psnr")
        ps = published("appendix1", "Bicubic", r["scale"], r["dataset"], "ssim")
        print(f"{r['dataset']} x{r['scale']}: PSNR {r['psnr']:.4f} (printed {pp}, {r['psnr'] - pp:+.4f}), "
              f"SSIM {r['ssim']:.5f} (printed {ps}, {r['ssim'] - ps:+.5f})")
        assert abs(r["psnr"] - pp) <= 0.02, r
        assert abs(r["ssim"] - ps) <= 0.0015, r
        assert f"| {r['dataset']} | x{r['scale']} | {pp:.2f} | {r['psnr']:.4f} |" in table


def test_sample_set_runs_without_data(tmp_path, capsys):
    out = tmp_path / "sample.json"
    assert main(["bicubic", "--sets", "sample", "--scales", "4", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["dataset"], r["scale"]) for r in rows] == [("sample", 4)]
    assert rows[0]["n_images"] >= 1 and 15 < rows[0]["psnr"] < 50 and 0 < rows[0]["ssim"] < 1
    assert "| sample | x4 | - |" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "expected"), [
    (["--sets", "Set6"], "unknown test set 'Set6'; valid choices: Set5, Set14, B100, Urban100, sample"),
    (["--sets", "Set5,urban100"], "unknown test set 'urban100'; valid choices: Set5, Set14, B100, Urban100"),
    (["--scales", "8"], "unknown scale 8; valid choices: 2, 3, 4"),
    (["--scales", "2,x3"], "unknown scale 'x3'; valid choices: 2, 3, 4"),
])
def test_bad_choices_exit_2_with_valid_choices(argv, expected, capsys, tmp_path):
    assert main(["bicubic", "--data-root", str(tmp_path), *argv]) == 2
    assert expected in _error_line(capsys)


def test_missing_dataset_names_the_fetch_command(tmp_path, capsys):
    assert main(["bicubic", "--sets", "Set14", "--data-root", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert "repro data fetch benchmark" in line and str(tmp_path / "benchmark" / "Set14") in line


@pytest.mark.parametrize("n_good", [0, 3])  # serial path, and the process pool
def test_unreadable_image_names_its_path(tmp_path, capsys, n_good):
    hr_dir = tmp_path / "benchmark" / "Set5" / "HR"
    hr_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_good):
        write_image(hr_dir / f"good{i}.png", rng.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    bad = hr_dir / "broken.png"
    bad.write_bytes(b"this is not a PNG")
    assert main(["bicubic", "--sets", "Set5", "--scales", "2", "--data-root", str(tmp_path),
                 "--no-progress"]) == 2
    assert str(bad) in _error_line(capsys)


def test_missing_lr_file_names_its_path(tmp_path, capsys):
    set_dir = tmp_path / "benchmark" / "Set5"
    (set_dir / "LR_bicubic" / "X2").mkdir(parents=True)
    (set_dir / "HR").mkdir()
    write_image(set_dir / "HR" / "a.png", np.zeros((40, 40), dtype=np.uint8))
    assert main(["bicubic", "--sets", "Set5", "--scales", "2", "--data-root", str(tmp_path)]) == 2
    assert str(set_dir / "LR_bicubic" / "X2" / "ax2.png") in _error_line(capsys)

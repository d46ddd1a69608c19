"""The smoke profile trains a DSSD teacher and then its student end to end on CPU, and both learn."""

from __future__ import annotations

import pytest
import torch

from repro.cli import main
from repro.runs.folder import read_metrics


def _falls(run) -> tuple[float, float]:
    losses = [float(r["loss"]) for r in read_metrics(run)]
    assert len(losses) >= 6
    return sum(losses[:2]) / 2, sum(losses[-2:]) / 2


@pytest.mark.slow
def test_teacher_then_student_end_to_end(tmp_path, capsys):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    # (how long these take is measured by `python -m repro.bench --only train_speed`, not asserted here)
    assert main(["train", "teacher", "--model", "dssd_teacher", "--profile", "smoke", "--out", str(teacher),
                 "--no-progress"]) == 0
    assert main(["train", "student", "--teacher", str(teacher), "--profile", "smoke", "--out", str(student),
                 "--no-progress"]) == 0

    first, last = _falls(teacher)
    assert last < 0.8 * first, (first, last)
    rows = read_metrics(teacher)
    assert {"recon", "z_fre_1", "z_fre_2", "z_deg_1", "z_deg_2"} <= set(rows[0])  # every term logged

    first, last = _falls(student)
    assert last < 0.8 * first, (first, last)
    assert "vid" in read_metrics(student)[0]

    record = torch.load(student / "model.pt", weights_only=False)
    assert record["kind"] == "student" and record["model"] == "fsrcnn"
    assert not any("vid" in k or "teacher" in k for k in record["state_dict"])  # deployed network only
    assert sum(v.numel() for v in record["state_dict"].values()) == 12_809
    teacher_record = torch.load(teacher / "model.pt", weights_only=False)
    assert any(k.startswith("hfrm.") for k in teacher_record["state_dict"])  # the whole teacher
    assert any(k.startswith("sdm.") for k in teacher_record["state_dict"])

    # a finished run is not redone
    capsys.readouterr()
    again = ["train", "student", "--teacher", str(teacher), "--profile", "smoke", "--out", str(student)]
    assert main(again) == 0
    assert "complete" in capsys.readouterr().out

"""A run killed with SIGKILL after a checkpoint resumes to the very weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train.engine import train

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["optim.iters_per_epoch=300", "run.checkpoint_every=20", "val.sets="]


def _command(out: Path) -> list[str]:
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return [sys.executable, "-m", "repro", "train", "baseline", "--profile", "smoke", "--out", str(out),
            "--no-progress", *sets]


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _checkpoint_iteration(run: Path) -> int:
    try:
        return int(torch.load(run / "checkpoint.pt", weights_only=False)["iteration"])
    except Exception:  # not written yet (written atomically, so never half there)
        return 0


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(tmp_path):
    run = tmp_path / "killed"
    proc = subprocess.Popen(_command(run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # wait for a checkpoint AND a logged row past it: the kill must leave rows to drop
        while proc.poll() is None:
            ckpt = _checkpoint_iteration(run) if (run / "checkpoint.pt").exists() else 0
            rows = read_metrics(run) if ckpt else []
            if ckpt and rows and int(rows[-1]["iteration"]) > ckpt:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _checkpoint_iteration(run)
    assert 0 < killed_at < 300 and not (run / "model.pt").exists()

    resumed = subprocess.run(_command(run), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming at iteration {killed_at}/300" in resumed.stdout

    reference = train(resolve("smoke", overrides=SETTINGS), out=tmp_path / "whole", progress=False)
    assert (run / "model.pt").read_bytes() == (reference / "model.pt").read_bytes()
    rows, ref_rows = read_metrics(run), read_metrics(reference)
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in ref_rows]  # no duplicates, no gaps
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]

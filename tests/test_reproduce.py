"""`repro reproduce` end to end on CPU: a smoke Table 3 beside the printed values, nothing redone on a
second call, a SIGKILLed orchestration finishing with the same weights, two orchestrators on one folder,
seeds with verdicts, and the Slurm path through submitit's local executor."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from repro.cli import main
from repro.runs.folder import DONE, MODEL, read_metrics

DATA = os.environ.get("REPRO_DATA")
needs_data = pytest.mark.skipif(
    not (DATA and Path(DATA, "benchmark", "Set5").is_dir()),
    reason="needs the real Set5 images: set REPRO_DATA to a folder with benchmark/")
# the quickstart table (sample photos, no download) cut to a few iterations: the mechanics, in seconds
FAST = ["--profile", "smoke", "--no-estimate", "--set", "optim.iters_per_epoch=10",
        "--set", "run.checkpoint_every=5"]
TRAINED = re.compile(r"\] (\S+): trained")


def _weights(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p.parent.name: torch.load(p, weights_only=False)["state_dict"]
            for p in out.glob("runs/*/model.pt")}


def _stamps(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in [*out.glob("runs/*/model.pt"), *out.glob("runs/*/evaluation.json")]}


@pytest.fixture
def orchestrate():
    """Start `repro reproduce quickstart --out OUT` in a process; any still running at the end (a test
    that failed or timed out) is killed."""
    started: list[subprocess.Popen] = []

    def start(out: Path, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "repro", "reproduce", "quickstart", "--out", str(out), *FAST, *extra]
        started.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_data
@pytest.mark.slow
def test_smoke_table3_end_to_end_and_a_second_call_redoes_nothing(tmp_path, capsys):
    out = tmp_path / "t3"
    argv = ["reproduce", "table3", "--profile", "smoke", "--out", str(out), "--no-estimate"]
    assert main(argv) == 0
    table = (out / "tables" / "table3.md").read_text()
    for row, printed in (("recon_only", "30.99"), ("first_level", "31.05"), ("deep_supervision", "31.07")):
        line = next(line for line in table.splitlines() if f"`{row}`" in line)
        assert re.search(rf"\| \**{re.escape(printed)}\** \|", line) and line.count("|") == 5
    assert "equal-compute control" in table and (out / "tables" / "table3.tex").exists()
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["table", "row", "scale", "dataset", "metric", "value", "seed", "run",
                                     "profile", "commit", "device"]
    assert set(results.row) == {"recon_only", "first_level", "deep_supervision", "baseline_fsrcnn",
                                "equal_compute_fsrcnn"}
    stamps, csv_bytes = _stamps(out), (out / "results.csv").read_bytes()
    capsys.readouterr()
    assert main(argv) == 0
    assert not TRAINED.findall(capsys.readouterr().out)
    assert _stamps(out) == stamps  # nothing trained or evaluated again
    assert (out / "results.csv").read_bytes() == csv_bytes
    assert (out / "tables" / "table3.md").read_text() == table


@needs_data
@pytest.mark.slow
def test_three_seeds_give_mean_std_and_a_verdict_per_claim(tmp_path):
    out = tmp_path / "t3s"
    assert main(["reproduce", "table3", "--profile", "smoke", "--seeds", "3", "--out", str(out),
                 "--no-estimate", "--set", "optim.iters_per_epoch=20"]) == 0
    table = (out / "tables" / "table3.md").read_text()
    assert "±" in table
    claims = [line for line in table.splitlines() if line.startswith("- ") and "printed gain" in line]
    assert len(claims) == 2 and all("seed spread" in c for c in claims)
    assert set(pd.read_csv(out / "results.csv").seed.dropna().astype(int)) == {0, 1, 2}


def test_sigkill_mid_table_then_resume_matches_an_uninterrupted_run(tmp_path, orchestrate):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = orchestrate(whole)
    assert proc.wait() == 0, proc.stdout.read()
    proc = orchestrate(killed)
    teacher_ckpt = None
    while proc.poll() is None:  # kill it inside the teacher's training
        teacher_ckpt = next(killed.glob("runs/teacher-*/checkpoint.pt"), None)
        if teacher_ckpt is not None:
            break
        time.sleep(0.05)
    assert teacher_ckpt is not None, "the teacher never wrote a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = {p.parent.name: p.read_text() for p in killed.glob(f"runs/*/{DONE}")}
    proc = orchestrate(killed)
    output = proc.communicate()[0]
    assert proc.returncode == 0, output
    assert "resuming at iteration" in output
    for name, done in finished_before.items():  # a finished run is not trained again
        assert (killed / "runs" / name / DONE).read_text() == done
        assert name not in TRAINED.findall(output)
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys() and len(a) == 3
    for name in a:
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name
    for run in killed.glob("runs/*"):
        if run.is_dir():
            its = [r["iteration"] for r in read_metrics(run)]
            assert len(its) == len(set(its))
    results = pd.read_csv(killed / "results.csv")
    assert not results.duplicated(["table", "row", "scale", "dataset", "metric", "seed"]).any()
    expected = pd.read_csv(whole / "results.csv").drop(columns=["commit"])
    assert results.drop(columns=["commit"]).equals(expected)


def test_two_orchestrators_on_one_folder_train_every_run_once(tmp_path, orchestrate):
    out = tmp_path / "shared"
    procs = [orchestrate(out), orchestrate(out)]
    outputs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = [name for text in outputs for name in TRAINED.findall(text)]
    runs = [p.parent.name for p in out.glob(f"runs/*/{MODEL}")]
    assert len(runs) == 3 and sorted(trained) == sorted(runs)  # each run trained by exactly one of them
    assert (out / "results.csv").exists()


def test_slurm_path_with_submitits_local_executor(tmp_path):
    from repro.plan.launchers.slurm import SlurmLauncher, SlurmOptions
    from repro.plan.orchestrate import Options, carry_out
    from repro.results.tabulate import tabulate
    from repro.specs import tables

    out = tmp_path / "slurm"
    options = Options(profile="smoke", estimate="none",
                      overrides=("optim.iters_per_epoch=10", "run.checkpoint_every=5"),
                      launcher=SlurmLauncher(SlurmOptions(cluster="local", time=10, gpus=0)))
    plan = carry_out(tables("quickstart"), out, options, log=lambda *a, **k: None)
    tabulate(plan, out, log=lambda *a, **k: None)
    teacher = next(r for r in plan.runs.values() if r.cfg.kind == "teacher")
    student = next(r for r in plan.runs.values() if r.cfg.kind == "student")
    import json

    teacher_done = json.loads((teacher.folder(out) / DONE).read_text())["finished"]
    student_config = (student.folder(out) / "config.json").stat().st_mtime
    assert time.mktime(time.strptime(teacher_done, "%Y-%m-%dT%H:%M:%S%z")) <= student_config
    assert set(pd.read_csv(out / "results.csv").row) == {"bicubic", "fsrcnn_baseline", "dssd_teacher",
                                                         "fsrcnn_dssd"}

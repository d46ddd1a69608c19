"""Fleets: runs of one structure trained together, each still its own run.

Tolerance (float reassociation in the batched kernels; a run alone is bit-identical run to run). Measured
on this suite's smoke profile (40 iterations, batch 8, 48 px), fleets of three FSRCNN seeds, Table 3's
three DSSD teachers (levels none / first_level / deep), their three students and two PISR teachers,
against the same runs trained alone: largest weight difference 3.6e-5, largest difference of the final
validation PSNR 1.4e-5 dB. The tests allow 5e-4 and 1e-3 dB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from repro.cli import main
from repro.errors import ReproError
from repro.runs.config import resolve
from repro.runs.folder import read_metrics, read_teacher
from repro.train.engine import train
from repro.train.fleet import Member, fleet_key, train_fleet

WEIGHT_TOL, PSNR_TOL = 5e-4, 1e-3
SHORT = ["optim.iters_per_epoch=20", "run.log_every=5", "run.checkpoint_every=10", "val.sets=sample"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=False)["state_dict"]


def _psnr(run: Path) -> float:
    return json.loads((run / "done.json").read_text())["validation"]["val_psnr_sample"]


def _assert_like_solo(fleet: Path, solo: Path) -> None:
    a, b = _weights(solo), _weights(fleet)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= WEIGHT_TOL
    assert abs(_psnr(fleet) - _psnr(solo)) <= PSNR_TOL
    rows, ref = read_metrics(fleet), read_metrics(solo)
    assert [list(r) for r in rows] == [list(r) for r in ref]  # its solo columns, at its solo iterations
    assert [r["lr"] for r in rows] == [r["lr"] for r in ref]
    assert sorted(p.name for p in fleet.iterdir()) == sorted(p.name for p in solo.iterdir())


def _solo_and_fleet(tmp_path: Path, cfgs, teachers=None) -> list[tuple[Path, Path]]:
    teachers = teachers or [None] * len(cfgs)
    pairs = []
    for i, cfg in enumerate(cfgs):
        pairs.append((tmp_path / f"fleet{i}", train(cfg, out=tmp_path / f"solo{i}", teacher_dir=teachers[i],
                                                    progress=False)))
    outcomes = train_fleet([Member(c, tmp_path / f"fleet{i}", teachers[i]) for i, c in enumerate(cfgs)],
                           progress=False)
    assert [o.state for o in outcomes] == ["trained"] * len(cfgs)
    return pairs


def test_members_of_a_seed_fleet_are_their_solo_runs(tmp_path, capsys):
    cfgs = [resolve("smoke", overrides=[*SHORT, f"run.seed={s}"]) for s in (0, 1, 2)]
    for fleet, solo in _solo_and_fleet(tmp_path, cfgs):
        _assert_like_solo(fleet, solo)
        done = json.loads((fleet / "done.json").read_text())
        assert done["fleet"]["members"] == 3 and fleet.name in done["fleet"]["names"]
    # `repro train` with the same settings finds a member finished and trains nothing
    before = (tmp_path / "fleet1" / "model.pt").stat().st_mtime_ns
    args = ["train", "baseline", "--profile", "smoke", "--out", str(tmp_path / "fleet1"), "--no-progress",
            *[x for s in [*SHORT, "run.seed=1"] for x in ("--set", s)]]
    capsys.readouterr()
    assert main(args) == 0
    assert "complete" in capsys.readouterr().out
    assert (tmp_path / "fleet1" / "model.pt").stat().st_mtime_ns == before
    # and a fleet finds them finished too
    again = train_fleet([Member(c, tmp_path / f"fleet{i}") for i, c in enumerate(cfgs)], progress=False)
    assert [o.state for o in again] == ["already finished"] * 3


@pytest.mark.slow
def test_table3_variants_train_as_one_fleet_teachers_and_students(tmp_path):
    """Table 3's teachers differ in their supervised levels (each logs and weighs only its own terms);
    their students differ in their teacher (three teachers of one structure, stacked)."""
    levels = ("none", "first_level", "deep")
    teachers = [resolve("smoke", kind="teacher", model="dssd_teacher",
                        overrides=[*SHORT, f"loss.levels={lv}"]) for lv in levels]
    assert len({fleet_key(c) for c in teachers}) == 1
    pairs = _solo_and_fleet(tmp_path / "t", teachers)
    for fleet, solo in pairs:
        _assert_like_solo(fleet, solo)
    assert "z_fre_2" not in read_metrics(pairs[1][0])[0] and "z_fre_2" in read_metrics(pairs[2][0])[0]
    students = [resolve("smoke", kind="student", overrides=SHORT, teacher=read_teacher(solo))
                for _, solo in pairs]
    for fleet, solo in _solo_and_fleet(tmp_path / "s", students, [str(s) for _, s in pairs]):
        _assert_like_solo(fleet, solo)


def test_a_member_whose_loss_turns_non_finite_stops_alone(tmp_path):
    good = [resolve("smoke", overrides=[*SHORT, f"run.seed={s}"]) for s in (0, 1)]
    bad = resolve("smoke", overrides=[*SHORT, "run.seed=2", "optim.lr=1e30", "optim.min_lr=1e29"])
    outcomes = train_fleet([Member(good[0], tmp_path / "a"), Member(bad, tmp_path / "bad"),
                            Member(good[1], tmp_path / "b")], progress=False)
    assert [o.state for o in outcomes] == ["trained", "failed", "trained"]
    assert outcomes[1].error.startswith("bad: the loss became") and "optim.grad_clip" in outcomes[1].error
    assert not (tmp_path / "bad" / "model.pt").exists() and not (tmp_path / "bad" / "done.json").exists()
    for i, name in enumerate("ab"):
        _assert_like_solo(tmp_path / name, train(good[i], out=tmp_path / f"solo{name}", progress=False))


def test_runs_of_other_structures_or_shapes_are_refused(tmp_path):
    base = resolve("smoke", overrides=SHORT)
    for other in (resolve("smoke", overrides=[*SHORT, "data.hr_patch=24"]),
                  resolve("smoke", overrides=[*SHORT, "model.shared_prelu=true"]),
                  resolve("smoke", kind="teacher", model="dssd_teacher", overrides=SHORT)):
        assert fleet_key(other) != fleet_key(base)
        with pytest.raises(ReproError, match="cannot train as one fleet"):
            train_fleet([Member(base, tmp_path / "a"), Member(other, tmp_path / "b")])
    assert fleet_key(resolve("smoke", overrides=[*SHORT, "run.seed=3", "optim.lr=1e-4"])) == fleet_key(base)


def test_solo_checkpoints_resume_in_a_fleet(tmp_path):
    """A member's checkpoint is a solo run's: two runs stopped at their checkpoint (iteration 10) finish
    as one fleet, each within the tolerance of its uninterrupted solo run."""
    cfgs = [resolve("smoke", overrides=[*SHORT, f"run.seed={s}"]) for s in (0, 1)]
    for i, cfg in enumerate(cfgs):
        run = train(cfg, out=tmp_path / f"r{i}", progress=False)
        (run / "done.json").unlink()
        (run / "model.pt").unlink()  # as if killed after its checkpoint at iteration 10
        assert torch.load(run / "checkpoint.pt", weights_only=False)["iteration"] == 10
    outcomes = train_fleet([Member(c, tmp_path / f"r{i}") for i, c in enumerate(cfgs)], progress=False)
    assert [o.state for o in outcomes] == ["trained", "trained"]
    for i, cfg in enumerate(cfgs):
        _assert_like_solo(tmp_path / f"r{i}", train(cfg, out=tmp_path / f"solo{i}", progress=False))


_FLEET_SCRIPT = """
import sys
from repro.runs.config import resolve
from repro.train.fleet import Member, train_fleet
out = sys.argv[1]
settings = ["optim.iters_per_epoch=400", "run.log_every=20", "run.checkpoint_every=20", "val.sets="]
members = [Member(resolve("smoke", overrides=[*settings, f"run.seed={s}"]), f"{out}/m{s}") for s in (0, 1, 2)]
print([o.state for o in train_fleet(members, progress=False)], flush=True)
"""


def _fleet_process(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _FLEET_SCRIPT, str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_killed_fleet_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    """SIGKILL after the first checkpoints, then again later; the fleet run to the end from there gives
    every member exactly the weights of a fleet never interrupted (torch.equal)."""
    for kill_at in (20, 60):
        proc = _fleet_process(tmp_path / "killed")
        checkpoints = [tmp_path / "killed" / f"m{s}" / "checkpoint.pt" for s in (0, 1, 2)]
        while not all(p.exists() and torch.load(p, weights_only=False)["iteration"] >= kill_at
                      for p in checkpoints):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not any((tmp_path / "killed" / f"m{s}" / "done.json").exists() for s in (0, 1, 2))
    for out in (tmp_path / "killed", tmp_path / "whole"):
        proc = _fleet_process(out)
        assert proc.wait() == 0 and "['trained', 'trained', 'trained']" in proc.stdout.read()
    for s in (0, 1, 2):
        a, b = _weights(tmp_path / "killed" / f"m{s}"), _weights(tmp_path / "whole" / f"m{s}")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert [r["loss"] for r in read_metrics(tmp_path / "killed" / f"m{s}")] == \
            [r["loss"] for r in read_metrics(tmp_path / "whole" / f"m{s}")]


@pytest.mark.slow
@pytest.mark.data
def test_reproduce_table3_with_fleets_gives_the_table_without(tmp_path, capsys):
    """`repro reproduce table3 --profile smoke --fleet 4`: Table 3's three teachers train as one fleet,
    their three students as another; every cell equals the one trained without fleets within the
    tolerance, and no run is trained twice."""
    import pandas as pd

    if not os.environ.get("REPRO_DATA"):
        pytest.skip("needs the benchmark images (REPRO_DATA): Table 3 measures Set5")
    common = ["table3", "--profile", "smoke", "--no-estimate", "--no-report"]
    assert main(["reproduce", *common, "--fleet", "off", "--out", str(tmp_path / "solo")]) == 0
    capsys.readouterr()
    assert main(["reproduce", *common, "--fleet", "4", "--out", str(tmp_path / "fleet")]) == 0
    text = capsys.readouterr().out
    assert "fleets: 6 of the runs train in 2 fleet(s)" in text and "8 run(s) carried out (2 fleet(s))" in text
    assert text.count(": finished 40 iterations") == 7 and text.count(": finished 80 iterations") == 1
    assert "fleet of 3: 3 trained, 0 found finished, 3 evaluated" in text
    solo, fleet = (pd.read_csv(tmp_path / name / "results.csv") for name in ("solo", "fleet"))
    key = ["table", "row", "scale", "dataset", "metric"]
    both = solo.merge(fleet, on=key, suffixes=("_solo", "_fleet"))
    assert len(both) == len(solo) == len(fleet) > 0
    psnr = both[both.metric == "psnr"]
    assert (psnr.value_solo - psnr.value_fleet).abs().max() <= PSNR_TOL
    capsys.readouterr()
    assert main(["reproduce", *common, "--fleet", "4", "--out", str(tmp_path / "fleet")]) == 0
    again = capsys.readouterr().out  # the second call trains nothing
    assert ": finished 40 iterations" not in again and "fleet of 3: 0 trained, 3 found finished" in again


def test_launchers_take_fleets_as_jobs():
    """A fleet job carries its members' runs and waits for every member's teacher: the order checks,
    readiness and Slurm's generations read those sets, whatever the job."""
    from repro.plan.execute import FleetJob, RunJob
    from repro.plan.launchers.base import check_order, ready, run_ids
    from repro.plan.launchers.slurm import generations

    def job(rid: str, teacher: str | None = None) -> RunJob:
        return RunJob(run_id=rid, name=rid, folder=f"/o/runs/{rid}", settings={}, teacher_id=teacher)

    teachers = FleetJob((job("t1"), job("t2")))
    students = FleetJob((job("s1", "t1"), job("s2", "t2")))
    alone = job("s3", "t1")
    jobs = [teachers, students, alone]
    check_order(jobs)
    assert run_ids(jobs) == {"t1", "t2", "s1", "s2", "s3"} and students.teacher_ids == {"t1", "t2"}
    assert not ready(students, run_ids(jobs), {"t1"}) and ready(students, run_ids(jobs), {"t1", "t2"})
    assert generations(jobs) == {teachers.run_id: 0, students.run_id: 1, alone.run_id: 1}
    with pytest.raises(ReproError, match="comes before its teacher"):
        check_order([students, teachers])
    with pytest.raises(ReproError, match="appears twice"):
        check_order([teachers, FleetJob((job("t2"), job("t3")))])

"""Run locks and launchers on a CPU: a run is trained once however many processes reach for it, and the
pool and submitit launchers carry out teachers before students, to the weights of a local launch."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import socket
import time
from pathlib import Path

import pytest
import torch

from repro.errors import ReproError
from repro.plan.execute import RunJob, execute, read_evaluation
from repro.plan.launchers import check_order
from repro.plan.launchers.local import LocalLauncher
from repro.plan.launchers.pool import PoolLauncher
from repro.plan.launchers.slurm import SlurmLauncher, SlurmOptions
from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.runs.locks import holder_path, read_holder, run_lock

from conftest import short_run

SHORT = short_run(6, 3)
SPAWN = multiprocessing.get_context("spawn")


def _cfgs():
    teacher = resolve("smoke", kind="teacher", model="dssd_teacher", overrides=SHORT)
    student = resolve("smoke", kind="student", teacher=teacher, overrides=SHORT)
    baseline = resolve("smoke", overrides=SHORT)
    return teacher, student, baseline


def _job(cfg, out: Path, teacher: RunJob | None = None, datasets=("sample",)) -> RunJob:
    name = cfg.default_run_name()
    return RunJob(run_id=cfg.hash(), name=name, folder=str(out / "runs" / name), settings=cfg.to_dict(),
                  teacher_id=teacher.run_id if teacher else None,
                  teacher_folder=teacher.folder if teacher else None, datasets=tuple(datasets),
                  iterations=cfg.optim.iterations)


def _jobs(out: Path) -> list[RunJob]:
    """Teacher (measured by no row), its student and a baseline, teachers first."""
    tcfg, scfg, bcfg = _cfgs()
    teacher = _job(tcfg, out, datasets=())
    return [teacher, _job(scfg, out, teacher), _job(bcfg, out)]


def _weights(folder) -> dict[str, torch.Tensor]:
    return torch.load(Path(folder) / "model.pt", weights_only=False)["state_dict"]


def _started(folder) -> int:
    return (Path(folder) / "config.json").stat().st_mtime_ns  # written when training starts


def _finished(folder) -> int:
    return (Path(folder) / "done.json").stat().st_mtime_ns  # written last


def _wait_for(predicate) -> None:
    """Poll until `predicate()`; the test's timeout (pytest-timeout) guards against a hang."""
    while not predicate():
        time.sleep(0.02)


# ---------------------------------------------------------------- children (spawned: module level)
def _child_execute(job: RunJob, barrier, log: str) -> None:
    with open(log, "w") as fh, contextlib.redirect_stdout(fh):
        barrier.wait()
        print(f"RESULT {execute(job)}", flush=True)


def _child_train(job: RunJob, barrier, log: str) -> None:
    from repro.runs.config import from_dict
    from repro.train.engine import train

    with open(log, "w") as fh, contextlib.redirect_stdout(fh):
        barrier.wait()
        train(from_dict(job.settings), out=job.folder, progress=False)  # a user's `repro train --out`
        print("RESULT train returned", flush=True)


def _child_hold(folder: str, log: str, hold_s: float) -> None:
    with open(log, "w", buffering=1) as fh, contextlib.redirect_stdout(fh), run_lock(folder):
        print("ACQUIRED", flush=True)
        time.sleep(hold_s)


# ---------------------------------------------------------------- locks
@pytest.mark.slow
@pytest.mark.parametrize("second", [_child_execute, _child_train], ids=["execute", "repro-train"])
def test_two_processes_train_a_run_once(tmp_path, second):
    _, _, bcfg = _cfgs()
    job = _job(bcfg, tmp_path, datasets=())
    barrier = SPAWN.Barrier(2)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [SPAWN.Process(target=_child_execute, args=(job, barrier, str(logs[0]))),
             SPAWN.Process(target=second, args=(job, barrier, str(logs[1])))]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    text = "".join(log.read_text() for log in logs)
    assert text.count("RESULT") == 2  # both returned
    assert text.count("finished 6 iterations") == 1, text  # ... and one of them trained
    assert [int(r["iteration"]) for r in read_metrics(Path(job.folder))] == [3, 6]
    assert not holder_path(job.folder).exists()


def test_a_waiter_names_the_holder(tmp_path):
    folder = tmp_path / "runs" / "baseline-x"
    log = tmp_path / "child.log"
    with run_lock(folder):
        me = read_holder(folder)
        assert me["pid"] == os.getpid() and me["run"] == "baseline-x"
        child = SPAWN.Process(target=_child_hold, args=(str(folder), str(log), 0))
        child.start()
        _wait_for(lambda: log.exists() and "waiting" in log.read_text())
        assert "ACQUIRED" not in log.read_text()
    child.join()
    assert child.exitcode == 0
    lines = log.read_text().splitlines()
    assert lines[0].startswith(f"waiting for the lock of baseline-x: held by pid {os.getpid()} on "
                               f"{socket.gethostname()} since ")
    assert lines[1] == "ACQUIRED"


def test_the_lock_of_a_dead_holder_is_taken_over(tmp_path):
    folder = tmp_path / "runs" / "teacher-y"
    log = tmp_path / "child.log"
    child = SPAWN.Process(target=_child_hold, args=(str(folder), str(log), 600))
    child.start()
    try:
        _wait_for(lambda: log.exists() and "ACQUIRED" in log.read_text())
        assert read_holder(folder)["pid"] == child.pid
    finally:
        child.kill()  # SIGKILL: no cleanup; the kernel releases the lock, the sidecar stays
        child.join()
    assert holder_path(folder).exists()
    messages: list[str] = []
    with run_lock(folder, log=messages.append):
        assert read_holder(folder)["pid"] == os.getpid()
    assert messages == [f"taking over the lock of teacher-y: its holder pid {child.pid} on "
                        f"{socket.gethostname()} died"]
    assert not holder_path(folder).exists()


def test_a_stale_sidecar_is_taken_over_and_the_lock_is_reentrant(tmp_path):
    folder = tmp_path / "runs" / "student-z"
    folder.parent.mkdir(parents=True)
    gone = SPAWN.Process(target=os.getpid)
    gone.start()
    gone.join()  # a pid that no longer exists
    holder_path(folder).write_text(json.dumps({"pid": gone.pid, "host": "node7", "since": "then"}))
    messages: list[str] = []
    with run_lock(folder, log=messages.append):
        with run_lock(folder, log=messages.append):  # reentrant: no wait, no message
            pass
        assert read_holder(folder)["pid"] == os.getpid()  # still held by the outer block
    assert messages == [f"taking over the lock of student-z: its holder pid {gone.pid} on node7 died"]
    assert not holder_path(folder).exists()


# ---------------------------------------------------------------- launchers
def test_jobs_must_come_teachers_first(tmp_path):
    teacher, student, baseline = _jobs(tmp_path)
    check_order([teacher, student, baseline])
    with pytest.raises(ReproError, match="before its teacher"):
        check_order([student, teacher])
    check_order([student, baseline])  # a teacher not among the jobs is finished already


@pytest.mark.slow
def test_pool_runs_teachers_first_to_the_weights_of_a_local_launch(tmp_path):
    local_jobs = _jobs(tmp_path / "local")
    assert [r.split(",")[0] for r in LocalLauncher(log=lambda s: None).run(local_jobs)] == ["trained"] * 3

    jobs = _jobs(tmp_path / "pool")
    teacher, student, baseline = jobs
    log: list[str] = []
    results = PoolLauncher(2, log=log.append, gpus=[]).run(jobs)
    assert results == ["trained", "trained, evaluated", "trained, evaluated"]
    # the student was handed to the pool only after its teacher finished, and started after that
    finished_teacher = next(i for i, line in enumerate(log) if line.startswith(f"[pool] {teacher.name}: "))
    assert log.index(f"[pool] queued {student.name}") > finished_teacher
    assert log.index(f"[pool] queued {baseline.name}") < finished_teacher  # ... the baseline did not wait
    assert _started(student.folder) >= _finished(teacher.folder)
    for job, ref in zip(jobs, local_jobs, strict=True):
        a, b = _weights(job.folder), _weights(ref.folder)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), job.name
    assert read_evaluation(student.folder) == read_evaluation(local_jobs[1].folder)
    # launched again: everything is found finished, nothing is retrained
    stamp = (Path(student.folder) / "model.pt").stat().st_mtime_ns
    assert PoolLauncher(2, log=lambda s: None, gpus=[]).run(jobs) == ["found finished"] * 3
    assert (Path(student.folder) / "model.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_failed_run_stops_the_pool_naming_it(tmp_path):
    _, scfg, _ = _cfgs()
    orphan = _job(scfg, tmp_path)  # its teacher is "finished" (not among the jobs) but not there
    orphan = RunJob(**{**orphan.__dict__, "teacher_id": "0" * 64, "teacher_folder": str(tmp_path / "no")})
    with pytest.raises(ReproError, match=f"run {orphan.name} failed.*not the teacher"):
        PoolLauncher(1, log=lambda s: None, gpus=[]).run([orphan])


@pytest.mark.slow
def test_submitit_local_executor_runs_teacher_then_student(tmp_path):
    teacher, student, _ = _jobs(tmp_path)
    log: list[str] = []
    launcher = SlurmLauncher(SlurmOptions(cluster="local", gpus=0, cpus_per_task=1, time=10),
                             folder=tmp_path / "slurm", log=log.append)
    assert launcher.run([teacher, student]) == ["trained", "trained, evaluated"]
    assert _started(student.folder) >= _finished(teacher.folder)  # the student's job waited
    assert set(read_evaluation(student.folder)) == {"sample"}
    assert any((tmp_path / "slurm").rglob("*_log.out"))  # submitit kept each job's log


class _FakeJob:
    def __init__(self, job_id: str, result: str) -> None:
        self.job_id, self._result = job_id, result

    def result(self) -> str:
        return self._result


class _FakeSlurm:
    """Records what an AutoExecutor on a Slurm cluster would be asked (no sbatch here)."""

    cluster = "slurm"

    def __init__(self) -> None:
        self.params: dict = {}
        self.submitted: list[tuple[str, dict]] = []

    def update_parameters(self, **params) -> None:
        self.params.update(params)

    def submit(self, fn, job: RunJob) -> _FakeJob:
        self.submitted.append((job.name, dict(self.params)))
        return _FakeJob(str(100 + len(self.submitted)), "trained")


def test_on_slurm_a_students_job_depends_on_its_teachers(tmp_path):
    teacher, student, baseline = _jobs(tmp_path)
    fake = _FakeSlurm()
    options = SlurmOptions(partition="gpu", time=90, gpus=1, account="lab", cpus_per_task=6,
                           additional={"qos": "high"})
    assert SlurmLauncher(options, executor=fake, log=lambda s: None).run([teacher, student, baseline]) \
        == ["trained"] * 3
    (tname, tparams), (sname, sparams), (bname, bparams) = fake.submitted
    assert (tname, sname, bname) == (teacher.name, student.name, baseline.name)
    assert tparams["slurm_additional_parameters"] == {"qos": "high"}
    assert sparams["slurm_additional_parameters"] == {"qos": "high", "dependency": "afterok:101",
                                                      "kill_on_invalid_dep": "yes"}
    assert bparams["slurm_additional_parameters"] == {"qos": "high"}
    assert tparams["slurm_partition"] == "gpu" and tparams["slurm_account"] == "lab"
    assert (tparams["timeout_min"], tparams["gpus_per_node"], tparams["cpus_per_task"]) == (90, 1, 6)
    nowait = SlurmLauncher(SlurmOptions(wait=False), executor=_FakeSlurm(), log=lambda s: None)
    assert nowait.run([teacher, student]) == ["submitted as job 101", "submitted as job 102"]

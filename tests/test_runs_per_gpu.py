"""`--runs-per-gpu K` on a CPU: K processes share a device (pinned to one GPU each slot when there are
GPUs, mocked here), every run of a small table is trained exactly once, teachers before students, also
with two launches over one folder; the Slurm launcher packs K runs into one job."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.cli import build_parser, main
from repro.errors import ReproError
from repro.plan.execute import RunJob
from repro.plan.launchers import launcher_from_arguments, pool
from repro.plan.launchers.local import LocalLauncher
from repro.plan.launchers.pool import PoolLauncher, _init_worker, _visible_gpus, worker_gpu
from repro.plan.launchers.slurm import SlurmLauncher, SlurmOptions, SlurmPack, make_units
from repro.plan.orchestrate import jobs_of
from repro.plan.runs import make_plan
from repro.runs.folder import DONE
from repro.specs import tables

from conftest import short_run

SHORT = tuple(short_run(6, 3))
SPAWN = multiprocessing.get_context("spawn")
DONE_LINE = re.compile(r"^\[pool\] (\S+): (trained|found finished)[^(]*\((\d+)/\d+; worker (\d+) pid (\d+)"
                       r"(?: GPU (\S+))?\)$")


def _table3_jobs(out: Path) -> list[RunJob]:
    """Table 3 at the smoke profile cut to 6 iterations: 3 teachers, their 3 students, 2 baselines; no
    evaluation (Set5 is not here), which leaves the training, the point of these tests."""
    plan = make_plan(tables("table3"), "smoke", overrides=SHORT)
    return [replace(job, datasets=()) for job in jobs_of(plan, out, None)]


def _interval(folder: str) -> tuple[int, int]:
    """(started, finished): config.json is written when training starts, done.json last."""
    return (Path(folder, "config.json").stat().st_mtime_ns, Path(folder, DONE).stat().st_mtime_ns)


# ---------------------------------------------------------------- pinning
def test_worker_gpu_gives_each_slot_k_workers_on_its_gpu():
    assert [worker_gpu(k, 1, ["0"]) for k in range(4)] == ["0"] * 4  # one GPU, K=4
    assert [worker_gpu(k, 2, ["0", "1"]) for k in range(8)] == ["0", "1"] * 4  # 2 GPUs, K=4: 4 each
    assert {worker_gpu(k, 2, ["0", "1", "2", "3"]) for k in range(6)} == {"0", "1"}  # --jobs 2: 2 GPUs
    assert worker_gpu(3, 2, []) is None  # a CPU


def test_init_worker_pins_the_gpu_and_divides_the_threads(monkeypatch):
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    for var in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    counter = SPAWN.Value("i", 0)
    seen = []
    for _ in range(4):  # --jobs 2 --runs-per-gpu 2 on GPUs 4 and 6
        _init_worker(counter, ["4", "6"], 2, 3)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["4", "6", "4", "6"] and threads == [3] * 4 and os.environ["OMP_NUM_THREADS"] == "3"
    assert pool._WORKER == {"index": 3, "gpu": "6"}


def test_visible_gpus_with_a_mocked_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert _visible_gpus() == ["4", "6"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert _visible_gpus() == ["0", "1"]


def _launcher(*argv: str):
    """The launcher `repro reproduce table3 ARGV` would use."""
    return launcher_from_arguments(build_parser().parse_args(["reproduce", "table3", *argv]), log=print)


def test_k_must_be_positive_and_local_with_k_is_a_pool():
    with pytest.raises(ReproError, match="--runs-per-gpu must be at least 1"):
        PoolLauncher(1, runs_per_gpu=0)
    assert isinstance(_launcher(), LocalLauncher)
    for argv in (["--runs-per-gpu", "3"], ["--launcher", "local", "--runs-per-gpu", "3"]):
        launcher = _launcher(*argv)
        assert isinstance(launcher, PoolLauncher) and launcher.processes == 3
    assert _launcher("--launcher", "pool", "--jobs", "2", "--runs-per-gpu", "4").processes == 8
    slurm = _launcher("--launcher", "slurm", "--runs-per-gpu", "4")
    assert isinstance(slurm, SlurmLauncher) and slurm.pack == 4
    assert slurm.options.time == SlurmOptions().time  # one default for --time and the options


# ---------------------------------------------------------------- K processes, each run once
@pytest.mark.slow
def test_k_processes_on_one_gpu_train_every_run_once_teachers_first(tmp_path):
    jobs = _table3_jobs(tmp_path)
    log: list[str] = []
    # one (mocked) GPU shared by K=2 processes; smoke runs train on the CPU whatever CUDA_VISIBLE_DEVICES
    results = PoolLauncher(1, log=log.append, gpus=["0"], runs_per_gpu=2).run(jobs)
    assert log[0].startswith(f"[pool] {len(jobs)} run(s) on 2 worker(s), 2 per GPU (0), ")
    assert results == ["trained"] * len(jobs)
    done = [m.groups() for line in log if (m := DONE_LINE.match(line))]
    assert sorted(name for name, *_ in done) == sorted(j.name for j in jobs)  # each run once
    assert {(worker, gpu) for *_, worker, _pid, gpu in done} == {("0", "0"), ("1", "0")}  # K=2 on GPU 0
    assert len({pid for *_, pid, _gpu in done}) == 2  # two processes
    assert all((Path(j.folder) / DONE).exists() for j in jobs)
    for job in jobs:  # a student started after its teacher finished
        if job.teacher_folder:
            assert _interval(job.folder)[0] >= _interval(job.teacher_folder)[1]
    spans = sorted(_interval(j.folder) for j in jobs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # two runs trained at once
    # launched again: nothing is trained
    assert PoolLauncher(1, log=lambda s: None, gpus=[], runs_per_gpu=2).run(jobs) == \
        ["found finished"] * len(jobs)


def _child_launch(jobs: list[RunJob], log_path: str, barrier) -> None:
    with open(log_path, "w") as fh, contextlib.redirect_stdout(fh):
        barrier.wait()
        results = PoolLauncher(1, log=lambda s: print(s, flush=True), gpus=[], runs_per_gpu=2).run(jobs)
        print(f"RESULTS {results}", flush=True)


@pytest.mark.slow
def test_two_launches_with_k_over_one_folder_train_every_run_once(tmp_path):
    jobs = _table3_jobs(tmp_path / "shared")
    barrier = SPAWN.Barrier(2)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [SPAWN.Process(target=_child_launch, args=(jobs, str(log), barrier)) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    texts = [log.read_text() for log in logs]
    assert [p.exitcode for p in procs] == [0, 0], [t[-3000:] for t in texts]
    trained = [m.group(1) for t in texts for line in t.splitlines()
               if (m := DONE_LINE.match(line)) and m.group(2) == "trained"]
    assert sorted(trained) == sorted(j.name for j in jobs)  # each run trained by exactly one process
    assert all(t.count("RESULTS") == 1 for t in texts)


@pytest.mark.slow
def test_reproduce_runs_per_gpu_launches_k_workers(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["reproduce", "quickstart", "--profile", "smoke", "--no-estimate", "--no-report",
                 "--runs-per-gpu", "2", "--out", str(out), "--set", "optim.iters_per_epoch=10",
                 "--set", "run.checkpoint_every=5"]) == 0
    text = capsys.readouterr().out
    assert "[pool] 3 run(s) on 2 worker(s)" in text
    done = [m.groups() for line in text.splitlines() if (m := DONE_LINE.match(line))]
    assert sorted(g[1] for g in done) == ["trained"] * 3
    assert (out / "results.csv").exists()


def test_reproduce_passes_k_to_the_orchestration(monkeypatch, tmp_path, capsys):
    import repro.plan.orchestrate

    seen = {}

    def fake_carry_out(tables_, out, options, log=print):
        seen["options"] = options
        raise ReproError("stop here")

    monkeypatch.setattr(repro.plan.orchestrate, "carry_out", fake_carry_out)
    assert main(["reproduce", "table3", "--runs-per-gpu", "4", "--out", str(tmp_path)]) == 2
    launcher = seen["options"].launcher
    assert isinstance(launcher, PoolLauncher) and launcher.runs_per_gpu == 4
    assert main(["reproduce", "table3", "--runs-per-gpu", "3", "--launcher", "slurm",
                 "--out", str(tmp_path)]) == 2
    assert seen["options"].launcher.options.runs_per_gpu == 3
    capsys.readouterr()
    seen.clear()
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "table3", "--runs-per-gpu", "0", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and not seen  # refused before any work
    assert capsys.readouterr().err.count("\n") == 1


# ---------------------------------------------------------------- slurm: K runs per job
class _FakeJob:
    def __init__(self, job_id: str, result) -> None:
        self.job_id, self._result = job_id, result

    def result(self):
        return self._result


class _FakeSlurm:
    """Records what an AutoExecutor on a Slurm cluster would be asked (no sbatch here)."""

    cluster = "slurm"

    def __init__(self) -> None:
        self.params: dict = {}
        self.submitted: list[tuple[object, object, dict]] = []

    def update_parameters(self, **params) -> None:
        self.params.update(params)

    def submit(self, fn, arg) -> _FakeJob:
        self.submitted.append((fn, arg, dict(self.params)))
        result = ["trained"] * len(arg) if isinstance(arg, list) else "trained"
        return _FakeJob(str(100 + len(self.submitted)), result)


def test_slurm_packs_k_runs_per_job_students_after_their_teachers(tmp_path):
    jobs = _table3_jobs(tmp_path)  # teachers t1..t3, students s1..s3, baselines b1, b2
    fake = _FakeSlurm()
    launcher = SlurmLauncher(SlurmOptions(runs_per_gpu=4, gpus=1), executor=fake, log=lambda s: None)
    assert launcher.run(jobs) == ["trained"] * len(jobs)
    packs = [[j.name for j in arg] for _, arg, _ in fake.submitted]
    first = [j.name for j in jobs if j.teacher_id is None]
    assert packs == [first[:4], first[4:], [j.name for j in jobs if j.teacher_id]]  # by generation
    assert all(isinstance(fn, SlurmPack) and fn.runs_per_gpu == 4 for fn, _, _ in fake.submitted)
    deps = [params["slurm_additional_parameters"].get("dependency") for _, _, params in fake.submitted]
    assert deps == [None, None, "afterok:101"]  # the students' pack waits for the teachers' job
    assert all(params["gpus_per_node"] == 1 for _, _, params in fake.submitted)
    assert [len(u.jobs) for u in make_units(jobs, 1)] == [1] * len(jobs)  # K=1: one job per run


@pytest.mark.slow
def test_slurm_packs_run_through_submitits_local_executor(tmp_path):
    every = _table3_jobs(tmp_path)
    teacher = every[0]
    student = next(j for j in every if j.teacher_id == teacher.run_id)
    baseline = next(j for j in every if j.name.startswith("baseline"))
    jobs = [teacher, student, baseline]
    log: list[str] = []
    options = SlurmOptions(cluster="local", gpus=0, cpus_per_task=2, time=10, runs_per_gpu=2)
    launcher = SlurmLauncher(options, folder=tmp_path / "slurm", log=log.append)
    assert launcher.run(jobs) == ["trained"] * 3
    waves = [line for line in log if line.startswith("[slurm] wave")]
    assert waves == ["[slurm] wave 1: 2 run(s) in 1 job(s)", "[slurm] wave 2: 1 run(s) in 1 job(s)"]
    assert _interval(student.folder)[0] >= _interval(teacher.folder)[1]

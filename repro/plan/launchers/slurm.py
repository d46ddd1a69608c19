"""The `slurm` launcher (through `submitit`): one job per run, or with `--runs-per-gpu K` one job per
pack of K runs sharing the job's GPU.

On a Slurm cluster every job is submitted at once, a job holding students after the jobs of their
teachers (`afterok`, and Slurm cancels it if a teacher fails); on any other submitit executor
(`cluster="local"`, for tests) the jobs go in waves: every job whose teachers finished, then wait.

Packs: one Slurm job with one GPU carries out its K runs at once as a pool of K processes on that GPU
(`PoolLauncher(1, runs_per_gpu=K)` inside the job), as `--launcher pool` does on one machine. The runs
are packed by generation (teachers with teachers, students with students), so no run of a pack waits for
another of the same pack; a pack of students depends on the packs of its teachers. A pack that reaches
its time limit is requeued, like a single run: finished runs are found finished, the others resume.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.plan.execute import Job, execute
from repro.plan.launchers.base import (
    LauncherEntry,
    Log,
    at_least_one,
    check_at_least_one,
    check_order,
    ready,
    register_launcher,
    run_ids,
)
from repro.plan.launchers.pool import PoolLauncher

SLURM_DIR = "slurm"


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job asks for (`--partition`, `--time` in minutes, GPUs, `--account`, CPUs).

    `cluster`: "slurm" submits with sbatch; "local" runs the jobs as local processes through submitit
    (no scheduler: for tests and a machine without Slurm). `folder`: submitit's logs and pickles
    (default `<out>/slurm`). `wait`: wait for the jobs (else return once all are submitted: Slurm's
    dependencies order them). `additional`: further `#SBATCH` settings, e.g. {"qos": "high"}.
    `runs_per_gpu`: runs per job and GPU (packs; 1: one job per run).
    """

    partition: str | None = None
    time: int = 3 * 24 * 60  # minutes: a paper-profile run of the heavier networks takes days
    gpus: int = 1
    account: str | None = None
    cpus_per_task: int = 8
    mem_gb: float | None = None
    cluster: str = "slurm"
    folder: str | None = None
    wait: bool = True
    additional: dict[str, Any] = field(default_factory=dict)
    runs_per_gpu: int = 1


class SlurmRun:
    """What each Slurm job of one run runs: `execute(job)`. Checkpointable: a job that reaches its time
    limit (or is preempted) is requeued, and the run resumes from its last checkpoint."""

    def __call__(self, job: Job) -> str:
        return execute(job, progress=False)

    def checkpoint(self, job: Job) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


class SlurmPack:
    """What the Slurm job of a pack runs: its runs at once, `runs_per_gpu` processes per GPU of the job
    (a pool; on a job without GPUs, that many processes on its CPUs). Checkpointable like `SlurmRun`."""

    def __init__(self, runs_per_gpu: int, gpus: int = 1) -> None:
        self.runs_per_gpu, self.gpus = runs_per_gpu, max(1, gpus)

    def __call__(self, jobs: list[Job]) -> list[str]:
        return PoolLauncher(self.gpus, log=lambda s: print(s, flush=True),
                            runs_per_gpu=self.runs_per_gpu).run(jobs)

    def checkpoint(self, jobs: list[Job]) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, jobs)


@dataclass(frozen=True)
class Unit:
    """One Slurm job: one run, or a pack of runs."""

    name: str
    jobs: tuple[Job, ...]
    packed: bool = False


def generations(jobs: Sequence[Job]) -> dict[str, int]:
    """Per job: 0 when none of its teachers is among the jobs, else its latest teacher's + 1."""
    of_run: dict[str, int] = {}
    gen: dict[str, int] = {}
    for job in jobs:  # teachers first (check_order)
        gen[job.run_id] = max((of_run[t] + 1 for t in job.teacher_ids if t in of_run), default=0)
        of_run.update({i: gen[job.run_id] for i in job.run_ids})
    return gen


def make_units(jobs: Sequence[Job], pack: int) -> list[Unit]:
    """One unit per run (`pack` 1), else packs of up to `pack` runs of one generation, in order."""
    if pack <= 1:
        return [Unit(job.name, (job,)) for job in jobs]
    gen = generations(jobs)
    units: list[Unit] = []
    for g in sorted(set(gen.values())):
        same = [j for j in jobs if gen[j.run_id] == g]
        for i in range(0, len(same), pack):
            part = tuple(same[i:i + pack])
            units.append(Unit(f"pack{len(units) + 1}-{len(part)}runs", part, packed=True))
    return units


def _is_slurm(executor: Any) -> bool:
    import submitit

    return isinstance(executor, submitit.SlurmExecutor) or getattr(executor, "cluster", None) == "slurm"


def default_slurm_folder(jobs: Sequence[Job]) -> Path:
    """`<out>/slurm` for jobs whose folders are `<out>/runs/<name>`."""
    if not jobs:
        return Path(SLURM_DIR)
    return Path(jobs[0].folder).parent.parent / SLURM_DIR


class SlurmLauncher:
    """One submitit job per run (or per pack of `options.runs_per_gpu` runs); students after teachers
    (Slurm dependencies, or waves elsewhere).

    `executor`: a ready submitit executor (AutoExecutor, SlurmExecutor, LocalExecutor, ...) to use
    instead of `submitit.AutoExecutor(folder, cluster=options.cluster)`.
    """

    def __init__(self, options: SlurmOptions | None = None, *, folder: str | os.PathLike[str] | None = None,
                 executor: Any = None, log: Log = print) -> None:
        self.options = options or SlurmOptions()
        if self.options.cluster not in ("slurm", "local", "debug"):
            raise ReproError(f"unknown submitit cluster {self.options.cluster!r}; choose slurm or local")
        check_at_least_one("--runs-per-gpu", self.options.runs_per_gpu)
        self.folder = folder if folder is not None else self.options.folder
        self.executor, self.log = executor, log

    @property
    def pack(self) -> int:
        """Runs per job: `runs_per_gpu` on each of the job's GPUs (1: one job per run)."""
        o = self.options
        return 1 if o.runs_per_gpu == 1 else o.runs_per_gpu * max(1, o.gpus)

    # ---- executor
    def _make_executor(self, jobs: Sequence[Job]) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ReproError("--launcher slurm needs submitit: pip install submitit") from exc
        folder = Path(self.folder) if self.folder is not None else default_slurm_folder(jobs)
        return submitit.AutoExecutor(folder=folder / "%j", cluster=self.options.cluster)

    def _parameters(self, executor: Any, name: str, after: list[str]) -> dict[str, Any]:
        import submitit

        o = self.options
        extra = dict(o.additional)
        if after:
            # a failed teacher: Slurm cancels the student instead of leaving it pending forever
            extra.update(dependency="afterok:" + ":".join(after), kill_on_invalid_dep="yes")
        if isinstance(executor, submitit.SlurmExecutor):
            params = {"job_name": name, "time": o.time, "gpus_per_node": o.gpus,
                      "cpus_per_task": o.cpus_per_task, "partition": o.partition, "account": o.account,
                      "mem": f"{int(o.mem_gb * 1024)}MB" if o.mem_gb else None,
                      "additional_parameters": extra}
        else:  # AutoExecutor (or alike): generic names, plus slurm_* that other clusters ignore
            params = {"name": name, "timeout_min": o.time, "gpus_per_node": o.gpus,
                      "cpus_per_task": o.cpus_per_task, "mem_gb": o.mem_gb, "slurm_partition": o.partition,
                      "slurm_account": o.account, "slurm_additional_parameters": extra}
        return {k: v for k, v in params.items() if v is not None}

    def _submit(self, executor: Any, unit: Unit, after: list[str] | None = None) -> Any:
        after = after or []
        executor.update_parameters(**self._parameters(executor, unit.name, after))
        if unit.packed:
            pack = SlurmPack(self.options.runs_per_gpu, self.options.gpus)
            submitted = executor.submit(pack, list(unit.jobs))
            what = f"{unit.name} ({', '.join(j.name for j in unit.jobs)})"
        else:
            submitted = executor.submit(SlurmRun(), unit.jobs[0])
            what = unit.name
        deps = (f" (after job{'s' if len(after) > 1 else ''} {', '.join(after)})" if after else "")
        self.log(f"[slurm] submitted {what} as job {submitted.job_id}{deps}")
        return submitted

    # ---- run
    def run(self, jobs: Sequence[Job]) -> list[str]:
        check_order(jobs)
        if not jobs:
            return []
        units = make_units(jobs, self.pack)
        executor = self.executor if self.executor is not None else self._make_executor(jobs)
        if _is_slurm(executor):
            results = self._with_dependencies(executor, units)
        else:
            results = self._in_waves(executor, units)
        return [results[j.run_id] for j in jobs]

    def _with_dependencies(self, executor: Any, units: list[Unit]) -> dict[str, str]:
        """Submit every job now, each after the jobs of its runs' teachers (Slurm orders them)."""
        job_of: dict[str, Any] = {}  # run id -> its submitted job
        submitted: list[tuple[Unit, Any]] = []
        for unit in units:
            own = run_ids(unit.jobs)
            after: list[str] = []
            for job in unit.jobs:
                for teacher_id in sorted(job.teacher_ids - own):
                    teacher = job_of.get(teacher_id)
                    if teacher is not None and str(teacher.job_id) not in after:
                        after.append(str(teacher.job_id))
            sub = self._submit(executor, unit, after)
            job_of.update({i: sub for i in own})
            submitted.append((unit, sub))
        if not self.options.wait:
            return {j.run_id: f"submitted as job {sub.job_id}" for unit, sub in submitted for j in unit.jobs}
        return self._collect(submitted)

    def _in_waves(self, executor: Any, units: list[Unit]) -> dict[str, str]:
        """No dependencies outside Slurm: submit every job whose teachers finished, wait, repeat."""
        ids = run_ids([j for u in units for j in u.jobs])
        finished: set[str] = set()
        results: dict[str, str] = {}
        waiting = list(units)
        wave_no = 0
        while waiting:
            wave = [u for u in waiting
                    if all(ready(j, ids - run_ids(u.jobs), finished) for j in u.jobs)]
            if not wave:
                names = ", ".join(j.name for u in waiting for j in u.jobs)
                raise ReproError(f"runs {names} wait for teachers that never run")
            wave_no += 1
            self.log(f"[slurm] wave {wave_no}: {sum(len(u.jobs) for u in wave)} run(s)"
                     + (f" in {len(wave)} job(s)" if self.pack > 1 else ""))
            results.update(self._collect([(unit, self._submit(executor, unit)) for unit in wave]))
            finished.update(run_ids([j for u in wave for j in u.jobs]))
            waiting = [u for u in waiting if u not in wave]
        return results

    def _collect(self, submitted: list[tuple[Unit, Any]]) -> dict[str, str]:
        """Wait for every submitted job; raise naming the runs that failed (after all have ended)."""
        results: dict[str, str] = {}
        failed: list[str] = []
        for unit, sub in submitted:
            try:
                result = sub.result()
            except Exception as exc:
                names = ", ".join(j.name for j in unit.jobs)
                failed.append(f"{names} (job {sub.job_id}): {_tail(exc)}; log: {_log_path(sub)}")
                results.update({j.run_id: "failed" for j in unit.jobs})
                continue
            answers = list(result) if unit.packed else [result]
            for job, answer in zip(unit.jobs, answers, strict=True):
                self.log(f"[slurm] {job.name} (job {sub.job_id}): {answer}")
                results[job.run_id] = answer
        if failed:
            raise ReproError("run(s) failed:\n  " + "\n  ".join(failed))
        return results


def _tail(exc: BaseException, lines: int = 3) -> str:
    text = str(exc).strip().splitlines()
    return " / ".join(text[-lines:]) if text else type(exc).__name__


def _log_path(job: Any) -> str:
    try:
        return str(job.paths.stderr)
    except Exception:  # a fake or foreign job object
        return "?"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    default = SlurmOptions()
    group = parser.add_argument_group("slurm (with --launcher slurm)")
    group.add_argument("--partition", help="Slurm partition")
    group.add_argument("--time", type=at_least_one, default=default.time,
                       help=f"minutes per job (default {default.time} = {default.time / 1440:g} days)")
    group.add_argument("--gpus-per-job", type=int, default=default.gpus,
                       help=f"GPUs per job (default {default.gpus})")
    group.add_argument("--cpus-per-job", type=at_least_one, default=default.cpus_per_task,
                       help=f"CPUs per job (default {default.cpus_per_task})")
    group.add_argument("--account", help="Slurm account")


def _build(args: argparse.Namespace, log: Log) -> SlurmLauncher:
    options = SlurmOptions(partition=args.partition, time=args.time, gpus=args.gpus_per_job,
                           cpus_per_task=args.cpus_per_job, account=args.account,
                           runs_per_gpu=args.runs_per_gpu)
    return SlurmLauncher(options, log=log)


ENTRY = register_launcher(LauncherEntry(
    name="slurm", help="one Slurm job per run, or per --runs-per-gpu runs (submitit)",
    add_arguments=_add_arguments, build=_build))

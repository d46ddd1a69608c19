"""Carry out a list of `RunJob`s (teachers before their students) in one of three ways:

- `local`: one after another in this process;
- `pool` (`--jobs N`): N worker processes; a job is handed to the pool once its teacher finished. With
  GPUs each worker owns one (worker k -> GPU k mod count, through CUDA_VISIBLE_DEVICES); on a CPU the
  cores are split between the workers. A failed run stops the launch: runs not started are dropped,
  runs in progress are stopped (they resume from their last checkpoint next time), finished runs stay;
- `slurm` (through `submitit`): one job per run; on a Slurm cluster a student's job depends on its
  teacher's (`afterok`, and Slurm cancels it if the teacher fails); on any other submitit executor
  (`cluster="local"`, for tests) the jobs go in waves: every job whose teacher finished, then wait.

Every launcher returns what each run did (`execute`'s answer), in the order of the jobs. Each run is
carried out under its lock (`repro.runs.locks`), so two launches over one folder never train a run twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from repro.errors import ReproError
from repro.plan.execute import RunJob, execute

LAUNCHERS = ("local", "pool", "slurm")
SLURM_DIR = "slurm"

Log = Callable[[str], Any]


class Launcher(Protocol):
    def run(self, jobs: Sequence[RunJob]) -> list[str]: ...


# ---------------------------------------------------------------- order
def check_order(jobs: Sequence[RunJob]) -> None:
    """Refuse jobs where a student comes before its teacher, or a run appears twice."""
    seen: set[str] = set()
    ids = {j.run_id for j in jobs}
    for job in jobs:
        if job.run_id in seen:
            raise ReproError(f"run {job.name} appears twice among the jobs")
        if job.teacher_id in ids and job.teacher_id not in seen:
            raise ReproError(f"run {job.name} comes before its teacher; give the jobs teachers first")
        seen.add(job.run_id)


def _ready(job: RunJob, ids: set[str], finished: set[str]) -> bool:
    """A job may start when it has no teacher, its teacher is not among the jobs (done already), or its
    teacher's job finished."""
    return job.teacher_id is None or job.teacher_id not in ids or job.teacher_id in finished


def _failure(job: RunJob, exc: BaseException) -> ReproError:
    what = str(exc) if isinstance(exc, ReproError) else f"{type(exc).__name__}: {exc}"
    return ReproError(f"run {job.name} failed ({job.folder}): {what}")


# ---------------------------------------------------------------- local
class LocalLauncher:
    """One run after another in this process."""

    def __init__(self, log: Log = print, progress: bool | None = None) -> None:
        self.log, self.progress = log, progress

    def run(self, jobs: Sequence[RunJob]) -> list[str]:
        check_order(jobs)
        results = []
        for i, job in enumerate(jobs, 1):
            self.log(f"[{i}/{len(jobs)}] {job.name}")
            try:
                result = execute(job, progress=self.progress)
            except Exception as exc:
                raise _failure(job, exc) from exc
            self.log(f"[{i}/{len(jobs)}] {job.name}: {result}")
            results.append(result)
        return results


# ---------------------------------------------------------------- pool
def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (empty without CUDA)."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [v.strip() for v in visible.split(",") if v.strip()] if visible else []
    return names[:count] if len(names) >= count else [str(i) for i in range(count)]


def _init_worker(counter: Any, gpus: list[str], threads: int) -> None:
    """Give this worker its GPU (before anything initialises CUDA) or its share of the cores."""
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ["MKL_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


def _work(job: RunJob) -> str:
    return execute(job, progress=False)


class PoolLauncher:
    """`workers` processes (spawned), each carrying out one run at a time."""

    def __init__(self, workers: int, log: Log = print, gpus: Sequence[str] | None = None) -> None:
        if workers < 1:
            raise ReproError(f"--jobs must be at least 1, got {workers}")
        self.workers, self.log = workers, log
        self.gpus = list(gpus) if gpus is not None else None

    def run(self, jobs: Sequence[RunJob]) -> list[str]:
        import multiprocessing

        check_order(jobs)
        if not jobs:
            return []
        ctx = multiprocessing.get_context("spawn")
        gpus = self.gpus if self.gpus is not None else _visible_gpus()
        threads = max(1, _cpu_count() // self.workers)
        where = (f"one GPU each ({', '.join(gpus)})" if gpus else f"{threads} CPU thread(s) each")
        self.log(f"[pool] {len(jobs)} run(s) on {self.workers} worker(s), {where}")
        ids = {j.run_id for j in jobs}
        index = {j.run_id: i for i, j in enumerate(jobs)}
        results: list[str | None] = [None] * len(jobs)
        finished: set[str] = set()
        waiting = list(jobs)
        running: dict[Future[str], RunJob] = {}
        pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(ctx.Value("i", 0), gpus, threads))
        try:
            while waiting or running:
                for job in [j for j in waiting if _ready(j, ids, finished)]:
                    waiting.remove(job)
                    running[pool.submit(_work, job)] = job
                    self.log(f"[pool] queued {job.name}")
                if not running:  # cannot happen with check_order; guard against a silent hang
                    raise ReproError(f"runs {', '.join(j.name for j in waiting)} wait for teachers that "
                                     "never run")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        result = future.result()
                    except BaseException as exc:
                        self._stop(pool, running, waiting)
                        raise _failure(job, exc) from exc
                    finished.add(job.run_id)
                    results[index[job.run_id]] = result
                    self.log(f"[pool] {job.name}: {result} ({len(finished)}/{len(jobs)})")
        except KeyboardInterrupt:
            self._stop(pool, running, waiting)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [r or "" for r in results]

    def _stop(self, pool: ProcessPoolExecutor, running: dict[Future[str], RunJob],
              waiting: list[RunJob]) -> None:
        """Drop the runs not started and stop the workers (their runs resume from a checkpoint later)."""
        for future in running:
            future.cancel()
        stopped = [job.name for future, job in running.items() if not future.cancelled()]
        if stopped:
            self.log(f"[pool] stopping {', '.join(stopped)} (they resume from their last checkpoint)")
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.terminate()


# ---------------------------------------------------------------- slurm
@dataclass(frozen=True)
class SlurmOptions:
    """What each run's Slurm job asks for (`--partition`, `--time` in minutes, GPUs, `--account`, CPUs).

    `cluster`: "slurm" submits with sbatch; "local" runs the jobs as local processes through submitit
    (no scheduler: for tests and a machine without Slurm). `folder`: submitit's logs and pickles
    (default `<out>/slurm`). `wait`: wait for the jobs (else return once all are submitted: Slurm's
    dependencies order them). `additional`: further `#SBATCH` settings, e.g. {"qos": "high"}.
    """

    partition: str | None = None
    time: int = 24 * 60
    gpus: int = 1
    account: str | None = None
    cpus_per_task: int = 8
    mem_gb: float | None = None
    cluster: str = "slurm"
    folder: str | None = None
    wait: bool = True
    additional: dict[str, Any] = field(default_factory=dict)


class SlurmRun:
    """What each Slurm job runs: `execute(job)`. Checkpointable: a job that reaches its time limit (or
    is preempted) is requeued, and the run resumes from its last checkpoint."""

    def __call__(self, job: RunJob) -> str:
        return execute(job, progress=False)

    def checkpoint(self, job: RunJob) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


def _is_slurm(executor: Any) -> bool:
    import submitit

    return isinstance(executor, submitit.SlurmExecutor) or getattr(executor, "cluster", None) == "slurm"


def default_slurm_folder(jobs: Sequence[RunJob]) -> Path:
    """`<out>/slurm` for jobs whose folders are `<out>/runs/<name>`."""
    if not jobs:
        return Path(SLURM_DIR)
    return Path(jobs[0].folder).parent.parent / SLURM_DIR


class SlurmLauncher:
    """One submitit job per run; students after teachers (Slurm dependencies, or waves elsewhere).

    `executor`: a ready submitit executor (AutoExecutor, SlurmExecutor, LocalExecutor, ...) to use
    instead of `submitit.AutoExecutor(folder, cluster=options.cluster)`.
    """

    def __init__(self, options: SlurmOptions | None = None, *, folder: str | os.PathLike[str] | None = None,
                 executor: Any = None, log: Log = print) -> None:
        self.options = options or SlurmOptions()
        if self.options.cluster not in ("slurm", "local", "debug"):
            raise ReproError(f"unknown submitit cluster {self.options.cluster!r}; choose slurm or local")
        self.folder = folder if folder is not None else self.options.folder
        self.executor, self.log = executor, log

    # ---- executor
    def _make_executor(self, jobs: Sequence[RunJob]) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ReproError("--launcher slurm needs submitit: pip install submitit") from exc
        folder = Path(self.folder) if self.folder is not None else default_slurm_folder(jobs)
        return submitit.AutoExecutor(folder=folder / "%j", cluster=self.options.cluster)

    def _parameters(self, executor: Any, job: RunJob, after: str | None) -> dict[str, Any]:
        import submitit

        o = self.options
        extra = dict(o.additional)
        if after is not None:
            # a failed teacher: Slurm cancels the student instead of leaving it pending forever
            extra.update(dependency=f"afterok:{after}", kill_on_invalid_dep="yes")
        if isinstance(executor, submitit.SlurmExecutor):
            params = {"job_name": job.name, "time": o.time, "gpus_per_node": o.gpus,
                      "cpus_per_task": o.cpus_per_task, "partition": o.partition, "account": o.account,
                      "mem": f"{int(o.mem_gb * 1024)}MB" if o.mem_gb else None,
                      "additional_parameters": extra}
        else:  # AutoExecutor (or alike): generic names, plus slurm_* that other clusters ignore
            params = {"name": job.name, "timeout_min": o.time, "gpus_per_node": o.gpus,
                      "cpus_per_task": o.cpus_per_task, "mem_gb": o.mem_gb, "slurm_partition": o.partition,
                      "slurm_account": o.account, "slurm_additional_parameters": extra}
        return {k: v for k, v in params.items() if v is not None}

    def _submit(self, executor: Any, job: RunJob, after: str | None = None) -> Any:
        executor.update_parameters(**self._parameters(executor, job, after))
        submitted = executor.submit(SlurmRun(), job)
        self.log(f"[slurm] submitted {job.name} as job {submitted.job_id}"
                 + (f" (after job {after})" if after else ""))
        return submitted

    # ---- run
    def run(self, jobs: Sequence[RunJob]) -> list[str]:
        check_order(jobs)
        if not jobs:
            return []
        executor = self.executor if self.executor is not None else self._make_executor(jobs)
        if _is_slurm(executor):
            return self._with_dependencies(executor, jobs)
        return self._in_waves(executor, jobs)

    def _with_dependencies(self, executor: Any, jobs: Sequence[RunJob]) -> list[str]:
        """Submit every run now, each student's job after its teacher's (Slurm orders them)."""
        submitted: dict[str, Any] = {}
        for job in jobs:
            teacher = submitted.get(job.teacher_id) if job.teacher_id else None
            submitted[job.run_id] = self._submit(executor, job, teacher.job_id if teacher else None)
        if not self.options.wait:
            return [f"submitted as job {submitted[j.run_id].job_id}" for j in jobs]
        return self._collect(jobs, submitted)

    def _in_waves(self, executor: Any, jobs: Sequence[RunJob]) -> list[str]:
        """No dependencies outside Slurm: submit every run whose teacher finished, wait, repeat."""
        ids = {j.run_id for j in jobs}
        finished: set[str] = set()
        results: dict[str, str] = {}
        waiting = list(jobs)
        wave_no = 0
        while waiting:
            wave = [j for j in waiting if _ready(j, ids, finished)]
            if not wave:
                names = ", ".join(j.name for j in waiting)
                raise ReproError(f"runs {names} wait for teachers that never run")
            wave_no += 1
            self.log(f"[slurm] wave {wave_no}: {len(wave)} run(s)")
            submitted = {job.run_id: self._submit(executor, job) for job in wave}
            results.update(zip([j.run_id for j in wave], self._collect(wave, submitted), strict=True))
            finished.update(j.run_id for j in wave)
            waiting = [j for j in waiting if j.run_id not in finished]
        return [results[j.run_id] for j in jobs]

    def _collect(self, jobs: Sequence[RunJob], submitted: dict[str, Any]) -> list[str]:
        """Wait for every submitted job; raise naming the runs that failed (after all have ended)."""
        results: list[str] = []
        failed: list[str] = []
        for job in jobs:
            sub = submitted[job.run_id]
            try:
                result = sub.result()
            except Exception as exc:
                failed.append(f"{job.name} (job {sub.job_id}): {_tail(exc)}; log: {_log_path(sub)}")
                results.append("failed")
                continue
            self.log(f"[slurm] {job.name} (job {sub.job_id}): {result}")
            results.append(result)
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


# ---------------------------------------------------------------- one entry point
def make_launcher(launcher: str = "local", *, jobs_n: int = 1, slurm: SlurmOptions | None = None,
                  log: Log = print, executor: Any = None) -> Launcher:
    """The launcher named `launcher` ("local", "pool" or "slurm"); "local" with `jobs_n` > 1 is a pool."""
    if launcher == "local" and jobs_n > 1:
        launcher = "pool"
    if launcher == "local":
        return LocalLauncher(log=log, progress=None)
    if launcher == "pool":
        return PoolLauncher(jobs_n, log=log)
    if launcher == "slurm":
        return SlurmLauncher(slurm, executor=executor, log=log)
    raise ReproError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")


def launch(jobs: Sequence[RunJob], launcher: str = "local", *, jobs_n: int = 1,
           slurm: SlurmOptions | None = None, log: Log = print, executor: Any = None) -> list[str]:
    """Carry out `jobs` (teachers before students) with the named launcher; what each run did, in order."""
    started = time.monotonic()
    results = make_launcher(launcher, jobs_n=jobs_n, slurm=slurm, log=log, executor=executor).run(jobs)
    log(f"{len(jobs)} run(s) carried out in {time.monotonic() - started:.0f} s")
    return results

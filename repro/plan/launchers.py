"""Carry out a list of `RunJob`s (teachers before their students) in one of three ways:

- `local`: one after another in this process;
- `pool` (`--jobs N`, `--runs-per-gpu K`): N x K worker processes; a job is handed to the pool once its
  teacher finished. With GPUs the workers make N slots of K processes, each slot on one GPU (worker k ->
  slot k mod N -> GPU slot mod count, through CUDA_VISIBLE_DEVICES), so K runs share each GPU: the
  networks are small, and one run alone leaves most of a modern GPU idle. The CPU cores are split
  between all the workers (torch threads). A failed run stops the launch: runs not started are
  dropped, runs in progress are stopped (they resume from their last checkpoint next time), finished
  runs stay;
- `slurm` (through `submitit`, `repro.plan.slurm`): one job per run, or with `--runs-per-gpu K` one job
  per pack of K runs on one GPU; students after their teachers.

Every launcher returns what each run did (`execute`'s answer), in the order of the jobs. Each run is
carried out under its lock (`repro.runs.locks`), so two launches over one folder never train a run twice.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

from repro.errors import ReproError
from repro.plan.execute import RunJob, execute

if TYPE_CHECKING:
    from repro.plan.slurm import SlurmOptions

LAUNCHERS = ("local", "pool", "slurm")

Log = Callable[[str], Any]


class Launcher(Protocol):
    def run(self, jobs: Sequence[RunJob]) -> list[str]: ...


def __getattr__(name: str) -> Any:
    """The Slurm launcher lives in `repro.plan.slurm`; its names stay importable from here."""
    if name in ("SlurmLauncher", "SlurmOptions", "SlurmRun", "SlurmPack", "SLURM_DIR",
                "default_slurm_folder"):
        from repro.plan import slurm

        return getattr(slurm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def check_runs_per_gpu(runs_per_gpu: int) -> None:
    if runs_per_gpu < 1:
        raise ReproError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")


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


def worker_gpu(k: int, slots: int, gpus: Sequence[str]) -> str | None:
    """The GPU of pool worker `k`: its slot (k mod `slots`), that slot's GPU (slot mod the GPU count).
    Round robin, so that the first workers started (the pool starts them as jobs arrive) land on
    different GPUs; with slots x K workers every slot, hence every GPU of the slots, gets K of them."""
    return gpus[(k % slots) % len(gpus)] if gpus else None


_WORKER: dict[str, Any] = {}  # in a pool worker: its index and GPU (set by _init_worker)


def _init_worker(counter: Any, gpus: list[str], slots: int, threads: int) -> None:
    """Give this worker its GPU (before anything initialises CUDA) and its share of the cores."""
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    gpu = worker_gpu(k, slots, gpus)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(index=k, gpu=gpu)


def _work(job: RunJob) -> tuple[str, str]:
    """Carry out `job`; also say which worker did (its index, pid and GPU) for the log."""
    result = execute(job, progress=False)
    gpu = _WORKER.get("gpu")
    return result, f"worker {_WORKER.get('index', '?')} pid {os.getpid()}" + (f" GPU {gpu}" if gpu else "")


class PoolLauncher:
    """`workers` slots of `runs_per_gpu` processes each (spawned), each process carrying out one run at a
    time; with GPUs, one GPU per slot (K runs share it)."""

    def __init__(self, workers: int, log: Log = print, gpus: Sequence[str] | None = None,
                 runs_per_gpu: int = 1) -> None:
        if workers < 1:
            raise ReproError(f"--jobs must be at least 1, got {workers}")
        check_runs_per_gpu(runs_per_gpu)
        self.workers, self.runs_per_gpu, self.log = workers, runs_per_gpu, log
        self.gpus = list(gpus) if gpus is not None else None

    @property
    def processes(self) -> int:
        return self.workers * self.runs_per_gpu

    def _where(self, gpus: list[str], threads: int) -> str:
        if not gpus:
            return f"{threads} CPU thread(s) each"
        used = sorted({g for k in range(self.processes) if (g := worker_gpu(k, self.workers, gpus))}, key=str)
        if self.runs_per_gpu == 1:
            return f"one GPU each ({', '.join(used)})"
        return f"{self.runs_per_gpu} per GPU ({', '.join(used)}), {threads} CPU thread(s) each"

    def run(self, jobs: Sequence[RunJob]) -> list[str]:
        import multiprocessing

        check_order(jobs)
        if not jobs:
            return []
        ctx = multiprocessing.get_context("spawn")
        gpus = self.gpus if self.gpus is not None else _visible_gpus()
        processes = self.processes
        threads = max(1, _cpu_count() // processes)
        self.log(f"[pool] {len(jobs)} run(s) on {processes} worker(s), {self._where(gpus, threads)}")
        ids = {j.run_id for j in jobs}
        index = {j.run_id: i for i, j in enumerate(jobs)}
        results: list[str | None] = [None] * len(jobs)
        finished: set[str] = set()
        waiting = list(jobs)
        running: dict[Future[tuple[str, str]], RunJob] = {}
        pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker,
                                   initargs=(ctx.Value("i", 0), gpus, self.workers, threads))
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
                        result, worker = future.result()
                    except BaseException as exc:
                        self._stop(pool, running, waiting)
                        raise _failure(job, exc) from exc
                    finished.add(job.run_id)
                    results[index[job.run_id]] = result
                    self.log(f"[pool] {job.name}: {result} ({len(finished)}/{len(jobs)}; {worker})")
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or a Slurm pack's job ending (requeued)
            self._stop(pool, running, waiting)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [r or "" for r in results]

    def _stop(self, pool: ProcessPoolExecutor, running: dict[Future[Any], RunJob],
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


# ---------------------------------------------------------------- one entry point
def make_launcher(launcher: str = "local", *, jobs_n: int = 1, slurm: SlurmOptions | None = None,
                  log: Log = print, executor: Any = None, runs_per_gpu: int = 1) -> Launcher:
    """The launcher named `launcher` ("local", "pool" or "slurm"); "local" with `jobs_n` > 1 or
    `runs_per_gpu` > 1 is a pool. For Slurm, `runs_per_gpu` > 1 packs that many runs into each job."""
    check_runs_per_gpu(runs_per_gpu)
    if launcher == "local" and (jobs_n > 1 or runs_per_gpu > 1):
        launcher = "pool"
    if launcher == "local":
        return LocalLauncher(log=log, progress=None)
    if launcher == "pool":
        return PoolLauncher(jobs_n, log=log, runs_per_gpu=runs_per_gpu)
    if launcher == "slurm":
        from repro.plan.slurm import SlurmLauncher, SlurmOptions

        options = slurm or SlurmOptions()
        if runs_per_gpu != 1:
            options = dataclasses.replace(options, runs_per_gpu=runs_per_gpu)
        return SlurmLauncher(options, executor=executor, log=log)
    raise ReproError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")


def launch(jobs: Sequence[RunJob], launcher: str = "local", *, jobs_n: int = 1,
           slurm: SlurmOptions | None = None, log: Log = print, executor: Any = None,
           runs_per_gpu: int = 1) -> list[str]:
    """Carry out `jobs` (teachers before students) with the named launcher; what each run did, in order."""
    started = time.monotonic()
    results = make_launcher(launcher, jobs_n=jobs_n, slurm=slurm, log=log, executor=executor,
                            runs_per_gpu=runs_per_gpu).run(jobs)
    log(f"{len(jobs)} run(s) carried out in {time.monotonic() - started:.0f} s")
    return results

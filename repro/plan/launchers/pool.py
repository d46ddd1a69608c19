"""The `pool` launcher (`--jobs N`, `--runs-per-gpu K`): N x K worker processes; a job is handed to the
pool once its teacher finished.

With GPUs the workers make N slots of K processes, each slot on one GPU (worker k -> slot k mod N -> GPU
slot mod count, through CUDA_VISIBLE_DEVICES), so K runs share each GPU: the networks are small, and one
run alone leaves most of a modern GPU idle. The CPU cores are split between all the workers (torch
threads). A failed run stops the launch: runs not started are dropped, runs in progress are stopped (they
resume from their last checkpoint next time), finished runs stay.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from repro.errors import ReproError
from repro.plan.execute import Job, execute
from repro.plan.launchers.base import (
    LauncherEntry,
    Log,
    at_least_one,
    check_at_least_one,
    check_order,
    failure,
    ready,
    register_launcher,
    run_ids,
)


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


def _work(job: Job) -> tuple[str, str]:
    """Carry out `job`; also say which worker did (its index, pid and GPU) for the log."""
    result = execute(job, progress=False)
    gpu = _WORKER.get("gpu")
    return result, f"worker {_WORKER.get('index', '?')} pid {os.getpid()}" + (f" GPU {gpu}" if gpu else "")


class PoolLauncher:
    """`workers` slots of `runs_per_gpu` processes each (spawned), each process carrying out one run at a
    time; with GPUs, one GPU per slot (K runs share it)."""

    def __init__(self, workers: int, log: Log = print, gpus: Sequence[str] | None = None,
                 runs_per_gpu: int = 1) -> None:
        check_at_least_one("--jobs", workers)
        check_at_least_one("--runs-per-gpu", runs_per_gpu)
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

    def run(self, jobs: Sequence[Job]) -> list[str]:
        import multiprocessing

        check_order(jobs)
        if not jobs:
            return []
        ctx = multiprocessing.get_context("spawn")
        gpus = self.gpus if self.gpus is not None else _visible_gpus()
        processes = self.processes
        threads = max(1, _cpu_count() // processes)
        ids = run_ids(jobs)
        self.log(f"[pool] {len(ids)} run(s) on {processes} worker(s), {self._where(gpus, threads)}")
        index = {j.run_id: i for i, j in enumerate(jobs)}
        results: list[str | None] = [None] * len(jobs)
        finished: set[str] = set()
        waiting = list(jobs)
        running: dict[Future[tuple[str, str]], Job] = {}
        pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker,
                                   initargs=(ctx.Value("i", 0), gpus, self.workers, threads))
        try:
            while waiting or running:
                for job in [j for j in waiting if ready(j, ids, finished)]:
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
                        raise failure(job, exc) from exc
                    finished |= job.run_ids
                    results[index[job.run_id]] = result
                    self.log(f"[pool] {job.name}: {result} ({len(finished)}/{len(jobs)}; {worker})")
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or a Slurm pack's job ending (requeued)
            self._stop(pool, running, waiting)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [r or "" for r in results]

    def _stop(self, pool: ProcessPoolExecutor, running: dict[Future[Any], Job],
              waiting: list[Job]) -> None:
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


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=at_least_one, default=1,
                        help="slots of the pool launcher, one GPU each when there are GPUs (default 1)")


ENTRY = register_launcher(LauncherEntry(
    name="pool",
    help="--jobs x --runs-per-gpu worker processes (--runs-per-gpu on each GPU when there are GPUs)",
    add_arguments=_add_arguments,
    build=lambda args, log: PoolLauncher(args.jobs, log=log, runs_per_gpu=args.runs_per_gpu),
    implied_by=lambda args: args.jobs > 1 or args.runs_per_gpu > 1))

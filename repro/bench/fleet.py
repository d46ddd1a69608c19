"""What a fleet gains: N runs of one network trained together (`repro.train.fleet`) against the same runs
one after another, through the real engine, in one process and one sitting (measure both sides together:
these machines are shared).

CPU: FSRCNN x4 baselines, batch 16, 24-px HR patches, one torch thread, N = 8 (seeds 0-7): the
aggregate iterations per second of the fleet over that of the 8 runs trained one after another
(`ratio`), each side's step time from metrics.csv after a warm-up.

GPU (when there is one): the aggregate it/s of FSRCNN baseline fleets of N = 1, 4, 16, 64 at paper
settings (x4, 192 px, batch 16, the `sample` photos, the set on the device), eager and as a CUDA graph,
and of DSSD student fleets (N = 1, 4, 16; the students of one DSSD teacher trained here briefly).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train.engine import train
from repro.train.fleet import Member, train_fleet

CPU_MEMBERS, CPU_ITERATIONS, WARMUP = 8, 300, 100
GPU_SIZES, STUDENT_SIZES, GPU_ITERATIONS = (1, 4, 16, 64), (1, 4, 16), 600


def _ms_per_step(run: Path, warmup: int) -> float:
    """The engine's own step time (data wait included) over the logged rows after `warmup` iterations."""
    rows = [r for r in read_metrics(run) if int(float(r["iteration"])) > warmup]
    seconds = sum(1 / float(r["it_per_s"]) * 50 for r in rows)  # rows every 50 iterations
    return 1000 * seconds / (50 * len(rows))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The trainings' own lines (one per checkpoint) out of the bench's output."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def cpu_ratio(folder: Path, members: int = CPU_MEMBERS, iterations: int = CPU_ITERATIONS,
              warmup: int = WARMUP) -> dict[str, Any]:
    settings = ["data.hr_patch=24", "optim.batch_size=16", "optim.epochs=1",
                f"optim.iters_per_epoch={warmup + iterations}", "optim.lr=1e-3", "run.log_every=50",
                f"run.checkpoint_every={100 * (warmup + iterations)}", "val.every=0", "val.sets=[]",
                "data.num_workers=0", "run.threads=1"]
    cfgs = [resolve("smoke", kind="baseline", model="fsrcnn", scale=4, overrides=[*settings, f"run.seed={s}"])
            for s in range(members)]
    threads = torch.get_num_threads()
    try:
        with _quiet():
            solo = [_ms_per_step(train(c, out=folder / f"solo{s}", progress=False), warmup)
                    for s, c in enumerate(cfgs)]
            train_fleet([Member(c, folder / f"fleet{s}") for s, c in enumerate(cfgs)], progress=False)
    finally:
        torch.set_num_threads(threads)
    fleet = _ms_per_step(folder / "fleet0", warmup)
    return {"model": "fsrcnn", "scale": 4, "batch": 16, "hr_patch": 24, "members": members,
            "iterations": iterations, "torch_threads": 1,
            "solo_ms_per_step": [round(v, 3) for v in solo], "fleet_ms_per_step": round(fleet, 3),
            "solo_aggregate_it_per_s": round(members / (sum(solo) / 1000), 1),
            "fleet_aggregate_it_per_s": round(members / (fleet / 1000), 1),
            "ratio": round(sum(solo) / fleet, 3)}


def _gpu_fleet(folder: Path, key: str, size: int, extra: list[str], teacher: tuple[Any, str] | None) -> float:
    base = ["data.source=sample", "data.on_device=true", "optim.epochs=1",
            f"optim.iters_per_epoch={GPU_ITERATIONS}", "run.log_every=50",
            f"run.checkpoint_every={GPU_ITERATIONS}", "val.every=0", "val.sets=", "run.device=cuda",
            "run.deterministic=false", *extra]
    if teacher is None:
        cfgs = [resolve("paper", kind="baseline", model="fsrcnn", scale=4, overrides=[*base, f"run.seed={s}"])
                for s in range(size)]
    else:
        cfgs = [resolve("paper", kind="student", overrides=[*base, f"run.seed={s}"], teacher=teacher[0])
                for s in range(size)]
    members = [Member(c, folder / f"{key}-{size}-{s}", teacher[1] if teacher else None)
               for s, c in enumerate(cfgs)]
    with _quiet():
        train_fleet(members, progress=False)
    return size * 1000 / _ms_per_step(members[0].folder, 100)


def gpu(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "iterations": GPU_ITERATIONS,
                           "aggregate_it_per_s": {}}
    for name, extra in (("fsrcnn_eager", []), ("fsrcnn_graph", ["run.cuda_graph=true"])):
        rates = {}
        for size in GPU_SIZES:
            try:
                rates[str(size)] = round(_gpu_fleet(folder, name, size, extra, None), 1)
            except Exception as exc:  # e.g. out of memory at the largest size: the others stand
                rates[str(size)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        out["aggregate_it_per_s"][name] = rates
    start = time.perf_counter()
    tcfg = resolve("paper", kind="teacher", model="dssd_teacher", scale=4, overrides=[
        "data.source=sample", "optim.epochs=1", "optim.iters_per_epoch=200", "val.every=0", "val.sets=",
        "run.device=cuda", "run.checkpoint_every=200"])
    with _quiet():
        teacher_dir = train(tcfg, out=folder / "teacher", progress=False)
    out["teacher_seconds"] = round(time.perf_counter() - start, 1)
    rates = {}
    for size in STUDENT_SIZES:
        try:
            rates[str(size)] = round(_gpu_fleet(folder, "student", size, ["run.cuda_graph=true"],
                                                (tcfg, str(teacher_dir))), 1)
        except Exception as exc:
            rates[str(size)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    out["aggregate_it_per_s"]["dssd_student_graph"] = rates
    return out


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="repro-bench-fleet-") as tmp:
        result: dict[str, Any] = {"cpu": cpu_ratio(Path(tmp) / "cpu")}
        if torch.cuda.is_available():
            result["gpu"] = gpu(Path(tmp) / "gpu")
        else:
            result["gpu"] = "no CUDA"
    result["cpu"]["solo_ms_per_step_median"] = round(statistics.median(result["cpu"]["solo_ms_per_step"]), 3)
    return result

"""Training throughput at the paper's patch sizes (x4, 192x192 HR patches, batch 16) on this machine.

Runs the real engine for a few iterations on the embedded `sample` images: the DSSD teacher, then
its student (FSRCNN + VID, frozen teacher), and reports iterations per second and the share of step
time spent blocked waiting for the next batch (`next(loader)` / whole step), with the loader in the
main process (num_workers=0) and with worker processes. The first iteration (warm-up) is left out.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import torch

from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train.engine import train

ITERATIONS = 4  # timed iterations after one warm-up iteration


def _settings(workers: int) -> list[str]:
    return [
        "data.source=sample", "data.hr_patch=192", "optim.batch_size=16", f"data.num_workers={workers}",
        "optim.epochs=1", f"optim.iters_per_epoch={ITERATIONS + 1}", "run.log_every=1",
        f"run.checkpoint_every={100 * (ITERATIONS + 1)}", "val.every=0", "val.sets=", "run.device=cpu",
    ]


def _measure(run_dir: Path) -> dict[str, float]:
    rows = read_metrics(run_dir)[1:]  # drop the warm-up iteration
    return {
        "iterations_per_s": round(statistics.median(float(r["it_per_s"]) for r in rows), 4),
        "data_wait_share": round(statistics.mean(float(r["data_wait"]) for r in rows), 4),
        "timed_iterations": len(rows),
    }


def run() -> dict:
    out: dict[str, object] = {"scale": 4, "hr_patch": 192, "batch_size": 16, "source": "sample",
                              "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="repro-bench-train-") as tmp:
        base = Path(tmp)
        for workers in (0, 2):
            teacher = train(resolve("paper", kind="teacher", model="dssd_teacher", scale=4,
                                    overrides=_settings(workers)), out=base / f"teacher-w{workers}",
                            progress=False)
            out[f"teacher_workers{workers}"] = _measure(teacher)
            student = train(resolve("paper", kind="student", model="fsrcnn", scale=4,
                                    overrides=_settings(workers)), out=base / f"student-w{workers}",
                            teacher_dir=str(teacher), progress=False)
            out[f"student_workers{workers}"] = _measure(student)
    return out

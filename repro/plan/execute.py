"""One unit of work of an orchestration: train a run (or resume it, or find it finished) and evaluate
it on the test sets its rows need, under the run's lock. Picklable, so any launcher (this process, a
pool of workers, a Slurm job) can carry it out.

The evaluation is kept in the run folder (`evaluation.json`: mean PSNR/SSIM per test set), written
atomically and extended only by the sets it lacks, so a run is evaluated once whatever runs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.runs.folder import EVALUATION, is_done, read_evaluation, write_json
from repro.runs.locks import run_lock


@dataclass(frozen=True)
class RunJob:
    """Everything a worker needs to carry out one run (plain data: it crosses process boundaries)."""

    run_id: str
    name: str
    folder: str
    settings: dict[str, Any]  # the resolved TrainConfig as a dict (`TrainConfig.to_dict()`)
    teacher_id: str | None = None
    teacher_folder: str | None = None
    datasets: tuple[str, ...] = ()  # test sets to evaluate on (none for a teacher no row measures)
    data_root: str | None = None
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate_run(job: RunJob, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Evaluate the finished run on the sets of `job.datasets` it has not been evaluated on yet."""
    from repro.evaluate.sr import evaluate_run_dir, summarise

    done = read_evaluation(job.folder)
    missing = [d for d in job.datasets if d not in done]
    if not missing:
        return done
    rows, _ = evaluate_run_dir(job.folder, missing, root=job.data_root, device=device, progress=False)
    means = summarise(rows)
    for r in means.itertuples():
        done[str(r.dataset)] = {"psnr": float(r.psnr), "ssim": float(r.ssim), "images": int(r.images)}
    write_json(Path(job.folder) / EVALUATION, {"run": job.name, "hash": job.run_id, "sets": done})
    return done


def execute(job: RunJob, progress: bool | None = False) -> str:
    """Train (resume, or leave alone) and evaluate one run under its lock; returns what was done."""
    from repro.runs.config import from_dict
    from repro.train.engine import train

    with run_lock(job.folder):
        was_done = is_done(job.folder)
        cfg = from_dict(job.settings)
        train(cfg, out=job.folder, teacher_dir=job.teacher_folder, data_root=job.data_root, progress=progress)
        evaluated = bool(job.datasets) and set(job.datasets) - set(read_evaluation(job.folder))
        if job.datasets:
            device = training_device() if cfg.run.device == "auto" else cfg.run.device
            evaluate_run(job, device)
    return ("found finished" if was_done else "trained") + (", evaluated" if evaluated else "")


def training_device() -> str:
    """The device runs train on here: cuda when there is one, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

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
    eval_images: int | None = None  # evaluate on the first N images of each set only (a quick check)
    eval_crop: int | None = None  # ... and on their top-left P x P HR crop only


def missing_sets(job: RunJob) -> list[str]:
    """The sets of `job.datasets` not evaluated yet the way `job` asks (a subset evaluation does not
    stand for a full one, nor the other way round)."""
    done = read_evaluation(job.folder)
    wanted = (job.eval_images, job.eval_crop)
    return [d for d in job.datasets
            if d not in done or (done[d].get("max_images"), done[d].get("crop")) != wanted]


def evaluate_run(job: RunJob, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Evaluate the finished run on the sets of `job.datasets` it has not been evaluated on yet."""
    from repro.evaluate.sr import evaluate_run_dir, summarise

    done = read_evaluation(job.folder)
    missing = missing_sets(job)
    if not missing:
        return done
    rows, _ = evaluate_run_dir(job.folder, missing, root=job.data_root, device=device, progress=False,
                               max_images=job.eval_images, crop=job.eval_crop)
    means = summarise(rows)
    for r in means.itertuples():
        done[str(r.dataset)] = {"psnr": float(r.psnr), "ssim": float(r.ssim), "images": int(r.images),
                                **({"max_images": job.eval_images} if job.eval_images else {}),
                                **({"crop": job.eval_crop} if job.eval_crop else {})}
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
        evaluated = bool(missing_sets(job))
        if job.datasets:
            device = training_device() if cfg.run.device == "auto" else cfg.run.device
            evaluate_run(job, device)
    return ("found finished" if was_done else "trained") + (", evaluated" if evaluated else "")


def training_device() -> str:
    """The device runs train on here: cuda when there is one, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

"""One unit of work of an orchestration: train a run (or resume it, or find it finished) and evaluate
it on the test sets its rows need, under the run's lock; or a fleet of runs trained together in one
process (`repro.train.fleet`), then each evaluated. Picklable, so any launcher (this process, a pool of
workers, a Slurm job) can carry it out; a launcher sees a job's runs (`run_ids`) and the teachers it waits
for (`teacher_ids`), whatever kind of job it is.

The evaluation is kept in the run folder (`evaluation.json`: mean PSNR/SSIM per test set), written
atomically and extended only by the sets it lacks, so a run is evaluated once whatever runs again.
"""

from __future__ import annotations

import hashlib
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

    @property
    def run_ids(self) -> frozenset[str]:
        return frozenset({self.run_id})

    @property
    def teacher_ids(self) -> frozenset[str]:
        return frozenset({self.teacher_id} if self.teacher_id else ())


@dataclass(frozen=True)
class FleetJob:
    """Runs of one structure trained together in one process (a fleet), each then evaluated as its
    `RunJob` says. It waits for every member's teacher."""

    members: tuple[RunJob, ...]

    @property
    def run_id(self) -> str:
        return "fleet-" + hashlib.sha1(",".join(sorted(self.run_ids)).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"fleet of {len(self.members)} ({', '.join(m.name for m in self.members)})"

    @property
    def folder(self) -> str:
        return self.members[0].folder

    @property
    def run_ids(self) -> frozenset[str]:
        return frozenset(m.run_id for m in self.members)

    @property
    def teacher_ids(self) -> frozenset[str]:
        return frozenset(t for m in self.members for t in m.teacher_ids) - self.run_ids


Job = RunJob | FleetJob


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


def execute(job: Job, progress: bool | None = False) -> str:
    """Train (resume, or leave alone) and evaluate one run under its lock, or a fleet; returns what was
    done."""
    from repro.runs.config import from_dict
    from repro.train.engine import train

    if isinstance(job, FleetJob):
        return execute_fleet(job, progress)
    with run_lock(job.folder):
        was_done = is_done(job.folder)
        cfg = from_dict(job.settings)
        train(cfg, out=job.folder, teacher_dir=job.teacher_folder, data_root=job.data_root, progress=progress)
        evaluated = _evaluate(job, cfg)
    return ("found finished" if was_done else "trained") + (", evaluated" if evaluated else "")


def execute_fleet(job: FleetJob, progress: bool | None = False) -> str:
    """Train the fleet's runs together (each resumed, or left alone if finished), then evaluate each
    under its lock; a member that failed is named after the others are evaluated."""
    from repro.errors import ReproError
    from repro.runs.config import from_dict
    from repro.train.fleet import Member, train_fleet

    cfgs = [from_dict(m.settings) for m in job.members]
    members = [Member(c, m.folder, m.teacher_folder) for c, m in zip(cfgs, job.members, strict=True)]
    outcomes = train_fleet(members, data_root=job.members[0].data_root, progress=progress)
    evaluated = 0
    for m, cfg, outcome in zip(job.members, cfgs, outcomes, strict=True):
        if outcome.state != "failed" and m.datasets:
            with run_lock(m.folder):
                evaluated += _evaluate(m, cfg)
    failed = [o.error for o in outcomes if o.state == "failed"]
    if failed:
        raise ReproError("; ".join(str(e) for e in failed))
    trained = sum(o.state == "trained" for o in outcomes)
    return (f"fleet of {len(outcomes)}: {trained} trained, {len(outcomes) - trained} found finished"
            + (f", {evaluated} evaluated" if evaluated else ""))


def _evaluate(job: RunJob, cfg) -> bool:
    """Evaluate a trained run on its sets not evaluated yet, where it trained (its lock held by the
    caller); whether there were any."""
    if not missing_sets(job):
        return False
    evaluate_run(job, training_device() if cfg.run.device == "auto" else cfg.run.device)
    return True


def training_device() -> str:
    """The device runs train on here: cuda when there is one, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

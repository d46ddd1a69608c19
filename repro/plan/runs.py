"""Resolve the runs of tables under a profile and seeds: each run is identified by the hash of its
resolved settings, so a run that several rows (or tables) need appears once and is trained once.

A run's folder is `<out>/runs/<kind>-<model>-x<scale>-<hash8>`; its status is read from that folder
(done, partial at iteration k, or missing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from repro.errors import ReproError
from repro.runs.config import TrainConfig, resolve
from repro.runs.folder import CHECKPOINT, is_done, load_torch, stored_hash
from repro.specs import TableSpec
from repro.specs.base import RunSpec

RUNS_DIR = "runs"


@dataclass
class PlannedRun:
    """One run of a plan: its settings, the rows using it, and its teacher run (for a student)."""

    cfg: TrainConfig
    spec: RunSpec
    seed: int
    teacher: PlannedRun | None = None
    used_by: list[tuple[str, str]] = field(default_factory=list)  # (table, row)

    @property
    def id(self) -> str:
        return self.cfg.hash()

    @property
    def name(self) -> str:
        return self.cfg.default_run_name()

    def folder(self, out: str | os.PathLike[str]) -> Path:
        return Path(out) / RUNS_DIR / self.name


@dataclass
class Status:
    state: str  # done | partial | missing
    iteration: int = 0
    total: int = 0

    def __str__(self) -> str:
        if self.state == "partial":
            return f"partial at iteration {self.iteration}/{self.total}"
        return self.state


def status(run: PlannedRun, out: str | os.PathLike[str]) -> Status:
    """What the run's folder holds: finished, a checkpoint at iteration k, or nothing of these settings."""
    folder = run.folder(out)
    total = run.cfg.optim.iterations
    if stored_hash(folder) != run.id:
        return Status("missing", 0, total)
    if is_done(folder):
        return Status("done", total, total)
    if (folder / CHECKPOINT).exists():
        try:
            return Status("partial", int(load_torch(folder / CHECKPOINT)["iteration"]), total)
        except (ReproError, KeyError, TypeError):
            pass
    return Status("partial", 0, total)


@dataclass
class Plan:
    """Every run the tables need (teachers before their students), keyed by settings hash."""

    profile: str
    seeds: int
    tables: list[TableSpec]
    overrides: tuple[str, ...] = ()  # `--set key=value` for every run, after each row's own settings
    runs: dict[str, PlannedRun] = field(default_factory=dict)
    # (table, row, scale, seed) -> run id, for every row that measures a run
    measured: dict[tuple[str, str, int, int], str] = field(default_factory=dict)

    def ordered(self) -> list[PlannedRun]:
        """Runs in an order where every teacher comes before its students."""
        out: list[PlannedRun] = []
        seen: set[str] = set()

        def visit(run: PlannedRun) -> None:
            if run.id in seen:
                return
            if run.teacher is not None:
                visit(run.teacher)
            seen.add(run.id)
            out.append(run)

        for run in self.runs.values():
            visit(run)
        return out


def resolve_run(spec: RunSpec, profile: str, seed: int, plan: Plan | None = None,
                overrides: tuple[str, ...] = ()) -> PlannedRun:
    """The planned run of `spec` under `profile`, `seed` and the user's `overrides` (its teacher resolved
    first); reused from `plan` when an equal run is already there."""
    user = plan.overrides if plan is not None else tuple(overrides)
    teacher = resolve_run(spec.teacher, profile, seed, plan, user) if spec.teacher is not None else None
    settings = [*spec.settings, *user, f"run.seed={seed}"]
    if spec.iterations_of:
        total = sum(resolve_run(other, profile, seed, None, user).cfg.optim.iterations
                    for other in spec.iterations_of)
        settings += ["optim.epochs=1", f"optim.iters_per_epoch={total}"]
    cfg = resolve(profile, kind=spec.kind, model=spec.model, scale=spec.scale, overrides=settings,
                  teacher=teacher.cfg if teacher else None)
    run = PlannedRun(cfg, spec, seed, teacher)
    if plan is not None:
        run = plan.runs.setdefault(run.id, run)
    return run


def make_plan(tables: list[TableSpec], profile: str, seeds: int = 1,
              overrides: tuple[str, ...] = ()) -> Plan:
    """Every run of `tables` for seeds 0 .. seeds-1 under `profile` (and `--set` `overrides`)."""
    if seeds < 1:
        raise ReproError(f"--seeds must be at least 1, got {seeds}")
    plan = Plan(profile, seeds, tables, tuple(overrides))
    for table in tables:
        for row in table.rows:
            for spec in row.runs:
                for seed in range(seeds):
                    run = resolve_run(spec, profile, seed, plan)
                    plan.measured[table.name, row.name, spec.scale, seed] = run.id
                    while run is not None:  # a teacher is used by the rows of its students
                        if (table.name, row.name) not in run.used_by:
                            run.used_by.append((table.name, row.name))
                        run = run.teacher
    return plan

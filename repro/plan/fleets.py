"""A plan's runs as fleets (`repro.train.fleet`): `repro reproduce --fleet N` trains each fleet in one
process, `repro plan --fleet N` shows them.

Runs join a fleet when they can train as one (the same `fleet_key`: structure, patch shapes, length,
step settings) and belong to the same generation (a teacher's generation is 0, its student's 1), so a
fleet never waits for one of its own members; each group is cut into fleets of at most N runs, in the
plan's order. `auto`: fleets of up to `AUTO_CUDA` runs on a GPU, none on a CPU (where a fleet gains less:
the arithmetic grows with its size; `python -m repro.bench --only fleet` measures both).
"""

from __future__ import annotations

from collections.abc import Sequence

from repro.errors import ReproError
from repro.plan.execute import FleetJob, Job, RunJob
from repro.plan.runs import PlannedRun

AUTO_CUDA = 16  # the most runs of one fleet that `--fleet auto` puts together on a GPU
CHOICES = "N (the most runs per fleet), auto (16 on a GPU, no fleets on a CPU) or off"


def fleet_size(option: str | None, device: str) -> int:
    """The most runs per fleet `--fleet` asks for on `device` (1: no fleets)."""
    if option in (None, "auto"):
        return AUTO_CUDA if device.startswith("cuda") else 1
    if option == "off":
        return 1
    try:
        size = int(option)
    except ValueError:
        raise ReproError(f"--fleet {option}: expected {CHOICES}") from None
    if size < 1:
        raise ReproError(f"--fleet {option}: expected {CHOICES}")
    return size


def generations(runs: Sequence[PlannedRun]) -> dict[str, int]:
    """0 for a run whose teacher is not among `runs` (or that has none), else its teacher's + 1."""
    gen: dict[str, int] = {}
    for run in runs:  # teachers first
        teacher = run.teacher.id if run.teacher is not None else None
        gen[run.id] = gen[teacher] + 1 if teacher in gen else 0
    return gen


def group(runs: Sequence[PlannedRun], size: int) -> list[list[PlannedRun]]:
    """`runs` (teachers first) as fleets of at most `size` (a run alone is a fleet of one), ordered by
    generation, then by where their first run stands."""
    from repro.train.fleet import fleet_key

    if size <= 1:
        return [[run] for run in runs]
    gen = generations(runs)
    groups: dict[tuple[int, str], list[PlannedRun]] = {}
    for run in runs:
        groups.setdefault((gen[run.id], fleet_key(run.cfg)), []).append(run)
    fleets = [same[i:i + size] for same in groups.values() for i in range(0, len(same), size)]
    order = {run.id: i for i, run in enumerate(runs)}
    return sorted(fleets, key=lambda f: (gen[f[0].id], order[f[0].id]))


def as_jobs(fleets: list[list[PlannedRun]], jobs: Sequence[RunJob]) -> list[Job]:
    """The fleets as launchable jobs: a fleet of one is its run's job, a larger one a `FleetJob`."""
    by_id = {job.run_id: job for job in jobs}
    return [by_id[f[0].id] if len(f) == 1 else FleetJob(tuple(by_id[r.id] for r in f)) for f in fleets]

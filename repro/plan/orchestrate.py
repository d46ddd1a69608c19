"""The work of `repro reproduce` up to the tables: from table specs to trained, evaluated runs.

In order: resolve the plan (every run, keyed by settings hash), print it with its estimated cost, make
sure the data the profile needs is there (fetched and verified through the data layer), then train and
evaluate every run in dependency order through a launcher (each run under its lock, resumed if partial,
left alone if finished, evaluated once). `repro.results` then collects the rows and writes the tables.
Everything a second call needs is on disk, so running it again trains and evaluates nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from repro.errors import ReproError
from repro.plan.execute import RunJob, training_device
from repro.plan.export import describe
from repro.plan.fleets import as_jobs, fleet_size, group
from repro.plan.runs import Plan, PlannedRun, make_plan
from repro.specs import TableSpec

if TYPE_CHECKING:
    from repro.plan.cost import Cost
    from repro.plan.launchers import Launcher

TEST_SET_DATA = "benchmark"  # the manifest holding Set5, Set14, B100 and Urban100


@dataclass
class Options:
    profile: str = "paper"
    seeds: int = 1
    launcher: Launcher | None = None  # how the runs are carried out (`repro.plan.launchers`); None: locally
    data_root: str | None = None
    estimate: str = "model"  # how the cost of what is missing is estimated: model, timed or none
    overrides: tuple[str, ...] = ()  # `--set key=value` for every run
    eval_images: int | None = None  # a quick check: the first N images of each test set only
    eval_crop: int | None = None  # ... and their top-left P x P HR crop only
    fleet: str | None = None  # `--fleet N|auto|off` (repro.plan.fleets); None: auto


def datasets_of(plan: Plan, run: PlannedRun) -> tuple[str, ...]:
    """The test sets the rows measuring `run` need (none for a run only used as a teacher)."""
    tables = {t.name: t for t in plan.tables}
    sets: list[str] = []
    for (table, _row, _scale, _seed), run_id in plan.measured.items():
        if run_id == run.id:
            sets += [d for d in tables[table].datasets if d not in sets]
    return tuple(sets)


def jobs_of(plan: Plan, out: Path, data_root: str | None, eval_images: int | None = None,
            eval_crop: int | None = None) -> list[RunJob]:
    """The plan's runs as launchable jobs, teachers first."""
    jobs = []
    for run in plan.ordered():
        jobs.append(RunJob(
            run_id=run.id, name=run.name, folder=str(run.folder(out)), settings=run.cfg.to_dict(),
            teacher_id=run.teacher.id if run.teacher else None,
            teacher_folder=str(run.teacher.folder(out)) if run.teacher else None,
            datasets=datasets_of(plan, run), data_root=data_root, iterations=run.cfg.optim.iterations,
            eval_images=eval_images, eval_crop=eval_crop))
    return jobs


def required_data(plan: Plan) -> list[str]:
    """Datasets (manifest names) the plan reads: the profile's training source and the test sets."""
    names = {run.cfg.data.source for run in plan.runs.values()}
    sets = {d for t in plan.tables for d in t.datasets}
    sets |= {s for run in plan.runs.values() for s in run.cfg.val.sets}
    if sets - {"sample"}:
        names.add(TEST_SET_DATA)
    return sorted(n for n in names if n != "sample")


def ensure_data(names: list[str], data_root: str | None, log=print) -> None:
    """Fetch (verified) every dataset of `names` that is not under the data root; one clear error if a
    download is impossible, naming the command and the folder."""
    from repro.data.fetch import fetch
    from repro.data.manifests import get_manifest
    from repro.data.verify import folder_status
    from repro.paths import data_root as resolve_root

    root = resolve_root(data_root)
    for name in names:
        manifest = get_manifest(name)
        if folder_status(manifest, root) == "present":
            continue
        log(f"[reproduce] {name} is not under {root}: fetching it")
        try:
            fetch(manifest, root, log=log)
        except (ReproError, OSError) as exc:
            raise ReproError(f"dataset {name} is missing under {root} and could not be downloaded ({exc}); "
                             f"run `repro data fetch {name} --root DIR` where the network allows, then pass "
                             f"--data-root DIR (or set REPRO_DATA=DIR), or put the files under "
                             f"{root / _top_folder(manifest)}") from None


def _top_folder(manifest) -> str:
    """The folder a dataset lives in under the data root (`benchmark`, `T91`, `DIV2K`)."""
    return manifest.folders[0].path.split("/")[0] if manifest.folders else ""


def fleets_and_cost(plan: Plan, out: Path, fleet: str | None, method: str, progress=print
                    ) -> tuple[list[list[PlannedRun]], Cost | None]:
    """The plan's fleets on the device runs train on here (`--fleet`) and, unless `method` is "none",
    what the runs not done cost there (`--estimate`)."""
    device = training_device()
    fleets = group(plan.ordered(), fleet_size(fleet, device))
    if method == "none":
        return fleets, None
    from repro.plan.cost import estimate

    return fleets, estimate(plan, out, device, progress=progress, method=method, fleets=fleets)


def carry_out(tables: list[TableSpec], out: str | os.PathLike[str], options: Options, log=print) -> Plan:
    """Plan, print the plan and its cost, fetch the data, then train and evaluate every run of `tables`
    into `out` through the chosen launcher; returns the plan (the results layer tabulates it)."""
    from repro.plan.launchers import launch

    out = Path(out)
    plan = make_plan(tables, options.profile, options.seeds, options.overrides)
    fleets, cost = fleets_and_cost(plan, out, options.fleet, options.estimate, log)
    log(describe(plan, out, cost, fleets))
    ensure_data(required_data(plan), options.data_root, log)
    jobs = jobs_of(plan, out, options.data_root, options.eval_images, options.eval_crop)
    launch(as_jobs(fleets, jobs), options.launcher, log=log)
    return plan

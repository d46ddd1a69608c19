"""What every launcher shares: the order of its jobs, when a job may start, how a failure is named, and
the registry through which `repro reproduce` finds each launcher, its command-line options and how to
build it from them.

A launcher carries out a list of `RunJob`s (teachers before their students) and returns what each run did
(`execute`'s answer), in the order of the jobs. Each run is carried out under its lock
(`repro.runs.locks`), so two launches over one folder never train a run twice.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from repro.errors import ReproError, unknown_choice
from repro.plan.execute import Job

Log = Callable[[str], Any]


class Launcher(Protocol):
    def run(self, jobs: Sequence[Job]) -> list[str]: ...


# ---------------------------------------------------------------- order
def run_ids(jobs: Sequence[Job]) -> set[str]:
    """Every run the jobs carry out (a fleet's members each)."""
    return {i for job in jobs for i in job.run_ids}


def check_order(jobs: Sequence[Job]) -> None:
    """Refuse jobs where a student comes before its teacher, or a run appears twice."""
    seen: set[str] = set()
    ids = run_ids(jobs)
    for job in jobs:
        if job.run_ids & seen:
            raise ReproError(f"run {job.name} appears twice among the jobs")
        if (job.teacher_ids & ids) - seen:
            raise ReproError(f"run {job.name} comes before its teacher; give the jobs teachers first")
        seen |= job.run_ids


def ready(job: Job, ids: set[str], finished: set[str]) -> bool:
    """A job may start when each of its teachers is not among the jobs (done already) or finished."""
    return all(t not in ids or t in finished for t in job.teacher_ids)


def failure(job: Job, exc: BaseException) -> ReproError:
    what = str(exc) if isinstance(exc, ReproError) else f"{type(exc).__name__}: {exc}"
    return ReproError(f"run {job.name} failed ({job.folder}): {what}")


def check_at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise ReproError(f"{option} must be at least 1, got {value}")


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class LauncherEntry:
    """A launcher as the command line knows it: `add_arguments` adds its own options to the parser,
    `build` makes it from the parsed arguments; `implied_by` says when the arguments ask for it without
    `--launcher` (e.g. `--jobs 4` asks for the pool)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    build: Callable[[argparse.Namespace, Log], Launcher]
    implied_by: Callable[[argparse.Namespace], bool] | None = None


_LAUNCHERS: dict[str, LauncherEntry] = {}


def register_launcher(entry: LauncherEntry) -> LauncherEntry:
    if entry.name in _LAUNCHERS:
        raise ValueError(f"launcher {entry.name!r} registered twice")
    _LAUNCHERS[entry.name] = entry
    return entry


def launcher_entries() -> list[LauncherEntry]:
    """Every registered launcher, in the order registered."""
    return list(_LAUNCHERS.values())


def launcher_entry(name: str) -> LauncherEntry:
    if name not in _LAUNCHERS:
        raise unknown_choice("launcher", name, list(_LAUNCHERS))
    return _LAUNCHERS[name]

"""The `local` launcher: one run after another in this process (the default)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from repro.plan.execute import Job, execute
from repro.plan.launchers.base import LauncherEntry, Log, check_order, failure, register_launcher


class LocalLauncher:
    """One run after another in this process."""

    def __init__(self, log: Log = print, progress: bool | None = None) -> None:
        self.log, self.progress = log, progress

    def run(self, jobs: Sequence[Job]) -> list[str]:
        check_order(jobs)
        results = []
        for i, job in enumerate(jobs, 1):
            self.log(f"[{i}/{len(jobs)}] {job.name}")
            try:
                result = execute(job, progress=self.progress)
            except Exception as exc:
                raise failure(job, exc) from exc
            self.log(f"[{i}/{len(jobs)}] {job.name}: {result}")
            results.append(result)
        return results


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


ENTRY = register_launcher(LauncherEntry(
    name="local", help="one run after another (the default)", add_arguments=_no_arguments,
    build=lambda args, log: LocalLauncher(log=log)))

"""Launchers: the ways to carry out a plan's runs, one module each over `base` (the shared part and the
registry). `local`: one run after another in this process; `pool`: worker processes, K per GPU; `slurm`:
Slurm jobs through submitit. Importing this package imports every launcher module, so adding a launcher
means adding its module: `repro reproduce` takes its options and builds it through its registry entry.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import time
from collections.abc import Sequence

from repro.plan.execute import Job
from repro.plan.launchers.base import (
    Launcher,
    LauncherEntry,
    Log,
    at_least_one,
    check_at_least_one,
    check_order,
    launcher_entries,
    launcher_entry,
    register_launcher,
)
from repro.plan.launchers.local import LocalLauncher

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

DEFAULT = "local"


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """`--launcher`, `--runs-per-gpu` (the pool's and Slurm's), then every launcher's own options."""
    entries = launcher_entries()
    parser.add_argument("--launcher", choices=[e.name for e in entries], default=None,
                        help="; ".join(f"{e.name}: {e.help}" for e in entries))
    parser.add_argument("--runs-per-gpu", type=at_least_one, default=1, metavar="K",
                        help="K runs share each GPU, in separate processes (the networks are too small for "
                             "one run to fill a GPU; `python -m repro.bench --only gpu` measures the best "
                             "K). pool: --jobs x K workers, K per GPU (on a CPU: K processes sharing the "
                             "cores); slurm: one job with one GPU per K runs (default 1)")
    for entry in entries:
        entry.add_arguments(parser)


def launcher_from_arguments(args: argparse.Namespace, log: Log = print) -> Launcher:
    """The launcher the parsed arguments ask for: `--launcher`, else (or when it is `local`) the first
    whose options were given (`--jobs 4`: the pool), else one run after another here."""
    name = args.launcher or DEFAULT
    if name == DEFAULT:
        name = next((e.name for e in launcher_entries() if e.implied_by and e.implied_by(args)), DEFAULT)
    return launcher_entry(name).build(args, log)


def launch(jobs: Sequence[Job], launcher: Launcher | None = None, log: Log = print) -> list[str]:
    """Carry out `jobs` (teachers before students) with `launcher` (default: one after another here); what
    each run did, in order."""
    started = time.monotonic()
    results = (launcher or LocalLauncher(log=log)).run(jobs)
    runs = sum(len(job.run_ids) for job in jobs)
    fleets = sum(len(job.run_ids) > 1 for job in jobs)
    log(f"{runs} run(s) carried out" + (f" ({fleets} fleet(s))" if fleets else "")
        + f" in {time.monotonic() - started:.0f} s")
    return results


__all__ = ["DEFAULT", "Launcher", "LauncherEntry", "LocalLauncher", "Log", "add_launcher_arguments",
           "check_at_least_one", "check_order", "launch", "launcher_entries", "launcher_entry",
           "launcher_from_arguments", "register_launcher"]

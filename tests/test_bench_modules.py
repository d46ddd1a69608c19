"""Every benchmark module of `python -m repro.bench` (`nox -s bench`) imports and has its `run()`: a module
left behind by a change elsewhere would only fail when someone runs the bench."""

from __future__ import annotations

import importlib
import pkgutil

import repro.bench


def test_every_bench_module_imports_and_runs_something():
    names = [m.name for m in pkgutil.iter_modules(repro.bench.__path__) if not m.name.startswith("_")]
    assert {"step_overhead", "fleet", "gpu", "gpu_fidelity", "data_speed", "train_speed"} <= set(names)
    for name in names:
        assert callable(importlib.import_module(f"repro.bench.{name}").run), name

"""Benchmark of `repro report`: seconds to build the report (with and without figures) from a results
folder. By default the folder is a smoke quickstart made here (about a minute); set
REPRO_BENCH_RESULTS=DIR to time the report of an existing folder too (e.g. a smoke `reproduce all`,
issue 9 asks for under 30 s on a 2-core CPU)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from repro.report.build import build_report
from repro.report.inputs import load_inputs


def _time_report(results: Path, work: Path) -> dict:
    inputs = load_inputs(results)
    t0 = time.perf_counter()
    build_report(results, work / "no-figures", figures=False, log=lambda *_: None)
    t_tables = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_report(results, work / "full", log=lambda *_: None)
    t_full = time.perf_counter() - t0
    return {"results": str(results), "tables": inputs.table_names, "runs": len(inputs.runs),
            "cells": len(inputs.results), "report_s": round(t_full, 2),
            "report_no_figures_s": round(t_tables, 2),
            "html_bytes": (work / "full" / "report.html").stat().st_size}


def run() -> dict:
    from repro.plan.orchestrate import Options, carry_out
    from repro.results.tabulate import tabulate
    from repro.specs import tables

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        qs = tmp_path / "quickstart"
        quiet = lambda *_: None  # noqa: E731
        plan = carry_out(tables("quickstart"), qs, Options(profile="smoke", estimate="none",
                                                          overrides=("optim.iters_per_epoch=10",)), log=quiet)
        tabulate(plan, qs, log=quiet)
        out["quickstart_smoke"] = _time_report(qs, tmp_path / "qs-report")
        given = os.environ.get("REPRO_BENCH_RESULTS")
        if given:
            out["given"] = _time_report(Path(given), tmp_path / "given-report")
    return out

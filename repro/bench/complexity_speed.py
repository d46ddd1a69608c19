"""Benchmark of the complexity tooling: counting time, FSRCNN x4 CPU runtime, the whole table's time."""

from __future__ import annotations

import time

from repro.complexity.macs import fvcore_macs, hook_macs, thop_macs
from repro.complexity.measure import Options, default_models, measure
from repro.complexity.runtime import runtime_ms
from repro.complexity.table import render
from repro.models import create
from repro.provenance import environment
from repro.scales import SCALES


def _timed(fn, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def run() -> dict:
    net = create("fsrcnn", scale=4)
    ours, t_ours = _timed(hook_macs, net, 4)
    _, t_fv = _timed(fvcore_macs, net, 4)
    _, t_thop = _timed(thop_macs, net, 4)
    drcn = create("drcn", scale=2)
    big, t_drcn = _timed(hook_macs, drcn, 2)
    env = environment("cpu")
    fsrcnn_ms = runtime_ms(net, 4, "cpu", repeats=10, warmup=2)
    # the whole table without runtimes (counting by all three counters, findings, rendering)
    t0 = time.perf_counter()
    rows = [measure(m, s, Options(runtime=False), env) for m in default_models() for s in SCALES]
    render(rows)
    t_table = time.perf_counter() - t0
    return {
        "fsrcnn_x4_true_gmacs": ours.weight / 1e9,
        "count_fsrcnn_x4_s": {"ours_meta": t_ours, "fvcore": t_fv, "thop_meta": t_thop},
        "count_drcn_x2_ours_s": t_drcn,
        "drcn_x2_true_gmacs": big.weight / 1e9,
        "runtime_cpu_fsrcnn_x4_ms": fsrcnn_ms,
        "table_without_runtime_s": t_table,
        "table_rows": len(rows),
        "cpu": env["cpu"],
        "torch_threads": env["torch_threads"],
    }

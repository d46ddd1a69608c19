"""Printed runtimes held against physics: the throughput each implies beside the named GPU's peak (a data
file with its sources), flagged where it exceeds it; the GPU runtime measured here beside it."""

from __future__ import annotations

import pytest

from repro.complexity import physics
from repro.complexity.measure import Options, measure
from repro.complexity.table import findings, table_rows


def test_every_gpu_peak_has_its_figures_and_source():
    peaks = physics.peaks()
    assert {"Titan RTX", "H200"} <= {p.name for p in peaks}
    for p in peaks:
        assert p.names and p.source and 0 < p.fp32_tflops < p.fp16_tensor_tflops and p.memory_tb_s > 0
    titan = physics.peak_of("a Titan RTX")
    assert (titan.fp32_tflops, titan.fp16_tensor_tflops) == (16.3, 130.5)
    assert physics.peak_of("NVIDIA H200").name == "H200" and physics.peak_of("a GPU of tomorrow") is None


def test_a_runtime_is_held_against_the_peak():
    # MemNet: 2,662.4 G MultiAdds printed, 21.06 ms: 253 TFLOP/s, above even a Titan RTX's tensor cores
    assert physics.implied_tflops(2662.4, 21.06) == pytest.approx(252.8, abs=0.1)
    titan = physics.peak_of("Titan RTX")
    assert physics.verdict(252.8, titan) == "above every peak"
    assert physics.verdict(128.5, titan) == "above fp32 peak"  # DRRN: possible only on fp16 tensor cores
    assert physics.verdict(14.5, titan) == ""  # FSRCNN
    assert physics.verdict(None, titan) == "?"


@pytest.fixture(scope="module")
def rows():
    """Measured complexity records (counts only, no runtime) of the printed networks at x4."""
    opts = Options(tools=False, runtime=False)
    return [measure(m, 4, opts, {"cpu": "test"}) for m in ("fsrcnn", "drcn", "drrn", "memnet", "carn")]


def test_the_complexity_findings_flag_the_impossible_runtimes(rows):
    (found,) = [f for f in findings(rows) if f["topic"] == "printed runtimes against physics"]
    text = found["text"]
    assert "Titan RTX: 16.3 TFLOP/s peak in fp32, 130.5 with fp16 tensor cores" in text
    assert "MemNet x4: 2,662.4 G in 21.06 ms = 252.8 TFLOP/s (above every peak)" in text
    assert "DRCN x4: " in text and "DRRN x4: " in text and "(above fp32 peak)" in text
    assert "MemNet: faster than any unit of a Titan RTX can compute" in text
    assert "FSRCNN* / PISR / DSSD x4: 6.0 G in 0.83 ms = 14.5 TFLOP/s;" in text  # possible: not flagged


def test_the_measured_gpu_runtime_sits_beside_the_printed_one(rows):
    h200 = {"runtime_gpu_ms": 150.0, "environment": {"gpu": "NVIDIA H200"}}
    with_gpu = [{**r, **h200} if r["model"] == "memnet" else r for r in rows]
    shown = {r["model"]: r for r in table_rows(with_gpu)}
    assert shown["MemNet"]["p_runtime"] == "21.06" and shown["MemNet"]["p_implied"] == "252.8 !!"
    assert shown["MemNet"]["gpu"] == "150.00" and shown["MemNet"]["gpu_implied"].strip() != "-"
    assert shown["DRCN"]["gpu_implied"] == "-"
    (found,) = [f for f in findings(with_gpu) if f["topic"] == "printed runtimes against physics"]
    assert "Measured here on NVIDIA H200 (peak 67 TFLOP/s fp32" in found["text"]
    assert "150.00 ms" in found["text"]

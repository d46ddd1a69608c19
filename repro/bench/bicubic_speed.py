"""Time the full Bicubic row (4 sets x 3 scales = 24 cells) on the real images, and `imresize` alone.

Needs the benchmark images under $REPRO_DATA; otherwise the benchmark reports itself skipped.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

from repro.data import testsets
from repro.data.names import BENCHMARK_SETS
from repro.evaluate.bicubic_row import bicubic_row, default_workers
from repro.imaging.resize import imresize
from repro.published import published
from repro.scales import SCALES


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _imresize_only() -> dict[str, float]:
    """Serial `imresize` over every test image: HR -> LR (downscale) and LR -> SR (upscale), pre-decoded."""
    start = time.perf_counter()
    pairs = {(s, sc): testsets.load_set(s, sc) for s in BENCHMARK_SETS for sc in SCALES}
    load_s = time.perf_counter() - start
    n_images, pixels, down_s, up_s = 0, 0, 0.0, 0.0
    for (_, scale), items in pairs.items():
        for pair in items:
            hr = np.array(pair.hr)
            t0 = time.perf_counter()
            lr = imresize(hr, 1.0 / scale)
            t1 = time.perf_counter()
            imresize(lr, scale)
            up_s += time.perf_counter() - t1
            down_s += t1 - t0
            n_images += 1
            pixels += hr.shape[0] * hr.shape[1]
    return {"load_seconds_serial": round(load_s, 3), "imresize_down_seconds": round(down_s, 3),
            "imresize_up_seconds": round(up_s, 3), "imresize_calls": 2 * n_images,
            "imresize_hr_megapixels_per_s": round(2 * pixels / 1e6 / (down_s + up_s), 2)}


def run() -> dict[str, object]:
    if not os.environ.get("REPRO_DATA"):
        return {"skipped": "REPRO_DATA is not set: point it at the folder holding benchmark/<set>/"}
    testsets.clear_cache()  # the row is timed cold: workers fork from this process and would inherit it
    workers = default_workers()
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    rows = bicubic_row(BENCHMARK_SETS, SCALES, workers=workers, progress=False)
    row_s = time.perf_counter() - start
    row_cpu = _cpu_seconds() - cpu0
    diffs_psnr = [abs(r["psnr"] - published("appendix1", "Bicubic", r["scale"], r["dataset"], "psnr"))
                  for r in rows]
    diffs_ssim = [abs(r["ssim"] - published("appendix1", "Bicubic", r["scale"], r["dataset"], "ssim"))
                  for r in rows]
    result: dict[str, object] = {
        "row_seconds": round(row_s, 3),
        "row_cpu_seconds": round(row_cpu, 3),  # this process + its finished workers: robust to a busy machine
        "cells": len(rows),  # (set, scale) pairs
        "values": 2 * len(rows),  # PSNR and SSIM of each
        "images_measured": sum(int(r["n_images"]) for r in rows),
        "workers": workers,
        "max_abs_psnr_diff_db": round(max(diffs_psnr), 4),
        "max_abs_ssim_diff": round(max(diffs_ssim), 5),
    }
    result.update(_imresize_only())
    testsets.clear_cache()
    return result

"""The Bicubic row of Appendix Table I: MATLAB-bicubic upscaling of the LR, measured on Y.

This row needs no network, so it checks the whole evaluation protocol (mod-crop, LR files, imresize,
Y conversion, border crop, PSNR/SSIM) against printed numbers from the images alone.
Work is split per image (all scales of one image in one task, so each HR is decoded once) over a
process pool; the per-image figures are then averaged per set and scale.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from repro.data.testsets import ImageFiles, ImagePair, check_set, load_pair, load_set, set_files
from repro.evaluate.metrics import psnr_ssim_y
from repro.imaging.resize import imresize
from repro.scales import check_scale

# One image across scales: (set, [(scale, files), ...]).
_Job = tuple[str, list[tuple[int, ImageFiles]]]


def measure_pair(pair: ImagePair, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y of the uint8 MATLAB-bicubic upscale of `pair.lr`, `scale` pixels cropped."""
    sr = imresize(pair.lr, scale)
    if sr.shape != pair.hr.shape:
        raise ValueError(f"{pair.name}: bicubic output {sr.shape} does not match HR {pair.hr.shape}")
    return psnr_ssim_y(sr, pair.hr, scale)


def _measure_job(job: _Job) -> list[tuple[str, int, float, float]]:
    set_name, items = job
    return [(set_name, scale, *measure_pair(load_pair(files, scale), scale)) for scale, files in items]


def _jobs(sets: Sequence[str], scales: Sequence[int], root: str | None) -> list[_Job]:
    """One job per image file of the on-disk sets (validates every set folder before any work)."""
    jobs = []
    for set_name in sets:
        if set_name == "sample":
            continue
        per_image: dict[str, list[tuple[int, ImageFiles]]] = defaultdict(list)
        for scale in scales:
            for files in set_files(set_name, scale, root):
                per_image[files.name].append((scale, files))
        jobs.extend((set_name, items) for _, items in sorted(per_image.items()))
    return jobs


def default_workers() -> int:
    """One worker per usable core (at most 8: beyond that, decoding PNGs contends for the disk)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def bicubic_row(
    sets: Sequence[str],
    scales: Sequence[int],
    root: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[dict[str, object]]:
    """Mean PSNR/SSIM of bicubic upscaling per (set, scale): tidy rows in the order of `sets` x `scales`."""
    for s in sets:
        check_set(s)
    for sc in scales:
        check_scale(sc)
    jobs = _jobs(sets, scales, root)
    workers = default_workers() if workers is None else max(1, workers)
    per_cell: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    n_sample = sum(1 for s in sets if s == "sample")
    show = progress and n_sample < len(sets)
    with tqdm(total=len(jobs), desc="bicubic", unit="img", disable=not show) as bar:
        if workers > 1 and len(jobs) > 1:
            pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
            try:
                for results in pool.map(_measure_job, jobs, chunksize=2):
                    for set_name, scale, p, s in results:
                        per_cell[set_name, scale].append((p, s))
                    bar.update()
            finally:  # on an error (e.g. an unreadable image) stop at once instead of finishing the queue
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for job in jobs:
                for set_name, scale, p, s in _measure_job(job):
                    per_cell[set_name, scale].append((p, s))
                bar.update()
    if n_sample:  # embedded set: in memory, small, measured here
        for scale in scales:
            per_cell["sample", scale] = [measure_pair(pair, scale) for pair in load_set("sample", scale)]
    rows = []
    for set_name in sets:
        for scale in scales:
            values = np.array(per_cell[set_name, scale], dtype=np.float64)
            rows.append({"dataset": set_name, "scale": int(scale), "psnr": float(values[:, 0].mean()),
                         "ssim": float(values[:, 1].mean()), "n_images": int(len(values))})
    return rows

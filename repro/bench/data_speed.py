"""Training-data throughput at the paper's settings (x4, 192x192 HR patches, batch 16).

Figures: time to build the decoded-image cache and to reopen it, patches per second the loader cuts
(crops, flipped and turned: a loader's work) in the main process and with 2 workers, and the share of a
real training step (FSRCNN, the cheapest network, hence the worst case; and the DSSD teacher; each batch
converted in the step's process, as the engine converts it where the network trains) spent waiting for
the next batch.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from repro.data.patches import PAPER_BATCH, PAPER_HR_PATCH, PatchSampler, batch_of, make_loader
from repro.data.sampler import Planes
from repro.data.train_set import clear_memory_cache, load_train_images
from repro.models.registry import create

SCALE = 4


def _cache_times(source: str, root: str | None, cache: Path) -> dict[str, float]:
    clear_memory_cache()
    start = time.perf_counter()
    images = load_train_images(source, SCALE, root=root, cache_root=cache, progress=False)
    built = time.perf_counter() - start
    clear_memory_cache()
    start = time.perf_counter()
    load_train_images(source, SCALE, root=root, cache_root=cache, progress=False)
    return {"images": len(images), "cache_build_s": round(built, 3),
            "cache_reopen_s": round(time.perf_counter() - start, 4)}


def _patches_per_second(sampler: PatchSampler, workers: int, iterations: int) -> float:
    loader = make_loader(sampler, PAPER_BATCH, 0, iterations + 2, num_workers=workers)
    it = iter(loader)
    next(it), next(it)  # workers started and warm
    start = time.perf_counter()
    for _ in range(iterations):
        next(it)
    return iterations * PAPER_BATCH / (time.perf_counter() - start)


def _step_fn(model_name: str) -> tuple[torch.nn.Module, Callable[[dict], None]]:
    model = create(model_name, scale=SCALE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        if model_name == "fsrcnn":
            loss = (model(batch["lr"]) - batch["hr"]).abs().mean()
        else:
            out = model(batch["hr"])
            loss = (out.sr - batch["hr"]).abs().mean() + sum(
                (c - t).abs().mean() for c, t in zip(out.compact, batch["targets"], strict=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step


def _wait_share(sampler: PatchSampler, model_name: str, workers: int, iterations: int) -> dict[str, float]:
    """Share of wall time spent in `next(loader)` during real training steps."""
    _, step = _step_fn(model_name)
    planes = Planes(sampler.sides, sampler.in_channels, "cpu")
    loader = make_loader(sampler, PAPER_BATCH, 0, iterations + 3, num_workers=workers)
    it = iter(loader)
    for _ in range(3):  # warm-up: worker start, allocator, first kernels
        step(batch_of(next(it), planes))
    wait = total = 0.0
    for _ in range(iterations):
        t0 = time.perf_counter()
        cut = next(it)
        t1 = time.perf_counter()
        step(batch_of(cut, planes))
        t2 = time.perf_counter()
        wait += t1 - t0
        total += t2 - t0
    return {"step_ms": round(1000 * total / iterations, 2), "wait_share": round(wait / total, 4)}


def run() -> dict[str, object]:
    results: dict[str, object] = {"scale": SCALE, "hr_patch": PAPER_HR_PATCH, "batch": PAPER_BATCH,
                                  "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    sources = [("sample", None)]
    if os.environ.get("REPRO_DATA"):
        sources.append(("t91", os.environ["REPRO_DATA"]))
    with tempfile.TemporaryDirectory(prefix="repro-bench-data-") as tmp:
        for source, root in sources:
            fig = _cache_times(source, root, Path(tmp) / source)
            images = load_train_images(source, SCALE, root=root, cache_root=Path(tmp) / source,
                                       progress=False)
            sampler = PatchSampler(images, SCALE, PAPER_HR_PATCH, in_channels=1, seed=0)
            fig["patches_per_s_main_process"] = round(_patches_per_second(sampler, 0, 40), 1)
            fig["patches_per_s_2_workers"] = round(_patches_per_second(sampler, 2, 80), 1)
            if source == "sample":
                for model_name, iterations in (("fsrcnn", 30), ("dssd_teacher", 6)):
                    for workers in (0, 1, 2):
                        fig[f"{model_name}_step_{workers}_workers"] = _wait_share(sampler, model_name,
                                                                                  workers, iterations)
            results[source] = fig
            clear_memory_cache()  # the temporary cache goes away with `tmp`
    return results

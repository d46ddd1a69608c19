"""What the training engine adds to a step: its ms/step beside a minimal hand-written loop.

Both train FSRCNN x4 with Adam (lr 1e-3) on batches of 16 patches of 24 px (LR 6 px), one torch thread.
The minimal loop is five lines (forward, L1, zero_grad, backward, step) over batches made beforehand;
the engine (`repro.train.engine.train`) samples its patches from the embedded `sample` photos, sums the
loss terms on the device, follows the cosine schedule and logs every 100 iterations, as a real run
does. They alternate in one process (engine, loop, engine, loop, ...), so load on a shared machine
falls on both alike; each side's figure is the median of its repeats, `ratio` = engine / loop.
The engine's time is the wall time of its iterations (metrics.csv's step times), set-up excluded.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from repro.models import create
from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train.engine import train

SCALE, BATCH, HR_PATCH = 4, 16, 24
ITERATIONS, WARMUP, REPEATS = 600, 100, 3


def minimal_loop_ms(iterations: int = ITERATIONS, warmup: int = WARMUP) -> float:
    """ms per step of the plainest loop with the engine's network, optimizer and patch shape."""
    torch.manual_seed(0)
    net = create("fsrcnn", scale=SCALE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    lr_side = HR_PATCH // SCALE
    batches = [(torch.rand(BATCH, 1, lr_side, lr_side), torch.rand(BATCH, 1, HR_PATCH, HR_PATCH))
               for _ in range(8)]
    start = 0.0
    for i in range(warmup + iterations):
        if i == warmup:
            start = time.perf_counter()
        lr, hr = batches[i % len(batches)]
        loss = F.l1_loss(net(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return 1000 * (time.perf_counter() - start) / iterations


def engine_ms(folder: Path, workers: int, iterations: int = ITERATIONS, warmup: int = WARMUP) -> float:
    """ms per step of `repro train baseline` (fsrcnn, x4) after `warmup` iterations, from metrics.csv."""
    cfg = resolve("smoke", kind="baseline", model="fsrcnn", scale=SCALE, overrides=[
        f"data.hr_patch={HR_PATCH}", f"optim.batch_size={BATCH}", "optim.epochs=1",
        f"optim.iters_per_epoch={warmup + iterations}", "optim.lr=1e-3", "run.log_every=100",
        f"run.checkpoint_every={100 * (warmup + iterations)}", "val.every=0", "val.sets=[]",
        f"data.num_workers={workers}", "run.threads=1"])
    out = folder / f"engine-{time.monotonic_ns()}"
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        train(cfg, out=out, progress=False)
    rows = [r for r in read_metrics(out) if int(float(r["iteration"])) > warmup]
    seconds = sum(100 / float(r["it_per_s"]) for r in rows)
    return 1000 * seconds / (100 * len(rows))


def run() -> dict[str, object]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loop: list[float] = []
        engine: dict[int, list[float]] = {0: [], 2: []}
        with tempfile.TemporaryDirectory(prefix="repro-bench-overhead-") as tmp:
            for _ in range(REPEATS):
                for workers in engine:
                    engine[workers].append(engine_ms(Path(tmp), workers))
                    torch.set_num_threads(1)  # the engine sets its own threads; the loop runs on one
                    loop.append(minimal_loop_ms())
    finally:
        torch.set_num_threads(threads)
    loop_ms = statistics.median(loop)
    out: dict[str, object] = {"model": "fsrcnn", "scale": SCALE, "batch": BATCH, "hr_patch": HR_PATCH,
                              "iterations": ITERATIONS, "repeats": REPEATS, "torch_threads": 1,
                              "minimal_loop_ms": round(loop_ms, 3),
                              "minimal_loop_ms_all": [round(v, 3) for v in loop]}
    for workers, values in engine.items():
        ms = statistics.median(values)
        out[f"engine_ms_workers{workers}"] = round(ms, 3)
        out[f"engine_ms_workers{workers}_all"] = [round(v, 3) for v in values]
        out[f"ratio_workers{workers}"] = round(ms / loop_ms, 3)
    return out

"""Runtime of one 1280x720-output forward: median of many after warm-up, with the environment recorded.

CPU: wall clock (perf_counter) around a forward under `torch.inference_mode`. CUDA: CUDA events around
the forward with the input already on the device, synchronised per run. Either way the figure belongs to
the machine that `repro.provenance.environment()` records; compare rows measured in one run, not figures
across machines.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from repro.complexity.macs import RUNTIME_ROUNDING, input_channels, lr_size
from repro.errors import ReproError


def require_cuda() -> None:
    """One clear error when a CUDA measurement cannot run here, saying why (the build or the device)."""
    if torch.cuda.is_available():
        return
    if torch.version.cuda is None:
        why = f"this torch ({torch.__version__}) is a CPU-only build: install a CUDA build of torch"
    else:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        why = (f"this torch (CUDA build {torch.version.cuda}) sees no CUDA device (driver missing or too old"
               + (f", or CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "") + ")")
    raise ReproError(f"--device cuda: no CUDA: {why}; or use --device cpu")


def runtime_ms(model: nn.Module, scale: int, device: str = "cpu", repeats: int = 10, warmup: int = 2,
               lr_hw: tuple[int, int] | None = None) -> float:
    """Median milliseconds of one forward producing a 1280x720 output (x3: 1278x720, LR 240x426)."""
    if device.startswith("cuda"):
        require_cuda()
    if repeats < 1:
        raise ReproError(f"--repeats must be at least 1, got {repeats}")
    net = model.to(device).eval()
    hw = lr_hw or lr_size(scale, RUNTIME_ROUNDING)
    x = torch.rand(1, input_channels(model), *hw, device=device)  # on the device before any timing
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        if device.startswith("cuda"):
            return cuda_median_ms(lambda: net(x), repeats)
        times: list[float] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def cuda_median_ms(forward: Callable[[], object], repeats: int) -> float:
    """Median of `repeats` calls of `forward` timed with CUDA events on the current stream: the GPU's own
    time of the work queued between the two events (not the Python around it), synchronised after each
    call so that one call's kernels never overlap the next call's timing."""
    torch.cuda.synchronize()  # the warm-up's kernels are done before the first event
    times: list[float] = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        forward()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)

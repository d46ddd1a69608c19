"""Runtime of one 1280x720-output forward: median of many after warm-up, with the environment recorded.

CPU: wall clock (perf_counter) around a forward under `torch.inference_mode`. CUDA: CUDA events around
the forward with the input already on the device, synchronised per run. Either way the figure belongs to
the machine that `repro.provenance.environment()` records; compare rows measured in one run, not figures
across machines.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from repro.complexity.macs import RUNTIME_ROUNDING, input_channels, lr_size
from repro.errors import ReproError


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise ReproError("--device cuda: this torch has no CUDA device "
                         f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")


def runtime_ms(model: nn.Module, scale: int, device: str = "cpu", repeats: int = 10, warmup: int = 2,
               lr_hw: tuple[int, int] | None = None) -> float:
    """Median milliseconds of one forward producing a 1280x720 output (x3: 1278x720, LR 240x426)."""
    if device == "cuda":
        require_cuda()
    if repeats < 1:
        raise ReproError(f"--repeats must be at least 1, got {repeats}")
    net = model.to(device).eval()
    hw = lr_hw or lr_size(scale, RUNTIME_ROUNDING)
    x = torch.rand(1, input_channels(model), *hw, device=device)
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                net(x)
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(repeats):
                t0 = time.perf_counter()
                net(x)
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)

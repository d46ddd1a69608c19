"""What a measured figure depends on: machine, library versions, GPU stack, code revision.

One record for every place that keeps provenance: a run's `done.json`, the complexity table's runtime
column and the benchmark JSON. Reading it costs no GPU work (the driver comes from `nvidia-smi`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def threads_text(n: object) -> str:
    """"1 thread", "2 threads": how every record, table and report names a CPU's torch threads."""
    try:
        return f"{int(n)} thread" + ("" if int(n) == 1 else "s")
    except (TypeError, ValueError):
        return f"{n} threads"


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def git_commit(folder: str | os.PathLike[str] | None = None) -> str | None:
    """The suite's commit (with `+dirty` when the work tree has changes), or None outside a checkout."""
    cwd = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head or None


def environment(device: str = "cpu") -> dict[str, object]:
    """CPU, threads, Python, torch, commit, date; and the GPU stack when `device` is a CUDA device."""
    import torch

    env: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda_available": torch.cuda.is_available(),
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if str(device).startswith("cuda") and torch.cuda.is_available():
        env.update({
            "gpu": torch.cuda.get_device_name(),
            "driver": _nvidia_driver(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        })
    return env

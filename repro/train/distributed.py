"""One process or many: read torchrun's environment, pick the device, reduce logged numbers.

`torchrun --nproc_per_node=N -m repro train ...` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; with WORLD_SIZE > 1 we join the group (nccl on CUDA, gloo on CPU) and every rank takes
its share of the same global batch. Rank 0 alone writes files and draws the progress bar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from repro.errors import ReproError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, values: list[float]) -> list[float]:
        """The mean over ranks of each number (for logging: every rank calls it at the same point)."""
        if not self.active or not values:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=_comm_device())
        dist.all_reduce(t)
        return (t / self.world_size).tolist()


def _comm_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """(this process's place in the group, its device) from torchrun's variables, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ReproError(f"run.device={device} but CUDA is not available; use --set run.device=cpu")
        if dev.index is None:
            dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

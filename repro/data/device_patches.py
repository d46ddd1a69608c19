"""Training patches cut on the training device: the decoded set lives there as uint8, no workers, no copy.

The host path (`repro.data.patches`) slices every crop from the memory-mapped images in a loader worker
and copies them (uint8) to the GPU, which converts them. Here every level of every training image is
uploaded once into one flat uint8 buffer (DIV2K 0001-0800, estimated from its ~2040x1356 average:
6.6 GB of HR, 8.7 GB with x4's two levels, 7.4 GB at x3, 8.3 GB at x2), and a batch is a few device
operations: one gather per level cuts the crops, flipped and turned, then `repro.data.sampler.Planes`
converts them as for the host path. The draw (`PatchSampler.params`) runs on the host for
`CHUNK_ITERATIONS` iterations at once: four integers a sample, sent in one small (pinned, asynchronous)
copy per chunk.

Same batches as the host path (torch.equal), by construction: the same draw, the same crops, the same
conversion code. A batch's cut takes its parameters from a device tensor and has fixed shapes, so it can
be captured in a CUDA graph with the step (`run.cuda_graph`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from repro.data.patches import CHUNK_ITERATIONS, PAPER_BATCH, PatchSampler, check_split
from repro.data.sampler import Planes, as_batch, source_pixels
from repro.data.train_set import TrainImage
from repro.errors import ReproError
from repro.scales import level_factors

# Left free on the device for the network, its activations and the optimizer when checking that the set fits.
DEFAULT_RESERVE = 2 * 2**30
# Device bytes per patch pixel while a batch is cut: int64 index (3 channels), uint8 crops, float64
# conversion temporaries and the float32 planes, with room to spare.
_WORK_BYTES_PER_PIXEL = 160


# ---------------------------------------------------------------- memory
def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _used(images: Sequence[TrainImage], hr_patch: int) -> list[TrainImage]:
    """The images PatchSampler keeps: those at least one patch wide and high."""
    return [im for im in images if min(im.hr.shape[:2]) >= hr_patch]


def stored_bytes(images: Sequence[TrainImage], scale: int, hr_patch: int) -> int:
    """Bytes of the uint8 pixels kept on the device: HR and every level of each image the patch fits in."""
    factors = level_factors(scale)
    used = _used(images, hr_patch)
    return int(sum(im.hr.nbytes + sum(im.levels[f].nbytes for f in factors) for im in used))


def work_bytes(scale: int, hr_patch: int, batch_size: int = PAPER_BATCH) -> int:
    """Bytes of the temporaries of cutting one batch of `batch_size` (per rank) patches, generously."""
    patch_pixels = batch_size * sum((hr_patch // f) ** 2 for f in (1, *level_factors(scale)))
    return int(patch_pixels * _WORK_BYTES_PER_PIXEL + CHUNK_ITERATIONS * batch_size * 64)


def device_memory_bytes(images: Sequence[TrainImage], scale: int, hr_patch: int,
                        batch_size: int = PAPER_BATCH) -> int:
    """Bytes the on-device patch source takes: `stored_bytes` plus `work_bytes` (DIV2K 0001-0800 at x4,
    16 x 192 px: about 8.7 GB plus 0.13 GB)."""
    return stored_bytes(images, scale, hr_patch) + work_bytes(scale, hr_patch, batch_size)


def free_memory(device: torch.device) -> tuple[int, int] | None:
    """(free, total) bytes of `device`: `torch.cuda.mem_get_info` on CUDA (plus what PyTorch's caching
    allocator holds unused, which it hands out again), MemAvailable/MemTotal of /proc/meminfo on the CPU;
    None where it cannot be known."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached), int(total)
    if device.type == "cpu":
        try:
            info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
            return int(info["MemAvailable"].split()[0]) * 1024, int(info["MemTotal"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return None
    return None


def check_fits(needed: int, device: torch.device, reserve: int = DEFAULT_RESERVE) -> None:
    """Refuse (ReproError) when `needed` bytes plus `reserve` for training exceed the device's free memory."""
    mem = free_memory(device)
    if mem is None:
        return
    free, total = mem
    if needed + reserve > free:
        raise ReproError(
            f"the training set needs {_gib(needed)} on {device} (plus {_gib(reserve)} kept for the network) "
            f"but only {_gib(free)} of {_gib(total)} is free; set data.on_device=false to cut the patches "
            "on the host, or use a smaller training set")


# ---------------------------------------------------------------- the source
def _upload(arrays: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
    """All arrays, C-order, one after another in one uint8 buffer on `device`; and where each starts."""
    sizes = np.array([a.size for a in arrays], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    buffer = torch.empty(int(sizes.sum()), dtype=torch.uint8, device=device)
    host = buffer.numpy() if device.type == "cpu" else None
    for a, s in zip(arrays, starts, strict=True):
        if host is not None:
            host[s:s + a.size].reshape(a.shape)[...] = a  # straight from the memory-mapped file
        else:
            buffer[s:s + a.size].copy_(torch.from_numpy(np.array(a, order="C")).view(-1))
    return buffer, starts


class DevicePatchSource:
    """The training set of one run held on `device`, cutting `sampler`'s batches there.

    Every level (HR, then HR/f finest first) of every image lies in one flat uint8 buffer; `cut` gathers
    the crops of a batch from it (channel-last, a grayscale image's value repeated to R=G=B, as the host
    path's crops are) and hands them to the same `Planes` as the host path."""

    def __init__(self, sampler: PatchSampler, device: torch.device | str,
                 reserve: int | None = DEFAULT_RESERVE, batch_size: int = PAPER_BATCH) -> None:
        self.sampler = sampler
        self.device = dev = torch.device(device)
        used = sampler.images
        if reserve is not None:  # before any upload; `batch_size` (per rank) sizes the temporaries
            check_fits(device_memory_bytes(used, sampler.scale, sampler.hr_patch, batch_size), dev, reserve)
        factors = (1, *sampler.factors)
        levels = [[im.hr if f == 1 else im.levels[f] for im in used] for f in factors]  # [L][N]
        self.buffer, starts = _upload([a for level in levels for a in level], dev)
        pix = np.array([1 if im.hr.ndim == 2 else 3 for im in used], dtype=np.int64)
        self.gray = torch.from_numpy(pix == 1).to(dev)
        self.pix = torch.from_numpy(pix).to(dev)
        self.start = torch.from_numpy(starts.reshape(len(levels), len(used))).to(dev)  # [L, N]
        self.row = torch.from_numpy(np.array([[a.shape[1] for a in level] for level in levels]) * pix).to(dev)
        self.factors = torch.tensor(factors, dtype=torch.int64, device=dev)[:, None]  # [L, 1]
        self.sides = sampler.sides
        # for each (flip * 4 + turns): the plain crop's row and column of each augmented pixel
        tables = [torch.from_numpy(source_pixels(q)).to(dev) for q in self.sides]
        self.src_rows = [tb // q for tb, q in zip(tables, self.sides, strict=True)]
        self.src_cols = [tb % q for tb, q in zip(tables, self.sides, strict=True)]
        self.channel = torch.arange(3, dtype=torch.int64, device=dev)  # R, G, B (a gray image: 0, 0, 0)
        self.planes = Planes(self.sides, sampler.in_channels, dev)

    def cut(self, params: torch.Tensor) -> dict[str, object]:
        """The batch of the samples `params` ([n, 4] int64 on the device: image, top, left, flip * 4 +
        turns) describes; fixed shapes and no host read, so it can be captured in a CUDA graph."""
        k, top, left, combo = params.unbind(1)
        gray, row, pix = self.gray[k], self.row[:, k], self.pix[k]  # [n], [L, n], [n]
        first = self.start[:, k] + (top // self.factors) * row + (left // self.factors) * pix  # [L, n]
        channel = self.channel * (pix[:, None] == 3)  # [n, 3]
        index = []
        for lv in range(len(self.sides)):
            pixel = self.src_rows[lv][combo] * row[lv][:, None] + self.src_cols[lv][combo] * pix[:, None]
            index.append((first[lv][:, None, None] + pixel[:, :, None] + channel[:, None, :]).view(-1))
        crops = self.buffer.index_select(0, torch.cat(index)).view(-1, 3)
        return as_batch(self.planes(crops, gray))

    def param_chunks(self, batch_size: int, start: int, num: int, rank: int = 0, world_size: int = 1,
                     chunk: int = CHUNK_ITERATIONS,
                     seeds: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
        """This rank's [per, 4] parameters of iterations start .. start+num-1 on the device, drawn and
        copied `chunk` iterations at a time (with `seeds`, a fleet's: [len(seeds) * per, 4] each)."""
        check_split(batch_size, rank, world_size)
        if start < 0 or num < 0 or chunk < 1:
            raise ValueError("start and num must be >= 0, chunk >= 1")
        return self._chunks(batch_size, start, num, rank, world_size, chunk, seeds)

    def _chunks(self, batch_size: int, start: int, num: int, rank: int, world_size: int, chunk: int,
                seeds: Sequence[int] | None) -> Iterator[torch.Tensor]:
        per = batch_size // world_size * (len(seeds) if seeds is not None else 1)
        pin = self.device.type == "cuda"
        for first in range(start, start + num, chunk):
            its = np.arange(first, min(first + chunk, start + num))
            staged = torch.from_numpy(self.sampler.params(its, batch_size, rank, world_size, seeds))
            params = (staged.pin_memory() if pin else staged).to(self.device, non_blocking=pin)
            for j in range(len(its)):
                yield params[j * per:(j + 1) * per]

    def batches(self, batch_size: int, start: int, num: int, rank: int = 0, world_size: int = 1,
                channels_last: bool = False, chunk: int = CHUNK_ITERATIONS) -> Iterator[dict[str, object]]:
        """Batches of iterations start .. start+num-1 on this rank, equal to the host loader's."""
        for params in self.param_chunks(batch_size, start, num, rank, world_size, chunk):
            batch = self.cut(params)
            yield channels_last_batch(batch) if channels_last else batch


def channels_last_batch(batch: dict[str, object]) -> dict[str, object]:
    def cl(x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    return {"hr": cl(batch["hr"]), "lr": cl(batch["lr"]), "targets": [cl(t) for t in batch["targets"]]}

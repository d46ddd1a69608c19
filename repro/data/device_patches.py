"""Training patches cut on the training device: the decoded set lives there as uint8, no workers, no copy.

The host path (`repro.data.patches`) crops, converts and augments every patch in a worker process and
copies each batch to the GPU. Here every level of every training image is uploaded once into one flat
uint8 buffer (DIV2K 0001-0800, estimated from its ~2040x1356 average: 6.6 GB of HR, 8.7 GB with x4's two
levels, 7.4 GB at x3, 8.3 GB at x2), and a batch is a few device ops: one gather cuts the crops of every
level, a pointwise op converts them to float, a second gather flips and rotates them.

Same batches as the host path, by construction:
- the crop, flip and rotation of sample i are drawn by `PatchDataset.crop(i)` itself (so the two can
  never drift apart), on the host, for a chunk of `CHUNK_ITERATIONS` iterations at once: a few integers
  per sample, sent in one small (pinned, asynchronous) copy per chunk rather than one tiny copy per step;
- the sample indices of a batch come from `batch_indices` (global batch split over the DDP ranks);
- the float conversion repeats `PatchDataset._tensor`'s. Y is the one subtle part: `y_unit_float32` is a
  float32 matmul in numpy, whose rounding depends on the BLAS kernel: OpenBLAS' Haswell sgemv (picked on
  the AMD EPYC development host) fuses multiply-adds in its main 8-column blocks and rounds the last
  `width % 8` columns of a row otherwise. On a CPU device the crops are therefore converted by
  `y_unit_float32` itself: bit-identical on any machine. On other devices `y_unit_torch` computes
  fma(b, wb, fma(g, wg, r * wr)) + offset exactly (in float64, where every intermediate is exact,
  rounding to float32 where the fused kernel rounds): identical to numpy on every column of the paper's
  patch widths (192, 96, 64, 48: multiples of 8) on such a host, checked on all 2^24 colours; in other
  columns, or with another BLAS kernel, up to 2 float32 ulp (<= 2.4e-7) on some pixels. Everything else
  (gray / 255, RGB / 255, crops, flips, rotations) is exact on every device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from repro.data.patches import PAPER_BATCH, PatchDataset, TrainImage, batch_indices
from repro.errors import ReproError
from repro.imaging import y_unit_float32
from repro.imaging.colour import OFFSET, YCBCR
from repro.scales import level_factors

# Iterations whose crop parameters are drawn and copied to the device together: 64 x 16 samples x 4 int64
# is 32 KB per copy; drawing them takes about 35 us a sample on the host (numpy's seeding dominates).
CHUNK_ITERATIONS = 64
# Left free on the device for the network, its activations and the optimizer when checking that the set fits.
DEFAULT_RESERVE = 2 * 2**30
# Device bytes per patch pixel while a batch is cut: int64 index (3 channels), uint8 crops, float64
# conversion temporaries and the float32 planes, with room to spare.
_WORK_BYTES_PER_PIXEL = 160
# y_unit_float32's coefficients, recomputed from the public BT.601 table exactly as colour.py does.
_Y_UNIT = (YCBCR[0] / 255.0).astype(np.float32)
_Y_UNIT_OFFSET = np.float32(OFFSET[0] / 255.0)


# ---------------------------------------------------------------- memory
def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _used(images: Sequence[TrainImage], hr_patch: int) -> list[TrainImage]:
    """The images PatchDataset keeps: those at least one patch wide and high."""
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


# ---------------------------------------------------------------- conversion
class _Constants:
    """The conversion's constants, put on the device once: making them per batch would be a copy from
    pageable memory, which waits for the device's queue."""

    def __init__(self, device: torch.device) -> None:
        self.y_weights = torch.from_numpy(_Y_UNIT.astype(np.float64)).to(device)
        self.y_offset = torch.tensor(float(_Y_UNIT_OFFSET), dtype=torch.float32, device=device)
        # a device tensor, not a CPU scalar: CUDA turns division by a CPU scalar into a multiplication by
        # its reciprocal, an ulp off
        self.c255 = torch.tensor(255.0, dtype=torch.float32, device=device)


def y_unit_torch(rgb: torch.Tensor, consts: _Constants | None = None) -> torch.Tensor:
    """Y / 255 in float32 of uint8 [..., 3] RGB as OpenBLAS' fused sgemv kernel computes y_unit_float32:
    fma(b, wb, fma(g, wg, r * wr)) + offset. Emulated in float64, where each product (8 x 24 bits) and
    each sum (all terms multiples of 2^-35 below 2) is exact, so every rounding is the single one to
    float32 that the fused kernel makes, on any device."""
    c = consts or _Constants(rgb.device)
    w, x = c.y_weights, rgb.to(torch.float64)
    acc = (x[..., 0] * w[0]).to(torch.float32).to(torch.float64)
    acc = (x[..., 1] * w[1] + acc).to(torch.float32).to(torch.float64)
    acc = (x[..., 2] * w[2] + acc).to(torch.float32)
    return acc + c.y_offset


def _aug_table(q: int, channels: int) -> np.ndarray:
    """[8, channels * q * q]: for flip * 4 + rot, where each element of a [channels, q, q] augmented patch
    comes from in its [q, q, channels] (channel-last) converted crop: PatchDataset's augment (flip the
    width, then np.rot90 `rot` times) and the move of the channels to the front, in one lookup."""
    grid = np.arange(q * q, dtype=np.int64).reshape(q, q)
    tables = []
    for flip in (0, 1):
        for rot in range(4):
            src = np.rot90(grid[:, ::-1] if flip else grid, rot).ravel()
            tables.append((src[None, :] * channels + np.arange(channels)[:, None]).ravel())
    return np.stack(tables)


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
    """The training set of one run held on `device`, cutting PatchDataset's batches there.

    Every level (HR, then HR/f finest first) of every image lies in one flat uint8 buffer. A batch of n
    samples is: one gather (`index_select`) of the crops of all levels (channel-last, gray repeated to
    R=G=B), one conversion of them all to float, one gather that flips, rotates and moves the channels
    first; the levels are then views of that one output. About 50 kernels a batch, whatever its size.

    `host_y` (default: on a CPU device) converts RGB crops to Y with numpy's `y_unit_float32` itself, so
    that the CPU device gives the host path's bits whatever BLAS kernel numpy runs; otherwise
    `y_unit_torch` (see the module's docstring)."""

    def __init__(self, images: Sequence[TrainImage], scale: int, hr_patch: int, in_channels: int,
                 augment: bool, seed: int, device: torch.device | str, host_y: bool | None = None,
                 reserve: int | None = DEFAULT_RESERVE, batch_size: int = PAPER_BATCH) -> None:
        self.dataset = PatchDataset(images, scale, hr_patch, in_channels, augment, seed)  # checks, warns
        self.device = dev = torch.device(device)
        if reserve is not None:  # before any upload; `batch_size` (per rank) sizes the temporaries
            check_fits(device_memory_bytes(images, scale, hr_patch, batch_size), dev, reserve)
        self.host_y = dev.type == "cpu" if host_y is None else host_y
        self.consts = _Constants(dev)
        used = self.dataset.images
        self.index = {im.name: n for n, im in enumerate(used)}
        self.factors = (1, *self.dataset.factors)
        self.q = [hr_patch // f for f in self.factors]
        self.channels = in_channels
        levels = [[im.hr if f == 1 else im.levels[f] for im in used] for f in self.factors]  # [L][N]
        self.buffer, starts = _upload([a for level in levels for a in level], dev)
        pix = np.array([1 if im.hr.ndim == 2 else 3 for im in used], dtype=np.int64)
        self.gray_host = pix == 1
        self.gray = torch.from_numpy(self.gray_host).to(dev)
        self.pix = torch.from_numpy(pix).to(dev)
        self.start = torch.from_numpy(starts.reshape(len(levels), len(used))).to(dev)  # [L, N]
        self.row = torch.from_numpy(np.array([[a.shape[1] for a in level] for level in levels]) * pix).to(dev)
        self.f = torch.tensor(self.factors, dtype=torch.int64, device=dev)[:, None]
        self.rows = [torch.arange(q, dtype=torch.int64, device=dev) for q in self.q]
        # offsets within a crop row of (column, channel), for an RGB and for a gray (R=G=B) image
        self.rgb_cols = [(r[:, None] * 3 + torch.arange(3, device=dev)).reshape(-1) for r in self.rows]
        self.gray_cols = [r.repeat_interleave(3) for r in self.rows]
        self.tables = [torch.from_numpy(_aug_table(q, in_channels)).to(dev) for q in self.q]
        self._static: dict[int, tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]] = {}

    def params(self, indices: Sequence[int]) -> np.ndarray:
        """int64 [n, 4]: image, HR top, HR left, flip * 4 + rot of each sample (PatchDataset.crop's draw)."""
        out = np.empty((len(indices), 4), dtype=np.int64)
        for row, i in enumerate(indices):
            name, (top, left), flip, rot = self.dataset.crop(i)
            out[row] = self.index[name], top, left, int(flip) * 4 + rot
        return out

    def _layout(self, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """For n samples, made once: where each sample's block of each level starts in the converted
        crops, the augmentation tables (int32 when the indices fit: half the memory traffic), and the
        sample each converted pixel belongs to."""
        if n not in self._static:
            per = [self.channels * q * q for q in self.q]
            firsts = np.cumsum([0] + [n * p for p in per])[:-1]
            samples = torch.arange(n, dtype=torch.int64, device=self.device)
            bases = [int(o) + samples[:, None] * p for o, p in zip(firsts, per, strict=True)]
            tables = self.tables
            if n * sum(per) < 2**31:
                bases, tables = [b.to(torch.int32) for b in bases], [t.to(torch.int32) for t in tables]
            owner = torch.cat([samples.repeat_interleave(q * q) for q in self.q])
            self._static[n] = bases, tables, owner
        return self._static[n]

    def _convert(self, crops: torch.Tensor, k: torch.Tensor, params_host: np.ndarray) -> torch.Tensor:
        """Flat float32 values, channel-last, of the flat uint8 crops [T * 3] of all levels, computed as
        PatchDataset._tensor does (before the augmentation, which commutes with it)."""
        if self.channels == 3:
            return crops.to(torch.float32) / self.consts.c255
        if self.host_y:  # numpy's own Y, one crop at a time as PatchDataset converts them
            flat, n, y = crops.cpu().numpy(), len(params_host), []
            gray = self.gray_host[params_host[:, 0]]
            at = 0
            for q in self.q:
                level = flat[at:at + n * q * q * 3].reshape(n, q, q, 3)
                y += [y_unit_float32(c[:, :, 0] if g else c).ravel()
                      for c, g in zip(level, gray, strict=True)]
                at += n * q * q * 3
            return torch.from_numpy(np.concatenate(y)).to(self.device)
        rgb = crops.view(-1, 3)
        gray = self.gray[k][self._layout(len(k))[2]]
        plain = rgb[:, 0].to(torch.float32) / self.consts.c255
        return torch.where(gray, plain, y_unit_torch(rgb, self.consts))

    def batch(self, params: torch.Tensor, params_host: np.ndarray) -> dict[str, object]:
        """The batch of samples with these parameters (on the device; `params_host` their host copy)."""
        k, top, left, combo = params.unbind(1)
        n = len(params_host)
        gray, row = self.gray[k][:, None], self.row[:, k]  # [n, 1], [L, n]
        first = self.start[:, k] + (top // self.f) * row + (left // self.f) * self.pix[k]  # [L, n]
        index = [((first[lv][:, None] + self.rows[lv] * row[lv][:, None])[:, :, None]
                  + torch.where(gray, self.gray_cols[lv], self.rgb_cols[lv])[:, None, :]).view(-1)
                 for lv in range(len(self.q))]
        values = self._convert(self.buffer.index_select(0, torch.cat(index)), k, params_host)
        bases, tables, _ = self._layout(n)
        out = values.index_select(0, torch.cat([(b + t[combo]).view(-1)
                                                for b, t in zip(bases, tables, strict=True)]))
        planes, at = [], 0
        for q in self.q:
            size = n * self.channels * q * q
            planes.append(out[at:at + size].view(n, self.channels, q, q))
            at += size
        targets = planes[1:]
        return {"hr": planes[0], "lr": targets[-1].clone(), "targets": targets}

    def batches(self, batch_size: int, start_iteration: int, num_iterations: int, rank: int = 0,
                world_size: int = 1, channels_last: bool = False,
                chunk_iterations: int = CHUNK_ITERATIONS) -> Iterator[dict[str, object]]:
        """Batches of iterations start .. start+num-1 on this rank, as `make_loader` + the engine's
        `_to_device` give them."""
        batch_indices(start_iteration, batch_size, rank, world_size)  # validates the split now
        if start_iteration < 0 or num_iterations < 0 or chunk_iterations < 1:
            raise ValueError("start_iteration and num_iterations must be >= 0, chunk_iterations >= 1")
        return self._iterate(batch_size, start_iteration, num_iterations, rank, world_size, channels_last,
                             chunk_iterations)

    def _iterate(self, batch_size: int, start: int, num: int, rank: int, world_size: int,
                 channels_last: bool, chunk: int) -> Iterator[dict[str, object]]:
        per = batch_size // world_size
        pin = self.device.type == "cuda"
        for first in range(start, start + num, chunk):
            its = range(first, min(first + chunk, start + num))
            host = self.params([i for it in its for i in batch_indices(it, batch_size, rank, world_size)])
            staged = torch.from_numpy(host)
            params = (staged.pin_memory() if pin else staged).to(self.device, non_blocking=pin)
            for j in range(len(its)):
                batch = self.batch(params[j * per:(j + 1) * per], host[j * per:(j + 1) * per])
                if channels_last:
                    batch = {"hr": _cl(batch["hr"]), "lr": _cl(batch["lr"]),
                             "targets": [_cl(t) for t in batch["targets"]]}
                yield batch


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def device_batches(images: list[TrainImage], scale: int, hr_patch: int, in_channels: int, augment: bool,
                   seed: int, batch_size: int, start_iteration: int, num_iterations: int,
                   device: torch.device | str, rank: int = 0, world_size: int = 1,
                   channels_last: bool = False,
                   reserve: int = DEFAULT_RESERVE) -> Iterator[dict[str, object]]:
    """The training batches of iterations start .. start+num-1 for this rank, cut on `device`.

    Equal (torch.equal, on a CPU device) to `_to_device(collate_patches(...))` of the same PatchDataset
    through `make_loader`. Checks that the set fits and uploads it now (a ReproError naming the fix
    `data.on_device=false` if it does not fit); the batches are made as they are asked for.
    """
    if batch_size % world_size:
        batch_indices(0, batch_size, rank, world_size)  # the host path's error, before any upload
    source = DevicePatchSource(images, scale, hr_patch, in_channels, augment, seed, device, reserve=reserve,
                               batch_size=batch_size // world_size)
    return source.batches(batch_size, start_iteration, num_iterations, rank, world_size, channels_last)

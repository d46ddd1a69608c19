"""Which patch every training sample is, and how its crops become a batch: the same code on the host and
on the training device.

**The draw.** Sample j of global batch t (iteration t) of a run with seed s is a pure function of
(s, t, j): a counter-based generator (SplitMix64's mixing function chained over the key) gives five
independent 64-bit words per sample: the image, the crop's row and column (on the scale's grid, so each
level's crop covers the same region), the flip and the number of quarter turns. A whole batch, or many,
is drawn by a few vectorised numpy operations, any iteration's batch without drawing the ones before
(a resumed run, a DDP rank or a loader worker needs nothing else), and a fleet's members (other seeds)
in the same call. Integers in [0, n) are taken as the high 32 bits of a word times n, shifted down by 32
(bias below n / 2^32: under 1e-6 for any image size here).

**The batch.** The crops are cut already flipped and turned (uint8, channel-last, a grayscale image
repeated to R=G=B): on the host path (`repro.data.patches`, in a loader worker) as numpy views of the
memory-mapped images (`augmented`), on the device path (`repro.data.device_patches`) by one gather from
the set held on the device whose index folds the flip and turns in (`source_pixels`). From the crops on,
both run `Planes` on the training device:
Y / 255 computed exactly in float64 and rounded once to float32 (each product of an 8-bit value and a
float32 weight, and their sum, is exact in float64), so every device gives the same bits; a grayscale
image's crop is its own value / 255 (converting it to Y would squeeze it into 16..235, as evaluation
avoids too). The same seed thus gives equal batches (torch.equal) on either path.

`SAMPLER_VERSION` is part of every run's hashed settings (`data.sampler`): batches of another version are
another run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repro.imaging import colour

SAMPLER_VERSION = 2  # 1: numpy's generator seeded per sample, crops converted and turned one by one

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_STREAMS = ("image", "top", "left", "flip", "turns")  # the words of a sample, in this order
# the float32 weights of Y / 255 (`repro.imaging.colour.y_unit_float32`'s), held in float64 for the exact sum
_Y_UNIT = colour.Y_UNIT.astype(np.float64)
_Y_UNIT_OFFSET = float(colour.Y_UNIT_OFFSET)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (a bijection of uint64 with full avalanche), wrapping arithmetic."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def words(seed: int | np.ndarray, iteration: np.ndarray, sample: np.ndarray, streams: int) -> np.ndarray:
    """uint64 [..., streams]: word k of each (seed, iteration, sample) (the arrays broadcast together)."""
    with np.errstate(over="ignore"):
        h = _mix(np.asarray(seed).astype(np.uint64) + _GOLDEN)
        h = _mix((h ^ np.asarray(iteration).astype(np.uint64)) + _GOLDEN)
        h = _mix((h ^ np.asarray(sample).astype(np.uint64)) + _GOLDEN)
        return _mix((h[..., None] ^ np.arange(streams, dtype=np.uint64)) + _GOLDEN)


def below(word: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Integers in [0, n) from 64-bit words (n < 2^32): the high half times n, over 2^32."""
    return (((word >> np.uint64(32)) * np.asarray(n).astype(np.uint64)) >> np.uint64(32)).astype(np.int64)


def draw(seed: int | np.ndarray, iteration: np.ndarray, sample: np.ndarray, heights: np.ndarray,
         widths: np.ndarray, hr_patch: int, scale: int, augment: bool) -> np.ndarray:
    """int64 [n, 4]: image, HR top, HR left, flip * 4 + quarter turns of each sample, for images of
    these HR sizes (all at least `hr_patch`); `seed` may differ per sample (a fleet)."""
    w = words(seed, iteration, sample, len(_STREAMS))
    image = below(w[..., 0], len(heights))
    top = below(w[..., 1], (heights[image] - hr_patch) // scale + 1) * scale
    left = below(w[..., 2], (widths[image] - hr_patch) // scale + 1) * scale
    combo = below(w[..., 3], 2) * 4 + below(w[..., 4], 4) if augment else np.zeros_like(image)
    return np.stack([image, top, left, combo], axis=-1).reshape(-1, 4)


def samples_of(iterations: Sequence[int] | np.ndarray, batch_size: int, rank: int = 0,
               world_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(iteration, sample) of every sample this rank takes, iteration by iteration: the global batch
    of `batch_size` split evenly, rank r holding positions r*per .. (r+1)*per - 1."""
    per = batch_size // world_size
    its = np.asarray(iterations, dtype=np.int64)
    return np.repeat(its, per), np.tile(np.arange(rank * per, (rank + 1) * per, dtype=np.int64), len(its))


# ---------------------------------------------------------------- crops -> batch
def augmented(crop: np.ndarray, combo: int) -> np.ndarray:
    """A [q, q, ...] crop flipped (its width) then turned as np.rot90(crop, turns, axes=(0, 1)), for
    flip * 4 + turns: a view, no copy (np.rot90 itself costs ten times the slicing)."""
    if combo >= 4:
        crop = crop[:, ::-1]
    turns = combo % 4
    if turns == 1:
        return crop[:, ::-1].swapaxes(0, 1)
    if turns == 2:
        return crop[::-1, ::-1]
    return crop[::-1].swapaxes(0, 1) if turns == 3 else crop


def source_pixels(q: int) -> np.ndarray:
    """int64 [8, q * q]: for flip * 4 + turns, which pixel (row * q + column) of the plain q x q crop each
    pixel of the augmented one is (what `augmented` does, as an index)."""
    grid = np.arange(q * q, dtype=np.int64).reshape(q, q)
    return np.stack([augmented(grid, combo).ravel() for combo in range(8)])


class Planes:
    """Augmented crops -> float32 planes on one device, in a few operations whatever the batch: one
    conversion of the crops of every level together, then a view (and a choice per sample between Y and
    a grayscale image's own value) per level. Constants are made once: a constant made per batch would
    be a copy from pageable memory, which waits for the device's queue."""

    def __init__(self, sides: Sequence[int], channels: int, device: torch.device | str) -> None:
        self.sides, self.channels, self.device = list(sides), channels, torch.device(device)
        self.y_weights = torch.tensor(_Y_UNIT, dtype=torch.float64, device=self.device)
        self.y_offset = torch.tensor(_Y_UNIT_OFFSET, dtype=torch.float64, device=self.device)
        # a device tensor, not a Python number: CUDA turns division by a scalar into a multiplication by
        # its reciprocal, an ulp off on some values
        self.c255 = torch.tensor(255.0, dtype=torch.float32, device=self.device)

    def __call__(self, crops: torch.Tensor, gray: torch.Tensor) -> list[torch.Tensor]:
        """float32 [n, C, q, q] planes (HR first) of `crops`: uint8 [pixels(n), 3], the augmented
        channel-last crops of every level one after another (each [n, q, q, 3] in C order); `gray` ([n]
        bool) marks the samples of grayscale images, whose R=G=B value is taken as it is. On a CPU a batch
        without any skips that choice (the same values; elsewhere the check would wait for the device)."""
        n = gray.shape[0]
        plain_needed = self.device.type != "cpu" or bool(gray.any())
        if self.channels == 3:
            values = crops.to(torch.float32) / self.c255
        else:
            y = (crops.to(torch.float64) @ self.y_weights + self.y_offset).to(torch.float32)
            plain = crops[:, 0].to(torch.float32) / self.c255 if plain_needed else None
        planes, at = [], 0
        for q in self.sides:
            part = slice(at, at + n * q * q)
            at += n * q * q
            if self.channels == 3:
                planes.append(values[part].view(n, q, q, 3).permute(0, 3, 1, 2).contiguous())
            elif plain is None:
                planes.append(y[part].view(n, 1, q, q))
            else:
                shape = (n, q, q)
                planes.append(torch.where(gray[:, None, None], plain[part].view(shape),
                                          y[part].view(shape))[:, None])
        return planes


def as_batch(planes: list[torch.Tensor]) -> dict[str, object]:
    """The batch dict the objectives take: HR, LR (its own tensor) and the levels finest first."""
    targets = planes[1:]
    return {"hr": planes[0], "lr": targets[-1].clone(), "targets": targets}

"""Paired training patches: HR crops with their LR crop and the deep-supervision targets, cut from a
decoded training set (`repro.data.train_set`). Every sample is a pure function of (seed, iteration,
position in the batch) (`repro.data.sampler`): a run resumed at any iteration, or split across workers
and ranks, sees exactly the same patches. A loader cuts the crops; the batch is made where the network
trains (`batch_of`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from repro.data.sampler import Planes, as_batch, augmented, draw, samples_of
from repro.data.train_set import TrainImage
from repro.errors import ReproError, unknown_choice
from repro.scales import crop_multiple, level_factors

PAPER_HR_PATCH, PAPER_BATCH = 192, 16
# iterations whose crop parameters are drawn together (on the device path also copied there together:
# 64 x 16 samples x 4 int64, 32 KB per copy)
CHUNK_ITERATIONS = 64


# ---------------------------------------------------------------- patches
def check_split(batch_size: int, rank: int = 0, world_size: int = 1) -> None:
    """The global batch splits evenly over the DDP ranks, and `rank` is one of them."""
    if batch_size % world_size:
        raise ReproError(f"batch size {batch_size} must be a multiple of the world size {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} out of range for world size {world_size}")


class PatchSampler:
    """Random aligned HR/LR patches of a run: sample j of iteration t depends only on (seed, t, j)
    (`repro.data.sampler`), so a resumed run, a loader worker or a DDP rank computes exactly its own.

    An HR crop of `hr_patch` pixels starts at a multiple of the scale, so each level's crop covers
    exactly the same region; flip and rotation are applied alike to HR and every level. Images smaller
    than the patch are left out (with a warning).
    """

    def __init__(self, images: Sequence[TrainImage], scale: int, hr_patch: int = PAPER_HR_PATCH,
                 in_channels: int = 1, augment: bool = True, seed: int = 0) -> None:
        self.factors = level_factors(scale)
        if hr_patch <= 0 or hr_patch % crop_multiple(scale):
            raise ReproError(f"HR patch size {hr_patch} must be a positive multiple of "
                             f"{crop_multiple(scale)} at x{scale}")
        if in_channels not in (1, 3):
            raise unknown_choice("number of input channels", in_channels, (1, 3))
        self.images = [im for im in images if min(im.hr.shape[:2]) >= hr_patch]
        if len(self.images) < len(images):
            warnings.warn(f"{len(images) - len(self.images)} of {len(images)} training images are smaller "
                          f"than the {hr_patch}x{hr_patch} patch and are skipped", stacklevel=2)
        if not self.images:
            raise ReproError(f"no training image is at least {hr_patch}x{hr_patch}; use a smaller patch")
        for im in self.images:
            for f in self.factors:
                if im.levels[f].shape[:2] != (im.hr.shape[0] // f, im.hr.shape[1] // f):
                    raise ReproError(f"training image {im.name}: level 1/{f} has shape "
                                     f"{im.levels[f].shape}, expected HR/{f} from {im.hr.shape}")
        self.scale, self.hr_patch, self.in_channels = scale, hr_patch, in_channels
        self.augment, self.seed = augment, int(seed)
        self.heights = np.array([im.hr.shape[0] for im in self.images], dtype=np.int64)
        self.widths = np.array([im.hr.shape[1] for im in self.images], dtype=np.int64)
        self.gray = np.array([im.hr.ndim == 2 for im in self.images])
        self._factors = (1, *self.factors)
        self.sides = [hr_patch // f for f in self._factors]
        # plain ndarray views of the memory-mapped files: slicing a np.memmap costs ten times as much
        self._levels = [[np.asarray(a).view(np.ndarray) for a in (im.hr, *map(im.levels.get, self.factors))]
                        for im in self.images]
        self._planes: Planes | None = None  # made where first used (each loader worker its own)

    def params(self, iterations: Sequence[int] | np.ndarray, batch_size: int, rank: int = 0,
               world_size: int = 1, seeds: Sequence[int] | None = None) -> np.ndarray:
        """int64 [len(iterations) * batch_size / world_size, 4]: image, HR top, HR left, flip * 4 + turns
        of every sample this rank takes in these iterations, in order. With `seeds` (a fleet: runs of
        these seeds trained together), each iteration holds every seed's samples in turn, each exactly
        the samples that seed's run draws alone: [len(iterations) * len(seeds) * per, 4]."""
        check_split(batch_size, rank, world_size)
        its, samples = samples_of(iterations, batch_size, rank, world_size)
        if seeds is None:
            return draw(self.seed, its, samples, self.heights, self.widths, self.hr_patch, self.scale,
                        self.augment)
        per, n = batch_size // world_size, len(seeds)
        seed = np.repeat(np.asarray(seeds, dtype=np.int64)[None, :, None], len(its) // per, axis=0)
        shape = (len(its) // per, n, per)
        return draw(np.broadcast_to(seed, shape), np.broadcast_to(its.reshape(-1, 1, per), shape),
                    np.broadcast_to(samples.reshape(-1, 1, per), shape), self.heights, self.widths,
                    self.hr_patch, self.scale, self.augment)

    def crop(self, iteration: int, sample: int) -> tuple[str, tuple[int, int], bool, int]:
        """Sample `sample` of iteration `iteration`: image name, HR top-left, flip, quarter turns."""
        if iteration < 0 or sample < 0:
            raise IndexError(f"iteration and sample must be >= 0, got {iteration}, {sample}")
        k, top, left, combo = (int(v) for v in draw(self.seed, np.array([iteration]), np.array([sample]),
                                                    self.heights, self.widths, self.hr_patch, self.scale,
                                                    self.augment)[0])
        return self.images[k].name, (top, left), bool(combo // 4), combo % 4

    def crops(self, params: np.ndarray) -> np.ndarray:
        """uint8 [pixels, 3]: the channel-last crops of every level (HR first, each [n, q, q, 3]) of the
        samples `params` describes, sliced from the images, flipped and turned (a grayscale image
        repeated to R=G=B)."""
        n = len(params)
        flat = np.empty((n * sum(q * q for q in self.sides), 3), dtype=np.uint8)
        outs, at = [], 0
        for q in self.sides:
            outs.append(flat[at:at + n * q * q].reshape(n, q, q, 3))
            at += n * q * q
        for j, (k, top, left, combo) in enumerate(params.tolist()):
            for out, src, f, q in zip(outs, self._levels[k], self._factors, self.sides, strict=True):
                crop = augmented(src[top // f:top // f + q, left // f:left // f + q], combo)
                out[j] = crop[..., None] if crop.ndim == 2 else crop
        return flat

    def cut(self, params: np.ndarray) -> dict[str, torch.Tensor]:
        """What a loader hands over: the crops of these samples (`crops`) and which come from grayscale
        images (`gray`); they become a batch where the network trains (`Planes`): converting there,
        on a GPU, costs next to nothing, where a loader worker's float conversion was most of its work."""
        gray = self.gray[params[:, 0]]
        return {"crops": torch.from_numpy(self.crops(params)), "gray": torch.from_numpy(gray)}

    def batch(self, params: np.ndarray) -> dict[str, object]:
        """The batch of these samples, made on the host."""
        if self._planes is None:
            self._planes = Planes(self.sides, self.in_channels, "cpu")
        return batch_of(self.cut(params), self._planes)


# ---------------------------------------------------------------- iteration-ordered loading
class IterationBatches(Dataset):
    """Item t is the cut (`PatchSampler.cut`: crops, gray flags) of this rank's part of global batch t, made
    whole (a loader's worker makes whole batches); with `seeds`, every seed's batch of iteration t one
    after another (a fleet's)."""

    def __init__(self, sampler: PatchSampler, batch_size: int, rank: int = 0, world_size: int = 1,
                 seeds: Sequence[int] | None = None) -> None:
        check_split(batch_size, rank, world_size)
        self.sampler, self.batch_size, self.rank, self.world_size = sampler, batch_size, rank, world_size
        self.seeds = seeds

    def __len__(self) -> int:  # any iteration >= 0 is valid; a loader is given the ones it needs
        return 2**62

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        return self.sampler.cut(self.params([iteration]))

    def params(self, iterations: Sequence[int]) -> np.ndarray:
        """The crop parameters of these iterations' batches, one after another."""
        return self.sampler.params(iterations, self.batch_size, self.rank, self.world_size, self.seeds)


def seed_worker(worker_id: int) -> None:
    """One thread per loader worker: they share the cores with the training step (the patches need
    no seeding: they are functions of the iteration)."""
    torch.set_num_threads(1)


def make_loader(sampler: PatchSampler, batch_size: int, start_iteration: int, num_iterations: int,
                num_workers: int = 0, rank: int = 0, world_size: int = 1,
                seeds: Sequence[int] | None = None) -> Iterable[dict[str, object]]:
    """The cuts (`PatchSampler.cut`) of the batches of iterations start .. start+num-1 in order
    (`batch_size` is the global batch; with `seeds`, a fleet's batches: each seed's batch of the iteration
    in turn): made here, one after another, with `num_workers` 0; else by a DataLoader's worker
    processes. `batch_of` makes a batch of one."""
    if start_iteration < 0 or num_iterations < 0:
        raise ValueError("start_iteration and num_iterations must be >= 0")
    dataset = IterationBatches(sampler, batch_size, rank, world_size, seeds)
    iterations = range(start_iteration, start_iteration + num_iterations)
    if num_workers == 0:  # a DataLoader in this process only adds its own bookkeeping to every batch
        return InProcessBatches(dataset, iterations)
    return DataLoader(dataset, sampler=iterations, batch_size=None, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=True, prefetch_factor=4,
                      worker_init_fn=seed_worker)


class InProcessBatches:
    """The cuts of some iterations' batches, made in this process as they are asked for, their crop
    parameters drawn `CHUNK_ITERATIONS` iterations at a time (pinned for a copy to a GPU, as a DataLoader
    would pin them)."""

    def __init__(self, dataset: IterationBatches, iterations: range) -> None:
        self.dataset, self.iterations = dataset, iterations
        self.pin = torch.cuda.is_available()

    def __len__(self) -> int:
        return len(self.iterations)

    def __iter__(self) -> Iterator[dict[str, object]]:
        its = self.iterations
        for first in range(0, len(its), CHUNK_ITERATIONS):
            chunk = its[first:first + CHUNK_ITERATIONS]
            params = self.dataset.params(chunk)
            per = len(params) // len(chunk)
            for j in range(len(chunk)):
                cut = self.dataset.sampler.cut(params[j * per:(j + 1) * per])
                yield {k: v.pin_memory() for k, v in cut.items()} if self.pin else cut


def batch_of(cut: dict[str, torch.Tensor], planes: Planes) -> dict[str, object]:
    """The batch of a loader's cut, converted on `planes`' device (where the network trains)."""
    return as_batch(planes(cut["crops"], cut["gray"]))

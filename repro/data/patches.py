"""Paired training patches: HR crops with their LR crop and the deep-supervision targets.

Training images are decoded once and kept as `.npy` files (memory-mapped, so worker processes and a
second run share the pages and start at once). Every sample is a pure function of (seed, iteration,
position in the batch) (`repro.data.sampler`): a run resumed at any iteration, or split across workers
and ranks, sees exactly the same patches.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from repro.data.images import read_image
from repro.data.sampler import Planes, as_batch, augmented, draw, samples_of
from repro.errors import ReproError, unknown_choice
from repro.imaging import imresize
from repro.io_utils import atomic_write, atomic_write_text
from repro.paths import data_root, default_cache_root
from repro.scales import check_scale, crop_multiple, level_factors

TRAIN_SOURCES = ("div2k", "t91", "sample")
DIV2K_TRAIN_IDS = tuple(f"{i:04d}" for i in range(1, 801))  # the paper trains on DIV2K 0001-0800
PAPER_HR_PATCH, PAPER_BATCH = 192, 16
_CACHE_VERSION = 2  # 2: grayscale images are kept single-channel (1 repeated them to RGB)


@dataclass(frozen=True)
class TrainImage:
    """One training image: `hr` (uint8 HxWx3, or HxW for a grayscale image; mod-cropped) and its
    downscales `levels[factor]` (same channels)."""

    name: str
    hr: np.ndarray
    levels: dict[int, np.ndarray]


# ---------------------------------------------------------------- where the source images are
@dataclass(frozen=True)
class _Entry:
    name: str
    hr: Path | None  # None for the embedded sample
    lr: Path | None  # the official LR file at the requested scale, when the source ships one


def _missing(source: str, path: Path) -> ReproError:
    return ReproError(
        f"training set {source} not found at {path}; run `repro data fetch {source} --root DIR` "
        "and pass --data-root DIR (or set REPRO_DATA=DIR)"
    )


def _entries(source: str, scale: int, root: Path) -> list[_Entry]:
    if source == "t91":
        folder = root / "T91"
        files = sorted(folder.glob("*.bmp")) if folder.is_dir() else []
        if not files:
            raise _missing("t91", folder)
        return [_Entry(p.stem, p, None) for p in files]
    if source == "div2k":
        folder = root / "DIV2K" / "DIV2K_train_HR"
        missing = [i for i in DIV2K_TRAIN_IDS if not (folder / f"{i}.png").is_file()]
        if missing:
            if len(missing) < len(DIV2K_TRAIN_IDS):
                raise ReproError(f"training set div2k at {folder} lacks {len(missing)} of "
                                 f"{len(DIV2K_TRAIN_IDS)} images (e.g. {missing[0]}.png); "
                                 "run `repro data fetch div2k --root DIR` again")
            raise _missing("div2k", folder)
        lr_dir = root / "DIV2K" / "DIV2K_train_LR_bicubic" / f"X{scale}"
        if not lr_dir.is_dir():
            warnings.warn(f"official DIV2K LR not found at {lr_dir}: computing it with imresize "
                          "(run `repro data fetch div2k` for the MATLAB-made files)", stacklevel=3)
        return [_Entry(i, folder / f"{i}.png", lr_dir / f"{i}x{scale}.png" if lr_dir.is_dir() else None)
                for i in DIV2K_TRAIN_IDS]
    if source == "sample":
        return []  # names come from the embedded set itself
    raise unknown_choice("training source", source, TRAIN_SOURCES)


def _fingerprint(parts: Sequence[object]) -> str:
    return hashlib.sha1(json.dumps([_CACHE_VERSION, *parts], default=str).encode()).hexdigest()[:12]


def _file_key(path: Path | None) -> object:
    if path is None:
        return None
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def _sample_key() -> list[object]:
    import skimage

    import repro.data.sample as sample_module

    return [skimage.__version__, hashlib.sha1(Path(sample_module.__file__).read_bytes()).hexdigest()]


# ---------------------------------------------------------------- the decoded-image cache
def _writable(folder: Path) -> bool:
    """Whether we may create files in `folder`; a folder whose mode has no write bit counts as read-only
    even for root (a shared, deliberately read-only data root must stay untouched)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.stat().st_mode & 0o222 or not os.access(existing, os.W_OK):
            return False
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
        return True
    except OSError:
        return False


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path | None:
    """`<root>/.cache`, or a per-user folder keyed by the root when the root is read-only; None if neither."""
    root_path = data_root(root).resolve()
    candidates = [root_path / ".cache",
                  default_cache_root() / "cache" / hashlib.sha1(str(root_path).encode()).hexdigest()[:12]]
    return next((c for c in candidates if _writable(c)), None)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, np.ascontiguousarray(arr), allow_pickle=False))


def _load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None  # absent or damaged: rebuilt


_MEMORY: dict[tuple[str, int, str, str], list[TrainImage]] = {}


def clear_memory_cache() -> None:
    """Forget the images held by this process (the disk cache stays)."""
    _MEMORY.clear()


def _build_levels(hr: np.ndarray, scale: int, lr: np.ndarray | None, where: str) -> dict[int, np.ndarray]:
    levels: dict[int, np.ndarray] = {}
    for factor in level_factors(scale):
        if factor == scale and lr is not None:
            if lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, *hr.shape[2:]):
                levels[factor] = lr
                continue
            warnings.warn(f"official LR {where} is {lr.shape[1]}x{lr.shape[0]}, expected "
                          f"{hr.shape[1] // scale}x{hr.shape[0] // scale} from the mod-cropped HR: "
                          "recomputed with imresize", stacklevel=4)
        levels[factor] = imresize(hr, 1.0 / factor)
    return levels


def load_train_images(source: str, scale: int, root: str | os.PathLike[str] | None = None,
                      progress: bool = True,
                      cache_root: str | os.PathLike[str] | None = None) -> list[TrainImage]:
    """The training images of `source` at `scale`: HR mod-cropped, LR (and X'_bic at x4) beside it.

    The official LR file is used where the source ships one (DIV2K); otherwise LR = imresize(HR, 1/s).
    Decoded once, then read back from `.npy` files (memory-mapped, read-only) by every later call;
    `cache_root` overrides where they go (default: `cache_dir(root)`).
    """
    if source not in TRAIN_SOURCES:
        raise unknown_choice("training source", source, TRAIN_SOURCES)
    check_scale(scale)
    root_path = data_root(root)
    key = (source, scale, str(root_path.resolve()), str(cache_root))
    if key in _MEMORY:
        return _MEMORY[key]

    entries = _entries(source, scale, root_path)
    if source == "sample":
        src_key: list[object] = _sample_key()
        scale_key: list[object] = []
    else:
        src_key = [[e.name, _file_key(e.hr)] for e in entries]
        scale_key = [[e.name, _file_key(e.lr)] for e in entries]
    base = Path(cache_root) if cache_root is not None else cache_dir(root_path)
    if base is None:
        warnings.warn("no writable cache folder (data root and ~/.cache): training images are decoded "
                      "in memory only", stacklevel=2)
    src_dir = base / "train" / f"{source}-{_fingerprint(src_key)}" if base else None
    scale_dir = src_dir / f"x{scale}-{_fingerprint(scale_key)}" if src_dir else None
    images = _load_cached(scale_dir, scale) if scale_dir else None
    if images is None:
        images = _build(source, scale, entries, src_dir, scale_dir, progress)
    _MEMORY[key] = images
    return images


def _load_cached(scale_dir: Path, scale: int) -> list[TrainImage] | None:
    try:
        names = json.loads((scale_dir / "manifest.json").read_text())["names"]
    except (OSError, ValueError, KeyError):
        return None
    crop = crop_multiple(scale)
    images = []
    for name in names:
        hr = _load_npy(scale_dir.parent / "hr" / f"{name}.npy")
        levels = {f: _load_npy(scale_dir / f"{name}.l{f}.npy") for f in level_factors(scale)}
        if hr is None or any(v is None for v in levels.values()):
            return None
        h, w = hr.shape[0] - hr.shape[0] % crop, hr.shape[1] - hr.shape[1] % crop
        images.append(TrainImage(name, hr[:h, :w], levels))
    return images


def _build(source: str, scale: int, entries: list[_Entry], src_dir: Path | None,
           scale_dir: Path | None, progress: bool) -> list[TrainImage]:
    crop = crop_multiple(scale)
    if source == "sample":
        from repro.data.sample import sample_images

        decoded = {n: np.asarray(a, dtype=np.uint8) for n, a in sorted(sample_images("train").items())}
        entries = [_Entry(n, None, None) for n in decoded]

    def one(entry: _Entry) -> TrainImage:
        hr_file = src_dir / "hr" / f"{entry.name}.npy" if src_dir is not None else None
        full = _load_npy(hr_file) if hr_file is not None else None  # cached for another scale?
        if full is None:
            full = decoded[entry.name] if entry.hr is None else read_image(entry.hr)
            if hr_file is not None:
                _save_npy(hr_file, full)
        lr = read_image(entry.lr) if entry.lr is not None and entry.lr.is_file() else None
        if entry.lr is not None and lr is None:
            warnings.warn(f"official LR {entry.lr} missing: computed with imresize", stacklevel=2)
        h, w = full.shape[0] - full.shape[0] % crop, full.shape[1] - full.shape[1] % crop
        hr = full[:h, :w]
        levels = _build_levels(hr, scale, lr, str(entry.lr))
        if scale_dir is not None:
            for factor, arr in levels.items():
                _save_npy(scale_dir / f"{entry.name}.l{factor}.npy", arr)
        return TrainImage(entry.name, hr, levels)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        images = list(tqdm(pool.map(one, entries), total=len(entries), desc=f"decoding {source} x{scale}",
                           disable=not progress, leave=False))
    if scale_dir is not None:  # the manifest comes last: its presence means every file is complete
        atomic_write_text(scale_dir / "manifest.json", json.dumps({"names": [e.name for e in entries]}))
        reread = _load_cached(scale_dir, scale)  # serve memory-mapped copies: shared by worker processes
        if reread is not None:
            images = reread
    for img in images:
        img.hr.flags.writeable = False
        for arr in img.levels.values():
            arr.flags.writeable = False
    return images


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
        cut = self.cut(params)
        return as_batch(self._planes(cut["crops"], cut["gray"]))


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
    parameters drawn `CHUNK` iterations at a time (pinned for a copy to a GPU, as a DataLoader would pin
    them)."""

    CHUNK = 64

    def __init__(self, dataset: IterationBatches, iterations: range) -> None:
        self.dataset, self.iterations = dataset, iterations
        self.pin = torch.cuda.is_available()

    def __len__(self) -> int:
        return len(self.iterations)

    def __iter__(self) -> Iterator[dict[str, object]]:
        its = self.iterations
        for first in range(0, len(its), self.CHUNK):
            chunk = its[first:first + self.CHUNK]
            params = self.dataset.params(chunk)
            per = len(params) // len(chunk)
            for j in range(len(chunk)):
                cut = self.dataset.sampler.cut(params[j * per:(j + 1) * per])
                yield {k: v.pin_memory() for k, v in cut.items()} if self.pin else cut


def batch_of(cut: dict[str, torch.Tensor], planes: Planes) -> dict[str, object]:
    """The batch of a loader's cut, converted on `planes`' device (where the network trains)."""
    return as_batch(planes(cut["crops"], cut["gray"]))

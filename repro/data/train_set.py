"""The training sets, decoded: HR images with their LR file (where the source ships one) and the bicubic
levels deep supervision compares with, for `repro.data.patches` to cut patches from.

Training images are decoded once and kept as `.npy` files (memory-mapped, so loader workers and a second
run share the pages and start at once), in a folder keyed by the source files' names, sizes and times.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from repro.data.images import read_image
from repro.errors import ReproError, unknown_choice
from repro.imaging import imresize, mod_crop
from repro.io_utils import atomic_write, atomic_write_text
from repro.paths import data_root, default_cache_root
from repro.scales import check_scale, crop_multiple, level_factors

TRAIN_SOURCES = ("div2k", "t91", "sample")
DIV2K_TRAIN_IDS = tuple(f"{i:04d}" for i in range(1, 801))  # the paper trains on DIV2K 0001-0800
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
        images.append(TrainImage(name, mod_crop(hr, crop), levels))
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
        hr = mod_crop(full, crop)
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

"""The benchmark test sets (Set5, Set14, B100, Urban100, and the embedded `sample`) as HR/LR pairs.

HR is mod-cropped at the top-left to a multiple of the scale; LR is the MATLAB-made file from
`LR_bicubic/X<s>` when the set ships one, else the MATLAB-compatible `imresize` of that crop
(Urban100 ships only X4). Decoded files are cached, so evaluating many models re-reads nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from repro.data.images import read_image
from repro.data.names import SET_NAMES
from repro.errors import ReproError, unknown_choice
from repro.imaging import imresize, mod_crop
from repro.paths import data_root
from repro.scales import check_scale

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePair:
    """One test image: `hr` mod-cropped to a multiple of the scale, `lr` = hr downscaled by it (uint8)."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


@dataclass(frozen=True)
class ImageFiles:
    """Where one benchmark image lives: its HR file and the MATLAB LR file for a scale (None if absent)."""

    name: str
    hr: Path
    lr: Path | None


def check_set(name: str) -> str:
    if name not in SET_NAMES:
        raise unknown_choice("test set", name, SET_NAMES)
    return name


def set_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """`<root>/benchmark/<name>`, with an error naming the fetch command when its HR folder is missing."""
    path = data_root(root) / "benchmark" / check_set(name)
    if not (path / "HR").is_dir():
        raise ReproError(
            f"test set {name} not found at {path / 'HR'}; run `repro data fetch benchmark --root DIR` "
            "and pass --data-root DIR (or set REPRO_DATA=DIR)"
        )
    return path


def set_files(name: str, scale: int, root: str | os.PathLike[str] | None = None) -> list[ImageFiles]:
    """The HR files of a benchmark set (sorted by name) and their MATLAB LR files at `scale`, if shipped."""
    check_scale(scale)
    folder = set_dir(name, root)
    hr_files = sorted(p for p in (folder / "HR").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not hr_files:
        raise ReproError(f"no images in {folder / 'HR'}; run `repro data fetch benchmark --root DIR` again")
    lr_dir = folder / "LR_bicubic" / f"X{scale}"
    files = []
    for hr in hr_files:
        lr = lr_dir / f"{hr.stem}x{scale}.png"
        files.append(ImageFiles(hr.stem, hr, lr if lr_dir.is_dir() else None))
    return files


@lru_cache(maxsize=512)
def _read_cached(path: Path) -> np.ndarray:
    img = read_image(path)
    img.flags.writeable = False  # shared by every caller: nobody may modify it in place
    return img


@lru_cache(maxsize=256)
def _lr_by_imresize(path: Path, scale: int) -> np.ndarray:
    lr = imresize(mod_crop(_read_cached(path), scale), 1.0 / scale)
    lr.flags.writeable = False
    return lr


def load_pair(files: ImageFiles, scale: int) -> ImagePair:
    """Read one HR/LR pair; the LR comes from the MATLAB file when shipped, else from `imresize`."""
    hr = mod_crop(_read_cached(files.hr), scale)
    if files.lr is None:
        lr = _lr_by_imresize(files.hr, scale)
    else:
        if not files.lr.exists():
            raise ReproError(f"LR image missing: {files.lr} (HR {files.hr}); "
                             "run `repro data fetch benchmark --root DIR` again")
        lr = _read_cached(files.lr)
        expected = (hr.shape[0] // scale, hr.shape[1] // scale, *hr.shape[2:])
        if lr.shape != expected:
            raise ReproError(f"LR image {files.lr} has shape {lr.shape}, expected {expected} "
                             f"from its HR {files.hr}; re-download the set")
    return ImagePair(files.name, hr, lr)


def load_set(name: str, scale: int, root: str | os.PathLike[str] | None = None) -> list[ImagePair]:
    """All HR/LR pairs of a test set at a scale (`sample` is the embedded set, no download needed)."""
    check_set(name)
    check_scale(scale)
    if name == "sample":
        from repro.data.sample import sample_images  # written alongside; imported only when asked for

        pairs = []
        for img_name, img in sorted(sample_images("test").items()):
            hr = mod_crop(img, scale)
            pairs.append(ImagePair(img_name, hr, imresize(hr, 1.0 / scale)))
        return pairs
    return [load_pair(f, scale) for f in set_files(name, scale, root)]


def clear_cache() -> None:
    """Forget decoded images (e.g. after the files changed on disk)."""
    _read_cached.cache_clear()
    _lr_by_imresize.cache_clear()

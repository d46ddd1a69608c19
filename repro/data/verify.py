"""Checking a dataset under the data root against its manifest: image counts and per-image pixel digests.

Digests are of decoded pixels, not file bytes, so any copy with the same pixels passes (a PNG re-encoded
with another compressor, the same images from another mirror).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from repro.data.images import read_image
from repro.data.manifests import Manifest, PixelDigest
from repro.errors import ReproError


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 of the uint8 pixels in C order (the shape is compared separately)."""
    arr = np.ascontiguousarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"pixel digests are defined on uint8 images, got {arr.dtype}")
    return hashlib.sha256(arr.tobytes()).hexdigest()


@dataclass
class VerifyReport:
    """What `verify` found: an empty `problems` list means the data is good."""

    dataset: str
    root: Path
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    folder_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    embedded: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> list[str]:
        return ([*self.folder_problems, *(f"missing: {p}" for p in self.missing),
                 *(f"mismatch: {p}" for p in self.mismatched)])

    def summary(self) -> str:
        where = "built in memory" if self.embedded else f"under {self.root}"
        if self.ok:
            return f"{self.dataset}: OK ({self.checked} images checked, {where})"
        return (f"{self.dataset}: {len(self.problems)} problem(s) {where} "
                f"({len(self.missing)} missing, {len(self.mismatched)} mismatching)")


def count_images(folder: Path, pattern: str) -> int:
    return sum(1 for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else 0


def folder_status(manifest: Manifest, root: Path) -> str:
    """Quick presence check (counts only): 'present', 'partial' or 'absent'."""
    if manifest.embedded:
        return "embedded"
    found = [count_images(root / f.path, f.pattern) for f in manifest.folders]
    if found and all(n >= f.count for n, f in zip(found, manifest.folders, strict=True)):
        return "present"
    return "partial" if any(found) else "absent"


def check_pixels(entry: PixelDigest, pixels: np.ndarray) -> str | None:
    """None when `pixels` match `entry`, else why not (shapes and digests, expected vs actual)."""
    if tuple(pixels.shape) == entry.shape:
        actual = pixel_digest(pixels)
        if actual == entry.sha256:
            return None
        return f"pixels differ: expected sha256 {entry.sha256}, got {actual} (shape {list(entry.shape)})"
    if entry.crop is not None and pixels.ndim == len(entry.shape) and pixels.shape[2:] == entry.shape[2:]:
        ch, cw = entry.crop
        near = all(abs(a - b) <= 1 for a, b in zip(pixels.shape[:2], entry.shape[:2], strict=True))
        if near and pixels.shape[0] >= ch and pixels.shape[1] >= cw:
            actual = pixel_digest(pixels[:ch, :cw])
            if actual == entry.crop_sha256:
                return None
            return (f"pixels differ in the top-left {ch}x{cw} crop: expected sha256 {entry.crop_sha256}, "
                    f"got {actual}")
    return f"shape {list(pixels.shape)}, expected {list(entry.shape)}"


def _check_file(root: Path, entry: PixelDigest) -> tuple[str, str | None]:
    path = root / entry.path
    if not path.is_file():
        return "missing", None
    try:
        pixels = read_image(path)
    except ReproError as exc:
        return "mismatch", f"unreadable ({exc})"
    return ("ok", None) if (why := check_pixels(entry, pixels)) is None else ("mismatch", why)


def verify(manifest: Manifest, root: str | os.PathLike[str], workers: int | None = None) -> VerifyReport:
    """Check image counts per folder and every pixel digest of `manifest` under `root`."""
    root = Path(root)
    report = VerifyReport(manifest.name, root, embedded=manifest.embedded)
    if manifest.embedded:
        return _verify_embedded(manifest, report)
    for folder in manifest.folders:
        n = count_images(root / folder.path, folder.pattern)
        if not (root / folder.path).is_dir():
            report.folder_problems.append(f"folder {folder.path} is missing (expected {folder.count} images)")
        elif n < folder.count:
            report.folder_problems.append(f"folder {folder.path}: {n} images, expected {folder.count}")
        elif n > folder.count:
            report.notes.append(f"folder {folder.path}: {n} images, {n - folder.count} more than listed")
    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without holding the GIL
        results = list(pool.map(lambda e: _check_file(root, e), manifest.pixels))
    for entry, (state, why) in zip(manifest.pixels, results, strict=True):
        if state == "missing":
            report.missing.append(entry.path)
        elif state == "mismatch":
            report.mismatched.append(f"{entry.path}: {why}")
        else:
            report.checked += 1
    return report


def _verify_embedded(manifest: Manifest, report: VerifyReport) -> VerifyReport:
    """The embedded sample: every listed image must build, with the listed split and shape."""
    from repro.data.sample import sample_images

    for split in sorted({im.split for im in manifest.images}):
        built = sample_images(split)
        for im in (i for i in manifest.images if i.split == split):
            if im.name not in built:
                report.missing.append(f"{split}/{im.name}")
            elif tuple(built[im.name].shape) != im.shape:
                report.mismatched.append(f"{split}/{im.name}: shape {list(built[im.name].shape)}, "
                                         f"expected {list(im.shape)}")
            else:
                report.checked += 1
        listed = {i.name for i in manifest.images if i.split == split}
        unlisted = [n for n in built if n not in listed]
        report.mismatched.extend(f"{split}/{n}: built but not listed in the manifest" for n in unlisted)
    return report

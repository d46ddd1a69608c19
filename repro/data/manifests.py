"""Dataset manifests (`data_manifests/<name>.toml`): where each archive comes from, its checksums, and
what the extracted data must look like (folders, image counts, per-image pixel digests).

The manifests are data, not code, so that adding a mirror or a dataset needs no Python; everything is
validated on load so a typo fails with the file and key named instead of deep inside a download.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from repro.errors import ReproError, unknown_choice
from repro.paths import project_file

MANIFEST_DIR = "data_manifests"
FORMATS = ("zip", "tar", "file")
_HEX = {"sha256": 64, "md5": 32}


@dataclass(frozen=True)
class Archive:
    """One file to download: mirrors tried in order, checked before anything is extracted."""

    file: str
    urls: tuple[str, ...]
    extract_to: str = "."  # folder under the data root, POSIX-style; "." = the root itself
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    format: str = "zip"  # zip | tar | file (placed as is, no extraction)


@dataclass(frozen=True)
class Folder:
    """A folder of the extracted data and how many images it must hold."""

    path: str
    count: int
    pattern: str = "*.png"


@dataclass(frozen=True)
class PixelDigest:
    """sha256 of the decoded uint8 pixels (`read_image`, C order) plus their shape.

    `crop`/`crop_sha256` (optional) accept a copy that differs only in size: the digest of the top-left
    crop of that shape must match instead (B100: 480x320, 480x321 and 481x321 copies all pass).
    """

    path: str
    shape: tuple[int, ...]
    sha256: str
    crop: tuple[int, int] | None = None
    crop_sha256: str | None = None


@dataclass(frozen=True)
class EmbeddedImage:
    """One image of an embedded dataset (built in memory, nothing to download)."""

    name: str
    file: str
    split: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    license: str
    source: str
    notes: str = ""
    archives: tuple[Archive, ...] = ()
    folders: tuple[Folder, ...] = ()
    pixels: tuple[PixelDigest, ...] = ()
    embedded: bool = False
    images: tuple[EmbeddedImage, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def size(self) -> int | None:
        """Total download size in bytes; None when an archive's size is not known in advance."""
        sizes = [a.size for a in self.archives]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]

    def archive(self, file: str) -> Archive:
        for a in self.archives:
            if a.file == file:
                return a
        raise unknown_choice(f"archive of dataset {self.name}", file, [a.file for a in self.archives])


def _manifest_dir() -> Path:
    return project_file(MANIFEST_DIR)


def list_datasets() -> list[str]:
    """Names of the datasets that have a manifest, sorted."""
    return sorted(p.stem for p in _manifest_dir().glob("*.toml"))


def get_manifest(name: str) -> Manifest:
    """The manifest of dataset `name` (case-insensitive); an unknown name lists the valid ones."""
    names = list_datasets()
    key = str(name).lower()
    if key not in names:
        raise unknown_choice("dataset", name, names)
    return load_manifest(_manifest_dir() / f"{key}.toml")


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate one manifest file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ReproError(f"manifest {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ReproError(f"manifest {path} is not valid TOML: {exc}") from exc
    return parse_manifest(raw, source=path)


class _Checker:
    """Small helper that names the manifest file and key in every validation error."""

    def __init__(self, source: Path | str) -> None:
        self.source = source

    def fail(self, where: str, msg: str) -> ReproError:
        return ReproError(f"manifest {self.source}: {where}: {msg}")

    def keys(self, where: str, table: Any, allowed: set[str], required: Collection[str] = ()) -> dict:
        if not isinstance(table, dict):
            raise self.fail(where, f"expected a table, got {type(table).__name__}")
        extra = set(table) - allowed
        if extra:
            raise self.fail(where, f"unknown key(s) {sorted(extra)}; valid: {sorted(allowed)}")
        missing = set(required) - set(table)
        if missing:
            raise self.fail(where, f"missing key(s) {sorted(missing)}")
        return table

    def typed(self, where: str, value: Any, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(where, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def digest(self, where: str, value: Any, algo: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not re.fullmatch(f"[0-9a-f]{{{_HEX[algo]}}}", value):
            raise self.fail(where, f"{algo} must be {_HEX[algo]} lowercase hex digits, got {value!r}")
        return value

    def relpath(self, where: str, value: Any) -> str:
        self.typed(where, value, str)
        p = PurePosixPath(value)
        if p.is_absolute() or ".." in p.parts or "\\" in value:
            raise self.fail(where, f"must be a relative POSIX path inside the data root, got {value!r}")
        return str(p)

    def shape(self, where: str, value: Any, dims: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
        if (not isinstance(value, list) or len(value) not in dims
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
            n = " or ".join(map(str, dims))
            raise self.fail(where, f"expected a list of {n} positive ints, got {value!r}")
        return tuple(value)


def _format_of(file: str) -> str:
    low = file.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    return "file"


def parse_manifest(raw: dict[str, Any], source: Path | str = "<memory>") -> Manifest:
    """Validate a manifest already parsed from TOML (tests build small ones in memory)."""
    c = _Checker(source)
    top = {"name", "description", "license", "source", "notes", "mirrors", "extract_to", "embedded",
           "archives", "folders", "pixels", "images"}
    c.keys("top level", raw, top, {"name", "description", "license", "source"})
    name = c.typed("name", raw["name"], str)
    if isinstance(source, Path) and source.stem != name:
        raise c.fail("name", f"{name!r} must match the file name {source.stem!r}")
    mirrors = c.typed("mirrors", raw.get("mirrors", []), list)
    for m in mirrors:
        if not isinstance(m, str) or "{file}" not in m:
            raise c.fail("mirrors", f"each mirror is a URL template containing {{file}}, got {m!r}")
    default_dest = c.relpath("extract_to", raw.get("extract_to", "."))

    archives = []
    for file, spec in c.typed("archives", raw.get("archives", {}), dict).items():
        where = f"archives.{file!r}"
        c.keys(where, spec, {"urls", "size", "sha256", "md5", "extract_to", "format"})
        if "/" in file or "\\" in file or file in (".", ".."):
            raise c.fail(where, "the archive name must be a plain file name")
        own = c.typed(f"{where}.urls", spec.get("urls", []), list)
        urls = [*own, *(m.format(file=file) for m in mirrors)]
        if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise c.fail(where, f"needs http(s) URLs (own `urls` or top-level `mirrors`), got {urls}")
        size = spec.get("size")
        if size is not None and (c.typed(f"{where}.size", size, int) <= 0):
            raise c.fail(where, f"size must be positive, got {size}")
        sha256 = c.digest(f"{where}.sha256", spec.get("sha256"), "sha256")
        md5 = c.digest(f"{where}.md5", spec.get("md5"), "md5")
        if sha256 is None and md5 is None:
            raise c.fail(where, "needs a checksum: sha256 or md5")
        fmt = spec.get("format", _format_of(file))
        if fmt not in FORMATS:
            raise c.fail(f"{where}.format", f"unknown format {fmt!r}; valid choices: {', '.join(FORMATS)}")
        dest = c.relpath(f"{where}.extract_to", spec.get("extract_to", default_dest))
        archives.append(Archive(file, tuple(urls), dest, size, sha256, md5, fmt))

    folders = []
    for fpath, spec in c.typed("folders", raw.get("folders", {}), dict).items():
        where = f"folders.{fpath!r}"
        c.keys(where, spec, {"count", "pattern"}, {"count"})
        count = c.typed(f"{where}.count", spec["count"], int)
        if count <= 0:
            raise c.fail(where, f"count must be positive, got {count}")
        pattern = c.typed(f"{where}.pattern", spec.get("pattern", "*.png"), str)
        folders.append(Folder(c.relpath(where, fpath), count, pattern))

    pixels = []
    for ppath, spec in c.typed("pixels", raw.get("pixels", {}), dict).items():
        where = f"pixels.{ppath!r}"
        c.keys(where, spec, {"shape", "sha256", "crop", "crop_sha256"}, {"shape", "sha256"})
        crop = c.shape(f"{where}.crop", spec["crop"], (2,)) if "crop" in spec else None
        crop_sha = c.digest(f"{where}.crop_sha256", spec.get("crop_sha256"), "sha256")
        if (crop is None) != (crop_sha is None):
            raise c.fail(where, "crop and crop_sha256 go together")
        pixels.append(PixelDigest(c.relpath(where, ppath), c.shape(f"{where}.shape", spec["shape"]),
                                  c.digest(f"{where}.sha256", spec["sha256"], "sha256"), crop, crop_sha))

    images = []
    for iname, spec in c.typed("images", raw.get("images", {}), dict).items():
        where = f"images.{iname!r}"
        c.keys(where, spec, {"file", "split", "shape"}, {"file", "split", "shape"})
        images.append(EmbeddedImage(iname, c.typed(f"{where}.file", spec["file"], str),
                                    c.typed(f"{where}.split", spec["split"], str),
                                    c.shape(f"{where}.shape", spec["shape"])))

    embedded = c.typed("embedded", raw.get("embedded", False), bool)
    if embedded == bool(archives):
        raise c.fail("top level", "a dataset is either embedded (no archives) or has archives to download")
    return Manifest(
        name=name,
        description=c.typed("description", raw["description"], str),
        license=c.typed("license", raw["license"], str),
        source=c.typed("source", raw["source"], str),
        notes=c.typed("notes", raw.get("notes", ""), str),
        archives=tuple(archives),
        folders=tuple(folders),
        pixels=tuple(pixels),
        embedded=embedded,
        images=tuple(images),
        path=source if isinstance(source, Path) else None,
    )

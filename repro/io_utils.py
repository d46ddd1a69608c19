"""Atomic writes: every file the suite writes appears whole or not at all (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide results from colleagues


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fh)` on a temp file in the target folder, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_output_folder(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """`path` as a folder to write into (created later if absent); a ReproError if it is a file."""
    from repro.errors import ReproError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ReproError(f"{flag} {path} is a file, not a folder: give a folder (it is created if absent)")
    return path


def check_output_file(path: str | os.PathLike[str], flag: str = "--json") -> Path:
    """`path` as a file to write (replaced if it exists) in a folder that exists; a ReproError naming
    the fix otherwise, so that a typo does not create a folder tree."""
    from repro.errors import ReproError

    path = Path(path)
    if path.is_dir():
        raise ReproError(f"{flag} {path} is a folder: give a file name in it, e.g. {path / 'out.json'}")
    parent = path.parent
    if not parent.is_dir():
        what = "is a file" if parent.exists() else "does not exist"
        raise ReproError(f"{flag} {path}: its folder {parent} {what}; create the folder first or give a "
                         "file in an existing folder")
    return path

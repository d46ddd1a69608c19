"""Where things live: the project's data files and the user's data root."""

from __future__ import annotations

import os
from pathlib import Path

from repro.errors import ReproError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository root (the suite is installed editable, `pip install -e .`)."""


def project_file(*parts: str) -> Path:
    """A file shipped in the repository (tables/, data_manifests/), with a clear error if absent."""
    path = PROJECT_ROOT.joinpath(*parts)
    if not path.exists():
        raise ReproError(
            f"{path} not found: install the suite from its repository with `pip install -e .` "
            "so that tables/ and data_manifests/ sit beside the package"
        )
    return path


def default_cache_root() -> Path:
    """Per-user cache folder: $XDG_CACHE_HOME/dssd-repro, else ~/.cache/dssd-repro."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dssd-repro"


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data root: `--root`/`--data-root` if given, else $REPRO_DATA, else the per-user cache."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("REPRO_DATA")
    if env:
        return Path(env).expanduser()
    return default_cache_root() / "data"

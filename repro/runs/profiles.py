"""Settings profiles: TOML files of settings, shipped in `repro/profiles/` or given by path.

`paper` is the paper's text; `pisr_code` the same protocol read as PISR's official code has it
(`extends = "paper"`, then the differences). `laptop`, `smoke` and `quickstart` make runs small enough
for a CPU. Profiles compose: `--profile smoke,pisr_code` is smoke with pisr_code's own settings on top
(a later profile's `extends` is not followed: the first profile is the base).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from repro.errors import ReproError, unknown_choice

EXTENDS = "extends"


def profile_dir() -> Path:
    return Path(str(resources.files("repro") / "profiles"))


def profile_names() -> list[str]:
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


def _read(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        if name_or_path not in profile_names():
            if path.suffix == ".toml":
                raise ReproError(f"profile file {path} not found")
            raise unknown_choice("profile", name_or_path, profile_names())
        path = profile_dir() / f"{name_or_path}.toml"
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ReproError(f"profile {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` over `base`, section by section (a model's `settings` table merged key by key too)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def _with_bases(name_or_path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name_or_path in seen:
        raise ReproError(f"profile {name_or_path!r} extends itself (through {' -> '.join(seen)})")
    data = _read(name_or_path)
    base = data.pop(EXTENDS, None)
    if base is None:
        return data
    return _merge(_with_bases(str(base), (*seen, name_or_path)), data)


def load_profile(spec: str) -> dict[str, Any]:
    """The settings of `spec`: a profile name, a TOML path, or several joined by commas."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise unknown_choice("profile", spec, profile_names())
    data = _with_bases(parts[0])
    for part in parts[1:]:
        top = _read(part)
        top.pop(EXTENDS, None)
        data = _merge(data, top)
    return data

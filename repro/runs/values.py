"""Setting values as text: `--set key=value` parsed by the field's type, a profile's TOML values checked,
and values written back as TOML (what `config.toml` holds)."""

from __future__ import annotations

import json
import tomllib
import typing
from typing import Any

from repro.errors import ReproError


def parse_value(text: str, kind: Any, key: str) -> Any:
    """Turn the text of `--set key=text` into the field's type; a bad value names the key and type."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool or isinstance(kind, bool):
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if origin is list:
            (item,) = typing.get_args(kind) or (str,)
            text = text.strip()
            if text.startswith("["):
                values = tomllib.loads(f"v = {text}")["v"]
            else:
                values = [v.strip() for v in text.split(",") if v.strip()]
            return [item(v) if item is not str else str(v) for v in values]
        # untyped (a model setting whose default is None or a dict): a TOML literal, else the string
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    except (ValueError, TypeError) as exc:
        name = getattr(kind, "__name__", str(kind))
        raise ReproError(f"--set {key}={text}: expected a value of type {name}") from exc


def check_value(key: str, value: Any, kind: Any) -> Any:
    """Type-check a value read from a TOML profile (ints are accepted where floats are expected)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = typing.get_origin(kind) or kind
    if isinstance(base, type) and not isinstance(value, base) or (kind is int and isinstance(value, bool)):
        raise ReproError(f"setting {key} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    return list(value) if base is list else value


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        raise ReproError("a setting of None cannot be written to TOML; leave it out instead")
    raise TypeError(f"cannot write {type(value).__name__} to TOML")

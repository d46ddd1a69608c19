"""A small model registry in the spirit of timm: `@register_model` on a constructor, `create(name)`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from repro.errors import ReproError, unknown_choice

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name; it must take `scale` and keyword settings."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


@dataclass(frozen=True)
class ModelInfo:
    name: str
    summary: str
    settings: dict[str, object]  # keyword -> default


def _ensure_loaded() -> None:
    import repro.models  # noqa: F401  (importing the package registers every family)


def model_names() -> list[str]:
    _ensure_loaded()
    return sorted(_MODELS)


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if name not in _MODELS:
        raise unknown_choice("model", name, sorted(_MODELS))
    fn = _MODELS[name]
    settings = {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.name != "scale" and p.default is not inspect.Parameter.empty
    }
    summary = (inspect.getdoc(fn) or "").splitlines()[0] if fn.__doc__ else ""
    return ModelInfo(name, summary, settings)


def create(name: str, scale: int = 4, **settings: object) -> nn.Module:
    """Build a registered model; an unknown name or setting is a ReproError listing the valid ones."""
    info = model_info(name)
    unknown = sorted(set(settings) - set(info.settings))
    if unknown:
        raise ReproError(
            f"unknown setting(s) {', '.join(unknown)} for model {name!r}; "
            f"valid settings: {', '.join(info.settings) or '(none)'}"
        )
    return _MODELS[name](scale=scale, **settings)

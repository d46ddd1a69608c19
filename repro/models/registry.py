"""A small model registry in the spirit of timm: `@register_model` on a constructor, `create(name)`.

Each entry says the network's role, so the code that trains and checks runs asks what a network is, not
what it is called:

- `network`: an SR network trained alone (the comparison rows of Appendix Table I);
- `backbone`: also what a teacher wraps and a student distils: it has `features(lr)` (the map VID
  distils) and `forward_with_features(lr) -> (sr, features)` (timm's `forward_features` beside `forward`);
- `teacher`: a privileged teacher on HR: `features(hr, bicubic)` for its student, and its own training
  loss (`loss_weights(loss)`, the terms beyond L_recon and their weights; `loss_terms(hr, targets,
  weights)`); `check` refuses settings that would silently drop one of its loss terms.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from repro.errors import ReproError, unknown_choice

ROLES = ("network", "backbone", "teacher")
# check(settings, loss settings, scale): raise a ReproError naming the setting and the fix
SettingsCheck = Callable[[dict[str, Any], Any, int], None]


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., nn.Module]
    role: str
    check: SettingsCheck | None


_MODELS: dict[str, _Entry] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, role: str = "network",
                   check: SettingsCheck | None = None) -> Any:
    """Register a constructor under its function name; it must take `scale` and keyword settings.
    `@register_model` registers a `network`; `@register_model(role=..., check=...)` says more."""
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; valid: {', '.join(ROLES)}")

    def register(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _MODELS:
            raise ValueError(f"model {f.__name__!r} registered twice")
        _MODELS[f.__name__] = _Entry(f, role, check)
        return f

    return register(fn) if fn is not None else register


@dataclass(frozen=True)
class ModelInfo:
    name: str
    summary: str
    settings: dict[str, object]  # keyword -> default
    role: str = "network"  # one of ROLES
    check: SettingsCheck | None = None


def model_names(role: str | None = None) -> list[str]:
    """Every registered network (importing `repro.models` registers them all), or those of one role."""
    return sorted(n for n, e in _MODELS.items() if role is None or e.role == role)


def model_info(name: str) -> ModelInfo:
    if name not in _MODELS:
        raise unknown_choice("model", name, sorted(_MODELS))
    entry = _MODELS[name]
    settings = {
        p.name: p.default
        for p in inspect.signature(entry.fn).parameters.values()
        if p.name != "scale" and p.default is not inspect.Parameter.empty
    }
    summary = (inspect.getdoc(entry.fn) or "").splitlines()[0] if entry.fn.__doc__ else ""
    return ModelInfo(name, summary, settings, entry.role, entry.check)


def create(name: str, scale: int = 4, **settings: object) -> nn.Module:
    """Build a registered model; an unknown name or setting is a ReproError listing the valid ones."""
    info = model_info(name)
    unknown = sorted(set(settings) - set(info.settings))
    if unknown:
        raise ReproError(
            f"unknown setting(s) {', '.join(unknown)} for model {name!r}; "
            f"valid settings: {', '.join(info.settings) or '(none)'}"
        )
    return _MODELS[name].fn(scale=scale, **settings)

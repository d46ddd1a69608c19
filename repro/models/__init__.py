"""Networks of every table row: one module per family, each registering its constructors.

Importing this package imports every family module in it (so each `@register_model` runs);
`create(name, scale=..., **settings)` builds one, `model_names()` lists them (`model_names(role)`: the
networks, backbones or teachers; `repro.models.registry` says what each role provides).
"""

import importlib
import pkgutil

from repro.models.registry import ModelInfo, create, model_info, model_names, register_model

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in {"registry"} and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ModelInfo", "create", "model_info", "model_names", "register_model"]

"""Training: settings (`config`), the loop (`engine`), per-kind objectives and what a run leaves on disk.

`repro train baseline|teacher|student ...` is the command line; `train(cfg, out=...)` the same in Python;
`load_model(run_dir)` rebuilds a finished run's deployed network. Names are imported on first use, so
that `repro --help` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "repro.train.config",
    "resolve": "repro.train.config",
    "train": "repro.train.engine",
    "load_model": "repro.train.state",
    "read_metrics": "repro.train.state",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'repro.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""What a run leaves on disk, written so that a run killed at any moment resumes exactly.

- `checkpoint.pt`: trainable state, optimizer, scheduler, every RNG state and the iteration,
  replaced atomically (temp file + rename) every `run.checkpoint_every` iterations;
- `metrics.csv`: one row per logged iteration, appended with fsync; on resume the rows past the
  checkpoint (and any half-written last line) are dropped, so the file never runs ahead of the weights;
- `model.pt`: the deployed network with what is needed to rebuild it (`load_model`);
- `done.json`: written last; its presence means the run is complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from repro.errors import ReproError
from repro.io_utils import atomic_write, atomic_write_text

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
MODEL = "model.pt"
DONE = "done.json"
MODEL_FORMAT = "repro-model/1"


def save_torch(path: Path, obj: Any) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which one and what to do
        raise ReproError(f"cannot read {path}: {exc}; delete it (or rerun with --force) "
                         "to start over") from exc


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def model_record(kind: str, name: str, scale: int, settings: dict[str, Any],
                 net: nn.Module) -> dict[str, Any]:
    """`model.pt`: the deployed network's weights and how to rebuild it."""
    return {
        "format": MODEL_FORMAT,
        "kind": kind,
        "model": name,
        "scale": scale,
        "settings": dict(settings),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the deployed network from a run folder or its `model.pt`: (network in eval mode, record)."""
    from repro.models import create

    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    if not path.exists():
        raise ReproError(f"{path} not found: the run has not finished (run the same `repro train` command "
                         "again to resume it)")
    record = load_torch(path)
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise ReproError(f"{path} is not a model written by `repro train` (format {MODEL_FORMAT})")
    net = create(record["model"], scale=record["scale"], **record["settings"])
    net.load_state_dict(record["state_dict"])
    return net.eval(), record


class MetricsLog:
    """Append-only CSV with a header fixed by its first row; `truncate(k)` keeps rows up to iteration k."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.columns: list[str] | None = None

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]  # a half-written last line of a killed run
        reader = csv.DictReader(io.StringIO("".join(lines)))
        self.columns = list(reader.fieldnames or []) or None
        return [r for r in reader if None not in r.values() and None not in r]

    def truncate(self, iteration: int) -> None:
        """Drop every row after `iteration` (rewritten atomically); called on resume and on a fresh start."""
        if not self.enabled:
            return
        rows = [r for r in self.rows() if int(r["iteration"]) <= iteration]
        if not rows:
            self.path.unlink(missing_ok=True)
            self.columns = None
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.columns is None:
            self.columns = list(row)
        unknown = set(row) - set(self.columns)
        if unknown:
            raise RuntimeError(f"metrics row has columns {sorted(unknown)} missing from {self.path}'s header")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        if not self.path.exists():
            writer.writeheader()
        writer.writerow({k: _fmt(v) for k, v in row.items()})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The complete rows of a run's metrics.csv (as strings; empty cells where not measured)."""
    return MetricsLog(Path(run_dir) / METRICS).rows()

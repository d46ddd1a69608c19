"""What a run leaves on disk, and the one place that reads it back.

- `config.toml` / `config.json`: the resolved settings and their hash, written when the run starts;
- `checkpoint.pt`: trainable state, optimizer, scheduler, every RNG state and the iteration, replaced
  atomically every `run.checkpoint_every` iterations (written by `repro.train.engine`);
- `metrics.csv`: one row per logged iteration, appended with fsync; on resume the rows past the
  checkpoint (and any half-written last line) are dropped, so the file never runs ahead of the weights;
- `model.pt`: the deployed network with what is needed to rebuild it (`load_model`);
- `done.json`: written last (iterations, seconds, validation, provenance); its presence means complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.errors import ReproError
from repro.io_utils import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from torch import nn

    from repro.runs.config import TrainConfig

CONFIG_JSON = "config.json"
CONFIG_TOML = "config.toml"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
MODEL = "model.pt"
DONE = "done.json"
EVALUATION = "evaluation.json"
MODEL_FORMAT = "repro-model/1"


# ---------------------------------------------------------------- files
def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReproError(f"cannot read {path}: {exc}; rerun the run's command with --force to start "
                         "it over") from exc


def save_torch(path: Path, obj: Any) -> None:
    import torch

    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which one and what to do
        raise ReproError(f"cannot read {path}: {exc}; delete it (or rerun with --force) "
                         "to start over") from exc


# ---------------------------------------------------------------- settings
def write_config(run_dir: Path, cfg: TrainConfig, extra: dict[str, Any] | None = None) -> None:
    """The resolved settings as TOML (to read and reuse as a profile) and JSON (with the hash)."""
    from repro.runs.config import to_toml

    atomic_write_text(run_dir / CONFIG_TOML, to_toml(cfg))
    write_json(run_dir / CONFIG_JSON, {"hash": cfg.hash(), "settings": cfg.to_dict(), **(extra or {})})


def stored_hash(run_dir: Path) -> str | None:
    """The settings hash recorded in `run_dir`, or None when no run was started there."""
    path = Path(run_dir) / CONFIG_JSON
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())["hash"]
    except (ValueError, KeyError) as exc:
        raise ReproError(f"{path} is damaged; rerun with --force to start this run over") from exc


def read_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """A run's resolved settings, rebuilt from its config.json (no profile is read again)."""
    from repro.runs.config import from_dict

    path = Path(run_dir) / CONFIG_JSON
    if not path.exists():
        raise ReproError(f"{run_dir}: no {CONFIG_JSON} there; give the folder of a `repro train` run")
    return from_dict(read_json(path)["settings"])


def is_done(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run finished: `done.json` and `model.pt` are there."""
    return (Path(run_dir) / DONE).exists() and (Path(run_dir) / MODEL).exists()


def read_evaluation(folder: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """{test set: {"psnr": dB, "ssim": ..., "images": n}} of a run, empty when not evaluated yet."""
    path = Path(folder) / EVALUATION
    if not path.exists():
        return {}
    return read_json(path)["sets"]


def read_teacher(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The settings of a finished teacher run (what a student adopts), with errors naming the fix."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_JSON).exists():
        raise ReproError(f"--teacher {run_dir}: no {CONFIG_JSON} there; give the folder of a "
                         "`repro train teacher` run")
    tcfg = read_config(run_dir)
    if tcfg.kind != "teacher":
        raise ReproError(f"--teacher {run_dir} is a {tcfg.kind} run, not a teacher run")
    if not is_done(run_dir):
        raise ReproError(f"--teacher {run_dir} has not finished training; run its `repro train teacher` "
                         "command again to complete it")
    return tcfg


# ---------------------------------------------------------------- the deployed network
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


# ---------------------------------------------------------------- metrics.csv
def format_cell(value: Any) -> str:
    """A CSV cell: empty for None, 8 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    return str(value)


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
        writer.writerow({k: format_cell(v) for k, v in row.items()})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The complete rows of a run's metrics.csv (as strings; empty cells where not measured)."""
    return MetricsLog(Path(run_dir) / METRICS).rows()

"""What a report is built from: one results folder, read as data (no training code).

A results folder is what `repro reproduce` (or `repro quickstart`) writes: `results.csv` (tidy rows),
`plan.json` (the tables, profile and seeds asked for, every run and the rows using it), `runs/<run>/`
(config.json, metrics.csv, done.json, evaluation.json, model.pt), `complexity.json` and `bicubic.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from repro.errors import ReproError
from repro.results.collect import BICUBIC_CACHE, COMPLEXITY_CACHE, RESULTS, read_results
from repro.runs.folder import CONFIG_JSON, DONE, MODEL, read_evaluation, read_metrics
from repro.specs import TableSpec, get_table, paper_tables, rows_with_role

PLAN_JSON = "plan.json"
RUNS = "runs"



def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReproError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


@dataclass
class Run:
    """One run folder: its settings, how it finished, what it measured, its training log."""

    name: str
    folder: Path
    config: dict[str, Any]

    @property
    def settings(self) -> dict[str, Any]:
        return self.config.get("settings", {})

    @property
    def kind(self) -> str:
        return str(self.settings.get("kind", ""))

    @property
    def model(self) -> str:
        return str(self.settings.get("model", {}).get("name", ""))

    @property
    def scale(self) -> int:
        return int(self.settings.get("data", {}).get("scale", 0))

    @property
    def seed(self) -> int:
        return int(self.settings.get("run", {}).get("seed", 0))

    @property
    def teacher_name(self) -> str | None:
        """The folder name of the teacher a student was distilled from (None for other kinds)."""
        teacher = self.config.get("teacher_dir")
        return Path(teacher).name if teacher else None

    @cached_property
    def done(self) -> dict[str, Any] | None:
        return _read_json(self.folder / DONE)

    @cached_property
    def evaluation(self) -> dict[str, dict[str, Any]]:
        """{test set: {"psnr", "ssim", "images", ...}}, empty when not evaluated yet."""
        return read_evaluation(self.folder)

    @property
    def has_model(self) -> bool:
        return (self.folder / MODEL).exists()

    def metrics(self) -> pd.DataFrame:
        """metrics.csv as numbers (empty cells NaN); an empty frame when there is none."""
        rows = read_metrics(self.folder)
        return pd.DataFrame(rows).apply(pd.to_numeric, errors="coerce") if rows else pd.DataFrame()


@dataclass
class ReportInputs:
    """A results folder as the report sees it."""

    folder: Path
    results: pd.DataFrame
    plan: dict[str, Any] | None
    complexity: dict[str, Any]
    bicubic: dict[str, Any]
    data_root: Path | None = None
    _runs: dict[str, Run] | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- what was asked for
    @property
    def table_names(self) -> list[str]:
        """The tables of the plan (else of results.csv), in the paper's order."""
        names: list[str] = []
        if self.plan:
            names = list(dict.fromkeys(c["table"] for c in self.plan.get("cells", [])))
        if not names:
            names = list(dict.fromkeys(self.results["table"]))
        order = {n: i for i, n in enumerate(paper_tables())}
        return sorted(names, key=lambda n: (order.get(n, len(order)), n))

    @cached_property
    def tables(self) -> list[TableSpec]:
        return [get_table(n) for n in self.table_names]

    @property
    def seeds(self) -> int:
        if self.plan and self.plan.get("seeds"):
            return int(self.plan["seeds"])
        seeds = self.results["seed"].dropna()
        return int(seeds.max()) + 1 if len(seeds) else 1

    @property
    def profile(self) -> str:
        if self.plan and self.plan.get("profile"):
            return str(self.plan["profile"])
        profiles = sorted({p for p in self.results["profile"] if p})
        return ", ".join(profiles) or "-"

    # ---------------------------------------------------------------- runs
    @property
    def runs(self) -> dict[str, Run]:
        """Every run folder under `runs/` with a config.json, by folder name."""
        if self._runs is None:
            found = {}
            folder = self.folder / RUNS
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                config = _read_json(path / CONFIG_JSON) if path.is_dir() else None
                if config is not None:
                    found[path.name] = Run(path.name, path, config)
            self._runs = found
        return self._runs

    def run(self, name: str | None) -> Run | None:
        return self.runs.get(name) if name else None

    def run_of(self, table: str, row: str, scale: int, seed: int = 0) -> Run | None:
        """The run measured for (table, row, scale, seed), from results.csv (else plan.json)."""
        df = self.results
        hit = df[(df["table"] == table) & (df["row"] == row) & (df["scale"] == scale) & (df["seed"] == seed)
                 & (df["run"] != "")]
        if len(hit):
            return self.run(str(hit["run"].iloc[0]))
        for cell in (self.plan or {}).get("cells", []):
            if (cell["table"], cell["row"], int(cell["scale"])) == (table, row, scale) and cell.get("runs"):
                ids = cell["runs"]
                run_id = ids[seed] if seed < len(ids) else None
                for run in (self.plan or {}).get("runs", []):
                    if run["id"] == run_id:
                        return self.run(run["name"])
        return None

    def run_for(self, role: str, scale: int = 4, seed: int = 0) -> Run | None:
        """The finished run playing `role` (a row role of `repro.specs.ROLES`, or dssd_teacher / pisr_teacher:
        the teacher of that student) at `scale`, None when the results hold none; the row roles' tables
        are tried most complete first, the first one measured wins."""
        if role.endswith("_teacher"):
            student = self.run_for(role.replace("_teacher", "_student"), scale, seed)
            return self.run(student.teacher_name) if student else None
        for table, row in rows_with_role(role):
            run = self.run_of(table.name, row.name, scale, seed)
            if run is not None and run.has_model:
                return run
        return None


def load_inputs(folder: str | os.PathLike[str],
                data_root: str | os.PathLike[str] | None = None) -> ReportInputs:
    """Read a results folder; a clear error when it is not one."""
    folder = Path(folder)
    if not (folder / RESULTS).exists():
        raise ReproError(f"{folder} holds no {RESULTS}: give the --out folder of `repro reproduce` or "
                         "`repro quickstart` (e.g. `repro report --results runs/quickstart`)")
    complexity = _read_json(folder / COMPLEXITY_CACHE) or {}
    return ReportInputs(folder=folder, results=read_results(folder), plan=_read_json(folder / PLAN_JSON),
                        complexity=complexity.get("networks", {}),
                        bicubic=(_read_json(folder / BICUBIC_CACHE) or {}).get("cells", {}),
                        data_root=Path(data_root) if data_root else None)


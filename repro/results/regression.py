"""Regression checks: measured cells of a results folder against golden files, so that a change to the
code that moves a number (smoke-profile PSNRs, the Bicubic row against the paper) is caught in CI.

A golden file is JSON: a `header` (profile, the command that produced it, commit and date measured, a
`tolerance_note` saying where the tolerances come from) and `cells`, one per line and sorted, each keyed
(table, row, scale, dataset, metric) with `value`, `tolerance` and `source`: "paper" for a value printed
in the paper (never rewritten), "smoke" for a value measured with the smoke profile (rewritten by
`update_golden`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from repro.errors import ReproError
from repro.io_utils import atomic_write_text
from repro.metric_table import metric as metric_of
from repro.results.collect import RESULTS, check_unique, frame, read_results, read_results_file

SOURCES = ("paper", "smoke")
MEASURED_SOURCES = ("smoke",)  # sources `update_golden` may rewrite; "paper" cells are never touched
CELL_FIELDS = ("table", "row", "scale", "dataset", "metric")
VALUE_DIGITS = 8  # decimals kept in a golden file: far below any tolerance, short enough to read
EPS = 1e-9  # a difference equal to the tolerance (up to float rounding) passes

Key = tuple[str, str, int, str, str]


def cell_name(key: Key) -> str:
    """A cell as people write it: table/row/x4/Set5/psnr ("-" for no dataset)."""
    table, row, scale, dataset, metric = key
    return f"{table}/{row}/x{scale}/{dataset or '-'}/{metric}"


def fmt(name: str, value: float | None, signed: bool = False) -> str:
    """A value with the digits a check prints for its metric (repro.metric_table: finer than any
    tolerance; SSIM one more than PSNR)."""
    m = metric_of(name)
    return m.format(value, signed, digits=m.check_digits)


@dataclass(frozen=True)
class GoldenCell:
    value: float
    tolerance: float
    source: str


@dataclass
class Golden:
    """A golden file in memory: its header and its cells by key."""

    header: dict[str, Any]
    cells: dict[Key, GoldenCell]
    path: Path | None = None


@dataclass(frozen=True)
class Check:
    """One golden cell against the results: `measured` is None when the results lack the cell."""

    key: Key
    golden: GoldenCell
    measured: float | None
    n_seeds: int = 0

    @property
    def diff(self) -> float | None:
        return None if self.measured is None else self.measured - self.golden.value

    @property
    def status(self) -> str:
        if self.measured is None:
            return "not measured"
        if math.isnan(self.measured) or abs(self.measured - self.golden.value) > self.golden.tolerance + EPS:
            return "outside tolerance"
        return "ok"

    def line(self) -> str:
        metric, g = self.key[4], self.golden
        if self.measured is None:
            return f"{cell_name(self.key)}: not measured (golden {fmt(metric, g.value)}, {g.source})"
        seeds = f", mean of {self.n_seeds} seeds" if self.n_seeds > 1 else ""
        return (f"{cell_name(self.key)}: measured {fmt(metric, self.measured)}, "
                f"golden {fmt(metric, g.value)}, diff {fmt(metric, self.diff, signed=True)}, "
                f"tolerance {g.tolerance:g} "
                f"({g.source}{seeds})")


@dataclass(frozen=True)
class Miss:
    """A golden cell that fails: outside its tolerance, or absent from the results ("not measured")."""

    check: Check

    @property
    def kind(self) -> str:
        return self.check.status

    def __str__(self) -> str:
        return f"{self.kind.upper()}: {self.check.line()}"


@dataclass
class Comparison:
    """Every golden cell checked, and how many cells of the results the golden file does not hold."""

    checks: list[Check] = field(default_factory=list)
    ignored: int = 0

    @property
    def misses(self) -> list[Miss]:
        return [Miss(c) for c in self.checks if c.status != "ok"]


@dataclass(frozen=True)
class Change:
    key: Key
    old: float
    new: float

    def __str__(self) -> str:
        metric = self.key[4]
        return (f"{cell_name(self.key)}: {fmt(metric, self.old)} -> {fmt(metric, self.new)} "
                f"({fmt(metric, self.new - self.old, signed=True)})")


# ---------------------------------------------------------------- golden files
def load_golden(path: str | os.PathLike[str]) -> Golden:
    """Read and validate a golden file; a missing or malformed one is a ReproError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ReproError(f"golden file {path} not found; pass an existing file to --golden (the suite's "
                         "are in tests/golden/)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReproError(f"cannot read golden file {path}: {exc}; restore it from the repository") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ReproError(f"golden file {path} holds no `cells` list; restore it from the repository")
    cells: dict[Key, GoldenCell] = {}
    for i, raw in enumerate(data["cells"]):
        try:
            key: Key = (str(raw["table"]), str(raw["row"]), int(raw["scale"]), str(raw.get("dataset") or ""),
                        str(raw["metric"]))
            cell = GoldenCell(float(raw["value"]), float(raw["tolerance"]), str(raw["source"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReproError(f"golden file {path}: cell {i} is malformed ({exc!r}); each needs "
                             f"{', '.join(CELL_FIELDS)}, value, tolerance and source") from exc
        if cell.source not in SOURCES:
            raise ReproError(f"golden file {path}: {cell_name(key)} has source {cell.source!r}; valid "
                             f"sources: {', '.join(SOURCES)}")
        if key in cells:
            raise ReproError(f"golden file {path} holds {cell_name(key)} twice; keep one")
        cells[key] = cell
    return Golden(dict(data.get("header") or {}), cells, path)


def dumps_golden(golden: Golden) -> str:
    """The file's text: the header indented and sorted, then one sorted cell per line (easy to diff)."""
    header = json.dumps(golden.header, indent=2, sort_keys=True).replace("\n", "\n  ")
    lines = []
    for key in sorted(golden.cells):
        cell = golden.cells[key]
        record = dict(zip(CELL_FIELDS, key, strict=True))
        record.update(value=round(cell.value, VALUE_DIGITS), tolerance=cell.tolerance, source=cell.source)
        lines.append("    " + json.dumps(record))
    return '{\n  "header": ' + header + ',\n  "cells": [\n' + ",\n".join(lines) + "\n  ]\n}\n"


def write_golden(golden: Golden, path: str | os.PathLike[str]) -> Path:
    """Write atomically (temp file + rename): an interrupted update leaves the old file whole."""
    return atomic_write_text(Path(path), dumps_golden(golden))


# ---------------------------------------------------------------- results
def _bicubic_json_rows(path: Path, data: Any) -> pd.DataFrame:
    """The rows `repro bicubic --json` writes, as the Bicubic cells of Appendix Table I."""
    if not isinstance(data, list):
        raise ReproError(f"{path} is not a list of rows as `repro bicubic --json` writes")
    rows = []
    for r in data:
        for metric in ("psnr", "ssim"):
            if isinstance(r, dict) and r.get(metric) is not None:
                rows.append({"table": "appendix1", "row": "Bicubic", "scale": int(r["scale"]),
                             "dataset": str(r["dataset"]), "metric": metric, "value": float(r[metric]),
                             "seed": None, "run": "", "profile": "", "commit": "", "device": "cpu"})
    return frame(rows)


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Measured cells from a results folder (its results.csv), a results.csv, or the JSON of
    `repro bicubic --json` (read as the Bicubic row of Appendix Table I)."""
    path = Path(path)
    if path.is_dir():
        if not (path / RESULTS).is_file():
            raise ReproError(f"{path / RESULTS} not found; produce it with `repro reproduce TABLE --profile "
                             f"smoke --out {path}`")
        return read_results(path)
    if not path.is_file():
        raise ReproError(f"results {path} not found; pass a folder written by `repro reproduce ... --out DIR`"
                         " (or a JSON of `repro bicubic --json`)")
    if path.suffix == ".json":
        try:
            return _bicubic_json_rows(path, json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReproError(f"cannot read {path} as the JSON of `repro bicubic --json`: {exc}") from exc
    return read_results_file(path)  # a results.csv, under its own name or another


def combine_results(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Several result sources as one frame; the same (cell, seed) from two of them is an error."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return frame()
    df = pd.concat(frames, ignore_index=True)
    check_unique(df)
    return df


def measured_cells(results: pd.DataFrame) -> dict[Key, tuple[float, int]]:
    """Mean over seeds of every cell of `results`, with the number of values averaged."""
    out: dict[Key, tuple[float, int]] = {}
    if results.empty:
        return out
    grouped = results.groupby(list(CELL_FIELDS), sort=True, dropna=False)["value"].agg(["mean", "count"])
    for (table, row, scale, dataset, metric), rec in grouped.iterrows():
        key: Key = (str(table), str(row), int(scale), str(dataset or ""), str(metric))
        out[key] = (float(rec["mean"]), int(rec["count"]))
    return out


# ---------------------------------------------------------------- comparison and update
def check(results: pd.DataFrame, golden: Golden) -> Comparison:
    """Every golden cell against the mean over seeds of its measured values."""
    measured = measured_cells(results)
    checks = []
    for key in sorted(golden.cells):
        value, n = measured.get(key, (None, 0))
        checks.append(Check(key, golden.cells[key], value, n))
    ignored = sum(1 for key in measured if key not in golden.cells)
    return Comparison(checks, ignored)


def compare(results: pd.DataFrame, golden: Golden) -> list[Miss]:
    """The golden cells that fail: outside tolerance, or not measured at all."""
    return check(results, golden).misses


def _commits(results: pd.DataFrame, keys: Iterable[Key]) -> str | None:
    """The commit(s) the results of `keys` were measured at (the `commit` column), None if unrecorded."""
    sel = results.set_index(list(CELL_FIELDS)).index.isin(list(keys))
    commits = sorted(set(results.loc[sel, "commit"]) - {""})
    return ", ".join(commits) or None


def update_golden(results: pd.DataFrame, golden_path: str | os.PathLike[str], *,
                  updated_by: str | None = None, commit: str | None = None, date: str | None = None,
                  log=print) -> list[Change]:
    """Rewrite the measured ("smoke") values of a golden file from `results` (paper cells never), print
    and return what changed; the file is rewritten atomically, and only when something changed. The
    header's commit becomes the one the results record (else `commit`), its date `date`."""
    golden = load_golden(golden_path)
    profile = golden.header.get("profile")
    measured = measured_cells(results)
    own = [k for k, c in golden.cells.items() if c.source in MEASURED_SOURCES]
    if profile and own:
        profiles = set(results.loc[results["profile"] != "", "profile"])
        if profiles and profiles != {profile}:
            raise ReproError(f"{golden_path} holds {profile}-profile values but the results were measured "
                             f"with {', '.join(sorted(profiles))}; reproduce with --profile {profile}")
    changes = []
    for key in sorted(own):
        if key not in measured:
            log(f"not measured, kept: {cell_name(key)}")
            continue
        old, new = golden.cells[key].value, round(measured[key][0], VALUE_DIGITS)
        if new != round(old, VALUE_DIGITS):
            changes.append(Change(key, old, new))
            golden.cells[key] = GoldenCell(new, golden.cells[key].tolerance, golden.cells[key].source)
    if not own:
        log(f"{golden_path}: no measured cells (all are printed values, never rewritten)")
    elif not changes:
        log(f"{golden_path}: no change ({len(own)} measured cells)")
    else:
        stamp = {"commit": _commits(results, [c.key for c in changes]) or commit, "date": date,
                 "updated_by": updated_by}
        golden.header.update({k: v for k, v in stamp.items() if v is not None})
        write_golden(golden, golden_path)
        log(f"{golden_path}: {len(changes)} of {len(own)} measured cells changed (old -> new):")
        for change in changes:
            log(f"  {change}")
    return changes

"""Gather every measured cell of the tables into one tidy `results.csv`.

Three sources, each a tidy frame with the columns of `COLUMNS`:

- `measured_rows`: the trained runs of a plan, read from each run folder's `evaluation.json` (a run not
  evaluated yet, or not on a set, leaves its cells absent: nothing is filled in);
- `bicubic_rows`: the Bicubic rows (no network), measured from the images, cached in `<out>/bicubic.json`;
- `complexity_rows`: Appendix Table I's params / MultiAdds / runtime of each row's deployed network,
  cached in `<out>/complexity.json`.

Cells are keyed as in `tables/published/published_values.csv`: (table, row, scale, dataset, metric),
with dataset "" for the complexity columns; `seed` is empty for what does not depend on a seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from repro.errors import ReproError
from repro.io_utils import atomic_write_text
from repro.plan.runs import Plan
from repro.provenance import threads_text
from repro.runs.folder import read_evaluation
from repro.specs import TableSpec

COLUMNS = ("table", "row", "scale", "dataset", "metric", "value", "seed", "run", "profile", "commit",
           "device")
KEY = ("table", "row", "scale", "dataset", "metric", "seed")
RESULTS = "results.csv"
BICUBIC_CACHE = "bicubic.json"
COMPLEXITY_CACHE = "complexity.json"
BICUBIC_NAMES = ("bicubic",)  # a row without runs with this name (any case) is measured by `bicubic_row`


def frame(rows: Iterable[dict[str, Any]] = ()) -> pd.DataFrame:
    """Tidy rows as a frame with exactly `COLUMNS` (seed as a nullable integer, text never NaN)."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return normalise(df)


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with the dtypes of a results frame (also for a frame read back from `results.csv`)."""
    df = df.copy()
    for col in ("table", "row", "dataset", "metric", "run", "profile", "commit", "device"):
        df[col] = df[col].fillna("").astype(str)
    df["scale"] = df["scale"].astype("int64")
    df["value"] = df["value"].astype("float64")
    df["seed"] = pd.to_numeric(df["seed"]).astype("Int64")
    return df[list(COLUMNS)]


def _table_of(plan: Plan, name: str) -> TableSpec:
    for table in plan.tables:
        if table.name == name:
            return table
    raise ReproError(f"the plan measures table {name!r} but does not hold its spec")


def measured_rows(plan: Plan, out: str | os.PathLike[str], *, profile: str, commit: str | None,
                  device: str | Callable[[Any], str]) -> pd.DataFrame:
    """One row per (table, row, scale, seed) of `plan.measured` x dataset x metric that its run's
    `evaluation.json` holds; cells of runs not evaluated (on that set) are absent. `device` names where
    the runs trained (a function of the planned run: each with its own threads)."""
    rows = []
    for (table_name, row_name, scale, seed), run_id in plan.measured.items():
        table = _table_of(plan, table_name)
        run = plan.runs[run_id]
        evaluation = read_evaluation(run.folder(out))
        where = device(run) if callable(device) else device
        for dataset in table.datasets:
            cell = evaluation.get(dataset) or {}
            for metric in table.metrics:
                value = cell.get(metric)
                if value is None:
                    continue
                rows.append({"table": table_name, "row": row_name, "scale": int(scale), "dataset": dataset,
                             "metric": metric, "value": float(value), "seed": int(seed), "run": run.name,
                             "profile": profile, "commit": commit or "",
                             "device": where})
    return frame(rows)


# ---------------------------------------------------------------- cached measurements
def _read_cache(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReproError(f"cannot read {path}: {exc}; delete it to measure again") from exc
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def is_bicubic(row) -> bool:
    return not row.runs and row.name.lower() in BICUBIC_NAMES


def bicubic_rows(tables: Sequence[TableSpec], out: str | os.PathLike[str], data_root: str | None = None, *,
                 commit: str | None = None, workers: int | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """The Bicubic rows of `tables` (a row with no runs named Bicubic), measured with `bicubic_row` on
    each table's datasets and scales. Cells are cached in `<out>/bicubic.json`: only the (set, scale)
    cells it lacks are measured, so a second call measures nothing."""
    wanted = [(t, r) for t in tables for r in t.rows if is_bicubic(r)]
    if not wanted:
        return frame()
    path = Path(out) / BICUBIC_CACHE
    cache = _read_cache(path)
    cells: dict[str, dict[str, Any]] = cache.get("cells", {})
    need_sets: list[str] = []
    need_scales: list[int] = []
    for table, _ in wanted:
        for dataset in table.datasets:
            for scale in table.scales:
                if f"{dataset}/x{scale}" not in cells:
                    need_sets += [dataset] if dataset not in need_sets else []
                    need_scales += [scale] if scale not in need_scales else []
    if need_sets:
        from repro.evaluate.bicubic_row import bicubic_row

        for cell in bicubic_row(need_sets, sorted(need_scales), root=data_root, workers=workers,
                                progress=progress):
            key = f"{cell['dataset']}/x{int(cell['scale'])}"
            cells.setdefault(key, {**cell, "commit": commit or ""})
        _write_cache(path, {"cells": cells, "data_root": str(data_root) if data_root else None})
    rows = []
    for table, row in wanted:
        for scale in table.scales:
            for dataset in table.datasets:
                cell = cells.get(f"{dataset}/x{scale}", {})
                for metric in table.metrics:
                    if cell.get(metric) is None:
                        continue
                    rows.append({"table": table.name, "row": row.name, "scale": int(scale),
                                 "dataset": dataset, "metric": metric, "value": float(cell[metric]),
                                 "seed": None, "run": "", "profile": "",
                                 "commit": cell.get("commit", "") or commit or "", "device": "cpu"})
    return frame(rows)


def network_of(table: TableSpec, row, scale: int, plan: Plan | None = None) -> str | None:
    """The network a row deploys at `scale` (a student's is its backbone), None for Bicubic."""
    spec = row.run_at(scale)
    if spec is None:
        return None
    if plan is not None:
        run_id = plan.measured.get((table.name, row.name, scale, 0))
        if run_id is not None:
            return plan.runs[run_id].cfg.model.name
    return spec.model


def complexity_rows(tables: Sequence[TableSpec], plan: Plan | None, out: str | os.PathLike[str], *,
                    options: Any = None, commit: str | None = None, progress: bool = False,
                    device: str = "cpu") -> pd.DataFrame:
    """Params (k), MultiAdds (G, legacy convention: the printed figures') and CPU runtime (ms) of each
    row's deployed network at each scale, for the tables with `complexity=True`. Every (network, scale)
    is measured once and cached in `<out>/complexity.json` (the whole `measure` record: true MACs too);
    a runtime skipped above the GMAC ceiling is absent. With `device` "cuda" (the runs trained on a GPU)
    the record also holds the GPU runtime (`runtime_gpu_ms`, the report's "GPU (ms)" column; the printed
    runtimes were measured on a GPU): an entry measured without it is measured again."""
    wanted = [t for t in tables if t.complexity]
    if not wanted:
        return frame()
    path = Path(out) / COMPLEXITY_CACHE
    cache = _read_cache(path)
    entries: dict[str, dict[str, Any]] = cache.get("networks", {})
    opts = env = None
    rows = []
    for table in wanted:
        for row in table.rows:
            for scale in table.scales:
                name = network_of(table, row, scale, plan)
                if name is None:
                    continue
                key = f"{name}/x{scale}"
                entry = entries.get(key)
                if opts is None:
                    from repro.complexity.measure import Options

                    opts = options if options is not None else Options(tools=False, device=device)
                stale = entry is None or (opts.runtime and (
                    (entry.get("runtime_cpu_ms") is None and not entry.get("runtime_note"))
                    or (opts.device == "cuda" and entry.get("runtime_gpu_ms") is None
                        and not entry.get("error"))))
                if stale:
                    from repro.complexity.measure import measure
                    from repro.provenance import environment

                    env = env if env is not None else environment(opts.device)
                    if progress:
                        print(f"complexity: {name} x{scale}", flush=True)
                    try:
                        entry = measure(name, scale, opts, env)
                    except ReproError as exc:  # e.g. no upsampler at this scale: the cells stay absent
                        entry = {"model": name, "scale": scale, "error": str(exc)}
                    entry["commit"] = commit or ""
                    entries[key] = entry
                    _write_cache(path, {"networks": entries})
                rows.extend(_complexity_cells(table, row.name, scale, entry))
    return frame(rows)


def _complexity_cells(table: TableSpec, row: str, scale: int, entry: dict[str, Any]) -> list[dict]:
    environment = entry.get("environment") or {}
    device = f"cpu:{environment['cpu']} ({threads_text(environment.get('torch_threads', '?'))})" \
        if environment.get("cpu") else "cpu"
    values = {
        "params_k": None if entry.get("params") is None else entry["params"] / 1e3,
        "multiadds_g": entry.get("macs_legacy_g"),
        "runtime_ms": entry.get("runtime_cpu_ms"),
    }
    return [{"table": table.name, "row": row, "scale": int(scale), "dataset": "", "metric": metric,
             "value": float(value), "seed": None, "run": "", "profile": "",
             "commit": entry.get("commit", ""), "device": device}
            for metric, value in values.items() if value is not None]


# ---------------------------------------------------------------- results.csv
def sort_results(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a deterministic order (table, row, scale, dataset, metric, seed; no seed last)."""
    return df.sort_values(list(KEY), kind="mergesort", na_position="last").reset_index(drop=True)


def check_unique(df: pd.DataFrame) -> None:
    dup = df[df.duplicated(list(KEY), keep=False)]
    if not dup.empty:
        cells = "; ".join(sorted({f"{r.table}/{r.row}/x{r.scale}/{r.dataset or '-'}/{r.metric}/seed "
                                  f"{'-' if pd.isna(r.seed) else r.seed}" for r in dup.itertuples()}))
        raise ReproError(f"results hold the same cell twice: {cells}")


def write_results(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """`<out>/results.csv`, atomically: sorted, one row per (table, row, scale, dataset, metric, seed)."""
    df = sort_results(normalise(df))
    check_unique(df)
    return atomic_write_text(Path(out) / RESULTS, df.to_csv(index=False, float_format="%.10g"))


def read_results(out: str | os.PathLike[str]) -> pd.DataFrame:
    """`<out>/results.csv` as written by `write_results` (an empty frame when there is none)."""
    path = Path(out) / RESULTS
    if not path.exists():
        return frame()
    return read_results_file(path)


_TEXT = ("table", "row", "dataset", "metric", "run", "profile", "commit", "device")
_REWRITE = "write it again with `repro reproduce TABLE --out DIR` (finished runs are not trained again)"


def read_results_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A results.csv, checked line by line: a file cut off while being written, a missing column, a row
    with too few or too many fields, an empty or non-numeric value is refused with one ReproError that
    names the file, the line and what is wrong (never half-read into a confident result)."""
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReproError(f"cannot read {path}: {exc}") from exc
    lines = text.splitlines()

    def refuse(line: int, problem: str) -> ReproError:
        return ReproError(f"{path}, line {line}: {problem}; {_REWRITE}")

    if not lines:
        raise refuse(1, "the file is empty (no header)")
    if not text.endswith("\n"):
        raise refuse(len(lines), "the last row has no line end: the file was cut off while being written")
    rows = list(csv.reader(lines))
    header = rows[0]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise refuse(1, f"the header lacks the column(s) {', '.join(missing)} (expected "
                        f"{','.join(COLUMNS)})")
    at = {c: header.index(c) for c in COLUMNS}
    records = []
    for number, fields in enumerate(rows[1:], start=2):
        if not fields:
            raise refuse(number, "an empty line")
        if len(fields) != len(header):
            raise refuse(number, f"{len(fields)} fields where the header has {len(header)} (a half-written "
                                 "or damaged row)")
        record = {c: fields[at[c]] for c in COLUMNS}
        for column, kind, what in (("scale", int, "a whole number"), ("value", float, "a number"),
                                   ("seed", int, "a whole number")):
            raw = record[column]
            if raw == "" and column == "seed":  # what depends on no seed (Bicubic, complexity)
                record[column] = None
                continue
            try:
                record[column] = kind(raw)
            except ValueError:
                problem = f"{column} is empty" if raw == "" else f"{column} {raw!r} is not {what}"
                raise refuse(number, problem) from None
        if record["value"] != record["value"] or record["value"] in (float("inf"), float("-inf")):
            raise refuse(number, f"value {fields[at['value']]!r} is not a finite number")
        for column in ("table", "row", "metric"):
            if not record[column]:
                raise refuse(number, f"{column} is empty")
        records.append(record)
    return frame(records)

"""The numbers printed in the paper (`tables/published/published_values.csv`), for side-by-side reports."""

from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd

from repro.errors import ReproError
from repro.paths import project_file

COLUMNS = ("table", "row", "scale", "dataset", "metric", "value", "note")


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    path = project_file("tables", "published", "published_values.csv")
    df = pd.read_csv(path, dtype={"table": str, "row": str, "dataset": str, "metric": str, "note": str})
    missing = [c for c in COLUMNS[:-1] if c not in df.columns]
    if missing:
        raise ReproError(f"{path} lacks the columns {', '.join(missing)}; restore it from the repository")
    return df


def published_values() -> pd.DataFrame:
    """Every printed value as a tidy table: table, row, scale, dataset, metric, value, note (a copy)."""
    return _load().copy()


def published(table: str, row: str, scale: int | None, dataset: str | None, metric: str) -> float | None:
    """One printed value, or None when the paper does not print it.

    `scale`/`dataset` may be None for values that have none (e.g. parameter counts). If the CSV holds
    the same cell twice (a row repeated in two places of the paper), the first is returned.
    """
    df = _load()
    sel = (df["table"] == table) & (df["row"] == row) & (df["metric"] == metric)
    sel &= df["scale"].isna() if scale is None else df["scale"] == scale
    sel &= df["dataset"].isna() if dataset is None else df["dataset"] == dataset
    hit = df.loc[sel, "value"]
    if hit.empty:
        return None
    value = float(hit.iloc[0])
    return None if math.isnan(value) else value

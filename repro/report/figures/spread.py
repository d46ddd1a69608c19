"""Seed spread: each seed's PSNR of every row measured with several seeds, its mean ± std and the
printed value, so a reader sees whether a gain the paper claims is larger than the seed noise.

A printed value far outside the measured range (a smoke profile measures 10+ dB below the paper) would
squash the seeds into one line: it is then drawn as an arrow at the panel's edge, labelled with its
value, instead of stretching the axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from repro.published import published
from repro.report.figures.common import (
    FONT,
    MIN_FONT_PT,
    PART_WIDTH_IN,
    TITLE_FONT,
    Figure,
    missing,
    new_figure,
    part_key,
    save,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from repro.report.inputs import ReportInputs

KEY, TITLE = "seed_spread", "PSNR across seeds"
MAX_PANELS = 8
JITTER = 0.12
MEASURED, PRINTED = "tab:blue", "tab:red"


def multi_seed(results: pd.DataFrame) -> pd.DataFrame:
    """PSNR rows of the (table, row, scale, dataset) cells measured with more than one seed."""
    df = results[(results["metric"] == "psnr") & results["seed"].notna()]
    seeds = df.groupby(["table", "row", "scale", "dataset"])["seed"].transform("nunique")
    return df[seeds > 1]


def _row_order(inputs: ReportInputs, table: str, rows: list[str]) -> list[str]:
    """Rows in the table spec's order (unknown ones last, by name)."""
    spec = next((t for t in inputs.tables if t.name == table), None)
    order = {r.name: i for i, r in enumerate(spec.rows)} if spec else {}
    return sorted(rows, key=lambda r: (order.get(r, len(order)), r))


def _panel(ax: Axes, cell: pd.DataFrame, rows: list[str], table: str, scale: int, dataset: str,
           rng: np.random.Generator) -> None:
    values = [cell.loc[cell["row"] == r, "value"].to_numpy(dtype=float) for r in rows]
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    pad = max(0.15 * (high - low), 0.05)
    ylo, yhi = low - pad, high + pad * 2.2  # room above for printed arrows and their labels
    for x, (row, v) in enumerate(zip(rows, values, strict=True)):
        ax.scatter(x + rng.uniform(-JITTER, JITTER, len(v)), v, s=14, color=MEASURED, alpha=0.75, zorder=3,
                   linewidths=0)
        std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        ax.errorbar([x + 0.25], [v.mean()], yerr=[std], fmt="s", ms=4, color="black", capsize=3, lw=1,
                    zorder=4)
        value = published(table, row, scale, dataset, "psnr")
        if value is None:
            continue
        if ylo <= value <= yhi:
            ax.scatter([x], [value], marker="_", s=220, color=PRINTED, linewidths=2, zorder=2)
        else:
            edge, direction = (yhi, "↑") if value > yhi else (ylo, "↓")
            above = value > yhi
            ax.annotate(f"{direction} printed {value:.2f}", (x, edge), xytext=(0, -4 if above else 4),
                        textcoords="offset points", fontsize=MIN_FONT_PT, color=PRINTED, ha="center",
                        va="top" if above else "bottom", annotation_clip=False)
    ax.set_ylim(ylo, yhi)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([_short(r) for r in rows], fontsize=MIN_FONT_PT, rotation=30, ha="right")
    ax.tick_params(axis="y", labelsize=MIN_FONT_PT, pad=1)
    ax.grid(True, axis="y", lw=0.3, alpha=0.5)
    ax.set_title(f"{table} x{scale} {dataset}", fontsize=TITLE_FONT, pad=3)


def _short(row: str) -> str:
    return row if len(row) <= 22 else row[:21] + "…"


def build(inputs: ReportInputs, folder: Path) -> Figure | list[Figure]:
    caption = ("PSNR (Y, dB) of every row measured with several seeds: one dot per seed (jittered "
               "sideways), the mean ± one standard deviation (black) and the printed value (red bar; an "
               "arrow with its value when it lies outside the measured range).")
    df = multi_seed(inputs.results)
    if df.empty:
        return missing(KEY, TITLE, caption, "one seed per row: rerun with `--seeds 3` to see the spread")
    order = {t.name: i for i, t in enumerate(inputs.tables)}
    panels = sorted(df.groupby(["table", "scale", "dataset"]).groups,
                    key=lambda k: (order.get(k[0], len(order)), k[0], k[1], k[2]))
    notes = []
    if len(panels) > MAX_PANELS:
        rest = ", ".join(f"{t} x{s} {d}" for t, s, d in panels[MAX_PANELS:])
        notes.append(f"{len(panels) - MAX_PANELS} more panels not drawn (at most {MAX_PANELS}): {rest}")
        panels = panels[:MAX_PANELS]
    seeds = int(df["seed"].nunique())
    caption += f" {seeds} seeds, {inputs.profile} profile."
    rng = np.random.default_rng(0)  # fixed jitter: the same results give the same picture
    figs = []
    for i, (table, scale, dataset) in enumerate(panels, start=1):  # one phone-wide image per panel
        cell = df[(df["table"] == table) & (df["scale"] == scale) & (df["dataset"] == dataset)]
        rows = _row_order(inputs, table, list(dict.fromkeys(cell["row"])))
        fig = new_figure(PART_WIDTH_IN, 2.6)
        ax = fig.add_axes((0.15, 0.33, 0.82, 0.58))
        _panel(ax, cell, rows, table, int(scale), dataset, rng)
        ax.set_ylabel("PSNR (dB)", fontsize=FONT)
        figs.append(save(fig, folder, part_key(KEY, i), f"{table} x{scale} {dataset}", caption, notes,
                         group=KEY, group_title=TITLE))
    return figs

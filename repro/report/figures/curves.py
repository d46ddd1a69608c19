"""Training curves: one small panel per run, every loss term of its metrics.csv against iteration.

Loss terms are on a log axis (they shrink by orders of magnitude); a term that is always negative (the
VID term is a negative log-likelihood bound) is drawn negated and labelled so, and a panel whose terms
change sign switches to a symmetric-log axis. Validation PSNR (`val_psnr_<set>`) goes on a twin axis.
Runs are drawn four to an image (two by two, phone-wide); a smoke `reproduce all` (~64 runs) makes 16.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

from repro.report.figures.common import (
    FONT,
    MIN_FONT_PT,
    PART_WIDTH_IN,
    Figure,
    empty_panel,
    missing,
    new_figure,
    part_key,
    save,
    short_run,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from repro.report.inputs import ReportInputs, Run

KEY, TITLE = "curves", "Training curves"
PER_PART, COLS = 4, 2
NOT_LOSS = {"iteration", "lr", "data_wait", "it_per_s", "seconds", "epoch"}
KIND_ORDER = {"teacher": 0, "student": 1, "baseline": 2}
COLOURS = {"loss": "black", "recon": "tab:blue", "vid": "tab:purple", "z_fre_1": "tab:orange",
           "z_fre_2": "tab:red", "z_deg_1": "tab:green", "z_deg_2": "tab:olive", "z_enc": "tab:brown"}
EXTRA = ("tab:pink", "tab:cyan", "tab:gray", "gold")
VAL_COLOUR = "tab:gray"


def ordered(runs: dict[str, Run]) -> list[Run]:
    """Teachers, then students, then baselines; by scale, network and name within each."""
    return sorted(runs.values(), key=lambda r: (KIND_ORDER.get(r.kind, 3), r.scale, r.model, r.name))


def terms_of(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(loss-term columns, validation-PSNR columns) of a metrics frame, in file order."""
    loss = [c for c in df.columns if c not in NOT_LOSS and not c.startswith("val_")]
    val = [c for c in df.columns if c.startswith("val_psnr_")]
    return loss, val


def rows_using(inputs: ReportInputs) -> dict[str, list[str]]:
    """Run name -> the 'table: row' cells measured with it (what a reader knows a run by); a teacher,
    never measured itself, by the rows of its students."""
    df = inputs.results
    used: dict[str, list[str]] = defaultdict(list)
    cells = df.loc[df["run"].astype(str) != "", ["run", "table", "row"]].drop_duplicates()
    for run, table, row in cells.itertuples(index=False):
        label = f"{table}: {row}"
        if label not in used[run]:
            used[run].append(label)
    measured = set(used)
    for run in inputs.runs.values():
        teacher = run.teacher_name
        if teacher and teacher not in measured:
            for label in used.get(run.name, []):
                if f"teacher of {label}" not in used[teacher]:
                    used[teacher].append(f"teacher of {label}")
    return used


def _colour(term: str, extra: dict[str, str]) -> str:
    key = term.lstrip("−")
    if key in COLOURS:
        return COLOURS[key]
    return extra.setdefault(key, EXTRA[len(extra) % len(EXTRA)])


def _panel(ax: Axes, run: Run, used: list[str], extra: dict[str, str], seen: dict[str, str]) -> None:
    """One run's curves on `ax`; `seen` collects the legend (label -> colour) across panels."""
    title = f"{short_run(run.name)} ({run.kind or '?'})"
    more = f" +{len(used) - 1}" if len(used) > 1 else ""
    title += f"\n{used[0]}{more}" if used else "\n(no table row uses it)"
    ax.set_title(title, fontsize=MIN_FONT_PT, pad=3)
    df = run.metrics()
    if df.empty or "iteration" not in df.columns:
        empty_panel(ax, "no metrics.csv\n(not trained here?)")
        return
    loss, val = terms_of(df)
    it = df["iteration"].to_numpy(dtype=float)
    signs, zero = [], []
    for term in loss:
        values = df[term].to_numpy(dtype=float)
        ok = np.isfinite(values)
        if not ok.any():
            continue
        if (values[ok] == 0).all():  # e.g. z_fre of a bicubic downsampler: no place on a log axis
            zero.append(term)
            continue
        label = term
        if (values[ok] < 0).all():
            values, label = -values, f"−{term}"
        signs.append(bool((values[ok] > 0).all()))
        total = term == "loss"  # often equal to recon: dashed on top, so both stay visible
        ax.plot(it[ok], values[ok], lw=0.9 if total else 1.1, ls="--" if total else "-",
                zorder=3 if total else 2, color=_colour(term, extra), label=label)
        seen.setdefault(label, _colour(term, extra))
    if zero:
        ax.text(0.03, 0.03, f"0 throughout: {', '.join(zero)}", transform=ax.transAxes, fontsize=MIN_FONT_PT,
                color="dimgray", zorder=5, bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
    if all(signs):
        _log_axis(ax)
    else:
        ax.set_yscale("symlog", linthresh=1e-3)
    ax.tick_params(which="both", labelsize=MIN_FONT_PT, pad=1)
    ax.xaxis.get_offset_text().set_fontsize(MIN_FONT_PT)
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    points = [(c[len("val_psnr_"):], df[c].to_numpy(dtype=float)) for c in val]
    points = [(c, v) for c, v in points if np.isfinite(v).any()]
    if any(np.isfinite(v).sum() > 1 for _, v in points):
        twin = ax.twinx()
        for name, v in points:
            ok = np.isfinite(v)
            twin.plot(it[ok], v[ok], ls="--", marker="o", ms=2.5, lw=0.8, color=VAL_COLOUR)
            seen.setdefault(f"validation PSNR (dB, right axis): {name}", VAL_COLOUR)
        twin.tick_params(labelsize=MIN_FONT_PT, pad=1, colors="dimgray")
    elif points:  # validated once (at the end): a number says it better than a lone dot on a second axis
        text = ", ".join(f"{name} {v[np.isfinite(v)][0]:.2f} dB" for name, v in points)
        ax.set_title(f"{title}\nval. {text}", fontsize=MIN_FONT_PT, pad=3)


def _tick(value: float, _pos: object = None) -> str:
    return f"{value:.0f}" if 1 <= value < 1e4 else f"{value:.3g}"


def _log_axis(ax: Axes) -> None:
    """Log y with a few readable ticks: plain ticks under a decade, 1-2-5 up to two, decades beyond."""
    ax.set_yscale("log")
    low, high = ax.dataLim.y0, ax.dataLim.y1
    decades = np.log10(high / low) if low > 0 and high > 0 else 0.0
    if decades < 0.9:  # log ticks at 1-2-5 would leave one label or none
        locator = MaxNLocator(4)
    else:
        locator = LogLocator(subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,), numticks=6)
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))


def _part(runs: list[Run], used: dict[str, list[str]], part: int, parts: int, folder: Path) -> Figure:
    n = len(runs)
    cols = min(COLS, n)
    nrow = math.ceil(n / cols)
    seen: dict[str, str] = {}
    extra: dict[str, str] = {}
    for run in runs:  # the legend's entries first: its height sets the bottom margin
        _panel(new_figure(1, 1).add_subplot(), run, [], extra, seen)
    legend_in = 0.2 * math.ceil(len(seen) / 3) + 0.45
    fig = new_figure(PART_WIDTH_IN, 2.0 * nrow + 0.55 + legend_in)
    height = fig.get_figheight()
    grid = fig.add_gridspec(nrow, cols, left=0.14, right=0.97 if cols > 1 else 0.9, top=1 - 0.6 / height,
                            bottom=legend_in / height, wspace=0.55, hspace=0.8)
    seen.clear()
    for i, run in enumerate(runs):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        _panel(ax, run, used.get(run.name, []), extra, seen)
        if i // cols == nrow - 1 or i + cols >= n:
            ax.set_xlabel("iteration", fontsize=FONT, labelpad=1)
    handles = [Line2D([], [], color=c, lw=1.2, ls="--" if c in (VAL_COLOUR, COLOURS["loss"]) else "-",
                      marker="o" if c == VAL_COLOUR else None, ms=3) for c in seen.values()]
    fig.legend(handles, [_wrap(label) for label in seen], loc="lower center", ncol=min(3, max(1, len(seen))),
               fontsize=FONT, frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.6, columnspacing=1.0)
    kinds = sorted({r.kind for r in runs}, key=lambda k: KIND_ORDER.get(k, 3))
    caption = ("Loss terms (log axis) of every run against iteration, as logged in each run's metrics.csv; "
               "validation PSNR on a right axis where measured more than once, as a number where measured "
               "once. A term marked − is negative and drawn negated. Titles: network, scale, run hash, kind, "
               "and the table row the run measures (+n: more rows share it).")
    return save(fig, folder, part_key(KEY, part), f"{', '.join(kinds)} ({part}/{parts})", caption,
                group=KEY, group_title=TITLE)


def _wrap(label: str) -> str:
    return label.replace(" (dB, right axis): ", "\n(dB, right): ")


def build(inputs: ReportInputs, folder: Path) -> list[Figure]:
    runs = ordered(inputs.runs)
    if not runs:
        return [missing(KEY, TITLE, "Training curves of every run.", f"no run folders under "
                        f"{inputs.folder / 'runs'}: nothing was trained into these results")]
    used = rows_using(inputs)
    chunks = [runs[i:i + PER_PART] for i in range(0, len(runs), PER_PART)]
    return [_part(chunk, used, i, len(chunks), folder) for i, chunk in enumerate(chunks, start=1)]

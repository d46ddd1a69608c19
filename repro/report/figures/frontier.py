"""The accuracy / cost frontier of Appendix Table I: PSNR against MultiAdds, printed beside measured.

Printed points are the paper's numbers (most networks' own papers, other protocols); measured points
are this suite's runs of the same networks under one protocol. A thin line joins the two of a network,
so how far a reproduction moved (and in which direction) is read at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullLocator

from repro.published import published_values
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
from repro.specs import get_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from repro.report.inputs import ReportInputs

KEY, TITLE = "frontier", "PSNR against MultiAdds, Appendix Table I (printed and measured)"
TABLE = "appendix1"
BICUBIC = "Bicubic"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "p", "h", "<", ">", "*", "d")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31")


def _cells(df: pd.DataFrame) -> tuple[dict[tuple[str, int, str], float], dict[tuple[str, int], float]]:
    """({(row, scale, dataset): psnr}, {(row, scale): multiadds_g}) of a tidy frame; seeds averaged."""
    psnr = df[df["metric"] == "psnr"].groupby(["row", "scale", "dataset"])["value"].mean()
    adds = df[df["metric"] == "multiadds_g"].groupby(["row", "scale"])["value"].mean()
    return ({(r, int(s), d): float(v) for (r, s, d), v in psnr.items() if np.isfinite(v)},
            {(r, int(s)): float(v) for (r, s), v in adds.items() if np.isfinite(v) and v > 0})


def _panel(ax: Axes, rows: list[str], styles: dict[str, tuple[str, str]], scale: int, dataset: str,
           printed: tuple[dict, dict], measured: tuple[dict, dict]) -> None:
    for (psnr, _), style in ((printed, "--"), (measured, ":")):
        value = psnr.get((BICUBIC, scale, dataset))
        if value is not None:
            ax.axhline(value, color="0.55", lw=0.8, ls=style, zorder=1)
    for row in rows:
        colour, marker = styles[row]
        p = (printed[1].get((row, scale)), printed[0].get((row, scale, dataset)))
        m = (measured[1].get((row, scale)), measured[0].get((row, scale, dataset)))
        has_p, has_m = None not in p, None not in m
        if has_p and has_m:
            ax.plot([p[0], m[0]], [p[1], m[1]], color=colour, lw=0.6, alpha=0.8, zorder=2)
        # markers as Line2D, not scatter: 13 networks x 12 panels of PathCollections take seconds to draw
        if has_p:
            ax.plot([p[0]], [p[1]], ls="", marker=marker, ms=5, mfc="white", mec=colour, mew=1.1, zorder=3)
        if has_m:
            ax.plot([m[0]], [m[1]], ls="", marker=marker, ms=5, color=colour, zorder=4)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(numticks=5))
    ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks: many artists, slow to draw, no help here
    ax.tick_params(labelsize=MIN_FONT_PT, pad=1)
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    ax.set_title(f"x{scale} {dataset}", fontsize=TITLE_FONT, pad=2)


def build(inputs: ReportInputs, folder: Path) -> Figure | list[Figure]:
    spec = get_table(TABLE)
    pub = published_values()
    pub = pub[pub["table"] == TABLE].copy()
    pub["dataset"] = pub["dataset"].fillna("")
    printed = _cells(pub)
    res = inputs.results
    measured = _cells(res[res["table"] == TABLE])
    rows = [r.name for r in spec.rows if r.name != BICUBIC]
    rows = [r for r in rows if any(k[0] == r for k in (*printed[1], *measured[1]))]
    caption = ("PSNR (Y, dB) against MultiAdds (G, log axis) of the Appendix Table I networks at each scale "
               "and test set: hollow = printed in the paper (most from the networks' own papers), filled = "
               "measured here, joined by a thin line; dashed / dotted grey = Bicubic printed / measured "
               "(one line where they agree).")
    if not rows:
        return missing(KEY, TITLE, caption, "tables/published/published_values.csv holds no MultiAdds for "
                       "appendix1: restore it from the repository")
    notes = []
    measured_scales = [s for s in spec.scales if any(k[0] in rows and k[1] == s for k in measured[0])]
    if not measured_scales:
        return missing(KEY, TITLE, caption, "nothing of Appendix Table I is measured in these results "
                       "(`repro reproduce appendix1` measures it); the printed points alone are the paper's")
    no_adds = sorted({f"{r} x{s}" for (r, s, _) in measured[0] if r in rows and (r, s) not in measured[1]})
    if no_adds:
        notes.append(f"measured PSNR without a measured MultiAdds, not drawn: {', '.join(no_adds)}")
    # colour and marker per network: the four FSRCNN-sized ones overlap at 6 G, shapes tell them apart
    styles = {row: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, row in enumerate(rows)}
    datasets = list(spec.datasets)
    figs = []
    for scale in measured_scales:  # one phone-wide image per scale, its test sets two by two
        cols = 2
        nrow = -(-len(datasets) // cols)
        fig = new_figure(PART_WIDTH_IN, 1.75 * nrow + 0.3)
        height = fig.get_figheight()
        grid = fig.add_gridspec(nrow, cols, left=0.15, right=0.98, top=1 - 0.25 / height,
                                bottom=0.42 / height, wspace=0.38, hspace=0.55)
        for j, dataset in enumerate(datasets):
            ax = fig.add_subplot(grid[j // cols, j % cols])
            _panel(ax, rows, styles, scale, dataset, printed, measured)
            if j % cols == 0:
                ax.set_ylabel("PSNR (dB)", fontsize=FONT, labelpad=1)
            if j // cols == nrow - 1:
                ax.set_xlabel("MultiAdds (G)", fontsize=FONT, labelpad=1)
        figs.append(save(fig, folder, part_key(KEY, len(figs) + 1), f"x{scale}", caption, notes, group=KEY,
                         group_title=TITLE))
    handles = [Line2D([], [], ls="", marker=styles[r][1], color=styles[r][0], ms=5) for r in rows]
    labels = list(rows)
    handles += [Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", ms=5),
                Line2D([], [], ls="", marker="o", color="0.3", ms=5),
                Line2D([], [], color="0.55", ls="--", lw=0.8), Line2D([], [], color="0.55", ls=":", lw=0.8)]
    labels += ["printed", "measured", "Bicubic printed", "Bicubic measured"]
    fig = new_figure(PART_WIDTH_IN, 0.22 * -(-len(labels) // 3) + 0.15)
    fig.legend(handles, labels, loc="center", ncol=3, fontsize=FONT, frameon=False, handletextpad=0.3,
               columnspacing=1.0)
    figs.append(save(fig, folder, part_key(KEY, len(figs) + 1), "legend", caption, notes, group=KEY,
                     group_title=TITLE))
    return figs

"""What every figure of the results report shares: the `Figure` record, atomic PNG + PDF writing, the
empty "not in these results" panel and the places the figures read from (data root, models).

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot, so
building a report changes no global matplotlib state and leaks no open figure.

Readable on a phone: a figure is one or more images ("parts") at most `PART_WIDTH_IN` wide, which the
report shows at their natural width (96 CSS px per inch: 346 px, inside a 390 px phone's margins) side
by side on a wide screen and stacked on a narrow one; no text is smaller than `MIN_FONT_PT` (7 pt = 9.3
CSS px there). `save` refuses a figure that breaks either rule.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from repro.paths import data_root

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from torch import nn

    from repro.report.inputs import ReportInputs

PART_WIDTH_IN = 3.6  # one image of a figure, shown at 3.6 x 96 = 346 CSS px
CSS_PX_PER_IN = 96
DPI = 200  # PNG pixels per inch: sharp on high-density screens (about 2 image pixels per CSS pixel)
MIN_FONT_PT = 7.0  # 7 pt at 96 px per inch: 9.3 CSS px
FONT = 8.0  # labels, legends
TITLE_FONT = 8.5
FETCH_HINT = "fetch it with `repro data fetch benchmark` or set REPRO_DATA"
ABSENT = "not in these results"


@dataclass(frozen=True)
class Figure:
    """One figure of the report: where its files are, or why it could not be drawn."""

    key: str
    title: str
    caption: str
    png: Path | None
    pdf: Path | None
    missing: str | None = None
    notes: tuple[str, ...] = ()
    group: str = ""  # the figure this image is a part of (its first part's key); "" for a whole figure
    group_title: str = ""  # that figure's title (then `title` is the part's)
    width_px: int = 0  # CSS pixels the report shows it at


def new_figure(width: float, height: float) -> MplFigure:
    """A detached figure (Agg canvas attached, so it can be saved without pyplot)."""
    fig = MplFigure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _atomic_save(fig: MplFigure, path: Path, fmt: str) -> None:
    """Save under a temporary name in the same folder, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        metadata: dict[str, Any] = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_readable(fig: MplFigure) -> None:
    """Refuse a figure wider than a part or with text smaller than MIN_FONT_PT (a bug of its builder)."""
    from matplotlib.text import Text

    width = fig.get_figwidth()
    if width > PART_WIDTH_IN + 1e-6:
        raise ValueError(f"figure {width:.2f} in wide: at most {PART_WIDTH_IN} in, to be read on a phone")
    small = sorted({f"{t.get_text()[:20]!r} {t.get_fontsize():g} pt" for t in fig.findobj(Text)
                    if t.get_text().strip() and t.get_visible() and t.get_fontsize() < MIN_FONT_PT - 1e-6})
    if small:
        raise ValueError(f"text under {MIN_FONT_PT:g} pt: {', '.join(small[:5])}")


def save(fig: MplFigure, folder: Path, key: str, title: str, caption: str,
         notes: tuple[str, ...] | list[str] = (), group: str = "", group_title: str = "") -> Figure:
    """Write `fig` as `<key>.png` and `<key>.pdf` under `folder` and describe it (a part of figure `group`
    titled `group_title`, when it is one of several images)."""
    check_readable(fig)
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{key}.png", folder / f"{key}.pdf"
    _atomic_save(fig, png, "png")
    _atomic_save(fig, pdf, "pdf")  # no fig.clear(): without pyplot nothing holds it, and clearing is slow
    return Figure(key, title, caption, png, pdf, None, tuple(notes), group, group_title,
                  round(fig.get_figwidth() * CSS_PX_PER_IN))


def part_key(key: str, i: int) -> str:
    """The file key of a figure's i-th image (1-based): `key`, `key-2`, ..."""
    return key if i == 1 else f"{key}-{i}"


def missing(key: str, title: str, caption: str, reason: str,
            notes: tuple[str, ...] | list[str] = ()) -> Figure:
    """A figure that could not be drawn: no files, and the reason (with the fix) for the report."""
    return Figure(key, title, caption, None, None, reason, tuple(notes))


def empty_panel(ax: Axes, text: str = ABSENT) -> None:
    """A panel with no data: a light frame and the reason in its middle."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f4f4f4")
    for spine in ax.spines.values():
        spine.set_color("#bbbbbb")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=FONT, color="#555555", wrap=True,
            transform=ax.transAxes)


def image_panel(ax: Axes) -> None:
    """An axes that shows an image: no ticks, a thin frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)


def root_of(inputs: ReportInputs) -> Path:
    """The data root the report reads images from: the one it was given, else $REPRO_DATA / the cache."""
    return inputs.data_root if inputs.data_root is not None else data_root()


def set_missing(set_name: str, root: Path) -> str | None:
    """Why a benchmark set cannot be read (None when it can): its HR folder is absent."""
    if set_name == "sample":
        return None
    folder = root / "benchmark" / set_name / "HR"
    return None if folder.is_dir() else f"{set_name} not found under {root}: {FETCH_HINT}"


@lru_cache(maxsize=16)
def load_network(folder: str) -> tuple[nn.Module, int]:
    """A run's deployed network (eval mode) and its input channels; cached, as figures share runs."""
    from repro.runs.folder import load_model

    net, record = load_model(folder)
    return net, int(record["settings"].get("in_channels", 1))


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run small CPU inferences on one thread (restored afterwards): on windows this small, OpenMP's
    thread start-up and barriers cost far more than the work, and a fixed count keeps results
    bit-identical (the count can change a convolution's summation order, hence a rounding to uint8)."""
    import torch

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, min(n, cores)))
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(before)


def short_run(name: str) -> str:
    """`student-fsrcnn-x4-f9effbc6` -> `fsrcnn x4 f9ef`: the kind goes in the title beside it."""
    parts = name.split("-")
    if len(parts) >= 4 and parts[0] in ("baseline", "teacher", "student"):
        return f"{'-'.join(parts[1:-2])} {parts[-2]} {parts[-1][:4]}"
    return name if len(name) <= 28 else name[:27] + "…"

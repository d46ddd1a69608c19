"""Figure 6 style visual crops at x4: Bicubic, FSRCNN*, PISR student, DSSD student and HR side by side.

Regions are data (`figures/regions.toml`). Only an LR window around each region (the region plus
`MARGIN` LR pixels, clipped to the image) is super-resolved: FSRCNN sees about 8 LR pixels around each
output pixel and MATLAB bicubic 2, so inside the region the window's SR equals the whole image's
(tests/test_report_figures.py checks it) at a fraction of the cost. Each panel's PSNR is measured as
the suite measures a test set (`repro.evaluate.sr`: the network's rounded Y against the HR's float Y),
but over the crop only, with no border shaved (the crop is away from the image border).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repro.data.testsets import ImagePair, load_pair, load_set, set_files
from repro.errors import ReproError
from repro.evaluate.metrics import psnr_y
from repro.evaluate.sr import super_resolve
from repro.imaging import imresize, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from repro.paths import project_file
from repro.report.figures.common import (
    FETCH_HINT,
    FONT,
    PART_WIDTH_IN,
    TITLE_FONT,
    Figure,
    image_panel,
    load_network,
    missing,
    new_figure,
    part_key,
    root_of,
    save,
    set_missing,
    torch_threads,
)

if TYPE_CHECKING:
    from torch import nn

    from repro.report.inputs import ReportInputs

KEY, TITLE = "crops", "Visual comparison at x4 (Figure 6 style)"
MARGIN = 12  # LR pixels of context around a region: more than FSRCNN's receptive field
BORDER = 16  # HR pixels a region keeps from the image border
GROUPS = ("paper", "sample")
COLUMNS = (("Bicubic", None), ("FSRCNN*", "fsrcnn_alone"), ("PISR student", "pisr_student"),
           ("DSSD student", "dssd_student"), ("HR", None))
_FIELDS = {"group": str, "set": str, "image": str, "x": int, "y": int, "size": int, "scale": int, "what": str}


@dataclass(frozen=True)
class Region:
    """A square HR crop of one test image, at one scale."""

    group: str
    set: str
    image: str
    x: int
    y: int
    size: int
    scale: int = 4
    what: str = ""

    @property
    def label(self) -> str:
        return f"{self.set} {self.image}" + (f"\n{self.what}" if self.what else "")


def load_regions(path: Path | None = None) -> list[Region]:
    """The regions of `figures/regions.toml`, checked (types, group, alignment to the LR grid)."""
    path = path or project_file("figures", "regions.toml")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ReproError(f"cannot read {path}: {exc}") from exc
    regions = []
    for i, entry in enumerate(data.get("region", [])):
        where = f"{path} region {i + 1}"
        unknown = set(entry) - set(_FIELDS)
        absent = set(_FIELDS) - {"what", "scale"} - set(entry)
        if unknown or absent:
            raise ReproError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(absent)}")
        for name, kind in _FIELDS.items():
            if name in entry and not isinstance(entry[name], kind):
                raise ReproError(f"{where}: {name} must be a {kind.__name__}, got {entry[name]!r}")
        region = Region(**entry)
        if region.group not in GROUPS:
            raise ReproError(f"{where}: group {region.group!r} is not one of {', '.join(GROUPS)}")
        if region.size < 16 or any(v % region.scale for v in (region.x, region.y, region.size)):
            raise ReproError(f"{where}: x, y and size must be multiples of the scale {region.scale} "
                             "(size at least 16), so that the crop starts on an LR pixel")
        regions.append(region)
    return regions


def group_for(inputs: ReportInputs) -> str:
    """The quickstart alone is drawn on the embedded sample photos; the paper's tables on benchmarks."""
    return "sample" if inputs.table_names == ["quickstart"] else "paper"


@lru_cache(maxsize=8)
def _sample_pairs(scale: int) -> dict[str, ImagePair]:
    return {p.name: p for p in load_set("sample", scale)}


def load_region_pair(region: Region, root: Path) -> ImagePair:
    """The HR/LR pair a region is cut from (HR mod-cropped, LR the MATLAB file)."""
    if region.set == "sample":
        pairs = _sample_pairs(region.scale)
        if region.image not in pairs:
            raise ReproError(f"no image {region.image!r} in the sample set (has {', '.join(pairs)})")
        return pairs[region.image]
    files = [f for f in set_files(region.set, region.scale, root) if f.name == region.image]
    if not files:
        raise ReproError(f"no image {region.image!r} in {region.set} under {root}: {region.set} is "
                         "incomplete, fetch it again with `repro data fetch benchmark`")
    return load_pair(files[0], region.scale)


def outside(region: Region, hr_shape: tuple[int, ...]) -> str | None:
    """Why a region does not fit its image (None when it lies BORDER pixels inside it)."""
    h, w = hr_shape[:2]
    if (region.x < BORDER or region.y < BORDER or region.x + region.size > w - BORDER
            or region.y + region.size > h - BORDER):
        return (f"{region.set} {region.image}: region x={region.x} y={region.y} size={region.size} is not "
                f"{BORDER} px inside the {w}x{h} image; fix figures/regions.toml")
    return None


def drawable_regions(inputs: ReportInputs) -> tuple[list[tuple[Region, ImagePair]], list[str]]:
    """The regions of this report's group whose image can be read, and a note for each left out."""
    root = root_of(inputs)
    group = group_for(inputs)
    found, notes = [], []
    for region in (r for r in load_regions() if r.group == group):
        reason = set_missing(region.set, root)
        if reason is None:
            try:
                pair = load_region_pair(region, root)
                reason = outside(region, pair.hr.shape)
            except ReproError as exc:
                reason = str(exc)
        if reason is None:
            found.append((region, pair))
        else:
            notes.append(f"{region.set} {region.image} left out: {reason}")
    return found, notes


def nothing_drawn(inputs: ReportInputs, notes: list[str]) -> str:
    """Why no region could be drawn, in one sentence when the reason is the usual one (no images)."""
    root = root_of(inputs)
    regions = [r for r in load_regions() if r.group == group_for(inputs)]
    if not regions:
        return f"figures/regions.toml has no region in group {group_for(inputs)!r}"
    absent = list(dict.fromkeys(r.set for r in regions if set_missing(r.set, root)))
    if len(absent) == len({r.set for r in regions}):
        hint = FETCH_HINT if len(absent) == 1 else FETCH_HINT.replace("fetch it", "fetch them")
        return f"{', '.join(absent)} not found under {root}: {hint}"
    return "; ".join(notes)


# ---------------------------------------------------------------- windowed super-resolution
def lr_window(region: Region, lr_shape: tuple[int, ...], margin: int = MARGIN) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) in LR pixels of the region plus `margin`, clipped to the image."""
    s, n = region.scale, region.size // region.scale
    top, left = region.y // s, region.x // s
    h, w = lr_shape[:2]
    return max(0, top - margin), min(h, top + n + margin), max(0, left - margin), min(w, left + n + margin)


def _cut(img: np.ndarray, region: Region, top: int, left: int) -> np.ndarray:
    """The region out of an HR-size image whose first pixel is HR (top, left)."""
    y, x = region.y - top, region.x - left
    return img[y:y + region.size, x:x + region.size]


def hr_crop(pair: ImagePair, region: Region) -> np.ndarray:
    return _cut(pair.hr, region, 0, 0)


def bicubic_crop(pair: ImagePair, region: Region, margin: int = MARGIN) -> np.ndarray:
    """MATLAB-bicubic upscale of the LR window, cut to the region (uint8, as the image)."""
    t, b, l, r = lr_window(region, pair.lr.shape, margin)
    up = imresize(np.ascontiguousarray(pair.lr[t:b, l:r]), region.scale)
    return _cut(up, region, t * region.scale, l * region.scale)


def sr_crop(net: nn.Module, pair: ImagePair, region: Region, in_channels: int = 1,
            margin: int = MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """(what to show, what to measure) of the network's SR of the LR window, cut to the region.

    What to measure is `super_resolve`'s output (the rounded SR Y of a Y network); what to show adds
    the window's bicubic-upscaled chroma, as `super_resolve_rgb` does for a whole image.
    """
    t, b, l, r = lr_window(region, pair.lr.shape, margin)
    window = np.ascontiguousarray(pair.lr[t:b, l:r])
    sr = super_resolve(net, window, in_channels, scale=region.scale)
    shown = sr
    if in_channels == 1 and window.ndim == 3:
        chroma = imresize(rgb_to_ycbcr(window)[:, :, 1:], float(region.scale))
        shown = ycbcr_to_rgb(np.concatenate([sr[:, :, None].astype(np.float64), chroma], axis=2))
    top, left = t * region.scale, l * region.scale
    return _cut(shown, region, top, left), _cut(sr, region, top, left)


def crop_psnr(measured: np.ndarray, hr: np.ndarray) -> float:
    """PSNR on Y of a crop: a Y plane (a Y network's output) against the HR's float Y; RGB converted."""
    reference = rgb_to_y(hr) if measured.ndim == 2 and hr.ndim == 3 else hr
    return psnr_y(measured, reference, 0)


# ---------------------------------------------------------------- the figure
def panel_values(inputs: ReportInputs, region: Region,
                 pair: ImagePair) -> list[tuple[np.ndarray, float] | None]:
    """Per column: (image to show, PSNR) or None when the column's run is not in these results."""
    hr = hr_crop(pair, region)
    bic = bicubic_crop(pair, region)
    panels: list[tuple[np.ndarray, float] | None] = [(bic, crop_psnr(bic, hr))]
    for _, role in COLUMNS[1:-1]:
        run = inputs.run_for(role, scale=region.scale) if role else None
        if run is None:
            panels.append(None)
            continue
        net, channels = load_network(str(run.folder))
        with torch_threads():  # the thread count can flip a rounding: always the same one
            shown, measured = sr_crop(net, pair, region, channels)
        panels.append((shown, crop_psnr(measured, hr)))
    panels.append((hr, float("nan")))
    return panels


ABSENT_HINT = {"pisr_student": "`repro reproduce table4` trains it", "fsrcnn_alone": "any table trains it",
               "dssd_student": "`repro reproduce table3` (or `quickstart`) trains it"}


def _draw(region: Region, panels: list, columns: list[tuple[int, str]]):
    """One region as one phone-wide image: its crops side by side, each panel's PSNR under it (the best
    in bold; equal shown values tie)."""
    ncol = len(columns)
    gap, side_margin, top_title, col_title, label = 0.04, 0.04, 0.22, 0.30, 0.22
    panel = (PART_WIDTH_IN - 2 * side_margin - (ncol - 1) * gap) / ncol
    height = top_title + col_title + panel + label + 0.04
    fig = new_figure(PART_WIDTH_IN, height)
    fig.text(0.5, 1 - 0.05 / height, region.label.replace("\n", ": "), ha="center", va="top",
             fontsize=TITLE_FONT, fontweight="bold")
    scores = [p[1] for i, p in enumerate(panels[:-1]) if p is not None and any(i == c for c, _ in columns)]
    best = round(max(scores), 2) if scores else None
    for j, (c, name) in enumerate(columns):
        x = side_margin + j * (panel + gap)
        ax = fig.add_axes((x / PART_WIDTH_IN, (label + 0.04) / height, panel / PART_WIDTH_IN, panel / height))
        ax.set_title(name, fontsize=FONT, pad=2, linespacing=1.0)
        img, score = panels[c]
        image_panel(ax)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        last = c == len(panels) - 1
        text = "HR" if last else f"{score:.2f} dB"
        ax.set_xlabel(text, fontsize=FONT, labelpad=2,
                      fontweight="bold" if not last and round(score, 2) == best else "normal")
    return fig


def build(inputs: ReportInputs, folder: Path) -> Figure | list[Figure]:
    caption = ("x4 crops: MATLAB bicubic, FSRCNN trained alone (FSRCNN*), the PISR and DSSD students "
               "(seed 0 of these results) and the HR image. The number under each panel is its PSNR on Y "
               "over that crop only (dB; the best in bold, equal values both), not the test set's mean.")
    found, notes = drawable_regions(inputs)
    if not found:
        return missing(KEY, TITLE, caption, f"no region could be drawn: {nothing_drawn(inputs, notes)}")
    rows = [(region, panel_values(inputs, region, pair)) for region, pair in found]
    columns = []
    for i, (name, role) in enumerate(COLUMNS):
        if role and all(p[i] is None for _, p in rows):
            notes.append(f"{name}: not in these results ({ABSENT_HINT.get(role, 'not trained here')})")
            continue
        columns.append((i, name.replace(" student", "\nstudent")))
    figs = []
    for n, (region, panels) in enumerate(rows, start=1):
        kept = [(c, name) for c, name in columns if panels[c] is not None]
        where = f"{region.set} {region.image} (x={region.x}, y={region.y}, {region.size} px)"
        figs.append(save(_draw(region, panels, kept), folder, part_key(KEY, n), where, caption, notes,
                         group=KEY, group_title=TITLE))
    return figs

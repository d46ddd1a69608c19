"""Figure 5 style: what a teacher's compact LR image holds beyond the bicubic LR.

The DSSD teacher squeezes HR to LR size with its HFRM applied recursively (X' = G(HR), X'' = G(X')),
the PISR teacher with one strided encoder; both are trained to stay close to the bicubic LR, so their
difference from it is the extra information the backbone is given. Shown on a window of the first
image the crop figure draws, at LR size (one screen pixel block per LR pixel).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repro.imaging import rgb_to_y
from repro.report.figures.common import (
    WIDTH_IN,
    Figure,
    empty_panel,
    image_panel,
    load_network,
    missing,
    new_figure,
    save,
    torch_threads,
)
from repro.report.figures.crops import Region, drawable_regions, nothing_drawn

if TYPE_CHECKING:
    from torch import nn

    from repro.data.testsets import ImagePair
    from repro.report.inputs import ReportInputs

KEY, TITLE = "compact_lr", "The teachers' compact LR images against bicubic (Figure 5 style)"
WINDOW_LR = 96  # LR pixels per side of the window shown (clipped to the image)
TEACHERS = (("dssd_teacher", "DSSD teacher X''"), ("pisr_teacher", "PISR teacher encoder"))
CLIP_PERCENTILE = 99.5
STRETCH_ABOVE = 0.05  # share of pixels outside 0..255 above which a compact image is shown stretched


def lr_box(region: Region, lr_shape: tuple[int, ...], side: int = WINDOW_LR) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a `side`-pixel LR window centred on the region, inside the image."""
    s = region.scale
    h, w = lr_shape[:2]
    cy, cx = (region.y + region.size // 2) // s, (region.x + region.size // 2) // s
    top = min(max(0, cy - side // 2), max(0, h - side))
    left = min(max(0, cx - side // 2), max(0, w - side))
    return top, min(h, top + side), left, min(w, left + side)


def compact_image(net: nn.Module, hr: np.ndarray, in_channels: int) -> np.ndarray:
    """The teacher's LR-size image of `hr` (uint8 HR window) as float Y in grey levels (0..255).

    DSSD: the last output of its downsampler (X'' at x4); PISR: its encoder output.
    """
    import torch

    if in_channels == 1:
        plane = rgb_to_y(hr)[None]
    else:
        plane = (np.repeat(hr[:, :, None], 3, axis=2) if hr.ndim == 2 else hr).transpose(2, 0, 1)
    x = torch.from_numpy((plane / 255.0).astype(np.float32))[None]
    out = net.downsample(x)[-1] if hasattr(net, "downsample") else net.encoder(x)
    arr = out[0].float().numpy().astype(np.float64) * 255.0
    return arr[0] if in_channels == 1 else rgb_to_y(np.clip(arr.transpose(1, 2, 0), 0, 255))


def _compacts(inputs: ReportInputs, region: Region, pair: ImagePair,
              box: tuple[int, int, int, int]) -> list[tuple[str, np.ndarray | None, str]]:
    """Per teacher: (label, compact image or None, run name or the reason it is absent)."""
    t, b, l, r = box
    s = region.scale
    hr = np.ascontiguousarray(pair.hr[t * s:b * s, l * s:r * s])
    out = []
    for role, label in TEACHERS:
        run = inputs.run_for(role, scale=s)
        if run is None or not run.has_model:
            out.append((label, None, "not in these results"))
            continue
        net, channels = load_network(str(run.folder))
        with torch_threads():
            out.append((label, compact_image(net, hr, channels), run.name))
    return out


def display_range(img: np.ndarray) -> tuple[float, float, str]:
    """(low, high, what the reader must know) of the grey scale a compact image is shown on.

    On 0..255 like the LR image beside it, unless more than STRETCH_ABOVE of its pixels fall outside
    (a teacher trained briefly, as in the smoke profile): it is then stretched to its own 0.5-99.5th
    percentiles, so its structure stays visible, and the label says so.
    """
    outside = float(np.mean((img < 0) | (img > 255)))
    if outside <= STRETCH_ABOVE:
        return 0.0, 255.0, f"{outside:.1%} of pixels outside 0..255, shown clipped" if outside else ""
    low, high = (float(v) for v in np.percentile(img, [0.5, 99.5]))
    high = max(high, low + 1.0)
    return low, high, f"{outside:.0%} outside 0..255,\nshown stretched to {low:.0f}..{high:.0f}"


def build(inputs: ReportInputs, folder: Path) -> Figure:
    caption = ("Top: the bicubic LR image (Y) the student sees, and the LR-size images the DSSD teacher "
               "(X'', its HFRM applied twice to HR) and the PISR teacher (its encoder) make from HR. "
               "Bottom: their difference from the bicubic LR, in grey levels, on one shared colour "
               f"scale (clipped at the {CLIP_PERCENTILE:g}th percentile of |difference|).")
    found, notes = drawable_regions(inputs)
    if not found:
        return missing(KEY, TITLE, caption, f"no test image to draw on: {nothing_drawn(inputs, notes)}")
    region, pair = found[0]
    box = lr_box(region, pair.lr.shape)
    t, b, l, r = box
    lr_y = rgb_to_y(pair.lr[t:b, l:r])
    teachers = _compacts(inputs, region, pair, box)
    if all(img is None for _, img, _ in teachers):
        return missing(KEY, TITLE, caption, "no DSSD or PISR teacher in these results: run a table with "
                       "teachers (`repro reproduce table4`, `appendix1` or `quickstart`)")
    diffs = [None if img is None else img - lr_y for _, img, _ in teachers]
    spread = np.concatenate([np.abs(d).ravel() for d in diffs if d is not None])
    vmax = max(float(np.percentile(spread, CLIP_PERCENTILE)), 1.0)

    fig = new_figure(WIDTH_IN, 6.3)
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 0.05], left=0.01, right=0.9, top=0.93,
                            bottom=0.09, wspace=0.06, hspace=0.22)
    ax = fig.add_subplot(grid[0, 0])
    image_panel(ax)
    ax.imshow(lr_y, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title("bicubic LR (Y)", fontsize=9)
    ax.set_xlabel(f"{region.set} {region.image}, LR x{region.scale}", fontsize=8)
    legend = fig.add_subplot(grid[1, 0])
    legend.axis("off")
    legend.text(0.02, 0.5, "difference from\nthe bicubic LR:\n\nred: brighter\nblue: darker\n\n"
                "(grey levels of Y: the\nLR image spans 0..255)", fontsize=8.5, va="center",
                transform=legend.transAxes)
    summary = []
    image = None
    for c, ((label, img, origin), diff) in enumerate(zip(teachers, diffs, strict=True), start=1):
        top, bottom = fig.add_subplot(grid[0, c]), fig.add_subplot(grid[1, c])
        top.set_title(label, fontsize=9)
        if img is None or diff is None:
            for ax, text in ((top, f"{label}:\n{origin}"), (bottom, origin)):
                empty_panel(ax, text)
                ax.set_box_aspect(lr_y.shape[0] / lr_y.shape[1])  # as the image panels beside it
            notes.append(f"{label}: {origin} (empty panels)")
            continue
        image_panel(top)
        low, high, how = display_range(img)
        top.imshow(img, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        top.set_xlabel(origin + (f"\n{how}" if how else ""), fontsize=7)
        if "stretched" in how:
            notes.append(f"{label}: {how.replace(chr(10), ' ')} (its grey scale differs from the LR's)")
        image_panel(bottom)
        image = bottom.imshow(diff, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        mean_abs = float(np.mean(np.abs(diff)))
        bottom.set_xlabel(f"mean |difference| = {mean_abs:.2f}", fontsize=8)
        summary.append(f"{label}: {mean_abs:.2f}")
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_subplot(grid[1, 3]), extend="both")
        bar.ax.tick_params(labelsize=7)
        bar.set_label("grey levels", fontsize=8)
    caption += f" Mean |difference| (grey levels): {'; '.join(summary)}."
    return save(fig, folder, KEY, TITLE, caption, notes)

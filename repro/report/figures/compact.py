"""Figure 5 style: what a teacher's compact LR image holds beyond the bicubic LR.

The DSSD teacher squeezes HR to LR size with its HFRM applied recursively (X' = G(HR), X'' = G(X')),
the PISR teacher with one strided encoder; both are trained to stay close to the bicubic LR, so their
difference from it is the extra information the backbone is given. Shown on a window of the first
image the crop figure draws, at LR size (one screen pixel block per LR pixel).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from repro.imaging import rgb_to_y
from repro.report.figures.common import (
    FONT,
    PART_WIDTH_IN,
    TITLE_FONT,
    Figure,
    image_panel,
    load_network,
    missing,
    new_figure,
    part_key,
    save,
    short_run,
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
              box: tuple[int, int, int, int]) -> list[tuple[str, np.ndarray | None, object]]:
    """Per teacher: (label, compact image or None, its run or the reason it is absent)."""
    t, b, l, r = box
    s = region.scale
    hr = np.ascontiguousarray(pair.hr[t * s:b * s, l * s:r * s])
    out: list[tuple[str, np.ndarray | None, object]] = []
    for role, label in TEACHERS:
        run = inputs.run_for(role, scale=s)
        if run is None or not run.has_model:
            out.append((label, None, ABSENT[role]))
            continue
        net, channels = load_network(str(run.folder))
        with torch_threads():
            out.append((label, compact_image(net, hr, channels), run))
    return out


ABSENT = {"dssd_teacher": "not in these results (`repro reproduce table3` or `quickstart` trains one)",
          "pisr_teacher": "not in these results (`repro reproduce table4` trains one)"}


def display_range(img: np.ndarray) -> tuple[float, float, float]:
    """(low, high, share of pixels outside 0..255) of the grey scale a compact image is shown on.

    On 0..255 like the LR image beside it, unless more than STRETCH_ABOVE of its pixels fall outside
    (a teacher trained briefly, as in the quickstart): it is then stretched to its own 0.5-99.5th
    percentiles, so its structure stays visible, and the label says so.
    """
    outside = float(np.mean((img < 0) | (img > 255)))
    if outside <= STRETCH_ABOVE:
        return 0.0, 255.0, outside
    low, high = (float(v) for v in np.percentile(img, [0.5, 99.5]))
    return low, max(high, low + 1.0), outside


def why_outside(label: str, run, outside: float) -> str:
    """What it means that a teacher's compact image leaves the grey range, for this run, and what a
    teacher trained at paper scale should show."""
    settings = run.settings
    loss, optim = settings.get("loss", {}), settings.get("optim", {})
    iterations = (run.done or {}).get("iterations") or \
        optim.get("epochs", 0) * optim.get("iters_per_epoch", 0)
    pisr = "PISR" in label
    weight = loss.get("pisr") if pisr else loss.get("deep_supervision")
    term = "its encoder loss L1(encoder output, LR)" if pisr else "the deep-supervision terms z_Fre (Eq. 13)"
    return (f"{label}: {outside:.0%} of its pixels lie outside 0..255 (shown stretched, on its own grey "
            f"scale). Only {term}, weighted {weight:g}, pull it towards the bicubic LR, and this teacher "
            f"trained {iterations:,} iterations: the reconstruction loss dominates, and the compact image is "
            "still whatever code the backbone decodes best, not yet an image. A teacher trained at paper "
            "scale (`--profile paper`, 1M iterations) should keep it close to the bicubic LR: few pixels "
            "outside 0..255, and a difference panel of fine detail (edges, texture) on a flat background, "
            "as the paper's Figure 5.")


def _lr_part(lr_y: np.ndarray, region: Region):
    h_img = (PART_WIDTH_IN / 2 - 0.1) * lr_y.shape[0] / lr_y.shape[1]
    height = h_img + 0.55
    fig = new_figure(PART_WIDTH_IN, height)
    ax = fig.add_axes((0.03, 0.3 / height, (PART_WIDTH_IN / 2 - 0.1) / PART_WIDTH_IN, h_img / height))
    image_panel(ax)
    ax.imshow(lr_y, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title("bicubic LR (Y)", fontsize=TITLE_FONT, pad=3)
    ax.set_xlabel(f"{region.set} {region.image}, LR x{region.scale}", fontsize=FONT, labelpad=2)
    fig.text(0.53, 0.5, "The student sees this.\n\nNext: each teacher's\ncompact image of the HR\n"
             "beside its difference\nfrom this one:\nred brighter, blue darker\n(grey levels of Y; the LR\n"
             "image spans 0..255).", fontsize=FONT, va="center")
    return fig


def _teacher_part(label: str, img: np.ndarray, diff: np.ndarray, vmax: float, origin: str):
    low, high, outside = display_range(img)
    side = (PART_WIDTH_IN - 0.2) / 2
    h_img = side * img.shape[0] / img.shape[1]
    height = h_img + 1.25
    fig = new_figure(PART_WIDTH_IN, height)
    y = 0.85 / height
    top = fig.add_axes((0.05 / PART_WIDTH_IN, y, side / PART_WIDTH_IN, h_img / height))
    image_panel(top)
    top.imshow(img, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    top.set_title(label, fontsize=TITLE_FONT, pad=3)
    top.set_xlabel("0..255" if high == 255.0 and low == 0.0 else
                   f"{outside:.0%} outside 0..255,\nstretched to {low:.0f}..{high:.0f}", fontsize=FONT,
                   labelpad=2)
    bottom = fig.add_axes(((0.15 + side) / PART_WIDTH_IN, y, side / PART_WIDTH_IN, h_img / height))
    image_panel(bottom)
    image = bottom.imshow(diff, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    bottom.set_title("minus bicubic LR", fontsize=TITLE_FONT, pad=3)
    bottom.set_xlabel(f"mean |difference| {float(np.mean(np.abs(diff))):.2f}", fontsize=FONT, labelpad=2)
    bar = fig.colorbar(image, cax=fig.add_axes((0.25 / PART_WIDTH_IN, 0.3 / height, 0.9 - 0.25 /
                                                PART_WIDTH_IN, 0.08 / height)),
                       orientation="horizontal", extend="both")
    bar.ax.tick_params(labelsize=FONT, pad=1)
    bar.set_label(f"grey levels ({origin})", fontsize=FONT, labelpad=1)
    return fig, outside


def build(inputs: ReportInputs, folder: Path) -> Figure | list[Figure]:
    caption = ("The bicubic LR image (Y) the student sees, and the LR-size images the DSSD teacher "
               "(X'', its HFRM applied twice to HR) and the PISR teacher (its encoder) make from HR, each "
               "beside its difference from the bicubic LR in grey levels, on one shared colour scale "
               f"(clipped at the {CLIP_PERCENTILE:g}th percentile of |difference|).")
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
    figs = [save(_lr_part(lr_y, region), folder, KEY, "bicubic LR", caption, notes, group=KEY,
                 group_title=TITLE)]
    summary = []
    for (label, img, run), diff in zip(teachers, diffs, strict=True):
        if img is None or diff is None:
            notes.append(f"{label}: {run}")
            continue
        fig, outside = _teacher_part(label, img, diff, vmax, short_run(run.name))
        if outside > STRETCH_ABOVE:
            notes.append(why_outside(label, run, outside))
        summary.append(f"{label}: {float(np.mean(np.abs(diff))):.2f}")
        figs.append(save(fig, folder, part_key(KEY, len(figs) + 1), label, caption, notes, group=KEY,
                         group_title=TITLE))
    caption += f" Mean |difference| (grey levels): {'; '.join(summary)}."
    return [dataclasses.replace(f, caption=caption, notes=tuple(notes)) for f in figs]

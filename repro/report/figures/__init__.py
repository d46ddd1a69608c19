"""The figures of the results report (`repro report --results DIR`), drawn from one results folder.

`make_figures` is the one entry point: it writes every figure as PNG and PDF under `folder` and returns
a `Figure` per key, in the report's order. A figure that cannot be drawn (no images, no runs, one seed)
is still returned, with `missing` saying why and how to fix it, so the report can show the reason.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from repro.report.figures import compact, crops, curves, frontier, spread
from repro.report.figures.common import Figure, missing

if TYPE_CHECKING:
    from repro.report.inputs import ReportInputs

__all__ = ["BUILDERS", "Figure", "make_figures"]

Builder = Callable[["ReportInputs", Path], "Figure | list[Figure]"]
# key (of the first figure it makes), title, builder: the report's order
BUILDERS: tuple[tuple[str, str, Builder], ...] = (
    (crops.KEY, crops.TITLE, crops.build),
    (compact.KEY, compact.TITLE, compact.build),
    (curves.KEY, curves.TITLE, curves.build),
    (frontier.KEY, frontier.TITLE, frontier.build),
    (spread.KEY, spread.TITLE, spread.build),
)


def make_figures(inputs: ReportInputs, folder: Path, progress: bool = False) -> list[Figure]:
    """Every figure of the report for `inputs`, written under `folder` (created).

    One figure failing never stops the others: its exception becomes its `missing` reason (a bug to
    report, since every expected gap is already turned into a reason by the figure itself).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    for key, title, builder in BUILDERS:
        start = time.perf_counter()
        try:
            made = builder(inputs, folder)
        except Exception as exc:  # noqa: BLE001 - the report must still show the other figures
            made = missing(key, title, title, f"could not be drawn: {type(exc).__name__}: {exc}")
        made = made if isinstance(made, list) else [made]
        figures.extend(made)
        if progress:
            state = "drawn" if all(f.missing is None for f in made) else "missing"
            print(f"[report] figure {key}: {state} ({len(made)} file set(s), "
                  f"{time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    return figures

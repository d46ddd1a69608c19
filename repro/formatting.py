"""Number formatting shared by the printed tables, so every table shows a missing value the same way."""

from __future__ import annotations

import math


def number(value: float | None, digits: int = 2, grouping: bool = False) -> str:
    """`value` with `digits` decimals (and thousands separators if `grouping`); "-" for None or NaN."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}" if grouping else f"{value:.{digits}f}"

"""Comma-separated `--sets` and `--scales` values, checked against the valid choices (shared by commands).

Light on purpose: the parser imports this module, so the test sets' module (numpy) loads only when a
`--sets` value is checked. The names come from `repro.data.names`, which imports nothing.
"""

from __future__ import annotations

from repro.data.names import BENCHMARK_SETS, SET_NAMES
from repro.errors import unknown_choice
from repro.scales import SCALES, check_scale

DEFAULT_SETS = ",".join(BENCHMARK_SETS)
SET_CHOICES = ", ".join(SET_NAMES)


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_sets(text: str) -> list[str]:
    """'Set5,Set14' -> ['Set5', 'Set14']; an unknown or empty name lists the valid ones."""
    from repro.data.testsets import check_set

    names = _items(text)
    if not names:
        raise unknown_choice("test set", text, SET_NAMES)
    return [check_set(n) for n in names]


def parse_scales(text: str) -> list[int]:
    """'2,3,4' -> [2, 3, 4]; anything but 2, 3 or 4 lists the valid scales."""
    scales = []
    for part in _items(text):
        try:
            value = int(part)
        except ValueError:
            raise unknown_choice("scale", part, SCALES) from None
        scales.append(check_scale(value))
    if not scales:
        raise unknown_choice("scale", text, SCALES)
    return scales

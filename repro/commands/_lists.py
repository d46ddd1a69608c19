"""Comma-separated `--sets` and `--scales` values, checked against the valid choices (shared by commands)."""

from __future__ import annotations

from repro.data.benchmark import SCALES, SET_NAMES, check_scale, check_set
from repro.errors import unknown_choice


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_sets(text: str) -> list[str]:
    """'Set5,Set14' -> ['Set5', 'Set14']; an unknown or empty name lists the valid ones."""
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

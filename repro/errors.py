"""One exception type for every user-facing error: the CLI prints its message as one line, exit 2."""

from __future__ import annotations

from collections.abc import Iterable


class ReproError(Exception):
    """An error the user can fix; the message names the thing and the fix."""


def unknown_choice(kind: str, value: object, valid: Iterable[object]) -> ReproError:
    """Error for a value that is not one of the valid choices, listing them."""
    choices = ", ".join(str(v) for v in valid)
    return ReproError(f"unknown {kind} {value!r}; valid choices: {choices}")

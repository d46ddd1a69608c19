"""Progress bars that suit where they are written: redrawn in place on a terminal; on a file or a pipe (a
log, CI), one whole line now and then instead of a carriage-return redraw at every update.

`configure()` is called once by the command line (`repro.cli`), so every tqdm bar of the suite follows
it without each caller choosing.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO

EVERY_S = 30.0  # seconds between two lines of one bar when the output is not a terminal


_DONE = re.compile(r"\b(\d+)/(\1)\b")  # "14/14": a bar at its end


def line_printer(file: IO[str], every_s: float = EVERY_S, clock=time.monotonic):
    """tqdm's status printer (one per bar), as whole lines: the first state, then at most one line every
    `every_s` seconds, and the last (n/total complete)."""
    last: list = [None, ""]  # when, and what, the last line said

    def print_status(status: str) -> None:
        status = status.strip()
        now = clock()
        if not status or status.split(" [")[0] == last[1] or (
                last[0] is not None and now - last[0] < every_s and not _DONE.search(status)):
            return
        last[:] = [now, status.split(" [")[0]]  # the same count again (a bar's close) is not repeated
        file.write(status + "\n")
        getattr(file, "flush", lambda: None)()

    return print_status


def configure(stream: IO[str] | None = None, every_s: float = EVERY_S) -> bool:
    """When `stream` (stderr by default) is not a terminal: tqdm bars print a line at most every
    `every_s` seconds (and their last state), no carriage returns. Returns whether it changed anything."""
    stream = sys.stderr if stream is None else stream
    if getattr(stream, "isatty", lambda: False)():
        return False
    import tqdm.std

    tqdm.std.tqdm.status_printer = staticmethod(lambda file: line_printer(file, every_s))
    return True

"""Progress bars on a file or a pipe: a whole line now and then, not a carriage-return redraw per update."""

from __future__ import annotations

import io

import tqdm.std

from repro.progress import configure, line_printer


def test_a_bar_in_a_log_prints_its_first_state_a_line_a_while_and_its_end():
    out, t = io.StringIO(), [0.0]
    printer = line_printer(out, every_s=30, clock=lambda: t[0])
    for now, status in ((0, "eval:   0%| 0/10"), (1, "eval:  10%| 1/10"), (29, "eval:  50%| 5/10"),
                        (31, "eval:  60%| 6/10"), (32, "eval: 100%| 10/10"), (33, "")):
        t[0] = now
        printer(status)
    assert out.getvalue().splitlines() == ["eval:   0%| 0/10", "eval:  60%| 6/10", "eval: 100%| 10/10"]


def test_configure_leaves_a_terminal_alone_and_turns_bars_into_lines_elsewhere(monkeypatch):
    monkeypatch.setattr(tqdm.std.tqdm, "status_printer", tqdm.std.tqdm.status_printer)  # restored after

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert configure(Terminal()) is False
    log = io.StringIO()
    assert configure(log) is True
    for _ in tqdm.std.tqdm(range(500), file=log, mininterval=0, miniters=1, desc="work"):
        pass
    lines = [line for line in log.getvalue().splitlines() if line]
    assert len(lines) == 2 and "\r" not in log.getvalue()
    assert lines[0].startswith("work:   0%") and "500/500" in lines[-1]

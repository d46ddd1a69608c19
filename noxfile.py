"""Sessions: quickstart (the README's main job), tests, lint, bench, reproduce_<table> for every table of
the paper (and reproduce_all), reproduce_bicubic.

Every session installs the suite editable with the CPU torch pinned for CI (torch==2.13.0), so a fresh
machine needs only Python 3.11 and `pip install nox`.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python="3.11")
def quickstart(session: nox.Session) -> None:
    """The main job: the pipeline in miniature on the embedded sample images (`repro quickstart`)."""
    _install(session)
    session.run("repro", "quickstart", *session.posargs)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite (tests needing the real images skip unless REPRO_DATA points at them)."""
    _install(session)
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    session.run("pytest", "-q", "-ra", "--durations=15", *session.posargs, env={"OMP_NUM_THREADS": threads})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and this file; import-linter's layer contracts (pyproject.toml)."""
    _install(session)
    session.run("ruff", "check", "repro", "tests", "scripts", "noxfile.py")
    session.run("lint-imports")


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks; writes bench/results.json (pass `-- --only NAME` to run one module)."""
    _install(session)
    session.run("python", "-m", "repro.bench", "--out", "bench/results.json", *session.posargs)


@nox.session(python="3.11")
def reproduce_bicubic(session: nox.Session) -> None:
    """The Bicubic row of Appendix Table I on the real benchmark images (REPRO_DATA or --data-root)."""
    _install(session)
    session.run("repro", "bicubic", "--json", "results/bicubic.json", *session.posargs)


def _reproduce_session(table: str):
    def session_fn(session: nox.Session) -> None:
        _install(session)
        session.run("repro", "reproduce", table, *session.posargs)

    session_fn.__doc__ = (f"`repro reproduce {table}` (default profile paper; pass arguments after --, e.g. "
                          "`-- --profile smoke --out DIR`).")
    return nox.session(python="3.11", name=f"reproduce_{table}")(session_fn)


for _table in ("table1", "table2", "table3", "table4", "appendix1", "all"):
    globals()[f"reproduce_{_table}"] = _reproduce_session(_table)

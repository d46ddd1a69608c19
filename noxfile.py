"""Sessions: quickstart (the README's main job), tests, lint, bench, report, reproduce_<table> for every
table of the paper (and reproduce_all), reproduce_bicubic, regression (smoke numbers against tests/golden/).

A fresh machine needs only Python 3.11 and `pip install nox`. Every session runs in one environment,
`.nox/suite`, which the first session to need it builds (Python 3.11, the CPU torch pinned for CI,
torch==2.13.0, and the suite editable with its test tools): `nox -s tests lint regression` installs torch
once, not three times, and `nox -s lint` alone still works. A stamp in it records what was installed
(pyproject.toml's digest and the torch pin); when either changes, the next session installs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nox
import nox.command

nox.options.sessions = ["tests", "lint"]

TORCH = "torch==2.13.0"
SUITE = Path(".nox") / "suite"  # the one environment of every session
BIN = SUITE / ("Scripts" if os.name == "nt" else "bin")  # its programs
STAMP = SUITE / "installed.json"


def _wanted() -> dict[str, str]:
    return {"torch": TORCH, "pyproject": hashlib.sha256(Path("pyproject.toml").read_bytes()).hexdigest()}


def _python311(session: nox.Session) -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if not found:
        session.error("Python 3.11 is needed (the suite's version): install it, or run nox with it")
    return found


def _install(session: nox.Session) -> None:
    """The shared environment, built (once) and filled if what it holds is not what pyproject.toml and
    the torch pin ask for; its bin folder put first on PATH for the session's commands."""
    try:
        done = json.loads(STAMP.read_text()) == _wanted()
    except (OSError, ValueError):
        done = False
    if not done:
        if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
            session.log(f"creating {SUITE}: the one environment every session of this noxfile runs in")
            session.run_install(_python311(session), "-m", "venv", str(SUITE), external=True)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        session.log(f"installing {TORCH} (the CPU build CI pins, about 200 MB) into {SUITE}: once for "
                    "every session (tests, lint, regression, ...), not once per session")
        session.run_install(*pip, TORCH, external=True)
        session.log(f"installing the suite editable with its test tools (pytest, ruff, import-linter) into "
                    f"{SUITE}: once, again only when pyproject.toml changes")
        session.run_install(*pip, "-e", ".[test]", external=True)
        if (BIN / "pytest").exists() or (BIN / "pytest.exe").exists():  # not with --no-install
            STAMP.write_text(json.dumps(_wanted()) + "\n")
    session.env["PATH"] = os.pathsep.join([str(BIN.resolve()), os.environ.get("PATH", "")])
    session.env["VIRTUAL_ENV"] = str(SUITE.resolve())


def tool(name: str) -> str:
    """A program of the shared environment by its path: a session without its own environment would
    otherwise find the first one of that name on the caller's PATH."""
    return str(BIN / name)


def suite_session(func=None, **kwargs):
    """A session that runs in the shared environment (no environment of its own)."""
    return nox.session(func, venv_backend="none", **kwargs)


@suite_session
def quickstart(session: nox.Session) -> None:
    """The main job: the pipeline in miniature on the embedded sample images (`repro quickstart`)."""
    _install(session)
    session.run(tool("repro"), "quickstart", *session.posargs)


@suite_session
def tests(session: nox.Session) -> None:
    """The test suite (tests needing the real images skip unless REPRO_DATA points at them)."""
    _install(session)
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    session.run(tool("pytest"), "-q", "-ra", "--durations=15", *session.posargs,
                env={"OMP_NUM_THREADS": threads})


@suite_session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests and this file; import-linter's layer contracts (pyproject.toml)."""
    _install(session)
    session.run(tool("ruff"), "check", "repro", "tests", "scripts", "noxfile.py")
    session.run(tool("lint-imports"))


@suite_session
def bench(session: nox.Session) -> None:
    """Benchmarks; writes bench/results.json (pass `-- --only NAME` to run one module)."""
    _install(session)
    session.run(tool("python"), "-m", "repro.bench", "--out", "bench/results.json", *session.posargs)


@suite_session
def reproduce_bicubic(session: nox.Session) -> None:
    """The Bicubic row of Appendix Table I on the real benchmark images (REPRO_DATA or --data-root)."""
    _install(session)
    session.run(tool("repro"), "bicubic", "--json", "results/bicubic.json", *session.posargs)


@suite_session
def report(session: nox.Session) -> None:
    """`repro report` of a results folder: `nox -s report -- --results DIR` (default: the quickstart's,
    runs/quickstart); writes DIR/report/report.html, report.md, latex/ and figures/."""
    _install(session)
    args = session.posargs or ["--results", "runs/quickstart"]
    session.run(tool("repro"), "report", *args)


def _reproduce_session(table: str):
    def session_fn(session: nox.Session) -> None:
        _install(session)
        session.run(tool("repro"), "reproduce", table, *session.posargs)

    session_fn.__doc__ = (f"`repro reproduce {table}` (default profile paper; pass arguments after --, e.g. "
                          "`-- --profile smoke --out DIR`).")
    return suite_session(name=f"reproduce_{table}")(session_fn)


def _paper_tables() -> list[str]:
    """The paper's tables as this checkout's specs list them (`repro.specs` imports only the standard
    library, so nox's own Python reads it without installing the suite)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from repro.specs import ALL, paper_tables

        return [*paper_tables(), ALL]
    finally:
        sys.path.pop(0)


for _table in _paper_tables():
    globals()[f"reproduce_{_table}"] = _reproduce_session(_table)


# ---------------------------------------------------------------- regression
# The smoke tables CI reproduces: table1-3 train FSRCNN-sized networks and evaluate on Set5 only, in under a
# minute each on one core; table4 and appendix1 train and evaluate VDSR/IDN/DRCN/DRRN, which on a CPU is far
# over CI's budget even at the smoke profile. tests/golden/smoke.json's header records what each took.
REGRESSION_TABLES = ("table1", "table2", "table3")
SMOKE_GOLDEN = "tests/golden/smoke.json"
BICUBIC_GOLDEN = "tests/golden/bicubic_paper.json"
_BENCHMARK_STATUS = ("from repro.data.manifests import get_manifest; from repro.data.verify import "
                     "folder_status; from repro.paths import data_root; r = data_root(); "
                     "print(folder_status(get_manifest('benchmark'), r), r)")  # as `repro data list` checks


@suite_session
def regression(session: nox.Session) -> None:
    """Smoke-profile table1-3 and the Bicubic row, checked against tests/golden/ with `repro regression`
    (skipped without the benchmark images); `-- --update-golden` rewrites the smoke values of
    tests/golden/smoke.json and prints what changed."""
    unknown = [a for a in session.posargs if a != "--update-golden"]
    if unknown:
        session.error(f"unknown arguments {' '.join(unknown)}; the only one is --update-golden")
    update = ["--update-golden"] if "--update-golden" in session.posargs else []
    _install(session)
    found = session.run(tool("python"), "-c", _BENCHMARK_STATUS, silent=True)
    if not isinstance(found, str):  # `nox --install-only`: nothing runs
        return
    status, _, root = found.strip().splitlines()[-1].partition(" ")
    if status != "present":
        why = f"the benchmark images are {status} under {root}"
        fix = "fetch them with `repro data fetch benchmark` or set REPRO_DATA to the folder holding benchmark"
        if os.environ.get("REPRO_DATA"):  # pointed somewhere on purpose: a wrong folder is an error
            session.error(f"{why} (REPRO_DATA); {fix}")
        session.skip(f"{why}; {fix}")
    start = time.monotonic()
    out = (SUITE / "tmp" / "regression").resolve()
    shutil.rmtree(out, ignore_errors=True)  # fresh: run folders left from before would be reused, not trained
    results = []
    for table in REGRESSION_TABLES:  # a folder each: `reproduce` writes results.csv for its own table only
        # --no-report: the report is written below, after the verdict, so that it cannot hide it
        session.run(tool("repro"), "reproduce", table, "--profile", "smoke", "--out", str(out / table),
                    "--no-estimate", "--no-report")
        results += ["--results", str(out / table)]
    if "appendix1" not in REGRESSION_TABLES:  # else its results.csv holds the Bicubic row already
        session.run(tool("repro"), "bicubic", "--json", str(out / "bicubic.json"), "--no-progress")
        results += ["--results", str(out / "bicubic.json")]
    failed = False
    try:
        session.run(tool("repro"), "regression", *results, "--golden", SMOKE_GOLDEN, "--golden",
                    BICUBIC_GOLDEN, *update)
    except nox.command.CommandFailed:
        failed = True  # the report below still runs, to help read the misses
    for table in REGRESSION_TABLES:
        session.run(tool("repro"), "report", "--results", str(out / table))
    session.log(f"regression: {time.monotonic() - start:.0f} s after install; results in {out}")
    if failed:
        session.error("regression failed: golden cells outside tolerance or not measured (listed above)")

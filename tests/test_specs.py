"""The tables are discovered: a table is added in one place (its module in repro/specs/ and its printed
values in tables/published/), and the command line, `all`, nox, the plan and the report find it there."""

from __future__ import annotations

import runpy
import sys

import pytest

import repro.published
import repro.specs
from repro.cli import main
from repro.paths import PROJECT_ROOT, project_file
from repro.report.inputs import load_inputs
from repro.specs import ROLES, get_table, paper_tables, rows_with_role, table_choices, table_names, tables

THROWAWAY = '''"""Table 9, made up by tests/test_specs.py: FSRCNN* beside bicubic on the sample photos."""

from repro.specs.base import Row, TableSpec, baseline

TABLE = TableSpec(
    name="table9",
    short="Table 9",
    order=9,
    title="Table 9: FSRCNN* beside bicubic on the sample photos, x4, PSNR (dB)",
    rows=(
        Row("bicubic", "Bicubic"),
        Row("fsrcnn_star", "FSRCNN*", (baseline("fsrcnn", 4),), roles=("fsrcnn_alone",)),
    ),
    datasets=("sample",),
    profile="smoke",
)
'''
PRINTED = "table9,fsrcnn_star,4,sample,psnr,27.5,\n"


@pytest.fixture
def table9(tmp_path, monkeypatch):
    """The throwaway table, added where a contributor would add it: a module beside the specs (a folder on
    the package's path) and a line of printed values (a copy of tables/published/published_values.csv)."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "table9.py").write_text(THROWAWAY)
    monkeypatch.setattr(repro.specs, "__path__", [*repro.specs.__path__, str(folder)])
    printed = tmp_path / "published" / "published_values.csv"
    printed.parent.mkdir()
    printed.write_text(project_file("tables", "published", "published_values.csv").read_text() + PRINTED)

    def shipped(*parts: str):
        return printed if parts == ("tables", "published", "published_values.csv") else project_file(*parts)

    monkeypatch.setattr(repro.published, "project_file", shipped)
    _clear_caches()
    yield get_table("table9")
    _clear_caches()
    sys.modules.pop("repro.specs.table9", None)


def _clear_caches() -> None:
    """Forget what the suite cached of the tables and the printed values (functools caches)."""
    for name, module in list(sys.modules.items()):
        if name == "repro" or name.startswith("repro."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", "") == name:
                    value.cache_clear()


def test_the_shipped_tables_in_the_papers_order():
    assert table_names() == ["table1", "table2", "table3", "table4", "appendix1", "quickstart"]
    assert paper_tables() == table_names()[:-1] and table_choices() == [*table_names(), "all"]
    shorts = [t.short for t in tables("all")]
    assert shorts == ["Table 1", "Table 2", "Table 3", "Table 4", "Appendix Table I"]


def test_row_roles_most_complete_table_first():
    found = {role: [(t.name, r.name) for t, r in rows_with_role(role)] for role in ROLES}
    assert found["fsrcnn_alone"] == [("appendix1", "FSRCNN*"), ("table4", "fsrcnn_baseline"),
                                     ("table3", "baseline_fsrcnn"), ("table2", "baseline_fsrcnn"),
                                     ("table1", "baseline_fsrcnn"), ("quickstart", "fsrcnn_baseline")]
    assert found["pisr_student"] == [("appendix1", "PISR"), ("table4", "fsrcnn_pisr")]
    assert found["dssd_student"] == [("appendix1", "DSSD"), ("table4", "fsrcnn_dssd"),
                                     ("table3", "deep_supervision"), ("quickstart", "fsrcnn_dssd")]


def test_every_equal_compute_row_says_so_alike():
    for table in tables("all"):
        for row in table.rows:
            if row.control_for:
                assert row.label.endswith("* for teacher + student iterations (equal-compute control)")
                assert all(run.iterations_of for run in row.runs)


def test_a_new_table_is_listed_everywhere(table9):
    assert table_names()[:6] == ["table1", "table2", "table3", "table4", "appendix1", "table9"]
    assert tables("all")[-1] is table9 and "table9" in table_choices()
    assert rows_with_role("fsrcnn_alone")[0] == (table9, table9.rows[1])  # the last table of the paper
    pytest.importorskip("nox")
    sessions = runpy.run_path(str(PROJECT_ROOT / "noxfile.py"))
    assert "reproduce_table9" in sessions and "reproduce_all" in sessions


@pytest.mark.slow
def test_a_new_table_is_planned_reproduced_and_reported(table9, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["plan", "table9", "--out", str(out), "--no-estimate"]) == 0  # the table's own profile
    assert "plan: 1 run" in capsys.readouterr().out
    assert main(["reproduce", "table9", "--out", str(out), "--no-estimate",
                 "--set", "optim.iters_per_epoch=10", "--set", "run.checkpoint_every=5"]) == 0
    inputs = load_inputs(out)
    assert inputs.tables == [table9]
    assert inputs.run_for("fsrcnn_alone") is not None  # the figures find FSRCNN* through the row's role
    md = (out / "report" / "report.md").read_text()
    assert md.startswith("# DSSD reproduction report: Table 9\n")  # the table's short name
    assert "## Table 9: FSRCNN\\* beside bicubic" in md and "| **27.50** |" in md  # its printed value

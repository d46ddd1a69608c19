"""The tables as data: one module per table (`table1` ... `table4`, `appendix1`, `quickstart`), each a
`TableSpec` whose rows name the runs they measure. `TABLE_NAMES` lists them; `get_table(name)` gives one.
"""

from __future__ import annotations

import importlib

from repro.errors import unknown_choice
from repro.specs.base import Claim, Row, RunSpec, TableSpec

TABLE_NAMES = ("table1", "table2", "table3", "table4", "appendix1", "quickstart")
PAPER_TABLES = TABLE_NAMES[:-1]  # `all`: every table of the paper


def get_table(name: str) -> TableSpec:
    if name not in TABLE_NAMES:
        raise unknown_choice("table", name, (*TABLE_NAMES, "all"))
    return importlib.import_module(f"repro.specs.{name}").TABLE


def tables(selection: str) -> list[TableSpec]:
    """`all` (every table of the paper) or one table's name."""
    return [get_table(n) for n in PAPER_TABLES] if selection == "all" else [get_table(selection)]


__all__ = ["Claim", "PAPER_TABLES", "Row", "RunSpec", "TABLE_NAMES", "TableSpec", "get_table", "tables"]

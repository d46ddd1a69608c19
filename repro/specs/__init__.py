"""The tables as data: one module per table (`table1` ... `table4`, `appendix1`, `quickstart`), each a
`TableSpec` named `TABLE` whose rows name the runs they measure.

The tables are discovered, as `repro.models` and `repro.commands` are: a module here holding a `TABLE` is
a table, so adding one means adding its module (and its printed values to tables/published/). Everything
else (the command line's choices, `repro reproduce all`, the nox sessions, the report) reads this list.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from repro.errors import unknown_choice
from repro.specs.base import ROLES, Claim, Row, RunSpec, TableSpec

ALL = "all"  # every table of the paper
_NOT_TABLES = {"base"}


@cache
def _discovered() -> dict[str, TableSpec]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_TABLES or info.name.startswith("_"):
            continue
        table = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TABLE", None)
        if isinstance(table, TableSpec):
            found.append(table)
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise ValueError(f"two table specs share a name: {sorted(names)}")
    return {t.name: t for t in sorted(found, key=lambda t: (not t.of_paper, t.order, t.name))}


def table_names() -> list[str]:
    """Every table, the paper's first in its order, then the others (the quickstart)."""
    return list(_discovered())


def paper_tables() -> list[str]:
    """The tables of the paper, in its order: what `all` selects."""
    return [name for name, t in _discovered().items() if t.of_paper]


def table_choices() -> list[str]:
    """What a command taking a table accepts: every table, and `all`."""
    return [*table_names(), ALL]


def get_table(name: str) -> TableSpec:
    tables_ = _discovered()
    if name not in tables_:
        raise unknown_choice("table", name, table_choices())
    return tables_[name]


def tables(selection: str) -> list[TableSpec]:
    """`all` (every table of the paper) or one table's name."""
    return [get_table(n) for n in paper_tables()] if selection == ALL else [get_table(selection)]


def rows_with_role(role: str) -> list[tuple[TableSpec, Row]]:
    """Every (table, row) playing `role` (one of `ROLES`), the most complete first: the paper's tables from
    the last (Appendix Table I measures every scale) to the first, then the others."""
    if role not in ROLES:
        raise unknown_choice("row role", role, ROLES)
    ranked = sorted(_discovered().values(), key=lambda t: (not t.of_paper, -t.order))
    return [(t, r) for t in ranked for r in t.rows if role in r.roles]


__all__ = ["ALL", "Claim", "ROLES", "Row", "RunSpec", "TableSpec", "get_table", "paper_tables",
           "rows_with_role", "table_choices", "table_names", "tables"]

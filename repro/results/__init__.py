"""The measured results of the tables: `collect` gathers them into `<out>/results.csv`, `tables` renders
each table (printed beside measured, claims checked against the seed spread) as Markdown and LaTeX."""

from repro.results.collect import (
    COLUMNS,
    bicubic_rows,
    complexity_rows,
    measured_rows,
    read_results,
    write_results,
)
from repro.results.tables import render_latex, render_markdown, write_tables

__all__ = ["COLUMNS", "bicubic_rows", "complexity_rows", "measured_rows", "read_results", "render_latex",
           "render_markdown", "write_results", "write_tables"]

"""`build_report`: a results folder -> one self-contained HTML page, its Markdown twin, LaTeX tables,
figures (PNG + PDF) and `comparison.csv`, all under `<results>/report/` unless told otherwise.

The page embeds its styles and images (data: URIs) and references nothing outside itself;
`external_references` checks that, and `build_report` refuses to write a page that fails it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path

import jinja2

from repro.errors import ReproError
from repro.io_utils import atomic_write_text
from repro.report import findings, summary
from repro.report.context import context
from repro.report.inputs import load_inputs
from repro.results.tables import markdown_environment, render_latex

TEMPLATES = Path(__file__).parent / "templates"
HTML = "report.html"
MARKDOWN = "report.md"
COMPARISON = "comparison.csv"
__all__ = ["build_report", "context", "external_references"]


# ---------------------------------------------------------------- self-containment
class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            fetched = name in ("src", "href", "srcset", "poster", "data", "action", "background")
            if fetched and value and not value.startswith(("data:", "#")):
                self.refs.append(f"<{tag} {name}={value!r}>")
            if name == "style" and value:
                self.refs += _css_refs(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.refs += _css_refs(data)


def _css_refs(css: str) -> list[str]:
    out = [f"url({u.strip()})" for u in re.findall(r"url\(([^)]*)\)", css)
           if not u.strip(" '\"").startswith("data:")]
    return out + [f"@import {m}" for m in re.findall(r"@import\s+([^;]+)", css)]


def external_references(html: str) -> list[str]:
    """Everything in `html` a browser would fetch from outside the page (empty: self-contained)."""
    parser = _Refs()
    parser.feed(html)
    return parser.refs


def _code(text: object):
    """Text with `backticked` spans as <code> (escaped first: the context is plain text for both pages)."""
    import markupsafe

    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["code"] = _code
    return env


def render_pages(ctx: dict) -> tuple[str, str]:
    """(HTML, Markdown) of one report context: the same sections, numbers and banners in both."""
    html = _environment().get_template("report.html.j2").render(**ctx)
    markdown = markdown_environment(TEMPLATES).get_template("report.md.j2").render(**ctx)
    return html, re.sub(r"\n{3,}", "\n\n", markdown).rstrip("\n") + "\n"


def build_report(results: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 data_root: str | os.PathLike[str] | None = None,
                 tolerances: Mapping[str, float] = summary.TOLERANCES, figures: bool = True,
                 progress: bool = False, log=print) -> dict[str, Path]:
    """Write the report of `results` into `out` (default `<results>/report`); returns the paths."""
    inputs = load_inputs(results, data_root)
    folder = Path(out) if out else inputs.folder / "report"
    folder.mkdir(parents=True, exist_ok=True)
    figs = []
    if figures:
        from repro.report.figures import make_figures

        figs = make_figures(inputs, folder / "figures", progress=progress)
    ctx = context(inputs, figs, folder, tolerances)
    html, markdown = render_pages(ctx)
    refs = external_references(html)
    if refs:
        raise ReproError("the report would reference files outside itself: " + "; ".join(refs[:5]))
    paths = {"html": atomic_write_text(folder / HTML, html),
             "markdown": atomic_write_text(folder / MARKDOWN, markdown)}
    latex = folder / "latex"
    for table in inputs.tables:
        paths[f"latex:{table.name}"] = atomic_write_text(latex / f"{table.name}.tex",
                                                         render_latex(table, inputs.results, inputs.seeds))
    rows = findings.complexity_rows(inputs)
    if rows:
        from repro.complexity.table import render

        paths["latex:complexity"] = atomic_write_text(latex / "complexity.tex",
                                                      render(rows, ctx["complexity_found"])["complexity.tex"])
    paths["latex:document"] = atomic_write_text(latex / "tables.tex", _latex_document(
        [p.name for k, p in paths.items() if k.startswith("latex:")]))
    paths["comparison"] = atomic_write_text(folder / COMPARISON,
                                            summary.frame(ctx["comparisons"]).to_csv(index=False))
    log(f"[report] wrote {paths['html']} (and report.md, latex/, figures/, comparison.csv)")
    return paths


def _latex_document(files: list[str]) -> str:
    """A standalone document that inputs every table (what a paper's appendix would do)."""
    body = "\n".join(f"\\input{{{name}}}\n\\clearpage" for name in files)
    return ("% Generated by `repro report`: every table of the report; compile with pdflatex tables.tex\n"
            "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
            "\\usepackage{booktabs}\n\\usepackage[normalem]{ulem}\n\\usepackage{textcomp}\n"
            "\\usepackage[margin=1.5cm,landscape]{geometry}\n\\begin{document}\n"
            + body + "\n\\end{document}\n")

"""The numbers a reader looks at first: every printed cell beside its measurement, whether it is within
tolerance, the largest misses, and the differences that stand beyond the seed spread."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from repro.metric_table import default_tolerances, metric
from repro.report.inputs import ReportInputs
from repro.results.tables import cell_stats, cells, printed

# "Within tolerance" (a setting of the report, `repro report --tolerance METRIC=VALUE`): the metric
# table's defaults (absolute for PSNR and SSIM, relative for the complexity counts; printed runtimes
# name another GPU, so runtime cells are shown and never judged)
TOLERANCES: dict[str, float] = default_tolerances()
PAPER_PROFILES = ("paper", "pisr_code")


@dataclass(frozen=True)
class Comparison:
    """One printed cell beside what was measured for it (mean over seeds)."""

    table: str
    row: str
    label: str
    scale: int
    dataset: str
    metric: str
    printed: float
    measured: float | None
    std: float | None
    n: int
    tolerance: float | None  # absolute, in the metric's unit; None when not judged

    @property
    def where(self) -> str:
        cell = " ".join(p for p in (f"x{self.scale}", self.dataset, self.metric) if p)
        return f"{self.table} / {self.label} / {cell}"

    @property
    def delta(self) -> float | None:
        return None if self.measured is None else self.measured - self.printed

    @property
    def within(self) -> bool | None:
        if self.delta is None or self.tolerance is None:
            return None
        return abs(self.delta) <= self.tolerance + 1e-12

    @property
    def misses_by(self) -> float:
        """|Δ| in units of the tolerance (0 when not judged or not measured)."""
        if self.delta is None or not self.tolerance:
            return 0.0
        return abs(self.delta) / self.tolerance

    @property
    def standard_error(self) -> float | None:
        if self.n < 2 or self.std is None or math.isnan(self.std):
            return None
        return self.std / math.sqrt(self.n)

    @property
    def beyond_spread(self) -> bool | None:
        """|Δ| > 2 standard errors of the mean over seeds; None with one seed (no spread)."""
        se = self.standard_error
        return None if se is None or self.delta is None else abs(self.delta) > 2 * se


def tolerance_of(name: str, printed_value: float, tolerances: Mapping[str, float]) -> float | None:
    if name not in tolerances:
        return None
    return metric(name).tolerance_for(printed_value, dict(tolerances))


def comparisons(inputs: ReportInputs, tolerances: Mapping[str, float] = TOLERANCES) -> list[Comparison]:
    """Every printed cell of the report's tables, in table order, beside its measurement (if any)."""
    out = []
    for table in inputs.tables:
        stats = cell_stats(inputs.results, table.name, inputs.seeds)
        for row in table.rows:
            for scale in table.scales:
                for dataset, name in cells(table):
                    p = printed(table.name, row.name, scale, dataset, name)
                    if p is None:
                        continue
                    st = stats.get((row.name, scale, dataset, name))
                    out.append(Comparison(
                        table.name, row.name, row.label, scale, dataset, name, p,
                        None if st is None else st.mean, None if st is None else st.std,
                        0 if st is None else st.n, tolerance_of(name, p, tolerances)))
    return out


@dataclass(frozen=True)
class Summary:
    printed: int
    measured: int
    judged: int
    within: int
    not_judged: int
    largest_misses: list[Comparison]
    profile: str
    paper_profile: bool
    seeds: int
    hardware: list[str]
    commits: list[str]
    subset: str | None = None  # how a quick check cut the test sets (`--eval-images`, `--eval-crop`)


def evaluation_subset(inputs: ReportInputs) -> str | None:
    """How the runs' evaluations were cut short, in words; None when every set was measured whole."""
    limits, crops = set(), set()
    for run in inputs.runs.values():
        for entry in run.evaluation.values():
            limits.add(entry.get("max_images"))
            crops.add(entry.get("crop"))
    parts = []
    if limits - {None}:
        parts.append(f"the first {', '.join(str(n) for n in sorted(limits - {None}))} image(s) of each set")
    if crops - {None}:
        parts.append(f"their top-left {', '.join(str(c) for c in sorted(crops - {None}))} px HR crop")
    return " and ".join(parts) or None


def summarise(inputs: ReportInputs, comps: list[Comparison], top: int = 5) -> Summary:
    measured = [c for c in comps if c.measured is not None]
    judged = [c for c in measured if c.within is not None]
    misses = sorted((c for c in judged if not c.within), key=lambda c: -c.misses_by)
    df = inputs.results
    # where the runs trained and were evaluated (Bicubic and complexity rows name their own device)
    trained = df[df["run"] != ""] if len(df) else df
    hardware = sorted({d for d in (trained if len(trained) else df)["device"] if d}) if len(df) else []
    commits = sorted({c for c in df["commit"] if c}) if len(df) else []
    profile = inputs.profile
    subset = evaluation_subset(inputs)
    return Summary(printed=len(comps), measured=len(measured), judged=len(judged),
                   within=sum(bool(c.within) for c in judged), not_judged=len(measured) - len(judged),
                   largest_misses=misses[:top], profile=profile,
                   paper_profile=all(p in PAPER_PROFILES for p in profile.split(", ")) and subset is None,
                   seeds=inputs.seeds, hardware=hardware, commits=commits, subset=subset)


def beyond_spread(comps: list[Comparison]) -> list[Comparison]:
    """The measured differences larger than the seed spread (two standard errors), largest first."""
    return sorted((c for c in comps if c.beyond_spread), key=lambda c: -abs(c.delta or 0.0))


def one_seed_cells(comps: list[Comparison]) -> int:
    return sum(1 for c in comps if c.measured is not None and c.n == 1 and c.tolerance is not None)


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """`["psnr=0.05", ...]` over the defaults, with errors listing the valid metrics."""
    from repro.errors import ReproError

    out = dict(TOLERANCES)
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in TOLERANCES:
            raise ReproError(f"--tolerance {item!r}: give METRIC=VALUE with METRIC one of "
                             f"{', '.join(TOLERANCES)}")
        try:
            out[key] = float(value)
        except ValueError as exc:
            raise ReproError(f"--tolerance {item!r}: {value!r} is not a number") from exc
    return out


def frame(comps: list[Comparison]) -> pd.DataFrame:
    """The comparisons as a tidy frame (the report's `comparison.csv`)."""
    columns = ["table", "row", "scale", "dataset", "metric", "printed", "measured", "std", "seeds", "delta",
               "tolerance", "within", "beyond_spread"]
    return pd.DataFrame([[c.table, c.row, c.scale, c.dataset, c.metric, c.printed, c.measured, c.std, c.n,
                          c.delta, c.tolerance, c.within, c.beyond_spread] for c in comps], columns=columns)

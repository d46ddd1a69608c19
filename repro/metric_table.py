"""The metrics of the tables, in one place: how each is labelled, how many digits it is shown with, which
way is better, and what counts as reproduced.

Read by the tables beside the paper (`repro.results.tables`), the report (`repro.report`: summary,
findings, page) and the regression checks (`repro.results.regression`), so a metric is shown, ranked and
judged the same way everywhere. Adding a metric is one line here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str  # as results.csv and published_values.csv key it
    label: str  # a column header
    digits: int  # decimals shown in tables (the paper's own)
    higher_is_better: bool
    ranked: bool  # the paper marks the best and second best of its columns
    tolerance: float | None  # "within tolerance" by default in the report; None: never judged
    relative: bool = False  # the tolerance is a share of the printed value (else in the metric's unit)
    unit: str = ""  # of an absolute tolerance, as the report writes it
    not_judged: str = ""  # why a metric without a tolerance is shown but never judged
    check_digits: int = 4  # decimals a regression check prints (finer than any tolerance)

    def format(self, value: float | None, signed: bool = False, digits: int | None = None) -> str:
        """`value` with this metric's digits, or `digits` ("-" for None or NaN)."""
        if value is None or math.isnan(value):
            return "-"
        return f"{value:{'+' if signed else ''}.{self.digits if digits is None else digits}f}"

    def shown(self, value: float) -> float:
        """`value` as a table shows it (rounded to its digits): equal shown values tie."""
        return round(value, self.digits)

    def tolerance_for(self, printed: float, tolerances: dict[str, float] | None = None) -> float | None:
        """The absolute tolerance of a cell printed as `printed` (None when the metric is not judged);
        `tolerances` overrides the defaults (`repro report --tolerance`)."""
        tol = (tolerances or {}).get(self.name, self.tolerance) if self.tolerance is not None else None
        if tol is None:
            return None
        return tol * abs(printed) if self.relative else tol


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("psnr", "PSNR (dB)", 2, True, True, 0.1, unit=" dB", check_digits=4),
    Metric("ssim", "SSIM", 4, True, True, 0.002, check_digits=5),
    Metric("params_k", "Params (k)", 1, False, False, 0.02, relative=True),
    Metric("multiadds_g", "MultiAdds (G)", 1, False, False, 0.02, relative=True),
    Metric("runtime_ms", "Runtime (ms)", 2, False, False, None,
           not_judged="printed on another GPU (a Titan RTX): shown, never judged"),
)}
COMPLEXITY = ("params_k", "multiadds_g", "runtime_ms")  # the columns of a table with complexity


def metric(name: str) -> Metric:
    """The metric `name`; one not in the table is shown with 2 digits, never ranked or judged."""
    return METRICS.get(name) or Metric(name, name, 2, True, False, None,
                                       not_judged="not a metric of the paper")


def default_tolerances() -> dict[str, float]:
    """metric -> its default tolerance, for the metrics that are judged."""
    return {m.name: m.tolerance for m in METRICS.values() if m.tolerance is not None}

"""The vocabulary of the table specs: a table has rows, a row measures one run, a run may name its teacher.

A `RunSpec` says what to train (kind, network, scale, the settings that make the row, and for a student
its teacher); the profile (`paper`, `laptop`, `smoke`, ...) and the seed complete it into a resolved
`TrainConfig`, whose hash identifies the run. Rows of different tables that need the same run therefore
share it: it is trained once.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.errors import unknown_choice

KINDS = ("baseline", "teacher", "student")
THIS_PAPER = "this paper"


@dataclass(frozen=True)
class RunSpec:
    """One training run, before a profile and a seed complete it."""

    kind: str  # baseline | teacher | student
    model: str  # the network (a student's is its teacher's backbone)
    scale: int = 4
    settings: tuple[str, ...] = ()  # `--set key=value` on top of the profile
    teacher: RunSpec | None = None  # a student's teacher
    # an equal-compute control: trained for as many iterations as these runs together (a student
    # starts from a trained teacher, so it has trained for the teacher's iterations and its own)
    iterations_of: tuple[RunSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown run kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if (self.kind == "student") != (self.teacher is not None):
            raise ValueError("a student run names its teacher, and only a student does")


def baseline(model: str = "fsrcnn", scale: int = 4, *settings: str) -> RunSpec:
    """A network trained alone on the bicubic LR image (the `*` rows)."""
    return RunSpec("baseline", model, scale, tuple(settings))


def teacher(model: str = "dssd_teacher", scale: int = 4, *settings: str) -> RunSpec:
    return RunSpec("teacher", model, scale, tuple(settings))


def student(of: RunSpec, *settings: str) -> RunSpec:
    """The student of teacher run `of`: its backbone, at its scale, from its weights."""
    backbone = next((s.split("=", 1)[1] for s in of.settings if s.startswith("model.backbone=")), "fsrcnn")
    return RunSpec("student", backbone, of.scale, tuple(settings), teacher=of)


def equal_compute(of: RunSpec) -> RunSpec:
    """The backbone of student `of` trained alone for as many iterations as its teacher and it together."""
    if of.teacher is None:
        raise ValueError("an equal-compute control is defined for a student run")
    return RunSpec("baseline", of.model, of.scale, of.settings, iterations_of=(of.teacher, of))


# What a row stands for, beyond its own table: the report's figures take "the FSRCNN trained alone", "the
# DSSD student", ... from whichever table measured one (`repro.specs.rows_with_role`).
ROLES = ("fsrcnn_alone", "pisr_student", "dssd_student")


@dataclass(frozen=True)
class Row:
    """One row of a table: the run measured at each scale; none for Bicubic (nothing is trained)."""

    name: str  # as in tables/published/published_values.csv
    label: str  # as the paper prints it
    runs: tuple[RunSpec, ...] = ()  # one per scale of the table
    source: str = THIS_PAPER  # where the printed numbers come from
    control_for: tuple[str, ...] = ()  # an equal-compute control row: the distilled rows it controls
    roles: tuple[str, ...] = ()  # of ROLES

    def __post_init__(self) -> None:
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"row {self.name}: unknown role(s) {', '.join(sorted(unknown))}; valid: "
                             f"{', '.join(ROLES)}")

    @property
    def from_other_paper(self) -> bool:
        return self.source != THIS_PAPER

    def run_at(self, scale: int) -> RunSpec | None:
        return next((r for r in self.runs if r.scale == scale), None)


@dataclass(frozen=True)
class Claim:
    """A gain the paper claims: row `better` over row `worse` (printed gain = the printed difference)."""

    better: str
    worse: str
    scale: int = 4
    dataset: str = "Set5"
    metric: str = "psnr"


def equal_compute_row(name: str, students: tuple[RunSpec, ...], control_for: tuple[str, ...],
                      network: str = "FSRCNN") -> Row:
    """The equal-compute control of the rows `control_for`: the backbone of each of `students` (one per
    scale) trained alone for as many iterations as its teacher and it together."""
    return Row(name, f"{network}* for teacher + student iterations (equal-compute control)",
               tuple(equal_compute(s) for s in students), control_for=control_for)


@dataclass(frozen=True)
class TableSpec:
    """A table: its rows, and the cells (scale x dataset x metric) measured for each row.

    A module of `repro.specs` holding a `TABLE` is a table: the command line, the plan, nox and the report
    find it there (with its printed values in tables/published/published_values.csv).
    """

    name: str  # as in published_values.csv: table1 ... table4, appendix1, quickstart
    title: str
    rows: tuple[Row, ...]
    scales: tuple[int, ...] = (4,)
    datasets: tuple[str, ...] = ("Set5",)
    metrics: tuple[str, ...] = ("psnr",)
    claims: tuple[Claim, ...] = ()
    complexity: bool = False  # Appendix Table I: params, MultiAdds and runtime columns too
    profile: str = "paper"  # the profile `repro reproduce` uses unless told otherwise
    of_paper: bool = True  # a table the paper prints (`repro reproduce all` makes every one)
    short: str = ""  # how the report names it: "Table 1", "Appendix Table I", ... (default: `name`)
    order: int = 0  # its place among the tables (the paper's order)

    def __post_init__(self) -> None:
        if not self.short:
            object.__setattr__(self, "short", self.name)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise unknown_choice(f"row of {self.name}", name, [r.name for r in self.rows])

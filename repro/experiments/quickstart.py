"""The README's main job: bicubic, FSRCNN*, a DSSD teacher and its student, trained and measured on
the embedded `sample` images, so a fresh machine shows the whole pipeline in minutes, offline.

Each run is an ordinary `repro train` run under `out/` (resumable; a finished one is left alone), and
the results are tidy rows like every table of the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from repro.evaluate.bicubic_row import bicubic_row
from repro.evaluate.sr import evaluate_model, load_evaluator, summarise
from repro.runs.config import resolve
from repro.runs.folder import read_teacher
from repro.train.engine import train

TABLE = "quickstart"
DATASET = "sample"


@dataclass(frozen=True)
class Step:
    row: str
    kind: str
    model: str
    label: str
    overrides: tuple[str, ...] = ()  # on top of the profile, before the user's --set


STEPS = (
    Step("fsrcnn_baseline", "baseline", "fsrcnn", "FSRCNN* (trained alone)"),
    # the teacher's HFRM and SDM work at HR size: ~10x an FSRCNN step, so a third of the iterations
    Step("dssd_teacher", "teacher", "dssd_teacher", "DSSD teacher (privileged: sees HR)",
         ("optim.epochs=4",)),
    Step("fsrcnn_dssd", "student", "fsrcnn", "FSRCNN distilled from the DSSD teacher"),
)


def _measure(run_dir: Path, scale: int) -> pd.DataFrame:
    """Mean PSNR/SSIM of a finished run on the sample test images (a teacher is given HR)."""
    net, _ = load_evaluator(run_dir)
    return summarise(evaluate_model(net, DATASET, scale, progress=False))


def run_quickstart(out: str | Path = "runs/quickstart", scale: int = 4, profile: str = "quickstart",
                   overrides: tuple[str, ...] = (), force: bool = False,
                   progress: bool | None = None) -> pd.DataFrame:
    """Train (or resume) the three runs and return tidy rows for bicubic and each of them."""
    out = Path(out)
    rows: list[dict[str, object]] = []

    def add(row: str, label: str, psnr: float, ssim: float, seed: int | None, run: str) -> None:
        for metric, value in (("psnr", psnr), ("ssim", ssim)):
            rows.append({"table": TABLE, "row": row, "label": label, "scale": scale, "dataset": DATASET,
                         "metric": metric, "value": float(value), "seed": seed, "run": run})

    (bic,) = bicubic_row([DATASET], [scale], progress=False)
    add("bicubic", "Bicubic", bic["psnr"], bic["ssim"], None, "")
    teacher_dir: Path | None = None
    for step in STEPS:
        teacher = read_teacher(teacher_dir) if step.kind == "student" and teacher_dir else None
        cfg = resolve(profile, kind=step.kind, model=step.model, scale=scale,
                      overrides=[*step.overrides, *overrides], teacher=teacher)
        run_dir = out / f"{step.row}-x{scale}"
        print(f"[quickstart] {step.label}: {run_dir}", flush=True)
        train(cfg, out=run_dir, teacher_dir=str(teacher_dir) if step.kind == "student" else None,
              force=force, progress=progress)
        if step.kind == "teacher":
            teacher_dir = run_dir
        (mean,) = _measure(run_dir, scale).to_dict(orient="records")
        add(step.row, step.label, mean["psnr"], mean["ssim"], cfg.run.seed, str(run_dir))
    return pd.DataFrame(rows)


def to_markdown(rows: pd.DataFrame) -> str:
    """One line per row: PSNR, SSIM and the gain over bicubic."""
    wide = rows.pivot_table(index=["row", "label"], columns="metric", values="value", sort=False)
    wide = wide.reset_index()
    base = float(wide.loc[wide["row"] == "bicubic", "psnr"].iloc[0])
    lines = ["| row | PSNR (dB) | SSIM | vs bicubic (dB) |", "|---|---:|---:|---:|"]
    for r in wide.itertuples():
        lines.append(f"| {r.label} | {r.psnr:.2f} | {r.ssim:.4f} | {r.psnr - base:+.2f} |")
    return "\n".join(lines)

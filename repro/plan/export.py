"""A plan as text (what `repro plan` and `repro reproduce` print) and as JSON (`repro plan --json`)."""

from __future__ import annotations

from pathlib import Path

from repro.plan.cost import Cost, human
from repro.plan.runs import Plan, PlannedRun, status


def describe(plan: Plan, out: Path, cost: Cost | None = None,
             fleets: list[list[PlannedRun]] | None = None) -> str:
    """One line per run (status, the rows using it, time left), the fleets the runs train in (when any
    holds more than one run), then the cost of what is missing."""
    lines = [f"plan: {len(plan.runs)} runs for {', '.join(t.name for t in plan.tables)} "
             f"(profile {plan.profile}, {plan.seeds} seed(s)) in {out}"]
    for run in plan.ordered():
        used = ", ".join(f"{t}/{r}" for t, r in run.used_by[:4]) + (" ..." if len(run.used_by) > 4 else "")
        left = f", {human(cost.per_run[run.id])} left" if cost and run.id in cost.per_run else ""
        lines.append(f"  {run.name} seed {run.seed}: {status(run, out)}{left}  [{used}]")
    if fleets and any(len(f) > 1 for f in fleets):
        shared = [f for f in fleets if len(f) > 1]
        lines.append(f"fleets: {sum(len(f) for f in shared)} of the runs train in {len(shared)} fleet(s) "
                     "(together in one process each, each still its own run):")
        lines += [f"  fleet {i}: {len(f)} x {f[0].cfg.kind} {f[0].cfg.model.name} x{f[0].cfg.data.scale}: "
                  + ", ".join(r.name for r in f) for i, f in enumerate(shared, 1)]
    if cost is not None:
        lines.append(f"estimated cost of what is missing: {human(cost.seconds)} on {cost.device} "
                     "(training steps timed on this device; runs one after another)")
    return "\n".join(lines)


def plan_json(plan: Plan, out: Path, cost: Cost | None = None) -> dict:
    """{"runs": [...], "cells": [...]}: cells keyed as tables/published/published_values.csv."""
    from repro.published import published_values

    runs = []
    for run in plan.ordered():
        st = status(run, out)
        runs.append({"id": run.id, "name": run.name, "kind": run.cfg.kind, "model": run.cfg.model.name,
                     "scale": run.cfg.data.scale, "seed": run.seed, "status": st.state,
                     "iteration": st.iteration, "iterations": st.total,
                     "teacher": run.teacher.id if run.teacher else None,
                     "used_by": [{"table": t, "row": r} for t, r in run.used_by],
                     "seconds_left": cost.per_run.get(run.id) if cost else None,
                     "it_per_s": cost.it_per_s.get(run.id) if cost else None})
    printed = published_values()
    printed["dataset"] = printed["dataset"].fillna("")  # the complexity columns have no test set
    cells = []
    for table in plan.tables:
        for row in table.rows:
            for scale in table.scales:
                keys = [(d, m) for d in table.datasets for m in table.metrics]
                if table.complexity:
                    keys += [("", m) for m in ("params_k", "multiadds_g", "runtime_ms")]
                for dataset, metric in keys:
                    hit = printed[(printed.table == table.name) & (printed.row == row.name)
                                  & (printed.scale == scale) & (printed.dataset == dataset)
                                  & (printed.metric == metric)]
                    ids = [plan.measured.get((table.name, row.name, scale, s)) for s in range(plan.seeds)]
                    cells.append({"table": table.name, "row": row.name, "scale": scale, "dataset": dataset,
                                  "metric": metric,
                                  "printed": float(hit.value.iloc[0]) if len(hit) else None,
                                  "run": ids[0], "runs": [i for i in ids if i],
                                  "source": row.source})
    return {"profile": plan.profile, "seeds": plan.seeds,
            "device": cost.device if cost else None, "seconds_left": cost.seconds if cost else None,
            "runs": runs, "cells": cells}

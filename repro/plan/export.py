"""A plan as text (what `repro plan` and `repro reproduce` print) and as JSON (`repro plan --json`)."""

from __future__ import annotations

from pathlib import Path

from repro.plan.cost import Cost, human
from repro.plan.runs import Plan, PlannedRun, status

HOW = {"model": "each step's counted FLOPs, bytes and operations at this device's measured rates",
       "timed": "training steps timed on this device"}


def _left(cost: Cost | None, run_id: str) -> str:
    if cost is None or run_id not in cost.per_run:
        return ""
    others = "; ".join(f"{src} {human(s)}" for src, s in cost.beside.get(run_id, {}).items())
    return f", {human(cost.per_run[run_id])} left" + (f" ({others})" if others else "")


def cost_lines(cost: Cost) -> list[str]:
    """The estimate's total, how it was made, and the other figures beside it."""
    lines = [f"estimated cost of what is missing: {human(cost.seconds)} on {cost.device} "
             f"({cost.method}: {HOW[cost.method]}; runs one after another)"]
    if cost.throughput is not None:
        rates = cost.throughput
        when = f", measured {rates.measured}" if rates.measured else ""
        lines.append(f"  this device: {rates.describe()} (reference steps, fastest of repeats{when})")
    for src, (mine, theirs, n) in cost.beside_totals().items():
        lines.append(f"  beside it, {src}: {human(theirs)} for the {n} run(s) it prices "
                     f"({cost.method} {human(mine)} for the same runs)")
    if cost.unpriced:
        lines.append(f"  not priced: {len(cost.unpriced)} run(s) (time budget, or a step that does not fit "
                     "in memory)")
    lines += [f"  {note}" for note in cost.notes]
    return lines


def describe(plan: Plan, out: Path, cost: Cost | None = None,
             fleets: list[list[PlannedRun]] | None = None) -> str:
    """One line per run (status, the rows using it, time left), the fleets the runs train in (when any
    holds more than one run), then the cost of what is missing."""
    lines = [f"plan: {len(plan.runs)} runs for {', '.join(t.name for t in plan.tables)} "
             f"(profile {plan.profile}, {plan.seeds} seed(s)) in {out}"]
    for run in plan.ordered():
        used = ", ".join(f"{t}/{r}" for t, r in run.used_by[:4]) + (" ..." if len(run.used_by) > 4 else "")
        lines.append(f"  {run.name} seed {run.seed}: {status(run, out)}{_left(cost, run.id)}  [{used}]")
    if fleets and any(len(f) > 1 for f in fleets):
        shared = [f for f in fleets if len(f) > 1]
        lines.append(f"fleets: {sum(len(f) for f in shared)} of the runs train in {len(shared)} fleet(s) "
                     "(together in one process each, each still its own run):")
        lines += [f"  fleet {i}: {len(f)} x {f[0].cfg.kind} {f[0].cfg.model.name} x{f[0].cfg.data.scale}: "
                  + ", ".join(r.name for r in f) for i, f in enumerate(shared, 1)]
    if cost is not None:
        lines += cost_lines(cost)
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
                     "it_per_s": cost.it_per_s.get(run.id) if cost else None,
                     "seconds_left_beside": cost.beside.get(run.id, {}) if cost else {},
                     "step": step_json(cost, run.id)})
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
            "estimate": cost.method if cost else None,
            "rates": cost.throughput.to_json() if cost and cost.throughput else None,
            "runs": runs, "cells": cells}


def step_json(cost: Cost | None, run_id: str) -> dict | None:
    """What one step of the run computes (the model's count), for `repro plan --json`."""
    count = cost.counts.get(run_id) if cost else None
    if count is None:
        return None
    return {"gflop": round(count.flops / 1e9, 3), "gbytes": round(count.bytes / 1e9, 3), "ops": count.ops,
            "ops_grouped": count.ops_grouped}

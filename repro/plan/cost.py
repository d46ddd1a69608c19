"""What the missing part of a plan costs on this device.

The model (`--estimate model`, the default): each distinct training step is counted once, through the
run's real objective (`repro.plan.count`: FLOPs, bytes moved and operations per step), and priced at
what this device measured for three reference steps (`repro.plan.reference`: FLOPs per second of a
convolution, bytes per second, seconds per operation issued; each the minimum of several repeats, so a
busy machine does not inflate it). The same counts priced at the same rates make estimates that agree
with each other: a student costs its network's step plus its teacher's forward and its VID branches;
an equal-compute control costs its iterations' share.

Timed steps (`--estimate timed`): each distinct step timed on random tensors of the run's shapes (on a
CPU at most `CPU_PROBE_PATCH` pixels, scaled by the patch area), the minimum of a few repeats, shown
beside the model. The GPU bench (`python -m repro.bench --only gpu`) keeps the engine's it/s of the
runs it trained under "bench" (device -> step signature -> record, `write_bench_figures`): those are
shown beside the model too, and their excess over the model (the engine's own time per step: data,
Python, logging) is added to every run priced on that GPU (`Throughput.engine_s`).

Everything is cached per user in `~/.cache/dssd-repro/speed.json`: counts (by step signature; they
depend on no device), each device's rates, timed steps, the bench's figures.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from repro.io_utils import atomic_write_text
from repro.paths import default_cache_root
from repro.plan.count import StepCount, count_step, training_step
from repro.plan.reference import Throughput
from repro.plan.runs import Plan, PlannedRun, status
from repro.runs.config import TrainConfig

ESTIMATES = ("model", "timed", "none")
REPEATS = 3  # timed steps (after a warm-up): the minimum is kept
SLOW_STEP_S = 5.0  # a step this slow is timed once more after its warm-up, not REPEATS times
CPU_PROBE_PATCH = 48  # HR patch side a CPU times a step at (a multiple of every scale's level factors)
BENCH, COUNTS, THROUGHPUT, TIMED = "bench", "counts", "throughput", "timed"  # the sections of speed.json


def run_threads(cfg) -> int:
    """The CPU threads a run trains with (`run.threads`, else torch's default here)."""
    import torch

    return cfg.run.threads if cfg.run.threads > 0 else torch.get_num_threads()


def device_name(device: str, threads: int | None = None) -> str:
    """A stable name of the device a step runs on (the GPU's, or the CPU's and its threads)."""
    import torch

    from repro.provenance import cpu_model, threads_text

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name()}"
    return f"cpu:{cpu_model()} ({threads_text(threads or torch.get_num_threads())})"


def step_signature(run: PlannedRun) -> str:
    """What the speed of one training step depends on (not the seed, the schedule or the length)."""
    cfg = run.cfg
    parts = {"probe": CPU_PROBE_PATCH, "kind": cfg.kind, "model": cfg.model.name,
             "shared_prelu": cfg.model.shared_prelu,
             "settings": cfg.model.settings, "scale": cfg.data.scale, "patch": cfg.data.hr_patch,
             "batch": cfg.optim.batch_size, "channels": cfg.data.in_channels, "amp": cfg.run.amp,
             "threads": cfg.run.threads,
             "levels": cfg.loss.levels,
             "teacher": step_signature(run.teacher) if run.teacher is not None else None}
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the cache
def _cache_path() -> Path:
    return default_cache_root() / "speed.json"


def read_cache() -> dict:
    """speed.json: {"counts": {signature: count}, "throughput": {device: rates}, "timed": {device:
    {signature: {"it_per_s", "measured"}}}, "bench": {device: {signature: record}}}."""
    try:
        cache = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _update_cache(section: str, key: str, values: dict) -> Path:
    """Merge `values` into `cache[section][key]` (re-read first: another process may have written)."""
    cache = read_cache()
    node = cache.setdefault(section, {})
    node.setdefault(key, {}).update(values) if key else node.update(values)
    return atomic_write_text(_cache_path(), json.dumps(cache, indent=1, sort_keys=True) + "\n")


def bench_figures(name: str, cache: dict | None = None) -> dict[str, dict]:
    """The GPU bench's records for device `name`: step signature -> {"it_per_s", "run", "measured", ...}."""
    cache = read_cache() if cache is None else cache
    found = cache.get(BENCH, {}).get(name, {})
    return {sig: rec for sig, rec in found.items() if isinstance(rec, dict) and rec.get("it_per_s", 0) > 0}


def write_bench_figures(name: str, records: dict[str, dict]) -> Path:
    """Keep the bench's `records` (signature -> record with "it_per_s", the engine's iterations per
    second of that step on device `name`) for the planner, replacing what an earlier bench wrote for
    those signatures."""
    return _update_cache(BENCH, name, records)


# ---------------------------------------------------------------- timed steps
def probe_patch(cfg, device: str) -> int:
    """The HR patch side a step is timed at on `device` (see the module's docstring)."""
    return cfg.data.hr_patch if device.startswith("cuda") else min(cfg.data.hr_patch, CPU_PROBE_PATCH)


def measure_step(run: PlannedRun, device: str = "cpu", clock=time.perf_counter) -> float:
    """Iterations per second of the run's training step (forward, backward, Adam) on `device`: the
    fastest of REPEATS after a warm-up (a slow step, once after its warm-up, the faster of the two)."""
    import torch

    cfg = run.cfg
    patch = probe_patch(cfg, device)
    one = training_step(run, device, patch)

    def step() -> float:
        t0 = clock()
        one()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return clock() - t0

    area = (cfg.data.hr_patch / patch) ** 2  # a smaller probe scaled to the real patch
    threads = torch.get_num_threads()
    torch.set_num_threads(run_threads(cfg))  # time the step with the threads the run will use
    try:
        first = step()
        best = min(first, *(step() for _ in range(1 if first > SLOW_STEP_S else REPEATS)))
        return 1.0 / (best * area)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- the estimate
@dataclass
class Cost:
    device: str
    seconds: float  # of the missing iterations of every run not done (and priced)
    per_run: dict[str, float]  # run id -> seconds left, by `method`
    it_per_s: dict[str, float]  # run id -> iterations per second, by `method`
    source: dict[str, str] = field(default_factory=dict)  # run id -> "model" or "timed"
    unpriced: list[str] = field(default_factory=list)  # run ids left out: `budget_s` ran out
    method: str = "model"
    beside: dict[str, dict[str, float]] = field(default_factory=dict)  # run id -> {"timed"/"bench": s}
    throughput: Throughput | None = None  # this device's rates (of the first thread count priced)
    counts: dict[str, StepCount] = field(default_factory=dict)  # run id -> its step's count
    notes: list[str] = field(default_factory=list)  # what else the plan should say (the GPU bench)

    def beside_totals(self) -> dict[str, tuple[float, float, int]]:
        """source -> (this estimate's seconds, that source's seconds, runs) over the runs both price."""
        out: dict[str, tuple[float, float, int]] = {}
        for rid, others in self.beside.items():
            for src, seconds in others.items():
                mine, theirs, n = out.get(src, (0.0, 0.0, 0))
                out[src] = (mine + self.per_run[rid], theirs + seconds, n + 1)
        return out


def counted(run: PlannedRun, cache: dict) -> StepCount:
    """The run's step count from the cache, else counted (and put in the cache)."""
    sig = step_signature(run)
    found = StepCount.from_json(cache.get(COUNTS, {}).get(sig))
    if found is None:
        found = count_step(run)
        cache.setdefault(COUNTS, {})[sig] = found.to_json()
    return found


def throughput(device: str, threads: int, cache: dict, progress=print) -> Throughput:
    """This device's rates (at `threads` on a CPU), from the cache or measured now."""
    import torch

    from repro.plan import reference

    name = device_name(device, threads)
    found = Throughput.from_json(cache.get(THROUGHPUT, {}).get(name))
    if found is not None:
        return found
    if progress:
        progress(f"[plan] measuring {name}: four reference steps, the fastest of {reference.REPEATS} or more "
                 f"repeats each (once; cached in {_cache_path()})")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        found = reference.measure(device)
    finally:
        torch.set_num_threads(before)
    cache.setdefault(THROUGHPUT, {})[name] = found.to_json()
    _update_cache(THROUGHPUT, "", {name: found.to_json()})
    return found


def engine_time(bench: dict[str, dict], counts: dict[str, StepCount], rates: Throughput) -> float:
    """Seconds per step the engine spends beyond the counted work on this GPU: the median over the
    bench's runs of their measured step time less the model's (never below 0)."""
    excess = [1.0 / float(rec["it_per_s"]) - rates.step_s(counts[sig], engine=False)
              for sig, rec in bench.items() if sig in counts]
    return max(0.0, statistics.median(excess)) if excess else 0.0


_PENDING: list[PlannedRun] = []  # the runs forked counting processes count (inherited, not pickled)


def _count_pending(i: int) -> dict:
    return count_step(_PENDING[i]).to_json()


def _count_in_parallel(runs: list[PlannedRun]) -> list[StepCount] | None:
    """The runs' counts from one process per core (each count is single-threaded Python, a few tenths of
    a second); None where processes cannot be forked."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(len(runs), os.cpu_count() or 1, 4)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    first = count_step(runs[0])  # here, before forking: what a first count loads, the workers inherit
    _PENDING[:] = runs[1:]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [first, *(StepCount.from_json(c) for c in pool.map(_count_pending, range(len(runs) - 1)))]
    finally:
        _PENDING.clear()


def _count_all(missing: list[tuple[PlannedRun, int]], cache: dict, deadline: float | None,
               progress) -> tuple[dict[str, StepCount], list[str]]:
    """run id -> its step's count (cached, else counted now unless past `deadline`), and the runs left.
    Without a deadline, the steps not counted yet are counted by one process per core."""
    known = cache.setdefault(COUNTS, {})
    todo = {}
    for run, _ in missing:
        todo.setdefault(step_signature(run), run)
    todo = {sig: run for sig, run in todo.items() if StepCount.from_json(known.get(sig)) is None}
    if todo and progress:
        progress(f"[plan] counting the work of {len(todo)} distinct training step(s) (once; cached)")
    if len(todo) > 3 and deadline is None:
        found = _count_in_parallel(list(todo.values()))
        if found is not None:
            known.update({sig: c.to_json() for sig, c in zip(todo, found, strict=True)})
    counts, unpriced, fresh = {}, [], bool(todo)
    for run, _ in missing:
        if deadline is not None and time.monotonic() > deadline and \
                StepCount.from_json(known.get(step_signature(run))) is None:
            unpriced.append(run.id)
            continue
        counts[run.id] = counted(run, cache)
    if fresh:
        _update_cache(COUNTS, "", dict(known))
    return counts, unpriced


def _bench_notes(cost: Cost, bench: dict[str, dict], name: str) -> list[str]:
    """What the GPU bench measured on this device, as the plan prints it."""
    if not bench:
        return []
    when = max(str(rec.get("measured", "")) for rec in bench.values())
    n = sum(1 for others in cost.beside.values() if "bench" in others)
    text = (f"the GPU bench measured {len(bench)} run kind(s) through the engine on {name} "
            f"(`python -m repro.bench --only gpu`, {when or '?'}): {n} of these runs shown beside the model")
    if cost.throughput is not None and cost.throughput.engine_s:
        text += f"; the engine's own {cost.throughput.engine_s * 1e3:,.2f} ms per step is added to every run"
    best: tuple[float, int, str] = (1.05, 1, "")
    for rec in bench.values():
        for k, gain in (rec.get("sharing_speedup") or {}).items():
            best = max(best, (float(gain), int(k), str(rec.get("run", "?"))))
    if best[1] > 1:
        text += (f"; with --runs-per-gpu {best[1]} the bench ran {best[0]:.1f}x the iterations per second "
                 f"on it ({best[2]})")
    return [text]


def estimate(plan: Plan, out, device: str = "cpu", progress=print, budget_s: float | None = None,
             method: str = "model", fleets: list[list[PlannedRun]] | None = None) -> Cost:
    """Seconds left for every run of `plan` that is not done, priced by `method` ("model" or "timed";
    the other figures this device has are kept in `Cost.beside`). With `budget_s`, nothing is counted
    or timed after that many seconds: the runs left are listed in `Cost.unpriced` (as is a run whose
    timed step does not fit in the GPU's memory). With `fleets` (`repro.plan.fleets.group`), the model
    prices a fleet's step as its members' work batched into one step, and each member at its share of
    the fleet's time; a run with `run.cuda_graph` on a GPU issues a few launches per step."""
    if method not in ("model", "timed"):
        raise ValueError(f"unknown estimate {method!r}")
    deadline = None if budget_s is None else time.monotonic() + budget_s
    cache = read_cache()
    missing = [(run, st.total - st.iteration) for run in plan.ordered()
               if (st := status(run, out)).state != "done"]
    counts, unpriced = _count_all(missing, cache, deadline, progress)
    threads = sorted({run_threads(r.cfg) for r, _ in missing if r.id in counts})
    if not threads:  # nothing to price
        return Cost(device_name(device), 0.0, {}, {}, unpriced=unpriced, method=method)
    rates = {}
    for t in threads:
        r = throughput(device, t, cache, progress)
        bench = bench_figures(device_name(device, t), cache)
        known = {sig: c for sig, raw in cache.get(COUNTS, {}).items()
                 if sig in bench and (c := StepCount.from_json(raw)) is not None}
        rates[t] = dataclasses.replace(r, engine_s=engine_time(bench, known, r))
    cost = Cost(device_name(device, threads[0] if len(threads) == 1 else None), 0.0, {}, {},
                unpriced=unpriced, method=method, throughput=rates[threads[0]], counts=counts)
    fleet_of = {r.id: len(f) for f in fleets or [] for r in f if len(f) > 1}
    for run, left in missing:
        if run.id not in counts:
            continue
        name, sig = device_name(device, run_threads(run.cfg)), step_signature(run)
        size = fleet_of.get(run.id, 1)
        model_rate = size / model_step_s(rates[run_threads(run.cfg)], counts[run.id], run.cfg, size)
        timed = cache.get(TIMED, {}).get(name, {}).get(sig)
        if timed is None and method == "timed":
            timed = None if deadline is not None and time.monotonic() > deadline else \
                _time_step(run, device, name, progress)
            if timed is None:
                cost.unpriced.append(run.id)
                continue
            cache.setdefault(TIMED, {}).setdefault(name, {})[sig] = timed
        figures = {"model": model_rate}
        if timed is not None:
            figures["timed"] = float(timed["it_per_s"])
        if (bench := bench_figures(name, cache).get(sig)) is not None:
            figures["bench"] = float(bench["it_per_s"])
        rate = figures.pop(method)
        cost.source[run.id], cost.it_per_s[run.id], cost.per_run[run.id] = method, rate, left / rate
        if figures:
            cost.beside[run.id] = {src: left / r for src, r in figures.items()}
    cost.seconds = sum(cost.per_run.values())
    cost.notes = _bench_notes(cost, bench_figures(cost.device, cache), cost.device) if len(threads) == 1 \
        else []
    if not device.startswith("cuda") and max(threads) > 1:  # one core's rates: an upper bound (reference.py)
        n = max(threads)
        cost.notes.append(f"priced at one core's rates: runs using {n} threads may take as little as 1/{n} "
                          "of this on otherwise idle cores, never more")
    return cost


def model_step_s(rates: Throughput, count: StepCount, cfg: TrainConfig, members: int = 1) -> float:
    """The model's seconds of one step of a run (of a fleet of `members` such runs: the whole fleet's
    step), replayed as a CUDA graph when the run asks for one on a GPU."""
    step = count.fleet(members) if members > 1 else count
    if cfg.run.cuda_graph and rates.gpu:
        step = step.graphed()
    return rates.step_s(step)


def _time_step(run: PlannedRun, device: str, name: str, progress) -> dict | None:
    """A timed step of `run`, cached; None when it does not fit in the GPU's memory."""
    if progress:
        progress(f"[plan] timing a {run.cfg.kind} step of {run.cfg.model.name} x{run.cfg.data.scale} on "
                 f"{name} ...")
    try:
        rate = measure_step(run, device)
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
        if "out of memory" not in str(exc):
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if progress:
            progress(f"[plan] {run.name}: its step does not fit in {name}'s memory; not timed")
        return None
    rec = {"it_per_s": rate, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _update_cache(TIMED, name, {step_signature(run): rec})
    return rec


def human(seconds: float) -> str:
    """3 h 20 min, 2.5 days, 40 s."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} days"

"""What the missing part of a plan costs, from iterations per second measured on this device.

Each distinct training step (kind, network and its settings, scale, patch, batch; a student's teacher)
is timed once for a few steps on random tensors of the run's shapes (no data loading: the engine's data
wait is a few percent, `python -m repro.bench --only data_speed`), and the figure is cached per device
in `~/.cache/dssd-repro/speed.json`, so `repro plan` measures each step only the first time. On a GPU the
step is timed at the run's own patch size; on a CPU, where a paper-size step of the large comparison
networks takes minutes, at most at `CPU_PROBE_PATCH` pixels, scaled by the patch area (convolutions cost
in proportion to the pixels).

Where `python -m repro.bench --only gpu` has measured runs on this device (the real engine at paper
settings, data loading included), its figures are kept in the same file under "bench" (device name ->
step signature -> record) and `estimate` uses them before timing a step: `repro plan --profile paper` on
that GPU then prices those runs at what the engine does, and times the other runs' steps as before.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from repro.io_utils import atomic_write_text
from repro.paths import default_cache_root
from repro.plan.runs import Plan, PlannedRun, status
from repro.runs.config import TrainConfig

WARMUP, STEPS = 1, 2
SLOW_STEP_S = 5.0  # a step this slow is timed once (after its warm-up) rather than STEPS times
CPU_PROBE_PATCH = 48  # HR patch side a CPU times a step at (a multiple of every scale's level factors)
BENCH = "bench"  # the key of the GPU bench's figures in speed.json (device names start cpu: or cuda:)


def device_name(device: str) -> str:
    """A stable name of the device iterations are timed on (the GPU's, or the CPU's and its threads)."""
    import torch

    from repro.provenance import cpu_model

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name()}"
    return f"cpu:{cpu_model()} ({torch.get_num_threads()} threads)"


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


def probe_patch(cfg: TrainConfig, device: str) -> int:
    """The HR patch side a step is timed at on `device` (see the module's docstring)."""
    return cfg.data.hr_patch if device.startswith("cuda") else min(cfg.data.hr_patch, CPU_PROBE_PATCH)


def _batch(cfg: TrainConfig, device: str) -> dict:
    import torch

    from repro.scales import level_factors

    c, p, n = cfg.data.in_channels, probe_patch(cfg, device), cfg.optim.batch_size
    targets = [torch.rand(n, c, p // f, p // f, device=device) for f in level_factors(cfg.data.scale)]
    return {"hr": torch.rand(n, c, p, p, device=device), "lr": targets[-1], "targets": targets}


def measure_step(run: PlannedRun, device: str = "cpu") -> float:
    """Iterations per second of the run's training step (forward, backward, Adam) on `device`."""
    import torch

    from repro.models import create
    from repro.train import objectives

    cfg = run.cfg
    teacher = None
    if run.teacher is not None:
        tcfg = run.teacher.cfg
        teacher = create(tcfg.model.name, scale=tcfg.data.scale, **tcfg.network_settings()).eval()
    obj, frozen, _ = objectives.build(cfg, teacher)
    obj.to(device).train()
    if frozen is not None:
        frozen.to(device)
    params = [p for p in obj.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    batch = _batch(cfg, device)

    def step() -> float:
        t0 = time.perf_counter()
        loss, _ = obj({**batch, "teacher": frozen(batch)} if frozen is not None else batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    area = (cfg.data.hr_patch / probe_patch(cfg, device)) ** 2  # scale a smaller probe to the real patch
    threads = torch.get_num_threads()
    if cfg.run.threads > 0:  # time the step with the threads the run will use
        torch.set_num_threads(cfg.run.threads)
    try:
        first = max(step() for _ in range(WARMUP))
        if first > SLOW_STEP_S:
            return 1.0 / (step() * area)
        return STEPS / (sum(step() for _ in range(STEPS)) * area)
    finally:
        torch.set_num_threads(threads)


@dataclass
class Cost:
    device: str
    seconds: float  # of the missing iterations of every run not done (and priced)
    per_run: dict[str, float]  # run id -> seconds left
    it_per_s: dict[str, float]  # run id -> measured iterations per second
    source: dict[str, str] = field(default_factory=dict)  # run id -> "bench" (engine) or "step" (timed)
    unpriced: list[str] = field(default_factory=list)  # run ids left out: `budget_s` ran out


def _cache_path() -> Path:
    return default_cache_root() / "speed.json"


def read_cache() -> dict:
    """speed.json: {device name: {step signature: it/s}, "bench": {device name: {signature: record}}}."""
    try:
        cache = json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(cache: dict) -> None:
    atomic_write_text(_cache_path(), json.dumps(cache, indent=1, sort_keys=True) + "\n")


def bench_figures(name: str, cache: dict | None = None) -> dict[str, dict]:
    """The GPU bench's records for device `name`: step signature -> {"it_per_s", "run", "measured", ...}."""
    cache = read_cache() if cache is None else cache
    found = cache.get(BENCH, {}).get(name, {})
    return {sig: rec for sig, rec in found.items() if isinstance(rec, dict) and rec.get("it_per_s", 0) > 0}


def write_bench_figures(name: str, records: dict[str, dict]) -> Path:
    """Keep the bench's `records` (signature -> record with "it_per_s") for device `name`, replacing
    what an earlier bench wrote for those signatures."""
    cache = read_cache()
    cache.setdefault(BENCH, {}).setdefault(name, {}).update(records)
    _write_cache(cache)
    return _cache_path()


def _free_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sharing_hint(bench: dict[str, dict]) -> str:
    """What the bench measured of K runs sharing this GPU, if it gained: the plan's time assumes one
    run at a time."""
    best: tuple[float, int, str] = (1.05, 1, "")
    for rec in bench.values():
        for k, gain in (rec.get("sharing_speedup") or {}).items():
            best = max(best, (float(gain), int(k), str(rec.get("run", "?"))))
    if best[1] == 1:
        return ""
    return (f"; with --runs-per-gpu {best[1]} the bench ran {best[0]:.1f}x the iterations per second on it "
            f"({best[2]})")


def estimate(plan: Plan, out, device: str = "cpu", progress=print, budget_s: float | None = None) -> Cost:
    """Seconds left for every run of `plan` that is not done: from the GPU bench's figures for this
    device where it measured the run's step, else from measured (or cached) step speeds. With
    `budget_s`, no step is timed after that many seconds: the runs left are listed in `Cost.unpriced`
    (as is a run whose step does not fit in the GPU's memory)."""
    started = time.monotonic()
    cache = read_cache()
    name = device_name(device)
    speeds = cache.setdefault(name, {})
    bench = bench_figures(name, cache)
    per_run, rates, source, unpriced = {}, {}, {}, []
    for run in plan.ordered():
        st = status(run, out)
        if st.state == "done":
            continue
        sig = step_signature(run)
        if sig in bench:
            rate, source[run.id] = float(bench[sig]["it_per_s"]), "bench"
        else:
            if sig not in speeds:
                if budget_s is not None and time.monotonic() - started > budget_s:
                    unpriced.append(run.id)
                    continue
                if progress:
                    progress(f"[plan] timing a {run.cfg.kind} step of {run.cfg.model.name} "
                             f"x{run.cfg.data.scale} on {name} ...")
                try:
                    speeds[sig] = measure_step(run, device)
                except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
                    if "out of memory" not in str(exc):
                        raise
                    _free_cuda()
                    unpriced.append(run.id)
                    if progress:
                        progress(f"[plan] {run.name}: its step does not fit in {name}'s memory; not priced")
                    continue
                _write_cache(cache)
            rate, source[run.id] = speeds[sig], "step"
        rates[run.id] = rate
        per_run[run.id] = (st.total - st.iteration) / rate
    used = sum(1 for v in source.values() if v == "bench")
    if used and progress:
        when = max(str(rec.get("measured", "")) for rec in bench.values())
        progress(f"[plan] {used} of {len(per_run)} run(s) priced from the GPU bench's engine figures for "
                 f"{name} (`python -m repro.bench --only gpu`, measured {when or '?'}); the others from "
                 "timed training steps" + _sharing_hint(bench))
    return Cost(name, sum(per_run.values()), per_run, rates, source, unpriced)


def human(seconds: float) -> str:
    """3 h 20 min, 2.5 days, 40 s."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"

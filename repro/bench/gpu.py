"""Training throughput on this GPU at the paper's settings (x4, 192x192 HR patches, batch 16, the `paper`
profile), what each speed setting buys, how many runs should share the GPU, and what the tables cost.

Through the real engine (`repro.train.engine.train`, it/s read from metrics.csv after a warm-up), on
the embedded `sample` photos unless DIV2K is under the data root (full size only; the output says which),
for six runs the tables train: the FSRCNN baseline, the DSSD and PISR teachers, the DSSD student, VDSR
and IDN. For each: it/s with every speed setting off (the paper profile as it is), then with each on
(`run.amp`, `run.channels_last`, `run.compile` modes, `data.on_device`, `run.deterministic=false`) and
all together (amp, channels_last, on_device, compile default), with the memory allocated and the GPU's
utilisation (nvidia-smi). Then the aggregate it/s of K = 1, 2, 4, 8 runs sharing the GPU as separate
processes (`repro reproduce --runs-per-gpu K`). Then the GPU hours of each table and of `all` at paper
settings (the runs' missing iterations / it/s: the bench's figure where it measured the run, else a timed
step, `repro.plan.cost`), one run at a time and with the K that gives the most throughput. The
settings-off figures go to the planner's cache, so `repro plan --profile paper` on this GPU uses them.

Sizes: quick (`REPRO_BENCH_QUICK=1 python -m repro.bench --only gpu`, or `python -m repro.bench.gpu
--quick`): about 4 minutes, the sharing of two runs, compile default only, whatever the time budget
leaves in order of importance; full: everything, an hour at most. Without CUDA: prints "no CUDA" and
returns {"cuda": False}.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.bench._gpu_parts import GpuSampler, markdown, rate_after_warmup, share, smi_id
from repro.specs.base import RunSpec, baseline, student
from repro.specs.table4 import dssd_teacher, pisr_teacher

KINDS: dict[str, RunSpec] = {
    "fsrcnn_baseline": baseline("fsrcnn", 4),
    "dssd_teacher": dssd_teacher("fsrcnn"),
    "pisr_teacher": pisr_teacher("fsrcnn"),
    "dssd_student": student(dssd_teacher("fsrcnn")),
    "vdsr": baseline("vdsr", 4),
    "idn": baseline("idn", 4),
}
SHARES = (1, 2, 4, 8)
LOG_EVERY = 10  # a metrics row (one host read of the loss) per 10 steps: the GPU runs ahead as in a run
PROJECTED = ("table1", "table2", "table3", "table4", "appendix1", "all")


@dataclass(frozen=True)
class Sizes:
    name: str
    budget_s: float  # the whole bench; what does not fit is skipped, least important first
    target_s: float  # timed seconds of training per measurement
    warmup: int  # iterations left out (compile, cuDNN's first calls, the loader); a multiple of LOG_EVERY
    min_iterations: int
    max_iterations: int
    share_kinds: tuple[str, ...]
    compile_modes: tuple[str, ...]
    shares: tuple[int, ...] = SHARES  # K runs at once
    kinds: tuple[str, ...] = tuple(KINDS)  # the runs measured (a student after its teacher)
    projection_s: float = 30.0  # at least this long to time the steps of the runs the bench did not measure


QUICK = Sizes("quick", 200, 2.0, 10, 30, 3000, ("fsrcnn_baseline", "dssd_teacher"), ("default",))
FULL = Sizes("full", 3600, 15.0, 30, 200, 30000, tuple(KINDS), ("default", "reduce-overhead", "max-autotune"))


def engine_support() -> dict[str, bool]:
    """Whether the training code reads `run.compile` and `data.on_device` (settings that exist before
    the engine uses them would measure the same as off)."""
    import pkgutil

    import repro.train

    text = ""
    for m in pkgutil.iter_modules(repro.train.__path__):
        spec = importlib.util.find_spec(f"repro.train.{m.name}")
        if spec is not None and spec.origin:
            text += Path(spec.origin).read_text()
    patches = importlib.util.find_spec("repro.data.device_patches") is not None
    return {"compile": "run.compile" in text, "on_device": patches and "on_device" in text}


def options(sizes: Sizes, support: dict[str, bool]) -> dict[str, list[str] | str]:
    """Option name -> its settings, or why it is not available."""
    compile_ok = support["compile"] or "not available (the training engine does not read run.compile)"
    device_ok = support["on_device"] or "not available (repro.data.device_patches or its use is missing)"
    out: dict[str, list[str] | str] = {
        "amp": ["run.amp=true"], "channels_last": ["run.channels_last=true"],
        "on_device": ["data.on_device=true"] if device_ok is True else device_ok,
        "nondeterministic": ["run.deterministic=false"]}
    for mode in sizes.compile_modes:
        out[f"compile:{mode}"] = [f"run.compile={mode}"] if compile_ok is True else compile_ok
    out["all"] = ["run.amp=true", "run.channels_last=true"] + (["data.on_device=true"] if device_ok is True
                                                             else []) \
        + (["run.compile=default"] if compile_ok is True else [])
    return out


def training_source(sizes: Sizes) -> tuple[str, str]:
    """("div2k" | "sample", what the output says about it)."""
    from repro.data.manifests import get_manifest
    from repro.data.verify import folder_status
    from repro.paths import data_root

    root = data_root()
    present = folder_status(get_manifest("div2k"), root) == "present"
    if present and sizes.name == "full":
        return "div2k", f"div2k (DIV2K 0001-0800 under {root})"
    why = "quick size" if present else f"DIV2K absent under {root}"
    return "sample", f"sample (the embedded photos, no download; {why}): throughput, not a training result"


def _steps(n: float) -> int:
    """`n` iterations rounded up to whole metrics rows."""
    return LOG_EVERY * max(1, math.ceil(n / LOG_EVERY))


def _error(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"[:300]


def project_hours(per_run_s: dict[str, float], kind_of: dict[str, str | None],
                  speedups: dict[str, dict[int, float]], ks: tuple[int, ...]) -> dict[int, float]:
    """GPU hours at each K: a run's seconds alone divided by its kind's measured sharing speedup (the
    aggregate rate of K at once over one alone); a kind whose sharing was not measured gains nothing."""
    return {k: sum(s / speedups.get(kind_of.get(rid) or "", {}).get(k, 1.0) for rid, s in per_run_s.items())
            / 3600 for k in ks}


class Bench:
    """One bench session: measurements in `folder`, on `device`, within `sizes.budget_s`."""

    def __init__(self, sizes: Sizes, folder: Path, device: str = "cuda", profile: str = "paper",
                 base: tuple[str, ...] = (), source: str = "sample") -> None:
        self.sizes, self.folder, self.device, self.profile = sizes, folder, device, profile
        self.base, self.source = base, source
        self.started = time.monotonic()
        self.iterations: dict[str, int] = {}
        self.rates: dict[str, float] = {}  # kind -> it/s with everything off
        self.cfgs: dict[str, Any] = {}  # kind -> its settings-off config
        self.teacher: tuple[Any, str] | None = None  # the DSSD teacher's config and folder (for students)
        self.gpu = smi_id() if device.startswith("cuda") else None

    def left(self) -> float:
        return self.sizes.budget_s - (time.monotonic() - self.started)

    def config(self, key: str, iterations: int, extra: list[str]) -> Any:
        from repro.runs.config import resolve

        spec = KINDS[key]
        settings = [*spec.settings, f"data.source={self.source}", "optim.epochs=1",
                    f"optim.iters_per_epoch={iterations}", f"run.log_every={LOG_EVERY}",
                    f"run.checkpoint_every={iterations}", "val.every=0", "val.sets=",
                    f"run.device={self.device}", *self.base, *extra]
        if spec.kind == "student":
            if self.teacher is None:
                raise RuntimeError("the DSSD teacher was not trained")
            return resolve(self.profile, kind="student", overrides=settings, teacher=self.teacher[0])
        return resolve(self.profile, kind=spec.kind, model=spec.model, scale=spec.scale, overrides=settings)

    def signature(self, key: str) -> str:
        """The planner's step signature of `key`'s settings-off run (what a plan's run matches)."""
        from repro.plan.cost import step_signature
        from repro.plan.runs import PlannedRun

        spec = KINDS[key]
        teacher = PlannedRun(self.teacher[0], spec.teacher, 0) if spec.teacher and self.teacher else None
        return step_signature(PlannedRun(self.cfgs[key], spec, 0, teacher))

    def measure(self, key: str, option: str, extra: list[str], iterations: int) -> dict[str, Any]:
        """One training of `key` with `extra` settings in this process: it/s after warm-up, memory, GPU."""
        import torch

        from repro.runs.folder import read_metrics
        from repro.train.engine import train

        cuda = self.device.startswith("cuda")
        folder = self.folder / f"{key}-{option.replace(':', '-')}-{iterations}"
        torch.use_deterministic_algorithms(False)  # the engine sets both from the run's settings; reset
        torch.backends.cudnn.benchmark = False  # what an earlier measurement left
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            cfg = self.config(key, iterations, extra)
            teacher_dir = self.teacher[1] if cfg.kind == "student" and self.teacher else None
            with GpuSampler(self.gpu) as sampler, open(os.devnull, "w") as null, \
                    contextlib.redirect_stdout(null):
                train(cfg, out=folder, teacher_dir=teacher_dir, progress=False)
        except Exception as exc:
            return {"error": _error(exc)}
        finally:
            if any(s.startswith("run.compile=") for s in extra):
                with contextlib.suppress(Exception):
                    torch._dynamo.reset()  # the next measurement compiles afresh
        rate, timed = rate_after_warmup(read_metrics(folder), self.sizes.warmup)
        record: dict[str, Any] = {"it_per_s": round(rate, 2), "timed_iterations": timed, "cfg": cfg,
                                  "wall_s": round(time.perf_counter() - start, 1), "folder": folder}
        if cuda:
            record["max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            record["gpu"] = sampler.summary()
        return record

    def off(self, key: str) -> dict[str, Any]:
        """Everything off: a probe, then (if it was short) again for `target_s` seconds."""
        s = self.sizes
        rec = self.measure(key, "off", [], s.warmup + _steps(s.min_iterations))
        rate = rec.get("it_per_s") or 0.0
        n = _steps(max(s.min_iterations, min(s.max_iterations, rate * s.target_s)))
        if rate and n > s.min_iterations * 1.5 and self.left() > n / rate + 30:
            longer = self.measure(key, "off", [], s.warmup + n)
            rec = longer if longer.get("it_per_s") else rec
        if rec.get("it_per_s"):
            self.rates[key], self.iterations[key], self.cfgs[key] = rec["it_per_s"], s.warmup + n, rec["cfg"]
            if key == "dssd_teacher":
                self.teacher = (rec["cfg"], str(rec["folder"]))
        return rec

    def sharing(self, key: str) -> dict[str, Any]:
        """K = 1, 2, 4, 8 processes training `key` at once (the budget permitting)."""
        out: dict[str, Any] = {}
        rate, s = self.rates[key], self.sizes
        for k in s.shares:
            n = s.warmup + _steps(max(s.min_iterations, min(s.max_iterations, rate * s.target_s / k)))
            need = 20 + 1.5 * n * k / rate  # start-up, and no gain from sharing at worst
            if self.left() < need:
                out[str(k)] = {"skipped": f"time budget ({self.left():.0f} s left, {need:.0f} s needed)"}
                continue
            teacher = self.teacher[1] if KINDS[key].kind == "student" and self.teacher else None
            cfg = self.config(key, n, [])
            out[str(k)] = share(cfg.to_dict(), k, self.folder / f"share-{key}-{k}", warmup=s.warmup,
                                teacher_dir=teacher, timeout_s=max(60.0, min(600.0, 3 * need)), gpu=self.gpu)
        one = (out.get("1") or {}).get("aggregate_it_per_s")
        for rec in out.values():
            if one and rec.get("aggregate_it_per_s"):
                rec["speedup"] = round(rec["aggregate_it_per_s"] / one, 2)
        return out

    def project(self, speedups: dict[str, dict[int, float]]) -> dict[str, Any]:
        """GPU hours of each table and of `all` at paper settings, one run at a time and at the best K."""
        from repro.plan.cost import estimate, step_signature
        from repro.plan.runs import make_plan
        from repro.specs import tables

        kinds = {self.signature(key): key for key in self.cfgs}
        ks = tuple(sorted({1, *(k for s in speedups.values() for k in s)}))
        out: dict[str, Any] = {}
        until = time.monotonic() + max(self.sizes.projection_s, self.left())  # steps the bench did not time
        for name in ("all", *(t for t in PROJECTED if t != "all")):  # the tables reuse all's timings
            plan = make_plan(tables(name), "paper")
            try:
                cost = estimate(plan, self.folder / "no-runs", self.device, progress=None,
                                budget_s=until - time.monotonic())
            except Exception as exc:  # e.g. a large network's step out of memory
                out[name] = {"error": _error(exc)}
                continue
            kind_of = {run.id: kinds.get(step_signature(run)) for run in plan.runs.values()}
            hours = project_hours(cost.per_run, kind_of, speedups, ks)
            iterations = sum(r.cfg.optim.iterations for r in plan.runs.values())
            out[name] = {"runs": len(plan.runs), "iterations_m": round(iterations / 1e6, 1),
                         # runs the bench measured (shown beside the model) / priced by the model
                         "priced_by_bench": sum(1 for b in cost.beside.values() if "bench" in b),
                         "priced_by_step": len(cost.per_run),
                         "unpriced": len(cost.unpriced),
                         "gpu_hours": {str(k): round(h, 1) for k, h in hours.items()}}
        best = min(ks, key=lambda k: (out.get("all", {}).get("gpu_hours") or {}).get(str(k), float("inf")))
        for rec in out.values():
            if "gpu_hours" in rec:
                rec["gpu_hours_best_k"] = rec["gpu_hours"][str(best)]
        return {"best_k": best, "tables": {name: out[name] for name in PROJECTED}}


def _option(bench: Bench, key: str, option: str, settings: list[str] | str) -> dict[str, Any]:
    """`key` trained with one speed setting (or why not)."""
    if isinstance(settings, str) or key not in bench.rates:
        return {"skipped": settings if isinstance(settings, str) else "settings off failed"}
    n = bench.iterations[key]
    compiling = any(s.startswith("run.compile=") for s in settings)
    need = 15 + 2 * n / bench.rates[key] + (90 if compiling else 0)  # a compile takes a minute or more
    if bench.left() < need:
        return {"skipped": f"time budget ({bench.left():.0f} s left)"}
    rec = bench.measure(key, option, settings, n)
    if rec.get("it_per_s"):
        rec["speedup_vs_off"] = round(rec["it_per_s"] / bench.rates[key], 2)
    return rec


def measure_all(sizes: Sizes, folder: Path, device: str = "cuda", profile: str = "paper",
                base: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every measurement of the bench, most important first, within `sizes.budget_s` (`device`,
    `profile` and `base` settings other than a GPU at paper settings: for tests on a CPU)."""
    import torch

    from repro.plan.cost import device_name, write_bench_figures
    from repro.provenance import environment

    source, source_note = training_source(sizes)
    bench = Bench(sizes, folder, device=device, profile=profile, base=base, source=source)
    support = engine_support()
    cuda = device.startswith("cuda")
    memory = torch.cuda.get_device_properties(0).total_memory if cuda else 0
    result: dict[str, Any] = {
        "cuda": cuda, "size": sizes.name, "gpu": torch.cuda.get_device_name() if cuda else device,
        "device": device_name(device), "environment": environment(device),
        "gpu_memory_total_mib": round(memory / 2**20),
        "settings": {"profile": profile, "base": list(base), "warmup": sizes.warmup, "log_every": LOG_EVERY,
                     "budget_s": sizes.budget_s},
        "source": source_note, "engine_reads": support, "runs": {key: {} for key in sizes.kinds},
        "sharing": {}}
    runs = result["runs"]
    for key in sizes.kinds:  # settings off first (the teacher before its student): the projection needs them
        runs[key]["off"] = bench.off(key)
    for cfg in list(bench.cfgs.values())[:1]:
        result["settings"].update(scale=cfg.data.scale, hr_patch=cfg.data.hr_patch,
                                  batch_size=cfg.optim.batch_size, deterministic=cfg.run.deterministic,
                                  num_workers=cfg.data.num_workers)
    opts = options(sizes, support)
    # then, most telling first (what does not fit the budget is skipped): one run kind shared by K, amp,
    # the other kinds shared, all together, each other setting
    first, *others = [k for k in sizes.share_kinds if k in bench.rates] or [None]
    tasks = [("share", first), "amp", *(("share", k) for k in others), "all", "channels_last", "on_device",
             "nondeterministic", *(f"compile:{m}" for m in sizes.compile_modes)]
    for task in tasks:
        if isinstance(task, tuple):
            if task[1] is not None:
                result["sharing"][task[1]] = bench.sharing(task[1])
            continue
        for key in sizes.kinds:
            runs[key][task] = _option(bench, key, task, opts[task])
    speedups = {key: {int(k): r["speedup"] for k, r in rec.items() if r.get("speedup")}
                for key, rec in result["sharing"].items()}
    try:  # the figures for `repro plan` on this GPU
        records = {bench.signature(key): {"it_per_s": bench.rates[key], "run": key, "source": source,
                                          "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "size": sizes.name, "sharing_speedup": speedups.get(key, {})}
                   for key in bench.rates}
        result["cache"] = str(write_bench_figures(device_name(device), records))
    except Exception as exc:  # the measurements are kept whatever goes wrong after them
        result["cache"] = f"not written: {_error(exc)}"
    try:  # what the tables cost here
        result["projection"] = bench.project(speedups)
    except Exception as exc:
        result["projection"] = {"error": _error(exc)}
    for rec in runs.values():
        for r in rec.values():
            r.pop("cfg", None), r.pop("folder", None)
    result["elapsed_s"] = round(time.monotonic() - bench.started, 1)
    return json.loads(json.dumps(result, default=str))  # plain data (the bench runner writes it as is)


def run(quick: bool | None = None) -> dict:
    """The bench (quick with `quick` or REPRO_BENCH_QUICK=1); {"cuda": False} without CUDA."""
    import torch

    if not torch.cuda.is_available():
        why = "CPU-only torch build" if torch.version.cuda is None else "no CUDA device visible"
        print(f"no CUDA ({why}, torch {torch.__version__}): the GPU bench needs a CUDA device", flush=True)
        return {"cuda": False, "reason": why}
    if quick is None:
        quick = os.environ.get("REPRO_BENCH_QUICK", "") not in ("", "0")
    with tempfile.TemporaryDirectory(prefix="repro-bench-gpu-") as tmp:
        result = measure_all(QUICK if quick else FULL, Path(tmp))
    print(markdown(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    from repro.io_utils import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m repro.bench.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the quick size (about 4 minutes)")
    p.add_argument("--out", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    result = run(quick=args.quick or None)
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"gpu": result}, indent=2, default=str) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

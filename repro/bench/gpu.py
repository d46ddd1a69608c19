"""Training throughput on this GPU at the paper's settings (x4, 192x192 HR patches, batch 16, the `paper`
profile), what each speed setting buys, how many runs should share the GPU, and what the tables cost.

Through the real engine (`repro.train.engine.train`, it/s read from metrics.csv after a warm-up), on
the embedded `sample` photos unless DIV2K is under the data root (full size only; the output says which),
for six runs the tables train: the FSRCNN baseline, the DSSD teacher, the DSSD student, the PISR teacher,
VDSR and IDN. Most telling first, so that a short budget still answers the questions that matter:
  1. `all`: every speed setting together (the whole step as a CUDA graph, the set on the device, bf16
     autocast, channels-last, fused Adam, deterministic algorithms off), for every run;
  2. `all - graph`: the same without the CUDA graph (what the graph buys on top);
  3. `off`: the paper profile as it is (the reference of every speed-up, and the planner's figure);
  4. each setting alone: `cuda_graph`, `on_device`, `amp`, `channels_last`, `fused`,
     `nondeterministic`, then `run.compile` modes;
  5. K = 1, 2, 4, 8 runs sharing the GPU as separate processes (`repro reproduce --runs-per-gpu K`),
     with every speed setting;
then the GPU hours of Tables 1-3, Tables 1-4, `all` and each table at paper settings: as the settings
are (off), with every speed setting (each run's kind's measured speed-up over off), and with the best K
on top. The settings-off figures go to the planner's cache, so `repro plan --profile paper` on this GPU
uses them.

Sizes: quick (`REPRO_BENCH_QUICK=1 python -m repro.bench --only gpu`, or `python -m repro.bench.gpu
--quick`): about 4 minutes, the sharing of two runs, compile default only, whatever the time budget
leaves in order of importance; full: everything, an hour at most. Without CUDA: prints "no CUDA" and
returns {"cuda": False}.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.bench._gpu_parts import (
    GpuSampler,
    markdown,
    project_hours,
    rate_after_warmup,
    share,
    smi_id,
    speedup_at,
)
from repro.specs import ALL, paper_tables
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
# what the projection prices: the groups of the paper's tables a reader asks about first (Tables 1-3 are
# the ablations of FSRCNN-sized networks, Table 4 adds VDSR and IDN), `all`, then each table of the paper
PROJECTED: dict[str, tuple[str, ...]] = {
    "tables 1-3": ("table1", "table2", "table3"), "tables 1-4": ("table1", "table2", "table3", "table4"),
    ALL: (ALL,), **{name: (name,) for name in paper_tables()}}


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
    fleets: tuple[int, ...] = (1, 16)  # fleet sizes measured (repro.train.fleet), with every setting
    fleet_kinds: tuple[str, ...] = ("fsrcnn_baseline", "dssd_student")


QUICK = Sizes("quick", 200, 2.0, 10, 30, 3000, ("fsrcnn_baseline", "dssd_teacher"), ("default",))
FULL = Sizes("full", 3600, 15.0, 30, 200, 30000, tuple(KINDS), ("default", "reduce-overhead", "max-autotune"),
             fleets=(1, 4, 16, 64))


SETTINGS = {  # each speed setting alone, as `--set` overrides
    "cuda_graph": ["run.cuda_graph=true"], "on_device": ["data.on_device=true"], "amp": ["run.amp=true"],
    "channels_last": ["run.channels_last=true"], "fused": ["optim.fused=true"],
    "nondeterministic": ["run.deterministic=false"]}


def options(sizes: Sizes) -> dict[str, list[str]]:
    """Option name -> its settings, in the order the bench measures them (after `off`)."""
    together = [s for name, settings in SETTINGS.items() if name != "cuda_graph" for s in settings]
    out = {"all": [*SETTINGS["cuda_graph"], *together], "all - graph": together, **SETTINGS}
    out.update({f"compile:{mode}": [f"run.compile={mode}"] for mode in sizes.compile_modes})
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


class Bench:
    """One bench session: measurements in `folder`, on `device`, within `sizes.budget_s`."""

    def __init__(self, sizes: Sizes, folder: Path, device: str = "cuda", profile: str = "paper",
                 base: tuple[str, ...] = (), source: str = "sample") -> None:
        self.sizes, self.folder, self.device, self.profile = sizes, folder, device, profile
        self.base, self.source = base, source
        self.started = time.monotonic()
        self.rates: dict[tuple[str, str], float] = {}  # (kind, option) -> it/s
        self.cfgs: dict[str, Any] = {}  # kind -> its settings-off config
        self.teacher: tuple[Any, str] | None = None  # a trained DSSD teacher's config and folder (students)
        self.gpu = smi_id() if device.startswith("cuda") else None

    def left(self) -> float:
        return max(0.0, self.sizes.budget_s - (time.monotonic() - self.started))

    def config(self, key: str, iterations: int, extra: list[str]) -> Any:
        from repro.runs.config import resolve

        spec = KINDS[key]
        settings = [*spec.settings, f"data.source={self.source}", "optim.epochs=1",
                    f"optim.iters_per_epoch={iterations}", f"run.log_every={LOG_EVERY}",
                    f"run.checkpoint_every={iterations}", "val.every=0", "val.sets=",
                    f"run.device={self.device}", *self.base, *extra]
        if spec.kind == "student":
            if self.teacher is None:
                raise RuntimeError("no DSSD teacher was trained")
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
        folder = self.folder / f"{key}-{option.replace(':', '-').replace(' ', '')}-{iterations}"
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

    def timed(self, key: str, option: str, extra: list[str]) -> dict[str, Any]:
        """`key` trained with `extra` settings: a probe, then (if it was short and the budget allows) a
        run of `target_s` seconds. What does not fit the budget is skipped, saying so."""
        s = self.sizes
        known = self.rates.get((key, "off")) or max((r for (k, _), r in self.rates.items() if k == key),
                                                     default=0.0)
        compiling = any(x.startswith("run.compile=") for x in extra)
        need = 20 + (90 if compiling else 0) + ((s.warmup + s.min_iterations) / known if known else 0)
        if self.left() < need:
            return {"skipped": f"time budget ({self.left():.0f} s left, {need:.0f} s needed)"}
        rec = self.measure(key, option, extra, s.warmup + _steps(s.min_iterations))
        rate = rec.get("it_per_s") or 0.0
        n = _steps(max(s.min_iterations, min(s.max_iterations, rate * s.target_s)))
        if rate and n > s.min_iterations * 1.5 and self.left() > n / rate + 30:
            longer = self.measure(key, option, extra, s.warmup + n)
            rec = longer if longer.get("it_per_s") else rec
        if rec.get("it_per_s"):
            self.rates[key, option] = rec["it_per_s"]
            if option == "off":
                self.cfgs[key] = rec["cfg"]
            if key == "dssd_teacher" and self.teacher is None:
                self.teacher = (rec["cfg"], str(rec["folder"]))
        return rec

    def sharing(self, key: str, extra: list[str]) -> dict[str, Any]:
        """K = 1, 2, 4, 8 processes training `key` with `extra` settings at once (the budget permitting)."""
        out: dict[str, Any] = {}
        rate, s = self.rates.get((key, "all")) or self.rates[key, "off"], self.sizes
        for k in s.shares:
            n = s.warmup + _steps(max(s.min_iterations, min(s.max_iterations, rate * s.target_s / k)))
            need = 20 + 1.5 * n * k / rate  # start-up, and no gain from sharing at worst
            if self.left() < need:
                out[str(k)] = {"skipped": f"time budget ({self.left():.0f} s left, {need:.0f} s needed)"}
                continue
            teacher = self.teacher[1] if KINDS[key].kind == "student" and self.teacher else None
            cfg = self.config(key, n, extra)
            out[str(k)] = share(cfg.to_dict(), k, self.folder / f"share-{key}-{k}", warmup=s.warmup,
                                teacher_dir=teacher, timeout_s=max(60.0, min(600.0, 3 * need)), gpu=self.gpu)
        one = (out.get("1") or {}).get("aggregate_it_per_s")
        for rec in out.values():
            if one and rec.get("aggregate_it_per_s"):
                rec["speedup"] = round(rec["aggregate_it_per_s"] / one, 2)
        return out

    def fleet(self, key: str, extra: list[str]) -> dict[str, Any]:
        """Fleets of N runs of `key` (seeds 0..N-1) with `extra` settings (`repro.train.fleet`): their
        aggregate it/s, and its ratio to the first size's (1: a fleet of one, a run alone)."""
        from repro.runs.folder import read_metrics
        from repro.train.fleet import Member, train_fleet

        out: dict[str, Any] = {}
        s = self.sizes
        rate = self.rates.get((key, "all")) or self.rates.get((key, "off")) or 0.0
        for size in s.fleets:
            n = s.warmup + _steps(max(s.min_iterations, min(s.max_iterations, rate * s.target_s / size)))
            need = 20 + 2 * size + (1.5 * n * size / rate if rate else 60)
            if not rate or self.left() < need:
                out[str(size)] = {"skipped": f"time budget ({self.left():.0f} s left, {need:.0f} s needed)"}
                continue
            teacher = self.teacher[1] if KINDS[key].kind == "student" and self.teacher else None
            members = [Member(self.config(key, n, [*extra, f"run.seed={seed}"]),
                              self.folder / f"fleet-{key}-{size}-{seed}", teacher) for seed in range(size)]
            try:
                with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                    train_fleet(members, progress=False)
            except Exception as exc:  # e.g. out of memory at the largest size
                out[str(size)] = {"error": _error(exc)}
                continue
            each, timed = rate_after_warmup(read_metrics(members[0].folder), s.warmup)
            out[str(size)] = {"aggregate_it_per_s": round(each * size, 1), "timed_iterations": timed}
        one = (out.get(str(s.fleets[0])) or {}).get("aggregate_it_per_s")  # the first size: 1, one run
        for rec in out.values():
            if one and rec.get("aggregate_it_per_s"):
                rec["speedup"] = round(rec["aggregate_it_per_s"] / one, 2)
        return out

    def family(self, cfg: Any) -> str | None:
        """The bench run a plan's run is closest to: the same kind, network and scale (None if none)."""
        for key, spec in KINDS.items():
            if (spec.kind, spec.model, spec.scale) == (cfg.kind, cfg.model.name, cfg.data.scale):
                return key if key in self.cfgs else None
        return None

    def speedups(self, option: str, sharing: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
        """kind -> K -> its throughput at K with `option` over one run with everything off (1.0 for K=1
        when the option was not measured)."""
        out = {}
        for key in self.cfgs:
            alone = (self.rates.get((key, option)) or self.rates[key, "off"]) / self.rates[key, "off"]
            out[key] = {1: alone, **{k: alone * g for k, g in sharing.get(key, {}).items()}}
        return out

    def project(self, sharing: dict[str, dict[int, float]],
                fleets: dict[str, dict[int, float]] | None = None) -> dict[str, Any]:
        """GPU hours of each table group at paper settings: as they are, with every speed setting, with
        every speed setting and the best K runs sharing the GPU, and with every speed setting in fleets
        (`repro plan --fleet auto`'s grouping; each fleet priced by the speed-up measured for fleets of
        its network and kind, interpolated in its size; no gain where none was measured)."""
        from repro.plan.cost import estimate, step_signature
        from repro.plan.fleets import AUTO_CUDA, group
        from repro.plan.runs import make_plan
        from repro.specs import tables

        kinds = {self.signature(key): key for key in self.cfgs}
        fast = self.speedups("all", sharing)
        ks = tuple(sorted({1, *(k for s in sharing.values() for k in s)}))
        out: dict[str, Any] = {}
        until = time.monotonic() + max(self.sizes.projection_s, self.left())  # steps the bench did not time
        for name in (ALL, *(n for n in PROJECTED if n != ALL)):  # the others reuse all's timings
            specs = [spec for part in PROJECTED[name] for spec in tables(part)]
            plan = make_plan(specs, "paper")
            try:
                cost = estimate(plan, self.folder / "no-runs", self.device, progress=None,
                                budget_s=until - time.monotonic())
            except Exception as exc:  # e.g. a large network's step out of memory
                out[name] = {"error": _error(exc)}
                continue
            kind_of = {run.id: kinds.get(step_signature(run)) for run in plan.runs.values()}
            off = project_hours(cost.per_run, kind_of, {}, (1,))[1]
            with_all = project_hours(cost.per_run, kind_of, fast, ks)
            family_of = {run.id: self.family(run.cfg) for run in plan.runs.values()}
            fast_s = {rid: s / fast.get(kind_of[rid] or family_of[rid] or "", {}).get(1, 1.0)
                      for rid, s in cost.per_run.items()}
            in_fleets = sum(sum(fast_s.get(r.id, 0.0) for r in f)
                            / speedup_at((fleets or {}).get(family_of[f[0].id] or "", {}), len(f))
                            for f in group(plan.ordered(), AUTO_CUDA)) / 3600
            iterations = sum(r.cfg.optim.iterations for r in plan.runs.values())
            out[name] = {"runs": len(plan.runs), "iterations_m": round(iterations / 1e6, 1),
                         # runs the bench measured (shown beside the model) / priced by the model
                         "priced_by_bench": sum(1 for b in cost.beside.values() if "bench" in b),
                         "priced_by_step": len(cost.per_run),
                         "unpriced": len(cost.unpriced), "gpu_hours_off": round(off, 1),
                         "gpu_hours": {str(k): round(h, 1) for k, h in with_all.items()},
                         "gpu_hours_fleets": round(in_fleets, 1)}
        best = min(ks, key=lambda k: (out.get(ALL, {}).get("gpu_hours") or {}).get(str(k), float("inf")))
        for rec in out.values():
            if "gpu_hours" in rec:
                rec["gpu_hours_best_k"] = rec["gpu_hours"][str(best)]
        return {"best_k": best, "tables": {name: out[name] for name in PROJECTED}}


def measure_all(sizes: Sizes, folder: Path, device: str = "cuda", profile: str = "paper",
                base: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every measurement of the bench, most important first, within `sizes.budget_s` (`device`,
    `profile` and `base` settings other than a GPU at paper settings: for tests on a CPU)."""
    import torch

    from repro.plan.cost import device_name, write_bench_figures
    from repro.provenance import environment

    source, source_note = training_source(sizes)
    bench = Bench(sizes, folder, device=device, profile=profile, base=base, source=source)
    cuda = device.startswith("cuda")
    memory = torch.cuda.get_device_properties(0).total_memory if cuda else 0
    result: dict[str, Any] = {
        "cuda": cuda, "size": sizes.name, "gpu": torch.cuda.get_device_name() if cuda else device,
        "device": device_name(device), "environment": environment(device),
        "gpu_memory_total_mib": round(memory / 2**20),
        "settings": {"profile": profile, "base": list(base), "warmup": sizes.warmup, "log_every": LOG_EVERY,
                     "budget_s": sizes.budget_s},
        "source": source_note, "runs": {key: {} for key in sizes.kinds}, "sharing": {}}
    runs, opts = result["runs"], options(sizes)
    if not cuda:  # a CUDA graph needs CUDA: the CPU (tests) measures the rest
        opts = {name: [s for s in settings if s != "run.cuda_graph=true"] for name, settings in opts.items()
                if name != "cuda_graph"}
    for option in ("all", "all - graph", "off"):  # option by option, each for every run (teachers first)
        for key in sizes.kinds:
            runs[key][option] = bench.timed(key, option, [] if option == "off" else opts[option])
    result["fleets"] = {key: bench.fleet(key, opts["all"]) for key in sizes.fleet_kinds
                        if (key, "off") in bench.rates}  # runs of one network trained together
    for option in (o for o in opts if o not in ("all", "all - graph")):  # then each setting alone
        for key in sizes.kinds:
            runs[key][option] = bench.timed(key, option, opts[option])
    for key in sizes.share_kinds:  # then K runs sharing the GPU, with every speed setting
        if (key, "off") in bench.rates:
            result["sharing"][key] = bench.sharing(key, opts["all"] if (key, "all") in bench.rates else [])
    for key, recs in runs.items():
        off = bench.rates.get((key, "off"))
        for option, rec in recs.items():
            if off and option != "off" and rec.get("it_per_s"):
                rec["speedup_vs_off"] = round(rec["it_per_s"] / off, 2)
    for cfg in list(bench.cfgs.values())[:1]:
        result["settings"].update(scale=cfg.data.scale, hr_patch=cfg.data.hr_patch,
                                  batch_size=cfg.optim.batch_size, deterministic=cfg.run.deterministic,
                                  num_workers=cfg.data.num_workers)
    sharing = {key: {int(k): r["speedup"] for k, r in rec.items() if r.get("speedup")}
               for key, rec in result["sharing"].items()}
    try:  # the figures for `repro plan` on this GPU (settings off: the paper profile as it is)
        records = {bench.signature(key): {"it_per_s": bench.rates[key, "off"], "run": key, "source": source,
                                          "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "size": sizes.name, "sharing_speedup": sharing.get(key, {}),
                                          "all_settings_it_per_s": bench.rates.get((key, "all"))}
                   for key in bench.cfgs}
        result["cache"] = str(write_bench_figures(device_name(device), records))
    except Exception as exc:  # the measurements are kept whatever goes wrong after them
        result["cache"] = f"not written: {_error(exc)}"
    fleets = {key: {int(n): r["speedup"] for n, r in rec.items() if r.get("speedup")}
              for key, rec in result["fleets"].items()}
    try:  # what the tables cost here
        result["projection"] = bench.project(sharing, fleets)
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

"""Parts of the GPU bench (`repro.bench.gpu`): the training rate read from a run's metrics.csv, a
sampler of the GPU's utilisation (nvidia-smi), K runs trained at once in separate processes on one
device (`share`), as `repro reproduce --runs-per-gpu K` runs them, and the figures as Markdown.

Not a benchmark module itself (the leading underscore keeps `python -m repro.bench` from running it).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rate_after_warmup(rows: Sequence[dict[str, Any]], warmup: int) -> tuple[float, int]:
    """(iterations per second, iterations timed) over the metrics rows after the first `warmup`
    iterations: the engine's own step times (data wait included; logging, validation and checkpoints
    not), so a compile or cuDNN's first calls in the warm-up do not count."""
    done, seconds, prev = 0, 0.0, 0
    for row in rows:
        it, rate = int(float(row["iteration"])), float(row["it_per_s"] or 0.0)
        n = it - prev
        if prev >= warmup and rate > 0:
            done, seconds = done + n, seconds + n / rate
        prev = it
    return (done / seconds if seconds else 0.0), done


# ---------------------------------------------------------------- projections
def speedup_at(curve: dict[int, float], n: int) -> float:
    """A measured speed-up at size n, interpolated linearly in log n between the measured sizes (1 below
    the smallest, the largest's beyond it: no extrapolation)."""
    if not curve:
        return 1.0
    sizes = sorted(curve)
    if n <= sizes[0]:
        return curve[sizes[0]] if n == sizes[0] else 1.0
    if n >= sizes[-1]:
        return curve[sizes[-1]]
    hi = next(s for s in sizes if s >= n)
    lo = max(s for s in sizes if s < n)
    w = (math.log(n) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return curve[lo] + w * (curve[hi] - curve[lo])


def project_hours(per_run_s: dict[str, float], kind_of: dict[str, str | None],
                  speedups: dict[str, dict[int, float]], ks: tuple[int, ...]) -> dict[int, float]:
    """GPU hours at each K: a run's seconds alone divided by its kind's measured speedup at K (e.g. the
    aggregate rate of K at once over one alone); a kind the bench did not measure gains nothing."""
    return {k: sum(s / speedups.get(kind_of.get(rid) or "", {}).get(k, 1.0) for rid, s in per_run_s.items())
            / 3600 for k in ks}


# ---------------------------------------------------------------- nvidia-smi
def smi_id() -> str | None:
    """This process's GPU as nvidia-smi names it (its UUID; CUDA_VISIBLE_DEVICES renumbers the
    indices), None without nvidia-smi."""
    import torch

    candidates = []
    uuid = getattr(torch.cuda.get_device_properties(0), "uuid", None) if torch.cuda.is_available() else None
    if uuid is not None:
        text = str(uuid)
        candidates.append(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
    visible = (os.environ.get("CUDA_VISIBLE_DEVICES") or "").split(",")[0].strip()
    candidates += [visible] if visible else []
    candidates.append("0")
    for candidate in candidates:
        try:
            subprocess.run(["nvidia-smi", f"--id={candidate}", "--query-gpu=name", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=10, check=True)
            return candidate
        except (OSError, subprocess.SubprocessError):
            continue
    return None


class GpuSampler:
    """nvidia-smi's utilisation (%) and memory used (MiB) of one GPU every `period_ms` while the block
    runs; `summary()` is "unknown" without nvidia-smi."""

    def __init__(self, gpu: str | None, period_ms: int = 200) -> None:
        self.gpu, self.period_ms = gpu, period_ms
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if self.gpu is None:
            return self
        try:
            self._proc = subprocess.Popen(
                ["nvidia-smi", f"--id={self.gpu}", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", f"--loop-ms={self.period_ms}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return self
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                util, mem = (float(v) for v in line.strip().split(",")[:2])
                self.samples.append((util, mem))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, float] | str:
        if not self.samples:
            return "unknown"
        utils = [u for u, _ in self.samples]
        return {"util_mean_pct": round(sum(utils) / len(utils), 1), "util_max_pct": max(utils),
                "memory_used_max_mib": max(m for _, m in self.samples), "samples": len(self.samples)}


# ---------------------------------------------------------------- K runs at once
def _child(settings: dict[str, Any], folder: str, teacher_dir: str | None, warmup: int, threads: int,
           barrier: Any, queue: Any) -> None:
    """One of the K processes: set up (CUDA, the config), wait for the others, train, report its rate."""
    import torch

    from repro.runs.config import from_dict
    from repro.runs.folder import read_metrics
    from repro.train.engine import train

    report: dict[str, Any] = {"folder": folder}
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            torch.set_num_threads(threads)
            cfg = from_dict(settings)
            cuda = cfg.run.device.startswith("cuda")
            if cuda:
                torch.zeros(1, device=cfg.run.device)  # the CUDA context, before the clock starts
            barrier.wait(timeout=600)
            report["start"] = time.time()
            train(cfg, out=folder, teacher_dir=teacher_dir, progress=False)
            report["end"] = time.time()
        report["it_per_s"], report["timed_iterations"] = rate_after_warmup(read_metrics(folder), warmup)
        if cuda:
            report["max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except BaseException as exc:  # reported, never raised: the parent waits for every child
        report["error"] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            barrier.abort()  # the others stop waiting for this one
    queue.put(report)


def share(settings: dict[str, Any], k: int, folder: Path, *, warmup: int, teacher_dir: str | None = None,
          timeout_s: float = 600, gpu: str | None = None) -> dict[str, Any]:
    """Train the run of `settings` (a resolved config as a dict) in `k` processes at once, each into its
    own folder under `folder`, started together after their set-up; the aggregate rate is the sum of the
    processes' rates over their timed iterations (which overlap: same settings, same start)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // k)  # as the pool launcher divides the cores
    procs = [ctx.Process(target=_child, args=(settings, str(folder / f"run{i}"), teacher_dir, warmup, threads,
                                              barrier, queue)) for i in range(k)]
    reports: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    with GpuSampler(gpu) as sampler:
        for p in procs:
            p.start()
        while len(reports) < k and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                reports.append(queue.get(timeout=1))
            if len(reports) < k and not any(p.is_alive() for p in procs) and queue.empty():
                break  # a child died without a word
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(10)
    errors = [r["error"] for r in reports if "error" in r]
    if len(reports) < k:
        errors.append(f"{k - len(reports)} process(es) did not report within {timeout_s:.0f} s")
    rates = [r["it_per_s"] for r in reports if r.get("it_per_s")]
    out: dict[str, Any] = {"k": k, "per_run_it_per_s": [round(r, 2) for r in rates],
                           "aggregate_it_per_s": round(sum(rates), 2) if not errors else None,
                           "threads_per_process": threads, "gpu": sampler.summary() if gpu else "unknown"}
    memory = [r["max_memory_mib"] for r in reports if "max_memory_mib" in r]
    if memory:
        out["max_memory_mib_per_run"] = max(memory)
    if errors:
        out["error"] = "; ".join(errors)
    return out


# ---------------------------------------------------------------- Markdown
def _cell(rec: dict[str, Any], key: str = "it_per_s", ratio: str | None = "speedup_vs_off") -> str:
    if rec.get(key):
        return f"{rec[key]:,.1f}" + (f" ({rec[ratio]:.2f}x)" if ratio and rec.get(ratio) else "")
    return "error" if "error" in rec else ("n/a" if "not available" in str(rec.get("skipped", "")) else "-")


def markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown tables (printed, and the GPU check's summary)."""
    if "runs" not in result:
        return f"GPU bench: no CUDA ({result.get('reason', '?')})"
    env, st = result.get("environment", {}), {"profile": "paper", "scale": 4, "hr_patch": 192,
                                               "batch_size": 16, **result.get("settings", {})}
    lines = [f"GPU bench ({result['size']}): {result['gpu']}, {result['gpu_memory_total_mib']:,} MiB; torch "
             f"{env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; {st['profile']} "
             f"settings (x{st['scale']}, {st['hr_patch']} px, batch {st['batch_size']}); "
             f"data: {result['source']}; {result.get('elapsed_s', '?')} s", "",
             "Iterations per second, one run alone (speed-up over everything off; `all` = every speed "
             "setting, the CUDA graph included); '-' skipped (time budget), n/a not available:", ""]
    opts = list(next(iter(result["runs"].values())).keys())
    lines += ["| run | " + " | ".join(opts) + " | memory (MiB) | GPU util (%) |",
              "|---|" + "---:|" * (len(opts) + 2)]
    for key, recs in result["runs"].items():
        off = recs.get("off", {})
        gpu = off.get("gpu") if isinstance(off.get("gpu"), dict) else {}
        lines.append(f"| {key} | " + " | ".join(_cell(recs[o]) for o in opts)
                     + f" | {off.get('max_memory_mib', '-')} | {gpu.get('util_mean_pct', 'unknown')} |")
    sizes = sorted({int(k) for recs in result.get("fleets", {}).values() for k in recs})
    if result.get("fleets"):
        lines += ["", "Fleets (N runs of one network trained together in one process, every speed setting): "
                  "aggregate it/s (over N = 1)", "",
                  "| run | " + " | ".join(f"N={n}" for n in sizes) + " |", "|---|" + "---:|" * len(sizes)]
        for key, recs in result["fleets"].items():
            cells = [_cell(recs.get(str(n), {}), "aggregate_it_per_s", "speedup") for n in sizes]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    shares = sorted({int(k) for recs in result["sharing"].values() for k in recs})
    if result["sharing"]:
        lines += ["", "K runs sharing the GPU (separate processes): aggregate it/s (over K = 1)", "",
                  "| run | " + " | ".join(f"K={k}" for k in shares) + " |", "|---|" + "---:|" * len(shares)]
        for key, recs in result["sharing"].items():
            cells = [_cell(recs.get(str(k), {}), "aggregate_it_per_s", "speedup") for k in shares]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    proj = result.get("projection", {})
    if "error" in proj:
        lines += ["", f"Projection: {proj['error']}"]
    if proj.get("tables"):
        best = proj["best_k"]
        lines += ["", "Projected GPU hours at paper settings: as the settings are, with every speed setting "
                  "(each run kind's measured speed-up; kinds not measured: none), with the best "
                  f"K = {best} runs sharing the GPU on top, and in fleets (`--fleet auto`) instead:", "",
                  "| tables | runs | iterations (M) | hours, settings off | hours, every setting "
                  f"| hours, every setting, K={best} | hours, every setting, fleets "
                  "| priced by bench / step / not |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, t in proj["tables"].items():
            if "error" in t:
                lines.append(f"| {name} | error: {t['error']} |||||||")
                continue
            fleets = t.get("gpu_hours_fleets", "-")
            lines.append(f"| {name} | {t['runs']} | {t['iterations_m']} | {t['gpu_hours_off']} | "
                         f"{t['gpu_hours']['1']} | {t['gpu_hours_best_k']} | {fleets} | "
                         f"{t['priced_by_bench']} / {t['priced_by_step']} / {t['unpriced']} |")
    errors = [f"- {key} {option}: {rec['error']}" for key, recs in result["runs"].items()
              for option, rec in recs.items() if "error" in rec]
    errors += [f"- {key} fleet of {n}: {rec['error']}" for key, recs in result.get("fleets", {}).items()
               for n, rec in recs.items() if "error" in rec]
    errors += [f"- {key} K={k}: {rec['error']}" for key, recs in result["sharing"].items()
               for k, rec in recs.items() if "error" in rec]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)

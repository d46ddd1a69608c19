"""Provenance: where the numbers came from. Profile, commit, device and software stack (from each run's
done.json), the data (manifest checksums of every test set and training source used) and the wall time of
every run."""

from __future__ import annotations

import hashlib
from typing import Any

from repro.data.manifests import get_manifest, list_datasets
from repro.data.names import BENCHMARK_SETS
from repro.errors import ReproError
from repro.formatting import number
from repro.provenance import threads_text
from repro.report.inputs import ReportInputs

STACK_KEYS = ("cpu", "cpu_count", "torch_threads", "gpu", "driver", "torch", "cuda", "cudnn", "python",
              "platform")


def environments(inputs: ReportInputs) -> list[dict[str, str]]:
    """The distinct values of each software/hardware key over the runs' done.json (and the commits)."""
    seen: dict[str, set[str]] = {}
    for run in inputs.runs.values():
        env = (run.done or {}).get("environment") or {}
        for key in (*STACK_KEYS, "commit"):
            if env.get(key) not in (None, ""):
                seen.setdefault(key, set()).add(str(env[key]))
    out = [{"key": key, "value": ", ".join(sorted(seen[key]))} for key in (*STACK_KEYS, "commit")
           if key in seen]
    cuda = any(str((r.done or {}).get("environment", {}).get("cuda_available")) == "True"
               for r in inputs.runs.values())
    if "gpu" not in seen:
        out.append({"key": "gpu", "value": "none used (CUDA available: " + ("yes" if cuda else "no") + ")"})
    return out


def _manifest_of(dataset: str) -> str | None:
    if dataset in BENCHMARK_SETS:
        return "benchmark"
    return dataset.lower() if dataset.lower() in list_datasets() else None


def datasets(inputs: ReportInputs) -> list[dict[str, str]]:
    """Each test set and training source used, with the checksums its images are verified against."""
    tests = sorted({d for d in inputs.results["dataset"] if d})
    sources = sorted({str(r.settings.get("data", {}).get("source", "")) for r in inputs.runs.values()} - {""})
    out = []
    for role, names in (("test set", tests), ("training data", sources)):
        for name in names:
            manifest_name = _manifest_of(name)
            try:
                manifest = get_manifest(manifest_name) if manifest_name else None
            except ReproError:
                manifest = None
            if manifest is None:
                out.append({"role": role, "name": name, "manifest": "-", "checksums": "no manifest"})
                continue
            archives = "; ".join(f"{a.file} " + (f"sha256 {a.sha256}" if a.sha256 else f"md5 {a.md5}")
                                 for a in manifest.archives if a.sha256 or a.md5)
            pixels = [p for p in manifest.pixels if f"/{name}/" in p.path or manifest_name != "benchmark"]
            digest = hashlib.sha256("".join(sorted(p.sha256 for p in pixels)).encode()).hexdigest()
            checks = [archives] if archives else []
            if pixels:
                checks.append(f"{len(pixels)} pixel digests, combined sha256 {digest[:16]}…")
            if manifest.embedded:
                checks.append(f"embedded: {len(manifest.images)} images built from scikit-image's files")
            out.append({"role": role, "name": name, "manifest": f"data_manifests/{manifest_name}.toml",
                        "checksums": "; ".join(checks) or "-"})
    return out


def run_table(inputs: ReportInputs) -> list[dict[str, Any]]:
    """One line per run folder: kind, network, scale, seed, iterations, wall time, speed, where it ran; a
    member of a fleet (`repro.train.fleet`) shows the fleet's time and counts its share in totals."""
    used: dict[str, list[str]] = {}
    for r in inputs.results.itertuples():
        if r.run:
            used.setdefault(r.run, [])
            tag = f"{r.table}/{r.row}"
            if tag not in used[r.run]:
                used[r.run].append(tag)
    out = []
    for run in inputs.runs.values():
        done = run.done or {}
        env = done.get("environment") or {}
        seconds = done.get("seconds")
        iterations = done.get("iterations")
        members = int((done.get("fleet") or {}).get("members", 1))  # trained with others in one process
        device = env.get("gpu") or (f"{env.get('cpu', '?')} ({threads_text(env.get('torch_threads', '?'))})"
                                    if env else "-")
        shared = f" (a fleet of {members}: the fleet's time)" if members > 1 else ""
        out.append({"run": run.name, "kind": run.kind, "model": run.model, "scale": run.scale,
                    "seed": run.seed, "iterations": iterations if iterations is not None else "-",
                    "seconds": number(seconds, 1) + shared if seconds is not None else "not finished",
                    "it_per_s": number(iterations / seconds, 1) if seconds and iterations else "-",
                    "device": device, "finished": done.get("finished", "-"),
                    "rows": ", ".join(used.get(run.name, [])) or "(teacher or unused)",
                    # a fleet's time once in the total: each member its share
                    "seconds_value": float(seconds) / members if seconds is not None else 0.0})
    return out

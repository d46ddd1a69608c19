"""Printed runtimes held against physics: the throughput a runtime implies for its network's FLOPs
(2 per multiply-add), beside the peak of the GPU it names (`tables/hardware/gpu_peaks.toml`).

A runtime that implies more FLOP/s than the GPU's peak cannot be a measurement of that network on that
GPU (a different network, another input size, or a typo). The same check runs on the suite's own GPU
runtimes (`repro complexity --device cuda`), where the GPU is the one that measured them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from repro.errors import ReproError
from repro.paths import project_file

PEAKS = ("tables", "hardware", "gpu_peaks.toml")
PAPER_GPU = "Titan RTX"  # the GPU the paper names for its runtimes


@dataclass(frozen=True)
class Peak:
    name: str
    names: tuple[str, ...]
    fp32_tflops: float
    fp16_tensor_tflops: float
    memory_tb_s: float
    source: str
    tf32_tensor_tflops: float | None = None

    @property
    def best_tflops(self) -> float:
        """The most any unit of the GPU can do (its fp16 tensor cores)."""
        return max(self.fp32_tflops, self.fp16_tensor_tflops, self.tf32_tensor_tflops or 0.0)


@lru_cache(maxsize=1)
def peaks() -> tuple[Peak, ...]:
    path = project_file(*PEAKS)
    try:
        data = tomllib.loads(path.read_text())
        return tuple(Peak(name=g["name"], names=tuple(g["names"]), fp32_tflops=float(g["fp32_tflops"]),
                          fp16_tensor_tflops=float(g["fp16_tensor_tflops"]),
                          memory_tb_s=float(g["memory_tb_s"]), source=" ".join(g["source"].split()),
                          tf32_tensor_tflops=g.get("tf32_tensor_tflops"))
                     for g in data.get("gpu", []))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ReproError(f"{path} is not a valid GPU peaks file ({exc!r}); restore it from the repository") \
            from exc


def peak_of(gpu: str | None) -> Peak | None:
    """The peaks of the GPU named `gpu` (a device name or the paper's words), None when unknown."""
    if not gpu:
        return None
    text = gpu.lower()
    return next((p for p in peaks() if any(n in text for n in p.names)), None)


def implied_tflops(multiadds_g: float | None, runtime_ms: float | None) -> float | None:
    """TFLOP/s a forward of `multiadds_g` G multiply-adds in `runtime_ms` ms needs."""
    if not multiadds_g or not runtime_ms:
        return None
    return 2 * multiadds_g * 1e9 / (runtime_ms * 1e-3) / 1e12


def verdict(tflops: float | None, peak: Peak | None) -> str:
    """'' (possible), 'above fp32 peak' or 'above every peak' of the GPU; '?' when either is unknown."""
    if tflops is None or peak is None:
        return "?"
    if tflops > peak.best_tflops:
        return "above every peak"
    if tflops > peak.fp32_tflops:
        return "above fp32 peak"
    return ""


def rows(records: list[dict], printed) -> list[dict]:
    """Per complexity record (network, scale): the printed runtime and MultiAdds, the TFLOP/s they imply
    against the paper's GPU, and the measured GPU runtime with the TFLOP/s its true MultiAdds imply
    against the GPU that measured it. `printed(model, scale, metric)` gives a printed cell."""
    paper = peak_of(PAPER_GPU)
    out = []
    for r in records:
        p_ms = printed(r["model"], r["scale"], "runtime_ms")
        p_g = printed(r["model"], r["scale"], "multiadds_g")
        gpu = (r.get("environment") or {}).get("gpu")
        measured = implied_tflops(r.get("macs_g"), r.get("runtime_gpu_ms"))
        tflops = implied_tflops(p_g, p_ms)
        out.append({"model": r["model"], "scale": r["scale"], "printed_ms": p_ms, "printed_g": p_g,
                    "implied": tflops, "verdict": verdict(tflops, paper),
                    "gpu_ms": r.get("runtime_gpu_ms"), "gpu": gpu, "measured_implied": measured,
                    "measured_verdict": verdict(measured, peak_of(gpu)) if measured is not None else ""})
    return out


def finding(checked: list[dict], label=str) -> dict[str, str] | None:
    """The complexity finding: each printed runtime beside the throughput it implies and the named GPU's
    peak, those above it flagged; the measured GPU runtimes beside them where there are some.
    `label(model)` names a network as the paper does."""
    paper = peak_of(PAPER_GPU)
    seen: dict[tuple[str, float, float], list[int]] = {}
    for c in checked:
        if c["implied"] is not None:
            seen.setdefault((c["model"], c["printed_g"], c["printed_ms"]), []).append(c["scale"])
    if not seen or paper is None:
        return None
    parts, above_all, above_fp32 = [], [], []
    for (model, g, ms), scales in seen.items():
        tflops = implied_tflops(g, ms)
        v = verdict(tflops, paper)
        where = f"{label(model)} {'/'.join(f'x{s}' for s in sorted(scales))}"
        parts.append(f"{where}: {g:,.1f} G in {ms:,.2f} ms = {tflops:,.1f} TFLOP/s" + (f" ({v})" * bool(v)))
        (above_all if v == "above every peak" else above_fp32 if v else []).append(label(model))
    text = (f"Each printed runtime implies a throughput: 2 FLOPs per printed multiply-add over the printed "
            f"time. The paper names a {paper.name}: {paper.fp32_tflops:g} TFLOP/s peak in fp32, "
            f"{paper.fp16_tensor_tflops:g} with fp16 tensor cores. " + "; ".join(parts) + ".")
    if above_all:
        text += (f" {', '.join(dict.fromkeys(above_all))}: faster than any unit of a {paper.name} can "
                 "compute, so not measurements of these networks on it.")
    if above_fp32:
        text += (f" {', '.join(dict.fromkeys(above_fp32))}: above its fp32 peak, possible only in half "
                 "precision on tensor cores, which the paper does not mention.")
    measured = [c for c in checked if c["measured_implied"] is not None]
    if measured:
        gpu = measured[0]["gpu"]
        peak = peak_of(gpu)
        text += (f" Measured here on {gpu}"
                 + (f" (peak {peak.fp32_tflops:g} TFLOP/s fp32, {peak.best_tflops:g} tensor)" if peak else "")
                 + ": " + "; ".join(f"{label(c['model'])} x{c['scale']} {c['gpu_ms']:,.2f} ms = "
                                    f"{c['measured_implied']:,.1f} TFLOP/s"
                                    + (f" ({c['measured_verdict']})" if c["measured_verdict"] not in ("", "?")
                                       else "") for c in measured) + ".")
    text += " Peaks: vendor figures, tables/hardware/gpu_peaks.toml."
    return {"topic": "printed runtimes against physics", "text": text}

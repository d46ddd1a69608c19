"""One complexity row per (model, scale): params, MultiAdds by three counters, runtimes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repro.complexity.conventions import RUNTIME_MAX_GMACS
from repro.complexity.macs import (
    LR_ROUNDING,
    RUNTIME_ROUNDING,
    compare_tools,
    fvcore_macs,
    hook_macs,
    lr_size,
    module_differences,
    thop_macs,
)
from repro.complexity.params import deployed, params
from repro.complexity.runtime import runtime_ms
from repro.errors import ReproError, unknown_choice
from repro.models import create, model_names

TABLE_MODELS = ("fsrcnn", "vdsr", "drcn", "drrn", "memnet", "carn", "idn", "srfbn", "imdn")
"""Networks of the complexity table: Appendix Table I's (FSRCNN is also the PISR and DSSD student) + VDSR."""

PAPER_ROWS = {"fsrcnn": ("FSRCNN*", "PISR", "DSSD"), "drcn": ("DRCN",), "drrn": ("DRRN",),
              "memnet": ("MemNet",), "carn": ("CARN",), "idn": ("IDN",), "srfbn": ("SRFBN",),
              "imdn": ("IMDN",), "vdsr": ()}
"""Appendix Table I rows each registered network stands for (VDSR is not in that table)."""

"""CPU runtime is skipped above this many true GMACs (DRCN's 18 TMAC take minutes per forward on a laptop)."""


@dataclass(frozen=True)
class Options:
    rounding: str = LR_ROUNDING
    tools: bool = True  # also count with fvcore and thop
    runtime: bool = True
    device: str = "cpu"
    repeats: int = 10
    warmup: int = 2
    runtime_max_gmacs: float = RUNTIME_MAX_GMACS


def check_models(names: Sequence[str]) -> list[str]:
    valid = model_names()
    for name in names:
        if name not in valid:
            raise unknown_choice("model", name, valid)
    return list(names)


def default_models() -> list[str]:
    valid = set(model_names())
    return [m for m in TABLE_MODELS if m in valid]


def _g(v: float | None) -> float | None:
    return None if v is None else v / 1e9


def measure(name: str, scale: int, opts: Options, environment: dict[str, object]) -> dict[str, object]:
    """Every complexity figure of `name` at x`scale` (MACs at a 1280x720 output)."""
    try:
        net = deployed(create(name, scale=scale))
    except ValueError as exc:  # e.g. CARN has no x8 upsampler
        raise ReproError(f"model {name!r} at x{scale}: {exc}") from exc
    rounding = opts.rounding
    try:
        ours = hook_macs(net, scale, rounding)
    except ValueError:
        rounding = RUNTIME_ROUNDING  # not a polynomial in the LR size: fall back to a real size
        ours = hook_macs(net, scale, rounding)
    p = params(net)
    row: dict[str, object] = {
        "model": name,
        "scale": scale,
        "paper_rows": list(PAPER_ROWS.get(name, ())),
        "params": p.total,
        "params_weights": p.weights,
        "macs_g": _g(ours.weight),
        "macs_legacy_g": _g(ours.extra["legacy"]),
        "macs_fvcore_g": None,
        "macs_thop_g": None,
        "macs_by_kind_g": {k: _g(v) for k, v in sorted(ours.by_kind.items())},
        "layer_calls": ours.extra["calls"],
        "lr_rounding": rounding,
        "lr_size": list(lr_size(scale, rounding)),
        "count_method": ours.method,
        "tool_notes": [],
        "runtime_cpu_ms": None,
        "runtime_gpu_ms": None,
        "runtime_lr_size": list(lr_size(scale, RUNTIME_ROUNDING)),
        "runtime_note": None,
        "environment": environment,
    }
    if opts.tools:
        fv, th = fvcore_macs(net, scale, rounding), thop_macs(net, scale, rounding)
        notes = compare_tools(ours, fv, th)
        if fv.weight != ours.weight:
            notes += [f"fvcore per module: {d}" for d in module_differences(net)]
        row.update({
            "macs_fvcore_g": _g(fv.weight),
            "macs_thop_g": _g(th.weight),
            "fvcore_total_g": _g(fv.total),
            "thop_total_g": _g(th.total),
            "fvcore_by_kind_g": {k: _g(v) for k, v in sorted(fv.by_kind.items())},
            "thop_by_kind_g": {k: _g(v) for k, v in sorted(th.by_kind.items())},
            "fvcore_skipped_ops": fv.extra.get("skipped", []),
            "tool_notes": notes,
        })
    if opts.runtime:
        if opts.device == "cuda":  # a GPU takes even DRCN in about a second: no cap
            row["runtime_gpu_ms"] = runtime_ms(net, scale, "cuda", opts.repeats, opts.warmup)
            net.to("cpu")
        if ours.weight / 1e9 > opts.runtime_max_gmacs:
            row["runtime_note"] = (f"CPU runtime skipped: {ours.weight / 1e9:.0f} GMACs > "
                                   f"--runtime-max-gmacs {opts.runtime_max_gmacs:g}")
        else:
            row["runtime_cpu_ms"] = runtime_ms(net, scale, "cpu", opts.repeats, opts.warmup)
    return row

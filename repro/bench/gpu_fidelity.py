"""What the GPU speed settings do to results, measured side by side on this GPU (CUDA only).

1. The whole step as a CUDA graph (`run.cuda_graph`) against the eager step: the FSRCNN baseline and the
   DSSD teacher at paper settings (x4, 192 px, batch 16) for a few hundred iterations, eager with
   PyTorch's default Adam, eager with fused Adam (`optim.fused`), and as a graph (fused, capturable
   Adam, the learning rate a device tensor): the largest weight difference, absolute and relative to
   the weight's scale, the last logged loss of each, and whether a graph run killed after its
   checkpoint and resumed ends bit-identical to an uninterrupted one.
2. bf16 autocast (`run.amp`) against float32: short runs (FSRCNN, then the DSSD teacher) with every other
   speed setting on, two seeds each, validated at the end on Set5 (the `sample` test photos when the
   benchmark images are absent): PSNR with and without, beside the seed spread.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SEEDS = (0, 1)
GRAPH_ITERATIONS = {"fsrcnn_baseline": 300, "dssd_teacher": 120}
AMP_ITERATIONS = {"fsrcnn_baseline": 2000, "dssd_teacher": 1000}
FAST = ["data.on_device=true", "run.cuda_graph=true", "run.deterministic=false"]
DEVICE = "cuda"  # the tests run the machinery on "cpu", at tiny sizes and without the graph


def _val_set() -> str:
    from repro.data.manifests import get_manifest
    from repro.data.verify import folder_status
    from repro.paths import data_root

    return "Set5" if folder_status(get_manifest("benchmark"), data_root()) == "present" else "sample"


def _train(key: str, iterations: int, extra: list[str], out: Path, teacher: tuple[Any, str] | None = None,
           checkpoint_every: int | None = None) -> tuple[Any, Path]:
    import torch

    from repro.bench.gpu import KINDS
    from repro.runs.config import resolve
    from repro.train.engine import train

    spec = KINDS[key]
    settings = [*spec.settings, "data.source=sample", "optim.epochs=1", f"optim.iters_per_epoch={iterations}",
                "run.log_every=10", f"run.checkpoint_every={checkpoint_every or iterations}", "val.every=0",
                "val.sets=", f"run.device={DEVICE}", *extra]
    torch.use_deterministic_algorithms(False)
    if spec.kind == "student":
        cfg = resolve("paper", kind="student", overrides=settings, teacher=teacher[0])
    else:
        cfg = resolve("paper", kind=spec.kind, model=spec.model, scale=spec.scale, overrides=settings)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        train(cfg, out=out, teacher_dir=teacher[1] if teacher else None, progress=False)
    return cfg, out


def _weights(run: Path) -> dict[str, Any]:
    import torch

    return torch.load(run / "model.pt", map_location="cpu", weights_only=False)["state_dict"]


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    abs_max = max(float((a[k] - b[k]).abs().max()) for k in a)
    rel = max(float((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-12)) for k in a)
    return {"max_abs": abs_max, "max_rel_norm": rel}


def _last_loss(run: Path) -> float:
    from repro.runs.folder import read_metrics

    return float(read_metrics(run)[-1]["loss"])


def graph_against_eager(folder: Path) -> dict[str, Any]:
    """Weights and losses of eager, eager fused and graph runs of the same seed; resume of a graph run."""
    out: dict[str, Any] = {}
    for key, n in GRAPH_ITERATIONS.items():
        runs: dict[str, Path] = {}
        try:
            for name, extra in (("eager", []), ("eager_fused", ["optim.fused=true"]),
                                ("graph", ["run.cuda_graph=true"])):
                runs[name] = _train(key, n, extra, folder / f"{key}-{name}")[1]
            weights = {name: _weights(run) for name, run in runs.items()}
            eager, fused, graph = weights["eager"], weights["eager_fused"], weights["graph"]
            rec: dict[str, Any] = {"iterations": n,
                                   "last_loss": {name: _last_loss(run) for name, run in runs.items()},
                                   "graph_vs_eager": _difference(eager, graph),
                                   "graph_vs_eager_fused": _difference(fused, graph),
                                   "eager_fused_vs_eager": _difference(eager, fused)}
            killed = _train(key, n, ["run.cuda_graph=true"], folder / f"{key}-graph-resumed",
                            checkpoint_every=n // 2)[1]
            (killed / "done.json").unlink()
            (killed / "model.pt").unlink()
            _train(key, n, ["run.cuda_graph=true"], killed, checkpoint_every=n // 2)
            resumed = _weights(killed)
            uninterrupted = _train(key, n, ["run.cuda_graph=true"], folder / f"{key}-graph-2",
                                   checkpoint_every=n // 2)[1]
            import torch

            rec["graph_resume_bit_identical"] = all(torch.equal(resumed[k], v)
                                                    for k, v in _weights(uninterrupted).items())
            out[key] = rec
        except Exception as exc:
            out[key] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"}
    return out


def amp_against_float32(folder: Path) -> dict[str, Any]:
    """Validation PSNR after short runs with and without bf16 autocast, two seeds each."""
    import json

    from repro.runs.folder import DONE

    val = _val_set()
    out: dict[str, Any] = {"validation_set": val}
    for key, n in AMP_ITERATIONS.items():
        psnr: dict[str, list[float]] = {"float32": [], "bf16": []}
        seconds: dict[str, float] = {"float32": 0.0, "bf16": 0.0}
        try:
            for seed in SEEDS:
                for name, amp in (("float32", "false"), ("bf16", "true")):
                    extra = [*FAST, f"run.amp={amp}", f"run.seed={seed}", f"val.sets={val}"]
                    start = time.perf_counter()
                    _, run = _train(key, n, extra, folder / f"amp-{key}-{name}-{seed}")
                    seconds[name] += time.perf_counter() - start
                    done = json.loads((run / DONE).read_text())
                    psnr[name].append(float(done["validation"][f"val_psnr_{val}"]))
            out[key] = {"iterations": n, "seeds": list(SEEDS), "psnr": psnr,
                        "mean": {k: round(statistics.mean(v), 4) for k, v in psnr.items()},
                        "seed_spread": {k: round(max(v) - min(v), 4) for k, v in psnr.items()},
                        "wall_s": {k: round(v, 1) for k, v in seconds.items()}}
        except Exception as exc:
            out[key] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"}
    return out


def run() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA: the GPU fidelity checks need a CUDA device", flush=True)
        return {"cuda": False}
    with tempfile.TemporaryDirectory(prefix="repro-bench-fidelity-") as tmp:
        return {"cuda": True, "gpu": torch.cuda.get_device_name(),
                "graph": graph_against_eager(Path(tmp)), "amp": amp_against_float32(Path(tmp))}

"""Run every benchmark module in `repro.benchmarks` and write their figures as one JSON file."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import time
from pathlib import Path

import torch

import repro.benchmarks
from repro.io_utils import atomic_write_text


def environment() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(repro.benchmarks.__path__)
                   if not m.name.startswith("_"))
    parser = argparse.ArgumentParser(prog="python -m repro.benchmarks")
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--only", nargs="*", choices=names, help="run only these benchmark modules")
    args = parser.parse_args()
    results: dict[str, object] = {"environment": environment()}
    for name in args.only or names:
        print(f"[bench] {name} ...", flush=True)
        module = importlib.import_module(f"repro.benchmarks.{name}")
        start = time.perf_counter()
        results[name] = module.run()
        print(f"[bench] {name}: {json.dumps(results[name], indent=1)} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(f"[bench] wrote {out}")


if __name__ == "__main__":
    main()

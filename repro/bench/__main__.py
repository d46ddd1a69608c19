"""Run every benchmark module in `repro.bench` and write their figures as one JSON file."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import time
from pathlib import Path

import repro.bench
from repro.io_utils import atomic_write_text
from repro.provenance import environment


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(repro.bench.__path__)
                   if not m.name.startswith("_"))
    parser = argparse.ArgumentParser(prog="python -m repro.bench")
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument("--only", nargs="*", choices=names, help="run only these benchmark modules")
    args = parser.parse_args()
    results: dict[str, object] = {"environment": environment()}
    for name in args.only or names:
        print(f"[bench] {name} ...", flush=True)
        module = importlib.import_module(f"repro.bench.{name}")
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

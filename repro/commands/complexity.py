"""`repro complexity`: params, MultiAdds (three counters, two conventions) and runtimes of every network."""

from __future__ import annotations

import argparse
import json

from repro.commands._lists import parse_scales
from repro.complexity.conventions import ROUNDINGS, RUNTIME_MAX_GMACS
from repro.errors import ReproError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "complexity", help="params, MultiAdds at 1280x720 and runtimes, beside Appendix Table I",
        description="Measure parameters, MultiAdds (true and legacy, by our counter, fvcore and thop) "
                    "and runtimes, and write the complexity table with its findings.")
    p.add_argument("--models", nargs="+", metavar="NAME",
                   help="registered networks (default: the Appendix Table I networks and VDSR)")
    p.add_argument("--scales", default="2,3,4", help="comma-separated scales (default 2,3,4)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda adds the GPU runtime column (CUDA events around each forward, the input "
                        "already on the GPU, median after warm-up); the CPU column is always measured")
    p.add_argument("--repeats", type=int, default=10, help="timed forwards per runtime (median; default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed forwards before timing (default 2)")
    p.add_argument("--no-runtime", action="store_true", help="skip the runtime columns")
    p.add_argument("--runtime-max-gmacs", type=float, default=RUNTIME_MAX_GMACS,
                   help="skip the CPU runtime of networks above this many GMACs "
                        f"(default {RUNTIME_MAX_GMACS:g})")
    p.add_argument("--lr-rounding", choices=ROUNDINGS, default=ROUNDINGS[0],
                   help="x3 LR size for MultiAdds: area (1280x720 exactly, fractional LR), floor or ceil")
    p.add_argument("--no-tools", action="store_true", help="skip the fvcore and thop cross-checks (faster)")
    p.add_argument("--json", metavar="PATH", help="write the rows as a JSON list")
    p.add_argument("--table-dir", metavar="DIR", default=None,
                   help="where complexity.md and complexity.tex go (default tables/generated/)")
    p.add_argument("--no-table", action="store_true", help="do not write the Markdown/LaTeX table")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from repro.complexity.measure import Options, check_models, default_models, measure
    from repro.complexity.runtime import require_cuda
    from repro.complexity.table import write_tables
    from repro.io_utils import atomic_write_text, check_output_file
    from repro.paths import PROJECT_ROOT
    from repro.provenance import environment

    if args.json:
        check_output_file(args.json)
    models = check_models(args.models) if args.models else default_models()
    scales = parse_scales(args.scales)
    if args.device == "cuda":
        require_cuda()
    if args.repeats < 1 or args.warmup < 0:
        raise ReproError("--repeats must be >= 1 and --warmup >= 0")
    opts = Options(rounding=args.lr_rounding, tools=not args.no_tools, runtime=not args.no_runtime,
                   device=args.device, repeats=args.repeats, warmup=args.warmup,
                   runtime_max_gmacs=args.runtime_max_gmacs)
    env = environment(args.device)
    rows = []
    jobs = [(m, s) for m in models for s in scales]
    for name, scale in tqdm(jobs, desc="complexity", unit="row"):
        rows.append(measure(name, scale, opts, env))
    for r in rows:
        cpu = "-" if r["runtime_cpu_ms"] is None else f"{r['runtime_cpu_ms']:.1f} ms"
        gpu = "" if r["runtime_gpu_ms"] is None else f"  GPU {r['runtime_gpu_ms']:.2f} ms"
        print(f"{r['model']:>8} x{r['scale']}: {r['params']:>9,} params  {r['macs_g']:>10,.2f} G true  "
              f"{r['macs_legacy_g']:>10,.2f} G legacy  CPU {cpu}{gpu}")
    if args.device == "cuda" and rows:
        print(f"GPU runtimes on {env.get('gpu')} (CUDA events, median of {args.repeats} after "
              f"{args.warmup} warm-up forwards, input on the GPU)")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    if not args.no_table:
        out_dir = args.table_dir or PROJECT_ROOT / "tables" / "generated"
        for path in write_tables(rows, out_dir):
            print(f"wrote {path}")
    return 0

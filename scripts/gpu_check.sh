#!/usr/bin/env bash
# The suite's GPU check, prepared to run as-is on a CUDA machine: under 8 minutes on one H100.
#
#   pip install torch && pip install -e .        # a CUDA build of torch
#   bash scripts/gpu_check.sh [OUT]              # from the repository root; OUT default $OUT, else ./gpu-check
#
# (a) nvidia-smi and the torch / CUDA / cuDNN versions; (b) everything it writes goes under OUT (caches,
# temporary files and decoded images included: XDG_CACHE_HOME, TMPDIR and the compilers' caches point
# there; set REPRO_DATA to use your own data root, whose decoded-image cache then grows as usual);
# (c) the GPU bench, quick size: iterations per second at paper settings with every speed setting
# together (the CUDA graph included), without the graph, with none, then each alone, then K runs sharing
# the GPU, and the projected GPU hours of Tables 1-3, Tables 1-4 and all (OUT/bench-gpu.json);
# (h) what the speed settings do to results: a CUDA-graph run against eager ones (weights, losses, a
# resumed graph run), bf16 against float32 (PSNR, two seeds) (OUT/fidelity.json); (d) the GPU runtime
# column of `repro complexity` (OUT/complexity.json); (e) a smoke reproduction with --runs-per-gpu 4:
# table3 when the benchmark images are under the data root, else the quickstart with 2 seeds (6 runs,
# no download); (g) `repro plan all --profile paper` priced from the bench's figures
# (OUT/plan-all.json); (f) OUT/summary.md with every figure, and the projected hours printed last.
# Every step runs under `timeout`, the whole under GPU_CHECK_SECONDS (default 460); a step that fails or
# times out is reported and the next one runs.
# Logs: OUT/gpu_check.log. Bulky files (run folders, caches) go to OUT/work/w/. PYTHON=... picks the
# interpreter (default: python).
set -u -o pipefail

OUT_DIR=${1:-${OUT:-./gpu-check}}
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK="$OUT_DIR/work/w"
LOG="$OUT_DIR/gpu_check.log"
PY=${PYTHON:-python}
mkdir -p "$WORK/tmp" "$WORK/cache"
export TMPDIR="$WORK/tmp" XDG_CACHE_HOME="$WORK/cache" MPLCONFIGDIR="$WORK/cache/matplotlib" \
    TORCHINDUCTOR_CACHE_DIR="$WORK/cache/inductor" TRITON_CACHE_DIR="$WORK/cache/triton" \
    CUDA_CACHE_PATH="$WORK/cache/nv" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
: >"$LOG"
STEPS="$WORK/steps.tsv"
: >"$STEPS"
DEADLINE=$((SECONDS + ${GPU_CHECK_SECONDS:-460}))

# step NAME LIMIT_S RESERVE_S COMMAND...: run COMMAND under timeout (LIMIT_S, less if fewer seconds are
# left once RESERVE_S are kept for the steps after it), its output into the log; record how it ended.
step() {
    local name=$1 limit=$2 reserve=$3
    shift 3
    local left=$((DEADLINE - SECONDS - reserve))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        printf '%s\tskipped (time)\t0\n' "$name" >>"$STEPS"
        echo "== $name: skipped, the time is spent" | tee -a "$LOG"
        return
    fi
    echo "== $name (at most ${limit} s): $*" | tee -a "$LOG"
    local start=$SECONDS rc
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    rc=${PIPESTATUS[0]}
    local status="ok"
    ((rc == 124 || rc == 137)) && status="timed out after ${limit} s"
    ((rc != 0 && rc != 124 && rc != 137)) && status="failed (exit $rc)"
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" >>"$STEPS"
    echo "== $name: $status in $((SECONDS - start)) s" | tee -a "$LOG"
}

# (a) the machine
machine() {
    nvidia-smi || echo "nvidia-smi: not found"
    "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA build", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "| CUDA available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}")
EOF
}
export -f machine
export PY
step environment 20 0 bash -c machine
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA: install a CUDA build of torch on a machine with a GPU (the steps below need one)" \
        | tee -a "$LOG"
fi

# (c) the GPU bench, quick size (its own budget: 200 s of measurements, then 30 s or more of projection)
export REPRO_BENCH_QUICK=1
step bench 220 210 "$PY" -m repro.bench --only gpu --out "$OUT_DIR/bench-gpu.json"

# (h) the CUDA graph against eager steps, bf16 against float32
step fidelity 90 120 "$PY" -m repro.bench --only gpu_fidelity --out "$OUT_DIR/fidelity.json"

# (d) the GPU runtime column (CPU runtime only for networks under 20 GMACs: the point is the GPU's)
step complexity 35 85 "$PY" -m repro complexity --device cuda --scales 4 --no-tools --repeats 5 \
    --runtime-max-gmacs 20 --json "$OUT_DIR/complexity.json" --table-dir "$WORK/complexity"

# (e) K = 4 runs on one GPU: each run trained once, students after their teachers
TABLE=quickstart
SEEDS=2
if "$PY" -c "from repro.data.manifests import get_manifest; from repro.data.verify import folder_status; \
from repro.paths import data_root; import sys; \
sys.exit(folder_status(get_manifest('benchmark'), data_root()) != 'present')" 2>/dev/null; then
    TABLE=table3
    SEEDS=1
fi
step reproduce 45 40 "$PY" -m repro reproduce "$TABLE" --profile smoke --seeds "$SEEDS" --runs-per-gpu 4 \
    --set run.device=cuda --no-estimate --no-report --out "$WORK/t3"

# (g) the planner's estimate of everything at paper settings, priced from the bench's figures
step plan 40 5 "$PY" -m repro plan all --profile paper --fleet auto --out "$WORK/plan-out" --json "$OUT_DIR/plan-all.json"

# (f) the summary
OUT_DIR="$OUT_DIR" WORK="$WORK" LOG="$LOG" STEPS="$STEPS" TABLE="$TABLE" \
    timeout 30 "$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import json, os, re
from pathlib import Path

out, work = Path(os.environ["OUT_DIR"]), Path(os.environ["WORK"])
log = Path(os.environ["LOG"]).read_text(errors="replace")
lines = ["# GPU check", ""]
lines += ["| step | how it ended | seconds |", "|---|---|---:|"]
for row in Path(os.environ["STEPS"]).read_text().splitlines():
    lines.append("| " + " | ".join(row.split("\t")) + " |")
env = log.split("== environment", 1)[-1].split("== environment:", 1)[0]
lines += ["", "## Machine", "", "```", *[x for x in env.splitlines() if x.startswith(("python", "GPU "))], "```"]

lines += ["", "## Bench (`python -m repro.bench --only gpu`, quick)", ""]
try:
    from repro.bench._gpu_parts import markdown
    lines.append(markdown(json.loads((out / "bench-gpu.json").read_text())["gpu"]))
except Exception as exc:
    lines.append(f"no bench figures ({type(exc).__name__}: {exc})")

lines += ["", "## What the speed settings do to results (`python -m repro.bench --only gpu_fidelity`)", ""]
try:
    fid = json.loads((out / "fidelity.json").read_text())["gpu_fidelity"]
    lines += ["```json", json.dumps({k: v for k, v in fid.items() if k in ("graph", "amp")}, indent=1), "```"]
except Exception as exc:
    lines.append(f"no fidelity figures ({type(exc).__name__}: {exc})")

lines += ["", "## GPU runtime (`repro complexity --device cuda`, x4, 1280x720 output)", ""]
try:
    rows = json.loads((out / "complexity.json").read_text())
    gpu = (rows[0].get("environment") or {}).get("gpu", "?") if rows else "?"
    lines += [f"on {gpu}; median of 5 forwards after 2 warm-up, CUDA events", "",
              "| model | params | MultiAdds true (G) | GPU (ms) | CPU (ms) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        gms, cms = (("-" if v is None else f"{v:,.2f}") for v in (r["runtime_gpu_ms"], r["runtime_cpu_ms"]))
        lines.append(f"| {r['model']} x{r['scale']} | {r['params']:,} | {r['macs_g']:,.2f} | {gms} | {cms} |")
except Exception as exc:
    lines.append(f"no complexity figures ({type(exc).__name__}: {exc})")

lines += ["", f"## {os.environ['TABLE']} at the smoke profile, --runs-per-gpu 4", ""]
part = log.split("== reproduce", 1)[-1].split("== reproduce:", 1)[0]
jobs = re.findall(r"^\[pool\] (.+?): (.+) \(\d+/\d+; worker (\d+) pid (\d+)(?: GPU (\S+))?\)$", part, re.M)
head = [x for x in part.splitlines() if x.startswith("[pool] ") and " run(s) on " in x]
lines += head[:1] + [""]
runs = trained = 0
for name, result, _, _, _ in jobs:  # a run ("trained, evaluated") or a fleet ("fleet of 3: 3 trained, ...")
    fleet = re.match(r"fleet of (\d+): (\d+) trained", result)
    runs += int(fleet.group(1)) if fleet else 1
    trained += int(fleet.group(2)) if fleet else result.startswith("trained")
names = [j[0] for j in jobs]
lines.append(f"- runs finished: {runs} in {len(jobs)} job(s) ({sum(n.startswith('fleet of') for n in names)} "
             f"fleet(s)); trained: {trained}; each job once: {len(names) == len(set(names))}; worker "
             f"processes: {len({j[3] for j in jobs})}; GPUs: {sorted({j[4] for j in jobs if j[4]})}")
tables = sorted((work / "t3" / "tables").glob("*.md"))
if tables:
    lines += ["", tables[0].read_text()]

lines += ["", "## `repro plan all --profile paper` on this GPU", ""]
part = log.split("== plan", 1)[-1]
lines += ["```", *[x for x in part.splitlines()
                   if x.startswith(("plan:", "estimated cost", "[plan] ", "fleets:", "  this device",
                                    "  beside it", "  not priced"))
                   and "timing a" not in x], "```"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print(f"wrote {out / 'summary.md'}")
try:  # the figures a reader asks for first, printed last
    proj = json.loads((out / "bench-gpu.json").read_text())["gpu"]["projection"]
    print(f"projected GPU hours at paper settings (off / every speed setting / + best K={proj['best_k']} "
          "/ in fleets):")
    for name in ("tables 1-3", "tables 1-4", "all"):
        t = proj["tables"][name]
        print(f"  {name}: {t['gpu_hours_off']} / {t['gpu_hours']['1']} / {t['gpu_hours_best_k']} / "
              f"{t.get('gpu_hours_fleets', '-')} ({t['runs']} runs)")
except Exception as exc:
    print(f"no projection ({type(exc).__name__}: {exc})")
EOF
echo "GPU check done in $SECONDS s: $OUT_DIR/summary.md"

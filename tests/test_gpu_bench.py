"""The GPU bench and the GPU runtime on a CPU: without CUDA the bench says so and exits 0; its runs are
runs of the paper's plan (how `repro plan` uses its figures: tests/test_plan_cost.py); its machinery
(engine rates, K processes at once) works on the CPU; CUDA-event timing and the complexity record's
GPU runtime with a mocked CUDA."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.bench._gpu_parts import markdown, project_hours, rate_after_warmup, speedup_at
from repro.bench.gpu import KINDS, QUICK, Bench, Sizes, options
from repro.plan import cost
from repro.plan.runs import make_plan
from repro.runs.config import resolve
from repro.specs import paper_tables, tables

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")


@no_cuda
def test_without_cuda_the_bench_says_so_and_exits_0(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "repro.bench", "--only", "gpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no CUDA" in proc.stdout
    assert json.loads(out.read_text())["gpu"]["cuda"] is False


def test_rate_after_warmup_leaves_the_warmup_out():
    rows = [{"iteration": "1", "it_per_s": "0.5"}, {"iteration": "2", "it_per_s": "10"},
            {"iteration": "4", "it_per_s": "20"}, {"iteration": "6", "it_per_s": "40"}]
    rate, timed = rate_after_warmup(rows, warmup=2)  # iterations 3-6: 2/20 + 2/40 seconds
    assert timed == 4 and rate == pytest.approx(4 / (2 / 20 + 2 / 40))
    assert rate_after_warmup(rows, warmup=10) == (0.0, 0)


def test_the_bench_runs_are_runs_of_the_paper_plan(tmp_path):
    """Each bench run's step signature is that of a run `repro plan all --profile paper` prices, so the
    figures it writes are used (nothing trained here)."""
    bench = Bench(QUICK, tmp_path, device="cpu")
    for key, spec in KINDS.items():
        if spec.kind != "student":
            bench.cfgs[key] = bench.config(key, 10, [])
    bench.teacher = (bench.cfgs["dssd_teacher"], str(tmp_path))
    bench.cfgs["dssd_student"] = bench.config("dssd_student", 10, [])
    plan = make_plan(tables("all"), "paper")
    signatures = {cost.step_signature(r): r for r in plan.runs.values()}
    for key in KINDS:
        run = signatures.get(bench.signature(key))
        assert run is not None, key
        assert (run.cfg.data.hr_patch, run.cfg.optim.batch_size, run.cfg.data.scale) == (192, 16, 4)


def test_options_put_every_setting_together_first_then_the_graph_then_each_alone():
    opts = options(QUICK)
    assert list(opts)[:3] == ["all", "all - graph", "cuda_graph"]
    assert opts["all"] == ["run.cuda_graph=true", *opts["all - graph"]]
    assert set(opts["all - graph"]) == {"data.on_device=true", "run.amp=true", "run.channels_last=true",
                                        "optim.fused=true", "run.deterministic=false"}
    alone = [o for o in opts if o not in ("all", "all - graph")]
    assert alone[-1] == "compile:default" and all(len(opts[o]) == 1 for o in alone)
    for settings in opts.values():  # every one resolves (and the graph with every other setting)
        resolve("paper", kind="teacher", model="dssd_teacher", overrides=settings)


def test_what_the_budget_leaves_is_skipped_saying_so(tmp_path, monkeypatch):
    bench = Bench(Sizes("test", 0, 0.5, 10, 10, 20, (), ()), tmp_path, device="cpu", profile="smoke")
    monkeypatch.setattr(bench, "measure", lambda *a, **k: pytest.fail("nothing may train"))
    assert bench.timed("fsrcnn_baseline", "all", []) == {"skipped": "time budget (0 s left, 20 s needed)"}


def test_fleet_speedups_are_interpolated_in_log_size_never_extrapolated():
    curve = {1: 1.0, 4: 3.0, 16: 9.0}
    assert speedup_at(curve, 1) == 1.0 and speedup_at(curve, 4) == 3.0 and speedup_at(curve, 64) == 9.0
    assert speedup_at(curve, 2) == pytest.approx(2.0) and speedup_at(curve, 8) == pytest.approx(6.0)
    assert speedup_at({}, 8) == 1.0 and speedup_at({4: 3.0}, 2) == 1.0


def test_projected_hours_use_each_kinds_sharing_speedup():
    per_run = {"a": 3600.0, "b": 7200.0, "c": 3600.0}
    kinds = {"a": "fsrcnn_baseline", "b": "dssd_teacher", "c": None}  # c: not measured by the bench
    speedups = {"fsrcnn_baseline": {1: 1.0, 4: 3.0}, "dssd_teacher": {1: 1.0, 4: 2.0}}
    hours = project_hours(per_run, kinds, speedups, (1, 4))
    assert hours[1] == pytest.approx(4.0) and hours[4] == pytest.approx(1 / 3 + 1 + 1)


@pytest.mark.slow
def test_the_bench_measures_through_the_engine_and_shares_on_a_cpu(tmp_path):
    sizes = Sizes("test", 600, 0.5, 10, 10, 20, ("fsrcnn_baseline",), (), shares=(1, 2))
    bench = Bench(sizes, tmp_path, device="cpu", profile="smoke", base=("data.num_workers=0",))
    off = bench.timed("fsrcnn_baseline", "off", [])
    assert off["it_per_s"] > 0 and off["timed_iterations"] >= 10 and "error" not in off
    shared = bench.sharing("fsrcnn_baseline", [])
    assert [shared[k]["k"] for k in ("1", "2")] == [1, 2]
    assert len(shared["2"]["per_run_it_per_s"]) == 2 and shared["2"]["aggregate_it_per_s"] > 0
    assert shared["1"]["speedup"] == 1.0 and shared["2"]["speedup"] > 0
    assert len(list(tmp_path.glob("share-fsrcnn_baseline-2/run*/done.json"))) == 2


@pytest.mark.slow
def test_the_whole_bench_runs_on_a_cpu_at_smoke_size(monkeypatch, tmp_path):
    """Every phase of `measure_all` (every setting together, off, each alone, sharing, the planner's
    cache, the projection) on the CPU at the smoke profile: the glue a GPU run goes through."""
    from repro.bench import gpu

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kinds = ("fsrcnn_baseline", "dssd_teacher", "dssd_student")
    sizes = Sizes("test", 60, 0.5, 10, 10, 20, ("fsrcnn_baseline",), (), shares=(1, 2), kinds=kinds,
                  projection_s=0)
    result = gpu.measure_all(sizes, tmp_path / "work", device="cpu", profile="smoke",
                             base=("data.num_workers=0",))
    json.dumps(result)  # plain data
    assert list(result["runs"]) == list(kinds)
    for k in kinds:
        recs = result["runs"][k]
        assert list(recs)[:3] == ["all", "all - graph", "off"] and "cuda_graph" not in recs  # CPU: no graph
        assert recs["all"]["it_per_s"] > 0 and recs["off"]["it_per_s"] > 0
        assert recs["all"]["speedup_vs_off"] > 0
    assert result["settings"]["hr_patch"] == 48 and result["settings"]["profile"] == "smoke"
    stored = cost.bench_figures(cost.device_name("cpu"))
    assert sorted(r["run"] for r in stored.values()) == sorted(kinds)
    assert all(r["all_settings_it_per_s"] > 0 for r in stored.values())
    proj = result["projection"]
    assert list(proj["tables"])[:3] == ["tables 1-3", "tables 1-4", "all"]
    assert set(proj["tables"]) == {"tables 1-3", "tables 1-4", "all", *paper_tables()}
    everything = proj["tables"]["all"]
    assert everything["priced_by_bench"] == 0  # no paper run measured at the smoke size
    assert everything["priced_by_step"] + everything["unpriced"] == everything["runs"] == 64
    assert proj["tables"]["tables 1-3"]["runs"] < proj["tables"]["tables 1-4"]["runs"] < 64
    assert set(result["fleets"]) == {"fsrcnn_baseline", "dssd_student"}
    assert result["fleets"]["fsrcnn_baseline"]["1"]["aggregate_it_per_s"] > 0
    assert 0 < everything["gpu_hours_fleets"] <= everything["gpu_hours"]["1"] * 1.0001
    assert "| dssd_student |" in markdown(result)


def test_markdown_of_a_result():
    rec = {"it_per_s": 100.0, "max_memory_mib": 900.0, "gpu": {"util_mean_pct": 40.0}}
    result = {"cuda": True, "size": "quick", "gpu": "H100", "gpu_memory_total_mib": 81559,
              "environment": {"torch": "2.13", "cuda": "12.8", "cudnn": 91000}, "source": "sample",
              "elapsed_s": 200,
              "runs": {"fsrcnn_baseline": {"off": rec, "amp": {"it_per_s": 150.0, "speedup_vs_off": 1.5},
                                           "on_device": {"skipped": "not available (...)"}},
                       "vdsr": {"off": rec, "amp": {"error": "RuntimeError: boom"}, "on_device": {}}},
              "sharing": {"fsrcnn_baseline": {"1": {"aggregate_it_per_s": 100.0, "speedup": 1.0},
                                              "2": {"aggregate_it_per_s": 180.0, "speedup": 1.8}}},
              "projection": {"best_k": 2, "tables": {"all": {"runs": 64, "iterations_m": 69.0,
                                                             "gpu_hours_off": 900.0,
                                                             "gpu_hours": {"1": 300.0, "2": 170.0},
                                                             "gpu_hours_best_k": 170.0,
                                                             "gpu_hours_fleets": 40.0,
                                                             "priced_by_bench": 20,
                                                             "priced_by_step": 40, "unpriced": 4}}}}
    text = markdown(result)
    assert "| fsrcnn_baseline | 100.0 | 150.0 (1.50x) | n/a | 900.0 | 40.0 |" in text
    assert "| fsrcnn_baseline | 100.0 (1.00x) | 180.0 (1.80x) |" in text
    assert "| all | 64 | 69.0 | 900.0 | 300.0 | 170.0 | 40.0 | 20 / 40 / 4 |" in text
    assert "- vdsr amp: RuntimeError: boom" in text
    assert markdown({"cuda": False, "reason": "CPU-only torch build"}).startswith("GPU bench: no CUDA")


# ---------------------------------------------------------------- the GPU runtime column
class _FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing: bool = False) -> None:
        self.t = 0.0

    def record(self) -> None:
        _FakeEvent.clock += 1.0
        self.t = _FakeEvent.clock

    def elapsed_time(self, other: _FakeEvent) -> float:
        return other.t - self.t


def test_cuda_median_ms_times_each_call_between_events(monkeypatch):
    from repro.complexity import runtime

    syncs = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: syncs.append(1))
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    durations = iter([3.0, 1.0, 2.0])

    def forward():
        _FakeEvent.clock += next(durations)  # the GPU's time between the two events

    assert runtime.cuda_median_ms(forward, 3) == pytest.approx(3.0)  # median of 4, 2, 3 (event ticks +1)
    assert len(syncs) == 4  # before the first event, then after each call


def test_require_cuda_says_why(monkeypatch):
    from repro.complexity import runtime
    from repro.errors import ReproError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ReproError, match="no CUDA: this torch .* is a CPU-only build"):
        runtime.require_cuda()
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ReproError, match="sees no CUDA device .*CUDA_VISIBLE_DEVICES=''"):
        runtime.require_cuda()


def test_complexity_record_holds_the_gpu_runtime_when_training_on_cuda(monkeypatch, tmp_path):
    from repro.complexity import measure
    from repro.complexity.table import table_rows
    from repro.results.collect import COMPLEXITY_CACHE, complexity_rows
    from repro.specs.base import Row, TableSpec, baseline

    calls: list[str] = []

    def fake_runtime(net, scale, device="cpu", repeats=10, warmup=2, lr_hw=None):
        calls.append(device)
        return 1.5 if device == "cuda" else 10.0

    monkeypatch.setattr(measure, "runtime_ms", fake_runtime)
    spec = TableSpec("t", "t", (Row("FSRCNN*", "FSRCNN*", (baseline("fsrcnn", 4),)),), complexity=True)
    complexity_rows([spec], None, tmp_path)  # on a CPU: no GPU runtime
    assert calls == ["cpu"]
    entry = json.loads((tmp_path / COMPLEXITY_CACHE).read_text())["networks"]["fsrcnn/x4"]
    assert entry["runtime_gpu_ms"] is None
    rows = complexity_rows([spec], None, tmp_path, device="cuda")  # trained on a GPU: measured again
    assert calls == ["cpu", "cuda", "cpu"]
    entry = json.loads((tmp_path / COMPLEXITY_CACHE).read_text())["networks"]["fsrcnn/x4"]
    assert entry["runtime_gpu_ms"] == 1.5 and entry["runtime_cpu_ms"] == 10.0
    assert table_rows([entry])[0]["gpu"] == "1.50"  # the report's "GPU (ms)" column reads this key
    assert set(rows.metric) == {"params_k", "multiadds_g", "runtime_ms"}  # results.csv: the CPU runtime
    complexity_rows([spec], None, tmp_path, device="cuda")
    assert len(calls) == 3  # cached


def test_tabulate_asks_for_the_gpu_runtime_when_the_runs_trained_on_cuda(monkeypatch, tmp_path):
    import repro.results.tabulate as tabulate_module
    from repro.results.collect import frame

    seen = []

    def fake(tables_, plan, out, **kwargs):
        seen.append(kwargs.get("device"))
        return frame()

    monkeypatch.setattr(tabulate_module, "complexity_rows", fake)
    plan = make_plan(tables("table3"), "smoke")
    for device in ("cuda", "cpu"):
        tabulate_module.tabulate(plan, tmp_path / device, device=device, log=lambda *a: None)
    assert seen == ["cuda", "cpu"]
    assert Path(tmp_path / "cuda" / "results.csv").exists()


# ---------------------------------------------------------------- what the speed settings do to results
@no_cuda
def test_the_fidelity_checks_say_no_cuda_without_one(capsys):
    from repro.bench import gpu_fidelity

    assert gpu_fidelity.run() == {"cuda": False}
    assert "no CUDA" in capsys.readouterr().out


@pytest.mark.slow
def test_the_amp_comparison_trains_and_validates_each_seed(monkeypatch, tmp_path):
    """The bf16-vs-float32 machinery on a CPU (where autocast is a no-op: the two columns must agree to
    the last digit), at a tiny size: the figures a GPU fills in."""
    from repro.bench import gpu_fidelity

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(gpu_fidelity, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_fidelity, "FAST", ["data.hr_patch=48", "data.num_workers=0"])
    monkeypatch.setattr(gpu_fidelity, "AMP_ITERATIONS", {"fsrcnn_baseline": 20})
    monkeypatch.setattr(gpu_fidelity, "_val_set", lambda: "sample")
    out = gpu_fidelity.amp_against_float32(tmp_path)
    rec = out["fsrcnn_baseline"]
    assert out["validation_set"] == "sample" and rec["seeds"] == [0, 1]
    assert len(rec["psnr"]["float32"]) == len(rec["psnr"]["bf16"]) == 2
    assert rec["psnr"]["float32"] == rec["psnr"]["bf16"]  # CPU: autocast is off, the same run
    assert rec["seed_spread"]["float32"] > 0  # two seeds, two results

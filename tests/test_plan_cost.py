"""The cost model of `repro plan`: steps counted through their real objectives, priced at a device's
measured rates; estimates that agree with each other (the consistency rules below hold at CPU-like
and GPU-like rates alike), that a busy machine does not inflate, and the timed steps and the GPU
bench's figures shown beside the model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from repro.cli import main
from repro.plan import cost, count, reference
from repro.plan.reference import Throughput
from repro.plan.runs import make_plan
from repro.specs import tables

# rates of the kind the reference steps measure: a 2-core CPU, and a GPU (launch-bound small steps)
CPU = Throughput(1e11, 2e10, 3e-6, False, 1e10, 127.0, 20.0)
GPU = Throughput(5e13, 4e12, 1e-5, True, 1e13, 127.0, 20.0, engine_s=2e-3)


@pytest.fixture(scope="module")
def plan():
    return make_plan(tables("all"), "paper")


@pytest.fixture(scope="module")
def counts(plan):
    """Every distinct step of the paper's plan, counted once (a few seconds)."""
    by_sig: dict[str, count.StepCount] = {}
    out = {}
    for run in plan.ordered():
        sig = cost.step_signature(run)
        if sig not in by_sig:
            by_sig[sig] = count.count_step(run)
        out[run.id] = by_sig[sig]
    return out


def _run(plan, table, row, scale=4):
    return plan.runs[plan.measured[table, row, scale, 0]]


def _baseline(plan, model, scale):
    return next(r for r in plan.runs.values() if r.cfg.kind == "baseline" and r.cfg.model.name == model
                and r.cfg.data.scale == scale and not r.spec.iterations_of)


@pytest.fixture
def fake_device(monkeypatch, tmp_path):
    """A fresh cache, and the reference steps 'measured' as CPU (nothing is timed)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(reference, "measure", lambda device, *a, **k: CPU)


# ---------------------------------------------------------------- consistency rules
@pytest.mark.parametrize("rates", [CPU, GPU], ids=["cpu", "gpu"])
def test_a_student_is_never_cheaper_per_step_than_its_network_alone(plan, counts, rates):
    students = [r for r in plan.runs.values() if r.cfg.kind == "student"]
    assert len(students) > 10
    for s in students:
        alone = _baseline(plan, s.cfg.model.name, s.cfg.data.scale)
        assert rates.step_s(counts[s.id]) > rates.step_s(counts[alone.id]), s.name
        assert counts[s.id].flops > counts[alone.id].flops and counts[s.id].ops > counts[alone.id].ops


@pytest.mark.parametrize("rates", [CPU, GPU], ids=["cpu", "gpu"])
def test_an_equal_compute_control_costs_its_iterations_share(plan, counts, rates):
    controls = [r for r in plan.runs.values() if r.spec.iterations_of]
    assert controls
    for c in controls:
        alone = _baseline(plan, c.cfg.model.name, c.cfg.data.scale)
        assert counts[c.id] == counts[alone.id]  # the same step ...
        per_c = c.cfg.optim.iterations * rates.step_s(counts[c.id])
        per_b = alone.cfg.optim.iterations * rates.step_s(counts[alone.id])
        ratio = c.cfg.optim.iterations / alone.cfg.optim.iterations  # ... for its iterations
        assert per_c == pytest.approx(per_b * ratio, rel=1e-12) and ratio == pytest.approx(2.0)


@pytest.mark.parametrize("rates", [CPU, GPU], ids=["cpu", "gpu"])
def test_the_same_run_costs_more_at_x2_than_at_x4(plan, counts, rates):
    """At the same HR patch, x2 feeds the network a 4x larger LR image than x4: more work per step,
    and a longer step. But on a GPU, where issuing a small step's operations takes longer than its
    work (FSRCNN-sized: launch-bound), the step costs its launches: a network alone then costs the
    same at both scales, and a DSSD student a little more at x4, whose teacher applies its HFRM twice
    (more operations)."""
    networks = [(_baseline(plan, m, 2), _baseline(plan, m, 4)) for m in ("fsrcnn", "idn", "carn")]
    distilled = [(_run(plan, "appendix1", r, 2), _run(plan, "appendix1", r, 4)) for r in ("DSSD", "PISR")]
    for x2, x4 in networks + distilled:
        assert (x2.cfg.data.scale, x4.cfg.data.scale) == (2, 4)
        assert rates.compute_s(counts[x2.id]) > 2 * rates.compute_s(counts[x4.id]), x2.name
        launch_bound = rates.gpu and rates.step_s(counts[x2.id], engine=False) == \
            counts[x2.id].ops_grouped * rates.launch_s
        if not launch_bound:
            assert rates.step_s(counts[x2.id]) > rates.step_s(counts[x4.id]), x2.name
        elif (x2, x4) in networks:
            assert rates.step_s(counts[x2.id]) == rates.step_s(counts[x4.id]), x2.name
    assert sum(rates.step_s(counts[a.id]) > rates.step_s(counts[b.id]) for a, b in networks) >= 2


@pytest.mark.parametrize("rates", [CPU, GPU], ids=["cpu", "gpu"])
def test_vdsr_costs_more_per_step_than_fsrcnn(plan, counts, rates):
    vdsr, fsrcnn = _baseline(plan, "vdsr", 4), _baseline(plan, "fsrcnn", 4)
    assert rates.step_s(counts[vdsr.id]) > 10 * rates.step_s(counts[fsrcnn.id])


def test_the_estimate_of_a_run_is_its_iterations_times_its_step(plan, counts, fake_device, tmp_path):
    result = cost.estimate(make_plan(tables("table3"), "paper"), tmp_path / "o", "cpu", progress=None)
    assert result.method == "model" and not result.unpriced and result.throughput == CPU
    for run_id, seconds in result.per_run.items():
        run = plan.runs[run_id]
        assert seconds == pytest.approx(run.cfg.optim.iterations * CPU.step_s(counts[run_id]), rel=1e-9)
    assert result.seconds == pytest.approx(sum(result.per_run.values()))


def test_a_cpu_estimate_for_runs_on_several_threads_says_it_is_an_upper_bound(fake_device, tmp_path):
    """One core's rates price a 2-thread run as if on one: the plan says it may take half as long."""
    def notes(threads):
        p = make_plan(tables("table3"), "paper", overrides=(f"run.threads={threads}",))
        return cost.estimate(p, tmp_path / f"o{threads}", "cpu", progress=None).notes

    line = "priced at one core's rates: runs using 2 threads may take as little as 1/2 of this"
    assert any(n.startswith(line) for n in notes(2))
    assert not any("one core's rates" in n for n in notes(1))


# ---------------------------------------------------------------- the counts
def test_a_step_is_counted_through_its_objective():
    """FSRCNN's step: its convolutions' FLOPs three times over (forward, and the two gradients of
    backward) but for the first layer's input gradient, which nothing needs."""
    from repro.models import create

    plan = make_plan(tables("table4"), "paper")
    run = next(r for r in plan.runs.values() if r.cfg.kind == "baseline" and r.cfg.model.name == "fsrcnn")
    net = create("fsrcnn", scale=4)
    lr = run.cfg.data.hr_patch // 4
    fwd = 0
    for m in net.modules():
        if hasattr(m, "weight") and m.weight is not None and m.weight.dim() == 4:
            k = m.weight.shape[2] * m.weight.shape[3]
            out_px = (lr * 4) ** 2 if m.__class__.__name__ == "ConvTranspose2d" else lr ** 2
            in_px = lr ** 2
            # a transposed convolution does k*k*Cin*Cout per input pixel, a convolution per output pixel
            px = in_px if m.__class__.__name__ == "ConvTranspose2d" else out_px
            fwd += 2 * k * m.weight.shape[0] * m.weight.shape[1] * px
    fwd *= run.cfg.optim.batch_size
    c = count.count_step(run)
    assert fwd * 2.5 < c.flops <= fwd * 3 + 1
    assert c.ops_grouped < c.ops  # Adam's multi-tensor kernels on a GPU


@pytest.mark.slow
def test_the_probe_count_equals_a_count_at_full_size(plan):
    """One of each kind of step (every network, teacher and student), probed at a tiny patch and
    scaled, against the count at the run's own size on the meta device: equal but for the dense
    matrices of MATLAB-bicubic resizes inside a network (under 0.5%)."""
    seen = set()
    for run in plan.ordered():
        key = (run.cfg.kind, run.cfg.model.name, run.cfg.model.settings.get("backbone"))
        if key in seen or run.cfg.model.name in ("drcn", "drrn", "memnet", "srfbn"):  # meta: slow
            continue
        seen.add(key)
        probe, full = count.count_step(run), count.count_step(run, "meta")
        assert probe.flops == pytest.approx(full.flops, rel=5e-3), run.name
        assert probe.bytes == pytest.approx(full.bytes, rel=5e-3), run.name
        assert abs(probe.ops - full.ops) <= 2 and abs(probe.ops_grouped - full.ops_grouped) <= 2, run.name
    assert len(seen) >= 8


# ---------------------------------------------------------------- a busy machine
class _Clock:
    """A clock under which every call of a step takes `step_s`, but the first `slow` calls 10x that."""

    def __init__(self, step_s: dict[str, float], slow: int) -> None:
        self.t, self.calls, self.slow, self.step_s, self.current = 0.0, 0, slow, step_s, ""

    def __call__(self) -> float:
        return self.t

    def advance(self, name: str) -> None:
        self.calls += 1
        self.t += self.step_s[name] * (10 if self.calls <= self.slow else 1)


def _timed_references(monkeypatch, slow: int) -> dict[str, float]:
    """`time_references` on a fake clock: each reference step takes its time below (the first `slow`
    step calls 10x that)."""
    clock = _Clock({"launch": 2e-3, "stream": 8e-3, "wide": 0.05, "narrow": 0.012}, slow)
    monkeypatch.setattr(reference, "_small_steps",
                        lambda device: {n: (n, None) for n in ("launch", "stream")})
    monkeypatch.setattr(reference, "_module_step", lambda name, x, foreach=None: lambda: clock.advance(name))
    monkeypatch.setattr(reference, "_network_run", lambda name, device: name)
    monkeypatch.setattr(reference, "training_step", lambda name, device: lambda: clock.advance(name))
    return reference.time_references("cpu", clock=clock, min_seconds=0.0)


def test_reference_rates_are_the_fastest_repeat(monkeypatch):
    """A machine busy while the cache was filled (simulated: the first timings 10x slow) measures
    the same rates as an idle one: each reference keeps its fastest repeat."""
    idle = _timed_references(monkeypatch, slow=0)
    busy = _timed_references(monkeypatch, slow=4)  # the warm-up and the first repeats of a reference
    assert busy == pytest.approx(idle)
    assert idle == pytest.approx({"launch": 2e-3, "stream": 8e-3, "wide": 0.05, "narrow": 0.012})
    monkeypatch.undo()
    counts = reference.count_references("cpu")
    a, b = (dataclasses.asdict(reference.solve(counts, t, gpu=False)) for t in (idle, busy))
    a.pop("measured"), b.pop("measured")
    assert a == pytest.approx(b) and a["flop_per_s"] > a["narrow_flop_per_s"] > 0


def test_a_timed_step_is_the_fastest_repeat(monkeypatch, plan):
    run = _baseline(plan, "fsrcnn", 4)
    durations = iter([5.0, 0.9, 0.1, 0.1, 0.1])  # warm-up, then the first repeat slowed by load
    t = [0.0]

    def clock():
        return t[0]

    monkeypatch.setattr(cost, "training_step", lambda run, device, patch: lambda: t.__setitem__(
        0, t[0] + next(durations)))
    area = (run.cfg.data.hr_patch / cost.CPU_PROBE_PATCH) ** 2
    assert cost.measure_step(run, "cpu", clock=clock) == pytest.approx(1 / (0.1 * area))


def test_the_model_is_priced_from_the_cache_not_remeasured(monkeypatch, tmp_path, fake_device, capsys):
    """Counts and rates are cached: a second `repro plan` measures and counts nothing."""
    assert main(["plan", "table3", "--profile", "paper", "--out", str(tmp_path / "o")]) == 0
    first = capsys.readouterr().out
    assert "[plan] counting the work of 7 distinct training step(s)" in first and "[plan] measuring " in first
    first = first[first.index("plan: 8 runs"):]
    assert "estimated cost of what is missing:" in first and "(model: " in first
    assert "this device: one core: 100 GFLOP/s in wide convolutions, 10 in narrow ones" in first
    monkeypatch.setattr(reference, "measure", lambda *a, **k: pytest.fail("measured again"))
    monkeypatch.setattr(count, "count_step", lambda *a, **k: pytest.fail("counted again"))
    monkeypatch.setattr(cost, "count_step", lambda *a, **k: pytest.fail("counted again"))
    assert main(["plan", "table3", "--profile", "paper", "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out == first


# ---------------------------------------------------------------- timed steps and the GPU bench
def test_timed_steps_are_shown_beside_the_model(monkeypatch, tmp_path, fake_device, capsys):
    plan = make_plan(tables("table3"), "paper")
    monkeypatch.setattr(cost, "measure_step", lambda run, device: 2.0)
    assert main(["plan", "table3", "--profile", "paper", "--estimate", "timed", "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "plan.json")]) == 0
    text = capsys.readouterr().out
    total = sum(r.cfg.optim.iterations / 2.0 for r in plan.runs.values())
    assert f"estimated cost of what is missing: {cost.human(total)} on " in text and "(timed: " in text
    assert "beside it, model: " in text
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["estimate"] == "timed" and all("model" in r["seconds_left_beside"] for r in data["runs"])
    assert all(r["step"]["gflop"] > 0 for r in data["runs"])
    # the model by default, the cached timed steps beside it
    assert main(["plan", "table3", "--profile", "paper", "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "(model: " in text
    assert f"beside it, timed: {cost.human(total)} for the {len(plan.runs)} run(s)" in text


def test_the_gpu_bench_figures_are_beside_the_model_and_set_the_engine_time(monkeypatch, tmp_path, capsys):
    """What `python -m repro.bench --only gpu` writes (step signature -> the engine's it/s on that GPU):
    shown beside the model, and the engine's time per step beyond the model's (the median excess over
    the bench's runs) added to every run priced on that GPU."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda *a: "Fake H100")
    gpu = Throughput(5e13, 4e12, 1e-5, True, 1e13, 127.0, 20.0)
    monkeypatch.setattr(reference, "measure", lambda device, *a, **k: gpu)
    plan = make_plan(tables("table3"), "paper")
    runs = list(plan.runs.values())
    counts = {r.id: count.count_step(r) for r in runs}
    benched = runs[:3]
    bench = {cost.step_signature(r): {"it_per_s": 1 / (gpu.step_s(counts[r.id]) + 4e-3), "run": r.name,
                                      "measured": "2026-01-01", "sharing_speedup": {"4": 2.5}}
             for r in benched}
    cost.write_bench_figures("cuda:Fake H100", bench)
    cost.write_bench_figures("cuda:Another GPU", {cost.step_signature(r): {"it_per_s": 1.0} for r in runs})
    result = cost.estimate(plan, tmp_path / "o", "cuda", progress=None)
    assert result.device == "cuda:Fake H100" and result.throughput.engine_s == pytest.approx(4e-3)
    for r in runs:
        step = gpu.step_s(counts[r.id]) + 4e-3
        assert result.per_run[r.id] == pytest.approx(r.cfg.optim.iterations * step)
    for r in benched:
        assert result.beside[r.id]["bench"] == pytest.approx(result.per_run[r.id])
    assert all("bench" not in result.beside.get(r.id, {}) for r in runs[3:])
    assert main(["plan", "table3", "--profile", "paper", "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "on cuda:Fake H100" in text and "4.00 ms per step of engine time (from the GPU bench)" in text
    assert "the GPU bench measured 3 run kind(s)" in text
    assert "with --runs-per-gpu 4 the bench ran 2.5x" in text


def test_the_estimate_stops_counting_at_its_budget(fake_device, tmp_path):
    plan = make_plan(tables("table3"), "paper")
    result = cost.estimate(plan, tmp_path / "o", "cpu", progress=None, budget_s=-1)
    assert not result.per_run and len(result.unpriced) == len(plan.runs) and result.seconds == 0


# ---------------------------------------------------------------- fleets and CUDA graphs
def test_a_fleet_is_priced_as_its_members_work_in_one_step(plan, counts):
    """On a launch-bound GPU a fleet of 8 FSRCNN runs costs far less than 8 runs one after another (the
    launches are paid once); on a CPU, where issuing and computing add up, it costs about the same
    arithmetic, less the launches saved. A CUDA graph makes a GPU step nearly launch-free."""
    run = _baseline(plan, "fsrcnn", 4)
    c = counts[run.id]
    for rates in (GPU, CPU):
        alone, fleet = cost.model_step_s(rates, c, run.cfg), cost.model_step_s(rates, c, run.cfg, members=8)
        assert alone <= fleet < 8 * alone  # equal where even 8 runs' arithmetic hides under the launches
        assert rates.compute_s(c.fleet(8)) == pytest.approx(8 * rates.compute_s(c))
    assert cost.model_step_s(GPU, c, run.cfg, members=8) < 8 * cost.model_step_s(GPU, c, run.cfg) / 3
    graphed = dataclasses.replace(run.cfg, run=dataclasses.replace(run.cfg.run, cuda_graph=True))
    # the launches go; the arithmetic and the engine's own time per step stay
    assert cost.model_step_s(GPU, c, graphed) == pytest.approx(GPU.compute_s(c) + GPU.engine_s)
    assert cost.model_step_s(GPU, c, graphed) < cost.model_step_s(GPU, c, run.cfg) - 150 * GPU.launch_s
    assert cost.model_step_s(CPU, c, graphed) == cost.model_step_s(CPU, c, run.cfg)  # no graph on a CPU


def test_repro_plan_prices_fleets_at_their_share(fake_device, tmp_path, capsys):
    """`repro plan table3 --fleet 4` lists Table 3's fleets and prices each member at its share of its
    fleet's time; without fleets every run is priced alone."""
    assert main(["plan", "table3", "--profile", "paper", "--fleet", "off", "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "alone.json")]) == 0
    assert main(["plan", "table3", "--profile", "paper", "--fleet", "4", "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "fleets.json")]) == 0
    text = capsys.readouterr().out
    assert "fleets: 6 of the runs train in 2 fleet(s)" in text
    alone, fleets = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("alone", "fleets"))
    left = {r["name"]: r["seconds_left"] for r in alone["runs"]}
    for r in fleets["runs"]:
        if r["kind"] == "baseline":  # not in a fleet: priced as alone
            assert r["seconds_left"] == pytest.approx(left[r["name"]])
        else:  # a member of a fleet of 3, on a CPU: its share of a step doing all three's arithmetic
            assert r["seconds_left"] <= left[r["name"]] * 1.5
    assert fleets["seconds_left"] <= alone["seconds_left"]

"""The whole step as a CUDA graph (run.cuda_graph) and the counter-based sampler through the engine.

What a CPU can honestly check: the setting is refused off CUDA with one line; GraphStep's own logic
(warm-up iterations, one capture of the next, replays fed by copies into the static inputs, the loss
sums added in place) trains exactly as the eager step when the two CUDA primitives (a side stream, a
capture that records instead of running) are stood in for by plain calls. The capture itself needs a
GPU: `scripts/gpu_check.sh` compares a graph run with an eager one there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from repro.cli import main
from repro.data.train_set import clear_memory_cache
from repro.errors import ReproError
from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train import engine, objectives
from repro.train.distributed import Dist
from repro.train.step import DeviceSums, GraphStep, Step, make_body

SHORT = ["optim.iters_per_epoch=12", "run.log_every=4", "run.checkpoint_every=4", "val.sets="]


class RecordingGraphStep(GraphStep):
    """GraphStep with its two CUDA calls stood in for: a warm-up iteration runs in place, and the
    "capture" runs nothing and returns the captured work itself, so every replay runs the body on the
    static inputs, as a CUDA graph replays its recorded kernels on the same memory. The gradients were
    None when the work was captured, so a replay writes them afresh (a graph replays the backward that
    allocated them, not an accumulation): the stand-in's replay starts from None too."""

    captured = 0

    def _side(self, fn: Callable[[], None]) -> None:
        fn()

    def _capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        RecordingGraphStep.captured += 1

        def replay() -> None:
            self.zero_grad()
            fn()

        return replay


def _train_steps(cfg, graph: bool, iterations: int) -> tuple[dict, list[dict[str, float]]]:
    torch.manual_seed(cfg.run.seed)
    obj, frozen, _ = objectives.build(cfg)
    opt = engine.make_optimizer(cfg, obj, torch.device("cpu"))
    feed = engine.Feed(cfg, None, torch.device("cpu"), Dist(), 0)
    sums = DeviceSums()
    body = make_body(obj, opt.step, sums, feed.to_batch, amp=False, teacher=frozen, graph=graph)
    step = RecordingGraphStep(body, opt.zero_grad, torch.device("cpu")) if graph else \
        Step(body, opt.zero_grad)
    windows = []
    for it in range(iterations):
        opt.at(it)
        step(next(feed.inputs))
        if (it + 1) % 3 == 0:
            windows.append(sums.read())
    feed.close()
    return {k: v.clone() for k, v in obj.state_dict().items()}, windows


@pytest.mark.parametrize("on_device", [False, True])
def test_graph_step_logic_trains_as_the_eager_step(on_device):
    """Warm-up, capture and replays (the on-device cut inside the captured work when data.on_device)
    give bit-identical weights and loss sums to the eager step, iteration for iteration."""
    cfg = resolve("smoke", kind="teacher", model="dssd_teacher",
                  overrides=[*SHORT, f"data.on_device={str(on_device).lower()}"])
    RecordingGraphStep.captured = 0
    eager, eager_sums = _train_steps(cfg, graph=False, iterations=9)
    graph, graph_sums = _train_steps(cfg, graph=True, iterations=9)
    assert RecordingGraphStep.captured == 1  # one capture, then replays
    assert graph_sums == eager_sums and len(graph_sums) == 3
    assert graph.keys() == eager.keys() and all(torch.equal(graph[k], eager[k]) for k in eager)


def test_graph_step_replays_read_the_static_inputs_only():
    """After the capture the step's inputs reach the work only through the static copy: a replay given
    new inputs computes on them (not on the inputs of the captured iteration)."""
    seen: list[torch.Tensor] = []

    step = RecordingGraphStep(lambda x: seen.append(x.clone()), lambda: None, torch.device("cpu"), warmup=2)
    for value in range(5):
        step(torch.full((2,), float(value)))
    assert [int(s[0]) for s in seen] == [0, 1, 2, 3, 4]
    assert step.static is not None and int(step.static[0]) == 4


def test_cuda_graph_is_refused_on_a_cpu_with_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["train", "baseline", "--profile", "smoke", "--out", str(out), "--no-progress",
                 "--set", "run.cuda_graph=true", "--set", "run.device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "run.cuda_graph needs a CUDA device" in err[0] and "run.cuda_graph=false" in err[0]
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.csv").exists()


def test_cuda_graph_excludes_compile_and_is_hashed_when_set():
    plain = resolve("smoke")
    graph = resolve("smoke", overrides=["run.cuda_graph=true"])
    assert graph.hash() != plain.hash()
    assert "cuda_graph" not in plain.identity()["run"]  # runs trained before the setting keep their hash
    with pytest.raises(ReproError, match="both capture the step"):
        resolve("smoke", overrides=["run.cuda_graph=true", "run.compile=reduce-overhead"])


def test_sampler_version_is_hashed_and_only_the_current_trains():
    from repro.data.sampler import SAMPLER_VERSION

    cfg = resolve("smoke")
    assert cfg.data.sampler == SAMPLER_VERSION and cfg.identity()["data"]["sampler"] == SAMPLER_VERSION
    with pytest.raises(ReproError, match="only the patch sampler version"):
        resolve("smoke", overrides=["data.sampler=1"])


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """The batch of every iteration after a resume point is the one the uninterrupted run trained on
    (the draw is a function of seed, iteration and position; nothing is replayed to get there)."""
    seen: dict[str, list[torch.Tensor]] = {"full": [], "before": [], "resumed": []}
    forward = objectives.Baseline.forward
    current = ["full"]

    def spy(self, batch):
        seen[current[0]].append(batch["hr"].clone())
        return forward(self, batch)

    monkeypatch.setattr(objectives.Baseline, "forward", spy)
    cfg = resolve("smoke", overrides=SHORT)
    engine.train(cfg, out=tmp_path / "full", progress=False)
    # a run that stopped after its checkpoint at iteration 8: resume there
    short = tmp_path / "resumed"
    current[0] = "before"
    engine.train(resolve("smoke", overrides=SHORT), out=short, progress=False)
    ckpt = torch.load(short / "checkpoint.pt", weights_only=False)
    assert ckpt["iteration"] == 8
    (short / "done.json").unlink()
    (short / "model.pt").unlink()
    current[0] = "resumed"
    clear_memory_cache()
    engine.train(cfg, out=short, progress=False)
    assert len(seen["resumed"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(seen["full"][8:], seen["resumed"], strict=True))
    def losses(run):
        return [(r["iteration"], r["loss"], r["lr"]) for r in read_metrics(run)]

    assert losses(short) == losses(tmp_path / "full")

"""What a device does per second: four reference training steps timed on it, each the fastest of several
repeats (a busy machine can only make a repeat slower, so the fastest is what the device does).

- `launch`: a stack of tiny convolutions on an 8x8 image: nothing to compute, so its time per
  operation is the fixed cost of issuing one (the host's dispatch; on a GPU, a kernel launch);
- `stream`: elementwise operations on large tensors: bytes moved per second;
- `wide`: a VDSR training step (64-channel 3x3 convolutions, much work per byte): FLOPs per second of
  the wide convolutions that make up VDSR, DRCN, DRRN and MemNet;
- `narrow`: an FSRCNN training step (12- to 56-channel convolutions, 1x1 shrinking and expanding, a
  9x9 deconvolution: little work per byte): FLOPs per second of the narrow convolutions of FSRCNN, the
  teachers and the students, which run far below the wide ones' rate (on the 2-core CPU here, a
  third to a half).

The two network steps are the suite's own objectives, counted as a run's step is (`repro.plan.count`),
so the rates are solved from the same kind of counts a run is priced with (`Throughput.step_s`): a
convolution is priced at the rate of its arithmetic intensity (FLOPs per byte it moves), interpolated
between the two references on a log scale and held at the nearer one outside them, and never faster
than its bytes at the measured bandwidth (a per-operation roofline).

On a CPU the steps run on one thread and are timed by that thread's CPU time, which other jobs on the
machine do not lengthen (its wall clock they do, and a step split over threads waits for the slowest of
them: measured here, a 2-thread convolution step took 330 ms while another job held a core, 18 ms on
one thread). The rates are one core's, and a run is priced at them whatever its threads: it may go up to
that many times faster on idle cores, never slower.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from repro.plan.count import StepCount, _recorder, count_step, summarise, training_step, work_of

REPEATS = 5  # timed repeats of each reference step at least (after one warm-up); the fastest is kept
MIN_SECONDS = 0.15  # ... and repeats for at least this long (at most MAX_REPEATS), so that a busy
MAX_REPEATS = 50  # machine's quieter moments are among them
VERSION = 3

# (batch, channels, side) of the stream step; (batch, HR patch) of the network steps: small enough on a
# CPU to time in a second, large enough on a GPU that its launches do not hide the work
SIZES = {"cpu": {"stream": (8, 32, 64), "wide": (2, 24), "narrow": (16, 48)},
         "cuda": {"stream": (16, 64, 192), "wide": (16, 96), "narrow": (16, 192)}}
NETWORKS = {"wide": "vdsr", "narrow": "fsrcnn"}


@dataclass(frozen=True)
class Throughput:
    """A device's measured rates, and how they combine into a step's time."""

    flop_per_s: float  # wide convolutions, at `intensity` FLOPs per byte
    bytes_per_s: float
    launch_s: float  # per operation
    gpu: bool  # the host issues operations while the device runs earlier ones; Adam's multi-tensor kernels
    narrow_flop_per_s: float = 0.0  # narrow convolutions, at `narrow_intensity` (0: as wide ones)
    intensity: float = 1.0
    narrow_intensity: float = 1.0
    engine_s: float = 0.0  # per step, beyond the counted work: from the GPU bench's engine figures
    measured: str = ""

    def flop_rate(self, intensity: float) -> float:
        """FLOPs per second of a convolution doing `intensity` FLOPs per byte it moves."""
        lo, hi = self.narrow_intensity, self.intensity
        if not self.narrow_flop_per_s or intensity >= hi or hi <= lo:
            return self.flop_per_s
        if intensity <= lo:
            return self.narrow_flop_per_s
        t = math.log(intensity / lo) / math.log(hi / lo)
        return math.exp(math.log(self.narrow_flop_per_s) * (1 - t) + math.log(self.flop_per_s) * t)

    def compute_s(self, count: StepCount) -> float:
        """Seconds the device spends on the step's arithmetic and memory traffic (per-operation roofline
        for operations with FLOPs, bandwidth for the rest)."""
        heavy = sum(n * max(f / self.flop_rate(f / b if b else math.inf), b / self.bytes_per_s)
                    for f, b, n in count.heavy)
        return heavy + count.light_bytes / self.bytes_per_s

    def step_s(self, count: StepCount, engine: bool = True) -> float:
        """Seconds of one training step: issuing its operations and computing them, added on a CPU (one
        thread of control does both), overlapped on a GPU; plus the engine's own per-step time."""
        issue = (count.ops_grouped if self.gpu else count.ops) * self.launch_s
        work = self.compute_s(count)
        step = max(issue, work) if self.gpu else issue + work
        return step + (self.engine_s if engine else 0.0)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "version": VERSION}

    @classmethod
    def from_json(cls, data: Any) -> Throughput | None:
        try:
            if data.get("version") != VERSION:
                return None
            out = cls(float(data["flop_per_s"]), float(data["bytes_per_s"]), float(data["launch_s"]),
                      bool(data["gpu"]), float(data["narrow_flop_per_s"]), float(data["intensity"]),
                      float(data["narrow_intensity"]), float(data.get("engine_s", 0.0)),
                      str(data.get("measured", "")))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return out if min(out.flop_per_s, out.bytes_per_s, out.launch_s) > 0 else None

    def describe(self) -> str:
        text = (("one core: " if not self.gpu else "")
                + f"{self.flop_per_s / 1e9:,.0f} GFLOP/s in wide convolutions, "
                f"{self.narrow_flop_per_s / 1e9:,.0f} in narrow ones, {self.bytes_per_s / 1e9:,.1f} GB/s, "
                f"{self.launch_s * 1e6:,.1f} us per operation")
        if self.engine_s:
            text += f", {self.engine_s * 1e3:,.2f} ms per step of engine time (from the GPU bench)"
        return text


def _kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def _network_run(name: str, device: str):
    """The reference training run of `name` ("wide" or "narrow") at `device`'s size."""
    from repro.plan.runs import PlannedRun
    from repro.runs.config import resolve
    from repro.specs.base import baseline

    batch, patch = SIZES[_kind(device)][name]
    spec = baseline(NETWORKS[name], 4)
    cfg = resolve("paper", kind="baseline", model=spec.model, scale=4,
                  overrides=[f"optim.batch_size={batch}", f"data.hr_patch={patch}"])
    return PlannedRun(cfg, spec, 0)


def _small_steps(device: str, kind: str | None = None) -> dict[str, tuple[Any, Any]]:
    """name -> (module, input) of the launch and stream steps at `kind`'s sizes (default the
    device's), on `device`."""
    import torch
    from torch import nn

    n, c, s = SIZES[kind or _kind(device)]["stream"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        launch = nn.Sequential(*[m for _ in range(12) for m in (nn.Conv2d(4, 4, 3, padding=1), nn.PReLU(4))])
        stream = nn.Sequential(*[nn.PReLU(c) for _ in range(4)])
        return {"launch": (launch.to(device), torch.rand(1, 4, 8, 8, device=device)),
                "stream": (stream.to(device), torch.rand(n, c, s, s, device=device))}


def _module_step(net, x, foreach: bool | None = None):
    import torch

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, foreach=foreach)

    def step() -> None:
        loss = net(x).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def count_references(device: str = "cpu") -> dict[str, StepCount]:
    """The reference steps' counts at `device`'s sizes (counts depend on no device)."""
    out = {}
    kind = _kind(device)
    for name, (net, x) in _small_steps("meta" if kind == "cuda" else "cpu", kind).items():
        single, grouped = _recorder(), _recorder()
        with single:
            _module_step(net, x, foreach=False)()
        with grouped:
            _module_step(net, x, foreach=True)()
        out[name] = summarise(work_of(single.ops), len(grouped.ops) - len(single.ops))
    for name in NETWORKS:
        out[name] = count_step(_network_run(name, device))
    return out


def time_references(device: str, repeats: int = REPEATS, clock=None,
                    min_seconds: float = MIN_SECONDS) -> dict[str, float]:
    """Seconds of each reference step on `device`: the fastest of at least `repeats` after a warm-up
    (more while `min_seconds` have not passed). On a CPU on one thread, by the CPU time of that thread;
    on a GPU by the wall clock around synchronised steps."""
    import torch

    cuda = _kind(device) == "cuda"
    clock = clock or (time.perf_counter if cuda else time.thread_time)
    steps = {name: _module_step(net, x) for name, (net, x) in _small_steps(device).items()}
    steps.update({name: training_step(_network_run(name, device), device) for name in NETWORKS})
    out = {}
    threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(1)
    try:
        for name, step in steps.items():
            step()  # warm-up: allocations, kernel selection
            best, n, start = float("inf"), 0, time.perf_counter()
            while (n < repeats or time.perf_counter() - start < min_seconds) and n < MAX_REPEATS:
                if cuda:
                    torch.cuda.synchronize()
                t0 = clock()
                step()
                if cuda:
                    torch.cuda.synchronize()
                best, n = min(best, clock() - t0), n + 1
            out[name] = best
    finally:
        torch.set_num_threads(threads)
    return out


def _intensity(count: StepCount) -> float:
    """FLOPs per byte of a step's operations with FLOPs (FLOP-weighted)."""
    flops = sum(f * n for f, _, n in count.heavy)
    moved = sum(b * n for _, b, n in count.heavy)
    return flops / moved if moved else 1.0


def _solve_rate(seconds: float, time_at) -> float:
    """The FLOP rate at which `time_at(rate)` (decreasing in it) equals `seconds`, by bisection on a log
    scale; held at the bounds where the step's other parts alone take that long."""
    lo, hi = 1e6, 1e18
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if time_at(mid) > seconds else (lo, mid)
    return math.sqrt(lo * hi)


def solve(counts: dict[str, StepCount], seconds: dict[str, float], gpu: bool) -> Throughput:
    """The rates that reproduce the four reference times: the launch cost from the tiny step, the
    bandwidth from the elementwise one, then the wide and narrow FLOP rates that make the model's time
    of the VDSR and FSRCNN steps equal their measured times (a few rounds: each figure's share of the
    others' references is small)."""
    def ops(name: str) -> int:
        return counts[name].ops_grouped if gpu else counts[name].ops

    wide_i, narrow_i = _intensity(counts["wide"]), _intensity(counts["narrow"])
    launch_s = seconds["launch"] / ops("launch")
    bytes_per_s = counts["stream"].bytes / seconds["stream"]
    wide = counts["wide"].flops / seconds["wide"]
    narrow = counts["narrow"].flops / seconds["narrow"]
    for _ in range(4):
        est = Throughput(wide, bytes_per_s, launch_s, gpu, narrow, wide_i, narrow_i)
        launch_s = max(seconds["launch"] - (0 if gpu else est.compute_s(counts["launch"])),
                       0.25 * seconds["launch"]) / ops("launch")
        left = seconds["stream"] - (0 if gpu else ops("stream") * launch_s)
        bytes_per_s = counts["stream"].bytes / max(left, 0.25 * seconds["stream"])

        def model(name: str, wide_rate: float, narrow_rate: float, b: float = bytes_per_s,
                  launch: float = launch_s) -> float:
            return Throughput(wide_rate, b, launch, gpu, narrow_rate, wide_i, narrow_i).step_s(counts[name])

        narrow_now = narrow
        wide = _solve_rate(seconds["wide"], lambda r, n=narrow_now: model("wide", r, min(n, r)))
        narrow = min(wide, _solve_rate(seconds["narrow"], lambda r, w=wide: model("narrow", w, min(r, w))))
    return Throughput(wide, bytes_per_s, launch_s, gpu, narrow, wide_i, narrow_i,
                      measured=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def measure(device: str, repeats: int = REPEATS, clock=None) -> Throughput:
    """This device's throughput, from its reference steps."""
    return solve(count_references(device), time_references(device, repeats, clock),
                 gpu=_kind(device) == "cuda")

"""What one training step computes: FLOPs, memory traffic and operations, counted through the real step.

A step is the run's own objective (`repro.train.objectives`: the network, a student's frozen teacher
and VID branches, the loss terms), its backward and an Adam step, as the engine runs it. Every aten
operation it dispatches is recorded by a `TorchDispatchMode`: its FLOPs by torch's FLOP counter
formulas (`torch.utils.flop_counter.flop_registry`: convolutions, matrix products), its memory traffic
as the bytes of its tensor inputs and outputs (what an unfused eager kernel reads and writes).

The step runs once on the CPU at a tiny patch (three LR pixels a side) with a batch of two, and every
tensor of every operation is scaled to the run's batch and patch: a tensor with two rows is a
per-sample one (no weight of these networks has two rows) and takes the run's batch, and its last two
dimensions the run's patch where they are spatial (wider than one pixel: a pooled per-channel tensor
is not); any other tensor (weights, their gradients, Adam's moments, scalars) is kept as it is. FLOPs
are the formulas applied to the scaled shapes. A step is a fixed sequence of operations whose sizes
follow the patch, so this equals counting at full size, which tests check against a count on the meta
device (`count_step(run, "meta")`: exact, allocates nothing, but slow, since torch's meta kernels of
elementwise operations run in Python). Counts depend on no device; `repro.plan.cost` caches them and
prices them on each device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro.plan.runs import PlannedRun

VERSION = 1  # of the counting: a cached count of another version is counted again
GRAPH_LAUNCHES = 4  # a graph-replayed step: the learning rate's fill, the inputs' copy, the replay


@dataclass(frozen=True)
class StepCount:
    """One step's work: operations dispatched, FLOPs, and bytes moved.

    `heavy` lists the operations with FLOPs (convolutions, matrix products) as (FLOPs, bytes, how
    many such operations), since each is priced on its own roofline; `light_bytes` is what every other
    operation (elementwise, reductions, copies, the optimizer) reads and writes. `ops` counts Adam's
    update one parameter at a time (as torch runs it on a CPU), `ops_grouped` with its multi-tensor
    (foreach) kernels, as torch runs it on a GPU.
    """

    ops: int
    ops_grouped: int
    flops: float
    bytes: float
    light_bytes: float
    heavy: tuple[tuple[float, float, int], ...]

    def fleet(self, members: int) -> StepCount:
        """The step of a fleet of `members` such runs (`repro.train.fleet`): every operation batched over
        the members (a convolution grouped), so the arithmetic and traffic grow with them and the
        operations dispatched do not."""
        n = members
        return dataclasses.replace(self, flops=self.flops * n, bytes=self.bytes * n,
                                   light_bytes=self.light_bytes * n,
                                   heavy=tuple((f * n, b * n, k) for f, b, k in self.heavy))

    def graphed(self) -> StepCount:
        """The step replayed as one CUDA graph (`run.cuda_graph`): a few launches (the inputs' copies,
        the replay) instead of one per operation."""
        return dataclasses.replace(self, ops=GRAPH_LAUNCHES, ops_grouped=GRAPH_LAUNCHES)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "heavy": [list(h) for h in self.heavy], "version": VERSION}

    @classmethod
    def from_json(cls, data: Any) -> StepCount | None:
        try:
            if data.get("version") != VERSION:
                return None
            heavy = tuple((float(f), float(b), int(n)) for f, b, n in data["heavy"])
            return cls(int(data["ops"]), int(data["ops_grouped"]), float(data["flops"]),
                       float(data["bytes"]), float(data["light_bytes"]), heavy)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


class Shape(tuple):
    """A tensor's shape and element size, as a leaf of the recorded argument trees."""

    itemsize: int = 4


def _shape(t) -> Shape:
    s = Shape(t.shape)
    s.itemsize = t.element_size()
    return s


@dataclass
class Op:
    """One dispatched operation: its tensors' shapes, and its arguments where a FLOP formula needs them."""

    func: Any
    shapes: list[Shape]
    call: tuple[Any, Any, Any] | None = None  # (args, kwargs, output) with tensors as Shape


def _shapes(value: Any, out: list[Shape]) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        out.append(_shape(value))
    elif isinstance(value, (list, tuple)):
        for v in value:
            _shapes(v, out)


def _recorder():
    """A dispatch mode that records every aten operation dispatched under it (as `Op`)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map
    from torch.utils.flop_counter import flop_registry

    def as_shape(x):
        return _shape(x) if isinstance(x, torch.Tensor) else x

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[Op] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            shapes: list[Shape] = []
            _shapes(args, shapes)
            if kwargs:
                _shapes(list(kwargs.values()), shapes)
            _shapes(out, shapes)
            call = None
            if func._overloadpacket in flop_registry:
                call = tree_map(as_shape, (args, kwargs, out))
            self.ops.append(Op(func, shapes, call))
            return out

    return Recorder()


def _objective(run: PlannedRun):
    """The run's step as the engine builds it: a function of a batch giving the loss (a student's frozen
    teacher's features first), and the parameters Adam trains."""
    from repro.models import create
    from repro.train import objectives

    teacher = None
    if run.teacher is not None:
        tcfg = run.teacher.cfg
        teacher = create(tcfg.model.name, scale=tcfg.data.scale, **tcfg.network_settings()).eval()
    obj, frozen, _ = objectives.build(run.cfg, teacher)
    obj.train()

    def loss_of(batch: dict[str, Any]):
        return obj({**batch, "teacher": frozen(batch)} if frozen is not None else batch)[0]

    return loss_of, [p for p in obj.parameters() if p.requires_grad]


def _inputs(cfg, patch: int, batch: int) -> dict[str, Any]:
    """A random batch of the run's shapes (HR, the bicubic levels, LR last) on the current device."""
    import torch

    from repro.scales import level_factors

    c = cfg.data.in_channels
    targets = [torch.rand(batch, c, patch // f, patch // f) for f in level_factors(cfg.data.scale)]
    return {"hr": torch.rand(batch, c, patch, patch), "lr": targets[-1], "targets": targets}


def training_step(run: PlannedRun, device: str = "cpu", patch: int | None = None):
    """A callable doing one training step of `run` on `device` (on random tensors of its batch and
    `patch`, default its own), as the engine does it: forward, backward, Adam."""
    import torch

    cfg = run.cfg
    with torch.device(device):
        loss_of, params = _objective(run)
        optimizer = torch.optim.Adam(params, lr=1e-4, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                     weight_decay=cfg.optim.weight_decay)
        inputs = _inputs(cfg, patch or cfg.data.hr_patch, cfg.optim.batch_size)

    def step() -> None:
        loss = loss_of(inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def record_step(run: PlannedRun, patch: int, batch: int, device: str = "cpu") -> tuple[list[Op], int]:
    """Every operation of one training step at `patch` x `batch`, and how many operations fewer the
    Adam step takes with multi-tensor kernels."""
    import torch

    cfg = run.cfg
    with torch.device(device):  # built on the device; run outside the context, which costs per call
        loss_of, params = _objective(run)
        optimizer = torch.optim.Adam(params, lr=1e-4, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                     weight_decay=cfg.optim.weight_decay, foreach=False)
        inputs = _inputs(cfg, patch, batch)
    recorder, grouped = _recorder(), _recorder()
    with recorder:
        loss = loss_of(inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = len(recorder.ops)
        optimizer.step()
    single = len(recorder.ops) - before
    with grouped:
        torch.optim.Adam(params, lr=1e-4, foreach=True).step()
    return recorder.ops, len(grouped.ops) - single


PROBE_BATCH = 2  # no parameter of these networks has 2 rows, so a tensor with 2 rows is per-sample


def _scaled(shape: Shape, batch: int, zoom: float) -> Shape:
    """The run's shape of a tensor seen as `shape` in the probe: per-sample if its first dimension is
    the probe's batch (its last two dimensions then spatial where wider than one pixel)."""
    if not shape or shape[0] != PROBE_BATCH:
        return shape
    dims = list(shape)
    if len(dims) >= 3:
        dims[0] = batch
        dims[-2:] = [round(d * zoom) if d > 1 else d for d in dims[-2:]]
    elif len(dims) == 1:  # a flattened per-sample, per-pixel tensor
        dims[0] = round(batch * zoom * zoom)
    else:
        dims[0] = batch
    out = Shape(dims)
    out.itemsize = shape.itemsize
    return out


def _numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def work_of(ops: list[Op], batch: int = PROBE_BATCH, zoom: float = 1.0) -> list[tuple[float, float]]:
    """(FLOPs, bytes) of each operation at `batch` and `zoom` x the recorded patch side (the record's
    own figures with the defaults)."""
    from torch.utils._pytree import tree_map
    from torch.utils.flop_counter import flop_registry

    def scale(x):
        return _scaled(x, batch, zoom) if isinstance(x, Shape) else x

    same = batch == PROBE_BATCH and zoom == 1.0
    out = []
    for op in ops:
        moved = sum(_numel(s := (x if same else _scaled(x, batch, zoom))) * s.itemsize for x in op.shapes)
        flops = 0.0
        if op.call is not None:
            formula = flop_registry[op.func._overloadpacket].__wrapped__
            args, kwargs, result = op.call
            flops = float(formula(*args, out_shape=result, **kwargs))
            if not same:
                try:
                    args, kwargs, result = tree_map(scale, op.call, is_leaf=lambda v: isinstance(v, Shape))
                    flops = float(formula(*args, out_shape=result, **kwargs))
                except (AssertionError, ValueError, TypeError, IndexError):
                    # a product of a per-sample tensor folded into another shape (a matrix resize):
                    # its FLOPs grow as its bytes do
                    probe = sum(_numel(x) * x.itemsize for x in op.shapes)
                    flops *= moved / probe if probe else 1.0
        out.append((flops, float(moved)))
    return out


def summarise(work: list[tuple[float, float]], grouped_delta: int = 0) -> StepCount:
    heavy: dict[tuple[float, float], int] = {}
    light = 0.0
    for flops, moved in work:
        if flops > 0:
            heavy[flops, moved] = heavy.get((flops, moved), 0) + 1
        else:
            light += moved
    return StepCount(ops=len(work), ops_grouped=len(work) + grouped_delta, flops=sum(f for f, _ in work),
                     bytes=sum(b for _, b in work), light_bytes=light,
                     heavy=tuple((f, b, n) for (f, b), n in sorted(heavy.items())))


def probe_patch(run: PlannedRun) -> int:
    """A tiny HR patch side with whole pixels at every level of the run's scale and three LR pixels
    (not two: no spatial side may equal the probe's batch)."""
    from repro.scales import crop_multiple

    return 3 * crop_multiple(run.cfg.data.scale)


def count_step(run: PlannedRun, device: str = "cpu") -> StepCount:
    """The run's training step at its own batch and patch: from a probe on the CPU (see the module's
    docstring), or with `device` "meta" counted at full size (slower; what the probe is checked
    against)."""
    import torch

    cfg = run.cfg
    if device == "meta":
        ops, delta = record_step(run, cfg.data.hr_patch, cfg.optim.batch_size, device="meta")
        return summarise(work_of(ops), delta)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny probes: threads cost more than they bring, and the count is the same
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            p = probe_patch(run)
            ops, delta = record_step(run, p, PROBE_BATCH)
    finally:
        torch.set_num_threads(threads)
    return summarise(work_of(ops, cfg.optim.batch_size, cfg.data.hr_patch / p), delta)

"""One training iteration, eagerly or replayed as a CUDA graph, and what it needs around it.

A step takes the iteration's inputs (a batch on the device, or the parameters the on-device patch
source cuts a batch from), runs the objective (`(loss, terms)`), adds the loss terms to running sums on
the device (`DeviceSums`), backpropagates and steps the optimizer. It never reads a tensor to the host:
the sums are read once per logged row, where a non-finite loss is caught.

`run.cuda_graph` (`GraphStep`): on a GPU the networks of this suite are so small that a step is bound
by the host's launches (~280 operations of 10-20 us each), not by the device. The whole step, the
batch's cut from the on-device set included, is captured once as a CUDA graph and replayed each
iteration with the next inputs copied into its static buffers: a few launches per step instead of
hundreds. The first `GRAPH_WARMUP` iterations run eagerly on a side stream (the warm-up CUDA requires
before a capture, cuDNN's algorithm choice, the optimizer's state), so every iteration is a real one and
the patch sequence, checkpoints and resume are those of an eager run. Adam is then fused and
capturable (its step count on the device) and the learning rate a device tensor the schedule fills
before each replay; those two change the float rounding of the update, so a graph run's weights equal
an eager run's only within a float tolerance (`scripts/gpu_check.sh` measures it), and `run.cuda_graph`
is part of the run's hash.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError
from repro.models.losses import Terms

GRAPH_WARMUP = 3  # eager iterations before the capture (CUDA's recommendation for a whole-network graph)
Inputs = Any  # a tensor, or a dict / list of tensors


class DeviceSums:
    """Running sums of a window's loss terms, kept on the device in one float64 buffer: a step adds its
    terms (one stack, one add, no host read) and `read` brings the sums to the host once per logged row
    and zeroes the buffer in place (so a captured step keeps adding to the same memory).

    The float64 sums of the float32 terms in iteration order: the very numbers the host summed when
    every step read its terms."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.total: torch.Tensor | None = None

    def add(self, terms: Terms) -> None:
        if self.keys is None:
            self.keys = list(terms)
        elif list(terms) != self.keys:
            raise ReproError(f"the loss terms changed within a run: {self.keys} then {list(terms)}")
        row = self._row(terms, self.keys)
        if self.total is None:
            self.total = torch.zeros_like(row)
        self.total.add_(row)

    @staticmethod
    def _row(terms: Terms, keys: list[str]) -> torch.Tensor:
        return torch.stack([terms[k].detach().reshape(()).float() for k in keys]).double()

    def read(self) -> dict[str, float]:
        """The sums as floats (waits for the device's queued steps); the window starts again at zero."""
        if self.total is None or self.keys is None:
            return {}
        values = self.total.tolist()
        self.total.zero_()
        return dict(zip(self.keys, values, strict=True))


class LRSchedule:
    """lr factor at iteration i: `cosine` from 1 down to `floor` (min lr / lr) along half a cosine over
    `total` iterations, or `constant` 1."""

    def __init__(self, total: int, floor: float, schedule: str = "cosine") -> None:
        self.total, self.floor, self.schedule = total, floor, schedule

    def __call__(self, i: int) -> float:
        if self.schedule == "constant":
            return 1.0
        progress = min(i, self.total) / self.total
        return self.floor + (1.0 - self.floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Optimizer:
    """Adam and its schedule: the learning rate of iteration i is `lr * schedule(i)`, set before the step
    (a function of the iteration, so a resumed run needs no scheduler state). With `graph`, Adam is fused
    and capturable and its learning rate a device tensor, filled in place."""

    def __init__(self, params: list[nn.Parameter], lr: float, schedule: LRSchedule,
                 betas: tuple[float, float], eps: float, weight_decay: float, graph: bool = False,
                 fused: bool = False) -> None:
        self.base, self.schedule, self.graph = lr, schedule, graph
        extra: dict[str, Any] = {}
        if graph:
            self.lr = torch.tensor(lr, dtype=torch.float32, device=params[0].device)
            extra = {"fused": True, "capturable": True}
        elif fused:
            extra = {"fused": True}
        self.adam = torch.optim.Adam(params, lr=self.lr if graph else lr, betas=betas, eps=eps,
                                     weight_decay=weight_decay, **extra)

    def at(self, i: int) -> float:
        """Set (and return) the learning rate of iteration i."""
        lr = self.base * self.schedule(i)
        for group in self.adam.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        return lr

    def zero_grad(self) -> None:
        self.adam.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.adam.step()

    def state_dict(self) -> dict[str, Any]:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.adam.load_state_dict(state)
        if self.graph:  # the saved lr is a CPU copy; the step reads the device tensor
            for group in self.adam.param_groups:
                group["lr"] = self.lr


class Step:
    """One eager iteration: `body(inputs)` runs the objective, adds its terms to `sums`, backpropagates
    and steps the optimizer. Under `run.compile` each step first tells torch.compile's CUDA graphs
    (mode reduce-overhead) that the last step's outputs are done with."""

    def __init__(self, body: Callable[[Inputs], None], zero_grad: Callable[[], None],
                 compiled: bool = False) -> None:
        self.body, self.zero_grad, self.compiled = body, zero_grad, compiled

    def __call__(self, inputs: Inputs) -> None:
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()
        self.zero_grad()  # set to None: the backward writes fresh gradients
        self.body(inputs)


def _tree(fn: Callable[..., Any], *trees: Inputs) -> Any:
    """`fn` applied leaf by leaf over tensors, dicts and lists of the same shape."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _tree(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, list | tuple):
        return [_tree(fn, *parts) for parts in zip(*trees, strict=True)]
    return fn(*trees)


class GraphStep(Step):
    """The iteration as a CUDA graph: `warmup` eager iterations on a side stream, then one capture
    (recorded, not run) of the next, run by a first replay; then a replay per iteration, each with its
    inputs copied into the static ones the graph reads. `_side` and `_capture` are the only CUDA calls."""

    def __init__(self, body: Callable[[Inputs], None], zero_grad: Callable[[], None], device: torch.device,
                 warmup: int = GRAPH_WARMUP) -> None:
        super().__init__(body, zero_grad)
        self.device, self.warmup, self.calls = device, warmup, 0
        self.static: Inputs | None = None
        self.replay: Callable[[], None] | None = None
        self._side_stream: torch.cuda.Stream | None = None

    def __call__(self, inputs: Inputs) -> None:
        self.calls += 1
        if self.replay is None and self.calls <= self.warmup:
            self._side(lambda: super(GraphStep, self).__call__(inputs))
            return
        if self.replay is None:
            self.static = _tree(lambda x: x.clone(), inputs)
            self.zero_grad()  # the graph allocates the gradients it writes
            self.replay = self._capture(lambda: self.body(self.static))
        else:
            _tree(lambda s, x: s.copy_(x, non_blocking=True), self.static, inputs)
        self.replay()

    def _side(self, fn: Callable[[], None]) -> None:
        """Run `fn` on a side stream (a warm-up iteration), ordered after and before the current stream."""
        side, current = self._stream(), torch.cuda.current_stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            fn()
        current.wait_stream(side)

    def _capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Record `fn`'s GPU work as a graph (nothing runs); its replay. Thread-local capture: the
        loader's pin-memory thread may call CUDA meanwhile."""
        graph, side = torch.cuda.CUDAGraph(), self._stream()
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
            fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        return graph.replay

    def _stream(self) -> torch.cuda.Stream:
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(self.device)
        return self._side_stream


def make_body(forward: Callable[[dict[str, Any]], tuple[torch.Tensor, Terms]],
              optimizer_step: Callable[[], None], sums: DeviceSums,
              to_batch: Callable[[Inputs], dict[str, Any]], amp: bool, clip: Callable[[], Any] | None = None,
              teacher: Callable[[dict[str, Any]], torch.Tensor] | None = None,
              graph: bool = False) -> Callable[[Inputs], None]:
    """The work of one iteration after zero_grad: the batch from the inputs, a student's frozen
    teacher's features, `forward` (the objective: `(loss, terms)`) under bf16 autocast if `amp`, the terms
    summed, backward, `clip` (the gradients' clipping, if any), the optimizer's step. A run's and a
    fleet's step alike (a fleet's forward is its members' under vmap, its loss their sum)."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp, cache_enabled=not graph) \
        if amp else contextlib.nullcontext()

    def body(inputs: Inputs) -> None:
        batch = to_batch(inputs)
        with autocast:
            if teacher is not None:
                batch = {**batch, "teacher": teacher(batch)}
            loss, terms = forward(batch)
        sums.add(terms)
        loss.backward()
        if clip is not None:
            clip()
        optimizer_step()

    return body


def clip_norm(params: Iterable[nn.Parameter], max_norm: float) -> Callable[[], Any] | None:
    """`optim.grad_clip` for one run: the parameters' total gradient norm clipped to `max_norm`
    (None: no clipping)."""
    params = list(params)
    return (lambda: torch.nn.utils.clip_grad_norm_(params, max_norm)) if max_norm > 0 else None


def compiled(model: nn.Module, mode: str) -> nn.Module:
    """The step's module under `torch.compile(mode=...)` (run.compile), or itself when "off".

    The objective is compiled whole (network and loss): one graph per step, forward and backward; its
    weights stay the objective's own, so checkpoints do not change."""
    if mode == "off":
        return model
    return torch.compile(model, mode=mode)

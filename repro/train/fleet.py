"""Fleets: several runs of one network trained together in one process, each still its own run.

A 13k-parameter FSRCNN cannot fill a GPU however fast one step is; the tables need many such runs (every
seed, every ablation student, every equal-compute control). Runs whose objectives have the same
structure and the same patch shapes and length (`fleet_key`) are trained as one stacked model
(`repro.train.stacked`): one forward, backward and optimizer step for all members, the objective's
forward under `torch.func.vmap` (about the operations of one run's step, whatever the fleet's size).

Each member is exactly its solo run but for float reassociation in the batched kernels:
- built as its solo run builds it (its seed, its teacher's weights), so it starts from the same weights;
- its own patches: the fleet's batch is every member's batch of that iteration, each drawn with its own
  seed (`PatchSampler.params(..., seeds=...)`);
- its own learning rate and schedule (`StackedAdam`: Adam's update per member), loss weights and
  supervised levels (the objective computes the terms any member needs; a member's total weighs only its
  own, as its solo loss does), and a student its own frozen teacher (teachers of one architecture are
  stacked too; others run one after another);
- its own run folder, written as a solo run writes it (config, metrics.csv with its own columns,
  checkpoint.pt in a solo run's format, model.pt, done.json), so `repro train` finds a member finished
  and a solo run's checkpoint resumes in a fleet and the other way round.

A member whose loss turns non-finite stops there, as its solo run would: nothing of that window is
written for it (its folder keeps its last checkpoint), the error names its run, and the other members
go on (its slice of the stacked tensors is independent of theirs). `train_fleet` returns each member's
folder or error; the caller reports them.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call, vmap
from tqdm import tqdm

from repro.errors import ReproError
from repro.runs.config import TrainConfig
from repro.runs.folder import CHECKPOINT, METRICS, MetricsLog, load_torch, save_torch
from repro.runs.locks import run_lock
from repro.train import engine, objectives
from repro.train.distributed import Dist, init_distributed, shutdown
from repro.train.stacked import StackedAdam, clip_per_member, stack
from repro.train.state import rng_state, seed_everything
from repro.train.step import DeviceSums, GraphStep, LRSchedule, Step, make_body

# what members of one fleet may differ in: the seed, the learning rates, the loss weights and levels,
# a student's teacher (`fleet_key` leaves them out), and where/how often each validates
FREE = {"run": ("seed",), "optim": ("lr", "min_lr", "student_lr", "student_min_lr"),
        "loss": ("levels", "deep_supervision", "pisr", "vid")}


def fleet_key(cfg: TrainConfig) -> str:
    """Runs with the same key can train as one fleet: the same objective structure (kind, network and
    its settings, VID form), the same patches' shapes and source, batch, length, optimizer and step
    settings, logging and checkpoint cadence and device."""
    data = cfg.to_dict()
    data.pop("teacher_hash")
    data.pop("val")
    for section, keys in FREE.items():
        for key in keys:
            data[section].pop(key)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Member:
    """One run of a fleet: its settings, its folder (None: the default), a student's teacher folder."""

    cfg: TrainConfig
    out: str | os.PathLike[str] | None = None
    teacher_dir: str | None = None

    @property
    def folder(self) -> Path:
        return engine.run_dir_for(self.cfg, self.out)


@dataclass
class Outcome:
    """How a member ended: "trained", "already finished" or "failed" (with the error)."""

    folder: Path
    state: str
    error: str | None = None


def train_fleet(members: list[Member], force: bool = False, data_root: str | None = None,
                progress: bool | None = None) -> list[Outcome]:
    """Train the members together (each resumed from its checkpoint, or left alone if finished); one
    outcome per member, in order. Every member's lock is held throughout (taken in a fixed order, so two
    fleets sharing runs never wait on each other in a circle)."""
    if not members:
        return []
    keys = {fleet_key(m.cfg) for m in members}
    if len(keys) > 1:
        raise ReproError("these runs cannot train as one fleet: they differ in more than seed, learning "
                         "rate, loss weights, levels or teacher (repro.train.fleet.fleet_key)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ReproError("a fleet trains in one process; run it without torchrun")
    if members[0].cfg.run.compile != "off":
        raise ReproError("run.compile does not apply to a fleet (its step is vmapped); use run.cuda_graph")
    with contextlib.ExitStack() as locks:
        for folder in sorted({str(m.folder) for m in members}):
            locks.enter_context(run_lock(folder))
        d, device = init_distributed(members[0].cfg.run.device)
        try:
            return _train(members, d, device, force, data_root, progress)
        finally:
            shutdown()


@dataclass
class _Run:
    """A member being trained: its objective (its own module: built, checkpointed and finished as its
    solo run's), frozen teacher, deployed settings and log."""

    index: int
    member: Member
    obj: objectives.Objective
    frozen: objectives.FrozenTeacher | None
    settings: dict[str, Any]
    start: int
    seconds: float
    optimizer_state: dict[str, Any] | None
    log: MetricsLog | None = None
    val_pairs: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, float] | None = None
    error: str | None = None

    @property
    def cfg(self) -> TrainConfig:
        return self.member.cfg


def _train(members: list[Member], d: Dist, device: torch.device, force: bool, data_root: str | None,
           progress: bool | None) -> list[Outcome]:
    engine.configure_torch(members[0].cfg, device)
    outcomes: dict[int, Outcome] = {}
    runs: list[_Run] = []
    for k, m in enumerate(members):  # each built as its solo run builds it: its seed, then its network
        teacher = engine._load_teacher(m.cfg, m.teacher_dir)
        seed_everything(m.cfg.run.seed)
        obj, frozen, settings = objectives.build(m.cfg, teacher)
        extra = {"teacher_dir": str(Path(m.teacher_dir).resolve())} if m.teacher_dir else {}
        if engine._prepare(m.cfg, m.folder, force, d, extra):
            outcomes[k] = Outcome(m.folder, "already finished")
            continue
        start, seconds, opt_state = _resume(m, obj)
        runs.append(_Run(k, m, obj, frozen, settings, start, seconds, opt_state))
    for start in sorted({r.start for r in runs}):  # members at the same iteration step together
        group = [r for r in runs if r.start == start]
        Fleet(group, device, d, data_root, progress).train()
        for r in group:
            outcomes[r.index] = Outcome(r.member.folder, "failed" if r.error else "trained", r.error)
    return [outcomes[k] for k in range(len(members))]


def _resume(m: Member, obj: torch.nn.Module) -> tuple[int, float, dict[str, Any] | None]:
    """(iteration, seconds, optimizer state) from the member's checkpoint (a solo run's format)."""
    path = m.folder / CHECKPOINT
    if not path.exists():
        return 0, 0.0, None
    ckpt = load_torch(path)
    if ckpt.get("hash") != m.cfg.hash():
        raise ReproError(f"{path} belongs to other settings; pass --force to start over")
    obj.load_state_dict(ckpt["objective"])
    print(f"{m.folder}: resuming at iteration {ckpt['iteration']}/{m.cfg.optim.iterations} (in a fleet)")
    return int(ckpt["iteration"]), float(ckpt["seconds"]), ckpt["optimizer"]


class _Features(torch.nn.Module):
    """A teacher whose forward is its `features`: what vmap calls for a stack of teachers."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, hr: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
        return self.net.features(hr, bicubic=targets)


def structure(module: torch.nn.Module) -> tuple:
    """What decides the computation a module's forward does, less its weights' values: every submodule's
    class and plain settings (strings, numbers, flags), every tensor's name, shape and dtype."""
    parts = []
    for name, sub in module.named_modules():
        plain = sorted((k, v) for k, v in vars(sub).items()
                       if not k.startswith("_") and isinstance(v, str | int | float | bool | tuple))
        parts.append((name, type(sub).__qualname__, tuple(plain)))
    tensors = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in module.state_dict().items())
    return tuple(parts), tensors


class Fleet:
    """Members at the same iteration, stacked and trained together (the engine's loop, for N runs)."""

    def __init__(self, runs: list[_Run], device: torch.device, d: Dist, data_root: str | None,
                 progress: bool | None) -> None:
        self.runs, self.device, self.d = runs, device, d
        cfg = runs[0].cfg
        self.cfg, self.start, self.total = cfg, runs[0].start, cfg.optim.iterations
        if len({structure(r.obj) for r in runs}) > 1:
            raise ReproError("these runs cannot train as one fleet: their networks differ in structure")
        for r in runs:
            engine._place(r.cfg, device, r.obj, r.frozen, lambda *a, **k: None)
            r.obj.train()
            r.log = MetricsLog(r.member.folder / METRICS)
            r.log.truncate(self.start)
            r.val_pairs = engine.load_val_pairs(r.cfg, data_root)
        self.names = [r.member.folder.name for r in runs]
        self.show = sys.stderr.isatty() if progress is None else progress
        self._stack()
        self.feed = engine.Feed(cfg, data_root, device, d, self.start, seeds=[r.cfg.run.seed for r in runs])
        self.sums = FleetSums()
        graph = cfg.run.cuda_graph
        if graph and device.type != "cuda":
            raise ReproError(f"run.cuda_graph needs a CUDA device; this fleet trains on {device.type}: "
                             "set run.cuda_graph=false")
        clip = (lambda: clip_per_member([p.grad for p in self.params.values()], cfg.optim.grad_clip)) \
            if cfg.optim.grad_clip > 0 else None
        body = make_body(self._forward, self.opt.step, self.sums, self.feed.to_batch,
                         amp=cfg.run.amp and device.type == "cuda", clip=clip, teacher=self.teachers,
                         graph=graph)
        zero_grad = self.opt.zero_grad
        self.step = GraphStep(body, zero_grad, device) if graph else Step(body, zero_grad)

    # ------------------------------------------------------------ the stacked model
    def _stack(self) -> None:
        """The members' trainable parameters and buffers stacked, the union of their loss terms with each
        member's weights, the optimizer (each member's state from its checkpoint), the teachers."""
        runs, device = self.runs, self.device
        self.base = copy.deepcopy(runs[0].obj)  # whose forward vmap runs with each member's weights
        self.params, self.buffers = stack([r.obj for r in runs])
        keys: list[str] = []
        for r in runs:
            keys += [k for k in r.obj.loss_weights() if k not in keys]
        self.weights = {k: torch.tensor([float(r.obj.loss_weights().get(k, 0.0)) for r in runs],
                                        dtype=torch.float32, device=device) for k in keys}
        o = self.cfg.optim
        self.opt = StackedAdam(list(self.params.values()), len(runs), tuple(o.betas), o.eps, o.weight_decay,
                               capturable=self.cfg.run.cuda_graph)
        steps = {self.opt.load_member_optimizer(k, r.optimizer_state)
                 for k, r in enumerate(runs) if r.optimizer_state is not None}
        if steps - {self.start}:
            raise ReproError(f"checkpoints of {', '.join(self.names)} hold optimizer steps {sorted(steps)} "
                             f"at iteration {self.start}; retrain them with --force")
        self.schedules = []
        for r in runs:
            lr, min_lr = r.cfg.optim.lr_range(r.cfg.kind)
            self.schedules.append((lr, LRSchedule(self.total, min_lr / lr, r.cfg.optim.schedule)))
        self.teachers = None
        frozen = [r.frozen for r in runs]
        if all(f is not None for f in frozen):
            nets = [f.net for f in frozen]
            if len({structure(n) for n in nets}) == 1:  # one architecture: stacked, one vmapped forward
                self.teacher_base = _Features(copy.deepcopy(nets[0]))
                self.teacher_params, self.teacher_buffers = stack([_Features(n) for n in nets])
                self.teachers = self._stacked_features
            else:  # teachers of other structures: one after another
                self.teachers = self._each_features

    def _stacked_features(self, batch: dict[str, Any]) -> torch.Tensor:
        def one(p, b, hr, targets):
            return functional_call(self.teacher_base, (p, b), (hr, targets))

        with torch.no_grad():
            return vmap(one)(self.teacher_params, self.teacher_buffers, batch["hr"], batch["targets"])

    def _each_features(self, batch: dict[str, Any]) -> torch.Tensor:
        return torch.stack([r.frozen({"hr": batch["hr"][k], "targets": [t[k] for t in batch["targets"]]})
                            for k, r in enumerate(self.runs)])

    def _forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every member's objective under vmap: the sum of their losses (each member's gradient is its
        own loss's), and each term per member."""
        def one(p, b, member_batch, w):
            return functional_call(self.base, (p, b), (member_batch,), {"weights": w})

        losses, terms = vmap(one)(self.params, self.buffers, batch, self.weights)
        return losses.sum(), terms

    # ------------------------------------------------------------ the loop
    def train(self) -> None:
        """Step every member from `start` to the end, as the engine's loop steps one run."""
        cfg, total, runs = self.cfg, self.total, self.runs
        seconds = [r.seconds for r in runs]
        desc = f"fleet of {len(runs)} {cfg.kind} {cfg.model.name} x{cfg.data.scale}"
        bar = tqdm(total=total, initial=self.start, disable=not self.show, dynamic_ncols=True, unit="it",
                   file=sys.stderr, desc=desc)
        window = engine.Window()
        for it in range(self.start, total):
            t0 = time.perf_counter()
            inputs = next(self.feed.inputs)
            t1 = time.perf_counter()
            lrs = [base * schedule(it) for base, schedule in self.schedules]
            self.opt.set_lr(lrs)
            self.step(inputs)
            window.add(wait=t1 - t0, step=time.perf_counter() - t0)
            bar.update(1)
            done = it + 1
            checkpointing = done < total and done % cfg.run.checkpoint_every == 0
            validating = [done == total or (r.cfg.val.every > 0 and done % r.cfg.val.every == 0)
                          for r in runs]
            if not (any(validating) or checkpointing or done % cfg.run.log_every == 0):
                continue
            t2 = time.perf_counter()
            means = self.sums.means(window.count)  # the only host read: waits for the queued steps
            window.step += time.perf_counter() - t2
            for k, r in enumerate(runs):
                if r.error is None:
                    seconds[k] += window.step
                    self._log(r, k, done, means[k], lrs[k], window, seconds[k], validating[k], checkpointing)
            if all(r.error for r in runs):
                break
            bar.set_postfix(alive=sum(r.error is None for r in runs))
            if (any(validating) or checkpointing) and not self.show:
                print(f"[fleet] {len(runs)} runs {done}/{total}, {window.count / window.step:.2f} it/s each",
                      flush=True)
            window = engine.Window()
        bar.close()
        self.feed.close()
        for k, r in enumerate(runs):
            if r.error is None:
                self._load_into(r, k)
                fleet = {"fleet": {"members": len(runs), "names": self.names}}
                engine._finish(r.cfg, r.member.folder, r.obj, r.settings, seconds[k], r.last_val, self.d,
                               self.device, print, extra=fleet)

    def _log(self, r: _Run, k: int, done: int, means: dict[str, float], lr: float, window: engine.Window,
             seconds: float, validating: bool, checkpointing: bool) -> None:
        """Member k's metrics row, validation and checkpoint, as its solo run writes them; a non-finite
        loss stops this member (nothing of the window written for it), not the others."""
        if not math.isfinite(means["total"]):
            error = engine._non_finite(means["total"], done - window.count + 1, done, lr, r.cfg.run.log_every)
            r.error = f"{r.member.folder.name}: {error}"
            print(f"[fleet] {r.error}; the other members go on", flush=True)
            return
        own = set(r.obj.loss_weights())
        terms = {key: v for key, v in means.items() if key == "recon" or key in own}  # its solo columns
        val: dict[str, float] = {}
        if validating:
            self._load_into(r, k)
            val = engine.validation_psnr(r.obj, r.cfg, r.val_pairs, self.device)
            r.last_val = val or r.last_val
        r.log.append({"iteration": done, "loss": means["total"], **terms, "lr": lr,
                      **{f"val_psnr_{s}": val.get(f"val_psnr_{s}") for s in r.cfg.val.sets},
                      "data_wait": window.wait / window.step if window.step else 0.0,
                      "it_per_s": window.count / window.step if window.step else 0.0,
                      "seconds": round(seconds, 3)})
        if checkpointing:
            self._load_into(r, k)
            lr0 = r.cfg.optim.lr_range(r.cfg.kind)[0]
            params = [p for p in r.obj.parameters() if p.requires_grad]
            save_torch(r.member.folder / CHECKPOINT, {
                "iteration": done, "objective": r.obj.state_dict(),
                "optimizer": self.opt.member_optimizer(k, params, lr0), "rng": rng_state(),
                "seconds": seconds, "hash": r.cfg.hash(), "world_size": 1})

    def _load_into(self, r: _Run, k: int) -> None:
        """Member k's current weights into its own module (for validation, a checkpoint, model.pt)."""
        state = r.obj.state_dict()
        stacked = {**self.params, **self.buffers}
        r.obj.load_state_dict({name: stacked[name][k] for name in state})


class FleetSums(DeviceSums):
    """The members' loss terms summed on the device as `DeviceSums` sums one run's: [members, terms] in
    float64, read to the host once per logged row."""

    @staticmethod
    def _row(terms: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
        return torch.stack([terms[key].detach().float() for key in keys], dim=-1).double()

    def means(self, count: int) -> list[dict[str, float]]:
        """Each member's mean of each term over the `count` iterations since the last read."""
        if self.total is None or self.keys is None:
            return []
        values = self.total.tolist()
        self.total.zero_()
        return [{key: v / count for key, v in zip(self.keys, row, strict=True)} for row in values]

"""The training loop shared by baselines, teachers and students (one readable loop, nanoGPT style).

`_train` reads top to bottom: build the objective (the trainable part of the run's kind; a student's
frozen teacher beside it, outside the trained module), Adam and its schedule; resume from
`checkpoint.pt` if there is one (weights, optimizer, every RNG, iteration); then step from the resumed
iteration through the run's patches, which are a function of (seed, iteration) alone, so that a resumed
run sees exactly the batches an uninterrupted one does. Same seed on CPU -> bit-identical `model.pt`.

A step never waits for the device (`repro.train.step`): its loss terms are summed on the device and
read to the host only when a row is logged (every `run.log_every` iterations, and at each checkpoint and
validation), where a non-finite loss is caught. On a GPU the networks are so small that a step is bound
by the host's launches: `run.cuda_graph` replays the whole step as one CUDA graph; `data.on_device`,
`run.amp`, `run.channels_last`, `optim.fused` and `run.compile` are the other speed settings.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from repro.data.device_patches import DevicePatchSource, channels_last_batch
from repro.data.patches import PatchSampler, batch_of, make_loader
from repro.data.sampler import Planes
from repro.data.testsets import ImagePair, load_set
from repro.data.train_set import load_train_images
from repro.errors import ReproError
from repro.evaluate.sr import evaluate_pairs, summarise
from repro.provenance import environment
from repro.runs.config import TrainConfig
from repro.runs.folder import (
    CHECKPOINT,
    DONE,
    METRICS,
    MODEL,
    MetricsLog,
    load_model,
    load_torch,
    model_record,
    save_torch,
    stored_hash,
    write_config,
    write_json,
)
from repro.runs.locks import run_lock
from repro.train import objectives
from repro.train.distributed import Dist, init_distributed, shutdown
from repro.train.state import rng_state, seed_everything, set_rng_state
from repro.train.step import (
    DeviceSums,
    GraphStep,
    LRSchedule,
    Optimizer,
    Step,
    clip_norm,
    compiled,
    make_body,
)

RUNS_ROOT = Path("runs")


def _non_finite(value: float, first: int, last: int, lr: float, log_every: int) -> ReproError:
    """The loss is read once per logged row, so the error names the iterations since the last row."""
    where = f"at iteration {last}" if first == last else (
        f"at an iteration between {first} and {last} (the loss is read every run.log_every={log_every} "
        "iterations; run.log_every=1 names the very one)")
    return ReproError(f"the loss became {value} {where}; lower the learning rate (it was {lr:.3g} "
                      "there) or set optim.grad_clip")


def configure_torch(cfg: TrainConfig, device: torch.device) -> None:
    """Threads and determinism. run.amp (bfloat16 autocast) needs CUDA and is left off elsewhere rather
    than refused, so that a run can resume on another device (the device is not hashed);
    run.channels_last works on every device; run.cuda_graph is refused off CUDA (`make_step`)."""
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def run_dir_for(cfg: TrainConfig, out: str | os.PathLike[str] | None) -> Path:
    """`--out DIR` if given, else runs/<kind>-<model>-x<scale>-<hash8>."""
    return Path(out) if out else RUNS_ROOT / cfg.default_run_name()


def _prepare(cfg: TrainConfig, run_dir: Path, force: bool, d: Dist, extra: dict[str, Any]) -> bool:
    """Check the folder against the settings; wipe it on --force; write the config. True if already done."""
    found = stored_hash(run_dir)
    done = (run_dir / DONE).exists() and found == cfg.hash()
    if found is not None and found != cfg.hash() and not force:
        raise ReproError(f"{run_dir} holds a run with other settings (hash {found[:8]}, these are "
                         f"{cfg.hash()[:8]}); choose another --out, or pass --force to replace it")
    d.barrier()  # every rank has looked before rank 0 changes anything
    if done and not force:
        return True
    if d.main:
        if force or found != cfg.hash():
            for name in (CHECKPOINT, METRICS, MODEL, DONE):
                (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg, extra)
    d.barrier()
    return False


def load_val_pairs(cfg: TrainConfig, root: str | os.PathLike[str] | None) -> dict[str, list[ImagePair]]:
    """The validation images, read once at the start (a missing set fails now, not hours later)."""
    return {name: load_set(name, cfg.data.scale, root) for name in cfg.val.sets}


@torch.no_grad()
def validation_psnr(obj: objectives.Objective, cfg: TrainConfig, pairs: dict[str, list[ImagePair]],
                    device: torch.device) -> dict[str, float]:
    """Mean PSNR per validation set ({"val_psnr_<set>": dB}); a teacher is given the HR image."""
    net = obj.evaluator()
    was_training = net.training
    net.eval()
    try:
        frames = []
        for name, images in pairs.items():
            frames.append(evaluate_pairs(net, images, name, cfg.data.scale, cfg.data.in_channels, device,
                                         progress=False))
    finally:
        net.train(was_training)
    if not frames:
        return {}
    import pandas as pd

    summary = summarise(pd.concat(frames, ignore_index=True))
    return {f"val_psnr_{r.dataset}": float(r.psnr) for r in summary.itertuples()}


def train(cfg: TrainConfig, out: str | os.PathLike[str] | None = None, teacher_dir: str | None = None,
          force: bool = False, data_root: str | None = None, progress: bool | None = None) -> Path:
    """Train (or resume, or leave alone if finished) the run of `cfg`; returns its folder.

    A student's `cfg` comes from `resolve(..., teacher=read_teacher(teacher_dir))`; `teacher_dir` is
    where its teacher's network is read from (checked against `cfg.teacher_hash`).

    The main rank holds the run's lock (`repro.runs.locks.run_lock`) throughout, so that this and an
    orchestrator (or another `repro train`) never train the same run at once; other ranks follow it.
    """
    run_dir = run_dir_for(cfg, out)
    main = int(os.environ.get("RANK", "0")) == 0  # known before joining the group: rank 0 alone locks
    with run_lock(run_dir) if main else contextlib.nullcontext():
        d, device = init_distributed(cfg.run.device)
        try:
            return _train(cfg, d, device, run_dir, teacher_dir, force, data_root, progress)
        finally:
            shutdown()


def _train(cfg: TrainConfig, d: Dist, device: torch.device, out: Any, teacher_dir: str | None,
           force: bool, data_root: str | None, progress: bool | None) -> Path:
    configure_torch(cfg, device)
    teacher = _load_teacher(cfg, teacher_dir)
    seed_everything(cfg.run.seed)
    obj, frozen, settings = objectives.build(cfg, teacher)  # bad model settings fail before any file
    run_dir = run_dir_for(cfg, out)
    say = print if d.main else (lambda *a, **k: None)
    extra = {"teacher_dir": str(Path(teacher_dir).resolve())} if teacher_dir else {}
    if _prepare(cfg, run_dir, force, d, extra):
        say(f"{run_dir}: complete ({DONE} present); nothing to do (pass --force to train it again)")
        return run_dir
    _place(cfg, device, obj, frozen, say)
    opt = make_optimizer(cfg, obj, device)
    start, seconds = _resume(cfg, run_dir, obj, opt, say)
    log = MetricsLog(run_dir / METRICS, enabled=d.main)
    log.truncate(start)  # rows a killed run wrote after its last checkpoint are redone
    val_pairs = load_val_pairs(cfg, data_root) if d.main else {}
    feed = Feed(cfg, data_root, device, d, start)
    sums = DeviceSums()
    step = make_step(cfg, obj, frozen, opt, sums, feed, device, d)
    total, show = cfg.optim.iterations, d.main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=total, initial=start, disable=not show, dynamic_ncols=True, unit="it", file=sys.stderr,
               desc=f"{cfg.kind} {cfg.model.name} x{cfg.data.scale}")
    window, last_val = Window(), None
    obj.train()
    for it in range(start, total):
        t0 = time.perf_counter()
        inputs = next(feed.inputs)
        t1 = time.perf_counter()
        window.lr = opt.at(it)
        step(inputs)
        window.add(wait=t1 - t0, step=time.perf_counter() - t0)
        bar.update(1)
        done = it + 1
        validating = done == total or (cfg.val.every > 0 and done % cfg.val.every == 0)
        checkpointing = done < total and done % cfg.run.checkpoint_every == 0
        if not (validating or checkpointing or done % cfg.run.log_every == 0):
            continue
        row = _row(cfg, d, done, window, sums)  # the only host read: waits for the queued steps
        val = validation_psnr(obj, cfg, val_pairs, device) if validating and d.main else {}
        last_val = val or last_val
        seconds += window.step
        log.append({**row, **{f"val_psnr_{s}": val.get(f"val_psnr_{s}") for s in cfg.val.sets},
                    "data_wait": window.wait / window.step if window.step else 0.0,
                    "it_per_s": window.count / window.step if window.step else 0.0,
                    "seconds": round(seconds, 3)})
        bar.set_postfix(loss=f"{row['loss']:.4g}", **{c[9:]: f"{v:.2f}" for c, v in (last_val or {}).items()})
        if checkpointing and d.main:
            _checkpoint(cfg, run_dir, done, obj, opt, seconds, d)
        if (validating or checkpointing) and not show:
            psnr = "".join(f", {c[9:]} {v:.2f} dB" for c, v in val.items())
            say(f"[train] {run_dir.name} {done}/{total} loss {row['loss']:.5g}{psnr}, "
                f"{window.count / window.step:.2f} it/s", flush=True)
        window = Window()
    bar.close()
    feed.close()  # stop the loader's workers before the final writes
    if d.main:
        _finish(cfg, run_dir, obj, settings, seconds, last_val, d, device, say)
    d.barrier()
    return run_dir


# ---------------------------------------------------------------- the parts of a run, in order
def _load_teacher(cfg: TrainConfig, teacher_dir: str | None) -> torch.nn.Module | None:
    """A student's finished teacher (checked against the hash its settings were resolved with)."""
    if cfg.kind != "student":
        if teacher_dir:
            raise ReproError(f"--teacher is only for students, not for a {cfg.kind} run")
        return None
    if not teacher_dir:
        raise ReproError("`repro train student` needs --teacher RUN_DIR (a finished teacher run)")
    if stored_hash(Path(teacher_dir)) != cfg.teacher_hash:
        raise ReproError(f"--teacher {teacher_dir} is not the teacher these settings were resolved "
                         f"with (teacher_hash {cfg.teacher_hash[:8]})")
    return load_model(teacher_dir)[0]


def _place(cfg: TrainConfig, device: torch.device, obj: torch.nn.Module,
           frozen: objectives.FrozenTeacher | None, say: Any) -> None:
    """The objective (and a student's frozen teacher) on the device, in the memory layout asked for."""
    if cfg.run.amp and device.type != "cuda":
        say(f"run.amp: bfloat16 autocast is for CUDA; this {device.type} run computes in float32")
    layout = {"memory_format": torch.channels_last} if cfg.run.channels_last else {}
    obj.to(device).to(**layout)
    if frozen is not None:
        frozen.to(device).to(**layout)


def make_optimizer(cfg: TrainConfig, obj: torch.nn.Module, device: torch.device) -> Optimizer:
    o = cfg.optim
    lr, min_lr = o.lr_range(cfg.kind)
    return Optimizer([p for p in obj.parameters() if p.requires_grad], lr,
                     LRSchedule(o.iterations, min_lr / lr, o.schedule), tuple(o.betas), o.eps, o.weight_decay,
                     graph=cfg.run.cuda_graph and device.type == "cuda", fused=o.fused)


def _resume(cfg: TrainConfig, run_dir: Path, obj: torch.nn.Module, opt: Optimizer,
            say: Any) -> tuple[int, float]:
    """(iteration, training seconds so far) from the run's checkpoint; (0, 0.0) without one."""
    if not (run_dir / CHECKPOINT).exists():
        return 0, 0.0
    ckpt = load_torch(run_dir / CHECKPOINT)
    if ckpt.get("hash") != cfg.hash():
        raise ReproError(f"{run_dir / CHECKPOINT} belongs to other settings; pass --force to start over")
    obj.load_state_dict(ckpt["objective"])
    opt.load_state_dict(ckpt["optimizer"])
    set_rng_state(ckpt["rng"])
    start = int(ckpt["iteration"])
    say(f"{run_dir}: resuming at iteration {start}/{cfg.optim.iterations}")
    return start, float(ckpt["seconds"])


class Feed:
    """The run's inputs, iteration by iteration from `start`: the crops a host loader cut, moved to the
    device (uint8, converted there), or (data.on_device) the crop parameters the on-device source cuts
    them from. `to_batch` makes the step's batch of an input (inside a captured step: a fixed-shape
    function of it). With
    `seeds` (a fleet), every seed's batch of the iteration, each the one its run draws alone, as
    [len(seeds), batch, ...] tensors."""

    def __init__(self, cfg: TrainConfig, data_root: str | None, device: torch.device, d: Dist,
                 start: int, seeds: list[int] | None = None) -> None:
        images = load_train_images(cfg.data.source, cfg.data.scale, root=data_root, progress=d.main)
        sampler = PatchSampler(images, cfg.data.scale, cfg.data.hr_patch, cfg.data.in_channels,
                               cfg.data.augment, seed=cfg.run.seed)
        o, num = cfg.optim, cfg.optim.iterations - start
        self.channels_last, self.members = cfg.run.channels_last, None if seeds is None else len(seeds)
        self.loader = None
        if cfg.data.on_device:  # the set on the training device: no workers, no copy per step
            per = o.batch_size // d.world_size * (self.members or 1)
            self.source = DevicePatchSource(sampler, device, batch_size=per)
            self.inputs = self.source.param_chunks(o.batch_size, start, num, d.rank, d.world_size,
                                                   seeds=seeds)
        else:  # crops cut by the loader, converted here on the training device
            self.source, self.planes = None, Planes(sampler.sides, sampler.in_channels, device)
            self.loader = make_loader(sampler, o.batch_size, start, num, cfg.data.num_workers, d.rank,
                                      d.world_size, seeds=seeds)
            self.inputs = ({k: v.to(device, non_blocking=True) for k, v in cut.items()}
                           for cut in self.loader)

    def to_batch(self, inputs: Any) -> dict[str, Any]:
        batch = self.source.cut(inputs) if self.source is not None else batch_of(inputs, self.planes)
        if self.channels_last:
            batch = channels_last_batch(batch)
        if self.members is None:
            return batch

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(self.members, -1, *x.shape[1:])

        return {"hr": split(batch["hr"]), "lr": split(batch["lr"]),
                "targets": [split(t) for t in batch["targets"]]}

    def close(self) -> None:
        self.inputs = iter(())
        self.loader = None


def make_step(cfg: TrainConfig, obj: torch.nn.Module, frozen: objectives.FrozenTeacher | None,
              opt: Optimizer, sums: DeviceSums, feed: Feed, device: torch.device, d: Dist) -> Step:
    """The run's step: eager, compiled (run.compile) or a CUDA graph (run.cuda_graph)."""
    if cfg.run.cuda_graph and device.type != "cuda":
        raise ReproError(f"run.cuda_graph needs a CUDA device (a CUDA graph replays GPU work); this run "
                         f"trains on {device.type}: set run.cuda_graph=false")
    if cfg.run.cuda_graph and d.active:
        raise ReproError("run.cuda_graph trains one process per GPU; with torchrun (several processes) "
                         "set run.cuda_graph=false")
    model: torch.nn.Module = obj
    if d.active:
        model = DistributedDataParallel(obj, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=cfg.kind == "teacher")
    model = compiled(model, cfg.run.compile)
    body = make_body(model, opt.step, sums, feed.to_batch, amp=cfg.run.amp and device.type == "cuda",
                     clip=clip_norm((p for p in obj.parameters() if p.requires_grad), cfg.optim.grad_clip),
                     teacher=frozen, graph=cfg.run.cuda_graph)
    zero_grad = opt.zero_grad
    if cfg.run.cuda_graph:
        return GraphStep(body, zero_grad, device)
    return Step(body, zero_grad, compiled=cfg.run.compile != "off")


@dataclass
class Window:
    """The iterations since the last logged row: how many, seconds waiting for data, seconds in all,
    and the learning rate of the last."""

    count: int = 0
    wait: float = 0.0
    step: float = 0.0
    lr: float = 0.0

    def add(self, wait: float, step: float) -> None:
        self.count, self.wait, self.step = self.count + 1, self.wait + wait, self.step + step


def _row(cfg: TrainConfig, d: Dist, done: int, window: Window, sums: DeviceSums) -> dict[str, Any]:
    """The window's mean loss terms (averaged over ranks) and learning rate; a non-finite loss stops
    the run here, before anything is written. The host read's wait counts as step time."""
    t0 = time.perf_counter()
    sums_ = sums.read()
    window.step += time.perf_counter() - t0
    keys = [k for k in sums_ if k != "total"]
    means = d.mean([sums_["total"] / window.count] + [sums_[k] / window.count for k in keys]
                   + [window.wait, window.step])
    if not math.isfinite(means[0]):  # the mean over ranks: every rank stops here together
        raise _non_finite(means[0], done - window.count + 1, done, window.lr, cfg.run.log_every)
    window.wait, window.step = means[-2], means[-1]
    return {"iteration": done, "loss": means[0], **dict(zip(keys, means[1:-2], strict=True)), "lr": window.lr}


def _checkpoint(cfg: TrainConfig, run_dir: Path, done: int, obj: torch.nn.Module, opt: Optimizer,
                seconds: float, d: Dist) -> None:
    save_torch(run_dir / CHECKPOINT, {
        "iteration": done, "objective": obj.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
        "seconds": seconds, "hash": cfg.hash(), "world_size": d.world_size})


def _finish(cfg: TrainConfig, run_dir: Path, obj: objectives.Objective, settings: dict[str, Any],
            seconds: float, last_val: dict[str, float] | None, d: Dist, device: torch.device,
            say: Any, extra: dict[str, Any] | None = None) -> None:
    """model.pt (the deployed network), then done.json: its presence marks the run finished."""
    total = cfg.optim.iterations
    save_torch(run_dir / MODEL, model_record(cfg.kind, cfg.model.name, cfg.data.scale, settings,
                                             obj.deployed()))
    write_json(run_dir / DONE, {"hash": cfg.hash(), "iterations": total, "seconds": round(seconds, 3),
                                "validation": last_val or {}, "world_size": d.world_size,
                                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "environment": environment(str(device)), **(extra or {})})
    say(f"{run_dir}: finished {total} iterations in {seconds:.1f} s"
        + "".join(f", {c[9:]} {v:.2f} dB" for c, v in (last_val or {}).items()))

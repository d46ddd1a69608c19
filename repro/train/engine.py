"""The training loop shared by baselines, teachers and students (one readable loop, nanoGPT style).

Build the objective (network + loss of the run's kind), Adam and the cosine schedule; resume from
`checkpoint.pt` if there is one (weights, optimizer, scheduler, every RNG, iteration); then step
through the iteration-ordered loader from the resumed iteration, so that a resumed run sees exactly
the batches an uninterrupted one does. Same seed on CPU -> bit-identical `model.pt`.

A step never waits for the device: its loss terms stay tensors, summed on the device (`DeviceSums`),
and are read to the host only when a row is logged (every `run.log_every` iterations, and at each
checkpoint and validation), where a non-finite loss is caught. On a GPU the networks are so small that
a step is bound by overhead: `run.compile`, `run.amp` (CUDA) and `run.channels_last` are for that.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from repro.data.device_patches import device_batches
from repro.data.patches import PatchDataset, load_train_images, make_loader
from repro.data.testsets import ImagePair, load_set
from repro.errors import ReproError
from repro.evaluate.sr import evaluate_pairs, summarise
from repro.models.losses import Terms
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

RUNS_ROOT = Path("runs")


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


class DeviceSums:
    """Running sums of a window's loss terms, kept on the device: a step adds its terms (one stack and
    one add, no host read) and `read` brings the sums to the host once per logged row.

    float64 sums of the float32 terms, added in iteration order: the very numbers the host summed when
    every step read its terms, so metrics.csv is unchanged.
    """

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.total: torch.Tensor | None = None

    def add(self, terms: Terms) -> None:
        if self.total is None:
            self.keys = list(terms)
        elif list(terms) != self.keys:
            raise ReproError(f"the loss terms changed within a run: {self.keys} then {list(terms)}")
        row = torch.stack([terms[k].detach().reshape(()).float() for k in self.keys])
        self.total = row.double() if self.total is None else self.total.add_(row)

    def read(self) -> dict[str, float]:
        """The sums as floats (waits for the device's queued steps), and a fresh window."""
        values = [] if self.total is None else self.total.tolist()
        sums = dict(zip(self.keys, values, strict=True))
        self.keys, self.total = [], None
        return sums


def _non_finite(value: float, first: int, last: int, lr: float, log_every: int) -> ReproError:
    """The loss is read once per logged row, so the error names the iterations since the last row."""
    where = f"at iteration {last}" if first == last else (
        f"at an iteration between {first} and {last} (the loss is read every run.log_every={log_every} "
        "iterations; run.log_every=1 names the very one)")
    return ReproError(f"the loss became {value} {where}; lower the learning rate (now {lr}) or set "
                      "optim.grad_clip")


def configure_torch(cfg: TrainConfig, device: torch.device) -> None:
    """Threads and determinism. run.amp (bfloat16 autocast) needs CUDA and is left off elsewhere rather
    than refused, so that a run can resume on another device (the device is not hashed);
    run.channels_last works on every device."""
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """The step's module under `torch.compile(mode=...)` (run.compile), or itself when "off".

    The objective is compiled whole (network, loss, a student's frozen teacher): one graph per step,
    forward and backward; its weights stay the objective's own, so checkpoints do not change.
    """
    if mode == "off":
        return model
    return torch.compile(model, mode=mode)


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


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    def move(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return {"hr": move(batch["hr"]), "lr": move(batch["lr"]), "targets": [move(t) for t in batch["targets"]]}


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
    teacher = None
    extra: dict[str, Any] = {}
    if cfg.kind == "student":
        if not teacher_dir:
            raise ReproError("`repro train student` needs --teacher RUN_DIR (a finished teacher run)")
        if stored_hash(Path(teacher_dir)) != cfg.teacher_hash:
            raise ReproError(f"--teacher {teacher_dir} is not the teacher these settings were resolved "
                             f"with (teacher_hash {cfg.teacher_hash[:8]})")
        teacher, _ = load_model(teacher_dir)
        extra["teacher_dir"] = str(Path(teacher_dir).resolve())
    elif teacher_dir:
        raise ReproError(f"--teacher is only for students, not for a {cfg.kind} run")
    seed_everything(cfg.run.seed)
    obj, settings = objectives.build(cfg, teacher)  # bad model settings fail before any file
    run_dir = run_dir_for(cfg, out)
    say = print if d.main else (lambda *a, **k: None)
    if _prepare(cfg, run_dir, force, d, extra):
        say(f"{run_dir}: complete ({DONE} present); nothing to do (pass --force to train it again)")
        return run_dir
    if cfg.run.amp and device.type != "cuda":
        say(f"run.amp: bfloat16 autocast is for CUDA; this {device.type} run computes in float32")
    obj.to(device)
    if cfg.run.channels_last:  # the whole objective (a student's frozen teacher too); inputs: _to_device
        obj.to(memory_format=torch.channels_last)
    params = [p for p in obj.parameters() if p.requires_grad]
    o = cfg.optim
    lr, min_lr = o.lr_range(cfg.kind)
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
    total = o.iterations
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRSchedule(total, min_lr / lr, o.schedule))
    start, seconds = 0, 0.0
    if (run_dir / CHECKPOINT).exists():
        ckpt = load_torch(run_dir / CHECKPOINT)
        if ckpt.get("hash") != cfg.hash():
            raise ReproError(f"{run_dir / CHECKPOINT} belongs to other settings; pass --force to start over")
        obj.load_state_dict(ckpt["objective"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        start, seconds = int(ckpt["iteration"]), float(ckpt["seconds"])
        say(f"{run_dir}: resuming at iteration {start}/{total}")
    log = MetricsLog(run_dir / METRICS, enabled=d.main)
    log.truncate(start)  # rows a killed run wrote after its last checkpoint are redone
    model = obj
    if d.active:
        model = DistributedDataParallel(obj, device_ids=[device.index] if device.type == "cuda" else None,
                                        find_unused_parameters=cfg.kind == "teacher")
    val_pairs = load_val_pairs(cfg, data_root) if d.main else {}
    images = load_train_images(cfg.data.source, cfg.data.scale, root=data_root, progress=d.main)
    if cfg.data.on_device:  # the set on the training device: no workers, no copy per step
        loader = None
        batches = device_batches(images, cfg.data.scale, cfg.data.hr_patch, cfg.data.in_channels,
                                 cfg.data.augment, seed=cfg.run.seed, batch_size=o.batch_size,
                                 start_iteration=start, num_iterations=total - start, device=device,
                                 rank=d.rank, world_size=d.world_size, channels_last=cfg.run.channels_last)
    else:
        dataset = PatchDataset(images, cfg.data.scale, cfg.data.hr_patch, cfg.data.in_channels,
                               cfg.data.augment, seed=cfg.run.seed, length=total * o.batch_size)
        loader = make_loader(dataset, o.batch_size, start, total - start, cfg.data.num_workers,
                             d.rank, d.world_size)
        batches = iter(loader)
    show = d.main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=total, initial=start, disable=not show, dynamic_ncols=True, unit="it", file=sys.stderr,
               desc=f"{cfg.kind} {cfg.model.name} x{cfg.data.scale}")
    val_cols = [f"val_psnr_{name}" for name in cfg.val.sets]
    sums = DeviceSums()
    count, wait_s, step_s, last_val = 0, 0.0, 0.0, None
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.run.amp and device.type == "cuda")
    model = compiled(model, cfg.run.compile)
    obj.train()
    for it in range(start, total):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        batch = _to_device(batch, device, cfg.run.channels_last)
        lr_now = optimizer.param_groups[0]["lr"]
        if cfg.run.compile != "off":
            torch.compiler.cudagraph_mark_step_begin()  # reduce-overhead: last step's outputs are done with
        with amp:
            loss, terms = model(batch)
        sums.add(terms)  # on the device; read when a row is logged
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        optimizer.step()
        scheduler.step()
        t2 = time.perf_counter()
        count, wait_s, step_s = count + 1, wait_s + (t1 - t0), step_s + (t2 - t0)
        seconds += t2 - t0
        done = it + 1
        bar.update(1)

        validating = done == total or (cfg.val.every > 0 and done % cfg.val.every == 0)
        checkpointing = done < total and done % cfg.run.checkpoint_every == 0
        if not (validating or checkpointing or done % cfg.run.log_every == 0):
            continue
        t3 = time.perf_counter()
        window = sums.read()  # the only host read: waits for the steps the device still has queued
        synced = time.perf_counter() - t3
        step_s, seconds = step_s + synced, seconds + synced
        keys = [k for k in window if k != "total"]
        means = d.mean([window["total"] / count] + [window[k] / count for k in keys] + [wait_s, step_s])
        if not math.isfinite(means[0]):  # the mean over ranks: every rank stops here together
            raise _non_finite(means[0], done - count + 1, done, lr, cfg.run.log_every)
        val = validation_psnr(obj, cfg, val_pairs, device) if validating and d.main else {}
        last_val = val or last_val
        row = {"iteration": done, "loss": means[0], **dict(zip(keys, means[1:-2], strict=True)),
               "lr": lr_now, **{c: val.get(c) for c in val_cols},
               "data_wait": means[-2] / means[-1] if means[-1] else 0.0,
               "it_per_s": count / step_s if step_s else 0.0, "seconds": round(seconds, 3)}
        log.append(row)
        bar.set_postfix(loss=f"{means[0]:.4g}", **{c[9:]: f"{v:.2f}" for c, v in (last_val or {}).items()})
        if checkpointing and d.main:
            save_torch(run_dir / CHECKPOINT, {
                "iteration": done, "objective": obj.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(), "seconds": seconds,
                "hash": cfg.hash(), "world_size": d.world_size})
        if (validating or checkpointing) and not show:
            psnr = "".join(f", {c[9:]} {v:.2f} dB" for c, v in val.items())
            say(f"[train] {run_dir.name} {done}/{total} loss {means[0]:.5g}{psnr}, "
                f"{count / step_s:.2f} it/s", flush=True)
        count, wait_s, step_s = 0, 0.0, 0.0
    bar.close()
    del batches, loader  # stop the loader's workers before the final writes

    if d.main:
        net = obj.deployed()
        save_torch(run_dir / MODEL, model_record(cfg.kind, cfg.model.name, cfg.data.scale, settings, net))
        write_json(run_dir / DONE, {"hash": cfg.hash(), "iterations": total, "seconds": round(seconds, 3),
                                    "validation": last_val or {}, "world_size": d.world_size,
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                    "environment": environment(str(device))})
        say(f"{run_dir}: finished {total} iterations in {seconds:.1f} s"
            + "".join(f", {c[9:]} {v:.2f} dB" for c, v in (last_val or {}).items()))
    d.barrier()
    return run_dir


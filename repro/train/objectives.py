"""What each kind of run optimises: one small module per kind, `forward(batch) -> (loss, terms)`.

An objective holds every trainable part (network, VID branches), so the engine optimises, checkpoints
and wraps in DistributedDataParallel one module whatever the kind. A student's frozen teacher is
kept outside the module tree: it is neither trained, checkpointed nor synchronised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError
from repro.models import create, model_info
from repro.models.losses import pisr_teacher_loss, student_loss, teacher_loss
from repro.models.vid import VID
from repro.train.config import TrainConfig, from_dict
from repro.train.state import DONE, MODEL, load_model

Batch = dict[str, Any]


def network_settings(cfg: TrainConfig) -> dict[str, Any]:
    """Keyword settings for `create`: the profile's model settings plus the data's channel count."""
    settings = dict(cfg.model.settings)
    if "in_channels" in model_info(cfg.model.name).settings:
        settings["in_channels"] = cfg.data.in_channels
    return settings


class Objective(nn.Module):
    """Base: `net` is the network that is trained and, by default, deployed."""

    net: nn.Module

    def deployed(self) -> nn.Module:
        """What `model.pt` holds: the teacher whole, or the SR network without VID."""
        return self.net

    def evaluator(self) -> nn.Module:
        """What validation runs: an LR -> SR network (a teacher is validated on its own input, HR)."""
        return self.net


class Baseline(Objective):
    """An SR network alone on the bicubic LR image: L1(SR, HR) (the `*` rows)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return student_loss(self.net(batch["lr"]), batch["hr"])


class Teacher(Objective):
    """A privileged teacher on HR: DSSD (Eq. 13, deep supervision) or PISR (encoder loss)."""

    def __init__(self, net: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.pisr = cfg.model.name == "pisr_teacher"
        self.levels = cfg.loss.levels
        self.ds_weight = cfg.loss.deep_supervision
        self.pisr_weight = cfg.loss.pisr

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.net(batch["hr"])
        targets = list(batch["targets"])
        if self.pisr:
            return pisr_teacher_loss(out, batch["hr"], targets, weight=self.pisr_weight)
        return teacher_loss(out, batch["hr"], targets, levels=self.levels,
                            fre_weight=self.ds_weight, deg_weight=self.ds_weight)

    def evaluator(self) -> nn.Module:
        return TeacherAsSR(self.net)


class TeacherAsSR(nn.Module):
    """Lets validation call a teacher like an SR network: it is given HR (`input="hr"`)."""

    input = "hr"

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        return self.teacher(hr).sr


def load_evaluator(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A finished run's network ready for `evaluate_model`: an SR network, or a teacher given HR."""
    net, record = load_model(run_dir)
    return (TeacherAsSR(net) if record["kind"] == "teacher" else net), record


class Student(Objective):
    """The student: initialised from the teacher's backbone, trained with L1 + w * VID (Eq. 16-18).

    The teacher's features for VID come from HR through the frozen teacher in eval mode.
    """

    def __init__(self, net: nn.Module, teacher: nn.Module, channels: int, vid_weight: float) -> None:
        super().__init__()
        self.net = net
        self.vid = VID(channels)
        self.vid_weight = vid_weight
        teacher.eval().requires_grad_(False)
        self._teacher = [teacher]  # a list keeps it out of parameters(), state_dict() and DDP

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def _apply(self, fn, *args, **kwargs):  # .to(device) moves the frozen teacher too
        self._teacher[0] = self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> Student:
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        sr, feat = self.net.forward_with_features(batch["lr"])
        with torch.no_grad():
            target = self.teacher(batch["hr"]).features
        return student_loss(sr, batch["hr"], self.vid.loss(feat, target), vid_weight=self.vid_weight)


def load_teacher(teacher_dir: str | Path) -> tuple[nn.Module, TrainConfig]:
    """A finished teacher run: (teacher network, its resolved settings)."""
    teacher_dir = Path(teacher_dir)
    config = teacher_dir / "config.json"
    if not config.exists():
        raise ReproError(f"--teacher {teacher_dir}: no config.json there; give the folder of a "
                         "`repro train teacher` run")
    tcfg = from_dict(json.loads(config.read_text())["settings"])
    if tcfg.kind != "teacher":
        raise ReproError(f"--teacher {teacher_dir} is a {tcfg.kind} run, not a teacher run")
    if not (teacher_dir / DONE).exists() or not (teacher_dir / MODEL).exists():
        raise ReproError(f"--teacher {teacher_dir} has not finished training; run its `repro train teacher` "
                         "command again to complete it")
    teacher, _ = load_model(teacher_dir / MODEL)
    return teacher, tcfg


def adopt_teacher(cfg: TrainConfig, tcfg: TrainConfig) -> None:
    """Make a student's settings follow its teacher: backbone network and settings, scale, channels.

    The student IS the teacher's backbone (it starts from its weights), so its model settings are the
    backbone's, whatever the profile said; `cfg.teacher` records the teacher run's hash.
    """
    backbone = tcfg.model.settings.get("backbone", "fsrcnn")
    if cfg.model.name != backbone:
        raise ReproError(f"the teacher's backbone is {backbone!r} but the student is {cfg.model.name!r}; "
                         f"use --model {backbone}")
    if cfg.data.scale != tcfg.data.scale or cfg.data.in_channels != tcfg.data.in_channels:
        raise ReproError(f"the teacher was trained at x{tcfg.data.scale} with {tcfg.data.in_channels} "
                         f"channel(s); the student must match (--scale {tcfg.data.scale})")
    defaults = {k: v for k, v in model_info(backbone).settings.items() if k != "in_channels"}
    cfg.model.settings = {**defaults, **(tcfg.model.settings.get("backbone_settings") or {})}
    cfg.teacher = tcfg.hash()


def build(cfg: TrainConfig, teacher: nn.Module | None = None,
          teacher_cfg: TrainConfig | None = None) -> tuple[Objective, dict[str, Any]]:
    """(objective, the deployed network's settings for `model.pt`) for a resolved config."""
    if cfg.kind == "baseline":
        settings = network_settings(cfg)
        return Baseline(create(cfg.model.name, scale=cfg.data.scale, **settings)), settings
    if cfg.kind == "teacher":
        settings = network_settings(cfg)
        return Teacher(create(cfg.model.name, scale=cfg.data.scale, **settings), cfg), settings
    if teacher is None or teacher_cfg is None:
        raise ReproError("a student needs its teacher: pass --teacher RUN_DIR (a finished teacher run)")
    adopt_teacher(cfg, teacher_cfg)
    settings = network_settings(cfg)
    net = create(cfg.model.name, scale=cfg.data.scale, **settings)
    net.load_state_dict(teacher.backbone.state_dict())  # every backbone layer (section 2.3)
    with torch.no_grad():
        probe = torch.zeros(1, cfg.data.in_channels, 8 * cfg.data.scale, 8 * cfg.data.scale)
        channels = teacher.eval()(probe).features.shape[1]
    return Student(net, teacher, channels, cfg.loss.vid), settings

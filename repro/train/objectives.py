"""What each kind of run optimises: one small module per kind, `forward(batch) -> (loss, terms)`.

`terms` are the loss's log terms as detached scalar tensors on the device (`repro.models.losses.Terms`):
the engine sums them there and reads them to the host only when it logs, so a step never waits.

An objective holds every trainable part (network, VID branches), so the engine optimises, checkpoints
and wraps in DistributedDataParallel one module whatever the kind. A student's frozen teacher is held
beside it (`FrozenTeacher`): it is neither trained, checkpointed nor synchronised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from repro.evaluate.sr import as_sr_network
from repro.models import create
from repro.models.losses import Terms, student_terms
from repro.models.vid import VID
from repro.runs.config import TrainConfig

Batch = dict[str, Any]
Weights = Mapping[str, float | torch.Tensor]


class Objective(nn.Module):
    """Base: `net` is the network that is trained and, by default, deployed.

    `forward(batch, weights=None) -> (loss, terms)`; `weights` names the loss terms beyond L_recon and
    their weights, by default the run's own (`loss_weights`). A fleet (`repro.train.fleet`) passes every
    term any member needs, each weight a tensor of its member's (0 where the member lacks the term)."""

    net: nn.Module
    weights: dict[str, float] = {}

    def loss_weights(self) -> dict[str, float]:
        """The run's own loss terms beyond L_recon, with their weights."""
        return dict(self.weights)

    def deployed(self) -> nn.Module:
        """What `model.pt` holds: the teacher whole, or the SR network without VID."""
        return self.net

    def evaluator(self) -> nn.Module:
        """What validation runs: an LR -> SR network (a privileged teacher is given HR)."""
        return as_sr_network(self.net)


class Baseline(Objective):
    """An SR network alone on the bicubic LR image: L1(SR, HR) (the `*` rows)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Batch, weights: Weights | None = None) -> tuple[torch.Tensor, Terms]:
        return student_terms(self.net(batch["lr"]), batch["hr"])


class Teacher(Objective):
    """A privileged teacher on HR, trained with its own loss (`loss_terms`: DSSD's Eq. 13, PISR's
    encoder term) on the batch's HR and bicubic levels; a `bicubic` downsampler (Table 1) takes those
    levels as its compact images, so it sees exactly the LR the student sees.
    """

    def __init__(self, net: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.weights = net.loss_weights(cfg.loss)

    def forward(self, batch: Batch, weights: Weights | None = None) -> tuple[torch.Tensor, Terms]:
        weights = self.weights if weights is None else weights
        return self.net.loss_terms(batch["hr"], list(batch["targets"]), weights)


class Student(Objective):
    """The student: initialised from the teacher's backbone, trained with L1 + w * VID (Eq. 16-18).

    Only the trainable part (the network and the VID branches): the frozen teacher's features come in
    the batch (`batch["teacher"]`, from `FrozenTeacher`), as timm's distillation task wraps only the
    trainable part, so the teacher is neither trained, checkpointed nor synchronised.
    """

    def __init__(self, net: nn.Module, channels: int, cfg: TrainConfig) -> None:
        super().__init__()
        self.net = net
        self.vid = VID(channels, density=cfg.loss.vid_density, shared_prelu=cfg.model.shared_prelu,
                       scale_factor=cfg.loss.vid_scale_factor, eps=cfg.loss.vid_eps)
        self.weights = {"vid": cfg.loss.vid}

    @property
    def vid_weight(self) -> float:
        return self.weights["vid"]

    def forward(self, batch: Batch, weights: Weights | None = None) -> tuple[torch.Tensor, Terms]:
        weights = self.weights if weights is None else weights
        sr, feat = self.net.forward_with_features(batch["lr"])
        return student_terms(sr, batch["hr"], self.vid.loss(feat, batch["teacher"]),
                             vid_weight=weights["vid"])


class FrozenTeacher:
    """A student's trained teacher, in eval mode and without gradients, held beside the objective: it
    gives the features VID distils, by its `features(hr)` (only the layers that make them run, not its
    upsampler nor its degradation). The batch's bicubic levels go to it too: a Table 1 `bicubic` teacher
    sees the LR file, as in its training."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net.eval().requires_grad_(False)

    def to(self, *args: Any, **kwargs: Any) -> FrozenTeacher:
        self.net.to(*args, **kwargs)
        return self

    @torch.no_grad()
    def __call__(self, batch: Batch) -> torch.Tensor:
        return self.net.features(batch["hr"], bicubic=list(batch["targets"]))


def build(cfg: TrainConfig, teacher: nn.Module | None = None
          ) -> tuple[Objective, FrozenTeacher | None, dict[str, Any]]:
    """(objective, a student's frozen teacher or None, the deployed network's settings for `model.pt`)
    for a resolved config.

    A student's `cfg` already holds its teacher's backbone settings (`resolve(..., teacher=...)`);
    `teacher` is that run's network, whose backbone weights the student starts from.
    """
    settings = cfg.network_settings()
    net = create(cfg.model.name, scale=cfg.data.scale, **settings)
    if cfg.kind == "baseline":
        return Baseline(net), None, settings
    if cfg.kind == "teacher":
        return Teacher(net, cfg), None, settings
    if teacher is None:  # the settings were checked at resolution (a student has its teacher's hash)
        raise ValueError("build(cfg, teacher): a student is built from its teacher's network")
    net.load_state_dict(teacher.backbone.state_dict())  # every backbone layer (section 2.3)
    with torch.no_grad():
        probe = torch.zeros(1, cfg.data.in_channels, 8 * cfg.data.scale, 8 * cfg.data.scale)
        channels = teacher.eval().features(probe).shape[1]
    return Student(net, channels, cfg), FrozenTeacher(teacher), settings

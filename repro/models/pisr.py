"""PISR teacher (Lee et al., ECCV 2020), the paper's main baseline and its Table 1 `pisr_encoder` row.

The teacher encodes the HR image to LR size in ONE strided step (no recursion, no supervision of
intermediate scales), reconstructs it with the backbone, and is trained with
L1(SR, HR) + 1e-4 L1(encoder output, LR) (`repro.models.losses.pisr_teacher_terms`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError, unknown_choice
from repro.models.losses import Terms, pisr_teacher_terms
from repro.models.registry import register_model
from repro.models.teachers import LossSettings, StridedEncoder, TeacherOutput, build_backbone, check_hr_size
from repro.scales import SCALES


class PISREncoder(StridedEncoder):
    """conv5x5(c->56) PReLU, conv5x5(56->56, stride) PReLU, conv3x3(56->12) PReLU, conv3x3(12->c).

    Reused by DSSD for the Table 1 `pisr_encoder` downsampler and the Table 2 `cnn` degradation.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stride: int = 4,
        mid: int = 56,
        shrink: int = 12,
        shared_prelu: bool = False,
    ) -> None:
        super().__init__(in_channels, stride, 5, mid, shrink, shared_prelu)


class PISRTeacher(nn.Module):
    """HR -> encoder (stride = scale) -> backbone -> SR; no degradation branch."""

    def __init__(
        self, backbone: nn.Module, scale: int, in_channels: int = 1, shared_prelu: bool = False
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise unknown_choice("scale", scale, SCALES)
        self.scale = scale
        self.encoder = PISREncoder(in_channels, stride=scale, shared_prelu=shared_prelu)
        self.backbone = backbone

    def forward(self, hr: torch.Tensor) -> TeacherOutput:
        check_hr_size(hr, self.scale)
        lr = self.encoder(hr)
        sr, feat = self.backbone.forward_with_features(lr)
        return TeacherOutput(sr=sr, compact=[lr], degraded=[], features=feat)

    def features(self, hr: torch.Tensor, bicubic: list[torch.Tensor] | None = None) -> torch.Tensor:
        """`forward(hr).features` without the backbone's upsampler, for a student's VID target.
        `bicubic` is accepted so that every teacher is called alike; PISR's encoder never uses it."""
        check_hr_size(hr, self.scale)
        return self.backbone.features(self.encoder(hr))

    def loss_weights(self, loss: LossSettings) -> dict[str, float]:
        """The term of its loss beyond L_recon and its weight: the encoder term, `loss.pisr`."""
        return {"z_enc": loss.pisr}

    def loss_terms(self, hr: torch.Tensor, targets: list[torch.Tensor],
                   weights: Mapping[str, float | torch.Tensor]) -> tuple[torch.Tensor, Terms]:
        """Its training loss on an HR batch: L1(SR, HR) + weights["z_enc"] L1(encoder output, LR);
        `targets` are the batch's bicubic levels (LR last)."""
        return pisr_teacher_terms(self(hr), hr, targets, weight=weights["z_enc"])


def check_settings(settings: dict[str, Any], loss: LossSettings, scale: int) -> None:
    """PISR has no deep supervision: a `loss.levels` other than the default would change nothing."""
    if loss.levels != "deep":
        raise ReproError(f"loss.levels={loss.levels!r} does nothing for pisr_teacher (it has no deep "
                         "supervision; its encoder term is loss.pisr): leave loss.levels at 'deep'")


@register_model(role="teacher", check=check_settings)
def pisr_teacher(
    scale: int = 4,
    backbone: str = "fsrcnn",
    in_channels: int = 1,
    shared_prelu: bool = False,
    backbone_settings: dict | None = None,
) -> PISRTeacher:
    """PISR teacher: one-step strided CNN encoder of HR, then the backbone (fsrcnn, vdsr or idn)."""
    net = build_backbone(backbone, scale, in_channels, backbone_settings, shared_prelu)
    return PISRTeacher(net, scale, in_channels=in_channels, shared_prelu=shared_prelu)

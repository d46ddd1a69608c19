"""Pieces shared by the privileged-information teachers (DSSD in `dssd.py`, PISR in `pisr.py`).

A teacher sees the HR image, squeezes it to LR size (`compact`), reconstructs it with a backbone
that the student later copies, and may re-degrade its own SR output (`degraded`). Every teacher
returns a `TeacherOutput`, computes its own training loss (`loss_weights(loss)`: the terms beyond
L_recon and their weights; `loss_terms(hr, targets, weights)`), and has `features(hr, bicubic=None)`:
the VID target alone, which is all a student asks of its frozen teacher (no upsampler, no degradation:
the backbone's own `features`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from repro.errors import ReproError, unknown_choice
from repro.models.fsrcnn import prelu
from repro.models.registry import create, model_info, model_names


class LossSettings(Protocol):
    """The loss settings a teacher reads (the run's `loss` section, `repro.runs.config.LossConfig`)."""

    levels: str  # DSSD: which deep-supervision levels (Table 3)
    deep_supervision: float  # DSSD: the weight of every z_Fre / z_Deg term
    pisr: float  # PISR: the weight of its encoder term


@dataclass
class TeacherOutput:
    """What one teacher pass produces (all tensors [N, C, H, W]).

    sr:       the reconstruction, HR size.
    compact:  downsampler outputs, finest first ([X', X''] at x4, [X'] at x2/x3); the last one is
              what the backbone sees (LR size).
    degraded: degradations of `sr`, same sizes as `compact` (or its last entries); empty when none.
    features: the backbone's feature map for VID (FSRCNN: the expanding map, 56 ch, LR size).
    """

    sr: torch.Tensor
    compact: list[torch.Tensor]
    degraded: list[torch.Tensor] = field(default_factory=list)
    features: torch.Tensor | None = None


def check_hr_size(hr: torch.Tensor, scale: int) -> None:
    """A teacher needs an HR batch [N, C, H, W] whose H and W are multiples of the scale."""
    if hr.dim() != 4:
        raise ReproError(f"teacher input must be an HR batch [N, C, H, W], got shape {tuple(hr.shape)}")
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ReproError(
            f"HR size {h}x{w} is not a multiple of the scale {scale}; crop it to "
            f"{h - h % scale}x{w - w % scale} (mod-crop) before the teacher"
        )


class StridedEncoder(nn.Module):
    """conv(c->56) PReLU, conv(56->56, stride) PReLU, conv3x3(56->12) PReLU, conv3x3(12->c).

    The shape shared by DSSD's HFRM (3x3 kernels) and PISR's encoder (5x5 first kernels): widths 56
    and 12 match FSRCNN's, one strided convolution does the downscaling.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stride: int = 2,
        kernel_size: int = 3,
        mid: int = 56,
        shrink: int = 12,
        shared_prelu: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size, padding=pad),
            prelu(mid, shared_prelu),
            nn.Conv2d(mid, mid, kernel_size, stride=stride, padding=pad),
            prelu(mid, shared_prelu),
            nn.Conv2d(mid, shrink, 3, padding=1),
            prelu(shrink, shared_prelu),
            nn.Conv2d(shrink, in_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_backbone(name: str, scale: int, in_channels: int, settings: dict | None = None,
                   shared_prelu: bool = False) -> nn.Module:
    """Build a teacher's backbone through the registry: a network whose role is `backbone` (Table 4:
    FSRCNN, VDSR, IDN), with `features` and `forward_with_features`.

    The teacher's `shared_prelu` reaches the backbone too (where it has PReLUs: FSRCNN), so one
    setting decides every PReLU of the teacher and, through it, of the student.
    """
    if name not in model_names(role="backbone"):
        raise unknown_choice("teacher backbone", name, model_names(role="backbone"))
    settings = dict(settings or {})
    takes_it = "shared_prelu" in model_info(name).settings
    if takes_it and settings.setdefault("shared_prelu", shared_prelu) != shared_prelu:
        raise ReproError(f"backbone_settings.shared_prelu={settings['shared_prelu']} disagrees with the "
                         f"teacher's shared_prelu={shared_prelu}; set shared_prelu once, on the teacher")
    return create(name, scale=scale, in_channels=in_channels, **settings)

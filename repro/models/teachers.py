"""Pieces shared by the privileged-information teachers (DSSD in `dssd.py`, PISR in `pisr.py`).

A teacher sees the HR image, squeezes it to LR size (`compact`), reconstructs it with a backbone
that the student later copies, and may re-degrade its own SR output (`degraded`). Every teacher
returns a `TeacherOutput`, so the training loop and the losses treat all of them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from repro.errors import ReproError, unknown_choice
from repro.models.fsrcnn import prelu
from repro.models.registry import create

# Backbones a teacher can wrap: each has `forward_with_features(lr) -> (sr, feat)` (Table 4).
TEACHER_BACKBONES = ("fsrcnn", "vdsr", "idn")
SCALES = (2, 3, 4)


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


def level_strides(scale: int) -> tuple[int, ...]:
    """Stride of each recursive downsampling level: x4 = 1/2 then 1/4 of HR; x2, x3 = one level."""
    if scale == 4:
        return (2, 2)
    if scale in (2, 3):
        return (scale,)
    raise unknown_choice("scale", scale, SCALES)


def level_factors(scale: int) -> tuple[int, ...]:
    """Total downscale factor at each level, finest first: x4 -> (2, 4), x2 -> (2,), x3 -> (3,)."""
    factors, total = [], 1
    for s in level_strides(scale):
        total *= s
        factors.append(total)
    return tuple(factors)


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


def build_backbone(name: str, scale: int, in_channels: int, settings: dict | None = None) -> nn.Module:
    """Build a teacher's backbone through the registry; it must expose `forward_with_features`."""
    if name not in TEACHER_BACKBONES:
        raise unknown_choice("teacher backbone", name, TEACHER_BACKBONES)
    return create(name, scale=scale, in_channels=in_channels, **(settings or {}))

"""CARN (Ahn, Kang & Sohn, ECCV 2018): cascading residual network, as in the authors' PyTorch code.

RGB mean shift, entry conv3x3(3->64), three cascading blocks, each made of three residual blocks
(conv3x3 ReLU conv3x3, + input, ReLU) joined by 1x1 "cascading" convs (128, 192, 256 -> 64, ReLU), the same
cascade again over the three blocks, an upsampler (conv3x3 64 -> 64*r^2 with `group` groups, ReLU,
PixelShuffle(r); twice r=2 for x4), exit conv3x3(64->3), mean shift back.

The published model is multi-scale: ONE network holds the x2, x3 and x4 upsamplers (1,591,939 parameters
in all) and runs the one for the requested scale; `multi_scale=False` builds a single-scale network
(964,163 / 1,148,803 / 1,111,875 at x2/x3/x4). The mean shifts are fixed buffers (frozen in the
official code, and not counted in its figures).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.registry import register_model
from repro.scales import SCALES

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


def _fuse(in_channels: int, channels: int) -> nn.Sequential:
    """The 1x1 conv + ReLU that merges a cascade's concatenated outputs."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True))


class Cascade(nn.Module):
    """Three units whose outputs are concatenated with all earlier ones and fused by 1x1 convs."""

    def __init__(self, units: list[nn.Module], channels: int) -> None:
        super().__init__()
        self.units = nn.ModuleList(units)
        self.fuse = nn.ModuleList(_fuse(channels * (i + 2), channels) for i in range(len(units)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cat, out = x, x
        for unit, fuse in zip(self.units, self.fuse, strict=True):
            cat = torch.cat([cat, unit(out)], dim=1)
            out = fuse(cat)
        return out


def _upsampler(channels: int, scale: int, group: int) -> nn.Sequential:
    if scale not in SCALES:
        raise ValueError(f"CARN has upsamplers for x2, x3, x4, not x{scale}")
    steps = [(2, int(math.log2(scale)))] if scale in (2, 4) else [(3, 1)]
    layers: list[nn.Module] = []
    for r, n in steps:
        for _ in range(n):
            layers += [
                nn.Conv2d(channels, channels * r * r, 3, padding=1, groups=group),
                nn.ReLU(inplace=True),
                nn.PixelShuffle(r),
            ]
    return nn.Sequential(*layers)


class CARN(nn.Module):
    """CARN; with `multi_scale` it holds the x2, x3 and x4 upsamplers and uses the one for `scale`."""

    def __init__(
        self,
        scale: int,
        multi_scale: bool = True,
        in_channels: int = 3,
        channels: int = 64,
        group: int = 1,
        rgb_mean: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"CARN supports scales {SCALES}, got {scale}")
        self.scale = scale
        self.in_channels = in_channels
        self.multi_scale = multi_scale
        if rgb_mean is None:
            rgb_mean = DIV2K_RGB_MEAN if in_channels == 3 else (0.0,) * in_channels
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.entry = nn.Conv2d(in_channels, channels, 3, padding=1)
        blocks = [Cascade([ResidualBlock(channels) for _ in range(3)], channels) for _ in range(3)]
        self.body = Cascade(blocks, channels)
        scales = SCALES if multi_scale else (scale,)
        self.upsample = nn.ModuleDict({f"x{s}": _upsampler(channels, s, group) for s in scales})
        self.exit = nn.Conv2d(channels, in_channels, 3, padding=1)

    def forward(self, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        scale = self.scale if scale is None else scale
        if f"x{scale}" not in self.upsample:
            raise ValueError(f"this CARN has upsamplers {list(self.upsample)}, not x{scale}")
        x = self.body(self.entry(lr - self.mean))
        return self.exit(self.upsample[f"x{scale}"](x)) + self.mean


@register_model
def carn(
    scale: int = 4, multi_scale: bool = True, in_channels: int = 3, channels: int = 64, group: int = 1
) -> CARN:
    """CARN (cascading residual network); multi-scale by default, as the authors' released model."""
    return CARN(scale, multi_scale=multi_scale, in_channels=in_channels, channels=channels, group=group)

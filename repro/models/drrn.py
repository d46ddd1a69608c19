"""DRRN (Tai, Yang & Liu, CVPR 2017), B1U25: one recursive block of 25 residual units on the bicubic image.

As the authors' Caffe model (`DRRN_B1U25_52C128`): every conv is pre-activated (BatchNorm + Scale, ReLU,
conv3x3 with bias). conv_in (c->128) gives H0; each unit u computes H_u = H0 + conv_b(conv_a(H_{u-1}))
where conv_a and conv_b (128->128) are THE SAME two convs in all 25 units (Caffe `RB1_wa`/`RB1_wb`),
while each unit has its own batch-norm layers. A pre-activated conv_out (128->c) and the global
residual (+ bicubic input) give the output.

Convolution weights (shared counted once): 9c*128 + 2*9*128*128 + 9*128*c = 297,216 for c=1 (the
published 297k); biases and the per-unit batch-norm scale/shift come on top.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.imaging.resize import imresize_torch
from repro.models.registry import register_model


def _pre(channels: int) -> nn.Sequential:
    """Caffe's BatchNorm + Scale (affine) + ReLU that precedes every DRRN conv."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class DRRN(nn.Module):
    """Recursive block: two shared convs applied `units` times, with per-unit batch norms."""

    def __init__(self, scale: int, in_channels: int = 1, channels: int = 128, units: int = 25) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.units = units
        self.pre_in = _pre(in_channels)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv_a = nn.Conv2d(channels, channels, 3, padding=1)  # shared by every unit
        self.conv_b = nn.Conv2d(channels, channels, 3, padding=1)  # shared by every unit
        self.pre_a = nn.ModuleList(_pre(channels) for _ in range(units))
        self.pre_b = nn.ModuleList(_pre(channels) for _ in range(units))
        self.pre_out = _pre(channels)
        self.conv_out = nn.Conv2d(channels, in_channels, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = imresize_torch(lr, self.scale)
        h0 = self.conv_in(self.pre_in(x))
        h = h0
        for u in range(self.units):
            h = h0 + self.conv_b(self.pre_b[u](self.conv_a(self.pre_a[u](h))))
        return x + self.conv_out(self.pre_out(h))


@register_model
def drrn(scale: int = 4, in_channels: int = 1, channels: int = 128, units: int = 25) -> DRRN:
    """DRRN B1U25 (one recursive block, 25 units sharing two 128-channel convs) on the bicubic Y image."""
    return DRRN(scale, in_channels=in_channels, channels=channels, units=units)

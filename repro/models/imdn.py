"""IMDN (Hui, Gao, Yang & Wang, ACM MM 2019): information multi-distillation network, official layout.

conv3x3(3->64); 6 IMDBs; conv1x1(6*64 -> 64) LeakyReLU(0.05); conv3x3(64->64) plus the first features;
upsampler conv3x3(64 -> 3*r^2) + PixelShuffle(r). An IMDB: conv3x3(64->64) LReLU, split 16 distilled / 48
remaining; conv3x3(48->64) LReLU, split; conv3x3(48->64) LReLU, split; conv3x3(48->16); concat the four
16-channel parts, contrast-aware channel attention (std + mean pooling, 1x1 64->4 ReLU, 1x1 4->64 sigmoid),
conv1x1(64->64), plus the block input. 694,404 / 703,059 / 715,176 parameters at x2 / x3 / x4.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.registry import register_model


class ContrastChannelAttention(nn.Module):
    """CCA: per-channel standard deviation + mean, squeezed and excited."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.excite = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return x * self.excite(std + mean)


class IMDB(nn.Module):
    """Progressive refinement: three distillation steps keep `distilled` channels each."""

    def __init__(self, channels: int, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c3 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c4 = nn.Conv2d(self.remaining, self.distilled, 3, padding=1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.cca = ContrastChannelAttention(self.distilled * 4)
        self.c5 = nn.Conv2d(self.distilled * 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r3)], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(nn.Module):
    def __init__(self, scale: int, in_channels: int = 3, channels: int = 64, blocks: int = 6) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.fea_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(IMDB(channels) for _ in range(blocks))
        self.fuse = nn.Sequential(nn.Conv2d(channels * blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.lr_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(channels, in_channels * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(lr)
        outs = []
        h = fea
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.upsampler(self.lr_conv(self.fuse(torch.cat(outs, dim=1))) + fea)


@register_model
def imdn(scale: int = 4, in_channels: int = 3, channels: int = 64, blocks: int = 6) -> IMDN:
    """IMDN (64 channels, 6 IMDBs), one network per scale."""
    return IMDN(scale, in_channels=in_channels, channels=channels, blocks=blocks)

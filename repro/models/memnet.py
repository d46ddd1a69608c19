"""MemNet (Tai, Yang, Liu & Xu, ICCV 2017), M6R6: 6 memory blocks of 6 recursions on the bicubic image.

As the authors' Caffe model (`MemNet_M6R6_80C64`), every conv is pre-activated (BatchNorm + Scale, ReLU,
conv with bias):
- FENet: conv3x3(c->64) gives B0.
- Memory block m (1..6): a recursive unit applies ONE residual block (two conv3x3 64->64, shared across
  the 6 recursions, Caffe `convMM_wa`/`convMM_wb`; batch norms per recursion) with H_r = H_{r-1} +
  conv_b(conv_a(H_{r-1})); the gate unit, conv1x1((6+m)*64 -> 64), fuses the long-term memory
  [B0, ..., B_{m-1}] with the 6 short-term states [H_1..H_6] into B_m.
- ReconNet: ONE conv3x3(64->c) (Caffe `Recon_w`, own batch norm per use) maps every B_m to a prediction
  y_m = recon(B_m) + x; the output is sum_m w_m y_m (multi-supervision, learned scalar weights).

Convolution weights (shared counted once): 9c*64 + 6 * 2*9*64*64 + sum_m (6+m)*64*64 + 9*64*c = 676,992
for c=1, the published 677k. `multi_supervision=False` keeps only the last prediction (the same
parameters except the batch norms and weights of the unused reconstructions).
"""

from __future__ import annotations

import torch
from torch import nn

from repro.imaging.resize import imresize_torch
from repro.models.registry import register_model


def _pre(channels: int) -> nn.Sequential:
    """Caffe's BatchNorm + Scale (affine) + ReLU that precedes every MemNet conv."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class MemoryBlock(nn.Module):
    """A recursive unit (one shared residual block, `recursions` times) and a 1x1 gate unit."""

    def __init__(self, channels: int, recursions: int, memories: int) -> None:
        super().__init__()
        self.recursions = recursions
        self.conv_a = nn.Conv2d(channels, channels, 3, padding=1)  # shared by every recursion
        self.conv_b = nn.Conv2d(channels, channels, 3, padding=1)  # shared by every recursion
        self.pre_a = nn.ModuleList(_pre(channels) for _ in range(recursions))
        self.pre_b = nn.ModuleList(_pre(channels) for _ in range(recursions))
        gate_in = (recursions + memories) * channels
        self.gate = nn.Sequential(_pre(gate_in), nn.Conv2d(gate_in, channels, 1))

    def forward(self, x: torch.Tensor, long_term: list[torch.Tensor]) -> torch.Tensor:
        short_term = []
        h = x
        for r in range(self.recursions):
            h = h + self.conv_b(self.pre_b[r](self.conv_a(self.pre_a[r](h))))
            short_term.append(h)
        return self.gate(torch.cat(long_term + short_term, dim=1))


class MemNet(nn.Module):
    """FENet, `blocks` densely connected memory blocks, a shared ReconNet with multi-supervision."""

    def __init__(
        self,
        scale: int,
        in_channels: int = 1,
        channels: int = 64,
        blocks: int = 6,
        recursions: int = 6,
        multi_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.multi_supervision = multi_supervision
        self.fenet = nn.Sequential(_pre(in_channels), nn.Conv2d(in_channels, channels, 3, padding=1))
        self.blocks = nn.ModuleList(MemoryBlock(channels, recursions, m + 1) for m in range(blocks))
        n_out = blocks if multi_supervision else 1
        self.recon_pre = nn.ModuleList(_pre(channels) for _ in range(n_out))
        self.recon = nn.Conv2d(channels, in_channels, 3, padding=1)  # shared by every prediction
        # Output weights start as a plain average of the intermediate predictions.
        self.weights = nn.Parameter(torch.full((n_out,), 1.0 / n_out)) if multi_supervision else None

    def predictions(self, lr: torch.Tensor) -> list[torch.Tensor]:
        """The prediction of every memory block (only the last one without multi-supervision)."""
        x = imresize_torch(lr, self.scale)
        memory = [self.fenet(x)]
        for block in self.blocks:
            memory.append(block(memory[-1], memory))
        outs = memory[1:] if self.multi_supervision else memory[-1:]
        return [self.recon(pre(b)) + x for pre, b in zip(self.recon_pre, outs, strict=True)]

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        preds = self.predictions(lr)
        if self.weights is None:
            return preds[0]
        out = self.weights[0] * preds[0]
        for w, p in zip(self.weights[1:], preds[1:], strict=True):
            out = out + w * p
        return out


@register_model
def memnet(
    scale: int = 4,
    in_channels: int = 1,
    channels: int = 64,
    blocks: int = 6,
    recursions: int = 6,
    multi_supervision: bool = True,
) -> MemNet:
    """MemNet M6R6 (6 memory blocks x 6 shared recursions, 64 channels) on the bicubic-upscaled Y image."""
    return MemNet(
        scale,
        in_channels=in_channels,
        channels=channels,
        blocks=blocks,
        recursions=recursions,
        multi_supervision=multi_supervision,
    )

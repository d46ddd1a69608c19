"""SRFBN (Li et al., CVPR 2019): super-resolution feedback network, as in the authors' PyTorch code.

num_features=64, num_steps=4, num_groups=6, PReLU (one slope, init 0.2) after every conv but the last:
- LR features: conv3x3(3 -> 256), conv1x1(256 -> 64) -> F_in.
- Feedback block (ONE module, run `steps` times; its output is the hidden state fed back into the next
  step, the first step uses F_in as the hidden state): compress conv1x1(128 -> 64) of [F_in, hidden], then
  `groups` projection groups, each an up-projection ConvTranspose2d(64,64,k,stride=s,pad=2) and a
  down-projection Conv2d(64,64,k,stride=s,pad=2) with dense 1x1 transitions (64*(g+1) -> 64) before both
  from the second group on; conv1x1(6*64 -> 64) of the groups' LR outputs.
- Every step is reconstructed: ConvTranspose2d(64,64,k,s,pad=2) PReLU, conv3x3(64 -> 3), plus the bilinear
  upscale of the input; the output of the last step is the SR image (`step_outputs` gives them all).
(k, s) = (6, 2), (7, 3), (8, 4) at x2, x3, x4: 2,140,510 / 2,832,734 / 3,631,454 parameters.
The RGB mean shifts are fixed buffers (frozen in the official code and not counted in its figures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.registry import register_model

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
_KERNEL = {2: 6, 3: 7, 4: 8, 8: 12}  # the official (kernel, stride=scale, padding=2) per scale


def _conv(cin: int, cout: int, k: int, stride: int = 1, padding: int | None = None) -> nn.Sequential:
    pad = (k - 1) // 2 if padding is None else padding
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=pad), nn.PReLU(1, init=0.2))


def _deconv(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=2), nn.PReLU(1, init=0.2))


class FeedbackBlock(nn.Module):
    """Dense up/down projection groups; `forward(x, hidden)` returns the new hidden state."""

    def __init__(self, channels: int, groups: int, scale: int) -> None:
        super().__init__()
        k = _KERNEL[scale]
        self.compress_in = _conv(2 * channels, channels, 1)
        self.up = nn.ModuleList(_deconv(channels, channels, k, scale) for _ in range(groups))
        self.down = nn.ModuleList(
            _conv(channels, channels, k, stride=scale, padding=2) for _ in range(groups)
        )
        self.up_tran = nn.ModuleList(_conv(channels * (g + 1), channels, 1) for g in range(1, groups))
        self.down_tran = nn.ModuleList(_conv(channels * (g + 1), channels, 1) for g in range(1, groups))
        self.compress_out = _conv(groups * channels, channels, 1)

    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        lr_feats = [self.compress_in(torch.cat([x, hidden], dim=1))]
        hr_feats: list[torch.Tensor] = []
        for g, (up, down) in enumerate(zip(self.up, self.down, strict=True)):
            low = lr_feats[0] if g == 0 else self.up_tran[g - 1](torch.cat(lr_feats, dim=1))
            hr_feats.append(up(low))
            high = hr_feats[0] if g == 0 else self.down_tran[g - 1](torch.cat(hr_feats, dim=1))
            lr_feats.append(down(high))
        return self.compress_out(torch.cat(lr_feats[1:], dim=1))


class SRFBN(nn.Module):
    """Feedback network: one feedback block unrolled over `steps`, each step reconstructed."""

    def __init__(
        self,
        scale: int,
        in_channels: int = 3,
        channels: int = 64,
        steps: int = 4,
        groups: int = 6,
        rgb_range: float = 1.0,
        reconstruct_every_step: bool = True,
    ) -> None:
        super().__init__()
        if scale not in _KERNEL:
            raise ValueError(f"SRFBN supports scales {sorted(_KERNEL)}, got {scale}")
        self.scale = scale
        self.in_channels = in_channels
        self.steps = steps
        self.reconstruct_every_step = reconstruct_every_step
        mean = DIV2K_RGB_MEAN if in_channels == 3 else (0.0,) * in_channels
        self.register_buffer("mean", rgb_range * torch.tensor(mean).view(1, -1, 1, 1))
        self.conv_in = _conv(in_channels, 4 * channels, 3)
        self.feat_in = _conv(4 * channels, channels, 1)
        self.block = FeedbackBlock(channels, groups, scale)
        self.out = _deconv(channels, channels, _KERNEL[scale], scale)
        self.conv_out = nn.Conv2d(channels, in_channels, 3, padding=1)

    def step_outputs(self, lr: torch.Tensor) -> list[torch.Tensor]:
        """The SR image of every step (the official forward; training supervises all of them)."""
        x = lr - self.mean
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        feat = self.feat_in(self.conv_in(x))
        hidden = feat
        outs = []
        for t in range(self.steps):
            hidden = self.block(feat, hidden)
            if self.reconstruct_every_step or t == self.steps - 1:
                outs.append(base + self.conv_out(self.out(hidden)) + self.mean)
        return outs

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.step_outputs(lr)[-1]


@register_model
def srfbn(
    scale: int = 4,
    in_channels: int = 3,
    channels: int = 64,
    steps: int = 4,
    groups: int = 6,
    reconstruct_every_step: bool = True,
) -> SRFBN:
    """SRFBN (64 features, 4 steps, 6 groups), one network per scale."""
    return SRFBN(
        scale,
        in_channels=in_channels,
        channels=channels,
        steps=steps,
        groups=groups,
        reconstruct_every_step=reconstruct_every_step,
    )

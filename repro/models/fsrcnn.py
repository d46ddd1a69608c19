"""FSRCNN (Dong et al., ECCV 2016), the student network of DSSD and PISR.

d=56, s=12, m=4 as in the paper; on the Y channel it has 12,809 parameters (the paper's "13k").
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.layers import ConvTranspose2d
from repro.models.registry import register_model


def prelu(channels: int, shared: bool) -> nn.PReLU:
    """One slope per channel (the FSRCNN paper) or, with `shared`, PISR's single slope (nn.PReLU())."""
    return nn.PReLU() if shared else nn.PReLU(channels)


class FSRCNN(nn.Module):
    """Feature extraction, shrinking, mapping, expanding, and a transposed-convolution upsampler."""

    def __init__(
        self,
        scale: int,
        in_channels: int = 1,
        d: int = 56,
        s: int = 12,
        m: int = 4,
        shared_prelu: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.feature = nn.Sequential(nn.Conv2d(in_channels, d, 5, padding=2), prelu(d, shared_prelu))
        self.shrink = nn.Sequential(nn.Conv2d(d, s, 1), prelu(s, shared_prelu))
        mapping: list[nn.Module] = []
        for _ in range(m):
            mapping += [nn.Conv2d(s, s, 3, padding=1), prelu(s, shared_prelu)]
        self.mapping = nn.Sequential(*mapping)
        self.expand = nn.Sequential(nn.Conv2d(s, d, 1), prelu(d, shared_prelu))
        self.deconv = ConvTranspose2d(
            d, in_channels, 9, stride=scale, padding=4, output_padding=scale - 1
        )

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """The "expanding" feature map (d channels, LR size): what VID distils."""
        return self.expand(self.mapping(self.shrink(self.feature(lr))))

    def upsample(self, feat: torch.Tensor) -> torch.Tensor:
        return self.deconv(feat)

    def forward_with_features(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SR and the expanding map in one pass (the student's VID input, the teacher's VID target)."""
        feat = self.features(lr)
        return self.upsample(feat), feat

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.features(lr))


@register_model(role="backbone")
def fsrcnn(scale: int = 4, in_channels: int = 1, shared_prelu: bool = False) -> FSRCNN:
    """FSRCNN (d=56, s=12, m=4); the `*` baseline and the DSSD/PISR student."""
    return FSRCNN(scale, in_channels=in_channels, shared_prelu=shared_prelu)

"""VDSR (Kim et al., CVPR 2016), a Table 4 backbone.

20 conv3x3 layers of 64 channels, ReLU between, no biases (664,704 parameters on Y), learning the
residual to the bicubic-upscaled input. The bicubic upscale happens inside (`imresize_torch`,
MATLAB's kernel, as the original MATLAB code made its inputs), so VDSR maps LR to SR like every
other network here, and a teacher can feed it its compact LR image unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.imaging.resize import imresize_torch
from repro.models.registry import register_model


class VDSR(nn.Module):
    """conv(c->64) ReLU, (depth-2) x [conv(64->64) ReLU], conv(64->c); SR = bicubic + residual."""

    def __init__(self, scale: int, in_channels: int = 1, width: int = 64, depth: int = 20) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(width, in_channels, 3, padding=1, bias=False)
        for m in self.modules():  # He init as in the VDSR paper (PyTorch's default is scaled for no ReLU)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """The last feature map before the reconstruction conv (64 ch, HR size): what VID distils."""
        return self.body(imresize_torch(lr, self.scale))

    def forward_with_features(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SR and `features(lr)` in one pass (the bicubic upscale made once)."""
        up = imresize_torch(lr, self.scale)
        feat = self.body(up)
        return up + self.tail(feat), feat

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(lr)[0]


@register_model(role="backbone")
def vdsr(scale: int = 4, in_channels: int = 1) -> VDSR:
    """VDSR: 20 bias-free 3x3 convs on the bicubic-upscaled image, global residual (Table 4)."""
    return VDSR(scale, in_channels=in_channels)

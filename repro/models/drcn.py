"""DRCN (Kim, Lee & Lee, CVPR 2016): one 3x3 conv applied recursively 16 times on the bicubic image.

Embedding net: conv3x3(c->256) ReLU, conv3x3(256->256) ReLU. Inference net: ONE conv3x3(256->256) ReLU,
applied `recursions` times with the same weights. Reconstruction net (shared by every recursion):
conv3x3(256->256) ReLU, conv3x3(256->c). Recursive supervision with skip connection: each hidden state
H_d gives a prediction y_d = f_rec(H_d) + x, and the output is sum_d w_d y_d with learned w_d.

Convolution weights (shared counted once): 2 x (9c*256 + 9*256*256) + 9*256*256 = 1,774,080 for c=1,
the published 1774k; biases (4*256 + c) and the 16 ensemble weights come on top.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.imaging.resize import imresize_torch
from repro.models.registry import register_model


class DRCN(nn.Module):
    """Embedding, one recursively applied conv, a shared reconstruction net, learned ensemble weights."""

    def __init__(self, scale: int, in_channels: int = 1, channels: int = 256, recursions: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.recursions = recursions
        self.embed = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.inference = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.reconstruct = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, in_channels, 3, padding=1),
        )
        # Ensemble weights start as a plain average of the intermediate predictions.
        self.ensemble = nn.Parameter(torch.full((recursions,), 1.0 / recursions))

    def predictions(self, lr: torch.Tensor) -> list[torch.Tensor]:
        """Every intermediate prediction y_d (for recursive supervision in training)."""
        x = imresize_torch(lr, self.scale)
        h = self.embed(x)
        preds = []
        for _ in range(self.recursions):
            h = self.inference(h)
            preds.append(self.reconstruct(h) + x)
        return preds

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        # Accumulate the weighted sum on the fly: at 1280x720 a 256-channel map is ~0.9 GB.
        x = imresize_torch(lr, self.scale)
        h = self.embed(x)
        out = torch.zeros_like(x)
        for d in range(self.recursions):
            h = self.inference(h)
            out = out + self.ensemble[d] * (self.reconstruct(h) + x)
        return out


@register_model
def drcn(scale: int = 4, in_channels: int = 1, channels: int = 256, recursions: int = 16) -> DRCN:
    """DRCN (16 recursions of one 256-channel conv) on the bicubic-upscaled Y image."""
    return DRCN(scale, in_channels=in_channels, channels=channels, recursions=recursions)

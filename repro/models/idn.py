"""IDN, information distillation network (Hui et al., CVPR 2018), a Table 4 backbone.

Layout of the official Caffe model (Y channel, 552,769 parameters; 590,915 with RGB in/out):
FBlock = 2 x conv3x3(64) LReLU(0.05); 4 DBlocks, each an enhancement unit (3 convs, the middle one
in 4 groups; a 1/4 slice of the result is concatenated to the block input, the rest goes through 3
more convs and is added to that concatenation) and a 1x1 compression unit back to 64 channels
(every conv but the last is followed by LReLU, the compression included); then a 17x17 transposed
conv to HR, added to the bicubic upscale of the input.

Decisions: (1) the bicubic branch is MATLAB bicubic (`imresize_torch`), as the official test script
makes it with MATLAB `imresize`; (2) the transposed conv uses padding 8 and output_padding s-1 so
its output is exactly s*h (Caffe's has s*h-(s-1) rows, aligned to the bottom-right, and the official
code crops the bicubic image to match; PyTorch cannot pad asymmetrically, and the 17x17 kernel
learns the offset); (3) the official Caffe fillers: He-normal convs (fan-in), zero biases, and for
the transposed conv Caffe's "msra" with fan averaging (std sqrt(4 / (fan_in + fan_out)), Caffe's fans).
"""

from __future__ import annotations

import torch
from torch import nn

from repro.imaging.resize import imresize_torch
from repro.models.layers import ConvTranspose2d
from repro.models.registry import register_model


def _conv(cin: int, cout: int, k: int = 3, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups)


class DBlock(nn.Module):
    """Enhancement unit + compression unit (1x1 conv, LReLU); d = the slice kept for the concatenation."""

    def __init__(self, width: int = 64, d: int = 16, groups: int = 4, slope: float = 0.05) -> None:
        super().__init__()
        self.d = d
        act = nn.LeakyReLU(slope)
        self.upper = nn.Sequential(
            _conv(width, width - d), act,
            _conv(width - d, width - 2 * d, groups=groups), act,
            _conv(width - 2 * d, width), act,
        )  # fmt: skip
        self.lower = nn.Sequential(
            _conv(width - d, width), act,
            _conv(width, width - d, groups=groups), act,
            _conv(width - d, width + d), act,
        )  # fmt: skip
        self.compress = nn.Sequential(_conv(width + d, width, k=1), act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.upper(x)
        kept, rest = u[:, : self.d], u[:, self.d :]
        y = torch.cat([x, kept], dim=1) + self.lower(rest)
        return self.compress(y)


class IDN(nn.Module):
    """FBlock, `blocks` DBlocks, transposed-conv upsampler; SR = bicubic(LR) + network output."""

    def __init__(
        self,
        scale: int,
        in_channels: int = 1,
        width: int = 64,
        blocks: int = 4,
        d: int = 16,
        slope: float = 0.05,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.fblock = nn.Sequential(
            _conv(in_channels, width), nn.LeakyReLU(slope), _conv(width, width), nn.LeakyReLU(slope)
        )
        self.dblocks = nn.Sequential(*[DBlock(width, d, slope=slope) for _ in range(blocks)])
        self.deconv = ConvTranspose2d(
            width, in_channels, 17, stride=scale, padding=8, output_padding=scale - 1
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # Caffe msra, fan-in
                nn.init.zeros_(m.bias)
        k = self.deconv.kernel_size[0] * self.deconv.kernel_size[1]
        fan_in, fan_out = in_channels * k, width * k  # Caffe's fans of the [width, c, k, k] blob
        nn.init.normal_(self.deconv.weight, std=(4.0 / (fan_in + fan_out)) ** 0.5)
        nn.init.zeros_(self.deconv.bias)

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """The last feature map before the transposed conv (64 ch, LR size): what VID distils."""
        return self.dblocks(self.fblock(lr))

    def forward_with_features(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SR and `features(lr)` in one pass."""
        feat = self.features(lr)
        return imresize_torch(lr, self.scale) + self.deconv(feat), feat

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(lr)[0]


@register_model(role="backbone")
def idn(scale: int = 4, in_channels: int = 1) -> IDN:
    """IDN (official Y-channel layout): 4 distillation blocks, 17x17 deconv, bicubic skip (Table 4)."""
    return IDN(scale, in_channels=in_channels)

"""Layers the networks share where PyTorch's own would do the same arithmetic more slowly."""

from __future__ import annotations

import torch
from torch import nn

# the most output channels for which PyTorch's native kernel beats oneDNN's on the CPU (x4, 16 patches of
# 6x6 LR, 56 input channels, one thread, forward): 1 channel 0.15 vs 1.13 ms, 3: 0.40 vs 1.15, 8: 1.02 vs
# 1.18, 16: 2.01 vs 1.25
NATIVE_MAX_OUT = 4


class ConvTranspose2d(nn.ConvTranspose2d):
    """`nn.ConvTranspose2d` whose CPU forward uses PyTorch's native kernel when it has few output
    channels (FSRCNN's and IDN's single-channel upsamplers): oneDNN picks a strided kernel there that is
    about 7x slower, a quarter of an FSRCNN training step on a laptop. The same weights, state-dict keys
    and arithmetic (outputs differ by float rounding, ~2e-5 on unit-variance inputs); on other devices,
    and for wider layers, it is the plain layer. The backward is chosen by PyTorch as usual."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or self.out_channels > NATIVE_MAX_OUT or not torch.backends.mkldnn.enabled:
            return super().forward(x, output_size)
        torch.backends.mkldnn.enabled = False  # read when the kernel is chosen, so for this call only
        try:
            return super().forward(x, output_size)
        finally:
            torch.backends.mkldnn.enabled = True

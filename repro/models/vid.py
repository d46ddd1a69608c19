"""Variational information distillation (Ahn et al., CVPR 2019) as PISR and DSSD use it (Eq. 17-18).

The student's feature map predicts a Laplace distribution (mean mu, scale b) of the teacher's
feature map at every element; the loss is its negative log-likelihood up to a constant:
    mean over C x H x W of  ln b + |t - mu| / b.
A large b lets the student ignore features it cannot predict; ln b stops b from growing for free.
The two branches live only in training: they are not part of the deployed student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.fsrcnn import prelu


def laplace_nll(target: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 17: mean of ln b + |target - mu| / b."""
    return (torch.log(b) + (target - mu).abs() / b).mean()


class VID(nn.Module):
    """Mean branch conv1x1 PReLU conv1x1; scale branch the same, then softplus + eps (b > 0)."""

    def __init__(self, channels: int = 56, eps: float = 1e-6, shared_prelu: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.mean = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, student_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, b) predicted from the student's feature map."""
        return self.mean(student_feat), F.softplus(self.scale(student_feat)) + self.eps

    def loss(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        """Laplace NLL of the (fixed) teacher feature under the student's prediction."""
        if student_feat.shape != teacher_feat.shape:
            raise ValueError(
                f"VID needs student and teacher features of the same shape, got "
                f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}"
            )
        mu, b = self(student_feat)
        return laplace_nll(teacher_feat.detach(), mu, b)

"""Variational information distillation (Ahn et al., CVPR 2019) as PISR and DSSD use it (Eq. 17-18).

The student's feature map predicts a distribution of the teacher's feature map at every element
(mean mu from one branch, a scale from the other); the loss is the negative log-likelihood of the
teacher's feature under it, up to a constant, averaged over C x H x W:

- `laplace` (the paper's Eq. 17): b = softplus(.) + 1e-6, loss ln b + |t - mu| / b;
- `gaussian` (PISR's code, its default): s = 1e-3 softplus(.) + 1e-8, loss ln(s) / 2 + (t - mu)^2 / (2 s)
  (s plays the variance; the constant C ln(2 pi) / 2 of PISR's code is left out: it has no gradient).

A large scale lets the student ignore features it cannot predict; the log term stops the scale from
growing for free. The two branches live only in training: they are not part of the deployed student.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import unknown_choice
from repro.models.fsrcnn import prelu

DENSITIES = ("laplace", "gaussian")
LAPLACE_EPS = 1e-6
GAUSSIAN_SCALE, GAUSSIAN_EPS = 1e-3, 1e-8  # PISR's `vid_loss(pdf='gaussian')`


def laplace_nll(target: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 17: mean of ln b + |target - mu| / b."""
    return (torch.log(b) + (target - mu).abs() / b).mean()


def gaussian_nll(target: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """PISR's Gaussian form: mean of ln(var) / 2 + (target - mu)^2 / (2 var)."""
    return (torch.log(var) / 2 + (target - mu) ** 2 / (2 * var)).mean()


class VID(nn.Module):
    """Mean branch conv1x1 PReLU conv1x1; scale branch the same, then the density's positive map."""

    def __init__(self, channels: int = 56, density: str = "laplace", shared_prelu: bool = False) -> None:
        super().__init__()
        if density not in DENSITIES:
            raise unknown_choice("VID density", density, DENSITIES)
        self.density = density
        self.mean = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, student_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, scale) predicted from the student's feature map: b (laplace) or the variance (gaussian)."""
        mu, raw = self.mean(student_feat), F.softplus(self.scale(student_feat))
        if self.density == "laplace":
            return mu, raw + LAPLACE_EPS
        return mu, raw * GAUSSIAN_SCALE + GAUSSIAN_EPS

    def loss(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the (fixed) teacher feature under the student's prediction."""
        if student_feat.shape != teacher_feat.shape:
            raise ValueError(
                f"VID needs student and teacher features of the same shape, got "
                f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}"
            )
        mu, scale = self(student_feat)
        nll = laplace_nll if self.density == "laplace" else gaussian_nll
        return nll(teacher_feat.detach(), mu, scale)

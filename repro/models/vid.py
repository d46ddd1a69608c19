"""Variational information distillation (Ahn et al., CVPR 2019) as PISR and DSSD use it (Eq. 17-18).

The student's feature map predicts a distribution of the teacher's feature map at every element
(mean mu from one branch, a scale from the other); the loss is the negative log-likelihood of the
teacher's feature under it, up to a constant, averaged over C x H x W:

- `laplace`: b = scale_factor * softplus(.) + eps, loss ln b + |t - mu| / b. The paper's Eq. 17 has
  scale_factor 1 (eps 1e-6, ours: the paper gives none); PISR's final student config (f66b979,
  `pdf: laplace`) has b = 0.1 softplus(.) + 1e-8;
- `gaussian` (PISR's `vid_loss` default, which its first student config used): s = 1e-3 softplus(.) + 1e-8,
  loss ln(s) / 2 + (t - mu)^2 / (2 s) (s plays the variance).

Constants are left out, having no gradient: PISR's code adds C ln(2 pi) / 2 to both densities, and its
Laplace writes ln(2b) = ln 2 + ln b. The logged VID term is therefore that much below PISR's; the
gradients, and so the training, are the same.

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
LAPLACE_SCALE, LAPLACE_EPS = 1.0, 1e-6  # Eq. 17: b = softplus(.) + eps
GAUSSIAN_SCALE, GAUSSIAN_EPS = 1e-3, 1e-8  # PISR's `vid_loss(pdf='gaussian')`


def laplace_nll(target: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Eq. 17: mean of ln b + |target - mu| / b."""
    return (torch.log(b) + (target - mu).abs() / b).mean()


def gaussian_nll(target: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """PISR's Gaussian form: mean of ln(var) / 2 + (target - mu)^2 / (2 var)."""
    return (torch.log(var) / 2 + (target - mu) ** 2 / (2 * var)).mean()


class VID(nn.Module):
    """Mean branch conv1x1 PReLU conv1x1; scale branch the same, then the density's positive map.

    `scale_factor` and `eps` shape the Laplace scale b; the Gaussian keeps PISR's fixed form.
    """

    def __init__(self, channels: int = 56, density: str = "laplace", shared_prelu: bool = False,
                 scale_factor: float = LAPLACE_SCALE, eps: float = LAPLACE_EPS) -> None:
        super().__init__()
        if density not in DENSITIES:
            raise unknown_choice("VID density", density, DENSITIES)
        if density == "gaussian" and (scale_factor, eps) != (LAPLACE_SCALE, LAPLACE_EPS):
            raise ValueError("scale_factor and eps shape the Laplace scale; the Gaussian's form is fixed")
        if scale_factor <= 0 or eps <= 0:
            raise ValueError(f"scale_factor and eps must be positive, got {scale_factor} and {eps}")
        self.density = density
        self.scale_factor, self.eps = (GAUSSIAN_SCALE, GAUSSIAN_EPS) if density == "gaussian" \
            else (scale_factor, eps)
        self.mean = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, 1), prelu(channels, shared_prelu), nn.Conv2d(channels, channels, 1)
        )

    def forward(self, student_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, scale) predicted from the student's feature map: b (laplace) or the variance (gaussian)."""
        mu, raw = self.mean(student_feat), F.softplus(self.scale(student_feat))
        return mu, (raw if self.scale_factor == 1 else raw * self.scale_factor) + self.eps

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

"""DSSD teacher (Mao & Xu 2023, section 2.1): HFRM, SDM and the deeply-supervised symmetric teacher.

    X'  = G(Y),   X'' = G(X')          (Eq. 1-2, HFRM: ONE module applied recursively)
    SR  = F(X'')                        (Eq. 3, the backbone the student copies)
    D'  = S(SR),  D'' = S(D')           (Eq. 4-5, SDM: same structure, own weights by default)

x4 has two levels (1/2, 1/4 of HR); the paper only describes x4, so x2 and x3 use one level (one
application, the strided conv at stride 2 or 3). `DSSDTeacher` also builds every ablation row of
Tables 1-2 (the settings of each row: `repro.specs`); Table 3 is a loss setting (`loss.levels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from repro.errors import ReproError, unknown_choice
from repro.imaging import imresize_torch
from repro.models.losses import Terms, teacher_terms, teacher_weights
from repro.models.pisr import PISREncoder
from repro.models.registry import register_model
from repro.models.teachers import LossSettings, StridedEncoder, TeacherOutput, build_backbone, check_hr_size
from repro.scales import SCALES, level_factors, level_strides

DOWNSAMPLERS = ("hfrm", "bicubic", "pisr_encoder")  # Table 1
DEGRADATIONS = ("sdm", "none", "bicubic", "cnn")  # Table 2

class HFRM(StridedEncoder):
    """One step G of the high-frequency feature recursive module (paper Fig. 3).

    conv3x3(c->56) PReLU, conv3x3(56->56, stride) PReLU, conv3x3(56->12) PReLU, conv3x3(12->c):
    56 to match FSRCNN's width, 12 its shrinking width. The same instance is applied once per level.
    """

    def __init__(
        self,
        in_channels: int = 1,
        stride: int = 2,
        mid: int = 56,
        shrink: int = 12,
        shared_prelu: bool = False,
    ) -> None:
        super().__init__(in_channels, stride, 3, mid, shrink, shared_prelu)


class SDM(HFRM):
    """Symmetric degradation module: "identical in structure" to HFRM, applied recursively to SR."""


def apply_recursively(module: nn.Module, x: torch.Tensor, times: int) -> list[torch.Tensor]:
    """[G(x), G(G(x)), ...]: every level's output, finest first, one set of weights."""
    outs = []
    for _ in range(times):
        x = module(x)
        outs.append(x)
    return outs


def bicubic_levels(x: torch.Tensor, factors: tuple[int, ...]) -> list[torch.Tensor]:
    """MATLAB-bicubic downscales of x by each factor, each straight from x (as the targets are made)."""
    return [imresize_torch(x, 1.0 / f) for f in factors]


class CNNDegradation(nn.Module):
    """Table 2 `cnn`: a plain, NON-recursive CNN downsampler of SR (the paper gives no shape).

    Decision: the PISR encoder structure, one independent copy per supervised level, each applied
    straight to SR with stride = that level's full factor (x4: stride 2 -> D', stride 4 -> D'';
    x2/x3: one copy, stride 2/3). `first_level=False` keeps only the last level's copy at x4.
    """

    def __init__(
        self, in_channels: int, scale: int, first_level: bool = True, shared_prelu: bool = False
    ) -> None:
        super().__init__()
        factors = level_factors(scale)
        if not first_level:
            factors = factors[-1:]
        self.factors = factors
        self.levels = nn.ModuleList(
            PISREncoder(in_channels, stride=f, shared_prelu=shared_prelu) for f in factors
        )

    def forward(self, sr: torch.Tensor) -> list[torch.Tensor]:
        return [enc(sr) for enc in self.levels]


class DSSDTeacher(nn.Module):
    """HR -> downsampler -> backbone -> SR -> degradation (Eq. 1-5), returning a `TeacherOutput`.

    downsampler: "hfrm" (the paper), "bicubic" (MATLAB bicubic: the teacher sees the student's
    input), "pisr_encoder" (PISR's one-step encoder, one level). degradation: "sdm" (the paper),
    "none", "bicubic" (bicubic downscales of SR at each level), "cnn" (`CNNDegradation`).
    `share_sdm_weights` makes S the same module as G (the paper reuses the symbol G in Eq. 4-5).
    """

    def __init__(
        self,
        backbone: nn.Module,
        scale: int,
        downsampler: str = "hfrm",
        degradation: str = "sdm",
        share_sdm_weights: bool = False,
        in_channels: int = 1,
        cnn_first_level: bool = True,
        shared_prelu: bool = False,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise unknown_choice("scale", scale, SCALES)
        if downsampler not in DOWNSAMPLERS:
            raise unknown_choice("downsampler", downsampler, DOWNSAMPLERS)
        if degradation not in DEGRADATIONS:
            raise unknown_choice("degradation", degradation, DEGRADATIONS)
        if share_sdm_weights and (downsampler, degradation) != ("hfrm", "sdm"):
            raise ReproError(
                "share_sdm_weights needs downsampler='hfrm' and degradation='sdm' "
                f"(got downsampler={downsampler!r}, degradation={degradation!r})"
            )
        self.scale = scale
        self.downsampler = downsampler
        self.degradation = degradation
        self.share_sdm_weights = share_sdm_weights
        self.factors = level_factors(scale)
        stride = level_strides(scale)[0]  # every level has the same stride (x4: 2, 2)

        if downsampler == "hfrm":
            self.hfrm = HFRM(in_channels, stride=stride, shared_prelu=shared_prelu)
        elif downsampler == "pisr_encoder":
            self.encoder = PISREncoder(in_channels, stride=scale, shared_prelu=shared_prelu)
        self.backbone = backbone
        if degradation == "sdm":
            self.sdm = self.hfrm if share_sdm_weights else SDM(in_channels, stride, shared_prelu=shared_prelu)
        elif degradation == "cnn":
            self.cnn = CNNDegradation(in_channels, scale, cnn_first_level, shared_prelu)

    def downsample(self, hr: torch.Tensor) -> list[torch.Tensor]:
        """Eq. 1-2: the compact images, finest first; the last one has LR size."""
        if self.downsampler == "hfrm":
            return apply_recursively(self.hfrm, hr, len(self.factors))
        if self.downsampler == "bicubic":
            return bicubic_levels(hr, self.factors)
        return [self.encoder(hr)]

    def degrade(self, sr: torch.Tensor) -> list[torch.Tensor]:
        """Eq. 4-5: degradations of SR at the supervised levels, finest first."""
        if self.degradation == "sdm":
            return apply_recursively(self.sdm, sr, len(self.factors))
        if self.degradation == "bicubic":
            return bicubic_levels(sr, self.factors)
        if self.degradation == "cnn":
            return self.cnn(sr)
        return []

    def forward(self, hr: torch.Tensor, bicubic: list[torch.Tensor] | None = None) -> TeacherOutput:
        """The teacher's pass on HR. `bicubic`: the batch's MATLAB-bicubic levels of HR (finest first,
        LR last); a `bicubic` downsampler then uses them as they are, so that it sees exactly the
        student's input (the LR file), not a float re-resize of HR."""
        compact = self._compact(hr, bicubic)
        sr, feat = self.backbone.forward_with_features(compact[-1])  # Eq. 3
        return TeacherOutput(sr=sr, compact=compact, degraded=self.degrade(sr), features=feat)

    def features(self, hr: torch.Tensor, bicubic: list[torch.Tensor] | None = None) -> torch.Tensor:
        """`forward(hr, bicubic).features` alone, for a student's VID target: the backbone's upsampler
        and the SDM on the HR-size SR (the bulk of a teacher pass) are not run."""
        return self.backbone.features(self._compact(hr, bicubic, last_only=True)[-1])

    def loss_weights(self, loss: LossSettings) -> dict[str, float]:
        """The terms of its loss beyond L_recon and their weights: the deep-supervision terms of
        `loss.levels`, each weighted `loss.deep_supervision` (Eq. 13)."""
        return teacher_weights(loss.levels, loss.deep_supervision, loss.deep_supervision)

    def loss_terms(self, hr: torch.Tensor, targets: list[torch.Tensor],
                   weights: Mapping[str, float | torch.Tensor]) -> tuple[torch.Tensor, Terms]:
        """Its training loss on an HR batch (Eq. 13): L_recon plus the deep-supervision terms of
        `weights` (`loss_weights`) that its outputs have, each times its weight; `targets` are the batch's
        bicubic levels (finest first, LR last), which a `bicubic` downsampler also takes as its compact
        images."""
        return teacher_terms(self(hr, bicubic=targets), hr, targets, weights=weights)

    def _compact(self, hr: torch.Tensor, bicubic: list[torch.Tensor] | None,
                 last_only: bool = False) -> list[torch.Tensor]:
        """The compact images (Eq. 1-2); `last_only`: a bicubic downsampler makes only the LR level
        (each level is resized straight from HR, so the LR level is the same either way)."""
        check_hr_size(hr, self.scale)
        if self.downsampler == "bicubic" and bicubic is not None:
            if len(bicubic) != len(self.factors):
                raise ValueError(f"expected {len(self.factors)} bicubic levels, got {len(bicubic)}")
            return list(bicubic)
        if self.downsampler == "bicubic" and last_only:
            return bicubic_levels(hr, self.factors[-1:])
        return self.downsample(hr)

    def sees_lr(self) -> bool:
        """Whether the backbone's input is the bicubic LR image itself (Table 1 `bicubic` row): such a
        teacher is evaluated on the LR file, as the student is."""
        return self.downsampler == "bicubic"


def check_settings(settings: dict[str, Any], loss: LossSettings, scale: int) -> None:
    """Refuse a combination in which `loss.levels` would silently drop a whole loss term."""
    if loss.levels != "first_level" or scale != 4:
        return
    if settings.get("downsampler") == "pisr_encoder":
        raise ReproError("model.downsampler=pisr_encoder with loss.levels=first_level drops the z_fre term "
                         "altogether (the PISR encoder makes only the 1/4 level, first_level keeps only the "
                         "1/2 level); use loss.levels=deep or another downsampler")
    if settings.get("degradation") == "cnn" and not settings.get("cnn_first_level", True):
        raise ReproError("model.degradation=cnn with model.cnn_first_level=false and loss.levels=first_level "
                         "drops the z_deg term altogether; set model.cnn_first_level=true or "
                         "loss.levels=deep")


@register_model(role="teacher", check=check_settings)
def dssd_teacher(
    scale: int = 4,
    backbone: str = "fsrcnn",
    downsampler: str = "hfrm",
    degradation: str = "sdm",
    share_sdm_weights: bool = False,
    cnn_first_level: bool = True,
    in_channels: int = 1,
    shared_prelu: bool = False,
    backbone_settings: dict | None = None,
) -> DSSDTeacher:
    """DSSD teacher: recursive HFRM downsampler, backbone, recursive SDM degradation (Tables 1-4 variants)."""
    net = build_backbone(backbone, scale, in_channels, backbone_settings, shared_prelu)
    return DSSDTeacher(
        net,
        scale,
        downsampler=downsampler,
        degradation=degradation,
        share_sdm_weights=share_sdm_weights,
        in_channels=in_channels,
        cnn_first_level=cnn_first_level,
        shared_prelu=shared_prelu,
    )

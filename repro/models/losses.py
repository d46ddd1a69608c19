"""Training losses of the teachers and the student (paper section 2.2-2.3, Eq. 6-17).

Teacher (Eq. 13):  L = L_recon + w_fre (z'_Fre + z''_Fre) + w_deg (z'_Deg + z''_Deg),  w = 1e-4
    L_recon = |Y - SR|,  z_Fre = |X_bic - X|,  z_Deg = |X_bic - D|   (each a mean absolute error)
where the targets X'_bic, X''_bic are MATLAB-bicubic downscales of HR by 2 and 4 (X''_bic = LR).
Student (Eq. 16):  L = |Y - SR| + 1e-6 VID.

Level pairing: `targets` has one entry per level, finest first. A teacher's `compact`/`degraded`
lists may hold only the LAST levels (PISR's encoder and the `cnn` degradation with
`cnn_first_level=False` produce only the LR level): lists are aligned at their coarsest end, so
`z_fre_2` is always the 1/4 level at x4 and `z_fre_1` the 1/2 level (the only level at x2, x3).

Each loss returns (total, log terms); the log terms are detached scalar tensors, on the device: reading
a number to the host waits for the device, so the engine reads them only when it logs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
import torch.nn.functional as F

from repro.errors import unknown_choice
from repro.models.teachers import TeacherOutput

# Table 3: "deep" = every level, "first_level" = only the 1/2-scale terms, "none" = L_recon only.
# "recon_only" is the Table 3 row name for "none".
LEVELS = ("deep", "first_level", "none", "recon_only")
Z_KEYS = ("z_fre_1", "z_fre_2", "z_deg_1", "z_deg_2")  # the deep-supervision terms, in the order summed
Terms = dict[str, torch.Tensor]  # log name -> detached scalar tensor, on the loss's device


def _l1(x: torch.Tensor, y: torch.Tensor, what: str) -> torch.Tensor:
    if x.shape != y.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    return F.l1_loss(x, y)


def _detached(terms: Terms) -> Terms:
    return {k: t.detach() for k, t in terms.items()}


def reconstruction_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Eq. 6 / 15: mean absolute error between SR and HR."""
    return _l1(sr, hr, "reconstruction loss (SR vs HR)")


def _paired(outputs: list[torch.Tensor], targets: list[torch.Tensor], name: str):
    """(level number, output, target) with the lists aligned at their coarsest (last) entry."""
    if len(outputs) > len(targets):
        raise ValueError(f"{name}: {len(outputs)} outputs but only {len(targets)} bicubic targets")
    offset = len(targets) - len(outputs)
    return [(offset + i + 1, out, targets[offset + i]) for i, out in enumerate(outputs)]


def supervised_keys(levels: str) -> tuple[str, ...]:
    """The deep-supervision terms `levels` keeps (Table 3): every level, the 1/2-scale ones, or none."""
    if levels not in LEVELS:
        raise unknown_choice("supervision levels", levels, LEVELS)
    if levels in ("none", "recon_only"):
        return ()
    return tuple(k for k in Z_KEYS if levels == "deep" or k.endswith("_1"))


def deep_supervision_losses(
    out: TeacherOutput,
    targets: list[torch.Tensor],
    levels: str = "deep",
    weight: float = 1e-4,
    keys: Collection[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Eq. 7-12: the auxiliary terms that apply, each times `weight` (pass 1.0 for the raw MAEs).

    Keys `z_fre_<k>` (downsampler output vs target k) and `z_deg_<k>` (degraded SR vs target k),
    k = 1 for the 1/2 level, 2 for the 1/4 level: those `levels` keeps, or those of `keys` when given,
    in that order, where the teacher's outputs have the level.
    """
    wanted = supervised_keys(levels) if keys is None else tuple(keys)
    terms: dict[str, torch.Tensor] = {}
    for kind, outputs in (("fre", out.compact), ("deg", out.degraded)):
        for k, x, target in _paired(outputs, targets, f"z_{kind}"):
            if f"z_{kind}_{k}" in wanted:
                terms[f"z_{kind}_{k}"] = weight * _l1(x, target, f"z_{kind}_{k}")
    return terms


def teacher_weights(levels: str = "deep", fre_weight: float = 1e-4,
                    deg_weight: float = 1e-4) -> dict[str, float]:
    """The weight of each deep-supervision term a DSSD teacher's `levels` keeps (Eq. 13)."""
    return {k: fre_weight if k.startswith("z_fre") else deg_weight for k in supervised_keys(levels)}


def teacher_terms(
    out: TeacherOutput,
    hr: torch.Tensor,
    targets: list[torch.Tensor],
    levels: str = "deep",
    fre_weight: float = 1e-4,
    deg_weight: float = 1e-4,
    weights: Mapping[str, float | torch.Tensor] | None = None,
) -> tuple[torch.Tensor, Terms]:
    """Eq. 13 for a DSSD teacher: (total, log) where log holds `recon`, the raw z terms and `total`.

    `weights` (default: `teacher_weights(levels, fre_weight, deg_weight)`) names the terms and their
    weights; a fleet passes every term any member needs, each member's weight a tensor (0 for a term it
    does not have: it adds exactly nothing to that member's total)."""
    weights = teacher_weights(levels, fre_weight, deg_weight) if weights is None else weights
    recon = reconstruction_loss(out.sr, hr)
    raw = deep_supervision_losses(out, targets, weight=1.0, keys=weights)
    total = recon
    for key, z in raw.items():
        total = total + weights[key] * z
    return total, _detached({"recon": recon, **raw, "total": total})


def pisr_teacher_terms(
    out: TeacherOutput,
    hr: torch.Tensor,
    targets: list[torch.Tensor] | torch.Tensor,
    weight: float | torch.Tensor = 1e-4,
) -> tuple[torch.Tensor, Terms]:
    """PISR: L1(SR, HR) + weight L1(encoder output, LR); `targets` is the level list (LR last) or LR."""
    lr = targets[-1] if isinstance(targets, list | tuple) else targets
    recon = reconstruction_loss(out.sr, hr)
    z_enc = _l1(out.compact[-1], lr, "PISR encoder loss (encoder output vs LR)")
    total = recon + weight * z_enc
    return total, _detached({"recon": recon, "z_enc": z_enc, "total": total})


def student_terms(
    sr: torch.Tensor,
    hr: torch.Tensor,
    vid_term: torch.Tensor | None = None,
    vid_weight: float | torch.Tensor = 1e-6,
) -> tuple[torch.Tensor, Terms]:
    """Eq. 16: L1(SR, HR) + vid_weight * VID; `vid_term=None` trains without distillation (the `*` rows)."""
    recon = reconstruction_loss(sr, hr)
    total = recon if vid_term is None else recon + vid_weight * vid_term
    terms = (
        {"recon": recon, "total": total}
        if vid_term is None
        else {"recon": recon, "vid": vid_term, "total": total}
    )
    return total, _detached(terms)

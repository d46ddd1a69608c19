"""Losses (Eq. 6-17) on small hand-made tensors with hand-computed values, and VID's behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from repro.errors import ReproError
from repro.models.losses import (
    Z_KEYS,
    deep_supervision_losses,
    pisr_teacher_terms,
    reconstruction_loss,
    student_terms,
    teacher_terms,
    teacher_weights,
)
from repro.models.teachers import TeacherOutput
from repro.models.vid import VID, laplace_nll


def t(values) -> torch.Tensor:
    """A [1, 1, H, W] tensor from nested lists."""
    return torch.tensor(values, dtype=torch.float64)[None, None]


# Targets at x4: X'_bic (2x2) and X''_bic (1x1).
X1_BIC = t([[1.0, 1.0], [1.0, 1.0]])
X2_BIC = t([[2.0]])
HR = t([[1.0] * 4] * 4)


def floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: v.item() for k, v in terms.items()}


def hand_output() -> TeacherOutput:
    # |X' - X'_bic| = (0 + 1 + 2 + 1) / 4 = 1.0      |X'' - X''_bic| = |5 - 2| = 3.0
    # |D' - X'_bic| = (0.5 * 4) / 4 = 0.5            |D'' - X''_bic| = |2 - 2| = 0.0
    # |SR - HR| = one pixel off by 8 -> 8 / 16 = 0.5
    sr = HR.clone()
    sr[..., 0, 0] = 9.0
    return TeacherOutput(
        sr=sr,
        compact=[t([[1.0, 2.0], [3.0, 0.0]]), t([[5.0]])],
        degraded=[t([[1.5, 0.5], [1.5, 0.5]]), t([[2.0]])],
        features=None,
    )


def test_reconstruction_loss_is_mean_absolute_error() -> None:
    assert reconstruction_loss(t([[0.0, 1.0], [2.0, 3.0]]), t([[1.0, 1.0], [1.0, 1.0]])).item() == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        reconstruction_loss(t([[0.0]]), t([[0.0, 1.0]]))


def test_deep_supervision_terms_by_hand() -> None:
    raw = deep_supervision_losses(hand_output(), [X1_BIC, X2_BIC], levels="deep", weight=1.0)
    assert {k: v.item() for k, v in raw.items()} == {
        "z_fre_1": 1.0,
        "z_fre_2": 3.0,
        "z_deg_1": 0.5,
        "z_deg_2": 0.0,
    }
    weighted = deep_supervision_losses(hand_output(), [X1_BIC, X2_BIC])  # default weight 1e-4
    assert weighted["z_fre_2"].item() == pytest.approx(3e-4)


def test_supervision_levels() -> None:
    out, targets = hand_output(), [X1_BIC, X2_BIC]
    first = deep_supervision_losses(out, targets, levels="first_level", weight=1.0)
    assert {k: v.item() for k, v in first.items()} == {"z_fre_1": 1.0, "z_deg_1": 0.5}
    assert deep_supervision_losses(out, targets, levels="none") == {}
    assert deep_supervision_losses(out, targets, levels="recon_only") == {}
    with pytest.raises(ReproError, match="valid choices: deep, first_level, none, recon_only"):
        deep_supervision_losses(out, targets, levels="all")


def test_single_level_outputs_align_to_the_lr_level() -> None:
    """PISR's encoder (one output, LR size) at x4 is supervised by X''_bic and named z_fre_2."""
    out = TeacherOutput(sr=HR, compact=[t([[5.0]])], degraded=[])
    raw = deep_supervision_losses(out, [X1_BIC, X2_BIC], weight=1.0)
    assert {k: v.item() for k, v in raw.items()} == {"z_fre_2": 3.0}
    assert deep_supervision_losses(out, [X1_BIC, X2_BIC], levels="first_level") == {}
    with pytest.raises(ValueError, match="z_fre_2: shapes differ"):
        deep_supervision_losses(TeacherOutput(sr=HR, compact=[X1_BIC]), [X1_BIC, X2_BIC])
    with pytest.raises(ValueError, match="only 1 bicubic targets"):
        deep_supervision_losses(hand_output(), [X2_BIC])


def test_teacher_loss_total_by_hand() -> None:
    total, log = teacher_terms(hand_output(), HR, [X1_BIC, X2_BIC])
    expected = 0.5 + 1e-4 * (1.0 + 3.0) + 1e-4 * (0.5 + 0.0)
    assert total.item() == pytest.approx(expected, rel=1e-12)
    assert floats(log) == pytest.approx(
        {"recon": 0.5, "z_fre_1": 1.0, "z_fre_2": 3.0, "z_deg_1": 0.5, "z_deg_2": 0.0, "total": expected}
    )
    assert all(v.dim() == 0 and not v.requires_grad for v in log.values())  # detached, on the device


def test_teacher_loss_weights_and_levels() -> None:
    total, _ = teacher_terms(hand_output(), HR, [X1_BIC, X2_BIC], fre_weight=0.5, deg_weight=2.0)
    assert total.item() == pytest.approx(0.5 + 0.5 * 4.0 + 2.0 * 0.5)
    total, log = teacher_terms(
        hand_output(), HR, [X1_BIC, X2_BIC], levels="first_level", fre_weight=1, deg_weight=1
    )
    assert total.item() == pytest.approx(0.5 + 1.0 + 0.5) and set(log) == {
        "recon",
        "z_fre_1",
        "z_deg_1",
        "total",
    }
    total, log = teacher_terms(hand_output(), HR, [X1_BIC, X2_BIC], levels="none")
    assert total.item() == 0.5 and set(log) == {"recon", "total"}


def test_pisr_teacher_loss_by_hand() -> None:
    out = TeacherOutput(sr=hand_output().sr, compact=[t([[5.0]])])
    total, log = pisr_teacher_terms(out, HR, [X1_BIC, X2_BIC])
    assert total.item() == pytest.approx(0.5 + 1e-4 * 3.0)
    assert floats(log) == pytest.approx({"recon": 0.5, "z_enc": 3.0, "total": 0.5003})
    assert pisr_teacher_terms(out, HR, X2_BIC, weight=1.0)[0].item() == pytest.approx(3.5)


def test_student_loss_by_hand() -> None:
    sr = hand_output().sr
    total, log = student_terms(sr, HR, torch.tensor(3.0, dtype=torch.float64))
    assert total.item() == pytest.approx(0.5 + 3e-6) and floats(log) == pytest.approx(
        {"recon": 0.5, "vid": 3.0, "total": 0.500003}
    )
    total, log = student_terms(sr, HR, None)
    assert total.item() == 0.5 and set(log) == {"recon", "total"}
    assert student_terms(sr, HR, torch.tensor(3.0), vid_weight=0.1)[0].item() == pytest.approx(0.8)


def test_laplace_nll_by_hand() -> None:
    target, mu, b = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0]), torch.tensor([1.0, 2.0])
    # (ln 1 + |1 - 0| / 1 + ln 2 + 0 / 2) / 2
    assert laplace_nll(target, mu, b).item() == pytest.approx((1.0 + math.log(2.0)) / 2, rel=1e-6)


def test_laplace_nll_lowest_at_the_target() -> None:
    target = torch.full((5,), 0.3)
    b = torch.full((5,), 0.7)
    grid = torch.linspace(-1, 1, 201)
    values = torch.stack([laplace_nll(target, torch.full((5,), float(m)), b) for m in grid])
    assert grid[values.argmin()].item() == pytest.approx(0.3, abs=1e-6)
    # and for fixed |t - mu| the best b is |t - mu| (d/db: 1/b - |t-mu|/b^2 = 0)
    bs = torch.linspace(0.05, 2, 400)
    values = torch.stack([laplace_nll(target, torch.zeros(5), torch.full((5,), float(x))) for x in bs])
    assert bs[values.argmin()].item() == pytest.approx(0.3, abs=0.01)


def test_laplace_nll_gradient_pushes_mu_toward_target() -> None:
    target = torch.tensor([1.0, -1.0, 0.5])
    mu = torch.tensor([0.0, 0.0, 0.9], requires_grad=True)
    laplace_nll(target, mu, torch.ones(3)).backward()
    step = -mu.grad  # a gradient-descent step
    assert torch.equal(torch.sign(step), torch.sign(target - mu.detach()))


def test_vid_scale_positive_and_shapes() -> None:
    vid = VID(8)
    with torch.no_grad():
        vid.scale[-1].bias.fill_(-100.0)  # softplus underflows to 0: eps keeps b > 0
    mu, b = vid(torch.randn(2, 8, 3, 5))
    assert mu.shape == b.shape == (2, 8, 3, 5)
    assert (b > 0).all() and torch.isfinite(vid.loss(torch.randn(2, 8, 3, 5), torch.randn(2, 8, 3, 5)))
    with pytest.raises(ValueError, match="same shape"):
        vid.loss(torch.randn(1, 8, 3, 5), torch.randn(1, 8, 3, 4))


def test_vid_gradients_reach_student_not_teacher() -> None:
    vid = VID(4)
    student = torch.randn(1, 4, 3, 3, requires_grad=True)
    teacher = torch.randn(1, 4, 3, 3, requires_grad=True)
    vid.loss(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    assert all(p.grad is not None for p in vid.parameters())


def test_vid_training_moves_mu_toward_teacher() -> None:
    torch.manual_seed(0)
    vid = VID(4)
    student = torch.randn(2, 4, 6, 6)
    teacher = 0.5 * student.flip(1) + 0.2  # predictable from the student by 1x1 convs
    opt = torch.optim.Adam(vid.parameters(), lr=5e-2)
    first = vid.loss(student, teacher).item()
    err0 = (vid(student)[0] - teacher).abs().mean().item()
    for _ in range(40):
        opt.zero_grad()
        vid.loss(student, teacher).backward()
        opt.step()
    assert vid.loss(student, teacher).item() < first
    assert (vid(student)[0] - teacher).abs().mean().item() < 0.5 * err0


@pytest.mark.parametrize("levels", ["deep", "first_level", "none"])
def test_weights_name_the_terms_levels_keeps_and_zero_weights_add_nothing(levels) -> None:
    """A teacher's `levels` is a set of weighted terms: the same total and log as by levels; and the
    union of every level's terms with this run's weights (0 for the others, as a fleet passes them, a
    tensor each) gives the same total, bit for bit."""
    torch.manual_seed(0)
    out = TeacherOutput(sr=torch.rand(2, 1, 8, 8), compact=[torch.rand(2, 1, 4, 4), torch.rand(2, 1, 2, 2)],
                        degraded=[torch.rand(2, 1, 4, 4), torch.rand(2, 1, 2, 2)], features=None)
    hr, targets = torch.rand(2, 1, 8, 8), [torch.rand(2, 1, 4, 4), torch.rand(2, 1, 2, 2)]
    by_levels = teacher_terms(out, hr, targets, levels=levels, fre_weight=1e-4, deg_weight=3e-4)
    own = teacher_weights(levels, 1e-4, 3e-4)
    by_weights = teacher_terms(out, hr, targets, weights=own)
    assert torch.equal(by_levels[0], by_weights[0]) and by_levels[1].keys() == by_weights[1].keys()
    union = {k: torch.tensor(own.get(k, 0.0)) for k in Z_KEYS}
    total, log = teacher_terms(out, hr, targets, weights=union)
    assert torch.equal(total, by_levels[0]) and set(log) == {"recon", *Z_KEYS, "total"}

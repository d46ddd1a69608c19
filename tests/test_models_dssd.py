"""DSSD and PISR teachers: HFRM/SDM structure and weight sharing, TeacherOutput sizes, every variant."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from repro.errors import ReproError
from repro.imaging.resize import imresize_torch
from repro.models import create
from repro.models.dssd import HFRM, SDM, DSSDTeacher
from repro.models.losses import pisr_teacher_terms, teacher_terms
from repro.models.pisr import PISREncoder, PISRTeacher
from repro.models.teachers import TeacherOutput
from repro.runs.config import LossConfig
from repro.scales import level_factors


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def targets_for(hr: torch.Tensor, scale: int) -> list[torch.Tensor]:
    return [imresize_torch(hr, 1.0 / f) for f in level_factors(scale)]


def test_hfrm_layout_and_params() -> None:
    convs = [m for m in HFRM(1, stride=2).modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 56, (3, 3), (1, 1)),
        (56, 56, (3, 3), (2, 2)),
        (56, 12, (3, 3), (1, 1)),
        (12, 1, (3, 3), (1, 1)),
    ]
    assert n_params(HFRM(1)) == 35_133  # 560 + 28,280 + 6,060 + 109 conv, 56 + 56 + 12 PReLU slopes
    assert n_params(SDM(1)) == n_params(HFRM(1))
    assert n_params(HFRM(1, shared_prelu=True)) == 35_133 - 124 + 3


@pytest.mark.parametrize(("scale", "stride", "applications"), [(2, 2, 1), (3, 3, 1), (4, 2, 2)])
def test_recursion_per_scale(scale: int, stride: int, applications: int) -> None:
    teacher = create("dssd_teacher", scale)
    assert teacher.hfrm.body[2].stride == (stride, stride)
    calls: list[tuple[int, ...]] = []
    teacher.hfrm.register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape[-2:])))
    teacher(torch.rand(1, 1, 5 * scale, 7 * scale))
    assert len(calls) == applications
    assert calls[-1] == (5, 7)


@pytest.mark.parametrize("name", ["dssd_teacher", "pisr_teacher"])
@pytest.mark.parametrize("backbone", ["fsrcnn", "vdsr", "idn"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_teacher_output_sizes(name: str, backbone: str, scale: int) -> None:
    teacher = create(name, scale, backbone=backbone)
    h, w = 3 * scale, 5 * scale  # LR 3x5: odd sizes
    out = teacher(torch.rand(2, 1, h, w))
    assert isinstance(out, TeacherOutput)
    assert out.sr.shape == (2, 1, h, w)
    sizes = [(h // f, w // f) for f in level_factors(scale)]
    if name == "pisr_teacher":
        sizes = sizes[-1:]
    assert [tuple(x.shape) for x in out.compact] == [(2, 1, *s) for s in sizes]
    assert [tuple(x.shape) for x in out.degraded] == (
        [] if name == "pisr_teacher" else [(2, 1, *s) for s in sizes]
    )
    feat_size = (h, w) if backbone == "vdsr" else (3, 5)
    assert out.features.shape[0] == 2 and tuple(out.features.shape[-2:]) == feat_size
    assert type(teacher.backbone) is type(create(backbone, scale))


@pytest.mark.parametrize("name", ["dssd_teacher", "pisr_teacher"])
@pytest.mark.parametrize(("scale", "size"), [(4, (30, 32)), (3, (9, 10)), (2, (7, 8))])
def test_hr_size_must_be_a_multiple_of_scale(name: str, scale: int, size: tuple[int, int]) -> None:
    with pytest.raises(
        ReproError, match=rf"HR size {size[0]}x{size[1]} is not a multiple of the scale {scale}"
    ):
        create(name, scale)(torch.rand(1, 1, *size))
    with pytest.raises(ReproError, match="HR batch"):
        create(name, scale)(torch.rand(1, 8, 8))


def test_student_can_load_the_teacher_backbone() -> None:
    teacher = create("dssd_teacher", 4)
    student = create("fsrcnn", 4)
    student.load_state_dict(teacher.backbone.state_dict())
    lr = torch.rand(1, 1, 5, 6)
    torch.testing.assert_close(student(lr), teacher.backbone(lr))


def test_hfrm_two_applications_share_one_set_of_weights() -> None:
    """The shared gradient equals the sum of the gradients of two unrolled copies; both are non-zero."""
    torch.manual_seed(0)
    teacher = create("dssd_teacher", 4, degradation="none")
    hr = torch.rand(2, 1, 16, 20)
    targets = targets_for(hr, 4)
    assert n_params(teacher) == n_params(teacher.hfrm) + n_params(teacher.backbone)

    teacher_terms(teacher(hr), hr, targets)[0].backward()
    shared = [p.grad.clone() for p in teacher.hfrm.parameters()]

    first, second = copy.deepcopy(teacher.hfrm), copy.deepcopy(teacher.hfrm)
    x1 = first(hr)
    x2 = second(x1)
    sr, feat = teacher.backbone.forward_with_features(x2)
    teacher_terms(TeacherOutput(sr, [x1, x2], [], feat), hr, targets)[0].backward()
    for g, p1, p2 in zip(shared, first.parameters(), second.parameters(), strict=True):
        assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
        torch.testing.assert_close(g, p1.grad + p2.grad)


def test_sdm_has_its_own_weights_by_default() -> None:
    teacher = create("dssd_teacher", 4)
    assert isinstance(teacher.sdm, SDM) and teacher.sdm is not teacher.hfrm
    assert not {id(p) for p in teacher.sdm.parameters()} & {id(p) for p in teacher.hfrm.parameters()}
    assert n_params(teacher) == 2 * 35_133 + 12_809


def test_sdm_shares_hfrm_weights_when_asked() -> None:
    torch.manual_seed(0)
    teacher = create("dssd_teacher", 4, share_sdm_weights=True)
    assert teacher.sdm is teacher.hfrm
    assert n_params(teacher) == 35_133 + 12_809
    hr = torch.rand(1, 1, 16, 16)
    teacher_terms(teacher(hr), hr, targets_for(hr, 4))[0].backward()
    with_sdm = [p.grad.clone() for p in teacher.hfrm.parameters()]
    # the shared module gets the SDM's gradient on top of the HFRM's: compare with SDM unused
    teacher.zero_grad()
    teacher_terms(teacher(hr), hr, targets_for(hr, 4), levels="none")[0].backward()
    changed = [
        not torch.allclose(a, p.grad) for a, p in zip(with_sdm, teacher.hfrm.parameters(), strict=True)
    ]
    assert all(changed)
    with pytest.raises(ReproError, match="share_sdm_weights needs"):
        create("dssd_teacher", 4, degradation="cnn", share_sdm_weights=True)


def test_bicubic_downsampler_sees_the_student_input() -> None:
    teacher = create("dssd_teacher", 4, downsampler="bicubic", degradation="bicubic")
    assert n_params(teacher) == 12_809  # no trainable downsampler or degradation
    hr = torch.rand(1, 1, 12, 20)
    out = teacher(hr)
    torch.testing.assert_close(out.compact[0], imresize_torch(hr, 0.5))
    torch.testing.assert_close(out.compact[1], imresize_torch(hr, 0.25))  # = LR, straight from HR
    torch.testing.assert_close(out.degraded[1], imresize_torch(out.sr, 0.25))
    torch.testing.assert_close(out.sr, teacher.backbone(imresize_torch(hr, 0.25)))


def test_cnn_degradation_is_non_recursive() -> None:
    teacher = create("dssd_teacher", 4, degradation="cnn")
    encoders = list(teacher.cnn.levels)
    assert [e.stride for e in encoders] == [2, 4]
    assert all(isinstance(e, PISREncoder) for e in encoders)
    assert encoders[0].body[2].stride == (2, 2) and encoders[1].body[2].stride == (4, 4)
    out = teacher(torch.rand(1, 1, 12, 16))
    torch.testing.assert_close(out.degraded[0], encoders[0](out.sr))
    torch.testing.assert_close(out.degraded[1], encoders[1](out.sr))  # from SR, not from D'

    only_last = create("dssd_teacher", 4, degradation="cnn", cnn_first_level=False)
    hr = torch.rand(1, 1, 12, 16)
    out = only_last(hr)
    assert [tuple(d.shape[-2:]) for d in out.degraded] == [(3, 4)]
    _, log = teacher_terms(out, hr, targets_for(hr, 4))
    assert "z_deg_2" in log and "z_deg_1" not in log
    assert [e.stride for e in create("dssd_teacher", 3, degradation="cnn").cnn.levels] == [3]


def test_pisr_encoder_downsampler_and_pisr_teacher() -> None:
    dssd = create("dssd_teacher", 4, downsampler="pisr_encoder", degradation="none")
    pisr = create("pisr_teacher", 4)
    assert isinstance(pisr, PISRTeacher) and isinstance(dssd, DSSDTeacher)
    assert n_params(dssd.encoder) == n_params(pisr.encoder) == 1456 + 78_456 + 6060 + 109 + 124
    assert pisr.encoder.body[2].stride == (4, 4) and pisr.encoder.body[0].kernel_size == (5, 5)
    hr = torch.rand(2, 1, 16, 12)
    total, log = pisr.loss_terms(hr, targets_for(hr, 4), pisr.loss_weights(LossConfig()))  # its own loss
    assert total.item() == pytest.approx(pisr_teacher_terms(pisr(hr), hr, targets_for(hr, 4))[0].item())
    total.backward()
    assert set(log) == {"recon", "z_enc", "total"}
    assert all(p.grad is not None for p in pisr.parameters())


@pytest.mark.parametrize("bad", [{"downsampler": "nearest"}, {"degradation": "blur"}, {"backbone": "edsr"}])
def test_unknown_choices_list_valid_ones(bad: dict[str, str]) -> None:
    with pytest.raises(ReproError, match="valid choices"):
        create("dssd_teacher", 4, **bad)
    with pytest.raises(ReproError, match="valid choices: 2, 3, 4"):
        create("dssd_teacher", 8)


def _ablation_teachers() -> dict[str, tuple[dict, str]]:
    """The DSSD teacher of every row of Tables 1-3, as the table specs define it (network settings and
    supervision levels under the smoke profile)."""
    from repro.runs.config import resolve
    from repro.specs import get_table

    out = {}
    for name in ("table1", "table2", "table3"):
        for row in get_table(name).rows:
            for spec in row.runs:
                if spec.teacher is not None and spec.teacher.model == "dssd_teacher":
                    t = spec.teacher
                    cfg = resolve("smoke", kind=t.kind, model=t.model, scale=t.scale, overrides=t.settings)
                    settings = {k: v for k, v in cfg.network_settings().items() if k != "in_channels"}
                    out[f"{name}/{row.name}"] = (settings, cfg.loss.levels)
    return out


ABLATION_TEACHERS = _ablation_teachers()


@pytest.mark.parametrize("row", sorted(ABLATION_TEACHERS))
def test_every_ablation_row_trains(row: str) -> None:
    """Tables 1-3 at x4 on a tiny HR patch: forward, loss, backward, gradients where they belong."""
    torch.manual_seed(0)
    settings, levels = ABLATION_TEACHERS[row]
    teacher = create("dssd_teacher", 4, **settings)
    hr = torch.rand(2, 1, 16, 16)
    total, log = teacher.loss_terms(hr, targets_for(hr, 4), teacher.loss_weights(LossConfig(levels=levels)))
    total.backward()
    assert torch.isfinite(total)
    expected_terms = {
        "deep": {"z_fre_1", "z_fre_2", "z_deg_1", "z_deg_2"},
        "first_level": {"z_fre_1", "z_deg_1"},
        "none": set(),
    }[levels]
    if settings["degradation"] == "none":
        expected_terms -= {"z_deg_1", "z_deg_2"}
    if settings["downsampler"] == "pisr_encoder":
        expected_terms -= {"z_fre_1"}
    assert set(log) == {"recon", "total"} | expected_terms
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.backbone.parameters())
    if settings["downsampler"] != "bicubic":
        down = teacher.hfrm if settings["downsampler"] == "hfrm" else teacher.encoder
        assert all(p.grad is not None for p in down.parameters())
    if settings["degradation"] in ("sdm", "cnn"):
        degrade = teacher.sdm if settings["degradation"] == "sdm" else teacher.cnn
        # SDM/CNN only learn from the z_deg terms: without them they get no gradient at all
        assert all((p.grad is not None) == bool(expected_terms) for p in degrade.parameters())


@pytest.mark.parametrize("downsampler", ["hfrm", "bicubic", "pisr_encoder"])
@pytest.mark.parametrize("degradation", ["sdm", "none", "bicubic", "cnn"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_combination_has_contract_sizes(downsampler: str, degradation: str, scale: int) -> None:
    teacher = create("dssd_teacher", scale, downsampler=downsampler, degradation=degradation)
    hr = torch.rand(1, 1, 3 * scale, 5 * scale)
    out = teacher(hr)
    sizes = [(3 * scale // f, 5 * scale // f) for f in level_factors(scale)]
    compact_sizes = sizes[-1:] if downsampler == "pisr_encoder" else sizes
    assert [tuple(x.shape[-2:]) for x in out.compact] == compact_sizes
    assert [tuple(x.shape[-2:]) for x in out.degraded] == ([] if degradation == "none" else sizes)
    total, _ = teacher_terms(out, hr, targets_for(hr, scale))
    assert torch.isfinite(total)

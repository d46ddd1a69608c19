"""A teacher's `features(hr)` is exactly its whole forward's `.features`, without the layers a student
never uses (the backbone's upsampler, the SDM on the HR-size SR), and the student's loss is unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.models import create, model_names
from repro.models.losses import student_terms
from repro.runs.config import resolve
from repro.scales import SCALES, level_factors
from repro.train import objectives

HR = 24  # every scale divides it; the LR sizes are 12, 8 and 6
BACKBONES = model_names(role="backbone")


def _teacher(name: str, scale: int, **settings) -> nn.Module:
    torch.manual_seed(scale)
    return create(name, scale=scale, **settings).eval()


def _hr(scale: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 1, HR, HR, generator=torch.Generator().manual_seed(10 + scale))


def _levels(hr: torch.Tensor, scale: int) -> list[torch.Tensor]:
    """Stand-ins for the batch's bicubic levels (finest first): any tensors of the right sizes."""
    g = torch.Generator().manual_seed(99)
    return [torch.rand(hr.shape[0], 1, HR // f, HR // f, generator=g) for f in level_factors(scale)]


PAPER = {"downsampler": "hfrm", "degradation": "sdm"}
VARIANTS = [  # the Table 1-2 rows: another downsampler or degradation (the backbone does not matter)
    {"downsampler": "hfrm", "degradation": "sdm", "share_sdm_weights": True},
    {"downsampler": "hfrm", "degradation": "cnn"},
    {"downsampler": "bicubic", "degradation": "bicubic"},
    {"downsampler": "pisr_encoder", "degradation": "none"},
]
DSSD_CASES = [(b, PAPER) for b in BACKBONES] + [("fsrcnn", v) for v in VARIANTS]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(("backbone", "variant"), DSSD_CASES,
                         ids=["-".join([b, *map(str, v.values())]) for b, v in DSSD_CASES])
@torch.no_grad()
def test_dssd_features_equal_the_whole_forward(scale: int, backbone: str, variant: dict) -> None:
    teacher = _teacher("dssd_teacher", scale, backbone=backbone, **variant)
    hr = _hr(scale)
    assert torch.equal(teacher.features(hr), teacher(hr).features)
    levels = _levels(hr, scale)  # a bicubic downsampler takes the batch's levels as they are
    assert torch.equal(teacher.features(hr, bicubic=levels), teacher(hr, bicubic=levels).features)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("backbone", BACKBONES)
@torch.no_grad()
def test_pisr_features_equal_the_whole_forward(scale: int, backbone: str) -> None:
    teacher = _teacher("pisr_teacher", scale, backbone=backbone)
    hr = _hr(scale)
    assert torch.equal(teacher.features(hr), teacher(hr).features)
    assert torch.equal(teacher.features(hr, bicubic=_levels(hr, scale)), teacher(hr).features)


def _calls(modules: dict[str, nn.Module]) -> dict[str, int]:
    counts = dict.fromkeys(modules, 0)
    for name, m in modules.items():
        m.register_forward_hook(lambda *_, name=name: counts.__setitem__(name, counts[name] + 1))
    return counts


@torch.no_grad()
def test_features_skip_the_upsampler_and_the_degradation() -> None:
    dssd = _teacher("dssd_teacher", 4)
    calls = _calls({"hfrm": dssd.hfrm, "deconv": dssd.backbone.deconv, "sdm": dssd.sdm})
    dssd.features(_hr(4))
    assert calls == {"hfrm": 2, "deconv": 0, "sdm": 0}
    idn = _teacher("pisr_teacher", 4, backbone="idn")
    calls = _calls({"encoder": idn.encoder, "deconv": idn.backbone.deconv})
    idn.features(_hr(4))
    assert calls == {"encoder": 1, "deconv": 0}
    vdsr = _teacher("dssd_teacher", 2, backbone="vdsr")
    calls = _calls({"tail": vdsr.backbone.tail, "sdm": vdsr.sdm})
    vdsr.features(_hr(2))
    assert calls == {"tail": 0, "sdm": 0}


def _old_student_forward(student: objectives.Student, teacher: torch.nn.Module,
                         batch: dict) -> tuple[torch.Tensor, dict]:
    """The student's step as it was: the teacher's whole forward for the VID target."""
    sr, feat = student.net.forward_with_features(batch["lr"])
    with torch.no_grad():
        target = teacher(batch["hr"]).features
    return student_terms(sr, batch["hr"], student.vid.loss(feat, target), vid_weight=student.vid_weight)


def _new_student_forward(student: objectives.Student, teacher: torch.nn.Module,
                         batch: dict) -> tuple[torch.Tensor, dict]:
    """The student's step now: the frozen teacher's features only, handed to the student in the batch."""
    return student({**batch, "teacher": objectives.FrozenTeacher(teacher)(batch)})


@pytest.mark.parametrize("teacher_name", ["dssd_teacher", "pisr_teacher"])
@pytest.mark.parametrize("scale", SCALES)
def test_student_loss_and_gradients_unchanged_bit_for_bit(teacher_name: str, scale: int) -> None:
    teacher = _teacher(teacher_name, scale)
    net = create("fsrcnn", scale=scale)
    net.load_state_dict(teacher.backbone.state_dict())
    cfg = resolve("smoke", overrides=["loss.vid=0.5"])  # a large weight: VID shows in every gradient
    student = objectives.Student(net, 56, cfg).train()
    hr = _hr(scale, n=3)
    batch = {"hr": hr, "lr": _levels(hr, scale)[-1], "targets": _levels(hr, scale)}
    results = []
    for forward in (_old_student_forward, _new_student_forward):
        student.zero_grad(set_to_none=True)
        loss, terms = forward(student, teacher.eval(), batch)
        loss.backward()
        results.append((loss.detach(), terms, [p.grad.clone() for p in student.parameters()]))
    (old_loss, old_terms, old_grads), (new_loss, new_terms, new_grads) = results
    assert torch.equal(old_loss, new_loss)
    assert old_terms.keys() == new_terms.keys() == {"recon", "vid", "total"}
    assert all(torch.equal(old_terms[k], new_terms[k]) for k in old_terms)
    assert all(torch.equal(a, b) for a, b in zip(old_grads, new_grads, strict=True))
    assert all(not t.requires_grad for t in new_terms.values())  # logged terms are detached


def test_a_bicubic_teacher_gives_its_student_features_of_the_batch_lr() -> None:
    """Table 1 `bicubic` row: the teacher trained on the batch's LR file, so its VID target for the
    student is the backbone's features of that same LR (not of a float re-resize of HR)."""
    scale = 4
    teacher = _teacher("dssd_teacher", scale, downsampler="bicubic", degradation="none")
    net = create("fsrcnn", scale=scale)
    student = objectives.Student(net, 56, resolve("smoke")).train()
    frozen = objectives.FrozenTeacher(teacher)
    hr = _hr(scale, n=2)
    levels = _levels(hr, scale)  # stand-ins that differ from any resize of hr
    seen = []
    original = teacher.features

    def spy(x, bicubic=None):
        out = original(x, bicubic=bicubic)
        seen.append(out)
        return out

    teacher.features = spy  # type: ignore[method-assign]
    batch = {"hr": hr, "lr": levels[-1], "targets": levels}
    student({**batch, "teacher": frozen(batch)})
    with torch.no_grad():
        expected = teacher.backbone.features(levels[-1])
    assert torch.equal(seen[0], expected)
    assert not torch.equal(seen[0], original(hr))  # a re-resize of HR would give other features

"""Backbones of Table 4 (FSRCNN, VDSR, IDN): parameter counts, shapes, features, bicubic skip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.cli import main
from repro.errors import ReproError
from repro.imaging.resize import imresize_torch
from repro.models import create, model_info, model_names
from repro.models.teachers import build_backbone


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    ("name", "in_channels", "expected"),
    [
        ("fsrcnn", 1, 12_809),
        ("fsrcnn", 3, 24_683),
        ("vdsr", 1, 664_704),
        ("idn", 1, 552_769),
        ("idn", 3, 590_915),
    ],
)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_counts(name: str, in_channels: int, expected: int, scale: int) -> None:
    assert n_params(create(name, scale, in_channels=in_channels)) == expected


def test_vdsr_is_twenty_bias_free_convs() -> None:
    convs = [m for m in create("vdsr", 4).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20
    assert all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs] == [64] * 19 + [1]


def test_idn_layout() -> None:
    net = create("idn", 4)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 + 4 * 7  # FBlock + 4 x (6 enhancement convs + 1 compression)
    assert sum(c.groups == 4 for c in convs) == 8
    assert net.deconv.kernel_size == (17, 17)


def test_the_backbones_are_the_table4_networks():
    assert model_names(role="backbone") == ["fsrcnn", "idn", "vdsr"]
    assert model_names(role="teacher") == ["dssd_teacher", "pisr_teacher"]


@pytest.mark.parametrize("name", model_names(role="backbone"))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_odd_input(name: str, scale: int) -> None:
    net = create(name, scale)
    lr = torch.rand(2, 1, 7, 9)
    sr, feat = net.forward_with_features(lr)
    assert sr.shape == (2, 1, 7 * scale, 9 * scale)
    feat_size = (7 * scale, 9 * scale) if name == "vdsr" else (7, 9)  # VDSR works at HR size
    assert feat.shape == (2, {"fsrcnn": 56, "vdsr": 64, "idn": 64}[name], *feat_size)
    torch.testing.assert_close(net(lr), sr)
    assert torch.equal(net.features(lr), feat)  # what a frozen teacher computes for its student


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rgb_shapes(scale: int) -> None:
    for name in ("fsrcnn", "vdsr", "idn"):
        assert create(name, scale, in_channels=3)(torch.rand(1, 3, 5, 6)).shape == (
            1,
            3,
            5 * scale,
            6 * scale,
        )


def test_fsrcnn_features_are_the_expanding_map() -> None:
    net = create("fsrcnn", 4)
    lr = torch.rand(1, 1, 6, 5)
    sr, feat = net.forward_with_features(lr)
    torch.testing.assert_close(feat, net.expand(net.mapping(net.shrink(net.feature(lr)))))
    torch.testing.assert_close(sr, net.deconv(feat))


@pytest.mark.parametrize("name", ["vdsr", "idn"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_residual_over_matlab_bicubic(name: str, scale: int) -> None:
    """With the last layer zeroed the network returns exactly the MATLAB-bicubic upscale."""
    net = create(name, scale)
    last = net.tail if name == "vdsr" else net.deconv
    with torch.no_grad():
        for p in last.parameters():
            p.zero_()
    lr = torch.rand(1, 1, 7, 8)
    torch.testing.assert_close(net(lr), imresize_torch(lr, scale))
    with torch.no_grad():
        last.weight.fill_(0.01)  # and it is a residual: the last layer moves it away
    assert not torch.allclose(net(lr), imresize_torch(lr, scale))


def test_teacher_backbone_must_be_distillable() -> None:
    with pytest.raises(ReproError, match="valid choices: fsrcnn, idn, vdsr"):
        build_backbone("carn", 4, 1)
    with pytest.raises(ReproError, match="unknown setting"):
        create("dssd_teacher", 4, backbone="fsrcnn", backbone_settings={"bogus": 1})


def test_models_command_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in model_names():
        assert f"\n{name} ({model_info(name).role}): " in f"\n{out}"
    assert "downsampler='hfrm'" in out and "degradation='sdm'" in out and "share_sdm_weights=False" in out


def test_models_command_one_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "vdsr"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vdsr (backbone): ") and "in_channels=1" in out and "fsrcnn" not in out
    assert main(["models", "nope"]) == 2
    assert "unknown model 'nope'; valid choices:" in capsys.readouterr().err

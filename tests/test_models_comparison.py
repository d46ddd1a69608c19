"""The Appendix Table I comparison networks: parameter counts (docs/protocol.md, "Complexity"), shapes,
real weight sharing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repro.models import create
from repro.models.counting import count_params, run_with_hooks

Y_NETS = ("drcn", "drrn", "memnet")  # work on the bicubic-upscaled Y image
RGB_NETS = ("carn", "srfbn", "imdn")

# docs/protocol.md, "Complexity" (from the authors' code). DRCN/DRRN/MemNet: convolution weights only,
# shared once.
WEIGHTS_ONLY = {"drcn": 1_774_080, "drrn": 297_216, "memnet": 676_992}
FULL = {
    ("carn", 2): 1_591_939, ("carn", 3): 1_591_939, ("carn", 4): 1_591_939,
    ("srfbn", 2): 2_140_510, ("srfbn", 3): 2_832_734, ("srfbn", 4): 3_631_454,
    ("imdn", 2): 694_404, ("imdn", 3): 703_059, ("imdn", 4): 715_176,
}  # fmt: skip
CARN_SINGLE = {2: 964_163, 3: 1_148_803, 4: 1_111_875}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", Y_NETS)
def test_weight_counts_of_recursive_nets(name: str, scale: int) -> None:
    assert count_params(create(name, scale), weights_only=True) == WEIGHTS_ONLY[name]


def _drcn_full(c: int = 1, f: int = 256, d: int = 16) -> int:
    # embedding 2 convs, one recursive conv, reconstruction 2 convs (all with biases), d ensemble weights
    return (9 * c * f + f) + 3 * (9 * f * f + f) + (9 * f * c + c) + d


def _drrn_full(c: int = 1, f: int = 128, u: int = 25) -> int:
    # BN+Scale (2 per channel) before each conv: input (c), 2 per unit (own), output; two shared convs
    bn = 2 * c + u * 2 * 2 * f + 2 * f
    return bn + (9 * c * f + f) + 2 * (9 * f * f + f) + (9 * f * c + c)


def _memnet_full(c: int = 1, f: int = 64, m: int = 6, r: int = 6) -> int:
    total = 2 * c + 9 * c * f + f  # FENet: BN, conv
    for k in range(1, m + 1):
        gate_in = (r + k) * f
        total += 2 * (9 * f * f + f) + r * 2 * 2 * f  # shared residual convs, own BNs per recursion
        total += 2 * gate_in + gate_in * f + f  # gate: BN, 1x1 conv
    return total + m * 2 * f + (9 * f * c + c) + m  # ReconNet BN per use, one shared conv, m weights


def test_full_counts_of_recursive_nets() -> None:
    # Biases, batch-norm affine parameters and ensemble weights on top of the published weight counts.
    assert count_params(create("drcn", 4)) == _drcn_full() == 1_775_121
    assert count_params(create("drrn", 4)) == _drrn_full() == 310_659
    assert count_params(create("memnet", 4)) == _memnet_full() == 695_497


def test_memnet_without_multi_supervision_has_the_same_weights() -> None:
    net = create("memnet", 4, multi_supervision=False)
    assert count_params(net, weights_only=True) == WEIGHTS_ONLY["memnet"]
    assert count_params(net) == _memnet_full() - 5 * 2 * 64 - 6


@pytest.mark.parametrize(("name", "scale"), sorted(FULL))
def test_full_counts_of_rgb_nets(name: str, scale: int) -> None:
    assert count_params(create(name, scale)) == FULL[name, scale]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_carn_single_scale_counts(scale: int) -> None:
    assert count_params(create("carn", scale, multi_scale=False)) == CARN_SINGLE[scale]


def test_count_params_counts_a_shared_parameter_once() -> None:
    conv = nn.Conv2d(2, 3, 3)
    net = nn.Sequential(conv, nn.ReLU(), conv, nn.BatchNorm2d(3))
    assert count_params(net) == 2 * 3 * 9 + 3 + 2 * 3
    assert count_params(net, weights_only=True) == 2 * 3 * 9


# Tiny LR inputs with odd sizes: per HR pixel DRCN costs ~20 MMACs, DRRN ~7 M, MemNet ~3 M.
LR_SIZE = {"drcn": (3, 5), "drrn": (5, 7), "memnet": (5, 7)}


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", Y_NETS + RGB_NETS)
def test_output_shape(name: str, scale: int) -> None:
    torch.manual_seed(0)
    c = 1 if name in Y_NETS else 3
    h, w = LR_SIZE.get(name, (7, 9))
    net = create(name, scale).eval()
    with torch.no_grad():
        out = net(torch.rand(2, c, h, w))
    assert out.shape == (2, c, h * scale, w * scale)
    assert torch.isfinite(out).all()


def _calls(net: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How often each conv/linear layer runs in one forward (a shared one under its first name)."""
    types = (nn.modules.conv._ConvNd, nn.Linear)
    counts = {name: 0 for name, module in net.named_modules() if isinstance(module, types)}

    def hook(name: str, *_: object) -> None:
        counts[name] += 1

    run_with_hooks(net.eval(), x, hook, types, inference=False)
    return counts


def test_drcn_recursions_reuse_one_conv() -> None:
    net = create("drcn", 2)
    calls = _calls(net, torch.rand(1, 1, 3, 3))
    assert calls == {"embed.0": 1, "embed.2": 1, "inference.0": 16, "reconstruct.0": 16, "reconstruct.2": 16}


def test_drrn_units_reuse_two_convs() -> None:
    net = create("drrn", 2)
    calls = _calls(net, torch.rand(1, 1, 4, 3))
    assert calls == {"conv_in": 1, "conv_a": 25, "conv_b": 25, "conv_out": 1}
    names = [n for n, _ in net.named_parameters()]
    assert names.count("conv_a.weight") == 1 and len(net.pre_a) == 25


@pytest.mark.parametrize(("multi", "recon_calls"), [(True, 6), (False, 1)])
def test_memnet_recursions_reuse_one_residual_block(multi: bool, recon_calls: int) -> None:
    net = create("memnet", 2, multi_supervision=multi)
    calls = _calls(net, torch.rand(1, 1, 3, 4))
    expected = {"fenet.1": 1, "recon": recon_calls}
    for m in range(6):
        expected |= {f"blocks.{m}.conv_a": 6, f"blocks.{m}.conv_b": 6, f"blocks.{m}.gate.1": 1}
    assert calls == expected


@pytest.mark.parametrize(("every_step", "recon_calls"), [(True, 4), (False, 1)])
def test_srfbn_steps_reuse_one_feedback_block(every_step: bool, recon_calls: int) -> None:
    net = create("srfbn", 3, reconstruct_every_step=every_step)
    calls = _calls(net, torch.rand(1, 3, 4, 5))
    block = {k: v for k, v in calls.items() if k.startswith("block.")}
    assert len(block) == 1 + 6 + 6 + 5 + 5 + 1 and set(block.values()) == {4}
    assert calls["conv_in.0"] == calls["feat_in.0"] == 1
    assert calls["out.0"] == calls["conv_out"] == recon_calls


def test_srfbn_output_does_not_depend_on_reconstructing_every_step() -> None:
    torch.manual_seed(0)
    every = create("srfbn", 2).eval()
    last = create("srfbn", 2, reconstruct_every_step=False).eval()
    last.load_state_dict(every.state_dict())
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        steps = every.step_outputs(x)
        assert len(steps) == 4
        torch.testing.assert_close(last(x), steps[-1])
        assert not torch.allclose(steps[0], steps[-1])  # the hidden state really feeds back


@pytest.mark.parametrize(("scale", "convs"), [(2, ["upsample.x2.0"]), (3, ["upsample.x3.0"]),
                                              (4, ["upsample.x4.0", "upsample.x4.3"])])  # fmt: skip
def test_carn_multi_scale_runs_only_its_upsampler(scale: int, convs: list[str]) -> None:
    net = create("carn", scale)
    calls = _calls(net, torch.rand(1, 3, 3, 5))
    ran = {k for k, v in calls.items() if k.startswith("upsample") and v}
    assert ran == set(convs)
    assert sum(v for k, v in calls.items() if not k.startswith("upsample")) == 1 + 3 * (3 * 2 + 3) + 3 + 1


def test_carn_multi_scale_serves_every_scale_and_single_scale_refuses_others() -> None:
    net = create("carn", 4).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 5, 7), scale=3).shape == (1, 3, 15, 21)
    with pytest.raises(ValueError, match="x3"):
        create("carn", 2, multi_scale=False)(torch.rand(1, 3, 4, 4), scale=3)


def test_imdn_runs_every_conv_once() -> None:
    calls = _calls(create("imdn", 4), torch.rand(1, 3, 5, 5))
    assert len(calls) == 1 + 6 * 7 + 1 + 1 + 1 and set(calls.values()) == {1}


@pytest.mark.parametrize("name", ["drcn", "memnet"])
def test_output_is_the_weighted_sum_of_the_intermediate_predictions(name: str) -> None:
    torch.manual_seed(0)
    net = create(name, 2).eval()
    with torch.no_grad():
        net.get_parameter("ensemble" if name == "drcn" else "weights").uniform_(0.0, 1.0)
        x = torch.rand(1, 1, 3, 4)
        preds = net.predictions(x)
        weights = net.ensemble if name == "drcn" else net.weights
        expected = sum(w * p for w, p in zip(weights, preds, strict=True))
        torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize("name", ["drrn", "memnet"])
def test_recursive_nets_train_and_shared_weights_get_gradients(name: str) -> None:
    torch.manual_seed(0)
    net = create(name, 2).train()
    out = net(torch.rand(2, 1, 4, 4))
    out.mean().backward()
    shared = net.conv_a if name == "drrn" else net.blocks[0].conv_a
    assert shared.weight.grad is not None and shared.weight.grad.abs().sum() > 0


def test_recursive_nets_upscale_with_matlab_bicubic() -> None:
    # With the residual branch zeroed, DRRN returns exactly the MATLAB-bicubic upscale of its input.
    from repro.imaging.resize import imresize_torch

    net = create("drrn", 3).eval()
    nn.init.zeros_(net.conv_out.weight)
    nn.init.zeros_(net.conv_out.bias)
    x = torch.rand(1, 1, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(net(x), imresize_torch(x, 3))


@pytest.mark.parametrize("name", Y_NETS + RGB_NETS)
def test_default_channels_are_the_authors(name: str) -> None:
    # DRCN, DRRN and MemNet were trained on Y; CARN, SRFBN and IMDN on RGB.
    assert create(name, 4).in_channels == (1 if name in Y_NETS else 3)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", Y_NETS + RGB_NETS)
def test_smallest_lr_input_runs(name: str, scale: int) -> None:
    # The MAC counter extrapolates from LR sizes down to 3x3; every network must run there.
    c = 1 if name in Y_NETS else 3
    with torch.no_grad():
        assert create(name, scale).eval()(torch.rand(1, c, 3, 3)).shape == (1, c, 3 * scale, 3 * scale)

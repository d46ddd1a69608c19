"""The shared layers: the same arithmetic as PyTorch's, on the kernel that is fast for their shape."""

import pytest
import torch
from torch import nn

from repro.models.layers import ConvTranspose2d
from repro.models.registry import create


@pytest.mark.parametrize("out_channels", [1, 3, 16])
def test_transposed_conv_equals_torchs_and_leaves_onednn_on(out_channels):
    torch.manual_seed(0)
    ours = ConvTranspose2d(56, out_channels, 9, stride=4, padding=4, output_padding=3)
    ref = nn.ConvTranspose2d(56, out_channels, 9, stride=4, padding=4, output_padding=3)
    ref.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(4, 56, 6, 6, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x_ref)
    assert torch.backends.mkldnn.enabled  # switched off for the one call only
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)


def test_transposed_conv_restores_onednn_after_an_error():
    layer = ConvTranspose2d(8, 1, 3)
    with pytest.raises(RuntimeError):
        layer(torch.randn(1, 5, 4, 4))  # wrong input channels
    assert torch.backends.mkldnn.enabled


def test_transposed_conv_batches_under_vmap_as_a_fleet_calls_it():
    layers = [ConvTranspose2d(6, 1, 5, stride=2, padding=2, output_padding=1) for _ in range(3)]
    params = {k: torch.stack([layer.state_dict()[k] for layer in layers]) for k in ("weight", "bias")}
    x = torch.randn(3, 2, 6, 5, 5)
    y = torch.func.vmap(lambda p, xi: torch.func.functional_call(layers[0], p, (xi,)))(params, x)
    for k, layer in enumerate(layers):
        torch.testing.assert_close(y[k], layer(x[k]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["fsrcnn", "idn"])
def test_single_channel_upsamplers_use_it(name):
    model = create(name, scale=4)
    assert isinstance(model.deconv, ConvTranspose2d)

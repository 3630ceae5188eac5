"""ReActNet's RSign, RPReLU and binary convolution (liuzechun/ReActNet) from hmrlab.nn.binary's options."""

import pytest
import torch

from hmrlab.nn.binary import BinaryConv2d, RPReLU

pytestmark = pytest.mark.usefixtures("one_thread")


def test_authors_rsign_and_binary_conv(load_fixture):
    """sign(0) = 0, the weight's scale detached and its gradient clipped as theirs (their bias: -our threshold)."""
    f = load_fixture("reactnet")
    out_channels, in_channels = f["conv_weights"].shape[:2]
    conv = BinaryConv2d(in_channels, out_channels, 3, padding=1, sign_of_zero=0.0, weight_gradient="authors")
    with torch.no_grad():
        conv.weight.copy_(f["conv_weights"])
        conv.input_sign.threshold.copy_(-f["threshold_bias"])
    x = f["input"].clone().requires_grad_(True)
    signs = conv.input_sign(x)
    torch.testing.assert_close(signs, f["signs"], rtol=0, atol=0)
    y = conv(x)
    torch.testing.assert_close(y, f["conv_output"], rtol=0, atol=1e-5)
    (y * f["grad_output"]).sum().backward()
    torch.testing.assert_close(x.grad, f["grad_input"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, f["grad_weights"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.input_sign.threshold.grad, -f["grad_threshold_bias"], rtol=1e-5, atol=1e-4)


def test_default_options_differ_where_documented(load_fixture):
    f = load_fixture("reactnet")
    out_channels, in_channels = f["conv_weights"].shape[:2]
    conv = BinaryConv2d(in_channels, out_channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(f["conv_weights"])
        conv.input_sign.threshold.copy_(-f["threshold_bias"])
    assert set(conv.input_sign(f["input"]).unique().tolist()) == {-1.0, 1.0}  # sign(0) = +1 here
    (conv(f["input"]) * f["grad_output"]).sum().backward()
    assert not torch.allclose(conv.weight.grad, f["grad_weights"], atol=1e-3)  # the gradient reaches the scale


def test_authors_rprelu(load_fixture):
    f = load_fixture("reactnet")
    layer = RPReLU(f["prelu_weight"].numel())
    with torch.no_grad():
        layer.shift_in.copy_(-f["rprelu_in_bias"])
        layer.prelu.weight.copy_(f["prelu_weight"])
        layer.shift_out.copy_(f["rprelu_out_bias"])
    torch.testing.assert_close(layer(f["rprelu_input"]), f["rprelu_output"], rtol=0, atol=1e-6)

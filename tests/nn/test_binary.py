"""hmrlab.nn.binary against closed forms, gradcheck, hand counts and the seed's mapping table."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrlab import complexity
from hmrlab.nn import binary

pytestmark = pytest.mark.usefixtures("one_thread")

SIGNS = [binary.sign_ste, binary.approx_sign, binary.tanh_sign]
# Away from the kinks of the surrogates (0 and +-1), where finite differences are exact enough.
POINTS = torch.tensor([-2.5, -1.3, -0.7, -0.2, 0.3, 0.6, 0.9, 1.7], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------------
# Sign and surrogates


@pytest.mark.parametrize("sign", SIGNS)
def test_sign_forward_is_plus_minus_one_with_sign_zero_plus_one(sign):
    x = torch.tensor([-3.0, -1e-8, 0.0, -0.0, 1e-8, 2.0])
    assert sign(x).tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("surrogate", [binary.approx_sign_surrogate, binary.tanh_surrogate])
def test_surrogates_pass_gradcheck(surrogate):
    x = POINTS.clone().requires_grad_()
    assert torch.autograd.gradcheck(surrogate, (x,))


def test_approx_sign_surrogate_values_by_hand():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    # -1 | x^2 + 2x | -x^2 + 2x | 1
    expected = torch.tensor([-1.0, -1.0, 0.25 - 1.0, 0.0, -0.25 + 1.0, 1.0, 1.0])
    torch.testing.assert_close(binary.approx_sign_surrogate(x), expected)


def grad_of(fn, x):
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


def test_approx_sign_gradient_is_the_closed_form_and_the_surrogates():
    closed = torch.where(POINTS < 0, 2 + 2 * POINTS, 2 - 2 * POINTS).clamp(min=0)
    torch.testing.assert_close(grad_of(binary.approx_sign, POINTS), closed)
    torch.testing.assert_close(grad_of(binary.approx_sign, POINTS), grad_of(binary.approx_sign_surrogate, POINTS))


def test_tanh_sign_gradient_is_the_closed_form_and_the_surrogates():
    for slope in (1.0, 2.0, 5.0):
        closed = slope / torch.cosh(slope * POINTS) ** 2
        torch.testing.assert_close(grad_of(lambda x: binary.tanh_sign(x, slope), POINTS), closed)
        torch.testing.assert_close(
            grad_of(lambda x: binary.tanh_sign(x, slope), POINTS),
            grad_of(lambda x: binary.tanh_surrogate(x, slope), POINTS),
        )


def test_ste_gradient_is_that_of_clamp():
    expected = grad_of(lambda x: x.clamp(-1, 1), POINTS)
    torch.testing.assert_close(grad_of(binary.sign_ste, POINTS), expected)
    assert expected.tolist() == [0, 0, 1, 1, 1, 1, 1, 0]


def test_approx_sign_gradient_at_zero_and_edges():
    x = torch.tensor([-1.0, 0.0, 1.0])
    assert grad_of(binary.approx_sign, x).tolist() == [0.0, 2.0, 0.0]


# ----------------------------------------------------------------------------------------------------
# RSign, RPReLU, binary layers


def test_rsign_threshold_and_its_gradient():
    rsign = binary.RSign(2)
    with torch.no_grad():
        rsign.threshold.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[[0.5], [-0.6]], [[0.4], [-0.4]]])  # (B=2, C=2, 1)
    assert rsign(x).flatten().tolist() == [1.0, -1.0, -1.0, 1.0]
    rsign(x).sum().backward()
    # d sign(x - t)/dt = -F'(x - t), F' = 2 - 2|u| for ApproxSign.
    u = x - rsign.threshold.view(1, 2, 1)
    expected = -(2 - 2 * u.abs()).clamp(min=0).sum(dim=(0, 2))
    torch.testing.assert_close(rsign.threshold.grad, expected)


def test_rsign_without_learnable_threshold_has_no_parameters():
    assert sum(p.numel() for p in binary.RSign(8, learnable=False).parameters()) == 0


def test_rprelu_by_hand():
    layer = binary.RPReLU(1)
    with torch.no_grad():
        layer.shift_in.fill_(0.5)
        layer.shift_out.fill_(0.1)
    x = torch.tensor([0.0, 1.0, 2.0]).view(1, 1, 3)
    # PReLU(x - 0.5) + 0.1 with slope 0.25: -0.125 + 0.1, 0.5 + 0.1, 1.5 + 0.1.
    torch.testing.assert_close(layer(x).flatten(), torch.tensor([-0.025, 0.6, 1.6]))


def test_binary_conv_equals_sign_conv_times_mean_abs_weight():
    torch.manual_seed(0)
    conv = binary.BinaryConv2d(4, 6, 3, stride=2, padding=1, learnable_threshold=False)
    x = torch.randn(2, 4, 9, 9)
    scale = conv.weight.abs().mean(dim=(1, 2, 3))
    w_signs = torch.where(conv.weight >= 0, 1.0, -1.0)
    x_signs = torch.where(x >= 0, 1.0, -1.0)
    expected = F.conv2d(x_signs, w_signs, stride=2, padding=1) * scale.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), expected)
    signs, alpha = conv.binarized_weight()
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(alpha, scale)
    # Without padding the +-1 dot products are integers of the parity of the 4 * 3 * 3 = 36 terms.
    unpadded = binary.BinaryConv2d(4, 6, 3, learnable_threshold=False)
    counts = unpadded(x) / unpadded.binarized_weight()[1].view(1, -1, 1, 1)
    torch.testing.assert_close(counts, counts.round(), rtol=0, atol=1e-4)
    assert (counts.round() % 2 == 0).all()


def test_binary_linear_equals_sign_product_and_full_precision_flags():
    torch.manual_seed(0)
    layer = binary.BinaryLinear(5, 3, learnable_threshold=False)
    x = torch.randn(4, 5)
    w_signs = torch.where(layer.weight >= 0, 1.0, -1.0)
    expected = torch.where(x >= 0, 1.0, -1.0) @ w_signs.T * layer.weight.abs().mean(1) + layer.bias
    torch.testing.assert_close(layer(x), expected)
    real = binary.BinaryLinear(5, 3, binary_weights=False, binary_activations=False)
    torch.testing.assert_close(real(x), F.linear(x, real.weight, real.bias))
    assert not binary.is_binary_layer(real) and binary.is_binary_layer(layer)


def test_weight_gradient_is_straight_through_plus_scale_term():
    torch.manual_seed(0)
    w = (torch.randn(3, 4, dtype=torch.float64) * 0.8).requires_grad_()
    g = torch.randn(3, 4, dtype=torch.float64)
    signs, scale = binary.binarize_weight(w)
    ((signs * scale[:, None]) * g).sum().backward()
    s = torch.where(w >= 0, 1.0, -1.0).detach()
    inside = (w.abs() <= 1).to(w.dtype).detach()
    # d/dW [alpha sign(W)] . G = alpha G 1{|W| <= 1} + sign(W) (sum_j G_j sign(W_j)) / n.
    expected = scale.detach()[:, None] * g * inside + s * (g * s).sum(1, keepdim=True) / 4
    torch.testing.assert_close(w.grad, expected)


# ----------------------------------------------------------------------------------------------------
# Units: shapes, BatchNorm placement, full-precision paths


@pytest.mark.parametrize("tau", [1, 2, 4])
def test_dimension_change_module_shapes(tau):
    x = torch.randn(2, 16, 16, 24)
    r = 2 * tau
    assert binary.DScR(16, tau)(x).shape == (2, 16, 16 // r, 24 // r)
    assert binary.FUR(16, tau)(x).shape == (2, 16 * r, 16, 24)
    assert binary.FDR(16, tau)(x).shape == (2, 16 // r, 16, 24)
    assert binary.DSaR(16, tau)(x).shape == (2, 16 * r, 16 // r, 24 // r)
    assert binary.LCR(16)(x).shape == x.shape


@pytest.mark.parametrize("tau", [1, 2])
def test_odd_sizes_pool_like_the_strided_conv(tau):
    x = torch.randn(1, 8, 7, 9)
    out = binary.DScR(8, tau)(x)
    reference = nn.Conv2d(8, 8, 3, stride=2 * tau, padding=1)(x)
    assert out.shape == reference.shape
    assert binary.DSaR(8, tau)(x).shape[-2:] == reference.shape[-2:]


def test_fdr_and_fur_have_the_weights_of_one_convolution():
    def conv_weights(m):
        return sum(c.weight.numel() for c in m.modules() if isinstance(c, nn.Conv2d))

    for tau in (1, 2):
        assert conv_weights(binary.FUR(8, tau)) == 8 * (2 * tau * 8)
        assert conv_weights(binary.FDR(8, tau)) == 8 * (8 // (2 * tau))
        assert conv_weights(binary.DSaR(8, tau)) == 9 * 8 * (2 * tau * 8)


MODULES_ENDING_IN_BN = [
    lambda: binary.BNNConv(8, 8),
    lambda: binary.LCR(8),
    lambda: binary.DScR(8, 1),
    lambda: binary.FUR(8, 2),
    lambda: binary.FDR(8, 2),
    lambda: binary.DSaR(8, 1),
]


@pytest.mark.parametrize("make", MODULES_ENDING_IN_BN)
def test_batch_norm_is_applied_last(make):
    torch.manual_seed(0)
    out = make().train()(torch.randn(4, 8, 8, 8) * 3 + 1)
    mean, var = out.mean(dim=(0, 2, 3)), out.var(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)


def test_bireal_adds_the_shortcut_after_batch_norm():
    torch.manual_seed(0)
    unit = binary.BiRealConv(8, 8).train()
    x = torch.randn(4, 8, 6, 6) * 3 + 1
    branch = unit(x) - x
    torch.testing.assert_close(branch.mean(dim=(0, 2, 3)), torch.zeros(8), atol=1e-5, rtol=0)
    assert not binary.BiRealConv(8, 16).shortcut  # Fig. 3: no shortcut across a shape change


@pytest.mark.parametrize(
    "make, full_precision_path",
    [
        (lambda: binary.LCR(4), True),
        (lambda: binary.DScR(4, 1), True),
        (lambda: binary.FUR(4, 1), True),
        (lambda: binary.FDR(4, 1), True),
        (lambda: binary.DSaR(4, 1), True),
        (lambda: binary.BNNConv(4, 4, surrogate="approx"), False),
    ],
)
def test_gradient_reaches_saturated_inputs_only_through_the_full_precision_path(make, full_precision_path):
    # |x| > 1 everywhere: ApproxSign's gradient is 0, so only a real-valued shortcut carries one.
    x = (torch.rand(2, 4, 4, 4) + 1.5).requires_grad_()
    module = make().train()
    (module(x) * torch.randn(module(x).shape)).sum().backward()
    assert (x.grad.abs().sum() > 0) == full_precision_path


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="divisible by 2 tau"):
        binary.FDR(6, 2)
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\)"):
        binary.LCR(8)(torch.zeros(1, 4, 5, 5))
    with pytest.raises(ValueError, match="surrogate must be one of"):
        binary.RSign(4, "relu")
    with pytest.raises(ValueError, match="redistribution must be one of"):
        binary.LCR(4, redistribution="gelu")
    with pytest.raises(ValueError, match="no BiDRN module"):
        binary.binary_unit("bidrn", 8, 24, 3, 1)
    with pytest.raises(ValueError, match="tau must be a positive int"):
        binary.DScR(8, 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 5\)"):
        binary.BinaryLinear(5, 2)(torch.zeros(3, 4))


# ----------------------------------------------------------------------------------------------------
# Binarized ResNets: the mapping table, shapes, parameter counts


def unit_names(model):
    return [
        [f"{type(u).__name__}{getattr(u, 'tau', '')}" for u in block.units]
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
        for block in stage
    ]


def test_resnet18_follows_the_mapping_table():
    first, rest = ["DSaR1", "LCR"], ["LCR", "LCR"]
    expected = [rest, rest] + [first, rest] * 3
    assert unit_names(binary.binary_resnet18(width=8)) == expected


def test_resnet50_follows_the_mapping_table():
    # Table 1: "LCR + FUR", then "FDR + FUR" (middle 3x3 an LCR) or "FDR + DScR + FUR" at a stride.
    def stage(blocks):
        down = ["FDR1", "DScR1", "FUR2"]
        return [down] + [["FDR2", "LCR", "FUR2"]] * (blocks - 1)

    layer1 = [["LCR", "LCR", "FUR2"], ["FDR2", "LCR", "FUR2"], ["FDR2", "LCR", "FUR2"]]
    expected = layer1 + stage(4) + stage(6) + stage(3)
    assert unit_names(binary.binary_resnet50(width=8)) == expected


@pytest.mark.parametrize("style", binary.BLOCK_STYLES)
@pytest.mark.parametrize("builder", [binary.binary_resnet18, binary.binary_resnet50])
@pytest.mark.parametrize("is_binary", [True, False])
def test_resnet_shapes_and_features(builder, style, is_binary):
    model = builder(is_binary, num_classes=7, style=style, width=8).eval()
    x = torch.randn(2, 3, 40, 56)
    assert model(x).shape == (2, 7)
    features = model.forward_features(x)
    for name, fmap in features.items():
        s = model.feature_strides[name]
        assert fmap.shape == (2, model.feature_channels[name], -(-40 // s), -(-56 // s))


def hand_count_resnet18_bidrn(binary_model: bool, width: int = 64, classes: int = 1000) -> int:
    rsign = 1 if binary_model else 0  # one threshold per input channel of each binary conv

    def base(c, k):  # BaseResidual c -> c: conv, RSign, RPReLU (shift, slope, shift)
        return k * k * c * c + rsign * c + 3 * c

    def lcr(c):
        return base(c, 3) + 2 * c

    def dsar(c):  # tau = 1: two base residuals on the pooled map, BN over 2c channels
        return 2 * base(c, 3) + 2 * (2 * c)

    w = width
    stem = 7 * 7 * 3 * w + 2 * w
    stages = 4 * lcr(w) + sum(dsar(c) + 3 * lcr(2 * c) for c in (w, 2 * w, 4 * w))
    return stem + stages + 8 * w * classes + classes


def test_resnet18_parameter_count_by_hand():
    for is_binary in (True, False):
        model = binary.binary_resnet18(is_binary)
        assert complexity.count_params(model) == hand_count_resnet18_bidrn(is_binary)


def test_bnn_resnet18_has_resnet18_weights_without_projections():
    from hmrlab.nn.backbones import resnet18

    projections = sum(c * 2 * c + 2 * 2 * c for c in (64, 128, 256))  # 1x1 conv + BN each
    assert complexity.count_params(binary.binary_resnet18(style="bnn")) == (
        complexity.count_params(resnet18()) - projections
    )


# ----------------------------------------------------------------------------------------------------
# Operation counting


def test_count_ops_of_one_layer_by_hand():
    layer = binary.BinaryConv2d(16, 32, 3, padding=1)
    counted = binary.count_ops(layer, torch.zeros(1, 16, 8, 8))
    macs = 16 * 32 * 9 * 8 * 8  # in * out * k^2 * output pixels
    assert counted.macs_binary == macs and counted.macs_real == 0
    assert counted.params_binary == 16 * 32 * 9 and counted.params_real == 16  # thresholds
    assert counted.ops == macs / 64
    assert counted.params == 16 + 16 * 32 * 9 / 32


def test_count_ops_splits_a_model_and_keeps_the_total():
    x = torch.zeros(1, 3, 64, 64)
    model = binary.binary_resnet18(num_classes=10, width=8)
    twin = binary.binary_resnet18(False, num_classes=10, width=8)
    counted, twin_counted = binary.count_ops(model, x), binary.count_ops(twin, x)
    assert twin_counted.macs_binary == 0
    assert twin_counted.macs_real == complexity.measure(twin, x).macs
    assert counted.macs_binary + counted.macs_real == twin_counted.macs_real
    # Only the real stem convolution (7x7/2 to 32x32) and the classifier stay real.
    assert counted.macs_real == 7 * 7 * 3 * 8 * 32 * 32 + 64 * 10

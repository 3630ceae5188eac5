"""hmrlab.models.lifd_hmr: shapes, the identity path through DWT/IDWT, gradients, and complexity by hand."""

import pytest
import pywt
import torch
from torch import nn

from hmrlab.backbones import resnet18
from hmrlab.complexity import measure
from hmrlab.models.lifd_hmr import (
    AttentionBlock,
    ConvBlock,
    DirectExtractor,
    LIFDExtractor,
    clip_features,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def small(cls=LIFDExtractor, **kwargs):
    torch.manual_seed(0)
    return cls(**{"in_channels": 12, "channels": 8, "heads": 2, **kwargs})


@pytest.mark.parametrize("cls", [LIFDExtractor, DirectExtractor])
@pytest.mark.parametrize("size", [(7, 7), (8, 6), (5, 8), (1, 1)])
def test_shapes_odd_and_even(cls, size):
    model = small(cls)
    features = torch.randn(2, 3, 12, *size)
    assert model.hybrid(features.flatten(0, 1)).shape == (6, 8, *size)
    assert model(features).shape == (2, 3, 8)


@pytest.mark.parametrize("wavelet", ["haar", "db2", "bior2.2"])
@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("size", [(7, 7), (8, 6)])
def test_identity_branches_give_the_projected_map(wavelet, mode, size):
    # With both blocks replaced by identities the extractor is IDWT(DWT(x)): perfect reconstruction.
    model = small(wavelet=wavelet, mode=mode).double()
    model.attention, model.convolution = nn.Identity(), nn.Identity()
    features = torch.randn(4, 12, *size, dtype=torch.float64)
    torch.testing.assert_close(model.hybrid(features), model.project(features), rtol=0, atol=1e-12)


def test_lifd_equals_its_wavelet_formula():
    # F' = IDWT(a(cA), c(cH), c(cV), c(cD)), with PyWavelets doing the transforms.
    model = small(in_channels=8, wavelet="db2").double().eval()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    cA, (cH, cV, cD) = pywt.dwt2(x.numpy(), "db2", axes=(-2, -1))
    cA, cH, cV, cD = map(torch.from_numpy, (cA, cH, cV, cD))
    with torch.no_grad():
        bands = (model.attention(cA).numpy(), tuple(model.convolution(b).numpy() for b in (cH, cV, cD)))
        expected = torch.from_numpy(pywt.idwt2(bands, "db2", axes=(-2, -1))[..., :6, :5])
        torch.testing.assert_close(model.hybrid(x), expected, rtol=0, atol=1e-12)


def test_direct_is_the_sum_of_the_residual_updates():
    model = small(DirectExtractor, in_channels=8).double().eval()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = x + (model.attention(x) - x) + (model.convolution(x) - x)
        torch.testing.assert_close(model.hybrid(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [LIFDExtractor, DirectExtractor])
def test_gradients_reach_every_parameter_and_the_input(cls):
    model = small(cls)
    features = torch.randn(2, 2, 12, 5, 6, requires_grad=True)
    model(features).square().sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_gradcheck_through_the_extractor():
    model = small(LIFDExtractor, in_channels=8, channels=4, wavelet="db2").double().eval()
    x = torch.randn(1, 1, 8, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))


@pytest.mark.parametrize("channels, kernel, h, w", [(16, 3, 5, 4), (8, 5, 3, 3)])
def test_conv_block_complexity_by_hand(channels, kernel, h, w):
    cost = measure(ConvBlock(channels, kernel), torch.zeros(2, channels, h, w))
    assert cost.params == (kernel**2 + 1) * channels**2 + 3 * channels
    assert cost.macs == 2 * h * w * (kernel**2 + 1) * channels**2


@pytest.mark.parametrize("channels, heads, ratio, h, w", [(16, 4, 2.0, 4, 3), (12, 3, 4.0, 2, 5)])
def test_attention_block_complexity_by_hand(channels, heads, ratio, h, w):
    hidden, tokens = int(ratio * channels), h * w
    cost = measure(AttentionBlock(channels, heads, ratio), torch.zeros(1, channels, h, w))
    assert cost.params == 4 * channels**2 + 2 * hidden * channels + 9 * channels + hidden
    assert cost.macs == tokens * (4 * channels**2 + 2 * hidden * channels) + 2 * tokens**2 * channels


def test_extractor_macs_are_the_sum_of_its_blocks():
    # The DWT's and IDWT's filters are tiny but are convolutions: counted, at 4 MACs per coefficient each.
    model = small()
    x = torch.zeros(1, 1, 12, 8, 6)
    blocks = (measure(model.project, x[0]).macs + measure(model.attention, torch.zeros(1, 8, 4, 3)).macs
              + measure(model.convolution, torch.zeros(3, 8, 4, 3)).macs)
    transforms = 2 * 8 * (4 * 4 * 3) * 4
    assert measure(model, x).macs == blocks + transforms


def test_ablation_twin_has_the_same_parameters_and_more_macs():
    lifd, direct = LIFDExtractor(), DirectExtractor()
    assert sum(p.numel() for p in lifd.parameters()) == sum(p.numel() for p in direct.parameters())
    x = torch.zeros(1, 1, 2048, 7, 7)
    assert measure(lifd, x).macs < measure(direct, x).macs


def test_clip_features_match_per_frame_backbone():
    torch.manual_seed(0)
    backbone = resnet18().eval()
    clips = torch.randn(2, 3, 3, 40, 56)
    with torch.no_grad():
        maps = clip_features(backbone, clips, "layer3")
        assert maps.shape == (2, 3, 256, 3, 4)
        torch.testing.assert_close(maps[1, 2], backbone.forward_features(clips[1, 2:3], "layer3")["layer3"][0])


def test_bad_inputs_raise_with_the_expected_shape():
    model = small()
    with pytest.raises(ValueError, match=r"\(B, T, 12, H, W\)"):
        model(torch.zeros(2, 12, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, 12, H, W\)"):
        model.hybrid(torch.zeros(2, 11, 5, 5))
    with pytest.raises(ValueError, match="divisible"):
        LIFDExtractor(channels=10, heads=3)
    with pytest.raises(ValueError, match="odd"):
        ConvBlock(8, kernel_size=2)
    with pytest.raises(ValueError, match="wavelet"):
        LIFDExtractor(wavelet="nonsense")
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        clip_features(resnet18(), torch.zeros(1, 3, 8, 8))

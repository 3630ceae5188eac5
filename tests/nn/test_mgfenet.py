"""hmrlab.models.keypoint_hmr: MobileNetV3-Large with the switches off, the global filter against NumPy's FFT,
closed-form parameter and MAC changes of each ablation step, and the complexity table."""

import math

import numpy as np
import pytest
import torch

from hmrlab.complexity import count_params, measure
from hmrlab.nn.backbones import _MOBILENET_V3_CONFIGS, mobilenet_v3_large
from hmrlab.nn.mgfenet import (
    GlobalFilter,
    MGFENet,
    _StageOutput,
    complexity_table,
    global_filter_flops,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ROWS = _MOBILENET_V3_CONFIGS["large"][1]


def mobilenet_keys_to_mgfenet(key: str, net: MGFENet) -> str:
    """torchvision's MobileNetV3 ``features.i.block.j`` names -> MGFENet's stem/blocks/final names."""
    parts = key.split(".")
    index = int(parts[1])
    if index == 0:
        return ".".join(["stem", *parts[2:]])
    if index == len(ROWS) + 1:
        return ".".join(["final", *parts[2:]])
    block = net.blocks[index - 1]
    layer = int(parts[3])
    names = (["expand"] if not isinstance(block.expand, torch.nn.Identity) else []) + ["depthwise"]
    names += ["se"] if not isinstance(block.se, torch.nn.Identity) else []
    names += ["project"]
    return ".".join([f"blocks.{index - 1}", names[layer], *parts[4:]])


def test_switches_off_is_mobilenet_v3_large():
    torch.manual_seed(0)
    reference = mobilenet_v3_large().eval()
    net = MGFENet(kernel_size=None, mfc=False, global_filter=False).eval()
    assert count_params(net) == count_params(reference.features)
    features = {k: v for k, v in reference.state_dict().items() if k.startswith("features.")}
    net.load_state_dict({mobilenet_keys_to_mgfenet(k, net): v for k, v in features.items()})
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ours, theirs = net.forward_features(images), reference.forward_features(images)
    assert list(ours) == list(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-5)
    assert net.feature_channels == reference.feature_channels
    assert net.feature_strides == reference.feature_strides


def test_global_filter_is_eq1_against_numpy_fft():
    torch.manual_seed(0)
    layer = GlobalFilter(3, 5, 6).double()
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    weight = layer.weight.detach().numpy()
    spectrum = np.fft.rfft2(x.numpy(), norm="ortho") * (weight[..., 0] + 1j * weight[..., 1])
    expected = x.numpy() + np.fft.irfft2(spectrum, s=(5, 6), norm="ortho")
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, atol=1e-12)
    assert count_params(layer) == 2 * 3 * 5 * (6 // 2 + 1)


def test_global_filter_of_ones_doubles_and_gradcheck():
    layer = GlobalFilter(2, 4, 5).double()
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[..., 0] = 1  # K = 1: the inverse FFT gives the input back
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(layer(x), 2 * x)
    small = GlobalFilter(1, 3, 4).double()
    assert torch.autograd.gradcheck(small, (torch.randn(1, 1, 3, 4, dtype=torch.float64, requires_grad=True),))


def test_global_filter_rejects_other_sizes():
    with pytest.raises(ValueError, match=r"built for maps \(B, 2, 4, 5\)"):
        GlobalFilter(2, 4, 5)(torch.zeros(1, 2, 4, 6))
    with pytest.raises(ValueError, match=r"image_size"):
        MGFENet(image_size=(64, 64)).forward_features(torch.zeros(1, 3, 96, 64))
    with pytest.raises(ValueError, match="odd"):
        MGFENet(kernel_size=4)


def _output_sizes(size, late=False):
    """Output (h, w) of every bneck row for an image of `size` (ceil division per stride-2)."""
    h, w = -(-size[0] // 2), -(-size[1] // 2)
    sizes = []
    for i, row in enumerate(ROWS):
        stride = row.stride if not late else {12: 1, 13: 2}.get(i, row.stride)
        h, w = -(-h // stride), -(-w // stride)
        sizes.append((h, w))
    return sizes


def test_seven_by_seven_changes_params_and_macs_by_closed_form():
    size = (32, 48)
    images = torch.zeros(1, 3, *size)
    base = MGFENet(kernel_size=None, mfc=False, global_filter=False, image_size=size)
    large = MGFENet(kernel_size=7, mfc=False, global_filter=False, image_size=size)
    extra_params = sum((49 - row.kernel**2) * row.expanded for row in ROWS)
    extra_macs = sum((49 - row.kernel**2) * row.expanded * h * w for row, (h, w) in zip(ROWS, _output_sizes(size)))
    assert count_params(large) - count_params(base) == extra_params
    macs = measure(_StageOutput(large, "stride32"), images).macs - measure(_StageOutput(base, "stride32"), images).macs
    assert macs == extra_macs


def test_mfc_cascade_channels():
    net = MGFENet(global_filter=False, image_size=(64, 64))
    # image (3) + the outputs of the stride-2, -4, -8, -16 stages, then the last block's 160
    assert net.final[0].in_channels == 3 + 16 + 24 + 40 + 112 + 160
    # a stride-1 block of the stride-4 stage reads the pooled image and the stride-2 output
    assert net.blocks[2].cascade_channels == 3 + 16 and net.blocks[1].cascade_channels == 0
    late = MGFENet(global_filter=False, image_size=(64, 64), late_downsample=True)
    assert late.final[0].in_channels == 3 + 16 + 24 + 40 + 160 + 160
    assert late.feature_channels["stride16"] == 160


def test_global_filters_params_and_flops():
    size = (64, 32)
    with_filters = MGFENet(image_size=size)
    without = MGFENet(global_filter=False, image_size=size)
    inputs = [(16, (32, 16))] + [(row.out, s) for row, s in zip(ROWS[:-1], _output_sizes(size)[:-1])]
    assert count_params(with_filters) - count_params(without) == sum(2 * c * h * (w // 2 + 1) for c, (h, w) in inputs)
    assert global_filter_flops(4, 8, 8) == 64 * 4 * 6 + 64 * 4


@pytest.mark.parametrize("late", [False, True])
def test_feature_shapes(late):
    net = MGFENet(image_size=(64, 96), late_downsample=late, num_classes=5)
    maps = net.forward_features(torch.rand(2, 3, 64, 96))
    for name, x in maps.items():
        s = net.feature_strides[name]
        assert x.shape == (2, net.feature_channels[name], math.ceil(64 / s), math.ceil(96 / s))
    assert net(torch.rand(2, 3, 64, 96)).shape == (2, 5)
    assert MGFENet(image_size=(64, 96))(torch.rand(1, 3, 64, 96)).shape == (1, 960)


def test_complexity_table():
    table = complexity_table((64, 64))
    assert list(table.index) == ["MobileNetV3", "+ 7x7 depthwise", "+ MFC", "+ global filter = MGFENet", "ResNet-18"]
    # torchvision's published 11,689,512 less its 1000-class fc (512 * 1000 + 1000)
    assert table.loc["ResNet-18", "params"] == 11_689_512 - 513_000
    assert (table["MACs"].diff().iloc[1:3] > 0).all()  # each step adds work
    assert table["filter FLOPs"].iloc[:3].eq(0).all() and table["filter FLOPs"].iloc[3] > 0

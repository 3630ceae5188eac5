"""hmrlab.nn.xnor (and its kernels, hmrlab.nn.xnor_kernels): exact integers against F.conv2d and the
bitpack reference, packed layers and BiDRN units against their float-emulated originals, whole packed
networks, and the pure-torch fallback where numba is unavailable."""

import pytest
import torch
import torch.nn.functional as F

from hmrlab.nn import bitpack, numba_backend, xnor
from hmrlab.nn.binary import FDR, FUR, LCR, BinaryConv2d, BinaryLinear, DSaR, DScR, binary_resnet18, binary_resnet50

pytestmark = pytest.mark.usefixtures("one_thread")

CONV_CASES = [  # channels, kernel, stride, padding, dilation
    (3, 3, 1, 0, 1), (5, 3, 1, 1, 1), (16, 3, 2, 1, 1), (8, 1, 1, 0, 1), (4, (3, 5), (2, 1), (1, 2), 1),
    (7, 3, 1, 2, 2), (130, 3, 1, 1, 1), (64, 1, 2, 0, 1),
]


def signs(*shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1


@pytest.fixture(params=["kernels", "torch"])
def backend(request, monkeypatch):
    """Each test twice: on the compiled kernels (skipped where numba cannot run) and on the fallback."""
    numba_backend.reset()
    if request.param == "torch":
        monkeypatch.setenv("HMRLAB_NUMBA", "0")
    elif not xnor.kernels_available():
        pytest.skip("numba kernels unavailable on this machine")
    yield request.param
    numba_backend.reset()


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Thresholds, BatchNorm statistics and RPReLU parameters away from their initial values, eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=generator) * 2 - 1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
            for name in ("threshold", "shift_in", "shift_out"):
                value = getattr(m, name, None)
                if isinstance(value, torch.nn.Parameter):
                    value.copy_(torch.rand(value.shape, generator=generator) * 0.6 - 0.3)
    return module.eval()


@pytest.mark.parametrize("channels, kernel, stride, padding, dilation", CONV_CASES)
def test_xnor_conv2d_equals_float_conv_and_reference(backend, channels, kernel, stride, padding, dilation):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    x, w = signs(2, channels, 9, 8, seed=1), signs(6, channels, kh, kw, seed=2)
    ours = xnor.xnor_conv2d(x, w, stride, padding, dilation)
    assert ours.dtype == torch.int64
    expected = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).round().long()
    assert torch.equal(ours, expected)
    assert torch.equal(ours, bitpack.xnor_conv2d(x, w, stride, padding, dilation))


@pytest.mark.parametrize("n", [3, 64, 100, 200])
def test_xnor_linear_equals_matmul(backend, n):
    x, w = signs(5, n, seed=3), signs(7, n, seed=4)
    assert torch.equal(xnor.xnor_linear(x, w), (x @ w.T).round().long())


def test_filters_round_trip_and_tap_popcounts():
    w = signs(5, 70, 3, 3, seed=5)
    words, taps = xnor.pack_filters(w > 0)
    assert words.shape == (9 * 2, 5) and taps.shape == (9, 5)
    assert torch.equal(xnor.unpack_filters(words, 70, (3, 3)), w)
    assert torch.equal(taps.long(), (w > 0).sum(1).flatten(1).T)  # +1 entries of each tap


def test_packed_layers_equal_trained_binary_layers(backend):
    torch.manual_seed(1)
    conv = randomize(BinaryConv2d(5, 6, 3, stride=2, padding=1, bias=True))
    linear = randomize(BinaryLinear(70, 4, bias=True))
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
        linear.bias.uniform_(-1, 1)
        x, flat = torch.randn(2, 5, 9, 9), torch.randn(3, 2, 70)
        torch.testing.assert_close(xnor.XnorConv2d.from_layer(conv)(x), conv(x))
        torch.testing.assert_close(xnor.XnorLinear.from_layer(linear)(flat), linear(flat))
    with pytest.raises(ValueError, match="binary weights"):
        xnor.XnorConv2d.from_layer(torch.nn.Conv2d(2, 2, 3))


UNITS = {
    "LCR": lambda: LCR(16), "DScR": lambda: DScR(16, 1), "FUR": lambda: FUR(16, 1), "FUR tau 2": lambda: FUR(8, 2, 1),
    "FDR": lambda: FDR(128, 1), "FDR odd": lambda: FDR(20, 1), "DSaR": lambda: DSaR(16, 1),
    "LCR 70, LeakyReLU": lambda: LCR(70, redistribution="leakyrelu"),
    "LCR 1x1": lambda: LCR(16, kernel_size=1), "FDR tau 2": lambda: FDR(32, 2), "FUR 70": lambda: FUR(70, 1),
}


@pytest.mark.parametrize("name", list(UNITS))
def test_packed_units_equal_bidrn_units(backend, name):
    torch.manual_seed(2)
    unit = randomize(UNITS[name](), seed=3)
    channels = unit.channels
    x, post = torch.randn(2, channels, 9, 9), None
    packed = xnor.PackedUnit.from_module(unit)
    with torch.no_grad():
        expected = unit(x)
        half = expected.shape[1] // 2
        post = torch.randn(2, half, *expected.shape[2:])  # the block's shortcut, channels repeated
        torch.testing.assert_close(packed(x), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(packed(x, post=post), expected + post.repeat(1, 2, 1, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["LCR 1x1", "FUR tau 2", "FDR", "FDR odd", "FDR tau 2", "FUR 70"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_1x1_units_equal_their_branches_one_by_one(name, threads):
    """A 1x1 unit runs as one `unit_nhwc` call for all its branches; it gives the numbers of the
    branch-by-branch kernel calls (serial, and in parallel tasks on a map large enough for them)."""
    if not xnor.kernels_available():
        pytest.skip("numba kernels unavailable on this machine")
    torch.manual_seed(2)
    unit = randomize(UNITS[name](), seed=3)
    packed = xnor.PackedUnit.from_module(unit)
    assert packed.fused
    x = torch.randn(2, unit.channels, 40, 36)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            fused = packed(x)
            post = torch.randn(2, max(fused.shape[1] // 2, 1), *fused.shape[2:])
            fused_post = packed(x, post=post)
            packed.fused = False
            one_by_one, one_by_one_post = packed(x), packed(x, post=post)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(fused, one_by_one, rtol=0, atol=0)
    torch.testing.assert_close(fused_post, one_by_one_post, rtol=0, atol=0)


@pytest.mark.parametrize("build", [lambda: binary_resnet18(width=16), lambda: binary_resnet50(width=16),
                                   lambda: binary_resnet18(width=16, style="bireal")], ids=["r18", "r50", "bireal"])
def test_packed_networks_equal_float_emulation(backend, build):
    torch.manual_seed(4)
    net = randomize(build(), seed=5)
    packed = xnor.pack_binary_network(net)
    assert not any(isinstance(m, BinaryConv2d) and m.binary_weights for m in packed.modules())
    x = torch.randn(1, 3, 64, 64)
    stages = ("layer1", "layer2", "layer3", "layer4")
    with torch.no_grad():
        expected, ours = net.forward_features(x, stages), packed.forward_features(x, stages)
    for stage in stages:  # relative to each map's scale: an untrained binary ResNet's maps grow fast
        torch.testing.assert_close(ours[stage], expected[stage], rtol=1e-4, atol=1e-5 * expected[stage].abs().max().item())


def test_fallback_warns_once_and_gives_the_same_numbers(monkeypatch):
    monkeypatch.delenv("HMRLAB_NUMBA", raising=False)  # this test is about numba failing, not being turned off
    numba_backend.reset()
    real_import = numba_backend.importlib.import_module

    def failing(name):
        if name.endswith("xnor_kernels"):
            raise ImportError("No module named 'numba'")
        return real_import(name)

    monkeypatch.setattr(numba_backend.importlib, "import_module", failing)
    x, w = signs(1, 9, 6, 6, seed=6), signs(4, 9, 3, 3, seed=7)
    with pytest.warns(RuntimeWarning, match="xnor_kernels is unavailable.*numba"):
        assert not xnor.kernels_available()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the message came once
        assert torch.equal(xnor.xnor_conv2d(x, w, padding=1), F.conv2d(x, w, padding=1).long())
    numba_backend.reset()


def test_layers_whose_sign_of_zero_is_not_plus_one_stay_unpacked():
    conv = BinaryConv2d(4, 4, 3, padding=1)
    if not hasattr(conv.input_sign, "sign_of_zero"):
        pytest.skip("this BinaryConv2d has no sign_of_zero option")
    conv.input_sign.sign_of_zero = 0.0  # ReActNet's torch.sign: 0 is neither bit
    with pytest.raises(ValueError, match="sign\\(0\\) = \\+1"):
        xnor.XnorConv2d.from_layer(conv)
    net = torch.nn.Sequential(conv)
    assert isinstance(xnor.pack_binary_network(net)[0], BinaryConv2d)

"""Tests for hmrlab.nn.backbones against torchvision itself.

The reference is tests/nn/fixtures/torchvision_state_dicts.json, written by torchvision 0.29.1 in a
separate environment (tests/nn/fixtures/README.md holds the script): state_dict keys and shapes,
parameter counts, FLOPs at 224x224, and logits on formula-built weights and input. `fill_state_dict`
and `fixed_input` below are the same formulas as that script's, so the logits tests load identical
weights into both implementations without committing any checkpoint.
"""

import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hmrlab.nn import backbones

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_state_dicts.json"
REFERENCE = json.loads(FIXTURE.read_text())["models"]
NAMES = ["resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large"]

# Published parameter counts (torchvision model documentation).
PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
}


def hash_wave(n: int, k: int) -> torch.Tensor:
    """(n,) float64 in [-1, 1): tests/nn/fixtures/README.md's formula."""
    i = torch.arange(min(n, 4099), dtype=torch.float64)
    h = torch.sin(i * 12.9898 + k * 78.233) * 43758.5453
    period = 2.0 * (h - torch.floor(h)) - 1.0
    return period.repeat(-(-n // 4099))[:n]


def fill_state_dict(shapes: list) -> dict[str, torch.Tensor]:
    """Formula-built state_dict for [key, shape] pairs: tests/nn/fixtures/README.md's formula."""
    state = {}
    for k, (key, shape) in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        wave = hash_wave(n, k).reshape(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
            continue
        if key.endswith("running_var"):
            value = 1.0 + 0.5 * wave.abs()
        elif len(shape) > 1:
            value = wave * (6.0 / (n // shape[0])) ** 0.5
        elif key.endswith("weight") and not key.startswith(("fc", "classifier")):
            value = 1.2 + 0.3 * wave
        else:
            value = 0.1 * wave
        state[key] = value.float()
    return state


def fixed_input() -> torch.Tensor:
    """(2, 3, 64, 64) float32 images: tests/nn/fixtures/README.md's formula."""
    return hash_wave(2 * 3 * 64 * 64, -1).reshape(2, 3, 64, 64).float()


def build(name: str, **kwargs) -> backbones.Backbone:
    torch.manual_seed(0)
    return getattr(backbones, name)(**kwargs)


@pytest.fixture(scope="module")
def models() -> dict[str, backbones.Backbone]:
    return {name: build(name).eval() for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_keys_and_shapes_match_torchvision(models, name):
    ours = [[key, list(t.shape)] for key, t in models[name].state_dict().items()]
    assert ours == REFERENCE[name]["state_dict"]


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_torchvision(models, name):
    count = sum(p.numel() for p in models[name].parameters())
    assert count == REFERENCE[name]["num_parameters"] == PARAMETERS[name]


@pytest.mark.parametrize("name", [n for n in NAMES if "logits" in REFERENCE[n]])
def test_logits_match_torchvision_on_same_weights(name):
    model = build(name).eval()
    model.load_state_dict(fill_state_dict(REFERENCE[name]["state_dict"]))
    expected = torch.tensor(REFERENCE[name]["logits"])
    with torch.no_grad():
        logits = model(fixed_input())
    # Relative to the largest logit: the formula weights give magnitudes from ~5 to ~2e4 by model.
    scale = expected.abs().max().item()
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("name", NAMES)
def test_forward_features_shapes_at_224(models, name):
    model = models[name]
    with torch.no_grad():
        features = model.forward_features(torch.zeros(1, 3, 224, 224))
    assert list(features) == list(model.feature_channels) == list(model.feature_strides)
    assert list(model.feature_strides.values()) == [2, 4, 8, 16, 32]
    for stage, fmap in features.items():
        side = 224 // model.feature_strides[stage]
        assert fmap.shape == (1, model.feature_channels[stage], side, side)


def test_resnet50_layer4_and_mobilenet_channels(models):
    with torch.no_grad():
        layer4 = models["resnet50"].forward_features(torch.zeros(1, 3, 224, 224), "layer4")
    assert list(layer4) == ["layer4"] and layer4["layer4"].shape == (1, 2048, 7, 7)
    # Howard et al. 2019 Tables 1-2: last bneck output at each stride, then the final 1x1 conv.
    assert list(models["mobilenet_v3_small"].feature_channels.values()) == [16, 16, 24, 48, 576]
    assert list(models["mobilenet_v3_large"].feature_channels.values()) == [16, 24, 40, 112, 960]


def test_forward_features_subset_odd_size_and_logits_agree(models):
    model = models["mobilenet_v3_small"]
    x = fixed_input()[:, :, :50, :37]
    with torch.no_grad():
        subset = model.forward_features(x, ["stride32", "stride8"])
        everything = model.forward_features(x)
        logits = model(x)
    assert list(subset) == ["stride8", "stride32"]
    assert subset["stride8"].shape[-2:] == (7, 5)  # ceil(50 / 8), ceil(37 / 8)
    torch.testing.assert_close(subset["stride32"], everything["stride32"])
    pooled = everything["stride32"].mean(dim=(2, 3))
    torch.testing.assert_close(logits, model.classifier(pooled))


def test_bad_inputs_raise_clear_errors(models):
    model = models["resnet18"]
    with pytest.raises(ValueError, match=r"subset of \['stem', 'layer1'"):
        model.forward_features(torch.zeros(1, 3, 32, 32), ["layer5"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\); got \(1, 1, 32, 32\)"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="variant must be one of"):
        backbones.MobileNetV3("medium")


def test_init_is_deterministic_and_follows_torchvision():
    a, b = build("mobilenet_v3_large"), build("mobilenet_v3_large")
    for (key, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(ta, tb), key
    assert a.classifier[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(a.classifier[0].bias == 0)
    resnet = build("resnet50", zero_init_residual=True)
    # Kaiming normal, fan_out mode, ReLU gain: std = sqrt(2 / (out_channels * kh * kw)).
    assert resnet.conv1.weight.std().item() == pytest.approx((2 / (64 * 7 * 7)) ** 0.5, rel=0.05)
    assert torch.all(resnet.layer1[0].bn1.weight == 1) and torch.all(resnet.layer1[0].bn1.bias == 0)
    assert torch.all(resnet.layer1[0].bn3.weight == 0)  # zero_init_residual


def test_weights_file_round_trip(tmp_path):
    source = build("mobilenet_v3_small")
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(1)
    loaded = backbones.mobilenet_v3_small(weights=path)
    for (key, expected), actual in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(expected, actual), key


def test_weights_file_errors(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(build("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys \(\d+\).*same architecture"):
        backbones.resnet34(weights=path)
    with pytest.raises(ValueError, match=r"fc.weight: file \(1000, 512\) vs model \(10, 512\)"):
        backbones.resnet18(weights=path, num_classes=10)
    with pytest.raises(ValueError, match="unexpected keys"):
        backbones.mobilenet_v3_small(weights=path)
    with pytest.raises(FileNotFoundError, match="weights file not found.*torch.save"):
        backbones.resnet18(weights=tmp_path / "absent.pth")
    torch.save({"model": build("resnet18").state_dict()}, tmp_path / "wrapped.pth")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        backbones.resnet18(weights=tmp_path / "wrapped.pth")
    torch.save(build("resnet18"), tmp_path / "pickled_model.pth")
    with pytest.raises(ValueError, match="does not hold a plain state_dict"):
        backbones.resnet18(weights=tmp_path / "pickled_model.pth")


@pytest.mark.parametrize(
    ("name", "published_macs", "rel"),
    # ResNet-50: 4.09 GMACs; MobileNetV3-Large: 217 MMACs (torchvision docs; the paper says 219 M).
    [("resnet50", 4.09e9, 0.02), ("mobilenet_v3_large", 217e6, 0.02)],
)
def test_macs_at_224(models, name, published_macs, rel):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        models[name](torch.zeros(1, 3, 224, 224))
    flops = counter.get_total_flops()
    assert flops == REFERENCE[name]["flops_224"]
    assert flops / 2 == pytest.approx(published_macs, rel=rel)

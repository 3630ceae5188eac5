"""Image backbones: ResNet-18/34/50 and MobileNetV3-Small/Large in plain torch.

These are the architectures of torchvision's builders of the same names, written without torchvision:
every ``state_dict`` key and shape is identical to torchvision's, so a torchvision checkpoint saved
with ``torch.save(model.state_dict(), path)`` loads with ``resnet50(weights=path)``.

- ResNet: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, in the "v1.5" form
  torchvision uses (a bottleneck block downsamples in its 3x3 convolution, not its first 1x1).
- MobileNetV3: Howard et al., "Searching for MobileNetV3", ICCV 2019, Tables 1 and 2.

Feature maps. ``forward(x)`` returns class logits exactly like torchvision; ``forward_features(x,
stages)`` returns a dict of intermediate maps instead, computing only as far as the deepest requested
stage. ``model.feature_channels`` and ``model.feature_strides`` (dicts in stage order) say what each
stage returns, so a head can size itself before seeing an image:

- ResNet: ``"stem"`` (after conv1-bn1-relu, stride 2, 64 channels), then ``"layer1"`` (max-pool and
  layer1, stride 4) to ``"layer4"`` (stride 32; 512 channels for ResNet-18/34, 2048 for ResNet-50).
- MobileNetV3: ``"stride2"``, ``"stride4"``, ``"stride8"``, ``"stride16"``, ``"stride32"``: the
  output of the last layer of ``features`` that works at that stride. ``"stride32"`` is the final
  1x1 convolution (576 channels Small, 960 Large), the map the classifier pools.

A stride-s map of an (H, W) image has spatial size ceil(H / s) x ceil(W / s): (7, 7) at stride 32 for
224 x 224.
"""

from __future__ import annotations

import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "Backbone",
    "ResNetLayout",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "MobileNetV3",
    "InvertedResidual",
    "SqueezeExcitation",
    "init_mobilenet_v3",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "load_state_dict_file",
]

WeightsPath = str | os.PathLike | None


class Backbone(nn.Module, ABC):
    """An image classifier whose intermediate maps can be read by stage name.

    Subclasses list their stages in order (``_stages``) and their classification head (``_head``), and
    set ``feature_channels`` and ``feature_strides``: dicts from stage name to output channels and to
    the stride (input pixels per output pixel), in stage order.
    """

    feature_channels: dict[str, int]
    feature_strides: dict[str, int]

    @abstractmethod
    def _stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        """(name, function) pairs in order; each function maps the previous stage's output to its own."""

    @abstractmethod
    def _head(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) from the last stage's map."""

    def forward_features(
        self, x: Tensor, stages: str | Iterable[str] | None = None
    ) -> dict[str, Tensor]:
        """Feature maps of images ``x`` (B, 3, H, W) at the named ``stages`` (one name, several, or
        all when None).

        Returns a dict ``{stage: (B, feature_channels[stage], ceil(H / s), ceil(W / s))}`` with
        ``s = feature_strides[stage]``, in stage order. Stages after the deepest requested one are not
        computed.
        """
        _check_images(x)
        if stages is None:
            wanted = list(self.feature_channels)
        else:
            wanted = [stages] if isinstance(stages, str) else list(stages)
        unknown = [name for name in wanted if name not in self.feature_channels]
        if unknown or not wanted:
            raise ValueError(
                f"stages must be a non-empty subset of {list(self.feature_channels)}; got {wanted}"
            )
        features = {}
        for name, run in self._stages():
            x = run(x)
            if name in wanted:
                features[name] = x
                if len(features) == len(set(wanted)):
                    break
        return features

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes) of images ``x`` (B, 3, H, W), as torchvision computes them."""
        last = list(self.feature_channels)[-1]
        return self._head(self.forward_features(x, [last])[last])


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W); got {tuple(x.shape)}")


# ----------------------------------------------------------------------------------------------------
# ResNet


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions plus identity (ResNet-18/34); ``out = relu(F(x) + shortcut(x))``."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)

    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, "ResNet v1.5"), 1x1 expand by 4, plus shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)

    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3


class ResNetLayout(Backbone):
    """ResNet's stem, stages and head around any blocks (He et al. 2016, Table 1): what `ResNet` and
    `hmrlab.nn.binary.BinaryResNet` share.

    Subclasses build ``conv1`` (the 7x7/2 stem convolution), ``bn1``, ``maxpool`` (3x3/2), the stages
    ``layer1`` ... ``layer4`` of ``width * (1, 2, 4, 8)`` planes, ``avgpool`` and the classifier ``fc``,
    and give the stem's activation in `_stem`. The stages are ``"stem"`` (stride 2, ``width`` channels),
    ``"layer1"`` (max-pool and layer1, stride 4) to ``"layer4"`` (stride 32).
    """

    @abstractmethod
    def _stem(self, x: Tensor) -> Tensor:
        """The stem's map (B, width, ceil(H / 2), ceil(W / 2)) of images (B, 3, H, W): conv1, bn1, activation."""

    def _set_feature_sizes(self, width: int, expansion: int) -> None:
        """``feature_channels`` and ``feature_strides`` for stages of ``width * (1, 2, 4, 8)`` planes
        whose blocks output ``expansion`` times their planes."""
        self.feature_channels = {"stem": width} | {f"layer{i + 1}": width * 2**i * expansion for i in range(4)}
        self.feature_strides = {"stem": 2, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}

    def _stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [
            ("stem", self._stem),
            ("layer1", lambda x: self.layer1(self.maxpool(x))),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self.layer4),
        ]

    def _head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNet(ResNetLayout):
    """ResNet of ``block`` type with ``layers[i]`` blocks in stage i+1 (He et al. 2016, Table 1).

    Stem: 7x7/2 convolution, batch norm, ReLU, 3x3/2 max-pool; four stages of 64, 128, 256, 512
    planes (times ``block.expansion`` output channels), each but the first halving the resolution;
    global average pool; linear classifier ``fc``. ``zero_init_residual`` starts each residual branch's
    last batch-norm scale at 0 so every block begins as the identity (Goyal et al. 2017), as in
    torchvision.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        self._set_feature_sizes(64, block.expansion)

        # torchvision's init; fc keeps PyTorch's default Linear init.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_channels != out_channels:
            # Projection shortcut ("option B" of the paper) wherever the shape changes.
            downsample = nn.Sequential(
                _conv1x1(self.in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        layers = [block(self.in_channels, planes, stride, downsample)]
        self.in_channels = out_channels
        layers += [block(out_channels, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _stem(self, x: Tensor) -> Tensor:
        return self.relu(self.bn1(self.conv1(x)))


def resnet18(
    *, weights: WeightsPath = None, num_classes: int = 1000, zero_init_residual: bool = False
) -> ResNet:
    """ResNet-18 (11,689,512 parameters at 1000 classes); ``weights``: path of a torchvision state_dict."""
    return _build(ResNet(BasicBlock, (2, 2, 2, 2), num_classes, zero_init_residual), weights)


def resnet34(
    *, weights: WeightsPath = None, num_classes: int = 1000, zero_init_residual: bool = False
) -> ResNet:
    """ResNet-34 (21,797,672 parameters at 1000 classes); ``weights``: path of a torchvision state_dict."""
    return _build(ResNet(BasicBlock, (3, 4, 6, 3), num_classes, zero_init_residual), weights)


def resnet50(
    *, weights: WeightsPath = None, num_classes: int = 1000, zero_init_residual: bool = False
) -> ResNet:
    """ResNet-50 (25,557,032 parameters, 4.1 GMACs at 224x224); ``weights``: torchvision state_dict path."""
    return _build(ResNet(Bottleneck, (3, 4, 6, 3), num_classes, zero_init_residual), weights)


# ----------------------------------------------------------------------------------------------------
# MobileNetV3


class _Bneck(NamedTuple):
    """One row of the MobileNetV3 architecture tables (Howard et al. 2019, Tables 1-2)."""

    kernel: int
    expanded: int  # "exp size": channels of the depthwise convolution
    out: int
    use_se: bool
    activation: str  # "RE" ReLU or "HS" hard-swish
    stride: int


# Each table: stem channels, bottleneck rows (input channels = previous row's output), width of the
# classifier's hidden layer. The final 1x1 convolution has 6x the last row's output channels.
_MOBILENET_V3_CONFIGS: dict[str, tuple[int, tuple[_Bneck, ...], int]] = {
    "small": (
        16,
        (
            _Bneck(3, 16, 16, True, "RE", 2),
            _Bneck(3, 72, 24, False, "RE", 2),
            _Bneck(3, 88, 24, False, "RE", 1),
            _Bneck(5, 96, 40, True, "HS", 2),
            _Bneck(5, 240, 40, True, "HS", 1),
            _Bneck(5, 240, 40, True, "HS", 1),
            _Bneck(5, 120, 48, True, "HS", 1),
            _Bneck(5, 144, 48, True, "HS", 1),
            _Bneck(5, 288, 96, True, "HS", 2),
            _Bneck(5, 576, 96, True, "HS", 1),
            _Bneck(5, 576, 96, True, "HS", 1),
        ),
        1024,
    ),
    "large": (
        16,
        (
            _Bneck(3, 16, 16, False, "RE", 1),
            _Bneck(3, 64, 24, False, "RE", 2),
            _Bneck(3, 72, 24, False, "RE", 1),
            _Bneck(5, 72, 40, True, "RE", 2),
            _Bneck(5, 120, 40, True, "RE", 1),
            _Bneck(5, 120, 40, True, "RE", 1),
            _Bneck(3, 240, 80, False, "HS", 2),
            _Bneck(3, 200, 80, False, "HS", 1),
            _Bneck(3, 184, 80, False, "HS", 1),
            _Bneck(3, 184, 80, False, "HS", 1),
            _Bneck(3, 480, 112, True, "HS", 1),
            _Bneck(3, 672, 112, True, "HS", 1),
            _Bneck(5, 672, 160, True, "HS", 2),
            _Bneck(5, 960, 160, True, "HS", 1),
            _Bneck(5, 960, 160, True, "HS", 1),
        ),
        1280,
    ),
}

_ACTIVATIONS: dict[str, type[nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), going up one
    multiple if rounding lost more than 10 %; MobileNet's channel rule (hardware-friendly widths)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = None,
) -> nn.Sequential:
    """Convolution (same padding, no bias), batch norm with MobileNetV3's eps/momentum, activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=0.001, momentum=0.01),
    ]
    if activation is not None:
        layers.append(activation(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel gating (Hu et al. 2018) with MobileNetV3's hard-sigmoid:
    ``x * hardsigmoid(fc2(relu(fc1(avgpool(x)))))``, fc1/fc2 being 1x1 convolutions."""

    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class InvertedResidual(nn.Module):
    """MobileNetV3 "bneck": 1x1 expand (skipped when nothing to expand), kxk depthwise, optional SE,
    linear 1x1 projection; identity shortcut when stride is 1 and channels are unchanged."""

    def __init__(self, in_channels: int, cfg: _Bneck):
        super().__init__()
        activation = _ACTIVATIONS[cfg.activation]
        layers: list[nn.Module] = []
        if cfg.expanded != in_channels:
            layers.append(_conv_bn_act(in_channels, cfg.expanded, 1, activation=activation))
        layers.append(
            _conv_bn_act(cfg.expanded, cfg.expanded, cfg.kernel, cfg.stride, cfg.expanded, activation)
        )
        if cfg.use_se:
            layers.append(SqueezeExcitation(cfg.expanded, _make_divisible(cfg.expanded // 4)))
        layers.append(_conv_bn_act(cfg.expanded, cfg.out, 1))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = cfg.stride == 1 and in_channels == cfg.out

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


def init_mobilenet_v3(module: nn.Module) -> None:
    """torchvision's MobileNetV3 initialisation of every layer in ``module``: convolutions Kaiming
    normal (fan out), batch norms (1, 0), linear layers N(0, 0.01) with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV3(Backbone):
    """MobileNetV3 ``"small"`` or ``"large"`` (Howard et al. 2019, Tables 1-2).

    ``features``: stem 3x3/2 convolution with hard-swish, the bneck rows of the table, a final 1x1
    convolution to 6x channels; then global average pool and ``classifier`` (linear, hard-swish,
    dropout with probability ``dropout``, linear to ``num_classes``).
    """

    def __init__(self, variant: str, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        if variant not in _MOBILENET_V3_CONFIGS:
            raise ValueError(f"variant must be one of {list(_MOBILENET_V3_CONFIGS)}; got {variant!r}")
        stem_channels, rows, hidden = _MOBILENET_V3_CONFIGS[variant]

        layers = [_conv_bn_act(3, stem_channels, 3, stride=2, activation=nn.Hardswish)]
        strides = [2]
        in_channels = stem_channels
        for cfg in rows:
            layers.append(InvertedResidual(in_channels, cfg))
            strides.append(strides[-1] * cfg.stride)
            in_channels = cfg.out
        last_channels = 6 * in_channels
        layers.append(_conv_bn_act(in_channels, last_channels, 1, activation=nn.Hardswish))
        strides.append(strides[-1])
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_channels, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(hidden, num_classes),
        )

        # One stage per stride: the run of features layers at that stride, named by the stride.
        self._stage_ends: dict[str, int] = {}
        self.feature_channels, self.feature_strides = {}, {}
        channels = [stem_channels] + [cfg.out for cfg in rows] + [last_channels]
        for index, (stride, width) in enumerate(zip(strides, channels)):
            name = f"stride{stride}"
            self._stage_ends[name] = index + 1
            self.feature_channels[name] = width
            self.feature_strides[name] = stride

        init_mobilenet_v3(self)

    def _stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        starts = [0] + list(self._stage_ends.values())[:-1]
        ends = self._stage_ends.items()
        return [(name, self.features[start:end]) for (name, end), start in zip(ends, starts)]

    def _head(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def mobilenet_v3_small(
    *, weights: WeightsPath = None, num_classes: int = 1000, dropout: float = 0.2
) -> MobileNetV3:
    """MobileNetV3-Small (2,542,856 parameters); ``weights``: path of a torchvision state_dict."""
    return _build(MobileNetV3("small", num_classes, dropout), weights)


def mobilenet_v3_large(
    *, weights: WeightsPath = None, num_classes: int = 1000, dropout: float = 0.2
) -> MobileNetV3:
    """MobileNetV3-Large (5,483,032 parameters, 0.22 GMACs at 224x224); ``weights``: path of a
    torchvision state_dict."""
    return _build(MobileNetV3("large", num_classes, dropout), weights)


# ----------------------------------------------------------------------------------------------------
# Loading torchvision weights


def load_state_dict_file(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a torchvision-format state_dict saved with ``torch.save(tv_model.state_dict(), path)``.

    Checks every key and shape before loading, so a checkpoint of another architecture (or another
    ``num_classes``) fails with a ValueError naming the differences instead of loading partially.
    Returns ``model``.
    """
    path = Path(path)
    how = (
        "pass the path of a torchvision state_dict of the same architecture, e.g. saved with "
        "torch.save(torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict(), path)"
    )
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}; {how}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # e.g. a whole pickled model, not its state_dict
        raise ValueError(f"{path} does not hold a plain state_dict; {how}") from error
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state_dict (a dict of tensors); {how}")

    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{label} ({len(items)}): {items[:5]}{' ...' if len(items) > 5 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", mismatched),
            )
            if items
        ]
        raise ValueError(
            f"{path} does not fit {type(model).__name__}: " + "; ".join(problems)
            + f". {how} (and the same num_classes)"
        )
    model.load_state_dict(state)
    return model


def _build(model: nn.Module, weights: WeightsPath) -> nn.Module:
    return model if weights is None else load_state_dict_file(model, weights)

"""MGFENet, the lightweight backbone of the keypoints-guided HMR (Chen & Wang, Sec. III-A, Fig. 3).

MGFENet is MobileNetV3-Large (`hmrlab.nn.backbones.mobilenet_v3_large`, same 15 bneck rows) with three
changes, each a switch here so that the paper's ablation (Table III) can be measured step by step:

1. ``kernel_size=7``: every depthwise convolution is 7x7 instead of the table's 3x3 / 5x5, a larger
   receptive field for little cost (a depthwise kernel costs ``k^2 h w c``, Table I).
2. ``mfc=True``, multi-stage feature concatenation (after DenseNet): a *stage-cascade* map
   ``f^m`` travels beside the blocks. It starts as the image average-pooled to stride 2 (3 channels);
   at the end of each stage the stage's output is appended, ``f^{m+1} = [f^m; f_hat]``, and the
   result is average-pooled to the next stage's stride. Every stride-1 block concatenates ``f^m`` to
   its expanded features before the depthwise convolution (so the depthwise, squeeze-excitation and
   projection layers see ``expanded + channels(f^m)`` channels), and the final 1x1 convolution reads
   ``[f^m; x]`` instead of ``x``.
3. ``global_filter=True``: each block starts with a global filter (GFNet, Rao et al. 2021), Eq. 1:
   ``f^g = F^{-1}[K ⊙ F(f)] + f`` with ``K`` a learnable complex filter of shape (C, h, w // 2 + 1)
   (the real FFT's half spectrum). Its size is fixed by the block's input resolution, so the network
   is built for one ``image_size``.

With all three switches off MGFENet *is* MobileNetV3-Large's feature extractor (same layers, same
parameter count, same FLOPs); the tests check this.

What the paper leaves open, and what we chose (the authors' public code, EfficientHuman's
``MGFENet.py``, was read for these facts):

* stride-2 blocks do not take the cascade (their input is at the previous resolution), as in the
  authors' code; the cascade is pooled with a 3x3/2 average pool (padding 1), also as there;
* ``late_downsample``: the authors' code moves MobileNetV3-Large's last stride-2 one block later
  (row 14 instead of 13, which gets 672 instead of 960 expanded channels), so one more block works
  at stride 16. The paper does not say so, but its counts are this network's: its "MobileNetV3" of
  2.63 M parameters is this variant with the switches off (2.64 M; torchvision's features have
  2.97 M) and MGFENet's 4.66 M is 4.69 M here. The default keeps MobileNetV3-Large's table, so that
  the switches-off network equals `hmrlab.nn.backbones.mobilenet_v3_large`'s features exactly;
* the filter ``K`` starts as small random values (std 0.02, real and imaginary parts) and the FFT
  is orthonormal (``norm="ortho"``), as in GFNet.

FLOPs: `hmrlab.complexity.measure` (torch's counter) counts no FFT and no elementwise product, so a
global filter measures 0 FLOPs there; `global_filter_flops` gives Table I's count ``hwc log2(hw) +
hwc`` for the record.

Feature maps follow `hmrlab.nn.backbones.Backbone`: stages ``"stride2"`` ... ``"stride32"`` (the last
one is the final 1x1 convolution, 960 channels), ``forward_features``, ``feature_channels``,
``feature_strides``. ``forward`` gives logits when built with ``num_classes``, else the pooled
(B, 960) descriptor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from hmrlab.complexity import compare_table, measure
from hmrlab.nn.backbones import (
    _ACTIVATIONS,
    _MOBILENET_V3_CONFIGS,
    Backbone,
    SqueezeExcitation,
    _Bneck,
    _conv_bn_act,
    _make_divisible,
    init_mobilenet_v3,
    resnet18,
)

if TYPE_CHECKING:  # pandas loads only when a table is made
    import pandas as pd

__all__ = [
    "GlobalFilter", "HardSigmoidGate", "MGFEBlock", "MGFENet", "MGFENetAuthors", "PAPER_TABLE", "complexity_table",
    "global_filter_flops",
]


class GlobalFilter(nn.Module):
    """Eq. 1: ``x + irfft2(K ⊙ rfft2(x))`` with a learnable complex filter ``K`` (C, H, W // 2 + 1).

    Input and output (B, C, H, W) with (H, W) the size the filter was built for. Parameters:
    ``2 C H (W // 2 + 1)`` real numbers (``hwc`` in Table I, counting the half spectrum as complex).
    """

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.size = (height, width)
        # Stored as (..., 2) real pairs: optimizers and state_dicts handle real tensors everywhere.
        self.weight = nn.Parameter(0.02 * torch.randn(channels, height, width // 2 + 1, 2))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.weight.shape[0], *self.size):
            raise ValueError(
                f"GlobalFilter was built for maps (B, {self.weight.shape[0]}, {self.size[0]}, {self.size[1]}); "
                f"got {tuple(x.shape)}. Build MGFENet with the image_size you feed it."
            )
        spectrum = torch.fft.rfft2(x, norm="ortho")
        kernel = torch.view_as_complex(self.weight.contiguous())  # contiguous: also under channels_last
        filtered = torch.fft.irfft2(spectrum * kernel, s=self.size, norm="ortho")
        return x + filtered


def global_filter_flops(channels: int, height: int, width: int) -> int:
    """Table I's FLOPs of one global filter, ``h w c ceil(log2(h w)) + h w c`` (FFT plus the product).

    An order-of-magnitude count (the paper's O-expression with constant 1), since torch's counter
    sees no FFT.
    """
    area = height * width
    return area * channels * math.ceil(math.log2(area)) + area * channels


class MGFEBlock(nn.Module):
    """One MGFE block (Fig. 3): [global filter], 1x1 expand, [concatenate the cascade], kxk depthwise,
    [squeeze-excitation], linear 1x1 projection, identity shortcut when the shape allows.

    ``forward(x (B, C_in, H, W), cascade (B, C_m, H, W) or None) -> (B, C_out, H / s, W / s)``.
    ``cascade_channels`` is 0 for a block that does not read the cascade; ``filter_size`` is the
    (H, W) of the global filter, or None for no filter.
    """

    def __init__(
        self, in_channels: int, cfg: _Bneck, cascade_channels: int = 0, filter_size: tuple[int, int] | None = None
    ):
        super().__init__()
        activation = _ACTIVATIONS[cfg.activation]
        self.cascade_channels, self.stride = cascade_channels, cfg.stride
        self.global_filter = None if filter_size is None else GlobalFilter(in_channels, *filter_size)
        self.expand = (
            _conv_bn_act(in_channels, cfg.expanded, 1, activation=activation)
            if cfg.expanded != in_channels
            else nn.Identity()
        )
        wide = cfg.expanded + cascade_channels
        self.depthwise = _conv_bn_act(wide, wide, cfg.kernel, cfg.stride, wide, activation)
        self.se = SqueezeExcitation(wide, _make_divisible(wide // 4)) if cfg.use_se else nn.Identity()
        self.project = _conv_bn_act(wide, cfg.out, 1)
        self.use_res_connect = cfg.stride == 1 and in_channels == cfg.out

    def forward(self, x: Tensor, cascade: Tensor | None = None) -> Tensor:
        out = x if self.global_filter is None else self.global_filter(x)
        out = self.expand(out)
        if self.cascade_channels:
            out = torch.cat([out, cascade], 1)
        out = self.project(self.se(self.depthwise(out)))
        return out + x if self.use_res_connect else out


class MGFENet(Backbone):
    """MGFENet (Fig. 3) on MobileNetV3-Large's rows; the module docstring explains each switch.

    Args:
        kernel_size: depthwise kernel of every block (7 in the paper); None keeps MobileNetV3's.
        mfc: multi-stage feature concatenation.
        global_filter: a global filter (Eq. 1) at the start of every block.
        image_size: (H, W) of the input images; needed only with ``global_filter`` (the filters'
            sizes follow from it), and then the only size accepted.
        num_classes: a linear classifier on the pooled stride-32 map; None for none (``forward``
            then returns the pooled (B, 960) map).
        late_downsample: the authors' stride schedule (module docstring).
        bn_momentum: every batch norm's running-average momentum: MobileNetV3's 0.01 by default; the
            authors' code keeps PyTorch's 0.1, whose running statistics follow the weights within tens
            of steps rather than hundreds (what a short training run needs for its evaluation mode).
    """

    def __init__(
        self,
        kernel_size: int | None = 7,
        mfc: bool = True,
        global_filter: bool = True,
        image_size: tuple[int, int] = (256, 256),
        num_classes: int | None = None,
        late_downsample: bool = False,
        bn_momentum: float = 0.01,
    ):
        super().__init__()
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f"kernel_size must be odd and positive, or None for MobileNetV3's; got {kernel_size}")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width) in pixels; got {image_size}")
        self.mfc, self.image_size = mfc, tuple(image_size)
        self.uses_global_filter = global_filter
        stem_channels, rows, _ = _MOBILENET_V3_CONFIGS["large"]
        if kernel_size is not None:
            rows = tuple(row._replace(kernel=kernel_size) for row in rows)
        if late_downsample:
            rows = (*rows[:12], rows[12]._replace(stride=1), rows[13]._replace(stride=2, expanded=672), *rows[14:])

        self.stem = _conv_bn_act(3, stem_channels, 3, stride=2, activation=nn.Hardswish)
        self.cascade_pool = nn.AvgPool2d(3, stride=2, padding=1)
        blocks, names = [], []
        channels, stride, cascade = stem_channels, 2, 3  # the cascade starts as the pooled image
        size = _downsampled(self.image_size, 2)
        for row in rows:
            if row.stride == 2:  # a new stage: the finished stage's output joins the cascade
                cascade += channels
            blocks.append(
                MGFEBlock(
                    channels, row,
                    cascade_channels=cascade if mfc and row.stride == 1 else 0,
                    filter_size=size if global_filter else None,
                )
            )
            stride *= row.stride
            size = _downsampled(size, row.stride)
            names.append(f"stride{stride}")
            channels = row.out
        self.blocks = nn.ModuleList(blocks)
        self._block_stages = names
        last_channels = 6 * channels
        self.final = _conv_bn_act(cascade + channels if mfc else channels, last_channels, 1, activation=nn.Hardswish)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = None if num_classes is None else nn.Linear(last_channels, num_classes)

        self.feature_channels = {"stride2": stem_channels}
        self.feature_strides = {"stride2": 2}
        for name, row in zip(names, rows):
            self.feature_channels[name] = row.out
            self.feature_strides[name] = int(name.removeprefix("stride"))
        self.feature_channels["stride32"] = last_channels

        init_mobilenet_v3(self)  # so that the switches-off network starts like MobileNetV3
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = bn_momentum

    def _stages(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        # The cascade map travels beside the stages; this dict is fresh for every forward pass.
        state: dict[str, Tensor] = {}

        def stage(indices: list[int], first: bool, last: bool) -> Callable[[Tensor], Tensor]:
            def run(x: Tensor) -> Tensor:
                if first:
                    self._check_size(x)
                    state["cascade"] = self.cascade_pool(x) if self.mfc else None
                    x = self.stem(x)
                for i in indices:
                    if self.mfc and self.blocks[i].stride == 2:
                        state["cascade"] = self.cascade_pool(torch.cat([state["cascade"], x], 1))
                    x = self.blocks[i](x, state["cascade"])
                if last:
                    x = self.final(torch.cat([state["cascade"], x], 1) if self.mfc else x)
                return x

            return run

        names = list(self.feature_channels)
        return [
            (
                name,
                stage([i for i, n in enumerate(self._block_stages) if n == name], name == names[0], name == names[-1]),
            )
            for name in names
        ]

    def _check_size(self, images: Tensor) -> None:
        if self.uses_global_filter and tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"this MGFENet has global filters built for {self.image_size} images; got "
                f"{tuple(images.shape[-2:])}. Resize the images or build MGFENet(image_size=...)."
            )

    def _head(self, x: Tensor) -> Tensor:
        pooled = torch.flatten(self.avgpool(x), 1)
        return pooled if self.classifier is None else self.classifier(pooled)


class HardSigmoidGate(nn.Module):
    """``clamp((x + bias) / divisor, 0, 1)``: mmcv's HSigmoid; (1, 2) is the SE gate of the authors' MGFENet.

    torch's ``Hardsigmoid`` is ``(3, 6)``: the same line through 1/2 at 0, with half the slope of (1, 2).
    """

    def __init__(self, bias: float = 1.0, divisor: float = 2.0) -> None:
        super().__init__()
        self.bias, self.divisor = bias, divisor

    def forward(self, x: Tensor) -> Tensor:
        return ((x + self.bias) / self.divisor).clamp(0.0, 1.0)


class MGFENetAuthors(MGFENet):
    """MGFENet as the authors' code builds it (ChrisChenYh/EfficientHuman, ``MGFENet(arch="big_7x7")``).

    `MGFENet` with 7x7 kernels, MFC, global filters and ``late_downsample=True``, and these departures
    (each checked against their code in ``tests/fidelity``): the first block has an expand convolution
    too (16 -> 16 channels, BN, ReLU), where MobileNetV3 has none; squeeze-excitation squeezes to
    ``int(C / 4)`` channels (not rounded to a multiple of 8) and gates with ``clamp((x + 1) / 2, 0, 1)``
    (`HardSigmoidGate`, mmcv's HSigmoid with their bias 1, divisor 2); the final 1x1 convolution has
    neither bias nor batch norm and a ReLU (not hard-swish); every batch norm has PyTorch's eps 1e-5
    and momentum 0.1 (MobileNetV3's are 1e-3 and 0.01). Parameters at 256 x 256: 4,664,423 (the
    paper's 4.66 M; `MGFENet`'s reading has 4,693,149). Built for 256 x 256 images as theirs (their
    filter sizes are hard-wired; here ``image_size`` sets them). ``forward_features(images,
    ["stride32"])`` is their ``MGFENet(...)(images)[-1]``, (B, 960, H / 32, W / 32).
    `hmrlab.models.authors.from_authors("efficienthuman", ...)` maps their state dict.
    """

    def __init__(self, image_size: tuple[int, int] = (256, 256), num_classes: int | None = None) -> None:
        super().__init__(kernel_size=7, mfc=True, global_filter=True, image_size=image_size, num_classes=num_classes,
                         late_downsample=True, bn_momentum=0.1)
        first = self.blocks[0]
        first.expand = _conv_bn_act(16, 16, 1, activation=nn.ReLU)
        for block in self.blocks:
            if isinstance(block.se, SqueezeExcitation):
                wide = block.se.fc1.in_channels
                block.se = SqueezeExcitation(wide, int(wide / 4))
                block.se.scale_activation = HardSigmoidGate(1.0, 2.0)
        final = self.final[0]
        self.final = nn.Sequential(nn.Conv2d(final.in_channels, final.out_channels, 1, bias=False),
                                   nn.ReLU(inplace=True))
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 1e-5


def _downsampled(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Output size of a same-padded convolution of this stride (``ceil(n / s)``)."""
    return tuple(-(-n // stride) for n in size)


class _StageOutput(nn.Module):
    """A backbone up to one stage, returning that stage's map: what `measure` should count."""

    def __init__(self, backbone: Backbone, stage: str) -> None:
        super().__init__()
        self.backbone, self.stage = backbone, stage

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.forward_features(images, [self.stage])[self.stage]


# The paper's Tables III and IV: "#Param(M)" and "FLOPs(G)" (read as MACs, the
# convention of mmcv's counter that pose papers use).
PAPER_TABLE = {
    "MobileNetV3": (2.63e6, 0.34e9),
    "+ 7x7 depthwise": (None, 0.41e9),
    "+ MFC": (None, 0.45e9),
    "+ global filter = MGFENet": (4.66e6, 0.46e9),
    "ResNet-18": (11.18e6, 1.37e9),
}


def complexity_table(image_size: tuple[int, int] = (256, 256), late_downsample: bool = True) -> pd.DataFrame:
    """Params and MACs of the ablation chain of Table III and the backbones of Table IV, beside the paper's.

    Each backbone is measured up to its last feature map (MobileNetV3's and MGFENet's ``stride32``,
    ResNet-18's ``layer4``; classifier parameters left out) on one ``image_size`` image with
    `hmrlab.complexity.measure`. ``late_downsample`` (default: the authors' schedule, which the
    paper's counts match) applies to the MobileNetV3 row too; False gives torchvision's
    MobileNetV3-Large there. Columns as `hmrlab.complexity.compare_table`, plus ``filter FLOPs``:
    the global filters' Table I count (`global_filter_flops`), which torch's counter does not see.
    """
    images = torch.zeros(1, 3, *image_size)
    common = {"image_size": image_size, "late_downsample": late_downsample}
    variants = {
        "MobileNetV3": MGFENet(kernel_size=None, mfc=False, global_filter=False, **common),
        "+ 7x7 depthwise": MGFENet(mfc=False, global_filter=False, **common),
        "+ MFC": MGFENet(global_filter=False, **common),
        "+ global filter = MGFENet": MGFENet(**common),
        "ResNet-18": resnet18(),
    }
    rows, filter_flops = [], []
    for name, net in variants.items():
        stage = list(net.feature_channels)[-1]
        measured = measure(_StageOutput(net, stage), images)
        classifier = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("fc.", "classifier.")))
        rows.append((name, replace(measured, params=measured.params - classifier), *PAPER_TABLE[name]))
        filters = [m for m in net.modules() if isinstance(m, GlobalFilter)]
        filter_flops.append(sum(global_filter_flops(f.weight.shape[0], *f.size) for f in filters))
    table = compare_table(rows)
    table["filter FLOPs"] = filter_flops
    return table

"""Packed binary layers and BiDRN units for fast CPU inference (the fused kernels of `hmrlab.nn.xnor_kernels`).

A binary network trained with `hmrlab.nn.binary` simulates its binary convolutions in float32, and
so runs *slower* than its full-precision twin. This module converts it for inference:

1. `pack_filters`: a layer's ±1 filters (O, C, kh, kw) as 64-bit words, laid out for the kernel
   (one row of words per tap and channel word, the O filters side by side), plus each tap's
   popcounts for the exact zero padding (`hmrlab.nn.xnor_kernels`, step 3);
2. `XnorConv2d` / `XnorLinear`: drop-in packed forms of a trained `BinaryConv2d` / `BinaryLinear`,
   input sign (RSign's threshold) fused into the packing, scale ``alpha = mean |W|`` and bias applied
   once to the integer result: ``XnorConv2d.from_layer(layer)(x) == layer(x)`` up to float rounding;
   `xnor_conv2d` / `xnor_linear` give the exact integers of ``F.conv2d`` / ``@`` on ±1 tensors;
3. `PackedUnit`: one of BiDRN's units (`LCR`, `DScR` Eq. 8, `FUR` Eq. 9, `FDR` Eq. 10, `DSaR`
   Eqs. 11-12) as fused kernel calls: each branch binarizes its input once (while packing it), and
   RPReLU, the shortcut, the branches' concatenation or sum, BatchNorm and, in `PackedBlock`, the
   ResNet block's own shortcut (BR) happen in the kernel's epilogue. A 1x1 unit (FUR, FDR, LCR 1x1)
   is one call for all its branches (`hmrlab.nn.xnor_kernels.unit_nhwc`: one pass over the output,
   its inputs packed once per block of positions); the others take one call per base residual;
4. `pack_binary_network`: a copy of a whole network (a binarized ResNet, BiDRN) with every binary
   block, unit and layer replaced, in eval mode. Activations between packed blocks are channels-last.

Backends: the kernels need numba (a dependency of hmrlab). Where numba is missing or cannot compile,
the same layers run on the pure-torch reference of `hmrlab.nn.bitpack` (same results, much slower)
after a one-time warning (`hmrlab.nn.numba_backend`); ``HMRLAB_NUMBA=0`` chooses that path on purpose. `kernels_available`
says which one runs. All of this is inference only: no gradients flow through packed layers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from hmrlab.nn import bitpack, numba_backend
from hmrlab.nn.binary import (
    FDR,
    FUR,
    LCR,
    BaseResidual,
    BinaryConv2d,
    BinaryLinear,
    BlockResidual,
    DSaR,
    DScR,
    _avg_pool,
    binarize_weight,
    is_binary_layer,
)
from hmrlab.validation import format_shape

__all__ = [
    "kernels_available", "pack_filters", "unpack_filters", "fused_conv", "xnor_conv2d", "xnor_linear",
    "XnorConv2d", "XnorLinear", "PackedUnit", "PackedBlock", "pack_binary_network",
]

# The epilogue steps of `hmrlab.nn.xnor_kernels` (kept here too, so the fallback needs no numba).
PRELU, SHORTCUT, ACCUMULATE, BATCHNORM, POST = 1, 2, 4, 8, 16
_NONE = np.zeros((1, 1, 1, 1), np.float32)  # stands for an unused shortcut or post array


def _load_kernels():
    """The compiled kernels, or None (numba missing or failing, or ``HMRLAB_NUMBA=0``)."""
    return numba_backend.load("xnor_kernels")


def kernels_available() -> bool:
    """True when packed layers run on the compiled kernels, False when on the pure-torch fallback."""
    return _load_kernels() is not None


# ----------------------------------------------------------------------------------------------------
# 1. Filters as words


def pack_filters(positive: Tensor) -> tuple[Tensor, Tensor]:
    """Filters' signs (O, C, kh, kw) bool (True for +1) -> the kernel's words and tap popcounts.

    Returns ``words`` (kh kw ceil(C / 64), O) int64, row ``(i kw + j) ceil(C / 64) + c`` holding
    channel word c of tap (i, j) of every filter (bit order of `hmrlab.nn.bitpack.pack_bits`), and
    ``tap_popcounts`` (kh kw, O) int32, the set bits of each tap: what a padded tap must give back.
    """
    if positive.ndim != 4:
        raise ValueError(f"filters must have shape (O, C, kh, kw); got {format_shape(tuple(positive.shape))}")
    out_channels, _, kh, kw = positive.shape
    taps = bitpack._pack_bools(positive.permute(2, 3, 0, 1))  # (kh, kw, O, CW)
    counts = bitpack.popcount(taps).sum(-1).to(torch.int32).reshape(kh * kw, out_channels)
    return taps.permute(0, 1, 3, 2).reshape(-1, out_channels).contiguous(), counts.contiguous()


def unpack_filters(words: Tensor, channels: int, kernel_size: tuple[int, int]) -> Tensor:
    """The inverse of `pack_filters`: words (kh kw CW, O) -> ±1 filters (O, C, kh, kw) float32."""
    kh, kw = kernel_size
    taps = words.reshape(kh, kw, -1, words.shape[1]).permute(3, 0, 1, 2)  # (O, kh, kw, CW)
    return bitpack.unpack_bits(taps.contiguous(), channels).permute(0, 3, 1, 2).contiguous()


def _params(out_channels: int, alpha: Tensor | None = None, beta: Tensor | None = None,
            prelu: tuple[Tensor, Tensor, Tensor] | None = None,
            bn: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """The epilogue's per-channel numbers (7, O) float32: alpha, beta, RPReLU's shift_in, slope,
    shift_out, BatchNorm's scale and shift (`hmrlab.nn.xnor_kernels.PARAM_ROWS`)."""
    rows = torch.zeros(7, out_channels)
    rows[0], rows[3], rows[5] = 1.0, 1.0, 1.0
    for index, value in ((0, alpha), (1, beta)):
        if value is not None:
            rows[index] = value.detach().float()
    if prelu is not None:
        for index, value in zip((2, 3, 4), prelu):
            rows[index] = value.detach().float().expand(out_channels)
    if bn is not None:
        rows[5], rows[6] = (value.detach().float() for value in bn)
    return rows


def _batchnorm_affine(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``x g + h``: ``g = weight / sqrt(var + eps)``, ``h = bias - mean g``."""
    if bn.running_var is None:
        raise ValueError("packing needs BatchNorm layers with running statistics (track_running_stats=True)")
    g = 1.0 / torch.sqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        g = g * bn.weight
    h = -bn.running_mean * g + (0.0 if bn.bias is None else bn.bias)
    return g.detach().float(), h.detach().float()


# ----------------------------------------------------------------------------------------------------
# 2. One fused convolution, by the kernels or by the reference


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _output_size(size, kernel_size, stride, padding, dilation) -> tuple[int, int]:
    return tuple((size[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in range(2))


def _channels_last(x: Tensor) -> Tensor:
    return x.detach().float().contiguous(memory_format=torch.channels_last)


def _empty_out(x: Tensor, channels: int, height: int, width: int) -> Tensor:
    """A new channels-last float32 map in NumPy's memory (NumPy asks for huge pages for large arrays,
    which made first touching them several times cheaper than torch.empty's pages)."""
    return torch.from_numpy(np.empty((x.shape[0], height, width, channels), np.float32)).permute(0, 3, 1, 2)


def _nhwc(x: Tensor) -> np.ndarray:
    """The memory of a channels-last (B, C, H, W) float32 tensor as a (B, H, W, C) array (no copy)."""
    return x.permute(0, 2, 3, 1).numpy()


def _run_kernels(k, x, channel_offset, threshold, words, tap_popcounts, kernel_size, stride, padding, dilation,
                 params, flags, shortcut, shortcut_offset, post, out, out_offset) -> None:
    threads = torch.get_num_threads()
    numba_backend.sync_threads(threads)
    batch, _, height, width = x.shape
    channels = threshold.shape[0]
    packed = np.empty((batch, height, width, -(-channels // 64)), np.int64)
    parallel = threads > 1 and out.shape[0] * out.shape[2] * out.shape[3] * words.shape[1] * (words.shape[0] + 8) >= k.PARALLEL_WORK
    k.pack_nhwc(_nhwc(x), channel_offset, threshold.numpy(), packed, parallel)
    k.conv_nhwc(
        packed, words.numpy(), tap_popcounts.numpy(), channels, *kernel_size, *stride, *padding, *dilation,
        params.numpy(), flags, _NONE if shortcut is None else _nhwc(shortcut), shortcut_offset,
        _NONE if post is None else _nhwc(post), _nhwc(out), out_offset, parallel,
    )


def _run_reference(x, channel_offset, threshold, words, kernel_size, stride, padding, dilation, params, flags,
                   shortcut, shortcut_offset, post, out, out_offset) -> None:
    """The same computation in pure torch: `hmrlab.nn.bitpack.xnor_conv2d`, then the epilogue."""
    channels = threshold.shape[0]
    x = x[:, channel_offset : channel_offset + channels]
    signs = torch.where(x - threshold[:, None, None] >= 0, 1.0, -1.0)
    filters = unpack_filters(words, channels, kernel_size)
    v = bitpack.xnor_conv2d(signs, filters, stride, padding, dilation).float()
    o = filters.shape[0]
    p = params[:, :, None, None]
    v = v * p[0] + p[1]
    if flags & PRELU:
        v = v - p[2]
        v = torch.where(v > 0, v, v * p[3]) + p[4]
    if flags & SHORTCUT:
        v = v + shortcut[:, shortcut_offset : shortcut_offset + o]
    target = out[:, out_offset : out_offset + o]
    if flags & ACCUMULATE:
        v = target + v
    if flags & BATCHNORM:
        v = v * p[5] + p[6]
    if flags & POST:
        v = v + post[:, (torch.arange(o) + out_offset) % post.shape[1]]
    target.copy_(v)


def fused_conv(
    x: Tensor, threshold: Tensor, words: Tensor, tap_popcounts: Tensor, kernel_size: tuple[int, int],
    stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int], params: Tensor,
    flags: int, *, channel_offset: int = 0, shortcut: Tensor | None = None, shortcut_offset: int = 0,
    post: Tensor | None = None, out: Tensor | None = None, out_offset: int = 0,
) -> Tensor:
    """``epilogue(conv(sign(x[:, c0 : c0 + C] - threshold), filters))`` into ``out[:, out_offset :
    out_offset + O]``, c0 = channel_offset.

    x: (B, Cx, H, W) float32, channels-last (`_channels_last`); threshold (C,); words, tap_popcounts
    from `pack_filters`; params (7, O) (`_params`); flags: the epilogue steps (`PRELU`, `SHORTCUT`,
    `ACCUMULATE`, `BATCHNORM`, `POST`); shortcut (B, Cs, H', W') read at channels ``shortcut_offset +
    o``; post (B, Cp, H', W') read at ``(out_offset + o) % Cp``; out (B, Cout, H', W') channels-last
    (None: a new one with Cout = O). Returns out. The kernels run if `kernels_available`, else the
    reference: the same numbers up to float rounding of the epilogue.
    """
    out_h, out_w = _output_size(x.shape[2:], kernel_size, stride, padding, dilation)
    if out is None:
        out = _empty_out(x, words.shape[1], out_h, out_w)
    kernels = _load_kernels()
    if kernels is not None:
        _run_kernels(kernels, x, channel_offset, threshold, words, tap_popcounts, kernel_size, stride, padding,
                     dilation, params, flags, shortcut, shortcut_offset, post, out, out_offset)
    else:
        _run_reference(x, channel_offset, threshold, words, kernel_size, stride, padding, dilation, params, flags,
                       shortcut, shortcut_offset, post, out, out_offset)
    return out


# ----------------------------------------------------------------------------------------------------
# 3. Layers


class XnorConv2d(nn.Module):
    """Packed binary convolution for inference: (B, C, H, W) real -> (B, O, H', W') float32, channels-last.

    ``y = scale[o] * conv(sign(x - threshold), sign(W)) + bias[o]``, the forward pass of a
    `hmrlab.nn.binary.BinaryConv2d` (RSign threshold, XNOR-Net scale) with the integer convolution
    by `hmrlab.nn.xnor_kernels`. weight: real (O, C, kh, kw) filters (binarized with sign(0) = +1);
    scale, bias: (O,) or None; threshold: (C,) or None (0, a plain sign). `from_layer` packs a
    trained layer. Zero padding counts as 0, as in the float convolution.
    """

    def __init__(self, weight: Tensor, scale: Tensor | None = None, bias: Tensor | None = None,
                 threshold: Tensor | None = None, stride=1, padding=0, dilation=1):
        super().__init__()
        if weight.ndim != 4:
            raise ValueError(f"weight must have shape (O, C, kh, kw); got {format_shape(tuple(weight.shape))}")
        self.out_channels, self.in_channels = weight.shape[:2]
        self.kernel_size = tuple(weight.shape[2:])
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        words, taps = pack_filters(weight.detach() >= 0)
        self.register_buffer("weight_words", words)
        self.register_buffer("tap_popcounts", taps)
        self.register_buffer("params", _params(self.out_channels, scale, bias))
        self.register_buffer("threshold", torch.zeros(self.in_channels) if threshold is None else threshold.detach().float().clone())

    @classmethod
    def from_layer(cls, layer: BinaryConv2d) -> XnorConv2d:
        """The packed form of a `BinaryConv2d` with binary weights and inputs (groups 1, numeric
        padding): ``XnorConv2d.from_layer(layer)(x) == layer(x)`` (eval) up to float rounding."""
        if (not (isinstance(layer, BinaryConv2d) and is_binary_layer(layer)) or layer.groups != 1
                or isinstance(layer.padding, str) or not _bit_exact(layer)):
            raise ValueError(
                "layer must be a BinaryConv2d with binary weights and activations, groups=1, numeric "
                f"padding and sign(0) = +1 (sign_of_zero=1, no zero weight); got {type(layer).__name__}"
            )
        _, scale = binarize_weight(layer.weight.detach())
        return cls(layer.weight, scale, layer.bias, _threshold(layer), layer.stride, layer.padding, layer.dilation)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W); got {format_shape(tuple(x.shape))}")
        return fused_conv(_channels_last(x), self.threshold, self.weight_words, self.tap_popcounts,
                          self.kernel_size, self.stride, self.padding, self.dilation, self.params, 0)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}")


class XnorLinear(nn.Module):
    """Packed binary linear layer for inference: (..., n) real -> (..., O) float32.

    ``y = scale * (sign(x - threshold) · sign(W)) + bias``, a `hmrlab.nn.binary.BinaryLinear`'s
    forward pass; computed as a 1x1 convolution over a 1 x M "image" of the M input rows (whose
    channels-last memory is the rows themselves), so the kernel blocks over rows as over positions.
    """

    def __init__(self, weight: Tensor, scale: Tensor | None = None, bias: Tensor | None = None,
                 threshold: Tensor | None = None):
        super().__init__()
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (O, n); got {format_shape(tuple(weight.shape))}")
        self.out_features, self.in_features = weight.shape
        words, taps = pack_filters(weight.detach()[:, :, None, None] >= 0)
        self.register_buffer("weight_words", words)
        self.register_buffer("tap_popcounts", taps)
        self.register_buffer("params", _params(self.out_features, scale, bias))
        self.register_buffer("threshold", torch.zeros(self.in_features) if threshold is None else threshold.detach().float().clone())

    @classmethod
    def from_layer(cls, layer: BinaryLinear) -> XnorLinear:
        """The packed form of a `BinaryLinear` with binary weights and inputs: ``packed(x) == layer(x)``."""
        if not (isinstance(layer, BinaryLinear) and is_binary_layer(layer)) or not _bit_exact(layer):
            raise ValueError("layer must be a BinaryLinear with binary weights and activations and sign(0) = +1 "
                             f"(sign_of_zero=1, no zero weight); got {type(layer).__name__}")
        _, scale = binarize_weight(layer.weight.detach())
        return cls(layer.weight, scale, layer.bias, _threshold(layer))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}); got {format_shape(tuple(x.shape))}")
        rows = x.detach().float().reshape(-1, self.in_features).contiguous()
        image = rows.T[None, :, None, :]  # (1, n, 1, M), channels-last: the rows' own memory
        out = fused_conv(image, self.threshold, self.weight_words, self.tap_popcounts, (1, 1), (1, 1),
                         (0, 0), (1, 1), self.params, 0)
        return out.permute(0, 2, 3, 1).reshape(*x.shape[:-1], self.out_features)


def _bit_exact(layer: nn.Module) -> bool:
    """True when a binary layer's forward values are bits: its input sign gives +1 at the threshold
    (``sign_of_zero=1``, this package's convention) and no weight is exactly 0 (which the authors'
    weight binarization, ``torch.sign``, would make a 0 rather than +1)."""
    if getattr(layer.input_sign, "sign_of_zero", 1.0) != 1.0:
        return False
    return getattr(layer, "weight_gradient", "scale") != "authors" or not bool((layer.weight == 0).any())


def _threshold(layer: BinaryConv2d | BinaryLinear) -> Tensor | None:
    """The RSign threshold of a binary layer's input, None for a plain sign."""
    threshold = getattr(layer.input_sign, "threshold", None)
    return None if threshold is None else threshold.detach()


def _check_sign_inputs(x: Tensor, weight: Tensor, ndim: int, pattern: str) -> None:
    bitpack._check_signs(x, "x")
    bitpack._check_signs(weight, "weight")
    if x.ndim != ndim or weight.ndim != ndim or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x and weight must have shapes {pattern}; got {format_shape(tuple(x.shape))} "
                         f"and {format_shape(tuple(weight.shape))}")


def xnor_conv2d(x: Tensor, weight: Tensor, stride=1, padding=0, dilation=1) -> Tensor:
    """``F.conv2d(x, weight, ...)`` for ±1 tensors by the fused kernels, exact: (B, C, H, W), (O, C,
    kh, kw) -> (B, O, H', W') int64. The same contract as `hmrlab.nn.bitpack.xnor_conv2d`."""
    _check_sign_inputs(x, weight, 4, "(B, C, H, W) and (O, C, kh, kw) with the same C")
    out = XnorConv2d(weight, stride=stride, padding=padding, dilation=dilation)(x)
    return out.round().long().contiguous()


def xnor_linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` for ±1 tensors by the fused kernels: (B, n), (O, n) -> (B, O) int64, exact."""
    _check_sign_inputs(x, weight, 2, "(B, n) and (O, n) with the same n")
    return XnorLinear(weight)(x).round().long()


# ----------------------------------------------------------------------------------------------------
# 4. BiDRN's units and blocks


class _Branch(nn.Module):
    """One `BaseResidual` of a unit, packed: ``RPReLU(BinaryConv(x[:, c0 : c0 + C])) + shortcut``
    with where it reads and writes (plain ints) and the unit's BatchNorm slice if it applies it."""

    def __init__(self, residual: BaseResidual, *, channel_offset: int = 0, shortcut_offset: int = 0,
                 out_offset: int = 0, accumulate: bool = False, bn: tuple[Tensor, Tensor] | None = None):
        super().__init__()
        conv, redistribute = residual.conv, residual.redistribute
        if not (isinstance(conv, BinaryConv2d) and is_binary_layer(conv)) or conv.groups != 1 or not _bit_exact(conv):
            raise ValueError("only binary units with sign(0) = +1 can be packed; this one's convolution is "
                             f"{type(conv).__name__}")
        if isinstance(redistribute, nn.LeakyReLU):
            zero = torch.zeros(conv.out_channels)
            prelu = (zero, torch.full_like(zero, redistribute.negative_slope), zero)
        else:
            prelu = (redistribute.shift_in, redistribute.prelu.weight, redistribute.shift_out)
        _, scale = binarize_weight(conv.weight.detach())
        words, taps = pack_filters(conv.weight.detach() >= 0)
        self.register_buffer("weight_words", words)
        self.register_buffer("tap_popcounts", taps)
        self.register_buffer("params", _params(conv.out_channels, scale, conv.bias, prelu, bn))
        threshold = _threshold(conv)
        self.register_buffer("threshold", torch.zeros(conv.in_channels) if threshold is None else threshold.float().clone())
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = tuple(conv.kernel_size)
        self.stride, self.padding, self.dilation = _pair(conv.stride), _pair(conv.padding), _pair(conv.dilation)
        self.channel_offset, self.shortcut_offset, self.out_offset = channel_offset, shortcut_offset, out_offset
        self.flags = PRELU | SHORTCUT | (ACCUMULATE if accumulate else 0) | (BATCHNORM if bn is not None else 0)

    def forward(self, x: Tensor, shortcut: Tensor, out: Tensor, post: Tensor | None) -> None:
        flags = self.flags | (POST if post is not None and self.flags & BATCHNORM else 0)
        fused_conv(x, self.threshold, self.weight_words, self.tap_popcounts, self.kernel_size, self.stride,
                   self.padding, self.dilation, self.params, flags, channel_offset=self.channel_offset,
                   shortcut=shortcut, shortcut_offset=self.shortcut_offset, post=post, out=out, out_offset=self.out_offset)


def _is_packable_unit(module: nn.Module) -> bool:
    residuals = [module.residual] if isinstance(module, (LCR, DScR)) else list(getattr(module, "residuals", []))
    return (isinstance(module, (LCR, DScR, FUR, FDR)) and bool(residuals)
            and all(isinstance(r.conv, BinaryConv2d) and is_binary_layer(r.conv) and _bit_exact(r.conv)
                    and r.conv.groups == 1 for r in residuals))


class PackedUnit(nn.Module):
    """A BiDRN unit (`LCR`, `DScR`, `FUR`, `FDR`, `DSaR` of `hmrlab.nn.binary`) as fused kernel calls.

    ``(B, C_in, H, W) -> (B, C_out, H', W')`` float32, channels-last, equal to the unit's eval-mode
    forward pass up to float rounding. One `_Branch` per base residual writes its channels of the
    output (FUR, DSaR: the concatenation), or adds into it (FDR: the sum); the branch that completes
    a channel applies the unit's BatchNorm and, when `forward` gets one, the ``post`` map (the
    block's shortcut, its channels repeated to C_out). `from_module` packs a unit. With the kernels,
    a unit whose branches are all 1x1 of stride 1 (``fused``) runs them in one `unit_nhwc` call
    instead, with the same numbers; the pure-torch fallback always goes branch by branch.
    """

    def __init__(self, branches: list[_Branch], out_channels: int, tau: int, pool_input: bool, pool_shortcut: bool):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.out_channels, self.tau = out_channels, tau
        self.pool_input, self.pool_shortcut = pool_input, pool_shortcut
        # A 1x1, stride-1 unit (LCR 1x1, FUR, FDR) runs as one kernel call for all its branches
        # (`hmrlab.nn.xnor_kernels.unit_nhwc`): the branches' stacked weights and numbers.
        self.fused = (not pool_input and not pool_shortcut and all(
            b.kernel_size == (1, 1) and b.stride == (1, 1) and b.padding == (0, 0) and b.in_channels == b.out_channels
            and b.shortcut_offset == b.channel_offset for b in branches))
        if self.fused:
            first = branches[0]
            self.concat = not any(b.flags & ACCUMULATE for b in branches)
            if self.concat:
                self.fused = all(b.channel_offset == 0 and b.out_offset == k * first.out_channels
                                 for k, b in enumerate(branches))
            else:
                self.fused = all(b.out_offset == 0 and bool(b.flags & ACCUMULATE) == (k > 0)
                                 and bool(b.flags & BATCHNORM) == (k == len(branches) - 1)
                                 for k, b in enumerate(branches))
        if self.fused:
            stack = lambda name: torch.stack([getattr(b, name) for b in branches]).contiguous()  # noqa: E731
            self.register_buffer("fused_thresholds", stack("threshold"), persistent=False)
            self.register_buffer("fused_words", stack("weight_words"), persistent=False)
            self.register_buffer("fused_params", stack("params"), persistent=False)
            self.register_buffer("fused_offsets", torch.tensor([b.channel_offset for b in branches], dtype=torch.int64),
                                 persistent=False)

    @classmethod
    def from_module(cls, unit: nn.Module) -> PackedUnit:
        """Pack a trained BiDRN unit with binary convolutions (it must be in eval mode's statistics:
        BatchNorm's running mean and variance are folded in)."""
        if not _is_packable_unit(unit):
            raise ValueError(f"unit must be an LCR, DScR, FUR, FDR or DSaR with binary convolutions; got {type(unit).__name__}")
        g, h = _batchnorm_affine(unit.bn)
        if isinstance(unit, (LCR, DScR)):
            tau = unit.tau if isinstance(unit, DScR) else 1
            return cls([_Branch(unit.residual, bn=(g, h))], unit.channels, tau, False, isinstance(unit, DScR))
        c = unit.residuals[0].conv.out_channels
        if isinstance(unit, FDR):  # the branches' sum: the last one completes every channel
            last = len(unit.residuals) - 1
            branches = [_Branch(r, channel_offset=k * c, shortcut_offset=k * c, accumulate=k > 0,
                                bn=(g, h) if k == last else None) for k, r in enumerate(unit.residuals)]
            return cls(branches, c, unit.tau, False, False)
        branches = [_Branch(r, out_offset=k * c, bn=(g[k * c : (k + 1) * c], h[k * c : (k + 1) * c]))
                    for k, r in enumerate(unit.residuals)]
        pooled = isinstance(unit, DSaR)
        return cls(branches, len(branches) * c, unit.tau, pooled, pooled)

    def forward(self, x: Tensor, post: Tensor | None = None) -> Tensor:
        x = _channels_last(x)
        pooled = _channels_last(_avg_pool(x, self.tau)) if self.pool_input or self.pool_shortcut else None
        src = pooled if self.pool_input else x
        shortcut = pooled if self.pool_shortcut else src
        first = self.branches[0]
        size = _output_size(src.shape[2:], first.kernel_size, first.stride, first.padding, first.dilation)
        out = _empty_out(src, self.out_channels, *size)
        kernels = _load_kernels() if self.fused else None
        if kernels is not None:
            threads = torch.get_num_threads()
            numba_backend.sync_threads(threads)
            words = self.fused_words
            work = out.numel() * (words.shape[1] + 8)
            kernels.unit_nhwc(_nhwc(src), self.fused_thresholds.numpy(), self.fused_offsets.numpy(), words.numpy(),
                              self.fused_params.numpy(), self.concat, post is not None,
                              _NONE if post is None else _nhwc(_channels_last(post)), _nhwc(out),
                              threads > 1 and work >= kernels.PARALLEL_WORK)
            return out
        for branch in self.branches:
            branch(src, shortcut, out, post)
        return out


class PackedBlock(nn.Module):
    """A BiDRN ResNet block (`hmrlab.nn.binary.BlockResidual`) of packed units:
    ``units(x) + AvgPool(x)`` with channels repeated, the shortcut added in the last unit's epilogue.
    (B, C_in, H, W) -> (B, C_out, H / stride, W / stride) float32, channels-last."""

    def __init__(self, units: list[PackedUnit], stride: int):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.stride = stride

    @classmethod
    def from_block(cls, block: BlockResidual) -> PackedBlock:
        return cls([PackedUnit.from_module(unit) for unit in block.units], block.stride)

    def forward(self, x: Tensor) -> Tensor:
        x = _channels_last(x)
        h = x
        for unit in self.units[:-1]:
            h = unit(h)
        shortcut = _channels_last(_avg_pool(x, self.stride // 2)) if self.stride > 1 else x
        return self.units[-1](h, post=shortcut)


def _pack_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, BlockResidual) and all(_is_packable_unit(u) for u in child.units):
            setattr(module, name, PackedBlock.from_block(child))
        elif _is_packable_unit(child):
            setattr(module, name, PackedUnit.from_module(child))
        elif (isinstance(child, BinaryConv2d) and is_binary_layer(child) and child.groups == 1
              and not isinstance(child.padding, str) and _bit_exact(child)):
            setattr(module, name, XnorConv2d.from_layer(child))
        elif isinstance(child, BinaryLinear) and is_binary_layer(child) and _bit_exact(child):
            setattr(module, name, XnorLinear.from_layer(child))
        else:
            _pack_children(child)


def pack_binary_network(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with its binary blocks, units and layers packed (`PackedBlock`,
    `PackedUnit`, `XnorConv2d`, `XnorLinear`); everything else (the real stem and heads, BatchNorms
    outside units, binary layers whose sign(0) is not +1) is kept. Its outputs equal ``model.eval()``'s up to float rounding, as long as no
    pre-activation lies within rounding of a sign threshold. Inference only (no gradients)."""
    packed = copy.deepcopy(model).eval()
    _pack_children(packed)
    return packed

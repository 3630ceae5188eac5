"""Bit-packed binary layers: ±1 weights and activations stored one bit each, dot products by XNOR-popcount.

A binary network's convolutions multiply ±1 activations by ±1 weights. Coding +1 as bit 1 and -1 as
bit 0, a product is +1 exactly when the two bits agree, i.e. when their XNOR is 1. For vectors of
``n`` such values (Rastegari et al., "XNOR-Net", ECCV 2016, Sec. 3.2)

    a · w = (#agreeing) - (#disagreeing) = 2 popcount(XNOR(a, w)) - n,

so 64 multiply-adds become one XNOR and one population count on a 64-bit word. This module does
that in plain torch on the CPU:

1. `pack_bits`: signs along the last dimension -> int64 words (64 values per word, 32x smaller than
   float32); `unpack_bits` inverts it;
2. `popcount`: set bits per word, by the classic bit-twiddling reduction on int64 lanes;
3. `xnor_dot`: ``2 popcount(XNOR) - n`` over the words, with a mask for values that are absent;
4. `xnor_linear` and `xnor_conv2d` (im2col with ``F.unfold``, then `xnor_dot` for every output
   position and filter): **integer outputs equal to** ``x @ w.T`` and ``F.conv2d(x, w)`` on ±1 tensors;
5. `PackedBinaryLinear` / `PackedBinaryConv2d`: layers that keep only the packed weights (and an
   optional per-output-channel scale, the XNOR-Net alpha) for inference.

Zero padding: ``F.conv2d`` pads a sign map with zeros, which are neither +1 nor -1. The padded spots
are carried as a second bit-plane (valid = 1) and masked out of the count, so
``a · w = 2 popcount(XNOR(a, w) AND valid) - popcount(valid)`` stays exact at the borders.

Speed, honestly: torch has no popcount instruction, and each of the ~10 word-wide torch operations
here reads and writes a whole (B, O, L, words) tensor from memory, whereas a float convolution is one
cache-blocked MKL/oneDNN GEMM using SIMD FMAs. So on a desktop CPU this pure-torch version is
*slower* than the float convolution (``benchmarks/bench_bitpack.py`` measures by how much). The
32x memory saving is real; the speed-up the paper quotes needs a fused kernel with hardware popcount
(daBNN on ARM NEON, Larq Compute Engine). `hmrlab.nn.xnor` (kernels in `hmrlab.nn.xnor_kernels`) is
that kernel for x86 and ARM CPUs, tested against this module, which stays the readable reference and
the fallback where numba cannot run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.nn.binary import binarize_weight
from hmrlab.validation import format_shape

__all__ = [
    "WORD_BITS", "pack_bits", "unpack_bits", "popcount", "xnor_dot", "xnor_linear", "xnor_conv2d",
    "PackedBinaryLinear", "PackedBinaryConv2d", "storage_bytes",
]

WORD_BITS = 64
_CHUNK_WORDS = 2**17  # 1 MB of int64 words per step of `_packed_conv`
_BYTE_BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def _check_signs(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of ±1 values; got {type(x).__name__}")
    if not bool(((x == 1) | (x == -1)).all()):
        raise ValueError(
            f"{name} must hold only +1 and -1 (binarize it first, e.g. torch.where(x >= 0, 1.0, -1.0)); "
            f"got values in [{x.min().item():g}, {x.max().item():g}]"
        )


def _pack_bools(bits: Tensor) -> Tensor:
    """(..., n) bool -> (..., ceil(n / 64)) int64; bit i of the row is bit i % 8 of byte i // 8."""
    n = bits.shape[-1]
    padding = -n % WORD_BITS  # unused bits are 0
    bits = F.pad(bits.to(torch.uint8), (0, padding)).unflatten(-1, (-1, 8))
    packed_bytes = (bits * _BYTE_BITS.to(bits.device)).sum(-1, dtype=torch.uint8)
    return packed_bytes.view(torch.int64)


def pack_bits(x: Tensor) -> Tensor:
    """Pack ±1 values along the last dimension into 64-bit words: (..., n) -> (..., ceil(n / 64)) int64.

    +1 becomes bit 1, -1 bit 0; the last word is padded with 0 bits. Storage: ``8 ceil(n / 64)``
    bytes a row instead of ``4 n`` for float32, 32x less when 64 divides n.
    """
    _check_signs(x, "x")
    return _pack_bools(x > 0)


def unpack_bits(words: Tensor, n: int) -> Tensor:
    """The inverse of `pack_bits`: (..., ceil(n / 64)) int64 -> (..., n) float32 of ±1."""
    if words.dtype != torch.int64 or words.ndim == 0 or words.shape[-1] != -(-n // WORD_BITS):
        raise ValueError(
            f"words must be int64 of shape (..., ceil(n / 64)) = (..., {-(-n // WORD_BITS)}) for n={n}; "
            f"got {words.dtype} {format_shape(tuple(words.shape))}"
        )
    words = words.contiguous()
    if words.stride(-1) != 1:  # a contiguous tensor's size-1 last dimension may carry any stride
        words = torch.empty(words.shape, dtype=words.dtype, device=words.device).copy_(words)
    packed_bytes = words.view(torch.uint8)
    bits = (packed_bytes[..., None] & _BYTE_BITS.to(words.device)) != 0  # (..., bytes, 8)
    return bits.flatten(-2)[..., :n].float() * 2 - 1


def popcount(words: Tensor) -> Tensor:
    """Number of set bits in each int64 word (two's complement for negative words): same shape, int64.

    The SWAR reduction ("sideways addition"): add neighbouring 1-bit fields into 2-bit counts, those
    into 4-bit counts, those into per-byte counts, then sum the 8 bytes. Each step masks after the
    shift, which also drops the copies of the sign bit that torch's arithmetic right shift of a
    negative int64 brings in.
    """
    if words.dtype != torch.int64:
        raise ValueError(f"words must be an int64 tensor; got {words.dtype}")
    x = words - ((words >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F  # every byte now holds its own count, 0 to 8
    return x.contiguous().view(torch.uint8).unflatten(-1, (-1, 8)).sum(-1, dtype=torch.int64)


def xnor_dot(a_words: Tensor, w_words: Tensor, n: int, valid_words: Tensor | None = None) -> Tensor:
    """Dot products of packed ±1 vectors, ``2 popcount(XNOR(a, w)) - n`` (XNOR-Net Eq. 4 on bits).

    a_words, w_words: (..., words) int64 from `pack_bits`, broadcast against each other; n: the number
    of values per vector (padding bits beyond n are ignored). valid_words: optional packed mask,
    broadcast like ``a_words``, of the values that exist (a 0 bit is a zero in the float tensor,
    e.g. zero padding): then ``2 popcount(XNOR AND valid) - popcount(valid)``. Returns (...) int64.
    """
    agree = ~(a_words ^ w_words)
    if valid_words is None:
        # The padding bits are 0 in both words, so their XNOR is 1: subtract them again.
        matches = popcount(agree).sum(-1) - (a_words.shape[-1] * WORD_BITS - n)
        return 2 * matches - n
    matches = popcount(agree & valid_words).sum(-1)
    return 2 * matches - popcount(valid_words).sum(-1)


def xnor_linear(x: Tensor, weight: Tensor) -> Tensor:
    """``x @ weight.T`` for ±1 tensors by XNOR-popcount: (B, n), (O, n) -> (B, O) int64, exact."""
    _check_signs(x, "x")
    _check_signs(weight, "weight")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x must have shape (B, n) and weight (O, n) with the same n; got {format_shape(tuple(x.shape))} "
            f"and {format_shape(tuple(weight.shape))}"
        )
    return xnor_dot(pack_bits(x)[:, None], pack_bits(weight)[None], x.shape[1])


def _conv_columns(x: Tensor, kernel_size: tuple[int, int], stride, padding, dilation) -> tuple[Tensor, Tensor | None]:
    """im2col of a ±1 map, packed: (B, C, H, W) -> words (B, L, words) and the valid-bit plane
    (B, L, words) when there is zero padding, else None. Column order matches ``weight.flatten(1)``."""
    columns = F.unfold(x, kernel_size, dilation=dilation, padding=padding, stride=stride).transpose(1, 2)
    words = _pack_bools(columns > 0)
    has_padding = any(p > 0 for p in ((padding,) if isinstance(padding, int) else padding))
    return words, (_pack_bools(columns != 0) if has_padding else None)


def _output_size(size: tuple[int, int], kernel_size, stride, padding, dilation) -> tuple[int, int]:
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    return tuple(
        (size[i] + 2 * padding[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def _packed_conv(
    x: Tensor, weight_words: Tensor, n: int, kernel_size: tuple[int, int], stride, padding, dilation,
    chunk: int | None = None,
) -> Tensor:
    """XNOR-popcount convolution of a ±1 map with packed filters (O, words): (B, O, H', W') int64."""
    columns, valid = _conv_columns(x, kernel_size, stride, padding, dilation)
    out_h, out_w = _output_size(tuple(x.shape[2:]), kernel_size, stride, padding, dilation)
    if chunk is None:
        # Each word-wide step reads and writes a (B, chunk, L, words) tensor: keeping it near 1 MB
        # (L2-cache sized) was 2x faster than all filters at once on a 256->256, 14x14 layer.
        chunk = max(1, _CHUNK_WORDS // columns[..., 0].numel() // columns.shape[-1])
    outputs = []
    for start in range(0, len(weight_words), chunk):
        w = weight_words[start : start + chunk, None]  # (o, 1, words)
        outputs.append(xnor_dot(columns[:, None], w, n, None if valid is None else valid[:, None]))
    return torch.cat(outputs, 1).unflatten(-1, (out_h, out_w))


def xnor_conv2d(
    x: Tensor,
    weight: Tensor,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    chunk: int | None = None,
) -> Tensor:
    """``F.conv2d(x, weight, ...)`` for ±1 tensors by XNOR-popcount, exact: (B, C, H, W) -> (B, O, H', W') int64.

    weight: (O, C, kh, kw) ±1. Zero padding counts as 0, as in the float convolution (module
    docstring). `chunk` filters are processed at a time (None: about 1 MB of words per step); it
    changes the speed and memory, not the result.
    """
    _check_signs(x, "x")
    _check_signs(weight, "weight")
    if x.ndim != 4 or weight.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x must have shape (B, C, H, W) and weight (O, C, kh, kw) with the same C; got "
            f"{format_shape(tuple(x.shape))} and {format_shape(tuple(weight.shape))}"
        )
    kernel_size = tuple(weight.shape[2:])
    return _packed_conv(x, pack_bits(weight.flatten(1)), weight[0].numel(), kernel_size, stride, padding, dilation, chunk)


def storage_bytes(*tensors: Tensor) -> int:
    """Bytes the tensors' elements take in memory (``numel * element_size``, summed)."""
    return sum(t.numel() * t.element_size() for t in tensors)


def _check_scale(scale: Tensor | None, out_features: int) -> Tensor | None:
    """A per-output-channel scale or bias (O,) as a float32 buffer, or None."""
    if scale is not None and tuple(scale.shape) != (out_features,):
        raise ValueError(f"scale and bias must have shape (O,) = ({out_features},), one per output; got {format_shape(tuple(scale.shape))}")
    return None if scale is None else scale.detach().float().clone()


class PackedBinaryLinear(nn.Module):
    """Inference-only binary linear layer holding packed ±1 weights: (B, n) ±1 -> (B, O) float.

    ``y = scale * (x · sign(W)) + bias`` with the dot product by `xnor_dot`; build it from a trained
    layer's real weight (O, n) (binarized here with sign(0) = +1, as `hmrlab.nn.binary.sign`), its
    per-output scale (O,) or None and bias (O,) or None, or with `from_layer`.
    """

    def __init__(self, weight: Tensor, scale: Tensor | None = None, bias: Tensor | None = None):
        super().__init__()
        if weight.ndim != 2:
            raise ValueError(f"weight must have shape (O, n); got {format_shape(tuple(weight.shape))}")
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.register_buffer("weight_words", _pack_bools(weight.detach() >= 0))
        self.register_buffer("scale", _check_scale(scale, self.out_features))
        self.register_buffer("bias", _check_scale(bias, self.out_features))

    @classmethod
    def from_layer(cls, layer: nn.Linear) -> PackedBinaryLinear:
        """The packed form of a trained `hmrlab.nn.binary.BinaryLinear` with binary weights: its signs,
        scales ``mean |W|`` (`hmrlab.nn.binary.binarize_weight`) and bias. It takes the ±1 input the
        layer's ``input_sign`` produces: ``packed(layer.input_sign(x)) == layer(x)``."""
        if not getattr(layer, "binary_weights", False):
            raise ValueError(f"layer must be a BinaryLinear with binary weights; got {type(layer).__name__}")
        _, scale = binarize_weight(layer.weight.detach())
        return cls(layer.weight, scale, layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_signs(x, "x")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape (B, {self.in_features}); got {format_shape(tuple(x.shape))}")
        out = xnor_dot(pack_bits(x)[:, None], self.weight_words[None], self.in_features).float()
        out = out if self.scale is None else out * self.scale
        return out if self.bias is None else out + self.bias


class PackedBinaryConv2d(nn.Module):
    """Inference-only binary convolution holding packed ±1 filters: (B, C, H, W) ±1 -> (B, O, H', W') float.

    ``y = scale[o] * conv(x, sign(W)) + bias[o]`` computed by `xnor_conv2d`'s packed path; weight:
    the real (O, C, kh, kw) filters of a trained layer (binarized with sign(0) = +1); scale, bias:
    (O,) or None. `from_layer` packs a `hmrlab.nn.binary.BinaryConv2d`.
    """

    def __init__(
        self,
        weight: Tensor,
        scale: Tensor | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: Tensor | None = None,
    ):
        super().__init__()
        if weight.ndim != 4:
            raise ValueError(f"weight must have shape (O, C, kh, kw); got {format_shape(tuple(weight.shape))}")
        self.out_channels, self.in_channels = weight.shape[:2]
        self.kernel_size = tuple(weight.shape[2:])
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.register_buffer("weight_words", _pack_bools(weight.detach().flatten(1) >= 0))
        self.register_buffer("scale", _check_scale(scale, self.out_channels))
        self.register_buffer("bias", _check_scale(bias, self.out_channels))

    @classmethod
    def from_layer(cls, layer: nn.Conv2d) -> PackedBinaryConv2d:
        """The packed form of a trained `hmrlab.nn.binary.BinaryConv2d` with binary weights (groups 1):
        signs, scales ``mean |W|``, bias, stride, padding, dilation. It takes the ±1 input the layer's
        ``input_sign`` produces: ``packed(layer.input_sign(x)) == layer(x)`` up to float rounding."""
        if not getattr(layer, "binary_weights", False) or layer.groups != 1 or isinstance(layer.padding, str):
            raise ValueError(
                "layer must be a BinaryConv2d with binary weights, groups=1 and numeric padding; got "
                f"{type(layer).__name__}"
            )
        _, scale = binarize_weight(layer.weight.detach())
        return cls(layer.weight, scale, layer.stride, layer.padding, layer.dilation, layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_signs(x, "x")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (B, {self.in_channels}, H, W); got {format_shape(tuple(x.shape))}")
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        out = _packed_conv(x, self.weight_words, n, self.kernel_size, self.stride, self.padding, self.dilation)
        out = out.float()
        out = out if self.scale is None else out * self.scale[:, None, None]
        return out if self.bias is None else out + self.bias[:, None, None]

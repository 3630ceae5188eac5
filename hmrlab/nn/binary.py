"""Binary neural networks: sign with surrogate gradients, binary layers, BiDRN's residual modules.

A binary convolution replaces real weights and activations by their signs, so that a
multiply-accumulate becomes an XNOR and a popcount (Hubara et al., "Binarized Neural Networks",
NeurIPS 2016; Rastegari et al., "XNOR-Net", ECCV 2016). This module builds, one step per function or
class, the pieces of BiDRN (Li et al., "Binarized 3D Whole-body Human Mesh Recovery"; equation numbers
refer to its appendix, the seed of this module):

1. Sign with a surrogate gradient (``sign_ste``, ``approx_sign``, ``tanh_sign``): the forward pass is
   ``sign``, the backward pass is the derivative of a smooth function that looks like it.
2. ``RSign`` (learnable threshold) and ``RPReLU`` (shift, PReLU, shift) from ReActNet (Liu et al., ECCV
   2020): they move the distribution an activation has before and after binarization.
3. ``BinaryConv2d`` / ``BinaryLinear``: sign of the input times sign of the weights, scaled per output
   channel by the mean absolute weight ``alpha = mean |W|`` (XNOR-Net's scale).
4. Units of one convolution, each adding one idea to the previous: ``BNNConv`` (sign, conv, BN),
   ``BiRealConv`` (plus an identity shortcut, Liu et al. ECCV 2018), ``LCR`` (BiDRN's Local Convolution
   Residual: RPReLU before the shortcut, BN after it), and LCR's four versions for changing shapes:
   ``DScR`` (Eq. 8), ``FUR`` (Eq. 9), ``FDR`` (Eq. 10), ``DSaR`` (Eqs. 11-12), general in tau.
5. ``BlockResidual`` (BR): the ResNet block's own shortcut around its units; ``BinaryResNet``,
   ``binary_resnet18`` (BiDRN's face backbone) and ``binary_resnet50`` (body and hands) follow the
   appendix's mapping table (Table 1).
6. ``count_ops``: parameters and operations in the field's convention, binary work divided by 64.

Conventions chosen here (the papers leave them open):

* ``sign(0) = +1``, so that a binary tensor holds only -1 and +1 (one bit each); ``torch.sign(0)`` is 0.
* Binary convolutions zero-pad their (+-1) input, as every PyTorch BNN does; a bit-packed kernel must
  treat the padding separately because 0 is not a bit value.
* Every "binary" network keeps its first convolution and last linear layer real (all the cited papers
  do). With ``binary=False`` the same architecture is built with real convolutions, and a Hardtanh
  (the "Hardtanh pre-activation" of the appendix's figures) takes the place of each sign.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab import complexity
from hmrlab.nn.backbones import ResNetLayout
from hmrlab.validation import check_exact_shape

__all__ = [
    "sign",
    "sign_ste",
    "approx_sign",
    "tanh_sign",
    "approx_sign_surrogate",
    "authors_binary_weight",
    "tanh_surrogate",
    "SURROGATES",
    "RSign",
    "RPReLU",
    "binarize_weight",
    "BinaryConv2d",
    "BinaryLinear",
    "BNNConv",
    "BiRealConv",
    "BaseResidual",
    "LCR",
    "DScR",
    "FUR",
    "FDR",
    "DSaR",
    "BlockResidual",
    "binary_unit",
    "BinaryBasicBlock",
    "BinaryBottleneck",
    "BinaryResNet",
    "binary_resnet18",
    "binary_resnet50",
    "BinaryComplexity",
    "is_binary_layer",
    "count_ops",
]

BLOCK_STYLES = ("bnn", "bireal", "bidrn")
REDISTRIBUTIONS = ("rprelu", "leakyrelu")
# A LeakyReLU with RPReLU's initial slope, so that Table 4's ablation changes only learnability.
LEAKY_SLOPE = 0.25


# ----------------------------------------------------------------------------------------------------
# 1. Sign and its surrogate gradients


def sign(x: Tensor) -> Tensor:
    """``+1`` where ``x >= 0``, ``-1`` elsewhere, same shape and dtype; no gradient (it is 0 a.e.)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def approx_sign_surrogate(x: Tensor) -> Tensor:
    """Bi-Real Net's piecewise polynomial F(x), a smooth stand-in for sign (Liu et al., ECCV 2018).

    ``-1`` below -1, ``x^2 + 2x`` on [-1, 0), ``-x^2 + 2x`` on [0, 1), ``1`` above; differentiable, with
    ``F'(x) = 2 + 2x`` on [-1, 0), ``2 - 2x`` on [0, 1) and 0 outside. Any shape.
    """
    x = x.clamp(-1.0, 1.0)
    return torch.where(x < 0, x * x + 2 * x, -x * x + 2 * x)


def tanh_surrogate(x: Tensor, slope: float = 2.0) -> Tensor:
    """``tanh(slope * x)``, the tanh stand-in for sign; ``slope = 2`` gives the same peak gradient
    (2 at 0) as `approx_sign_surrogate`. Any shape."""
    return torch.tanh(slope * x)


class _SignForward(torch.autograd.Function):
    """Forward sign, keeping x for a subclass's ``backward`` (the surrogate's derivative)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return sign(x)


class _SignSTE(_SignForward):
    """Forward sign; backward the straight-through estimator, the gradient of ``clamp(x, -1, 1)``."""

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _ApproxSign(_SignForward):
    """Forward sign; backward the derivative of `approx_sign_surrogate`, ``max(0, 2 - 2|x|)``."""

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (2 - 2 * x.abs()).clamp(min=0)


class _TanhSign(torch.autograd.Function):
    """Forward sign; backward the derivative of `tanh_surrogate`, ``slope (1 - tanh^2(slope x))``."""

    @staticmethod
    def forward(ctx, x: Tensor, slope: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return sign(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.slope * (1 - torch.tanh(ctx.slope * x) ** 2), None


def sign_ste(x: Tensor) -> Tensor:
    """`sign` of ``x`` (any shape) whose gradient is the straight-through estimator ``1{|x| <= 1}``
    (Hubara et al. 2016; sign(0) = +1)."""
    return _SignSTE.apply(x)


def approx_sign(x: Tensor) -> Tensor:
    """`sign` of ``x`` (any shape) whose gradient is ApproxSign's ``max(0, 2 - 2|x|)``: the
    "2nd-order approximation" BiDRN adopts (appendix D, Table 3; from Bi-Real Net)."""
    return _ApproxSign.apply(x)


def tanh_sign(x: Tensor, slope: float = 2.0) -> Tensor:
    """`sign` of ``x`` (any shape) whose gradient is that of ``tanh(slope x)``: the "tanh
    approximation" of BiDRN's Table 3 (the slope is not given there; 2 matches ApproxSign's peak)."""
    return _TanhSign.apply(x, slope)


SURROGATES: dict[str, Callable[[Tensor], Tensor]] = {
    "ste": sign_ste,
    "approx": approx_sign,
    "tanh": tanh_sign,
}


def _check_choice(value: str, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")


# ----------------------------------------------------------------------------------------------------
# 2. RSign and RPReLU (ReActNet)


def _per_channel(param: Tensor, x: Tensor, channel_dim: int) -> Tensor:
    """View a (C,) parameter so it broadcasts along ``channel_dim`` of ``x``."""
    shape = [1] * x.ndim
    shape[channel_dim] = -1
    return param.view(shape)


def _check_channels(x: Tensor, channels: int, channel_dim: int, name: str) -> None:
    if x.ndim < 2 or x.shape[channel_dim] != channels:
        layout = "(B, C, ...)" if channel_dim == 1 else "(..., C)"
        raise ValueError(
            f"{name} expects input of shape {layout} with C = {channels}; got {tuple(x.shape)}"
        )


class RSign(nn.Module):
    """Sign with a learnable per-channel threshold: ``sign(x - alpha_c)`` (ReActNet's RSign).

    Input ``(B, C, ...)`` (``channel_dim=1``, convolutions) or ``(..., C)`` (``channel_dim=-1``,
    linear layers); output the same shape, values in {-1, +1}. The gradient is that of the chosen
    ``surrogate`` (``"ste"``, ``"approx"`` or ``"tanh"``). With ``learnable=False`` the threshold is
    fixed at 0 (a plain sign, as in BNN and Bi-Real Net) and the module has no parameter.

    ``sign_of_zero`` is the output where ``x`` equals the threshold: +1 by default (module docstring);
    0 as ReActNet's code (``torch.sign``), whose learnable bias ``b`` is ``-threshold`` (it computes
    ``sign(x + b)``). The gradient is the surrogate's either way.
    """

    def __init__(self, channels: int, surrogate: str = "approx", *, learnable: bool = True, channel_dim: int = 1,
                 sign_of_zero: float = 1.0):
        super().__init__()
        _check_positive_int(channels, "channels")
        _check_choice(surrogate, "surrogate", SURROGATES)
        _check_choice(sign_of_zero, "sign_of_zero", (1.0, 0.0, -1.0))
        self.channels, self.surrogate, self.channel_dim = channels, surrogate, channel_dim
        self.sign_of_zero = float(sign_of_zero)
        self.threshold = nn.Parameter(torch.zeros(channels)) if learnable else None

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, self.channel_dim, "RSign")
        if self.threshold is not None:
            x = x - _per_channel(self.threshold, x, self.channel_dim)
        out = SURROGATES[self.surrogate](x)
        if self.sign_of_zero != 1.0:  # a constant correction: no gradient of its own
            out = out + (self.sign_of_zero - 1.0) * (x == 0).to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return f"{self.channels}, surrogate={self.surrogate!r}, learnable={self.threshold is not None}"


class RPReLU(nn.Module):
    """ReActNet's redistribution ``PReLU(x - gamma_c) + zeta_c`` with a per-channel slope.

    Input ``(B, C, ...)``; output the same shape. Shifts start at 0 and slopes at 0.25 (PReLU's
    default), so a new RPReLU is a PReLU.
    """

    def __init__(self, channels: int):
        super().__init__()
        _check_positive_int(channels, "channels")
        self.shift_in = nn.Parameter(torch.zeros(channels))
        self.prelu = nn.PReLU(channels, init=0.25)
        self.shift_out = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.shift_in.numel(), 1, "RPReLU")
        return self.prelu(x - _per_channel(self.shift_in, x, 1)) + _per_channel(self.shift_out, x, 1)


# ----------------------------------------------------------------------------------------------------
# 3. Binary convolution and linear layers


def binarize_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Signs and per-output-channel scales of a weight ``(O, ...)``: ``W ~ alpha_o * sign(W)``.

    Returns ``signs`` (same shape, in {-1, +1}, straight-through gradient) and ``scale`` ``(O,)``,
    ``alpha_o = mean |W_o|``, the scale that minimises ``||W_o - alpha_o sign(W_o)||^2`` (XNOR-Net,
    Sec. 3.1). The gradient reaches W through both, so the scale needs no separate rule.
    """
    scale = weight.abs().mean(dim=tuple(range(1, weight.ndim)))
    return sign_ste(weight), scale


def authors_binary_weight(weight: Tensor) -> Tensor:
    """``alpha_o sign(W)`` as ReActNet's and Bi-Real Net's ``HardBinaryConv`` compute it: (O, ...) -> same shape.

    The value is ``alpha_o torch.sign(W)`` (sign(0) = 0), the gradient that of ``clamp(W, -1, 1)``,
    ``1{|W| <= 1}``: the scale is detached and does not multiply the gradient (`binarize_weight`'s
    reaches W through the signs, times alpha_o, and through the scale). Written as their
    ``b.detach() - clamp(W).detach() + clamp(W)``, so that even the rounding is theirs.
    """
    scale = weight.abs().mean(dim=tuple(range(1, weight.ndim)), keepdim=True).detach()
    clipped = weight.clamp(-1.0, 1.0)
    return (scale * torch.sign(weight)).detach() - clipped.detach() + clipped


class _BinaryLayer:
    """Shared by `BinaryConv2d` and `BinaryLinear`: weight and input binarization flags."""

    binary_weights: bool
    binary_activations: bool

    def _setup_binary(
        self, in_channels: int, binary_weights: bool, binary_activations: bool, surrogate: str,
        learnable_threshold: bool, channel_dim: int, sign_of_zero: float = 1.0, weight_gradient: str = "scale",
    ) -> None:
        _check_choice(weight_gradient, "weight_gradient", ("scale", "authors"))
        self.binary_weights = binary_weights
        self.binary_activations = binary_activations
        self.weight_gradient = weight_gradient
        self.input_sign = (
            RSign(in_channels, surrogate, learnable=learnable_threshold, channel_dim=channel_dim,
                  sign_of_zero=sign_of_zero)
            if binary_activations
            else nn.Identity()
        )

    def binarized_weight(self) -> tuple[Tensor, Tensor]:
        """``(signs, scale)`` of the weight (see `binarize_weight`); signs shape like ``weight``."""
        return binarize_weight(self.weight)

    def effective_weight(self) -> Tensor:
        """The weight the layer multiplies by: ``alpha_o sign(W)`` if binary, else ``W``."""
        if not self.binary_weights:
            return self.weight
        if self.weight_gradient == "authors":
            return authors_binary_weight(self.weight)
        signs, scale = self.binarized_weight()
        return signs * scale.view(-1, *[1] * (signs.ndim - 1))

    @property
    def is_binary(self) -> bool:
        """True when both weights and inputs are binary, i.e. the layer runs as XNOR + popcount."""
        return self.binary_weights and self.binary_activations


class BinaryConv2d(_BinaryLayer, nn.Conv2d):
    """``alpha_o * (sign(x - t) conv sign(W))``: a convolution with binary inputs and weights.

    Arguments as ``nn.Conv2d`` (no bias by default). Input ``(B, in_channels, H, W)``; output
    ``(B, out_channels, H', W')`` as for ``nn.Conv2d``. The input passes through an `RSign`
    (``surrogate``, learnable threshold ``t`` unless ``learnable_threshold=False``) when
    ``binary_activations``; the weight is ``alpha_o sign(W)`` (`binarize_weight`) when
    ``binary_weights``. Both flags False gives a plain ``nn.Conv2d``. ReActNet's code is
    ``sign_of_zero=0.0`` (`RSign`) and ``weight_gradient="authors"`` (`authors_binary_weight`: the
    scale detached, the weight's gradient clipped); the defaults are the conventions of this module.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        binary_weights: bool = True,
        binary_activations: bool = True,
        surrogate: str = "approx",
        learnable_threshold: bool = True,
        sign_of_zero: float = 1.0,
        weight_gradient: str = "scale",
    ):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self._setup_binary(in_channels, binary_weights, binary_activations, surrogate, learnable_threshold, 1,
                           sign_of_zero, weight_gradient)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"BinaryConv2d expects input of shape (B, {self.in_channels}, H, W); got {tuple(x.shape)}"
            )
        return self._conv_forward(self.input_sign(x), self.effective_weight(), self.bias)


class BinaryLinear(_BinaryLayer, nn.Linear):
    """``alpha_o * (sign(x - t) . sign(W))``: a linear layer with binary inputs and weights.

    Arguments as ``nn.Linear``. Input ``(..., in_features)``; output ``(..., out_features)``. Flags and
    ``surrogate`` as for `BinaryConv2d`; the threshold is per input feature.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        binary_weights: bool = True,
        binary_activations: bool = True,
        surrogate: str = "approx",
        learnable_threshold: bool = True,
        sign_of_zero: float = 1.0,
        weight_gradient: str = "scale",
    ):
        nn.Linear.__init__(self, in_features, out_features, bias)
        self._setup_binary(in_features, binary_weights, binary_activations, surrogate, learnable_threshold, -1,
                           sign_of_zero, weight_gradient)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"BinaryLinear expects input of shape (..., {self.in_features}); got {tuple(x.shape)}"
            )
        return F.linear(self.input_sign(x), self.effective_weight(), self.bias)


def is_binary_layer(module: nn.Module) -> bool:
    """True for a `BinaryConv2d` / `BinaryLinear` whose weights and inputs are both binary."""
    return isinstance(module, _BinaryLayer) and module.is_binary


# ----------------------------------------------------------------------------------------------------
# 4. Units of one convolution
#
# The BiDRN modules (LCR, DScR, FUR, FDR, DSaR) pass ``**options`` to each of their `BaseResidual` s:
# ``binary`` (False: the full-precision twin), ``surrogate`` and ``redistribution``.


def _binary_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, *, binary: bool, surrogate: str,
    learnable_threshold: bool,
) -> nn.Module:
    """A square binary convolution with "same" padding, or, with ``binary=False``, Hardtanh then a real
    convolution of the same shape (the full-precision twin)."""
    conv = BinaryConv2d(
        in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
        binary_weights=binary, binary_activations=binary, surrogate=surrogate,
        learnable_threshold=learnable_threshold,
    )
    return conv if binary else nn.Sequential(nn.Hardtanh(), conv)


def _redistribution(name: str, channels: int) -> nn.Module:
    _check_choice(name, "redistribution", REDISTRIBUTIONS)
    return RPReLU(channels) if name == "rprelu" else nn.LeakyReLU(LEAKY_SLOPE)


def _avg_pool(x: Tensor, tau: int) -> Tensor:
    """``AvgPool_tau``: kernel and stride 2 tau; ``ceil_mode`` so an odd side matches a strided conv
    (ceil(H / 2 tau) either way), averaging only the pixels inside the map."""
    return F.avg_pool2d(x, 2 * tau, 2 * tau, ceil_mode=True, count_include_pad=False)


class BNNConv(nn.Module):
    """The plain binary unit: ``BN(BinaryConv(x))``, no shortcut (Hubara et al. 2016; Figs. 2-3, "BNN").

    ``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``. Plain sign
    (no learnable threshold) with the straight-through surrogate by default, as in the BNN paper.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
        binary: bool = True, surrogate: str = "ste",
    ):
        super().__init__()
        self.in_channels = in_channels
        self.conv = _binary_conv(
            in_channels, out_channels, kernel_size, stride, binary=binary, surrogate=surrogate,
            learnable_threshold=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        check_exact_shape(x, f"{type(self).__name__} input", ("B", self.in_channels, "H", "W"))
        return self.bn(self.conv(x))


class BiRealConv(BNNConv):
    """Bi-Real Net's unit: ``BN(BinaryConv(x)) + x`` (Liu et al. 2018, Fig. 1; seed Fig. 2).

    The real-valued shortcut needs equal input and output shapes; where they differ the BiDRN appendix's Fig. 3
    drops it (Bi-Real "cannot be applied"), so this unit is then a `BNNConv`. ApproxSign by default.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
        binary: bool = True, surrogate: str = "approx",
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, binary=binary, surrogate=surrogate)
        self.shortcut = in_channels == out_channels and stride == 1

    def forward(self, x: Tensor) -> Tensor:
        out = super().forward(x)
        return out + x if self.shortcut else out


class BaseResidual(nn.Module):
    """BiDRN's base residual (BaseLCR): ``o' = R(BinaryConv(x)) + x``, R = RPReLU (or LeakyReLU).

    ``(B, C_in, H, W) -> (B, C_out, H, W)`` with the shortcut ``shortcut`` (same shape as the output;
    ``x`` itself when None). No normalisation: the module using it applies BatchNorm once to the
    combined output, as Eqs. 8-12 write it.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
        binary: bool = True, surrogate: str = "approx", redistribution: str = "rprelu",
    ):
        super().__init__()
        self.conv = _binary_conv(
            in_channels, out_channels, kernel_size, stride, binary=binary, surrogate=surrogate,
            learnable_threshold=True,
        )
        self.redistribute = _redistribution(redistribution, out_channels)

    def forward(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        return self.redistribute(self.conv(x)) + (x if shortcut is None else shortcut)


class LCR(nn.Module):
    """Local Convolution Residual, same shape in and out: ``o' = BN(R(BinaryConv(a_f)) + a_f)``.

    ``(B, C, H, W) -> (B, C, H, W)``. BiDRN's identity layer (seed Fig. 2), the ``tau``-free base of
    Eqs. 8-12: the full-precision activation ``a_f`` skips every binary convolution.
    """

    def __init__(self, channels: int, kernel_size: int = 3, **options: Any):
        super().__init__()
        _check_positive_int(channels, "channels")
        self.channels = channels
        self.residual = BaseResidual(channels, channels, kernel_size, **options)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, a_f: Tensor) -> Tensor:
        check_exact_shape(a_f, "LCR input", ("B", self.channels, "H", "W"))
        return self.bn(self.residual(a_f))


class DScR(nn.Module):
    """General Down Scale Residual (Eq. 8): ``o' = BN(R(o) + AvgPool_tau(a_f))``.

    ``o`` is a binary convolution of stride 2 tau. ``(B, C, H, W) -> (B, C, ceil(H / 2tau),
    ceil(W / 2tau))``.
    """

    def __init__(self, channels: int, tau: int = 1, kernel_size: int = 3, **options: Any):
        super().__init__()
        _check_positive_int(channels, "channels")
        _check_positive_int(tau, "tau")
        self.channels, self.tau = channels, tau
        self.residual = BaseResidual(channels, channels, kernel_size, 2 * tau, **options)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, a_f: Tensor) -> Tensor:
        check_exact_shape(a_f, "DScR input", ("B", self.channels, "H", "W"))
        return self.bn(self.residual(a_f, _avg_pool(a_f, self.tau)))


class FUR(nn.Module):
    """General Fusion Up Residual (Eq. 9): ``o' = BN(Concat(o'_1, ..., o'_2tau))``.

    Each ``o'_k = R_k(BinaryConv_k(a_f)) + a_f`` is a `BaseResidual` with C outputs, so every output
    channel has a full-precision input channel to add. ``(B, C, H, W) -> (B, 2 tau C, H, W)``.
    """

    def __init__(self, channels: int, tau: int = 1, kernel_size: int = 1, **options: Any):
        super().__init__()
        _check_positive_int(channels, "channels")
        _check_positive_int(tau, "tau")
        self.channels, self.tau = channels, tau
        self.residuals = nn.ModuleList(
            BaseResidual(channels, channels, kernel_size, **options) for _ in range(2 * tau)
        )
        self.bn = nn.BatchNorm2d(2 * tau * channels)

    def forward(self, a_f: Tensor) -> Tensor:
        check_exact_shape(a_f, f"{type(self).__name__} input", ("B", self.channels, "H", "W"))
        shortcut = self._shortcut(a_f)
        return self.bn(torch.cat([residual(shortcut) for residual in self.residuals], dim=1))

    def _shortcut(self, a_f: Tensor) -> Tensor:
        """The full-precision map every base residual convolves and adds: the input itself."""
        return a_f


class FDR(nn.Module):
    """General Fusion Down Residual (Eq. 10): ``o' = BN(sum_k o'_k)``.

    The input is split channel-wise into 2 tau groups ``a_f^k`` of C / 2tau channels and
    ``o'_k = R_k(BinaryConv_k(a_f^k)) + a_f^k`` (the inverse of `FUR`, with as many weights as one
    C -> C / 2tau convolution). ``(B, C, H, W) -> (B, C / 2tau, H, W)``; C must divide by 2 tau.
    """

    def __init__(self, channels: int, tau: int = 1, kernel_size: int = 1, **options: Any):
        super().__init__()
        _check_positive_int(channels, "channels")
        _check_positive_int(tau, "tau")
        if channels % (2 * tau):
            raise ValueError(f"FDR needs channels divisible by 2 tau = {2 * tau}; got channels = {channels}")
        self.channels, self.tau = channels, tau
        group = channels // (2 * tau)
        self.residuals = nn.ModuleList(
            BaseResidual(group, group, kernel_size, **options) for _ in range(2 * tau)
        )
        self.bn = nn.BatchNorm2d(group)

    def forward(self, a_f: Tensor) -> Tensor:
        check_exact_shape(a_f, "FDR input", ("B", self.channels, "H", "W"))
        groups = a_f.chunk(2 * self.tau, dim=1)
        return self.bn(sum(residual(a_k) for residual, a_k in zip(self.residuals, groups)))


class DSaR(FUR):
    """General Down Sample Residual (Eqs. 11-12): ``o'_k = BaseLCR_k(AvgPool_tau(a_f))``,
    ``o' = BN(Concat(o'_1, ..., o'_2tau))``: `FUR` applied to the pooled map.

    The binary convolutions (stride 1) see the pooled map, whose full-precision values are also each
    base residual's shortcut. ``(B, C, H, W) -> (B, 2 tau C, ceil(H / 2tau), ceil(W / 2tau))``.
    """

    def __init__(self, channels: int, tau: int = 1, kernel_size: int = 3, **options: Any):
        super().__init__(channels, tau, kernel_size, **options)

    def _shortcut(self, a_f: Tensor) -> Tensor:
        return _avg_pool(a_f, self.tau)


def binary_unit(
    style: str, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, *,
    binary: bool = True, surrogate: str | None = None, redistribution: str = "rprelu",
) -> nn.Module:
    """The unit replacing one ResNet convolution ``in_channels -> out_channels`` of that stride.

    ``style`` ``"bnn"`` gives `BNNConv`, ``"bireal"`` `BiRealConv`, ``"bidrn"`` the BiDRN module the
    shapes call for, which is the rule behind the BiDRN appendix's mapping table (Table 1): equal shapes `LCR`;
    stride s = 2tau with equal channels `DScR`; stride 2tau with channels times 2tau `DSaR`; channels
    times 2tau `FUR`; channels divided by 2tau `FDR`. ``surrogate`` None takes each paper's own (STE
    for BNN, ApproxSign otherwise).
    """
    _check_choice(style, "style", BLOCK_STYLES)
    if style == "bnn":
        return BNNConv(in_channels, out_channels, kernel_size, stride, binary=binary, surrogate=surrogate or "ste")
    if style == "bireal":
        return BiRealConv(in_channels, out_channels, kernel_size, stride, binary=binary, surrogate=surrogate or "approx")
    options = dict(binary=binary, surrogate=surrogate or "approx", redistribution=redistribution)
    if stride == 1 and in_channels == out_channels:
        return LCR(in_channels, kernel_size, **options)
    if stride == 1 and out_channels % in_channels == 0 and (out_channels // in_channels) % 2 == 0:
        return FUR(in_channels, out_channels // in_channels // 2, kernel_size, **options)
    if stride == 1 and in_channels % out_channels == 0 and (in_channels // out_channels) % 2 == 0:
        return FDR(in_channels, in_channels // out_channels // 2, kernel_size, **options)
    if stride % 2 == 0 and in_channels == out_channels:
        return DScR(in_channels, stride // 2, kernel_size, **options)
    if stride % 2 == 0 and out_channels == stride * in_channels:
        return DSaR(in_channels, stride // 2, kernel_size, **options)
    raise ValueError(
        f"no BiDRN module maps {in_channels} -> {out_channels} channels at stride {stride}: channels and "
        "resolution must stay equal or change by a factor 2 tau (channels up by 2 tau with a stride of "
        "2 tau for DSaR)"
    )


# ----------------------------------------------------------------------------------------------------
# 5. Block residual and binarized ResNets


class BlockResidual(nn.Module):
    """BiDRN's Block Residual (BR): ``units(x) + shortcut(x)`` around a ResNet block's units.

    The shortcut is parameter-free: ``AvgPool_tau`` when the block has stride 2 tau, then the channels
    repeated ``out / in`` times, the same rule DSaR applies to its residual (Eqs. 11-12). The seed's
    mapping table gives no projection for BR; a real 1x1 projection (ResNet's) would add float
    operations, a binary one would drop the full-precision path. ``(B, C_in, H, W) -> (B, C_out,
    ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, units: nn.Sequential, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if out_channels % in_channels or (stride > 1 and stride % 2):
            raise ValueError(
                f"BlockResidual needs out_channels a multiple of in_channels and stride 1 or even; got "
                f"{in_channels} -> {out_channels}, stride {stride}"
            )
        self.units, self.in_channels, self.out_channels, self.stride = units, in_channels, out_channels, stride

    def shortcut(self, x: Tensor) -> Tensor:
        """The full-precision path: pooled to the output resolution, channels repeated."""
        if self.stride > 1:
            x = _avg_pool(x, self.stride // 2)
        return x.repeat(1, self.out_channels // self.in_channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        check_exact_shape(x, "BlockResidual input", ("B", self.in_channels, "H", "W"))
        return self.units(x) + self.shortcut(x)


class BinaryBasicBlock(BlockResidual):
    """ResNet-18's BasicBlock binarized: two 3x3 units (`binary_unit`) inside a `BlockResidual`.

    BiDRN: ``LCR, LCR``, or ``DSaR + LCR`` where the stage halves the resolution (Table 1, face).
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, style: str = "bidrn", **options: Any):
        units = nn.Sequential(
            binary_unit(style, in_channels, planes, 3, stride, **options),
            binary_unit(style, planes, planes, 3, 1, **options),
        )
        super().__init__(units, in_channels, planes, stride)


class BinaryBottleneck(BlockResidual):
    """ResNet-50's Bottleneck binarized: units 1x1 reduce, 3x3 (stride), 1x1 expand by 4, inside a
    `BlockResidual`. BiDRN: ``FDR + (LCR or DScR) + FUR``, the first block ``LCR + LCR + FUR``
    (Table 1, body and hands)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, style: str = "bidrn", **options: Any):
        units = nn.Sequential(
            binary_unit(style, in_channels, planes, 1, 1, **options),
            binary_unit(style, planes, planes, 3, stride, **options),
            binary_unit(style, planes, planes * self.expansion, 1, 1, **options),
        )
        super().__init__(units, in_channels, planes * self.expansion, stride)


class BinaryResNet(ResNetLayout):
    """A ResNet whose blocks are binarized by ``style`` (``"bnn"``, ``"bireal"`` or ``"bidrn"``).

    Stem as ResNet's (real 7x7/2 convolution, BN, 3x3/2 max-pool) with Hardtanh for ReLU (Table 1's
    "relu -> tanh"); stages of ``width * (1, 2, 4, 8)`` planes; global average pool; real linear
    classifier ``fc``. Stages and head are `hmrlab.nn.backbones.ResNetLayout`'s, the same code as
    `hmrlab.nn.backbones.ResNet`'s: ``forward(x)`` gives logits
    ``(B, num_classes)`` of images ``(B, 3, H, W)``, ``forward_features(x, stages)`` the maps of
    ``"stem"``, ``"layer1"`` ... ``"layer4"`` at strides 2, 4, 8, 16, 32. ``binary=False`` is the
    full-precision twin; ``surrogate`` and ``redistribution`` are the ablations of Tables 3-4.
    """

    def __init__(
        self,
        block: type[BinaryBasicBlock] | type[BinaryBottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        *,
        binary: bool = True,
        style: str = "bidrn",
        surrogate: str | None = None,
        redistribution: str = "rprelu",
        width: int = 64,
    ):
        super().__init__()
        _check_choice(style, "style", BLOCK_STYLES)
        _check_positive_int(width, "width")
        options = dict(style=style, binary=binary, surrogate=surrogate, redistribution=redistribution)
        self.binary, self.style = binary, style
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = nn.Hardtanh()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = width
        for i, (planes, blocks) in enumerate(zip((width, 2 * width, 4 * width, 8 * width), layers)):
            stage = []
            for j in range(blocks):
                stride = 2 if i > 0 and j == 0 else 1
                stage.append(block(in_channels, planes, stride, **options))
                in_channels = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, num_classes)
        self._set_feature_sizes(width, block.expansion)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stem(self, x: Tensor) -> Tensor:
        return self.act(self.bn1(self.conv1(x)))


def binary_resnet18(binary: bool = True, *, num_classes: int = 1000, **options: Any) -> BinaryResNet:
    """Binarized ResNet-18 (BiDRN's face backbone): `BinaryBasicBlock` x (2, 2, 2, 2).

    ``options``: ``style``, ``surrogate``, ``redistribution``, ``width`` of `BinaryResNet`.
    ``binary=False``: the same architecture in full precision.
    """
    return BinaryResNet(BinaryBasicBlock, (2, 2, 2, 2), num_classes, binary=binary, **options)


def binary_resnet50(binary: bool = True, *, num_classes: int = 1000, **options: Any) -> BinaryResNet:
    """Binarized ResNet-50 (BiDRN's body and hand backbone): `BinaryBottleneck` x (3, 4, 6, 3).

    ``options`` and ``binary`` as for `binary_resnet18`.
    """
    return BinaryResNet(BinaryBottleneck, (3, 4, 6, 3), num_classes, binary=binary, **options)


# ----------------------------------------------------------------------------------------------------
# 6. Parameters and operations in the field's convention


@dataclass(frozen=True)
class BinaryComplexity:
    """Parameters and multiply-accumulates of one forward pass, split into binary and real.

    Binary: weights of binary layers (`is_binary_layer`) and their MACs, which run as XNOR + popcount;
    real: everything else `hmrlab.complexity.measure` counts. The field's convention (XNOR-Net,
    Bi-Real Net, ReActNet, BiDRN) reports ``params = real + binary / 32`` (32-bit words of storage)
    and ``ops = real MACs + binary MACs / 64`` (a 64-bit CPU does 64 binary MACs per instruction);
    "FLOPs" there means MACs.
    """

    params_binary: int
    params_real: int
    macs_binary: int
    macs_real: int

    @property
    def params(self) -> float:
        """Parameters in 32-bit equivalents, ``params_real + params_binary / 32``."""
        return self.params_real + self.params_binary / 32

    @property
    def ops(self) -> float:
        """Operations, ``macs_real + macs_binary / 64``."""
        return self.macs_real + self.macs_binary / 64


def count_ops(module: nn.Module, *inputs: Tensor) -> BinaryComplexity:
    """Count ``module(*inputs)`` (one forward, eval mode, through `hmrlab.complexity.measure`) in the
    binary-network convention of `BinaryComplexity`.

    The total MACs come from one measurement of the whole module; each binary layer is then measured
    alone on the input it received, and those MACs are moved from the real to the binary count. Pass
    the resolution the paper uses, e.g. ``torch.zeros(1, 3, 224, 224)``.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"count_ops needs an nn.Module; got {type(module).__name__}")
    binary_layers = [m for m in module.modules() if is_binary_layer(m)]
    seen: list[tuple[nn.Module, Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append((m, args[0]))) for m in binary_layers]
    try:
        total = complexity.measure(module, *inputs)
    finally:
        for hook in hooks:
            hook.remove()
    macs_binary = sum(complexity.measure(layer, x).macs for layer, x in seen)
    params_binary = sum(m.weight.numel() for m in binary_layers)
    return BinaryComplexity(
        params_binary=params_binary,
        params_real=total.params - params_binary,
        macs_binary=macs_binary,
        macs_real=total.macs - macs_binary,
    )

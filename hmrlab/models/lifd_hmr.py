"""LIFD-HMR (arXiv 2510.18267), stage 1: the LIFD-Extractor and its ablation without the wavelet split.

"Latent-Info and Low-Dimensional Learning for Human Mesh Recovery and Parallel Optimization" recovers
meshes from 16-frame clips. Its first stage, the Latent Information Frequency Domain Extractor, turns
each frame's backbone feature map ``F`` (ResNet-50) into hybrid features ``F'_hybrid``:

1. ``cA, (cH, cV, cD) = DWT(F)``: one level of a 2-D wavelet transform (`hmrlab.wavelets`); the low
   band ``cA`` holds the coarse layout (where the body and its parts are), the high bands the edges.
2. ``cA' = attention(cA)``: global context; the tokens are the spatial positions of the low band.
3. ``cH', cV', cD' = convolution(cH, cV, cD)``: local detail, a small convolution block per band.
4. ``F'_hybrid = IDWT(cA', (cH', cV', cD'))``: back to the map's size.

Each frame's ``F'_hybrid`` is then averaged over positions into one vector for the temporal stage
(a MixSTE-style pose estimator and GRU in the paper; later notebooks). Both blocks are residual and
the IDWT is linear, so ``F'_hybrid = F + IDWT(a(cA), 0) + IDWT(0, c(cH, cV, cD))``: the frequency split
decides *where* each update is computed, not how the updates are combined. `DirectExtractor`, the
paper's "w/o DWT" ablation (its Table III), computes the same updates on the undecomposed map,
``F + a(F) + c(F)``, with exactly the same parameters and more MACs (attention over 4x the tokens).

The paper does not state these choices; they are arguments, with these defaults:

* ``in_channels=2048`` (ResNet-50 ``layer4``) projected to ``channels=256`` by a 1x1 convolution, so
  that attention over 2048 channels does not dominate the cost;
* ``wavelet="haar"``, ``mode="symmetric"`` (PyWavelets' default; for Haar equal to periodization);
  an odd map is transformed with its last row/column repeated and cropped back after the IDWT;
* ``heads=8`` and an MLP of ``mlp_ratio=2`` times the channels in the attention block (pre-norm
  transformer block, no positional encoding: the residual keeps each token at its place);
* the convolution block is ``x + conv1x1(GELU(BN(conv_kxk(x))))`` with ``kernel_size=3``, and one
  block (shared weights) serves the three high bands, as a convolution shares its weights over
  positions; this is also what keeps the ablation at the same parameter count;
* per-frame pooling is the mean over positions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import pywt
import torch
from torch import Tensor, nn

from hmrlab.backbones import Backbone
from hmrlab.wavelets import DWT2d, IDWT2d

__all__ = ["AttentionBlock", "ConvBlock", "HybridExtractor", "LIFDExtractor", "DirectExtractor", "clip_features"]


def _check_map(x: Tensor, channels: int, name: str = "features") -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (N, {channels}, H, W); got {shape}")


class AttentionBlock(nn.Module):
    """Pre-norm transformer block over the positions of a map: ``(N, C, h, w) -> (N, C, h, w)``.

    The ``h w`` positions are the tokens: ``t = t + MHA(LN(t))``, then ``t = t + MLP(LN(t))`` with a
    GELU MLP of width ``mlp_ratio * C`` (Vaswani et al. 2017, pre-norm as in ViT). Parameters:
    ``4 C^2 + 2 m C + 9 C + m`` with ``m = mlp_ratio * C``; MACs for ``L = h w`` tokens:
    ``L (4 C^2 + 2 m C) + 2 L^2 C``.
    """

    def __init__(self, channels: int, heads: int = 8, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        hidden = round(mlp_ratio * channels)
        self.channels = channels
        self.norm1 = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        _check_map(x, self.channels, "x")
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (N, h w, C)
        query = self.norm1(tokens)
        tokens = tokens + self.attention(query, query, query, need_weights=False)[0]
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(n, c, h, w)


class ConvBlock(nn.Module):
    """Residual convolution block ``x + conv1x1(GELU(BN(conv_kxk(x))))``: ``(N, C, h, w) -> (N, C, h, w)``.

    Parameters: ``(k^2 + 1) C^2 + 3 C`` (the k x k convolution has no bias, BatchNorm's scale and
    shift, the 1x1 convolution's bias); MACs: ``h w (k^2 + 1) C^2``.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive (so the map keeps its size); got {kernel_size}")
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.GELU()
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        _check_map(x, self.channels, "x")
        return x + self.mix(self.act(self.norm(self.conv(x))))


class HybridExtractor(nn.Module, ABC):
    """What the LIFD-Extractor and its ablation share: a 1x1 projection, an `AttentionBlock`, a
    `ConvBlock`, and per-frame pooling. Subclasses say where the blocks run (`mix`).

    Call it on a clip's backbone features ``(B, T, in_channels, H, W)`` to get one vector per frame
    ``(B, T, channels)``; `hybrid` gives the maps before pooling.
    """

    def __init__(
        self,
        in_channels: int = 2048,
        channels: int = 256,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        # No projection when the sizes already agree, so the blocks see the backbone's map itself.
        self.project = nn.Identity() if in_channels == channels else nn.Conv2d(in_channels, channels, 1)
        self.attention = AttentionBlock(channels, heads, mlp_ratio)
        self.convolution = ConvBlock(channels, kernel_size)

    @abstractmethod
    def mix(self, x: Tensor) -> Tensor:
        """Hybrid features ``(N, channels, H, W)`` of projected maps ``(N, channels, H, W)``."""

    def hybrid(self, features: Tensor) -> Tensor:
        """``F'_hybrid``: backbone maps ``(N, in_channels, H, W) -> (N, channels, H, W)``."""
        _check_map(features, self.in_channels)
        return self.mix(self.project(features))

    def forward(self, features: Tensor) -> Tensor:
        """Per-frame vectors ``(B, T, channels)`` of a clip's backbone maps ``(B, T, in_channels, H, W)``:
        the mean over positions of each frame's `hybrid` features."""
        if not isinstance(features, Tensor) or features.dim() != 5 or features.shape[2] != self.in_channels:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"features must have shape (B, T, {self.in_channels}, H, W), a clip's backbone maps "
                f"(see clip_features); got {shape}"
            )
        frames = self.hybrid(features.flatten(0, 1))
        return frames.mean(dim=(-2, -1)).unflatten(0, features.shape[:2])


class LIFDExtractor(HybridExtractor):
    """The LIFD-Extractor of LIFD-HMR: attention on the DWT's low band, convolution on its high bands.

    ``mix``: ``cA, (cH, cV, cD) = DWT(x)``, attention on ``cA``, the convolution block on each of
    ``cH, cV, cD``, then the IDWT, cropped to the input's ``(H, W)`` (odd sizes add one row/column).
    Arguments as in the module docstring; ``wavelet`` is any name of ``pywt.wavelist(kind="discrete")``.
    """

    def __init__(
        self,
        in_channels: int = 2048,
        channels: int = 256,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        kernel_size: int = 3,
        wavelet: str | pywt.Wavelet = "haar",
        mode: str = "symmetric",
    ) -> None:
        super().__init__(in_channels, channels, heads, mlp_ratio, kernel_size)
        self.dwt = DWT2d(wavelet, mode)
        self.idwt = IDWT2d(wavelet, mode)

    def mix(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        low, highs = self.dwt(x)
        low = self.attention(low)
        # The three bands as one batch through the shared convolution block.
        highs = self.convolution(torch.cat(highs)).chunk(3)
        return self.idwt((low, highs))[..., :height, :width]


class DirectExtractor(HybridExtractor):
    """The ablation "w/o DWT": the same blocks as `LIFDExtractor` on the undecomposed map.

    ``mix(x) = x + a(x) + c(x)`` where ``attention(x) = x + a(x)`` and ``convolution(x) = x + c(x)``:
    the two residual updates in parallel, as the LIFD-Extractor combines them. Same parameters;
    the attention sees all ``H W`` positions instead of ``ceil(H/2) ceil(W/2)``.
    """

    def mix(self, x: Tensor) -> Tensor:
        return self.attention(x) + self.convolution(x) - x


def clip_features(backbone: Backbone, clips: Tensor, stage: str = "layer4") -> Tensor:
    """Backbone maps of every frame: clips ``(B, T, 3, H, W) -> (B, T, C, ceil(H/s), ceil(W/s))``.

    ``C = backbone.feature_channels[stage]`` and ``s = backbone.feature_strides[stage]`` (2048 and 32
    for ResNet-50's ``layer4``, the map LIFD-HMR transforms).
    """
    if not isinstance(clips, Tensor) or clips.dim() != 5 or clips.shape[2] != 3:
        shape = tuple(clips.shape) if isinstance(clips, Tensor) else type(clips).__name__
        raise ValueError(f"clips must have shape (B, T, 3, H, W); got {shape}")
    maps = backbone.forward_features(clips.flatten(0, 1), stage)[stage]
    return maps.unflatten(0, clips.shape[:2])

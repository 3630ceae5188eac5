"""RTPCA's temporal pyramid compression-and-amplification (TPCA) on a stream of temporal tokens.

From "Refined Temporal Pyramidal Compression-and-Amplification Transformer for 3D Human Pose
Estimation" (Liu et al., arXiv 2309.01365). The keys and the values of a temporal
attention pass through a pyramid: they are compressed by adaptive average pooling to
``L_1 = T // r``, ``L_2 = L_1 // r``, ..., ``L_D`` frames (`pyramid_lengths`, `compress`) and
amplified back, coarsest first, by stride-r transposed depthwise convolutions, adding at each level
the pooled tokens of that level (skip) and, at the top, the tokens themselves (residual):
``U_D = P_D``, ``U_{l-1} = P_{l-1} + up_l(U_l)``, ``K' = U_0`` with ``P_0 = K`` (`amplify`).

The paper gives these steps in words only; choices made here:

* the pyramid lengths are floors (``T // r``), so that a stride-r transposed convolution reaches the
  finer length exactly (it adds ``T - r (T // r) < r`` frames of output padding); any ``T >= r^D``
  works, e.g. 243 -> 121 -> 60 -> 30 with the reference ``r = 2``, ``D = 3``;
* a transposed convolution has kernel r, stride r, one filter per channel (depthwise), and starts as
  nearest-neighbour upsampling (weights 1, bias 0), so that an untrained TPCA is the plain sum of the
  pyramid's levels, each repeated back to T frames.

The model that uses it is `hmrlab.models.rtpca.RTPCA`: a pyramid each is the ``key_transform`` and
the ``value_transform`` of its temporal blocks' `hmrlab.nn.attention.Attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.validation import format_shape

__all__ = ["TemporalPyramid", "amplify", "compress", "pyramid_lengths"]


def pyramid_lengths(frames: int, depth: int, ratio: int) -> list[int]:
    """Lengths ``[T, T // r, T // r^2, ..., T // r^D]`` of the TPCA pyramid (D + 1 levels).

    Floors, so that a stride-r transposed convolution of level l + 1 can reach level l exactly.
    Raises ValueError when the coarsest level would be empty (``T < r^D``).
    """
    if depth < 1 or ratio < 2:
        raise ValueError(f"the pyramid needs depth >= 1 and ratio >= 2; got depth={depth}, ratio={ratio}")
    lengths = [frames]
    for _ in range(depth):
        lengths.append(lengths[-1] // ratio)
    if lengths[-1] < 1:
        raise ValueError(
            f"T = {frames} frames is too short for a pyramid of depth {depth} and ratio {ratio}: it needs "
            f"T >= ratio**depth = {ratio**depth}. Use longer clips, a smaller depth or a smaller ratio."
        )
    return lengths


def compress(x: Tensor, lengths: Sequence[int]) -> list[Tensor]:
    """TPCA's compression: the levels ``P_0 = x, P_l = AdaptiveAvgPool(P_{l-1}) to lengths[l]``.

    x (N, C, L) with ``L = lengths[0]`` -> [(N, C, lengths[0]), (N, C, lengths[1]), ...]. Each
    level averages the frames of the finer one, so it keeps the slow part of the signal.
    """
    if x.shape[-1] != lengths[0]:
        raise ValueError(f"x must have shape (N, C, {lengths[0]}); got {format_shape(tuple(x.shape))}")
    levels = [x]
    for length in lengths[1:]:
        levels.append(F.adaptive_avg_pool1d(levels[-1], length))
    return levels


def amplify(levels: Sequence[Tensor], upsample: Sequence[nn.ConvTranspose1d]) -> Tensor:
    """TPCA's amplification: ``U_D = P_D``, ``U_{l-1} = P_{l-1} + up_l(U_l)``; returns ``U_0``.

    levels: the D + 1 outputs of `compress`, (N, C, L_l) each; upsample: D layers, ``upsample[l]``
    taking level l + 1 to level l. The added ``P_l`` are the pyramid's skip connections, ``P_0`` its
    residual. -> (N, C, L_0).
    """
    if len(upsample) != len(levels) - 1:
        raise ValueError(f"amplify needs one upsampling layer per level below the top; got {len(upsample)} "
                         f"layers for {len(levels)} levels")
    amplified = levels[-1]
    for level, up in zip(reversed(levels[:-1]), reversed(upsample)):
        amplified = level + up(amplified, output_size=[level.shape[-1]])
    return amplified


class TemporalPyramid(nn.Module):
    """TPCA on one stream of temporal tokens (keys or values): (N, T, C) -> (N, T, C).

    `compress` to ``T // r, ..., T // r^depth`` frames, then `amplify` with ``depth`` transposed
    depthwise convolutions (kernel r, stride r), initialised as nearest-neighbour upsampling.
    Parameters: ``(r + 1) C depth``; MACs per sequence: ``r C (L_1 + ... + L_D)`` (each coarse frame
    becomes r frames; pooling and additions are elementwise and `hmrlab.complexity` does not count them).
    """

    def __init__(self, dim: int, depth: int = 3, ratio: int = 2) -> None:
        super().__init__()
        pyramid_lengths(ratio**depth, depth, ratio)  # checks depth and ratio
        self.depth, self.ratio = depth, ratio
        self.upsample = nn.ModuleList(
            nn.ConvTranspose1d(dim, dim, ratio, stride=ratio, groups=dim) for _ in range(depth)
        )
        for up in self.upsample:
            nn.init.ones_(up.weight)
            nn.init.zeros_(up.bias)

    def forward(self, x: Tensor) -> Tensor:
        levels = compress(x.transpose(1, 2), pyramid_lengths(x.shape[1], self.depth, self.ratio))
        return amplify(levels, self.upsample).transpose(1, 2)

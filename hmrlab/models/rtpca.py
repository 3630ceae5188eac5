"""RTPCA: MixSTE with a temporal pyramid on every temporal attention and cross-layer refinement.

"Refined Temporal Pyramidal Compression-and-Amplification Transformer for 3D Human Pose Estimation"
(Liu et al., arXiv 2309.01365). RTPCA changes only MixSTE's temporal attention
(`hmrlab.models.mixste.MixSTE`):

* **TPCA** (`hmrlab.nn.pyramid.TemporalPyramid`): the keys and the values of a temporal block pass
  through a pyramid that compresses them to ``T // r, ..., T // r^D`` frames and amplifies them back.
* **XLR** (cross-layer refinement): every temporal block after the first also attends to the
  previous temporal block's refined keys and values, pooled to ``L_D`` frames and concatenated onto
  its own: ``softmax(Q [K'; pool(K'_prev)]^T / sqrt(d)) [V'; pool(V'_prev)]``.

Choices the paper leaves open: keys and values have their own pyramid (no shared weights); the query
is not compressed; XLR uses the previous block's keys and values *after* its TPCA, pooled to ``L_D``
frames, with gradients flowing through them; the first temporal block has no previous block and no
XLR. Losses, flip test and sequence lifting are MixSTE's (`hmrlab.models.mixste`).

In code, both are options of the one `hmrlab.nn.attention.Attention`: TPCA is a temporal block's
``key_transform`` and ``value_transform``, XLR its ``memory``; `MixSTE.forward_with_attention` shows
the weights over the ``T + T // r^D`` keys.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from hmrlab.models.mixste import MixSTE
from hmrlab.nn.attention import AttentionOutput, TransformerBlock
from hmrlab.nn.pyramid import TemporalPyramid, pyramid_lengths

__all__ = ["RTPCA"]


class RTPCA(MixSTE):
    """RTPCA (arXiv 2309.01365): MixSTE whose temporal blocks use TPCA on K, V and XLR across blocks.

    Arguments as `MixSTE`, plus ``pyramid_depth`` D and ``ratio`` r of the `TemporalPyramid` (the
    authors' T/2, T/4, T/8 is D = 3, r = 2), and switches for the ablations: ``tpca=False`` removes
    the pyramids, ``xlr=False`` the cross-layer keys (``tpca=True, xlr=False`` is "STE+TPCA").
    Clips need ``T >= r^D`` frames; XLR appends ``T // r^D`` pooled keys to every temporal block
    after the first.
    """

    def __init__(
        self,
        num_joints: int = 17,
        in_features: int = 2,
        out_features: int = 3,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        frames: int = 243,
        dropout: float = 0.0,
        pyramid_depth: int = 3,
        ratio: int = 2,
        xlr: bool = True,
        tpca: bool = True,
    ) -> None:
        pyramid_lengths(frames, pyramid_depth, ratio)  # fail early with the message about lengths
        self.pyramid_depth, self.ratio, self.xlr, self.tpca = pyramid_depth, ratio, xlr, tpca
        super().__init__(num_joints, in_features, out_features, dim, depth, heads, mlp_ratio, frames, dropout)

    def _temporal_block(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> TransformerBlock:
        """MixSTE's temporal block; with TPCA, a `TemporalPyramid` each on its attention's keys and values."""
        if not self.tpca:
            return super()._temporal_block(dim, heads, mlp_ratio, dropout)
        return TransformerBlock(
            dim, heads, mlp_ratio, dropout,
            key_transform=TemporalPyramid(dim, self.pyramid_depth, self.ratio),
            value_transform=TemporalPyramid(dim, self.pyramid_depth, self.ratio),
        )

    def _memory(self, attended: AttentionOutput, frames: int) -> tuple[Tensor, Tensor] | None:
        """XLR: this block's refined keys and values (N, T, C), pooled to ``T // r^D`` frames."""
        if not self.xlr:
            return None
        length = pyramid_lengths(frames, self.pyramid_depth, self.ratio)[-1]
        return tuple(F.adaptive_avg_pool1d(s.transpose(1, 2), length).transpose(1, 2)
                     for s in (attended.keys, attended.values))

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        pyramid_lengths(x.shape[1], self.pyramid_depth, self.ratio)

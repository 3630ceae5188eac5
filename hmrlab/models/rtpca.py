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

`RTPCAAuthors` is instead the model of the authors' code (their ``common/model_cross.py``, class
``MixSTE2``), quirks included, so that their checkpoints load (`hmrlab.models.authors.from_authors`)
and give their outputs; its docstring lists where that code departs from the paper's text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.models.mixste import MixSTE
from hmrlab.nn.attention import Attention, AttentionOutput, TransformerBlock
from hmrlab.nn.pyramid import TemporalPyramid, pyramid_lengths

__all__ = ["RTPCA", "RTPCAAuthors", "AuthorsTemporalPyramid", "AuthorsTemporalAttention"]


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


# ---------------------------------------------------------------------------------------------------
# The authors' code (hbing-l/RTPCA, common/model_cross.py, MixSTE2), for their checkpoints
# ---------------------------------------------------------------------------------------------------


class AuthorsTemporalPyramid(nn.Module):
    """The authors' TPCA on normed temporal tokens (N, T, C) -> (N, T, C), for one fixed T = ``frames``.

    Unlike `TemporalPyramid` (the paper's text) it runs on the tokens *before* the key/value projection
    (one pyramid shared by K and V) and normalises every level over time: with ``L = pyramid_lengths(T, 3,
    2)`` = ``[T, T // 2, T // 4, T // 8]``, ``P_0 = x``, ``P_l = GELU(LN_{L_l}(AvgPool_{L_l}(P_{l-1})))``;
    then, coarsest first, ``A_3 = P_3``, ``A_l = GELU(LN_{L_l}(up_l(A_{l+1}))) + P_l``; returns ``A_0``.
    The LayerNorms are over the *time* axis (``LN_L`` has L weights), so the module only takes clips of
    exactly ``frames`` frames. ``up_l`` are stride-2 depthwise transposed convolutions whose kernel
    ``L_l - 2 L_{l+1} + 2`` (2 or 3) reaches ``L_l`` exactly: 2, 3, 3 for the authors' T = 243
    (243 -> 121 -> 60 -> 30), the sizes they hard-wire; any ``T >= 8`` works here.
    State dict: ``down_norms.0..2`` (their ``norm1..3``), ``up.0..2`` and ``up_norms.0..2`` (their
    ``up1..3``, ``upnorm1..3``, coarsest first).
    """

    def __init__(self, dim: int, frames: int) -> None:
        super().__init__()
        self.lengths = pyramid_lengths(frames, 3, 2)
        finer = self.lengths[2::-1]  # the lengths the upsampling reaches, coarsest first
        self.down_norms = nn.ModuleList(nn.LayerNorm(length) for length in self.lengths[1:])
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(dim, dim, length - 2 * coarse + 2, stride=2, groups=dim)
            for length, coarse in zip(finer, self.lengths[:0:-1])
        )
        self.up_norms = nn.ModuleList(nn.LayerNorm(length) for length in finer)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != self.lengths[0]:
            raise ValueError(f"x must have shape (N, {self.lengths[0]}, C) (the authors' pyramid is built for one T); "
                             f"got {tuple(x.shape)}")
        levels = [x.transpose(1, 2)]
        for length, norm in zip(self.lengths[1:], self.down_norms):
            levels.append(F.gelu(norm(F.adaptive_avg_pool1d(levels[-1], length))))
        amplified = levels[-1]
        for up, norm, skip in zip(self.up, self.up_norms, levels[2::-1]):
            amplified = F.gelu(norm(up(amplified))) + skip
        return amplified.transpose(1, 2)


class AuthorsTemporalAttention(Attention):
    """The authors' temporal attention: queries from the tokens, keys and values from ``LN(TPCA(tokens))``.

    ``Attention.attend(x, context=LN_C(AuthorsTemporalPyramid(x)), memory=memory)``: the pyramid and a
    LayerNorm over channels (their ``norm4``, eps 1e-5) make the context, which the separate ``k`` and
    ``v`` projections (their fused ``kv``) take; ``q`` sees the tokens unchanged. (N, T, C) -> (N, T, C).
    """

    def __init__(self, dim: int, heads: int, frames: int, dropout: float = 0.0) -> None:
        super().__init__(dim, heads, dropout=dropout)
        self.pyramid = AuthorsTemporalPyramid(dim, frames)
        self.context_norm = nn.LayerNorm(dim)

    def attend(
        self, x: Tensor, context: Tensor | None = None, *, memory: tuple[Tensor, Tensor] | None = None
    ) -> AttentionOutput:
        if context is not None:
            raise ValueError("AuthorsTemporalAttention makes its own context from x; pass context=None")
        return super().attend(x, self.context_norm(self.pyramid(x)), memory=memory)


class RTPCAAuthors(MixSTE):
    """RTPCA as the authors' code builds it (hbing-l/RTPCA ``MixSTE2``): (B, T, J, 2) -> (B, T, J, 3), T = frames.

    MixSTE (`MixSTE` with ``norm_eps=1e-6``, the authors' blocks' eps) whose every temporal block's
    attention is `AuthorsTemporalAttention`, with these departures from the paper's text (and from `RTPCA`):

    * TPCA acts on the block's normed tokens before the key/value projection, one pyramid for K and V,
      with a LayerNorm over time and a GELU after every pooling and upsampling, and a LayerNorm over
      channels after it (`AuthorsTemporalPyramid`); the first temporal block has it too;
    * XLR: block ``i >= 1`` also attends to ``T // 8`` keys and values pooled from *everything* block
      ``i - 1`` attended to, its own keys and its memory together (``AvgPool_{T//8}([K_{i-1}; M_{i-1}])``);
    * after every temporal block but the first the residual stream is doubled (their ``x_list.append(x);
      x += x_list[-1]`` adds the tensor to itself), which the next LayerNorm mostly undoes;
    * the spatial blocks are plain MixSTE blocks; the authors' spatial attentions also hold pyramid
      weights they never use (63,408 parameters at the published size), which the loader drops.

    Clips must have exactly ``frames`` frames (the pyramid's LayerNorms over time have ``frames``
    weights; the authors also add the whole temporal embedding), ``frames >= 8``; their checkpoints are
    ``frames = 243``. At the published size (dim 512, depth 8) it has 33,847,219 parameters, the
    authors' 33,910,627 less the unused ones. State dict: `MixSTE`'s, and in ``temporal_blocks.i.attention``
    ``pyramid`` and ``context_norm`` (`hmrlab.models.authors` maps the authors' names).
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
        norm_eps: float = 1e-6,
    ) -> None:
        pyramid_lengths(frames, 3, 2)  # fail early with the message about lengths
        super().__init__(num_joints, in_features, out_features, dim, depth, heads, mlp_ratio, frames, dropout, norm_eps)

    def _temporal_block(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> TransformerBlock:
        block = TransformerBlock(dim, heads, mlp_ratio, dropout)
        block.attention = AuthorsTemporalAttention(dim, heads, self.frames, dropout)
        return block

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        if x.shape[1] != self.frames:
            raise ValueError(f"RTPCAAuthors takes clips of exactly frames = {self.frames} frames (its pyramid "
                             f"normalises over time); got T = {x.shape[1]}. Use lift_sequence for longer sequences")

    def _lift(self, x: Tensor, keep_attention: bool) -> tuple[Tensor, list[AttentionOutput]]:
        self.check_input(x)
        b, t, j, _ = x.shape
        x = F.dropout(self.embed(x) + self.spatial_position, self.dropout, self.training)
        memory, kept = None, []
        for i, (spatial, temporal) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            x = self.spatial_norm(spatial(x.reshape(b * t, j, -1)))
            x = x.reshape(b, t, j, -1).transpose(1, 2).reshape(b * j, t, -1)
            if i == 0:
                x = F.dropout(x + self.temporal_position, self.dropout, self.training)
            x, attended = temporal.attend(x, memory=memory)
            x = self.temporal_norm(x)
            if i > 0:
                x = 2 * x  # the authors' x += x_list[-1], x_list[-1] being x itself
            seen = (attended.keys, attended.values)
            if memory is not None:
                seen = tuple(torch.cat(pair, 1) for pair in zip(seen, memory))
            memory = tuple(F.adaptive_avg_pool1d(s.transpose(1, 2), t // 8).transpose(1, 2) for s in seen)
            if keep_attention:
                kept.append(attended)
            x = x.reshape(b, j, t, -1).transpose(1, 2)
        return self.head(x), kept

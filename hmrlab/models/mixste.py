"""MixSTE, the seq2seq 2D-to-3D lifting transformer, with its losses, flip test and sequence lifting.

MixSTE ("MixSTE: Seq2seq Mixed Spatio-Temporal Encoder for 3D Human Pose Estimation in Video",
Zhang et al., CVPR 2022, arXiv 2203.00859) lifts a clip of 2D poses ``(B, T, J, 2)`` to 3D ``(B, T, J, 3)``
with ``depth`` pairs of transformer blocks that alternate two views of the same tokens ``(B, T, J, C)``:

* a **spatial** block, where the J joints of one frame attend to each other (``(B T, J, C)``);
* a **temporal** block, where the T frames of one joint attend to each other (``(B J, T, C)``).

Learned positional embeddings (one per joint, one per frame) are added once, before the first
spatial and the first temporal block; a LayerNorm and a linear head give every frame's 3D pose.

Both kinds of block are `hmrlab.nn.attention.TransformerBlock` (pre-norm, GELU MLP); RTPCA
(`hmrlab.models.rtpca`) gives its temporal blocks' attention a pyramid on the keys and values and
the previous block's keys as extra memory.

Losses are MixSTE's: the per-joint weighted MPJPE (`weighted_mpjpe`), a temporal consistency term on
the prediction's frame-to-frame differences (`temporal_consistency`) and the velocity error
(`hmrlab.metrics.mpjve`), combined by `lifting_loss`. `flip_test` averages a prediction with the
mirrored prediction of the mirrored input; `lift_sequence` runs a clip model over a long sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.body.skeletons import H36M_17
from hmrlab.geometry import mirror_poses
from hmrlab.metrics import mpjve
from hmrlab.nn.attention import AttentionOutput, TransformerBlock
from hmrlab.validation import check_points, format_shape

__all__ = [
    "H36M_JOINT_WEIGHTS",
    "MixSTE",
    "flip_test",
    "lift_sequence",
    "lifting_loss",
    "temporal_consistency",
    "weighted_mpjpe",
]

H36M_JOINT_WEIGHTS = (1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0)
"""MixSTE's per-joint loss weights for `H36M_17` (limb ends, i.e. ankles, wrists and elbows, weigh most)."""


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------


class MixSTE(nn.Module):
    """MixSTE (Zhang et al., CVPR 2022): 2D pose clips (B, T, J, in_features) -> 3D (B, T, J, out_features).

    ``depth`` alternating spatial/temporal `TransformerBlock` pairs of width ``dim`` (module
    docstring); clips may be shorter than ``frames`` (the temporal positional embedding is sliced).
    Defaults are the paper's Human3.6M setting (dim 512, depth 8, 8 heads, MLP ratio 2, 243 frames);
    inputs are normalized screen coordinates, outputs root-relative metres when trained on
    `LiftingWindows`. `forward_with_attention` also returns every temporal block's attention.

    State dict, against the authors' ``MixSTE2`` checkpoints (timm-style names): ``embed`` is their
    ``Spatial_patch_to_embedding``; ``spatial_position``/``temporal_position`` their
    ``Spatial_pos_embed``/``Temporal_pos_embed``; ``spatial_blocks.i``/``temporal_blocks.i`` their
    ``STEblocks.i``/``TTEblocks.i``, in which ``norm1``, ``norm2`` keep their names, ``mlp.0``/``mlp.3``
    are ``mlp.fc1``/``mlp.fc2``, ``attention.out`` is ``attn.proj`` and ``attention.q``, ``.k``, ``.v``
    are the three row blocks of their fused ``attn.qkv`` (``qkv.weight.chunk(3)``, Q first; the heads
    are split the same way); ``spatial_norm``/``temporal_norm`` their ``Spatial_norm``/``Temporal_norm``;
    ``head`` keeps its name. Their blocks' and views' LayerNorms are built with ``eps=1e-6``, and so
    are ours by default (``norm_eps``; the head's stays at PyTorch's 1e-5, as theirs); their blocks
    also drop paths (stochastic depth) while training. `hmrlab.models.authors.from_authors` loads their state dicts.
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
        super().__init__()
        if min(num_joints, in_features, out_features, dim, depth, heads, frames) < 1:
            raise ValueError("num_joints, in_features, out_features, dim, depth, heads and frames must be >= 1")
        self.num_joints, self.in_features, self.frames, self.dropout = num_joints, in_features, frames, dropout
        self.embed = nn.Linear(in_features, dim)
        self.spatial_position = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.temporal_position = nn.Parameter(torch.zeros(1, frames, dim))
        self.spatial_blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.temporal_blocks = nn.ModuleList(self._temporal_block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        # One norm per view, shared by all blocks of that view, as in MixSTE.
        self.spatial_norm = nn.LayerNorm(dim)
        self.temporal_norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_features))
        # The authors' blocks and views normalise with eps 1e-6 (``norm_eps``), their head with 1e-5.
        for block in (*self.spatial_blocks, *self.temporal_blocks):
            block.norm1.eps = block.norm2.eps = norm_eps
        self.spatial_norm.eps = self.temporal_norm.eps = norm_eps
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.spatial_position, std=0.02)
        nn.init.trunc_normal_(self.temporal_position, std=0.02)

    def _temporal_block(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> TransformerBlock:
        return TransformerBlock(dim, heads, mlp_ratio, dropout)

    def _memory(self, attended: AttentionOutput, frames: int) -> tuple[Tensor, Tensor] | None:
        """What the next temporal block attends to besides its own tokens: nothing in MixSTE."""
        return None

    def check_input(self, x: Tensor) -> None:
        """ValueError unless x is (B, T, num_joints, in_features) with B >= 1 and 1 <= T <= frames, of
        the weights' floating dtype, or of any floating dtype under `torch.autocast` (which casts it).
        Nothing is converted silently: integer, boolean and complex inputs are refused, and a float16
        or float64 clip for float32 weights outside autocast too (convert it with ``x.float()``)."""
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[2:] != (self.num_joints, self.in_features):
            raise ValueError(f"x must have shape (B, T, {self.num_joints}, {self.in_features}); got {shape}")
        if x.shape[0] == 0:
            raise ValueError(f"x has batch size B = 0 (shape {shape}); pass at least one clip")
        weights = self.embed.weight.dtype
        if not x.dtype.is_floating_point:
            raise ValueError(f"x must hold real floating-point coordinates (dtype {weights}); got dtype {x.dtype}. "
                             "Convert it with x.float()")
        if x.dtype != weights and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(f"x has dtype {x.dtype} but the model's weights are {weights}; convert it with "
                             f"x.to({weights}), or run the model under torch.autocast")
        if not 1 <= x.shape[1] <= self.frames:
            raise ValueError(
                f"x has T = {x.shape[1]} frames but the model has positional embeddings for 1..{self.frames}; "
                "split the sequence (lift_sequence) or build the model with a larger frames"
            )

    def forward(self, x: Tensor) -> Tensor:
        """2D pose clips (B, T, J, in_features) -> 3D poses (B, T, J, out_features)."""
        return self._lift(x, keep_attention=False)[0]

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, list[AttentionOutput]]:
        """`forward`'s poses and each temporal block's `AttentionOutput`, first block first: its
        ``weights`` (B J, heads, T, keys), where keys is T plus the memory (RTPCA's XLR), and its keys
        and values (B J, T, dim). For inspection: under ``torch.no_grad`` the kept maps cost memory
        that `forward` frees block by block."""
        return self._lift(x, keep_attention=True)

    def _lift(self, x: Tensor, keep_attention: bool) -> tuple[Tensor, list[AttentionOutput]]:
        self.check_input(x)
        b, t, j, _ = x.shape
        x = F.dropout(self.embed(x) + self.spatial_position, self.dropout, self.training)
        memory, kept = None, []
        for i, (spatial, temporal) in enumerate(zip(self.spatial_blocks, self.temporal_blocks)):
            x = self.spatial_norm(spatial(x.reshape(b * t, j, -1)))
            x = x.reshape(b, t, j, -1).transpose(1, 2).reshape(b * j, t, -1)  # joints' trajectories
            if i == 0:
                x = F.dropout(x + self.temporal_position[:, :t], self.dropout, self.training)
            x, attended = temporal.attend(x, memory=memory)
            x = self.temporal_norm(x)
            memory = self._memory(attended, t)
            if keep_attention:
                kept.append(attended)
            x = x.reshape(b, j, t, -1).transpose(1, 2)
        return self.head(x), kept


def _init_weights(module: nn.Module) -> None:
    # ViT's initialisation, which MixSTE uses; RTPCA's pyramids keep their upsampling initialisation.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------------
# Losses, test-time augmentation, long sequences
# ---------------------------------------------------------------------------------------------------


def _joint_weights(weights: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """(J,) weights as a tensor on ``like``'s device and dtype, checked against its J (..., J, 3)."""
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device)
    if w.shape != like.shape[-2:-1]:
        raise ValueError(
            f"joint weights must have shape (J,) = ({like.shape[-2]},) to match poses "
            f"{format_shape(tuple(like.shape))}; "
            f"got {format_shape(tuple(w.shape))}"
        )
    return w


def weighted_mpjpe(pred: Tensor, target: Tensor, weights: Sequence[float] | Tensor = H36M_JOINT_WEIGHTS) -> Tensor:
    """Weighted MPJPE, MixSTE's position loss: ``mean over poses and joints of w_j |pred_j - target_j|``.

    pred, target (..., J, 3); weights (J,), by default `H36M_JOINT_WEIGHTS`. The mean is over the J
    joints (not divided by the sum of the weights), so all-ones weights give the plain MPJPE.
    Units: those of the input.
    """
    check_points(pred, "pred", dims=("J",))
    check_points(target, "target", dims=("J",))
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape; got {format_shape(tuple(pred.shape))} "
                         f"and {format_shape(tuple(target.shape))}")
    return (_joint_weights(weights, pred) * torch.linalg.vector_norm(pred - target, dim=-1)).mean()


def temporal_consistency(pred: Tensor, weights: Sequence[float] | Tensor = H36M_JOINT_WEIGHTS) -> Tensor:
    """MixSTE's temporal consistency loss: ``mean over t, j, xyz of w_j (x_{t+1,j} - x_{t,j})^2``.

    pred (..., T, J, 3) with T >= 2; it penalises the prediction's own frame-to-frame motion (no
    target), limb ends more (weights (J,), default `H36M_JOINT_WEIGHTS`). Units: input units squared.
    """
    check_points(pred, "pred", dims=("T", "J"))
    if pred.shape[-3] < 2:
        raise ValueError(f"pred needs T >= 2 frames in (..., T, J, 3); got {format_shape(tuple(pred.shape))}")
    steps = torch.diff(pred, dim=-3)
    return (_joint_weights(weights, pred)[:, None] * steps.square()).mean()


def lifting_loss(
    pred: Tensor,
    target: Tensor,
    *,
    joint_weights: Sequence[float] | Tensor = H36M_JOINT_WEIGHTS,
    consistency_weight: float = 0.5,
    velocity_weight: float = 2.0,
) -> dict[str, Tensor]:
    """MixSTE's and RTPCA's training loss ``L = L_wmpjpe + 0.5 L_tc + 2.0 L_mpjve`` with its parts.

    pred, target (B, T, J, 3). Returns a dict for `hmrlab.training.loop.fit`: ``loss`` (the sum) and the
    terms ``wmpjpe`` (`weighted_mpjpe`), ``tc`` (`temporal_consistency`) and ``mpjve``
    (`hmrlab.metrics.mpjve`), unweighted. The weights are the reference ones by default.
    """
    terms = {
        "wmpjpe": weighted_mpjpe(pred, target, joint_weights),
        "tc": temporal_consistency(pred, joint_weights),
        "mpjve": mpjve(pred, target),
    }
    return {"loss": terms["wmpjpe"] + consistency_weight * terms["tc"] + velocity_weight * terms["mpjve"], **terms}


def flip_test(model: nn.Module, x: Tensor, flip_permutation: Sequence[int] | np.ndarray | None = None) -> Tensor:
    """Flip test-time augmentation: the mean of ``model(x)`` and ``mirror(model(mirror(x)))``.

    x (B, T, J, 2) normalized screen coordinates -> (B, T, J, 3). ``mirror`` negates x and swaps
    left and right joints (`flip_permutation`, default ``H36M_17.flip_permutation``), exactly as
    `hmrlab.data.datasets.LiftingWindows` flips training items; a model that had learnt the body's
    symmetry perfectly would give the same answer on both, so averaging removes part of its error.
    """
    permutation = H36M_17.flip_permutation if flip_permutation is None else flip_permutation  # checked by mirror_poses
    return (model(x) + mirror_poses(model(mirror_poses(x, permutation)), permutation)) / 2


def lift_sequence(model: MixSTE, poses_2d: Tensor, *, flip: bool = False, batch_size: int = 16) -> Tensor:
    """Lift a whole sequence (T, J, 2) -> (T, J, 3) with a clip model, in clips of ``model.frames``.

    Like MixSTE's evaluation: the sequence is cut into consecutive clips of ``F = model.frames``
    frames, the last one ending at the sequence's end (so it overlaps the previous clip, whose
    predictions it replaces there). A sequence shorter than F is lifted in one clip. With ``flip``
    every clip goes through `flip_test` (H36M_17's symmetry). Runs in the model's current mode;
    call ``model.eval()`` and ``torch.no_grad()`` for inference.
    """
    check_points(poses_2d, "poses_2d", dims=("T", "J"), last_dim=2)
    if poses_2d.dim() != 3:
        raise ValueError(f"poses_2d must have shape (T, J, 2); got {format_shape(tuple(poses_2d.shape))}")
    lift = (lambda clips: flip_test(model, clips)) if flip else model
    frames, length = model.frames, poses_2d.shape[0]
    if length <= frames:
        return lift(poses_2d[None])[0]
    starts = list(range(0, length - frames + 1, frames))
    if starts[-1] + frames < length:
        starts.append(length - frames)
    clips = torch.stack([poses_2d[s : s + frames] for s in starts])
    lifted = torch.cat([lift(chunk) for chunk in clips.split(batch_size)])
    out = poses_2d.new_empty(length, poses_2d.shape[1], lifted.shape[-1])
    for start, clip in zip(starts, lifted):
        out[start : start + frames] = clip
    return out

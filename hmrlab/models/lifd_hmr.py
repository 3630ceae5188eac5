"""LIFD-HMR (arXiv 2510.18267): the LIFD-Extractor (stage 1), LDMP (stage 2) and the full model.

"Latent-Info and Low-Dimensional Learning for Human Mesh Recovery and Parallel Optimization" recovers
meshes from 16-frame clips. Its first stage, the Latent Information Frequency Domain Extractor, turns
each frame's backbone feature map ``F`` (ResNet-50) into hybrid features ``F'_hybrid``:

1. ``cA, (cH, cV, cD) = DWT(F)``: one level of a 2-D wavelet transform (`hmrlab.nn.wavelets`); the low
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

Its second stage, the Low-Dimensional Mesh-Pose module (`LDMP`), refines the 3D joints of a
MixSTE-style pose estimator and grows a coarse mesh M_I (431 vertices) from them, in a pose branch
and a mesh branch that exchange information through pooled cross-attention (LCP) and refine
themselves through pooled self-attention (LSP, both in `hmrlab.nn.attention`), conditioned on shared
GRU features of the clip; the two branches of a layer are independent and can run in parallel.
M_I is upsampled to the full mesh M_F by the body model's fixed matrix, and the joints are
regressed from M_F. `LIFDHMR` assembles everything; its docstring lists the choices made where the
paper is silent (taken from PMCE, whose co-evolution decoder "Coevoblock" LDMP replaces).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import NamedTuple

import numpy as np
import pywt
import torch
from torch import Tensor, nn

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import regress_joints
from hmrlab.models.mixste import MixSTE
from hmrlab.nn.attention import LCP, LSP, TransformerBlock
from hmrlab.nn.backbones import Backbone, resnet18, resnet34, resnet50
from hmrlab.nn.wavelets import DWT2d, IDWT2d
from hmrlab.validation import check_exact_shape

__all__ = [
    "AttentionBlock",
    "ConvBlock",
    "HybridExtractor",
    "LIFDExtractor",
    "DirectExtractor",
    "clip_features",
    "nearest_joint",
    "LDMPBranch",
    "LDMP",
    "LIFDHMROutput",
    "LIFDHMR",
    "lifd_hmr",
]


class AttentionBlock(TransformerBlock):
    """`hmrlab.nn.attention.TransformerBlock` over the positions of a map: ``(N, C, h, w) -> (N, C, h, w)``.

    The ``h w`` positions are the tokens ``t`` (N, h w, C): ``t = t + MHA(LN(t))``, then
    ``t = t + MLP(LN(t))`` with a GELU MLP of width ``m = int(mlp_ratio C)`` (Vaswani et al. 2017,
    pre-norm as in ViT); the map is reshaped to tokens and back, nothing else. Parameters:
    ``4 C^2 + 2 m C + 9 C + m``; MACs for ``L = h w`` tokens: ``L (4 C^2 + 2 m C) + 2 L^2 C``.
    """

    def __init__(self, channels: int, heads: int = 8, mlp_ratio: float = 2.0) -> None:
        super().__init__(channels, heads, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        check_exact_shape(x, "x", ("N", self.channels, "H", "W"))
        n, c, h, w = x.shape
        tokens = super().forward(x.flatten(2).transpose(1, 2))  # (N, h w, C)
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
        check_exact_shape(x, "x", ("N", self.channels, "H", "W"))
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
        check_exact_shape(features, "features", ("N", self.in_channels, "H", "W"))
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


# ---------------------------------------------------------------------------------------------------
# Stage 2: LDMP, the low-dimensional mesh-pose module, and the full model
# ---------------------------------------------------------------------------------------------------


def nearest_joint(vertices: Tensor, joints: Tensor) -> Tensor:
    """Index of the closest joint of every vertex: ``(V, 3), (J, 3) -> (V,)`` (int64).

    PMCE (and LDMP here) starts each coarse-mesh vertex at the 3D position of its nearest joint of
    the template, so the mesh branch begins from a skeleton-shaped point cloud.
    """
    if not isinstance(vertices, Tensor) or vertices.dim() != 2 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape (V, 3); got {tuple(getattr(vertices, 'shape', ()))}")
    if not isinstance(joints, Tensor) or joints.dim() != 2 or joints.shape[-1] != 3:
        raise ValueError(f"joints must have shape (J, 3); got {tuple(getattr(joints, 'shape', ()))}")
    return torch.cdist(vertices, joints).argmin(dim=1)


class LDMPBranch(nn.Module):
    """One branch of one LDMP layer: tokens ``(B, N, C)`` updated from the other branch's ``(B, M, C)``.

    Pre-norm, residual, in the order of PMCE's co-evolution block (cross-attention then
    self-attention, each followed by an MLP of width ``mlp_ratio * C``), with the shared GRU
    context ``(B, D)`` added to every token first::

        x = x + W_c context
        x = x + LCP(LN(x), LN(other));  x = x + MLP(LN(x))
        x = x + LSP(LN(x));             x = x + MLP(LN(x))

    LCP pools the other branch's ``M`` tokens to ``ceil(M / token_ratio)``, LSP this branch's to
    ``ceil(N / token_ratio)``; both pool Q and K to ``C / channel_ratio`` channels (`hmrlab.nn.attention`).
    ``channel_ratio = token_ratio = 1`` is standard attention: the Coevoblock-like baseline.
    MACs per batch element: ``D C`` (context) ``+ attention_macs(N, M, C, c_low, m_low)``
    ``+ attention_macs(N, N, C, c_low, n_low) + 4 N C m`` (two MLPs of width ``m``).
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        tokens: int,
        other_tokens: int,
        context_dim: int,
        mlp_ratio: float = 4.0,
        channel_ratio: int = 4,
        token_ratio: int = 4,
    ) -> None:
        super().__init__()
        if channel_ratio < 1 or token_ratio < 1 or channels % channel_ratio:
            raise ValueError(
                f"channel_ratio and token_ratio must be positive and channel_ratio must divide channels ({channels}); "
                f"got {channel_ratio} and {token_ratio}"
            )
        c_low = channels // channel_ratio
        hidden = round(mlp_ratio * channels)
        self.condition = nn.Linear(context_dim, channels)
        self.norm_query, self.norm_other = nn.LayerNorm(channels), nn.LayerNorm(channels)
        self.cross = LCP(channels, heads, c_low, math.ceil(other_tokens / token_ratio))
        self.norm_cross_mlp = nn.LayerNorm(channels)
        self.cross_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.norm_self = nn.LayerNorm(channels)
        self.self_attention = LSP(channels, heads, c_low, math.ceil(tokens / token_ratio))
        self.norm_self_mlp = nn.LayerNorm(channels)
        self.self_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: Tensor, other: Tensor, context: Tensor) -> Tensor:
        x = x + self.condition(context)[:, None]
        x = x + self.cross(self.norm_query(x), self.norm_other(other))
        x = x + self.cross_mlp(self.norm_cross_mlp(x))
        x = x + self.self_attention(self.norm_self(x))
        return x + self.self_mlp(self.norm_self_mlp(x))


class LDMP(nn.Module):
    """Low-dimensional mesh-pose module: 3D joints + GRU context -> refined joints and coarse mesh.

    ``forward(joints (B, J, 3), context (B, D)) -> (joints (B, J, 3), vertices (B, V, 3))``, metres.
    The coarse vertices start at their nearest joint (``vertex_joint``, see `nearest_joint`), joints
    and vertices are embedded to ``channels`` features (plus a learned embedding per token), and
    ``depth`` layers each run a pose branch (joint tokens; LCP over the vertices, then LSP) and a mesh
    branch (vertex tokens; LCP over the joints, then LSP), both reading the previous layer's tokens
    and the same context: the two branches are independent, so ``parallel=True`` runs the mesh branch
    concurrently (a second thread on CPU, a second CUDA stream on a GPU) with the same result.
    Linear heads give offsets added to the input joints and the initial vertices.

    Defaults follow PMCE's co-evolution decoder (ICCV 2023; the "Coevoblock" of LIFD-HMR's
    comparison): 64 channels for joints and vertices, 8 heads for joints, 2 for vertices, MLP ratio 4,
    3 layers, a 2048-wide context (its bidirectional GRU of hidden size 1024). ``channel_ratio`` and
    ``token_ratio`` are LIFD-HMR's pooling (C_low = C / channel_ratio, N_low = N / token_ratio);
    both 1 give the standard-attention baseline with identical parameters.
    """

    def __init__(
        self,
        vertex_joint: Tensor,
        num_joints: int = 17,
        channels: int = 64,
        joint_heads: int = 8,
        vertex_heads: int = 2,
        depth: int = 3,
        mlp_ratio: float = 4.0,
        context_dim: int = 2048,
        channel_ratio: int = 4,
        token_ratio: int = 4,
    ) -> None:
        super().__init__()
        vertex_joint = torch.as_tensor(vertex_joint)
        if vertex_joint.dim() != 1 or vertex_joint.dtype != torch.int64 or not 0 <= int(vertex_joint.min()) <= int(vertex_joint.max()) < num_joints:
            raise ValueError(
                f"vertex_joint must be a (V,) int64 tensor of joint indices in [0, {num_joints}) (see nearest_joint); "
                f"got {tuple(vertex_joint.shape)} {vertex_joint.dtype}"
            )
        if depth < 1:
            raise ValueError(f"depth must be at least 1; got {depth}")
        self.num_joints, self.num_vertices, self.context_dim = num_joints, len(vertex_joint), context_dim
        self.register_buffer("vertex_joint", vertex_joint)
        self.joint_embed, self.vertex_embed = nn.Linear(3, channels), nn.Linear(3, channels)
        self.joint_position = nn.Parameter(torch.zeros(1, num_joints, channels))
        self.vertex_position = nn.Parameter(torch.zeros(1, self.num_vertices, channels))
        nn.init.trunc_normal_(self.joint_position, std=0.02)
        nn.init.trunc_normal_(self.vertex_position, std=0.02)
        sizes = dict(context_dim=context_dim, mlp_ratio=mlp_ratio, channel_ratio=channel_ratio, token_ratio=token_ratio)
        self.pose_branches = nn.ModuleList(
            LDMPBranch(channels, joint_heads, num_joints, self.num_vertices, **sizes) for _ in range(depth)
        )
        self.mesh_branches = nn.ModuleList(
            LDMPBranch(channels, vertex_heads, self.num_vertices, num_joints, **sizes) for _ in range(depth)
        )
        self.joint_head, self.vertex_head = nn.Linear(channels, 3), nn.Linear(channels, 3)

    def _check(self, joints: Tensor, context: Tensor) -> None:
        if not isinstance(joints, Tensor) or joints.dim() != 3 or joints.shape[1:] != (self.num_joints, 3):
            raise ValueError(f"joints must have shape (B, {self.num_joints}, 3); got {tuple(getattr(joints, 'shape', ()))}")
        if not isinstance(context, Tensor) or context.shape != (joints.shape[0], self.context_dim):
            raise ValueError(
                f"context must have shape (B, {self.context_dim}) with the joints' B = {joints.shape[0]}; "
                f"got {tuple(getattr(context, 'shape', ()))}"
            )

    def forward(self, joints: Tensor, context: Tensor, parallel: bool = False) -> tuple[Tensor, Tensor]:
        """Joints ``(B, J, 3)`` and context ``(B, D)`` -> refined joints ``(B, J, 3)``, coarse mesh ``(B, V, 3)``.

        ``parallel=True`` gives the same numbers (tested bit for bit). On a CPU it uses a Python
        thread, not ``torch.jit.fork``: outside TorchScript, ``fork`` runs its function at once, in
        the caller's thread. `hmrlab.complexity.measure` counts only the caller's thread: measure
        with ``parallel=False``.
        """
        self._check(joints, context)
        vertices = joints[:, self.vertex_joint]
        joint_tokens = self.joint_embed(joints) + self.joint_position
        vertex_tokens = self.vertex_embed(vertices) + self.vertex_position
        if parallel and not joints.is_cuda:
            # One worker thread for the whole forward pass: starting a thread per layer costs more.
            with ThreadPoolExecutor(max_workers=1) as worker:
                return self._layers(joints, vertices, joint_tokens, vertex_tokens, context, partial(_on_thread, worker))
        step = _on_side_stream if parallel else _in_sequence
        return self._layers(joints, vertices, joint_tokens, vertex_tokens, context, step)

    def _layers(
        self, joints: Tensor, vertices: Tensor, joint_tokens: Tensor, vertex_tokens: Tensor, context: Tensor, step
    ) -> tuple[Tensor, Tensor]:
        for pose, mesh in zip(self.pose_branches, self.mesh_branches):
            joint_tokens, vertex_tokens = step(pose, mesh, joint_tokens, vertex_tokens, context)
        return joints + self.joint_head(joint_tokens), vertices + self.vertex_head(vertex_tokens)


def _in_sequence(pose: nn.Module, mesh: nn.Module, joints: Tensor, vertices: Tensor, context: Tensor):
    return pose(joints, vertices, context), mesh(vertices, joints, context)


def _on_side_stream(pose: nn.Module, mesh: nn.Module, joints: Tensor, vertices: Tensor, context: Tensor):
    # The mesh branch on a second CUDA stream, after whatever the current stream has queued so far.
    main, side = torch.cuda.current_stream(vertices.device), torch.cuda.Stream(vertices.device)
    side.wait_stream(main)
    with torch.cuda.stream(side):
        new_vertices = mesh(vertices, joints, context)
    new_joints = pose(joints, vertices, context)
    main.wait_stream(side)
    new_vertices.record_stream(main)  # made on the side stream, used on the main one from now on
    return new_joints, new_vertices


def _on_thread(worker: ThreadPoolExecutor, pose: nn.Module, mesh: nn.Module, joints: Tensor, vertices: Tensor, context: Tensor):
    # Grad mode is per thread: the worker records (or not) the graph exactly as the caller does.
    grad_enabled = torch.is_grad_enabled()

    def mesh_branch() -> Tensor:
        with torch.set_grad_enabled(grad_enabled):
            return mesh(vertices, joints, context)

    future = worker.submit(mesh_branch)
    new_joints = pose(joints, vertices, context)
    return new_joints, future.result()


class LIFDHMROutput(NamedTuple):
    """What `LIFDHMR` returns for the middle frame of each clip (metres, the pose estimator's frame).

    ``vertices`` (B, V_full, 3) the full mesh M_F; ``coarse_vertices`` (B, V, 3) LDMP's M_I;
    ``joints`` (B, J, 3) regressed from ``vertices``; ``ldmp_joints`` (B, J, 3) LDMP's pose branch;
    ``poses_3d`` (B, T, J, 3) the pose estimator's output for every frame of the clip.
    """

    vertices: Tensor
    coarse_vertices: Tensor
    joints: Tensor
    ldmp_joints: Tensor
    poses_3d: Tensor


class LIFDHMR(nn.Module):
    """LIFD-HMR (arXiv 2510.18267): a clip and its 2D keypoints -> the middle frame's mesh and joints.

    ``backbone`` (ResNet-50) -> `LIFDExtractor` (``F'_hybrid``, one vector per frame) -> a MixSTE
    pose estimator -> `LDMP` -> the coarse mesh M_I -> M_F by the body model's fixed ``upsample``
    matrix -> joints by its ``J_regressor_h36m``. `forward` takes images, `forward_features`
    precomputed backbone maps (`clip_features`), which is how one trains on a CPU.

    Choices where the paper is thin, following PMCE (ICCV 2023), whose decoder LDMP replaces:

    * the pose estimator lifts 2D keypoints ``(B, T, J, 2)`` (normalised screen coordinates) with
      each frame's ``F'_hybrid`` appended to every joint: input ``(B, T, J, 2 + channels)``. PMCE adds
      an embedding of the frame feature to each joint's embedding; a linear embedding of the
      concatenation is the same thing, so `hmrlab.models.mixste.MixSTE` takes it unchanged;
      ``pose_dim=256``, ``pose_depth=3`` (PMCE's lifter), 8 heads, MLP ratio 2;
    * LDMP refines the middle frame (``P^mid_3D``): its joints are the lifter's output at ``T // 2``;
    * the shared temporal features are a 2-layer bidirectional GRU over the frames' ``F'_hybrid``
      (PMCE's, hidden 1024), read at the middle frame: a ``2 * gru_hidden`` context;
    * the full mesh is the fixed ``upsample`` matrix times M_I (PMCE learns a convolution and adds
      per-vertex offsets from the GRU; the paper says "upsampled", so no learned step here).

    Args:
        arrays: body-model arrays (`hmrlab.body.body_model_arrays`) with ``v_template``,
            ``downsample``, ``upsample`` and ``J_regressor_h36m``: they fix V, V_full and J = 17, and
            each coarse vertex's nearest template joint (`nearest_joint`).
        backbone: the image backbone; ``None`` for `forward_features` only.
        in_channels: channels of the backbone maps (2048 for ResNet-50 ``layer4``).
        channels: width of ``F'_hybrid``. The LDMP arguments are `LDMP`'s.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        backbone: Backbone | None = None,
        *,
        in_channels: int = 2048,
        channels: int = 256,
        frames: int = 16,
        pose_dim: int = 256,
        pose_depth: int = 3,
        gru_hidden: int = 1024,
        ldmp_channels: int = 64,
        ldmp_depth: int = 3,
        channel_ratio: int = 4,
        token_ratio: int = 4,
    ) -> None:
        super().__init__()
        missing = [key for key in ("v_template", "downsample", "upsample", "J_regressor_h36m") if key not in arrays]
        if missing:
            raise ValueError(
                f"arrays lacks {missing}; pass hmrlab.body.body_model_arrays('smpl') (the free model has them)"
            )
        template = torch.as_tensor(np.asarray(arrays["v_template"]), dtype=torch.float32)
        downsample = torch.as_tensor(np.asarray(arrays["downsample"]), dtype=torch.float32)
        upsample = torch.as_tensor(np.asarray(arrays["upsample"]), dtype=torch.float32)
        regressor = torch.as_tensor(np.asarray(arrays["J_regressor_h36m"]), dtype=torch.float32)
        if downsample.shape[1] != len(template) or upsample.shape != downsample.shape[::-1] or regressor.shape[1] != len(template):
            raise ValueError(
                f"downsample (V, N), upsample (N, V) and J_regressor_h36m (J, N) must agree with v_template (N, 3); "
                f"got {tuple(downsample.shape)}, {tuple(upsample.shape)}, {tuple(regressor.shape)}, {tuple(template.shape)}"
            )
        num_joints = len(regressor)
        self.backbone = backbone
        self.extractor = LIFDExtractor(in_channels, channels)
        self.pose_estimator = MixSTE(num_joints, 2 + channels, 3, pose_dim, pose_depth, frames=frames)
        self.gru = nn.GRU(channels, gru_hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.ldmp = LDMP(
            nearest_joint(downsample @ template, regressor @ template), num_joints, ldmp_channels,
            depth=ldmp_depth, context_dim=2 * gru_hidden, channel_ratio=channel_ratio, token_ratio=token_ratio,
        )
        self.register_buffer("upsample", upsample)
        self.register_buffer("joint_regressor", regressor)

    def forward(self, clips: Tensor, keypoints_2d: Tensor, parallel: bool = False) -> LIFDHMROutput:
        """Clips ``(B, T, 3, H, W)`` (normalised images) and keypoints ``(B, T, J, 2)`` -> `LIFDHMROutput`."""
        if self.backbone is None:
            raise ValueError("this LIFDHMR has no backbone; pass one to the constructor, or call forward_features")
        return self.forward_features(clip_features(self.backbone, clips), keypoints_2d, parallel)

    def forward_features(self, maps: Tensor, keypoints_2d: Tensor, parallel: bool = False) -> LIFDHMROutput:
        """Backbone maps ``(B, T, in_channels, h, w)`` and keypoints ``(B, T, J, 2)`` -> `LIFDHMROutput`."""
        frames = self.extractor(maps)  # (B, T, C): F'_hybrid per frame
        num_joints = self.ldmp.num_joints
        if not isinstance(keypoints_2d, Tensor) or keypoints_2d.shape != (*frames.shape[:2], num_joints, 2):
            raise ValueError(
                f"keypoints_2d must have shape (B, T, {num_joints}, 2) = {(*frames.shape[:2], num_joints, 2)} to match the "
                f"maps; got {tuple(getattr(keypoints_2d, 'shape', ()))}"
            )
        tokens = torch.cat([keypoints_2d, frames[:, :, None].expand(-1, -1, num_joints, -1)], dim=-1)
        poses_3d = self.pose_estimator(tokens)
        middle = frames.shape[1] // 2
        context = self.gru(frames)[0][:, middle]
        ldmp_joints, coarse = self.ldmp(poses_3d[:, middle], context, parallel)
        # The upsampling is a fixed linear map of the vertices, applied as a joint regressor is.
        vertices = regress_joints(self.upsample, coarse)
        return LIFDHMROutput(vertices, coarse, regress_joints(self.joint_regressor, vertices), ldmp_joints, poses_3d)


BACKBONES = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def lifd_hmr(backbone: str = "resnet18", **sizes: int) -> LIFDHMR:
    """LIFD-HMR on a randomly initialised ResNet (``"resnet18"``, ``"resnet34"`` or the paper's
    ``"resnet50"``), reading its ``layer4`` map; ``sizes`` are `LIFDHMR`'s keyword arguments
    (``channels``, ``frames``, ``pose_dim``, ...; ``in_channels`` follows the backbone)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}; got {backbone!r}")
    network = BACKBONES[backbone]()
    network.fc = nn.Identity()  # the classifier is never used: only layer4's map is read
    return LIFDHMR(body_model_arrays("smpl"), network, in_channels=network.feature_channels["layer4"], **sizes)

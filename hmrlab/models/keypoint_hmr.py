"""The keypoints-guided lightweight HMR (Chen & Wang, "Keypoints-guided Lightweight Network for
Single-view 3D Human Reconstruction"): image -> 3D keypoints -> SMPL parameters -> mesh.

The pipeline of Fig. 2, one piece per step:

1. **Backbone** (`hmrlab.nn.mgfenet.MGFENet`, or any `hmrlab.nn.backbones.Backbone`): the image's
   low-resolution map ``f_img`` (B, C_b, h', w').
2. **3DKEM** (`KeypointEstimator`, Fig. 5): a 1x1 convolution to ``channels`` = c gives ``f̄_img``;
   the learned mapping ``f_kp = A f̄_img`` (Eq. 2, ``A`` (K, h'w')) turns the h'w' positions into K
   keypoint tokens; a gated attention unit (`GatedAttentionUnit`, Eqs. 3-4) mixes them; three
   classifiers per keypoint give SimCC bins along x, y and depth, decoded (`hmrlab.nn.simcc.simcc_decode`)
   to coordinates and per-axis σ.
3. **Shape** (Eq. 6): ``β = MLP([mean_k f'_kp; mean f̄_img])``.
4. **Pose** (Eq. 5): the twist ``φ`` (cos, sin) per bone from the pooled image features, the rest
   joints ``T(β)`` of the body model, and ``θ = IK(J, T, φ)`` (`hmrlab.nn.ik.inverse_kinematics`) with J
   the joints among the keypoints.
5. **Mesh**: the body model (`hmrlab.body.lbs.linear_blend_skinning`) at (β, θ).

Losses (`keypoint_hmr_loss`): RLE on the keypoints (Eq. 7, `hmrlab.nn.rle.rle_loss`) and L2 losses on
θ, β and the twist (Eq. 8), weighted by ε = (1, 0.01, 0.1, 0.01) (Eq. 9). The backbone is
pretrained on 2D keypoints (`Pretrain2D`: the backbone plus a deconvolution decoder).

What the paper leaves open, and what we chose:

* Coordinates: keypoints are root-relative, in metres, in axes parallel to the camera's (x right,
  y down, z depth), normalised by a ``box_size`` = 2.2 m cube (HybrIK's 3D box) to ``[-0.5, 0.5]``,
  the range of the SimCC bins. So IK reads metric joints without a camera model; the paper's u, v
  are image coordinates, which needs the camera and root depth (HybrIK's uvd); we leave that out.
* ``f̄_img`` has ``channels`` = 256 (a 1x1 convolution from the backbone's 960), so Eq. 6's
  ``[f'_kp; f̄_img]`` has 2c = 512 entries; ``A`` starts as PyTorch's default linear init.
* GAU: the pre-norm residual block of RTMPose's RTMCC (the authors' code ships it), with
  ``Q(Z) = γ_q ⊙ Z + β_q`` and ``K(Z) = γ_k ⊙ Z + β_k`` (per-channel affine maps, as in the GAU
  paper), scores scaled by ``1 / sqrt(s)``, ``b`` a learnable (K, K) bias (the tokens are a fixed set
  of keypoints, so one bias per pair).
* σ: the standard deviation of each axis's softmax over the bins (what ``simcc_decode`` returns), so
  the classifiers give coordinate and spread at once, combined with a bin's own quantisation spread
  (``σ² = spread² + w² / 12`` for bins of width w): a softmax peaked on one bin would otherwise give
  σ -> 0 and an unbounded RLE residual (we saw loss spikes of 100x without it).
* The twist is predicted from the pooled image features (as HybrIK); θ's loss skips the joints IK
  cannot determine (no child: hands, feet, head) and compares rotation matrices; the twist's loss
  compares the normalised predicted (cos, sin) with the truth's.
* β: a two-layer MLP (2c -> c -> 10, ReLU).
* Pretraining: three 4x4 stride-2 deconvolutions (256 channels, BN, ReLU; SimpleBaseline's decoder)
  and a 1x1 convolution to one heatmap per keypoint; coordinates and σ are the mean and standard
  deviation of each heatmap's softmax along x and y (integral regression), trained with RLE and a 2D
  flow (the paper's second flow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel, forward_kinematics, linear_blend_skinning
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.metrics import mpjpe
from hmrlab.nn.attention import TransformerBlock
from hmrlab.nn.backbones import Backbone
from hmrlab.nn.ik import inverse_kinematics, twist_angles
from hmrlab.nn.keypoints import KeypointTemplate, keypoints_from_mesh
from hmrlab.nn.mgfenet import MGFENet, MGFENetAuthors
from hmrlab.nn.rle import RealNVP, rle_loss
from hmrlab.nn.simcc import simcc_decode
from hmrlab.validation import check_exact_shape, format_shape

__all__ = [
    "EPSILON",
    "AuthorsKeypointHead",
    "DeconvDecoder",
    "EfficientHumanAuthors",
    "GatedAttentionUnit",
    "KeypointEstimator",
    "KeypointHMR",
    "Pretrain2D",
    "ScaleNorm",
    "SelfAttentionBlock",
    "batch_spread",
    "heatmap_decode",
    "keypoint_hmr_loss",
    "mesh_targets",
    "pretrain_loss",
    "smpl_parameter_losses",
]

EPSILON = (1.0, 0.01, 0.1, 0.01)  # ε_1..ε_4 of Eq. 9: keypoints (RLE), θ, β, twist (Sec. IV-B)


class GatedAttentionUnit(nn.Module):
    """Gated attention unit (Hua et al. 2022) over a fixed set of N tokens, Eqs. 3-4: (B, N, C) -> (B, N, C).

    With ``x̂ = LayerNorm(x)``: ``U, V, Z = SiLU(x̂ W_u), SiLU(x̂ W_v), SiLU(x̂ W_z)`` (Eq. 3; U, V of
    width ``e = expansion C``, Z of width ``s = qk_dim``); ``B = ReLU²(Q(Z) K(Z)^T / sqrt(s) + b)``
    (Eq. 4, one head, no softmax); output ``x + (U ⊙ B V) W_o``. The gate U lets each token switch
    off what attention brings it. Parameters: ``C (2e + s) + (2e + s) + 4 s + N^2 + e C + C + 2 C``;
    MACs per sample: ``N C (2e + s) + N^2 (s + e) + N e C``.

    The authors' unit (RTMPose's ``RTMCCBlock`` as EfficientHuman configures it) is
    ``norm="scale", linear_bias=False, pair_bias=False, residual_scale=True``: a `ScaleNorm` instead of
    the LayerNorm, no biases in the two linear layers, no (N, N) bias ``b``, and the shortcut scaled per
    channel, ``s ⊙ x + ...``.
    """

    def __init__(self, channels: int, num_tokens: int, expansion: float = 2.0, qk_dim: int = 128, *,
                 norm: str = "layer", linear_bias: bool = True, pair_bias: bool = True,
                 residual_scale: bool = False):
        super().__init__()
        if norm not in ("layer", "scale"):
            raise ValueError(f"norm must be 'layer' (LayerNorm) or 'scale' (ScaleNorm, the authors'); got {norm!r}")
        self.channels, self.num_tokens = channels, num_tokens
        self.hidden, self.qk_dim = round(expansion * channels), qk_dim
        self.norm = nn.LayerNorm(channels) if norm == "layer" else ScaleNorm(channels)
        self.uvz = nn.Linear(channels, 2 * self.hidden + qk_dim, bias=linear_bias)
        self.gamma = nn.Parameter(torch.ones(2, qk_dim))
        self.beta = nn.Parameter(torch.zeros(2, qk_dim))
        self.bias = nn.Parameter(torch.zeros(num_tokens, num_tokens)) if pair_bias else None
        self.out = nn.Linear(self.hidden, channels, bias=linear_bias)
        self.residual_scale = nn.Parameter(torch.ones(channels)) if residual_scale else None

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Output (B, N, C) and the attention weights ``B`` (B, N, N) of tokens x (B, N, C)."""
        check_exact_shape(x, "x (batch, keypoints, channels)", ("B", self.num_tokens, self.channels))
        u, v, z = F.silu(self.uvz(self.norm(x))).split([self.hidden, self.hidden, self.qk_dim], -1)
        q, k = z * self.gamma[0] + self.beta[0], z * self.gamma[1] + self.beta[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.qk_dim)
        weights = F.relu(scores if self.bias is None else scores + self.bias) ** 2
        shortcut = x if self.residual_scale is None else x * self.residual_scale
        return shortcut + self.out(u * (weights @ v)), weights

    def forward(self, x: Tensor) -> Tensor:
        return self.attend(x)[0]


class ScaleNorm(nn.Module):
    """ScaleNorm (Nguyen and Salazar 2019): ``g x / max(||x|| / sqrt(C), eps)`` over the last axis, one gain g.

    RTMPose's normalisation, which the authors' 3DKEM uses in place of LayerNorm: (..., C) -> (..., C).
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale, self.eps = channels**-0.5, eps
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale).clamp_min(self.eps) * self.gain


class AuthorsKeypointHead(nn.Module):
    """The authors' 3DKEM head (EfficientHuman's ``RTMCCHead``): backbone map (B, C_b, h, w) -> K keypoints.

    A kxk convolution (k = 7, with bias) turns the map into one (h, w) map per keypoint, flattened to
    K tokens of h w entries, `ScaleNorm` ed and projected (no bias) to ``hidden`` = 256 channels; the
    authors' GAU (`GatedAttentionUnit` with their options) mixes the tokens; then per axis one linear
    layer (no bias) *regresses* the coordinate and one the σ logit. Against the paper's reading
    (`KeypointEstimator`, Eq. 2's mapping A and SimCC classifiers over bins) it regresses rather than
    classifies and builds the tokens by convolution; 4,960,610 parameters for K = 96 (their 29 joints
    and 67 markers) on MGFENet's 960 x 8 x 8 map, against 0.89 M for ours. ``forward`` returns
    ``coords`` (B, K, 3), ``sigma`` = sigmoid(logits) + 1e-9 (as their model applies it) and
    ``keypoint_features`` (B, K, hidden).
    """

    def __init__(self, in_channels: int = 960, num_keypoints: int = 96, feature_size: tuple[int, int] = (8, 8),
                 hidden: int = 256, kernel_size: int = 7, expansion: float = 2.0, qk_dim: int = 128) -> None:
        super().__init__()
        self.to_keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size, padding=kernel_size // 2)
        area = math.prod(feature_size)
        self.embed = nn.Sequential(ScaleNorm(area), nn.Linear(area, hidden, bias=False))
        self.attention = GatedAttentionUnit(hidden, num_keypoints, expansion, qk_dim, norm="scale", linear_bias=False,
                                            pair_bias=False, residual_scale=True)
        self.coords = nn.ModuleList(nn.Linear(hidden, 1, bias=False) for _ in range(3))
        self.sigma = nn.ModuleList(nn.Linear(hidden, 1, bias=False) for _ in range(3))

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        tokens = self.attention(self.embed(self.to_keypoints(features).flatten(2)))
        coords = torch.cat([layer(tokens) for layer in self.coords], -1)
        sigma = torch.sigmoid(torch.cat([layer(tokens) for layer in self.sigma], -1)) + 1e-9
        return {"coords": coords, "sigma": sigma, "keypoint_features": tokens}


class EfficientHumanAuthors(nn.Module):
    """The authors' image -> keypoints network: `MGFENetAuthors` then `AuthorsKeypointHead` (EfficientHuman).

    images (B, 3, 256, 256) -> the head's dict. The rest of their model (twist and shape MLPs, SMPL, the
    RLE flows) is not included; `hmrlab.models.authors.from_authors("efficienthuman", ...)` loads it.
    """

    def __init__(self, num_keypoints: int = 96, image_size: tuple[int, int] = (256, 256)) -> None:
        super().__init__()
        self.backbone = MGFENetAuthors(image_size)
        size = tuple(-(-n // 32) for n in image_size)
        self.head = AuthorsKeypointHead(self.backbone.feature_channels["stride32"], num_keypoints, size)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.head(self.backbone.forward_features(images, ["stride32"])["stride32"])


class SelfAttentionBlock(TransformerBlock):
    """Standard attention in the same place, for the GAU's ablation: ``x + MHA(LayerNorm(x))`` (B, N, C).

    `hmrlab.nn.attention.TransformerBlock` without its MLP (``mlp_ratio=None``): softmax multi-head
    self-attention over the N keypoint tokens, ``heads`` heads; parameters ``4 C^2 + 6 C``, about
    half a GAU's at ``expansion = 2``; MACs per sample ``4 N C^2 + 2 N^2 C``.
    """

    def __init__(self, channels: int, num_tokens: int, heads: int = 8):
        super().__init__(channels, heads, mlp_ratio=None)
        self.num_tokens = num_tokens

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        check_exact_shape(x, "x (batch, keypoints, channels)", ("B", self.num_tokens, self.channels))
        return super().forward(x)


class KeypointEstimator(nn.Module):
    """3DKEM (Fig. 5): backbone map (B, C_b, h', w') -> K keypoints in normalised coordinates.

    Feature mapping (Eq. 2), feature extraction (``attention``: ``"gau"``, the paper's; ``"standard"``,
    softmax attention; ``"none"``), coordinate classification (``head``: ``"simcc"``, ``num_bins``
    bins per axis over [-0.5, 0.5], decoded by `hmrlab.nn.simcc.simcc_decode`; or ``"regression"``, a
    linear layer to 3 coordinates and a sigmoid σ as in RLE). ``forward`` returns a dict: ``coords``
    (B, K, 3) and ``sigma`` (B, K, 3) in [-0.5, 0.5] units (SimCC: σ² = softmax variance + 1 / (12
    num_bins²), see the module docstring), ``logits`` (B, K, 3, num_bins) (SimCC
    only), ``keypoint_features`` f'_kp (B, K, c) and ``image_features`` (B, c), ``f̄_img`` averaged
    over positions.
    """

    def __init__(
        self,
        in_channels: int,
        feature_size: tuple[int, int],
        num_keypoints: int = 91,
        channels: int = 256,
        num_bins: int = 256,
        attention: str = "gau",
        head: str = "simcc",
    ):
        super().__init__()
        if attention not in ("gau", "standard", "none"):
            raise ValueError(f"attention must be 'gau', 'standard' or 'none'; got {attention!r}")
        if head not in ("simcc", "regression"):
            raise ValueError(f"head must be 'simcc' or 'regression'; got {head!r}")
        self.in_channels, self.feature_size = in_channels, tuple(feature_size)
        self.num_keypoints, self.head, self.num_bins = num_keypoints, head, num_bins
        self.project = nn.Conv2d(in_channels, channels, 1)
        self.mapping = nn.Linear(math.prod(self.feature_size), num_keypoints, bias=False)  # A of Eq. 2
        self.attention = {
            "gau": lambda: GatedAttentionUnit(channels, num_keypoints),
            "standard": lambda: SelfAttentionBlock(channels, num_keypoints),
            "none": nn.Identity,
        }[attention]()
        if head == "simcc":
            self.classifiers = nn.ModuleList(nn.Linear(channels, num_bins) for _ in range(3))
        else:
            self.coords = nn.Linear(channels, 3)
            self.sigma = nn.Linear(channels, 3)

    def forward(self, features: Tensor) -> dict[str, Tensor | None]:
        expected = (self.in_channels, *self.feature_size)
        if not isinstance(features, Tensor) or features.dim() != 4 or tuple(features.shape[1:]) != expected:
            shape = format_shape(tuple(features.shape)) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(
                f"features must have shape (B, {', '.join(map(str, expected))}), the backbone map the module "
                f"was built for; got {shape}"
            )
        image = self.project(features).flatten(2)  # f̄_img (B, c, h'w')
        tokens = self.attention(self.mapping(image).transpose(1, 2))  # f'_kp (B, K, c)
        if self.head == "simcc":
            logits = torch.stack([classify(tokens) for classify in self.classifiers], -2)  # (B, K, 3, bins)
            coords, spread = simcc_decode(logits)
            # A bin cannot locate a point better than a uniform over its width w (variance w^2 / 12);
            # without this floor σ collapses with a peaked softmax and the RLE residual explodes.
            sigma = (spread**2 + 1 / (12 * self.num_bins**2)).sqrt()
        else:
            logits = None
            coords, sigma = self.coords(tokens), torch.sigmoid(self.sigma(tokens)) + 1e-9
        return {
            "coords": coords, "sigma": sigma, "logits": logits,
            "keypoint_features": tokens, "image_features": image.mean(-1),
        }


class KeypointHMR(nn.Module):
    """The keypoints-guided lightweight HMR (Fig. 2): images (B, 3, H, W) -> keypoints, SMPL parameters, mesh.

    Args:
        num_keypoints: K, 91 for the paper's template (24 joints + 67 markers), 96 for the authors'
            code's (29 joints + 67 markers); see `hmrlab.nn.keypoints`.
        joint_indices: the positions of the body model's J joints among the K keypoints, in the
            body model's joint order (default: the first J).
        backbone: a `hmrlab.nn.backbones.Backbone`; default MGFENet for ``image_size``. Its last stage's
            map feeds the 3DKEM.
        image_size: (H, W) of the input images.
        channels, num_bins, attention, head: of the `KeypointEstimator`.
        box_size: edge of the root-centred cube the keypoints are normalised by, metres.
        body_arrays: body-model arrays (`hmrlab.body.body_model_arrays`); default the free SMPL model.

    ``flow`` is the 3D RealNVP of the RLE loss (`keypoint_hmr_loss`); it is not used by ``forward``.

    ``forward(images)`` returns a dict: ``keypoints`` (B, K, 3) root-relative metres, ``coords`` and
    ``sigma`` (B, K, 3) the same in box units (``keypoints = box_size coords``), ``logits`` (SimCC
    bins or None), ``betas`` (B, num_betas), ``twist`` (B, J - 1, 2) the predicted (cos, sin),
    ``rotmats`` (B, J, 3, 3) from IK, ``vertices`` (B, N, 3) and ``joints`` (B, J, 3) of the posed
    body, root-relative metres.
    """

    def __init__(
        self,
        num_keypoints: int = 91,
        joint_indices: Sequence[int] | None = None,
        backbone: Backbone | None = None,
        image_size: tuple[int, int] = (256, 256),
        channels: int = 256,
        num_bins: int = 256,
        attention: str = "gau",
        head: str = "simcc",
        box_size: float = 2.2,
        body_arrays: Mapping | None = None,
        num_betas: int = 10,
    ):
        super().__init__()
        self.image_size, self.box_size = tuple(image_size), box_size
        self.backbone = MGFENet(image_size=self.image_size) if backbone is None else backbone
        self.stage = list(self.backbone.feature_channels)[-1]
        stride = self.backbone.feature_strides[self.stage]
        feature_size = tuple(-(-n // stride) for n in self.image_size)
        self.kem = KeypointEstimator(
            self.backbone.feature_channels[self.stage], feature_size, num_keypoints, channels, num_bins, attention, head
        )
        self.body = BodyModel(body_model_arrays("smpl") if body_arrays is None else body_arrays, num_betas)
        num_joints = self.body.num_joints
        joint_indices = list(range(num_joints)) if joint_indices is None else list(joint_indices)
        if len(joint_indices) != num_joints or not all(0 <= i < num_keypoints for i in joint_indices):
            raise ValueError(
                f"joint_indices must list the positions of the body model's {num_joints} joints among the "
                f"{num_keypoints} keypoints; got {joint_indices}"
            )
        self.register_buffer("joint_indices", torch.as_tensor(joint_indices), persistent=False)
        self.flow = RealNVP(3)  # G_φ of Eq. 7 for 3D keypoints, trained with the network by the same loss
        self.shape_mlp = nn.Sequential(nn.Linear(2 * channels, channels), nn.ReLU(), nn.Linear(channels, num_betas))
        self.twist_head = nn.Linear(channels, 2 * (num_joints - 1))
        # Start at zero twist, (cos, sin) = (1, 0), so that early IK poses are those of swing alone.
        nn.init.zeros_(self.twist_head.weight)
        with torch.no_grad():
            self.twist_head.bias.copy_(torch.tensor([1.0, 0.0]).repeat(num_joints - 1))

    def rest_joints(self, betas: Tensor) -> Tensor:
        """T(β) of Eq. 5: the body model's rest-pose joints (B, J, 3) for shapes (B, num_betas), metres."""
        return self.body.rest_joints(betas)

    def forward(self, images: Tensor, mesh: bool = True) -> dict[str, Tensor | None]:
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != (3, *self.image_size):
            shape = format_shape(tuple(images.shape)) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must have shape (B, 3, {self.image_size[0]}, {self.image_size[1]}); got {shape}")
        features = self.backbone.forward_features(images, self.stage)[self.stage]
        out = self.kem(features)
        keypoints = out["coords"] * self.box_size
        pooled = torch.cat([out["keypoint_features"].mean(1), out["image_features"]], -1)  # f_shape of Eq. 6
        betas = self.shape_mlp(pooled)
        twist = self.twist_head(out["image_features"]).unflatten(-1, (-1, 2))
        rest = self.rest_joints(betas)
        rotmats, _ = inverse_kinematics(keypoints[:, self.joint_indices], rest, self.body.parents, twist)
        body = self.body
        if mesh:
            vertices, joints = linear_blend_skinning(
                betas, rotmats, body.v_template, body.shapedirs, body.posedirs, body.J_regressor, body.parents,
                body.weights,
            )
        else:
            vertices, (joints, _) = None, forward_kinematics(rotmats, rest, body.parents)
        root = joints[:, :1]
        return {
            "keypoints": keypoints, "coords": out["coords"], "sigma": out["sigma"], "logits": out["logits"],
            "betas": betas, "twist": twist, "rotmats": rotmats,
            "vertices": None if vertices is None else vertices - root, "joints": joints - root,
        }


def smpl_parameter_losses(
    rotmats: Tensor, betas: Tensor, twist: Tensor, target: Mapping[str, Tensor], parents: Sequence[int] | Tensor
) -> dict[str, Tensor]:
    """Eq. 8: the L2 losses on θ, β and the twist φ, each a scalar averaged over the batch.

    rotmats (B, J, 3, 3) predicted (from IK), betas (B, num_betas), twist (B, J - 1, 2) predicted
    (cos, sin) (normalised here, as IK uses it); target: ``rotmats``, ``betas``, ``twist`` of the same
    shapes. ``theta``: mean squared difference of the rotation matrices over the joints with children
    (IK gives the others the identity, whatever the truth); ``beta``: mean squared difference;
    ``twist``: ``(1/(J-1)) sum_i |(cos, sin)_i - (cos, sin)^_i|``.
    """
    parents = [int(p) for p in parents]
    determined = sorted({p for p in parents if p >= 0})
    theta = ((rotmats[:, determined] - target["rotmats"][:, determined]) ** 2).flatten(1).mean(1).mean()
    beta = ((betas - target["betas"]) ** 2).mean()
    phi = (F.normalize(twist, dim=-1) - target["twist"]).norm(dim=-1).mean()
    return {"theta": theta, "beta": beta, "twist": phi}


def keypoint_hmr_loss(
    output: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    flow: RealNVP,
    parents: Sequence[int] | Tensor,
    *,
    box_size: float = 2.2,
    epsilon: Sequence[float] = EPSILON,
) -> dict[str, Tensor]:
    """Eq. 9: ``ε_1 L_3D + ε_2 L_θ + ε_3 L_β + ε_4 L_φ`` for a `KeypointHMR` output and its targets.

    target: ``keypoints`` (B, K, 3) root-relative metres, ``rotmats`` (B, J, 3, 3), ``betas``,
    ``twist`` (B, J - 1, 2) (see `mesh_targets`). ``L_3D`` is the RLE loss (Eq. 7) of the keypoints in
    box units (metres / ``box_size``) with the 3D ``flow`` (`hmrlab.nn.rle.RealNVP(3)`), summed over
    keypoints and averaged over the batch. Returns ``loss`` and each term (``keypoints``, ``theta``,
    ``beta``, ``twist``), the dict `hmrlab.training.loop.fit` logs.
    """
    if len(epsilon) != 4:
        raise ValueError(f"epsilon must hold the four weights (ε_1, ε_2, ε_3, ε_4) of Eq. 9; got {epsilon}")
    terms = {"keypoints": rle_loss(output["coords"], output["sigma"], target["keypoints"] / box_size, flow)}
    terms.update(smpl_parameter_losses(output["rotmats"], output["betas"], output["twist"], target, parents))
    loss = sum(weight * terms[name] for weight, name in zip(epsilon, ("keypoints", "theta", "beta", "twist")))
    return {"loss": loss, **terms}


def mesh_targets(
    body: BodyModel, template: KeypointTemplate, pose: Tensor, betas: Tensor, vertices: bool = True
) -> dict[str, Tensor]:
    """Ground truth for `keypoint_hmr_loss` from SMPL parameters: pose (B, J * 3) axis-angle, betas (B, num_betas).

    Returns root-relative ``keypoints`` (B, K, 3) of `template` (`hmrlab.nn.keypoints.keypoints_from_mesh`),
    ``vertices`` (B, N, 3) and ``joints`` (B, J, 3), all in metres; ``rotmats`` (B, J, 3, 3),
    ``betas``, and ``twist`` (B, J - 1, 2), the (cos, sin) of each bone's twist (`hmrlab.nn.ik.twist_angles`).
    With ``vertices=False`` the mesh is not built (`BodyModel.posed_points` poses only the template's
    vertices) and ``vertices`` is left out: the same keypoints, several times faster.
    """
    pose = pose.reshape(pose.shape[0], -1, 3)
    rotmats = axis_angle_to_matrix(pose)
    rest = body.rest_joints(betas)
    out = {"rotmats": rotmats, "betas": betas, "twist": twist_angles(rotmats, rest, body.parents)}
    if vertices:
        mesh, joints = body(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0])
        mesh, joints = mesh - joints[:, :1], joints - joints[:, :1]
        return {"keypoints": keypoints_from_mesh(mesh, joints, template), "vertices": mesh, "joints": joints, **out}
    leaves = template.leaf_vertex_ids if template.num_joints > body.num_joints else ()
    points, joints = body.posed_points(betas, rotmats, [*leaves, *template.marker_vertex_ids])
    points, joints = points - joints[:, :1], joints - joints[:, :1]
    # a 29-joint template: the 24 joints, then the leaves and markers posed above; else its first joints
    keypoints = torch.cat([joints if leaves else joints[:, : template.num_joints], points], 1)
    return {"keypoints": keypoints, "joints": joints, **out}


# ----------------------------------------------------------------------------------------------------
# 2D pretraining (Sec. III-A, "Pretrain")


class DeconvDecoder(nn.Module):
    """Deconvolution decoder: map (B, C, h, w) -> heatmap logits (B, K, h 2^n, w 2^n), n = len(channels).

    Each layer is a 4x4 transposed convolution of stride 2 (no bias), BatchNorm and ReLU
    (SimpleBaseline, Xiao et al. 2018); a final 1x1 convolution gives one map per keypoint.
    """

    def __init__(self, in_channels: int, num_keypoints: int = 17, channels: Sequence[int] = (256, 256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        for width in channels:
            layers += [
                nn.ConvTranspose2d(in_channels, width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            in_channels = width
        layers.append(nn.Conv2d(in_channels, num_keypoints, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)


def heatmap_decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates and σ (B, K, 2) (x, y in [-0.5, 0.5] of the map's width/height) of heatmap logits (B, K, h, w).

    The softmax over all h w pixels is a joint distribution; its x and y marginals are the softmaxes
    of ``logsumexp`` over the other axis, which `hmrlab.nn.simcc.simcc_decode` turns into their means
    (integral regression) and standard deviations. Pixel centres are SimCC's bin centres.
    """
    if not isinstance(heatmaps, Tensor) or heatmaps.dim() != 4:
        shape = format_shape(tuple(heatmaps.shape)) if isinstance(heatmaps, Tensor) else type(heatmaps).__name__
        raise ValueError(f"heatmaps must have shape (B, K, h, w); got {shape}")
    x_logits, y_logits = heatmaps.logsumexp(-2), heatmaps.logsumexp(-1)
    x, sigma_x = simcc_decode(x_logits)
    y, sigma_y = simcc_decode(y_logits)
    return torch.stack([x, y], -1), torch.stack([sigma_x, sigma_y], -1)


class Pretrain2D(nn.Module):
    """Backbone + `DeconvDecoder` for 2D keypoints (the paper's COCO pretraining): images -> dict.

    ``forward(images (B, 3, H, W))`` returns ``heatmaps`` (B, K, h, w) logits and ``coords``,
    ``sigma`` (B, K, 2) from `heatmap_decode`: x, y in [-0.5, 0.5] of the image's width and height.
    After pretraining, pass ``pretrain.backbone`` to `KeypointHMR` (only the backbone is kept).
    ``flow`` is the 2D RealNVP of `pretrain_loss`.
    """

    def __init__(self, backbone: Backbone, num_keypoints: int = 17, channels: Sequence[int] = (256, 256, 256)):
        super().__init__()
        self.backbone = backbone
        self.stage = list(backbone.feature_channels)[-1]
        self.decoder = DeconvDecoder(backbone.feature_channels[self.stage], num_keypoints, channels)
        self.flow = RealNVP(2)  # the paper's 2D flow (Sec. III-C), trained by `pretrain_loss`

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        heatmaps = self.decoder(self.backbone.forward_features(images, self.stage)[self.stage])
        coords, sigma = heatmap_decode(heatmaps)
        return {"heatmaps": heatmaps, "coords": coords, "sigma": sigma}


def pretrain_loss(output: Mapping[str, Tensor], keypoints: Tensor, visible: Tensor, flow: RealNVP) -> Tensor:
    """RLE loss (Eq. 7) of 2D keypoints with the 2D flow (`hmrlab.nn.rle.RealNVP(2)`).

    keypoints (B, K, 2) in [-0.5, 0.5] image units (x / W - 0.5, y / H - 0.5 for pixel coordinates
    x, y measured from the image's corner), visible (B, K) 1 for labelled keypoints, 0 otherwise.
    """
    return rle_loss(output["coords"], output["sigma"], keypoints, flow, weight=visible.to(keypoints.dtype))


def keypoint_hmr_step(
    model: KeypointHMR, batch: Mapping[str, Tensor], template: KeypointTemplate, epsilon: Sequence[float] = EPSILON,
    l1_weight: float = 0.0,
) -> dict[str, Tensor]:
    """One training step's loss (Eq. 9, `keypoint_hmr_loss`) on a batch of crops, plus ``mpjpe``: mm,
    the predicted mesh's J body-model joints against the target body's, both pelvis-relative.

    batch: ``image`` (B, 3, H, W), ``pose`` (B, 72) camera-frame axis-angle and ``betas`` (B, 10), which
    give the targets through `mesh_targets` and `template`. ``model`` may be wrapped in
    DistributedDataParallel (as `hmrlab.training.loop.fit` hands it under torchrun).

    ``l1_weight`` > 0 adds ``l1_weight`` times ``keypoints_l1``, the L1 distance of the predicted
    keypoint coordinates from the truth in box units, summed over keypoints and axes (the scale of
    the RLE term): a gradient on every coordinate that does not shrink as σ grows, which RLE's does
    (a recipe choice of `hmrlab.training.tasks.mesh`, not Eq. 9).

    Also logs ``kp_spread`` and ``kp_spread_target`` (`batch_spread`, mm): how much the predicted
    and the true keypoints vary across the batch. A model collapsing to the mean pose shows a
    predicted spread far below the target's while its loss may still fall.
    """
    net = getattr(model, "module", model)
    output = model(batch["image"], mesh=False)
    target = mesh_targets(net.body, template, batch["pose"], batch["betas"], vertices=False)
    terms = keypoint_hmr_loss(output, target, net.flow, net.body.parents, box_size=net.box_size, epsilon=epsilon)
    if l1_weight:
        terms["keypoints_l1"] = (output["coords"] - target["keypoints"] / net.box_size).abs().sum((-2, -1)).mean()
        terms["loss"] = terms["loss"] + l1_weight * terms["keypoints_l1"]
    terms["mpjpe"] = 1000 * mpjpe(output["joints"].detach(), target["joints"])
    terms["kp_spread"] = 1000 * batch_spread(output["keypoints"].detach())
    terms["kp_spread_target"] = 1000 * batch_spread(target["keypoints"])
    return terms


def batch_spread(points: Tensor) -> Tensor:
    """How much points (B, K, 3) vary across the batch: the root mean square distance of each point
    from its batch mean, averaged over the K points (the points' units; a scalar, 0 for B = 1)."""
    return (points - points.mean(0)).pow(2).sum(-1).mean(0).sqrt().mean()

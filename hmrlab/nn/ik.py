"""Analytical inverse kinematics with twist (HybrIK, Li et al., CVPR 2021), one function per step.

Forward kinematics (FK) turns local joint rotations into joint positions; inverse kinematics (IK)
goes back. Joint positions alone do not fix the rotations: a bone can spin about itself (its
*twist*) without moving any joint. HybrIK therefore splits each rotation into a *swing*, the
smallest rotation taking the rest bone direction onto the posed one, found from the joints in
closed form, and a *twist* about the bone, an angle given separately (a network predicts it as
``(cos, sin)``). Both steps run top-down along the tree, because a bone's posed direction must be
expressed in its parent's frame, which needs the parent's rotation first (Sec. 3.2 of the paper).

For a joint j with global rotation ``G_j = G_parent R_j``, FK puts every child c at
``p_c = p_j + G_j (rest_c - rest_j)``. So, with ``t = rest_c - rest_j`` the rest bone and
``d = G_parent^T (p_c - p_j)`` the posed bone in the parent's frame, ``R_j t = d``. Per joint:

* one child (knees, elbows, spine, ...): ``R_j = swing(t, d) twist(t, phi)`` (`swing_rotation`,
  `twist_rotation`), Eq. 4-6 of the paper;
* several children (the pelvis with hips and spine, spine3 with neck and collars): the rotation that
  best aligns all child bone directions at once, an orthogonal Procrustes problem
  (`align_bone_directions`); with three non-parallel bones it is determined, so no twist is needed;
* no child (hands, feet, head): the joints say nothing about it; IK returns the identity.

Conventions are those of `hmrlab.body.lbs`: ``x' = R x``; joint 0 the root; ``parents[j] < j``;
metres. The twist of bone ``parents[j] -> j`` is entry ``j - 1`` of a (B, J - 1, 2) tensor (as in
HybrIK): it belongs to the rotation of the parent. Everything is differentiable; float64 round trips
are exact to rounding.

Invalid inputs raise ValueError before any computation (`inverse_kinematics`, `twist_angles`,
`forward_kinematics`): tensors must be float32 or float64 (no silent conversion: the SVD of
`align_bone_directions` has no half-precision kernel), finite (no NaN or inf), of a batch of at least
one pose; every bone, rest and posed, must have a length (two coincident joints give no direction, so
no swing); a twist ``(cos, sin)`` must be non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hmrlab.body import lbs
from hmrlab.geometry import matrix_to_quaternion, similarity_transform, skew_matrix
from hmrlab.validation import check_finite, check_floating, check_parents, format_shape

HYBRIK_TOLERANCE = 0.015
"""``convention="hybrik"``: metres by which HybrIK's reached child may miss the posed bone before it falls back."""

OPPOSITE_TOLERANCE = 1e-6
"""`swing_rotation` treats directions with ``1 + cos < OPPOSITE_TOLERANCE`` as opposite."""

MIN_LENGTH = 1e-12
"""Bones and twist vectors no longer than this (F.normalize's eps) have no direction: ValueError."""
_COLLAPSED = "the two joints coincide (a bone of zero length has no direction, so no swing)"


def _check_tensor(x: torch.Tensor, name: str, shape: tuple[int | str, ...]) -> None:
    """`x` must be a finite float32/float64 tensor of exactly `shape` (strings are sizes checked
    elsewhere) with at least one batch item."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != len(shape) or any(isinstance(s, int) and s != n for s, n in zip(shape, x.shape)):
        raise ValueError(f"{name} must have shape {format_shape(shape)}; got {format_shape(tuple(x.shape))}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has batch size 0 (shape {format_shape(tuple(x.shape))}); IK needs at least one pose")
    check_floating(x, name, (torch.float32, torch.float64))
    check_finite(x, name)


def _check_lengths(vectors: torch.Tensor, name: str, parents: list[int], problem: str) -> None:
    """ValueError naming the bones ``parents[j] -> j`` whose entry ``j - 1`` of `vectors` (B, J - 1, d)
    is no longer than `MIN_LENGTH` (one device sync)."""
    short = torch.linalg.vector_norm(vectors.detach(), dim=-1) <= MIN_LENGTH
    if bool(short.any()):
        items, entries = short.nonzero(as_tuple=True)
        bones = sorted({int(j) + 1 for j in entries})
        listed = ", ".join(f"{parents[j]}->{j}" for j in bones[:6]) + (" ..." if len(bones) > 6 else "")
        raise ValueError(f"{name}: {problem} for bone(s) {listed} ({int(short.sum())} in all, the first in batch "
                         f"item {int(items[0])})")


def _batched_rest_joints(rest_joints: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Check rest joints (B or 1, J, 3) against a pose `like` (B, J, ...) and broadcast them to (B, J, 3)."""
    batch, num_joints = like.shape[:2]
    _check_tensor(rest_joints, "rest_joints", ("B", num_joints, 3))
    if rest_joints.dtype != like.dtype:
        raise ValueError(
            f"rest_joints must have the pose's dtype {like.dtype}; got {rest_joints.dtype}. Convert one with .to()."
        )
    if rest_joints.shape[0] not in (1, batch):
        raise ValueError(
            f"rest_joints must have batch size 1 or {batch} (that of the pose); got "
            f"{format_shape(tuple(rest_joints.shape))}"
        )
    return rest_joints.expand(batch, -1, -1)


def _children(parents: list[int]) -> list[list[int]]:
    return [[c for c, p in enumerate(parents) if p == j] for j in range(len(parents))]


def forward_kinematics(
    rotmats: torch.Tensor, rest_joints: torch.Tensor, parents: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Posed joints (B, J, 3) in metres from local rotations (B, J, 3, 3) and rest joints (B or 1, J, 3).

    `hmrlab.body.lbs.forward_kinematics` (SMPL's Eq. 2-4) without the skinning transforms; the root
    stays at its rest position.
    """
    _check_tensor(rotmats, "rotmats", ("B", "J", 3, 3))
    rest_joints = _batched_rest_joints(rest_joints, rotmats)
    return lbs.forward_kinematics(rotmats, rest_joints, parents)[0]


def bone_vectors(joints: torch.Tensor, parents: Sequence[int]) -> torch.Tensor:
    """Vector from each joint's parent to the joint, ``p_j - p_parent(j)``: (B, J, 3) -> (B, J - 1, 3).

    Entry ``j - 1`` is the bone ending at joint j; differences make the root translation drop out.
    """
    return joints[:, 1:] - joints[:, list(parents[1:])]


def swing_rotation(rest_dir: torch.Tensor, posed_dir: torch.Tensor) -> torch.Tensor:
    """The smallest rotation taking unit vector `rest_dir` onto unit vector `posed_dir`: (..., 3) -> (..., 3, 3).

    It turns about ``k = rest_dir x posed_dir`` by the angle between them (Eq. 5 of HybrIK); Rodrigues'
    formula with ``|k| = sin``, ``rest_dir . posed_dir = cos`` simplifies to
    ``I + [k]_x + [k]_x^2 / (1 + cos)``, with no division by |k|, so parallel bones (no swing) are
    smooth. Opposite directions (a 180° swing) have no unique axis: there the half-turn
    ``2 a a^T - I`` about an axis a perpendicular to `rest_dir` is returned (a network's first
    guesses can point a bone backwards; the result must still be a rotation, not NaN).
    """
    k = skew_matrix(torch.linalg.cross(rest_dir, posed_dir, dim=-1))
    cos = (rest_dir * posed_dir).sum(-1)[..., None, None]
    eye = torch.eye(3, dtype=k.dtype, device=k.device)
    opposite = 1 + cos < OPPOSITE_TOLERANCE
    swing = eye + k + k @ k / torch.where(opposite, torch.ones_like(cos), 1 + cos)
    if not bool(opposite.any()):
        return swing
    # Cross with the coordinate axis least aligned with rest_dir: never (near) parallel to it.
    least_aligned = F.one_hot(rest_dir.abs().argmin(-1), 3).to(rest_dir.dtype)
    axis = F.normalize(torch.linalg.cross(rest_dir, least_aligned, dim=-1), dim=-1)
    half_turn = 2 * axis[..., :, None] * axis[..., None, :] - eye
    return torch.where(opposite, half_turn, swing)


def twist_rotation(axis: torch.Tensor, twist: torch.Tensor) -> torch.Tensor:
    """Rotation about unit `axis` (..., 3) by the angle whose ``(cos, sin)`` is `twist` (..., 2): (..., 3, 3).

    Rodrigues' formula ``I + sin [a]_x + (1 - cos) [a]_x^2`` (Eq. 6 of HybrIK). `twist` is
    normalised first, so a network's raw 2-vector is a valid input, as in HybrIK.
    """
    cos, sin = F.normalize(twist, dim=-1)[..., None, None].unbind(-3)
    k = skew_matrix(axis)
    eye = torch.eye(3, dtype=k.dtype, device=k.device)
    return eye + sin * k + (1 - cos) * (k @ k)


def align_bone_directions(rest_dirs: torch.Tensor, posed_dirs: torch.Tensor) -> torch.Tensor:
    """The rotation R minimising ``sum_c |R rest_c - posed_c|^2``: (B, C, 3), (B, C, 3) unit vectors -> (B, 3, 3).

    The orthogonal Procrustes (Kabsch) problem, solved by the SVD of ``sum_c posed_c rest_c^T`` with
    det R = +1, via `hmrlab.geometry.similarity_transform` (``scale=False``). That function also
    fits a translation; adding the mirror image ``-v`` of every direction centres both sets at the
    joint without changing the minimiser (each pair costs twice one bone), so it solves this
    rotation-only problem. Needs at least two non-parallel bones.
    """
    source = torch.cat([rest_dirs, -rest_dirs], -2)
    target = torch.cat([posed_dirs, -posed_dirs], -2)
    return similarity_transform(source, target, scale=False)[1]


def twist_angles(
    rotmats: torch.Tensor, rest_joints: torch.Tensor, parents: Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Twist ``(cos, sin)`` of each parent's rotation about its rest bone: (B, J, 3, 3), (B or 1, J, 3) -> (B, J-1, 2).

    Swing-twist decomposition: any rotation ``R = swing twist(t, phi)`` with ``t`` a unit axis and
    the swing's axis perpendicular to ``t``. With ``q = (w, v)`` the quaternion of R and
    ``s = v . t``, the twist quaternion is ``(w, s t)`` normalised, so
    ``cos phi = (w^2 - s^2) / (w^2 + s^2)`` and ``sin phi = 2 w s / (w^2 + s^2)`` (independent of
    the sign of q). Entry ``j - 1`` decomposes ``rotmats[:, parents[j]]`` about
    ``rest_j - rest_parents[j]``, the twist `inverse_kinematics` takes. Undefined where the swing is 180°.
    """
    _check_tensor(rotmats, "rotmats", ("B", "J", 3, 3))
    parents = check_parents(parents, rotmats.shape[1])
    rest_joints = _batched_rest_joints(rest_joints, rotmats)
    rest_bones = bone_vectors(rest_joints, parents)
    _check_lengths(rest_bones, "rest_joints", parents, _COLLAPSED)
    axes = F.normalize(rest_bones, dim=-1)
    quaternions = matrix_to_quaternion(rotmats[:, parents[1:]])
    w, s = quaternions[..., 0], (quaternions[..., 1:] * axes).sum(-1)
    norm_sq = w * w + s * s
    return torch.stack([(w * w - s * s) / norm_sq, 2 * w * s / norm_sq], -1)


def inverse_kinematics(
    joints: torch.Tensor,
    rest_joints: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    twist: torch.Tensor | None = None,
    *,
    convention: str = "hmrlab",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations (B, J, 3, 3) that pose `rest_joints` onto `joints`, with the given twists.

    joints: (B, J, 3) posed joints in metres, with or without the root translation (only bones are
    used). rest_joints: (B or 1, J, 3) the template's rest joints (same units). twist: (B, J - 1, 2)
    ``(cos, sin)`` of the twist of each bone ``parents[j] -> j`` (entry ``j - 1``, normalised before
    use), or None for no twist. Top-down, each joint's rotation is the swing taking its rest bone onto
    the posed one in its parent's frame, after the twist about the rest bone (HybrIK, Sec. 3.2); joints
    with several children use `align_bone_directions` and ignore their children's twists; joints with
    no child get the identity. ``forward_kinematics(rotmats, rest_joints, parents)`` reproduces
    ``joints`` (minus the root translation) when the bone lengths match the rest pose's.

    Returns ``rotmats`` (B, J, 3, 3) and ``twist_angles(rotmats, ...)`` (B, J - 1, 2), the twists
    of the result (the normalised input where it was used).

    ``convention="hybrik"`` follows HybrIK's code (``batch_inverse_kinematics_transform``, eval mode),
    the rotations its checkpoints were trained to feed: (1) the twist of joint j's rotation is entry
    ``j - 1`` (indexed by the *rotated* joint, not by the bone's child), and the returned twists are
    indexed the same way; (2) a joint with several children other than the root (SMPL's spine3) swings
    toward its first child only (the neck) with its own twist, the other children (the collars) then
    starting from where that rotation puts them; (3) each swing aims from the position the rotations so
    far give the joint (rest bone lengths), not from the posed joint, falling back to the posed bone when
    the two targets differ by more than `HYBRIK_TOLERANCE` metres (so joints must be in metres); (4) the
    root aligns its children's bones weighted by their lengths. On HybrIK's 29-joint tree (SMPL's 24
    joints plus head top, finger and toe tips as children of 15, 22, 23, 10, 11) the hands, feet and head
    get rotations; HybrIK returns only the first 24, the five leaves get the identity here.
    """
    if convention not in ("hmrlab", "hybrik"):
        raise ValueError(f"convention must be 'hmrlab' or 'hybrik' (HybrIK's code); got {convention!r}")
    _check_tensor(joints, "joints", ("B", "J", 3))
    batch, num_joints = joints.shape[:2]
    parents = check_parents(parents, num_joints)
    rest_joints = _batched_rest_joints(rest_joints, joints)
    if twist is None:
        twist = joints.new_tensor([1.0, 0.0]).expand(batch, num_joints - 1, 2)
    _check_tensor(twist, "twist", (batch, num_joints - 1, 2))
    _check_lengths(twist, "twist", parents, "(cos, sin) is (0, 0), which is no angle; (1, 0) is no twist")
    rest_bones, posed_bones = bone_vectors(rest_joints, parents), bone_vectors(joints, parents)
    _check_lengths(rest_bones, "rest_joints", parents, _COLLAPSED)
    _check_lengths(posed_bones, "joints", parents, _COLLAPSED)
    rest_dirs = F.normalize(rest_bones, dim=-1)
    eye = torch.eye(3, dtype=joints.dtype, device=joints.device).expand(batch, 3, 3)
    hybrik = convention == "hybrik"
    local: list[torch.Tensor] = []
    world: list[torch.Tensor] = []
    reached: list[torch.Tensor] = []  # hybrik: where the rotations so far put each joint, root at rest
    for joint, (parent, children) in enumerate(zip(parents, _children(parents))):
        parent_world = eye if parent < 0 else world[parent]
        bones = [child - 1 for child in children]
        if hybrik:
            reached.append(rest_joints[:, 0] if parent < 0
                           else reached[parent] + (parent_world @ rest_bones[:, joint - 1, :, None])[..., 0])
        # The posed bones seen from the parent's frame: what this joint's own rotation must produce.
        posed_dirs = F.normalize(posed_bones[:, bones] @ parent_world, dim=-1)
        if not children:
            rotation = eye
        elif hybrik and parent < 0:
            rotation = align_bone_directions(rest_bones[:, bones], posed_bones[:, bones])
        elif len(children) == 1 or hybrik:
            bone = bones[0]
            rest_dir, posed_dir, turn = rest_dirs[:, bone], posed_dirs[:, 0], twist[:, bone]
            if hybrik:
                posed_dir = _hybrik_target(joints, rest_joints[:, 0], rest_bones, posed_bones, reached[joint], bone,
                                           parent_world)
                turn = twist[:, joint - 1]
            rotation = swing_rotation(rest_dir, posed_dir) @ twist_rotation(rest_dir, turn)
        else:
            rotation = align_bone_directions(rest_dirs[:, bones], posed_dirs)
        local.append(rotation)
        world.append(parent_world @ rotation)
    rotmats = torch.stack(local, 1)
    twists = twist_angles(rotmats, rest_joints, parents)
    if hybrik:  # entry j - 1: joint j's rotation about its first child's bone
        first = [children[0] - 1 if children else None for children in _children(parents)[1:]]
        none = twists.new_tensor([1.0, 0.0]).expand(batch, 2)
        twists = torch.stack([none if c is None else twists[:, c] for c in first], 1)
    return rotmats, twists


def _hybrik_target(
    joints: torch.Tensor, rest_root: torch.Tensor, rest_bones: torch.Tensor, posed_bones: torch.Tensor,
    reached: torch.Tensor, bone: int, parent_world: torch.Tensor,
) -> torch.Tensor:
    """HybrIK's posed direction (B, 3) of bone ``bone`` (child ``bone + 1``) in the parent's frame: from the
    joint's reached position (B, 3) to the posed child (the posed root moved to the rest root), or along
    the posed bone where the two targets differ by more than `HYBRIK_TOLERANCE` metres."""
    target = joints[:, bone + 1] - joints[:, 0] + rest_root - reached
    posed = posed_bones[:, bone]
    at_rest_length = posed * (torch.linalg.vector_norm(rest_bones[:, bone], dim=-1, keepdim=True)
                              / torch.linalg.vector_norm(posed, dim=-1, keepdim=True))
    far = torch.linalg.vector_norm(target - at_rest_length, dim=-1, keepdim=True) > HYBRIK_TOLERANCE
    target = torch.where(far, at_rest_length, target)
    return F.normalize((target[:, None] @ parent_world)[:, 0], dim=-1)


__all__ = [
    "align_bone_directions", "bone_vectors", "forward_kinematics", "inverse_kinematics",
    "swing_rotation", "twist_angles", "twist_rotation",
]

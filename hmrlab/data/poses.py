"""Anatomical joint limits for SMPL's 24 joints, and sampling of plausible static poses.

**Parameterization.** Each joint's local rotation (its SMPL axis-angle, relative to its parent) is
written as three intrinsic Euler angles about the axes of the T-pose body: x points to the body's
left, y up, z forward (SMPL's frame and the free model's). An order ``"XZY"`` means
``R = R_x(a) R_z(b) R_y(c)``: turn about x, then about the new z, then about the newest y. Angles are
stored by axis, ``(x, y, z)``, whatever the order, in radians (the table below is in degrees).

The order is chosen per joint so that the innermost angle is the twist about the bone and the
middle one stays inside (-90°, 90°) over the whole range, so every rotation inside the limits has
exactly one set of angles (no gimbal lock within the limits):

- trunk, neck, head and legs, bones along y: ``"XZY"``, flexion/extension about x, side bending
  or ab/adduction about z, twist about y;
- collars, shoulders, wrists and hands, bones along x: ``"ZYX"``, raising/lowering in the frontal
  plane about z, swinging forward/backward about y, twist about x. The shoulder's forward swing is
  the middle angle, so an arm straight ahead is the limit (85°) of its range;
- elbows: ``"YZX"``, the hinge (y, up to 150°) outermost;
- pelvis (root): ``"YXZ"``, yaw (heading) outermost; it has no anatomical limit, so its range is
  the whole range of the angles.

**Signs, left side** (the right side is the mirror image: reflecting x -> -x keeps angles about x
and negates those about y and z, so right-side y/z ranges are the left ones negated). Positive
angles turn by the right-hand rule: +x turns up (+y) toward forward (+z), +y turns forward toward
left (+x), +z turns left toward up.

=============  ==========================  =============================  ========================
joint          x                           y                              z
=============  ==========================  =============================  ========================
hip            - flexion / + extension     + external / - internal rot.   + abduction / - adduction
knee           + flexion                   tibial rotation (small)        (hinge: laxity only)
ankle          + plantar- / - dorsiflexion + toe-out / - toe-in           - inversion / + eversion
foot (toes)    + flexion / - extension     small                          small
spine, neck    + flexion / - extension     + turn left / - turn right     + bend right / - left
collar         axial (small)               - forward / + backward         + elevation
shoulder       - external / + internal     - forward / + backward swing   + up / - down (-80: arm
               rotation                                                   alongside the hip)
elbow          twist (small)               - flexion (hinge, 0 to 150)    carrying angle (small)
wrist          - supination / + pronation  - radial / + ulnar deviation   - flexion / + extension
hand (finger)  small                       small                          - flexion / + extension
=============  ==========================  =============================  ========================

Limits are independent per angle (a box), a first approximation: coupled limits such as the
shoulder's cone or the hip flexion a straight knee allows are not modelled. `sample_poses` stays
away from those corners by drawing near a relaxed standing pose.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from hmrlab.body.skeletons import SMPL_24
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hmrlab.validation import check_shape


class JointRange(NamedTuple):
    """One joint's Euler order and, per axis (x, y, z) in degrees: limits, relaxed pose, spread.

    `relaxed` and `std` define the truncated normal `sample_poses` draws from; `std` is a typical
    deviation of everyday poses, not a measured statistic.
    """

    order: str
    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    relaxed: tuple[float, float, float]
    std: tuple[float, float, float]


# Ranges of motion from the American Academy of Orthopaedic Surgeons (Greene & Heckman, "The
# Clinical Measurement of Joint Motion", AAOS 1994) and Norkin & White ("Measurement of Joint
# Motion: A Guide to Goniometry", 5th ed., 2016): hip flexion 120, extension 30, abduction 45,
# adduction 30, rotation 45/45; knee flexion 0-150; ankle plantarflexion 50, inversion 35, eversion
# 15, forefoot adduction 20, abduction 10; great-toe MTP extension 70, flexion 45; thoracolumbar
# flexion 80, extension 25, side bending 35, rotation 45 (split over spine1-3); cervical flexion 45,
# extension 45, side bending 45, rotation 60 (split between neck and head); shoulder flexion 180,
# abduction 180, horizontal abduction 45, internal rotation 70, external rotation 90; elbow flexion
# 150; forearm pronation/supination 80/80; wrist flexion 80, extension 70, radial deviation 20,
# ulnar deviation 30; finger MCP flexion 90, extension 45.
# Deliberate departures: ankle dorsiflexion 30 (the weight-bearing lunge range, beyond the 20 of
# the open-chain test, so that squats are possible); shoulder lowering stops 10 degrees short of
# vertical and collar depression at 5, because SMPL-shaped hips are as wide as the shoulder joints
# and a hanging arm tilted further passes into them; collars, knee and elbow side axes small
# allowances (SMPL fits put some motion there); forearm rotation lives at SMPL's wrist joint and
# is measured from the T-pose's palm-down hand, which is already near full pronation.
_LEFT_AND_CENTRE: dict[str, JointRange] = {
    #                     order   lower (x, y, z)         upper (x, y, z)      relaxed (x, y, z)  std (x, y, z)
    "pelvis": JointRange("YXZ", (-90.0, -180.0, -180.0), (90.0, 180.0, 180.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    "left_hip": JointRange("XZY", (-120.0, -45.0, -30.0), (30.0, 45.0, 45.0), (-3.0, 4.0, 2.0), (15.0, 10.0, 7.0)),
    "spine1": JointRange("XZY", (-10.0, -15.0, -12.0), (30.0, 15.0, 12.0), (0.0, 0.0, 0.0), (6.0, 5.0, 4.0)),
    "left_knee": JointRange("XZY", (0.0, -10.0, -5.0), (150.0, 10.0, 5.0), (5.0, 0.0, 0.0), (15.0, 3.0, 1.5)),
    "spine2": JointRange("XZY", (-10.0, -15.0, -12.0), (30.0, 15.0, 12.0), (0.0, 0.0, 0.0), (6.0, 5.0, 4.0)),
    "left_ankle": JointRange("XZY", (-30.0, -20.0, -35.0), (50.0, 10.0, 15.0), (-2.0, 0.0, 0.0), (8.0, 5.0, 5.0)),
    "spine3": JointRange("XZY", (-10.0, -15.0, -12.0), (30.0, 15.0, 12.0), (0.0, 0.0, 0.0), (6.0, 5.0, 4.0)),
    "left_foot": JointRange("XZY", (-60.0, -10.0, -10.0), (40.0, 10.0, 10.0), (0.0, 0.0, 0.0), (8.0, 3.0, 3.0)),
    "neck": JointRange("XZY", (-25.0, -30.0, -22.0), (25.0, 30.0, 22.0), (0.0, 0.0, 0.0), (8.0, 10.0, 5.0)),
    "left_collar": JointRange("ZYX", (-10.0, -15.0, -5.0), (10.0, 15.0, 25.0), (0.0, 0.0, 0.0), (2.0, 4.0, 4.0)),
    "head": JointRange("XZY", (-20.0, -30.0, -22.0), (25.0, 30.0, 22.0), (0.0, 0.0, 0.0), (8.0, 10.0, 5.0)),
    "left_shoulder": JointRange("ZYX", (-90.0, -85.0, -80.0), (70.0, 45.0, 90.0), (0.0, -5.0, -62.0), (12.0, 15.0, 20.0)),
    "left_elbow": JointRange("YZX", (-10.0, -150.0, -5.0), (10.0, 0.0, 5.0), (0.0, -20.0, 0.0), (4.0, 20.0, 2.0)),
    "left_wrist": JointRange("ZYX", (-90.0, -20.0, -80.0), (20.0, 30.0, 70.0), (0.0, 0.0, -5.0), (15.0, 8.0, 12.0)),
    "left_hand": JointRange("ZYX", (-10.0, -10.0, -90.0), (10.0, 10.0, 30.0), (0.0, 0.0, -15.0), (3.0, 3.0, 10.0)),
}


def _mirrored(row: JointRange) -> JointRange:
    """The other side's range: reflecting x -> -x negates the angles about y and z."""

    def flip(values: tuple[float, float, float]) -> tuple[float, float, float]:
        return (values[0], -values[1], -values[2])

    lower, upper = flip(row.lower), flip(row.upper)
    return JointRange(
        row.order,
        tuple(map(min, lower, upper)),
        tuple(map(max, lower, upper)),
        flip(row.relaxed),
        row.std,
    )


JOINT_LIMITS: dict[str, JointRange] = {
    name: _LEFT_AND_CENTRE.get(name) or _mirrored(_LEFT_AND_CENTRE["left" + name.removeprefix("right")])
    for name in SMPL_24.joint_names
}
"""Per SMPL joint (in SMPL's order): Euler order, limits, relaxed pose and spread, in degrees."""

EULER_ORDERS: tuple[str, ...] = tuple(row.order for row in JOINT_LIMITS.values())
_AXIS = {"X": 0, "Y": 1, "Z": 2}
# (24, 3) axis index of the outer, middle and inner rotation of each joint.
_ORDER_AXES = torch.tensor([[_AXIS[a] for a in order] for order in EULER_ORDERS])


def _column(field: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(24, 3) one field of `JOINT_LIMITS` (``"lower"``, ``"upper"``, ``"relaxed"``, ``"std"``) in radians."""
    values = np.array([getattr(row, field) for row in JOINT_LIMITS.values()])
    return torch.as_tensor(np.radians(values), dtype=dtype)


def _check_pose(pose: torch.Tensor, name: str) -> None:
    check_shape(pose, name, (SMPL_24.num_joints, 3))


def euler_to_matrix(euler: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of per-joint Euler angles: (..., 24, 3) radians -> (..., 24, 3, 3).

    Angles are stored by axis (x, y, z); joint j composes them in the order ``EULER_ORDERS[j]``
    (intrinsic, outermost first), each elementary rotation built by `axis_angle_to_matrix`.
    """
    _check_pose(euler, "euler")
    # diag_embed turns (x, y, z) into the three axis-angle vectors (x,0,0), (0,y,0), (0,0,z).
    elementary = axis_angle_to_matrix(torch.diag_embed(euler))  # (..., 24, 3 axes, 3, 3)
    joints = torch.arange(SMPL_24.num_joints)
    outer, middle, inner = (elementary[..., joints, _ORDER_AXES[:, k], :, :] for k in range(3))
    return outer @ middle @ inner


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """Per-joint Euler angles of rotation matrices: (..., 24, 3, 3) -> (..., 24, 3) radians, by axis.

    For ``R = R_i(a) R_j(b) R_k(c)`` with (i, j, k) the joint's axes and s = +1 for a cyclic order
    (XYZ, YZX, ZXY), -1 otherwise: ``b = asin(s R_ik)``, ``a = atan2(-s R_jk, R_kk)``,
    ``c = atan2(-s R_ij, R_ii)``. The middle angle is in [-90°, 90°], the others in (-180°, 180°].
    """
    check_shape(matrix, "matrix", (SMPL_24.num_joints, 3, 3))
    i, j, k = _ORDER_AXES.unbind(-1)
    sign = torch.where((j - i) % 3 == 1, 1.0, -1.0).to(matrix.dtype)
    joints = torch.arange(SMPL_24.num_joints)

    def entry(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return matrix[..., joints, row, col]

    middle = torch.asin((sign * entry(i, k)).clamp(-1.0, 1.0))
    outer = torch.atan2(-sign * entry(j, k), entry(k, k))
    inner = torch.atan2(-sign * entry(i, j), entry(i, i))
    in_order = torch.stack([outer, middle, inner], -1)
    # position of axis x, y, z within each joint's order
    return in_order[..., joints[:, None], torch.argsort(_ORDER_AXES, -1)]


def euler_to_axis_angle(euler: torch.Tensor) -> torch.Tensor:
    """SMPL axis-angle pose from per-joint Euler angles: (..., 24, 3) radians -> (..., 24, 3)."""
    return matrix_to_axis_angle(euler_to_matrix(euler))


def axis_angle_to_euler(pose: torch.Tensor) -> torch.Tensor:
    """Per-joint Euler angles (radians, by axis) of a SMPL axis-angle pose: (..., 24, 3) -> (..., 24, 3)."""
    _check_pose(pose, "pose")
    return matrix_to_euler(axis_angle_to_matrix(pose))


def within_limits(pose: torch.Tensor, tolerance: float = 1e-4) -> torch.Tensor:
    """Which joints of an axis-angle pose (..., 24, 3) are inside `JOINT_LIMITS`: (..., 24) bool.

    `tolerance` (radians) absorbs rounding in the Euler decomposition; the root is always inside.
    """
    euler = axis_angle_to_euler(pose)
    lower, upper = _column("lower", euler.dtype), _column("upper", euler.dtype)
    return ((euler >= lower - tolerance) & (euler <= upper + tolerance)).all(-1)


def clamp_to_limits(pose: torch.Tensor) -> torch.Tensor:
    """An axis-angle pose (..., 24, 3) with each joint's Euler angles clamped into `JOINT_LIMITS`.

    Clamping is per angle (the box of the table), not the nearest rotation inside the limits;
    poses already inside come back unchanged (up to rounding).
    """
    euler = axis_angle_to_euler(pose)
    clamped = torch.clamp(euler, _column("lower", euler.dtype), _column("upper", euler.dtype))
    return euler_to_axis_angle(clamped)


def _truncated_normal(
    mean: torch.Tensor, std: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
    shape: tuple[int, ...], generator: torch.Generator | None,
) -> torch.Tensor:
    """Samples of N(mean, std) restricted to [lower, upper] by inverting the normal CDF; std may be 0."""
    safe_std = torch.where(std > 0, std, torch.ones_like(std))
    cdf_low = torch.special.ndtr((lower - mean) / safe_std)
    cdf_high = torch.special.ndtr((upper - mean) / safe_std)
    u = torch.rand(shape, generator=generator, dtype=mean.dtype)
    x = mean + safe_std * torch.special.ndtri(cdf_low + u * (cdf_high - cdf_low))
    return torch.where(std > 0, x.clamp(lower, upper), mean.expand(shape))


def sample_poses(
    n: int, generator: torch.Generator | None = None, spread: float = 1.0, random_yaw: bool = False
) -> torch.Tensor:
    """`n` plausible standing poses, (n, 24, 3) float32 axis-angle.

    Each joint angle is drawn independently from a normal centred on the relaxed pose of
    `JOINT_LIMITS` (standing, arms down, knees and elbows slightly bent) with standard deviation
    ``spread * std``, truncated to the joint's limits. The root has no rotation, or with
    ``random_yaw=True`` a heading uniform in [-180°, 180°). Pass a seeded ``torch.Generator`` for
    reproducible samples.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int (the number of poses); got {n!r}")
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0 (0 gives the relaxed pose, 1 the default spread); got {spread}")
    shape = (n, SMPL_24.num_joints, 3)
    euler = _truncated_normal(
        _column("relaxed"), spread * _column("std"), _column("lower"), _column("upper"), shape, generator
    )
    if random_yaw:
        euler[:, 0, 1] = (2 * torch.rand(n, generator=generator, dtype=euler.dtype) - 1) * math.pi
    return euler_to_axis_angle(euler).float()


__all__ = [
    "EULER_ORDERS", "JOINT_LIMITS", "JointRange", "axis_angle_to_euler", "clamp_to_limits",
    "euler_to_axis_angle", "euler_to_matrix", "matrix_to_euler", "sample_poses", "within_limits",
]

"""Rotations, rigid/similarity alignment and camera projections, batched over leading dims.

Every function takes torch tensors with any number of leading dimensions ``...`` (e.g. ``(B,)``
or ``(B, T, J)``), works in float32 or float64, and is differentiable.

Conventions used throughout:

* Rotation matrices act on column vectors, ``x' = R x``; a row-vector point set ``(..., N, 3)``
  is rotated as ``points @ R.transpose(-1, -2)``.
* Axis-angle ``(..., 3)`` is the rotation vector ``theta * axis`` (as in SMPL and SciPy's rotvec).
* Quaternions are ``(..., 4)`` in the order **(w, x, y, z)**, scalar first (as in PyTorch3D).
  SciPy's ``Rotation.as_quat()`` uses (x, y, z, w): reorder with ``q[..., [3, 0, 1, 2]]``.
* The 6D representation of Zhou et al. (CVPR 2019) is the first two **columns** of R, flattened
  row by row: ``R[..., :, :2].reshape(..., 6) = (R00, R01, R10, R11, R20, R21)``. This is the layout
  of SPIN/HMR-style code (``x.view(-1, 3, 2)``); PyTorch3D instead uses the first two rows.

Invalid inputs raise ValueError, never a silent substitute:

* rotations and point sets must be real floating-point tensors (`hmrlab.validation.check_floating`):
  integer, boolean and complex tensors are refused (a complex tensor is not reduced to its real part);
  `similarity_transform` needs float32 or float64 (its SVD has no half-precision kernel);
* inputs with a validity condition beyond their shape are checked, NaN and inf included (one device
  sync each): a quaternion must have a non-zero finite norm (the zero quaternion is no rotation, not
  the identity), the two 3-vectors of a 6D rotation must be finite, the first non-zero and the second
  not parallel to it (else Gram-Schmidt gives no rotation); the point sets of alignment and projection
  must be finite (`hmrlab.validation.check_points`);
* the other conversions (axis-angle, matrices) do no value checks: NaN or inf in gives NaN out, as in
  torch itself, at no device sync.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import torch
import torch.nn.functional as F

from hmrlab.validation import (
    check_flip_permutation,
    check_floating,
    check_points,
    check_real,
    check_same_shape,
    check_shape,
)

NORM_EPS = 1e-12
"""Norms at or below this are zero for `quaternion_to_matrix` and `rot6d_to_matrix` (F.normalize's eps)."""


def _check_rotation_input(x: torch.Tensor, name: str, pattern: tuple[int, ...]) -> None:
    check_floating(x, name)
    check_shape(x, name, pattern)


def _above(norms: torch.Tensor, limit: torch.Tensor | float) -> torch.Tensor:
    """Where ``norms`` are finite and greater than ``limit`` (False for NaN)."""
    return torch.isfinite(norms) & (norms > limit)


def _refuse_unless(ok: torch.Tensor, name: str, problem: str) -> None:
    """ValueError naming how many entries of ``name`` are not ``ok`` (one device sync)."""
    if not bool(ok.all()):
        raise ValueError(f"{name} has {int((~ok).sum())} of {ok.numel()} entries that {problem}")


def _small_angle_threshold(dtype: torch.dtype) -> float:
    # Below sqrt(eps) in theta^2 the 4th-order Taylor series is exact to machine precision.
    return torch.finfo(dtype).eps ** 0.5


def _half_angle_terms(axis_angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``cos(theta/2)`` and ``sin(theta/2) / theta`` for ``theta = |axis_angle|``, (...,).

    Both are smooth even functions of theta; near theta = 0 their Taylor series replace the
    divisions, so values and gradients stay finite at exactly zero rotation.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < _small_angle_threshold(axis_angle.dtype)
    # sqrt has an infinite derivative at 0: feed it a harmless value where the series is used.
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta_sq), theta_sq))
    cos_half = torch.where(
        small, 1 - theta_sq / 8 + theta_sq**2 / 384, torch.cos(theta / 2)
    )
    sin_half_over_theta = torch.where(
        small, 0.5 - theta_sq / 48 + theta_sq**2 / 3840, torch.sin(theta / 2) / theta
    )
    return cos_half, sin_half_over_theta


def skew_matrix(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` with ``[v]_x u = v x u``: (..., 3) -> (..., 3, 3)."""
    _check_rotation_input(v, "v", (3,))
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    rows = (
        torch.stack([zero, -z, y], -1),
        torch.stack([z, zero, -x], -1),
        torch.stack([-y, x, zero], -1),
    )
    return torch.stack(rows, -2)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3): ``R = I + a K + b K^2`` with ``K = [v]_x``.

    With ``theta = |v|``: ``a = sin(theta)/theta = 2 s c``, ``b = (1 - cos theta)/theta^2 = 2 s^2``,
    where ``c = cos(theta/2)``, ``s = sin(theta/2)/theta``; written this way there is no
    cancellation at small angles and the gradient is finite at v = 0 (SMPL's `batch_rodrigues`
    adds 1e-8 to theta instead).
    """
    _check_rotation_input(axis_angle, "axis_angle", (3,))
    c, s = _half_angle_terms(axis_angle)
    a = (2 * s * c)[..., None, None]
    b = (2 * s * s)[..., None, None]
    k = skew_matrix(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> unit quaternion (..., 4), (w, x, y, z): ``(cos(theta/2), sin(theta/2) axis)``."""
    _check_rotation_input(axis_angle, "axis_angle", (3,))
    c, s = _half_angle_terms(axis_angle)
    return torch.cat([c[..., None], s[..., None] * axis_angle], -1)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) (w, x, y, z), any non-zero norm -> axis-angle (..., 3) with angle in [0, pi].

    ``theta = 2 atan2(|v|, w)`` is accurate at every angle (unlike ``2 acos(w)`` near 0 or
    ``2 asin(|v|)`` near pi); q and -q give the same result. ValueError for a zero, NaN or inf
    quaternion (`_quaternion_unit`).
    """
    q = _quaternion_unit(quaternion)
    # q and -q are the same rotation; choosing w >= 0 keeps theta in [0, pi].
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    norm_sq = (v * v).sum(-1)
    small = norm_sq < _small_angle_threshold(q.dtype)
    norm = torch.sqrt(torch.where(small, torch.ones_like(norm_sq), norm_sq))
    # theta / |v| -> 2/w * (1 - |v|^2 / (3 w^2)) as |v| -> 0 (Taylor series of atan).
    theta_over_norm = torch.where(
        small, 2 / w * (1 - norm_sq / (3 * w * w)), 2 * torch.atan2(norm, w) / norm
    )
    return theta_over_norm[..., None] * v


def _quaternion_unit(quaternion: torch.Tensor) -> torch.Tensor:
    """The unit quaternion (..., 4) of any finite non-zero one; ValueError for a zero, NaN or inf
    quaternion (no rotation: F.normalize would give zero, then the identity or NaN)."""
    _check_rotation_input(quaternion, "quaternion", (4,))
    _refuse_unless(_above(torch.linalg.vector_norm(quaternion.detach(), dim=-1), NORM_EPS), "quaternion",
                   "are zero, NaN or inf: the quaternion of a rotation is finite and non-zero, e.g. (1, 0, 0, 0)")
    return F.normalize(quaternion, dim=-1)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) (w, x, y, z), normalised first -> rotation matrix (..., 3, 3). ValueError for a zero,
    NaN or inf quaternion."""
    w, x, y, z = _quaternion_unit(quaternion).unbind(-1)
    rows = (
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    )
    return torch.stack(rows, -2)


def _sqrt_positive(x: torch.Tensor) -> torch.Tensor:
    """sqrt(max(x, 0)) with zero (not infinite) gradient where x <= 0."""
    positive = x > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), 0.0)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4), (w, x, y, z), with w >= 0.

    Shepperd's method: each of ``4w^2 = 1 + tr R``, ``4x^2 = 1 + R00 - R11 - R22`` (and y, z alike)
    gives the quaternion through the off-diagonal entries divided by that component; we use the
    largest component, so the division is never by less than 1/2 and every angle, pi included,
    is accurate.
    """
    _check_rotation_input(matrix, "matrix", (3, 3))
    m = matrix
    r00, r01, r02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    r10, r11, r12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    r20, r21, r22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # Row i is 4 * q_i * q, the quaternion scaled by four times its i-th component.
    candidates = torch.stack(
        [
            torch.stack([1 + r00 + r11 + r22, r21 - r12, r02 - r20, r10 - r01], -1),
            torch.stack([r21 - r12, 1 + r00 - r11 - r22, r10 + r01, r02 + r20], -1),
            torch.stack([r02 - r20, r10 + r01, 1 - r00 + r11 - r22, r21 + r12], -1),
            torch.stack([r10 - r01, r20 + r02, r21 + r12, 1 - r00 - r11 + r22], -1),
        ],
        -2,
    )
    four_q_sq = torch.diagonal(candidates, dim1=-2, dim2=-1)
    # 2|q_i| = sqrt(4 q_i^2); clamping only affects the rows we do not pick (|q_i| < 1/2 there).
    two_q_abs = _sqrt_positive(four_q_sq).clamp(min=0.1)
    quats = candidates / (2 * two_q_abs[..., None])
    best = four_q_sq.argmax(-1)
    q = torch.gather(quats, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi], via the quaternion.

    At exactly pi both ``+pi axis`` and ``-pi axis`` are correct; either may be returned.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """6D rotation (Zhou et al., CVPR 2019, Sec. B) (..., 6) -> rotation matrix (..., 3, 3).

    The 6 numbers are two 3-vectors stored as the columns of a (3, 2) matrix, row by row (the
    module docstring's layout). Gram-Schmidt turns them into the first two columns ``b1, b2`` of
    R; the third column is ``b1 x b2``. Any input whose two vectors are independent is valid; a zero
    first vector, a second one parallel to it (to within the square root of the dtype's epsilon,
    relative to its length), NaN or inf raise ValueError, as no rotation would come out.
    """
    _check_rotation_input(rot6d, "rot6d", (6,))
    two_columns = rot6d.reshape(*rot6d.shape[:-1], 3, 2)
    a1, a2 = two_columns[..., 0], two_columns[..., 1]
    b1 = F.normalize(a1, dim=-1)
    residual = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    with torch.no_grad():
        relative = torch.finfo(torch.promote_types(rot6d.dtype, torch.float32)).eps ** 0.5
        ok = _above(torch.linalg.vector_norm(a1, dim=-1), NORM_EPS) & _above(
            torch.linalg.vector_norm(residual, dim=-1), relative * torch.linalg.vector_norm(a2, dim=-1))
    _refuse_unless(ok, "rot6d", "are no rotation: the first 3-vector (R00, R10, R20) is zero, NaN or inf, or the "
                   "second (R01, R11, R21) is zero or parallel to it; they must be independent, e.g. "
                   "(1, 0, 0, 1, 0, 0)")
    b2 = F.normalize(residual, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -1)


def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrix (..., 3, 3) -> 6D (..., 6): its first two columns, flattened row by row."""
    _check_rotation_input(matrix, "matrix", (3, 3))
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


def similarity_transform(
    source: torch.Tensor, target: torch.Tensor, *, scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity transform (Umeyama, TPAMI 1991) from `source` onto `target`.

    Finds, per batch item, s, R, t minimising ``sum_n |target_n - (s R source_n + t)|^2``, i.e. in
    row-vector form ``target ≈ s * source @ R.transpose(-1, -2) + t[..., None, :]``. With
    ``Σ = Yc^T Xc / N`` the cross-covariance of the centred sets and ``Σ = U D V^T`` its SVD:
    ``R = U S V^T`` with ``S = diag(1, 1, det(U V^T))``, so det R = +1 even where the best
    orthogonal matrix would be a reflection; ``s = tr(D S) / var(source)`` (1 when
    ``scale=False``); ``t = mean(target) - s R mean(source)``.

    source, target: (..., N, 3), same units. Returns s (...,), R (..., 3, 3), t (..., 3).
    Gradients through the SVD are undefined when singular values repeat (e.g. N < 3 or a
    symmetric point set). A source with all points equal gets s = 0 (t = mean(target)).
    """
    check_points(source, "source")
    check_points(target, "target")
    check_same_shape(source, target, ("source", "target"))
    for x, name in ((source, "source"), (target, "target")):
        check_floating(x, name, (torch.float32, torch.float64))
    mu_source = source.mean(-2, keepdim=True)
    mu_target = target.mean(-2, keepdim=True)
    x = source - mu_source
    y = target - mu_target
    covariance = y.transpose(-1, -2) @ x / source.shape[-2]
    u, d, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.det(u @ vh))
    signs = torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1)
    rotation = u @ (signs[..., :, None] * vh)
    if scale:
        var_source = (x * x).sum((-1, -2)) / source.shape[-2]
        tiny = torch.finfo(source.dtype).tiny
        s = (d * signs).sum(-1) / var_source.clamp(min=tiny)
    else:
        s = torch.ones(source.shape[:-2], dtype=source.dtype, device=source.device)
    t = mu_target - s[..., None, None] * mu_source @ rotation.transpose(-1, -2)
    return s, rotation, t[..., 0, :]


def procrustes_align(
    source: torch.Tensor, target: torch.Tensor, *, scale: bool = True
) -> torch.Tensor:
    """`source` (..., N, 3) moved by the best similarity (or rigid, ``scale=False``) onto `target`.

    Returns ``s * source @ R^T + t`` (..., N, 3), see `similarity_transform`. This is the
    alignment of Human3.6M Protocol 2 (PA-MPJPE).
    """
    s, rotation, t = similarity_transform(source, target, scale=scale)
    return s[..., None, None] * source @ rotation.transpose(-1, -2) + t[..., None, :]


def perspective_projection(
    points: torch.Tensor,
    focal_length: float | torch.Tensor,
    principal_point: torch.Tensor | Sequence[float],
    *,
    rotation: torch.Tensor | None = None,
    translation: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pinhole projection of 3D points to pixels: ``u = f_x X/Z + c_x``, ``v = f_y Y/Z + c_y``.

    points: (..., N, 3) in world units (e.g. metres). If given, the camera extrinsics are applied
    first, ``X_cam = R X + t``: rotation (..., 3, 3), translation (..., 3). focal_length: a float,
    a 0-d tensor, or (..., 2) as (f_x, f_y), in pixels. principal_point: (..., 2) (c_x, c_y) in
    pixels. Returns (..., N, 2) pixels. Raises ValueError if any point has Z <= 0 (behind or on
    the camera plane). No lens distortion.
    """
    check_points(points, "points")
    if rotation is not None:
        check_shape(rotation, "rotation", (3, 3))
        points = points @ rotation.transpose(-1, -2)
    if translation is not None:
        check_shape(translation, "translation", (3,))
        points = points + translation[..., None, :]
    depth = points[..., 2:]
    if not bool((depth > 0).all()):
        raise ValueError(
            f"perspective_projection needs every point in front of the camera (Z > 0); "
            f"{int((depth <= 0).sum())} point(s) have Z <= 0. Check the camera translation."
        )
    focal = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    if focal.ndim > 0:
        check_shape(focal, "focal_length", (2,))
        focal = focal[..., None, :]
    center = torch.as_tensor(principal_point, dtype=points.dtype, device=points.device)
    check_shape(center, "principal_point", (2,))
    return focal * points[..., :2] / depth + center[..., None, :]


def weak_perspective_projection(
    points: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """HMR's weak-perspective camera: ``s * (X_xy + t)``, depth ignored.

    This is ``batch_orth_proj_idrot`` of HMR (Kanazawa et al. 2018), also used by SPIN and VIBE
    with ``pred_cam = (s, t_x, t_y)``: the translation is added **before** scaling, in the
    points' units. (Some code writes ``s * X_xy + t'``; the two agree with ``t' = s t``.)
    points: (..., N, 3); scale: (...,); translation: (..., 2). Returns (..., N, 2) in the units
    the camera was trained for (HMR: normalised image coordinates in [-1, 1]).
    """
    check_shape(points, "points", ("N", 3))
    check_real(points, "points")
    check_shape(translation, "translation", (2,))
    if tuple(scale.shape) != tuple(points.shape[:-2]):
        raise ValueError(
            f"scale must have shape {tuple(points.shape[:-2])} (the leading dims of points); "
            f"got {tuple(scale.shape)}"
        )
    return scale[..., None, None] * (points[..., :2] + translation[..., None, :])


def root_align(points: torch.Tensor, root: int | Sequence[int] = 0) -> torch.Tensor:
    """Subtract the root joint, or the mean of several joints, from every joint.

    points: (..., J, 3). root: a joint index (the pelvis, 0 for SMPL and Human3.6M-17) or a
    sequence of indices whose mean is the root (e.g. the two hips, (2, 3) in LSP-14 as used for
    3DPW). Returns (..., J, 3) in the same units.
    """
    check_floating(points, "points")
    check_shape(points, "points", ("J", 3))
    indices = [int(root)] if isinstance(root, Integral) else [int(i) for i in root]
    num_joints = points.shape[-2]
    if not indices or any(not -num_joints <= i < num_joints for i in indices):
        raise ValueError(
            f"root must be a joint index or a non-empty list of indices in [0, {num_joints}); "
            f"got {root!r}"
        )
    return points - points[..., indices, :].mean(-2, keepdim=True)


def mirror_poses(poses: torch.Tensor, flip_permutation: torch.Tensor) -> torch.Tensor:
    """Left-right mirror of poses (..., J, C), 2D or 3D, centred on the image centre or the root:
    x negated, left and right joints swapped by `flip_permutation` (J,) (e.g. ``H36M_17.flip_permutation``).

    ValueError unless `flip_permutation` holds J integers that permute range(J) in pairs
    (`hmrlab.validation.check_flip_permutation`): a short index would silently drop joints."""
    check_shape(poses, "poses", ("J", "C"))
    check_real(poses, "poses")
    check_flip_permutation(flip_permutation, poses.shape[-2])
    mirrored = poses[..., flip_permutation, :].clone()
    mirrored[..., 0] *= -1
    return mirrored

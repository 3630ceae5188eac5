import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab import geometry as g

N_ROT = 200


@pytest.fixture(scope="module")
def rotations() -> Rotation:
    return Rotation.random(N_ROT, random_state=0)


def as_t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def wxyz(scipy_quat: np.ndarray) -> np.ndarray:
    """SciPy's (x, y, z, w) to our (w, x, y, z)."""
    return scipy_quat[..., [3, 0, 1, 2]]


def assert_same_quaternion(q: torch.Tensor, ref: torch.Tensor, atol: float) -> None:
    """q and -q are the same rotation."""
    err = torch.minimum((q - ref).abs().amax(-1), (q + ref).abs().amax(-1))
    assert err.max() < atol


def axis_angles(angles, seed=1) -> torch.Tensor:
    """One random unit axis per angle, times that angle: (len(angles), 3)."""
    axes = np.random.default_rng(seed).normal(size=(len(angles), 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return as_t(axes * np.asarray(angles)[:, None])


# --- rotation conversions against SciPy ---------------------------------------------------


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_conversions_match_scipy(rotations, dtype, atol):
    rotvec = as_t(rotations.as_rotvec(), dtype)
    matrix = as_t(rotations.as_matrix(), dtype)
    quat = as_t(wxyz(rotations.as_quat()), dtype)
    torch.testing.assert_close(g.axis_angle_to_matrix(rotvec), matrix, atol=atol, rtol=0)
    torch.testing.assert_close(g.quaternion_to_matrix(quat), matrix, atol=atol, rtol=0)
    torch.testing.assert_close(g.quaternion_to_axis_angle(quat), rotvec, atol=atol * 10, rtol=0)
    torch.testing.assert_close(g.matrix_to_axis_angle(matrix), rotvec, atol=atol * 10, rtol=0)
    assert_same_quaternion(g.axis_angle_to_quaternion(rotvec), quat, atol)
    assert_same_quaternion(g.matrix_to_quaternion(matrix), quat, atol)
    for out in (g.axis_angle_to_matrix(rotvec), g.matrix_to_quaternion(matrix)):
        assert out.dtype == dtype


def test_matrix_to_quaternion_is_unit_with_nonnegative_w(rotations):
    q = g.matrix_to_quaternion(as_t(rotations.as_matrix()))
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(N_ROT, dtype=torch.float64))
    assert (q[:, 0] >= 0).all()


def test_round_trips(rotations):
    matrix = as_t(rotations.as_matrix())
    rotvec = as_t(rotations.as_rotvec())
    torch.testing.assert_close(g.axis_angle_to_matrix(g.matrix_to_axis_angle(matrix)), matrix)
    torch.testing.assert_close(g.quaternion_to_matrix(g.matrix_to_quaternion(matrix)), matrix)
    torch.testing.assert_close(g.matrix_to_axis_angle(g.axis_angle_to_matrix(rotvec)), rotvec)
    torch.testing.assert_close(
        g.quaternion_to_axis_angle(g.axis_angle_to_quaternion(rotvec)), rotvec
    )


def test_leading_dims_are_kept(rotations):
    rotvec = as_t(rotations.as_rotvec()).reshape(2, 5, 20, 3)
    matrix = g.axis_angle_to_matrix(rotvec)
    assert matrix.shape == (2, 5, 20, 3, 3)
    assert g.matrix_to_quaternion(matrix).shape == (2, 5, 20, 4)
    assert g.matrix_to_axis_angle(matrix).shape == (2, 5, 20, 3)
    assert g.matrix_to_rot6d(matrix).shape == (2, 5, 20, 6)
    torch.testing.assert_close(g.matrix_to_axis_angle(matrix), rotvec)


def test_quaternion_sign_and_norm_do_not_matter(rotations):
    q = as_t(wxyz(rotations.as_quat()))
    matrix = as_t(rotations.as_matrix())
    torch.testing.assert_close(g.quaternion_to_matrix(-3.0 * q), matrix)
    torch.testing.assert_close(g.quaternion_to_axis_angle(-q), as_t(rotations.as_rotvec()))


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 0.1])
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-14), (torch.float32, 1e-7)])
def test_small_angles_match_scipy(angle, dtype, atol):
    rotvec = axis_angles([angle] * 4)
    ref = Rotation.from_rotvec(rotvec.numpy())
    matrix = g.axis_angle_to_matrix(rotvec.to(dtype))
    torch.testing.assert_close(matrix, as_t(ref.as_matrix(), dtype), atol=atol, rtol=0)
    back = g.matrix_to_axis_angle(as_t(ref.as_matrix(), dtype))
    # Near zero a matrix only pins the angle down to ~eps, so compare absolutely.
    torch.testing.assert_close(back, rotvec.to(dtype), atol=10 * atol, rtol=0)
    torch.testing.assert_close(
        g.quaternion_to_axis_angle(g.axis_angle_to_quaternion(rotvec.to(dtype))),
        rotvec.to(dtype),
        atol=atol,
        rtol=1e-6,
    )


def test_zero_rotation_is_exact_identity():
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(g.axis_angle_to_matrix(torch.zeros(3, dtype=torch.float64)), eye)
    torch.testing.assert_close(g.matrix_to_axis_angle(eye), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(
        g.matrix_to_quaternion(eye), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    )


@pytest.mark.parametrize("delta", [1e-3, 1e-6, 1e-9])
def test_angles_near_pi(delta):
    rotvec = axis_angles([math.pi - delta] * 8, seed=2)
    matrix = as_t(Rotation.from_rotvec(rotvec.numpy()).as_matrix())
    torch.testing.assert_close(g.axis_angle_to_matrix(rotvec), matrix, atol=1e-12, rtol=0)
    # The rotation vector of R is well conditioned only to ~sqrt(eps)/delta near pi, so
    # check the round trip on the matrices (exact) and the angle.
    back = g.matrix_to_axis_angle(matrix)
    torch.testing.assert_close(g.axis_angle_to_matrix(back), matrix, atol=1e-12, rtol=0)
    torch.testing.assert_close(back.norm(dim=-1), rotvec.norm(dim=-1), atol=1e-7, rtol=0)
    assert_same_quaternion(
        g.matrix_to_quaternion(matrix), as_t(wxyz(Rotation.from_matrix(matrix).as_quat())), 1e-7
    )


def test_exactly_pi():
    axes = torch.eye(3, dtype=torch.float64)
    matrix = g.axis_angle_to_matrix(math.pi * axes)
    back = g.matrix_to_axis_angle(matrix)
    # +pi*axis and -pi*axis are the same rotation.
    torch.testing.assert_close(back.abs(), math.pi * axes)
    torch.testing.assert_close(g.axis_angle_to_matrix(back), matrix)


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, 1e-9, 1e-5, 0.3, 2.5])
def test_gradcheck_axis_angle_to_matrix(scale):
    rotvec = (axis_angles([scale] * 3)).requires_grad_(True)
    assert torch.autograd.gradcheck(g.axis_angle_to_matrix, (rotvec,))


def test_gradient_at_zero_is_the_generator():
    # dR/dv_k at v = 0 is the skew matrix of the k-th basis vector (closed form).
    jac = torch.autograd.functional.jacobian(
        g.axis_angle_to_matrix, torch.zeros(3, dtype=torch.float64)
    )
    for k in range(3):
        basis = torch.zeros(3, dtype=torch.float64)
        basis[k] = 1
        torch.testing.assert_close(jac[..., k], g.skew_matrix(basis))


def test_gradcheck_other_conversions(rotations):
    matrix = as_t(rotations.as_matrix()[:4]).requires_grad_(True)
    quat = as_t(wxyz(rotations.as_quat()[:4])).requires_grad_(True)
    identity_quat = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64, requires_grad=True)
    rot6d = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(g.matrix_to_quaternion, (matrix,))
    assert torch.autograd.gradcheck(g.matrix_to_axis_angle, (matrix,))
    assert torch.autograd.gradcheck(g.quaternion_to_axis_angle, (quat,))
    assert torch.autograd.gradcheck(g.quaternion_to_axis_angle, (identity_quat,))
    assert torch.autograd.gradcheck(g.quaternion_to_matrix, (quat,))
    assert torch.autograd.gradcheck(g.rot6d_to_matrix, (rot6d.requires_grad_(True),))


def test_gradient_finite_at_identity_and_pi():
    for matrix in (torch.eye(3), g.axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))):
        matrix = matrix.double().requires_grad_(True)
        g.matrix_to_axis_angle(matrix).sum().backward()
        assert torch.isfinite(matrix.grad).all()


# --- 6D ---------------------------------------------------------------------------------------


def test_rot6d_layout_is_first_two_columns_row_major():
    matrix = as_t(Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix())
    expected = torch.stack(
        [matrix[0, 0], matrix[0, 1], matrix[1, 0], matrix[1, 1], matrix[2, 0], matrix[2, 1]]
    )
    torch.testing.assert_close(g.matrix_to_rot6d(matrix), expected)


def test_rot6d_round_trips(rotations):
    matrix = as_t(rotations.as_matrix())
    torch.testing.assert_close(g.rot6d_to_matrix(g.matrix_to_rot6d(matrix)), matrix)
    rot6d = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    projected = g.matrix_to_rot6d(g.rot6d_to_matrix(rot6d))
    torch.testing.assert_close(g.matrix_to_rot6d(g.rot6d_to_matrix(projected)), projected)


def test_rot6d_to_matrix_is_gram_schmidt():
    rot6d = torch.randn(50, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    matrix = g.rot6d_to_matrix(rot6d)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    torch.testing.assert_close(matrix.transpose(-1, -2) @ matrix, eye)
    torch.testing.assert_close(torch.det(matrix), torch.ones(50, dtype=torch.float64))
    a1 = rot6d.reshape(50, 3, 2)[..., 0]
    torch.testing.assert_close(matrix[..., 0], a1 / a1.norm(dim=-1, keepdim=True))
    # The second input vector lies in the plane of the first two columns, on the +b2 side.
    a2 = rot6d.reshape(50, 3, 2)[..., 1]
    assert ((a2 * matrix[..., 1]).sum(-1) > 0).all()
    torch.testing.assert_close((a2 * matrix[..., 2]).sum(-1), torch.zeros(50, dtype=torch.float64))


# --- Procrustes ------------------------------------------------------------------------------


def random_similarity(batch: int, seed: int):
    rng = np.random.default_rng(seed)
    s = as_t(rng.uniform(0.5, 2.0, size=batch))
    rotation = as_t(Rotation.random(batch, random_state=seed).as_matrix())
    t = as_t(rng.normal(size=(batch, 3)))
    return s, rotation, t


def apply(s, rotation, t, points):
    return s[..., None, None] * points @ rotation.transpose(-1, -2) + t[..., None, :]


def test_similarity_transform_recovers_known_transform():
    s, rotation, t = random_similarity(16, seed=3)
    source = torch.randn(16, 17, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    target = apply(s, rotation, t, source)
    s_hat, r_hat, t_hat = g.similarity_transform(source, target)
    torch.testing.assert_close(s_hat, s)
    torch.testing.assert_close(r_hat, rotation)
    torch.testing.assert_close(t_hat, t)
    torch.testing.assert_close(g.procrustes_align(source, target), target)


def test_similarity_transform_planar_points_where_naive_svd_reflects():
    # Coplanar points: the cross-covariance has rank 2, the sign of the third singular
    # vectors is arbitrary, and the naive U V^T is a reflection for some items.
    batch = 64
    s, rotation, t = random_similarity(batch, seed=4)
    gen = torch.Generator().manual_seed(4)
    source = torch.randn(batch, 6, 3, dtype=torch.float64, generator=gen)
    source[..., 2] = 0
    target = apply(s, rotation, t, source)
    xc = source - source.mean(-2, keepdim=True)
    yc = target - target.mean(-2, keepdim=True)
    u, _, vh = torch.linalg.svd(yc.transpose(-1, -2) @ xc)
    assert (torch.det(u @ vh) < 0).any(), "test needs at least one naive reflection"
    s_hat, r_hat, t_hat = g.similarity_transform(source, target)
    torch.testing.assert_close(torch.det(r_hat), torch.ones(batch, dtype=torch.float64))
    torch.testing.assert_close(s_hat, s)
    torch.testing.assert_close(r_hat, rotation)
    torch.testing.assert_close(t_hat, t)


def test_rigid_alignment_of_mirrored_target_matches_scipy():
    # A mirror image cannot be reached by a rotation: the best proper rotation (Kabsch) is
    # what SciPy's align_vectors returns.
    gen = torch.Generator().manual_seed(5)
    source = torch.randn(4, 10, 3, dtype=torch.float64, generator=gen)
    target = source * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) + 0.1 * torch.randn(
        4, 10, 3, dtype=torch.float64, generator=gen
    )
    _, r_hat, t_hat = g.similarity_transform(source, target, scale=False)
    for b in range(4):
        xc = source[b] - source[b].mean(0)
        yc = target[b] - target[b].mean(0)
        ref, _ = Rotation.align_vectors(yc.numpy(), xc.numpy())
        torch.testing.assert_close(r_hat[b], as_t(ref.as_matrix()))
        torch.testing.assert_close(t_hat[b], target[b].mean(0) - r_hat[b] @ source[b].mean(0))
    torch.testing.assert_close(torch.det(r_hat), torch.ones(4, dtype=torch.float64))


def test_procrustes_without_scale_is_rigid():
    _, rotation, t = random_similarity(3, seed=6)
    source = torch.randn(3, 8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    target = apply(torch.full((3,), 2.0, dtype=torch.float64), rotation, t, source)
    s_hat, r_hat, _ = g.similarity_transform(source, target, scale=False)
    torch.testing.assert_close(s_hat, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(r_hat, rotation)


def test_procrustes_of_degenerate_source_is_target_mean():
    target = torch.randn(2, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    aligned = g.procrustes_align(torch.zeros_like(target), target)
    torch.testing.assert_close(aligned, target.mean(-2, keepdim=True).expand_as(target))


def test_similarity_transform_float32_and_shapes():
    s, rotation, t = random_similarity(6, seed=8)
    source = torch.randn(6, 14, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    target = apply(s, rotation, t, source)
    s_hat, r_hat, t_hat = g.similarity_transform(
        source.float().reshape(2, 3, 14, 3), target.float().reshape(2, 3, 14, 3)
    )
    assert s_hat.shape == (2, 3) and r_hat.shape == (2, 3, 3, 3) and t_hat.shape == (2, 3, 3)
    assert r_hat.dtype == torch.float32
    torch.testing.assert_close(r_hat.reshape(6, 3, 3), rotation.float(), atol=1e-5, rtol=0)


# --- projections -----------------------------------------------------------------------------


def test_perspective_projection_pinhole_closed_form():
    points = torch.tensor([[[0.1, -0.2, 2.0], [0.0, 0.0, 4.0]]], dtype=torch.float64)
    pixels = g.perspective_projection(points, 1000.0, torch.tensor([[320.0, 240.0]]).double())
    expected = torch.tensor([[[320 + 1000 * 0.05, 240 - 1000 * 0.1], [320.0, 240.0]]])
    torch.testing.assert_close(pixels, expected.double())


def test_perspective_projection_with_extrinsics_and_per_axis_focal():
    gen = torch.Generator().manual_seed(9)
    points = torch.randn(3, 7, 3, dtype=torch.float64, generator=gen)
    rotation = as_t(Rotation.random(3, random_state=9).as_matrix())
    translation = torch.tensor([0.0, 0.0, 10.0], dtype=torch.float64).expand(3, 3)
    focal = torch.tensor([[500.0, 600.0]] * 3, dtype=torch.float64)
    center = torch.tensor([[100.0, 50.0]] * 3, dtype=torch.float64)
    pixels = g.perspective_projection(
        points, focal, center, rotation=rotation, translation=translation
    )
    for b in range(3):
        for n in range(7):
            x, y, z = rotation[b] @ points[b, n] + translation[b]
            expected = torch.stack([500 * x / z + 100, 600 * y / z + 50])
            torch.testing.assert_close(pixels[b, n], expected)


def test_perspective_projection_rejects_points_behind_camera():
    points = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    with pytest.raises(ValueError, match="Z > 0"):
        g.perspective_projection(points, 1000.0, torch.zeros(2))
    with pytest.raises(ValueError, match="Z > 0"):
        g.perspective_projection(
            points[:1], 1.0, torch.zeros(2), translation=torch.tensor([0, 0, -2.0])
        )


def test_perspective_projection_bad_shapes():
    points = torch.ones(5, 3)
    with pytest.raises(ValueError, match=r"focal_length must have shape \(\.\.\., 2\)"):
        g.perspective_projection(points, torch.ones(3), torch.zeros(2))
    with pytest.raises(ValueError, match="principal_point"):
        g.perspective_projection(points, 1.0, torch.zeros(3))
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., N, 3\)"):
        g.perspective_projection(torch.ones(5, 2), 1.0, torch.zeros(2))


def test_weak_perspective_projection_is_hmr_convention():
    points = torch.tensor([[[1.0, 2.0, 3.0], [-1.0, 0.5, 9.0]]])
    pixels = g.weak_perspective_projection(points, torch.tensor([2.0]), torch.tensor([[0.1, -0.2]]))
    expected = torch.tensor([[[2 * 1.1, 2 * 1.8], [2 * -0.9, 2 * 0.3]]])
    torch.testing.assert_close(pixels, expected)
    with pytest.raises(ValueError, match="scale must have shape"):
        g.weak_perspective_projection(points, torch.tensor(2.0), torch.tensor([[0.1, -0.2]]))


# --- root alignment --------------------------------------------------------------------------


def test_root_align():
    joints = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)
    aligned = g.root_align(joints, 1)
    torch.testing.assert_close(aligned, joints - joints[:, 1:2])
    hips = g.root_align(joints, [2, 3])
    torch.testing.assert_close(hips, joints - (joints[:, 2:3] + joints[:, 3:4]) / 2)
    torch.testing.assert_close(g.root_align(joints, np.int64(1)), aligned)


@pytest.mark.parametrize("root", [4, -5, []])
def test_root_align_bad_index(root):
    with pytest.raises(ValueError, match="root must be"):
        g.root_align(torch.zeros(2, 4, 3), root)


# --- shape errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn,shape,name",
    [
        (g.axis_angle_to_matrix, (4, 4), "axis_angle"),
        (g.axis_angle_to_quaternion, (4,), "axis_angle"),
        (g.quaternion_to_matrix, (4, 3), "quaternion"),
        (g.quaternion_to_axis_angle, (3,), "quaternion"),
        (g.matrix_to_quaternion, (3, 4), "matrix"),
        (g.matrix_to_axis_angle, (9,), "matrix"),
        (g.matrix_to_rot6d, (2, 3), "matrix"),
        (g.rot6d_to_matrix, (5, 9), "rot6d"),
    ],
)
def test_conversions_reject_wrong_shapes(fn, shape, name):
    with pytest.raises(ValueError, match=f"{name} must have shape"):
        fn(torch.zeros(shape))


def test_similarity_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        g.similarity_transform(torch.zeros(2, 5, 3), torch.zeros(2, 6, 3))
    bad = torch.zeros(2, 5, 3)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        g.similarity_transform(bad, torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match=r"target must have shape \(\.\.\., N, 3\)"):
        g.procrustes_align(torch.zeros(5, 3), torch.zeros(5, 2))


def test_mirror_poses_reflects_x_and_swaps_sides():
    poses = torch.randn(2, 3, 3)
    swap = torch.tensor([0, 2, 1])
    mirrored = g.mirror_poses(poses, swap)
    torch.testing.assert_close(mirrored[..., 1, :], poses[..., 2, :] * torch.tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(g.mirror_poses(mirrored, swap), poses)  # an involution


# --- invalid values and dtypes ---------------------------------------------------------------------


@pytest.mark.parametrize("fn", [g.quaternion_to_matrix, g.quaternion_to_axis_angle])
@pytest.mark.parametrize("bad", [[0.0, 0, 0, 0], [float("nan"), 0, 0, 0], [float("inf"), 0, 0, 0]])
def test_zero_nan_or_inf_quaternion_is_refused(fn, bad):
    quaternions = torch.tensor([[1.0, 0, 0, 0], bad])
    with pytest.raises(ValueError, match=r"quaternion has 1 of 2 entries that are zero, NaN or inf"):
        fn(quaternions)
    fn(torch.tensor([1e-6, 0, 0, 0]))  # any non-zero norm is still fine


@pytest.mark.parametrize("bad, dtype", [
    ([0.0] * 6, torch.float64),
    ([1.0, 2, 0, 0, 0, 0], torch.float64),  # second column parallel to the first
    ([1.0, 0, 0, 0, 0, 0], torch.float64),  # second column zero
    ([0.1, 0.3, 0.2, 0.6, 0.3, 0.9], torch.float32),  # parallel up to float32 rounding
    ([float("nan"), 0, 0, 1, 0, 0], torch.float64),
])
def test_degenerate_rot6d_is_refused(bad, dtype):
    with pytest.raises(ValueError, match="rot6d has 1 of 1 entries that are no rotation"):
        g.rot6d_to_matrix(torch.tensor(bad, dtype=dtype))
    rotation = g.rot6d_to_matrix(torch.tensor([1.0, 1.0, 0, 0, 0, 1e-3], dtype=dtype))  # nearly, but not, parallel
    torch.testing.assert_close(torch.linalg.det(rotation), torch.tensor(1.0, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64, torch.bool])
@pytest.mark.parametrize("fn, size", [
    (g.axis_angle_to_matrix, (3,)), (g.quaternion_to_matrix, (4,)), (g.rot6d_to_matrix, (6,)),
    (g.matrix_to_quaternion, (3, 3)), (g.root_align, (17, 3)),
])
def test_non_floating_rotations_are_refused_not_cast(fn, size, dtype):
    with pytest.raises(ValueError, match=f"must have a floating-point dtype; got {str(dtype).removeprefix('torch.')}"):
        fn(torch.ones(size, dtype=dtype))


def test_alignment_needs_single_or_double_precision_and_real_points():
    points = torch.randn(5, 3)
    with pytest.raises(ValueError, match="source must have dtype float32 or float64; got float16"):
        g.similarity_transform(points.half(), points.half())
    with pytest.raises(ValueError, match="source must hold real numbers.*complex64"):
        g.similarity_transform(points.to(torch.complex64), points.to(torch.complex64))


@pytest.mark.parametrize("permutation, message", [
    (torch.tensor([0, 2]), r"must be 3 integer joint indices"),
    (torch.tensor([0, 0, 1]), r"permutation of range\(3\)"),
    (torch.tensor([1, 2, 0]), r"in pairs"),
    ([0, 2, 1, 3], r"must be 3 integer joint indices"),
])
def test_mirror_poses_refuses_a_wrong_permutation(permutation, message):
    with pytest.raises(ValueError, match=message):
        g.mirror_poses(torch.randn(2, 3, 3), permutation)
    torch.testing.assert_close(g.mirror_poses(torch.ones(1, 3, 2), [0, 2, 1]), torch.tensor([[[-1.0, 1]] * 3]))

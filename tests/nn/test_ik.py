"""hmrlab.nn.ik: FK -> IK -> FK round trips on the free body model, SciPy references, gradcheck.

Poses come from `hmrlab.data.poses.sample_poses`; rest joints are the free SMPL model's regressed
joints for the mean shape and random shapes. Everything is float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab import body
from hmrlab.data.poses import sample_poses
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.nn import ik

pytestmark = pytest.mark.usefixtures("one_thread")

PARENTS = body.SMPL_PARENTS
LEAVES = [j for j in range(24) if j not in PARENTS]
NON_LEAVES = [j for j in range(24) if j in PARENTS]


@pytest.fixture(scope="module")
def rest_joints() -> torch.Tensor:
    """(5, 24, 3) rest joints in metres: the mean shape and four random shapes."""
    arrays = body.body_model_arrays("smpl")
    betas = np.random.default_rng(0).normal(size=(5, arrays["shapedirs"].shape[2]))
    betas[0] = 0
    vertices = arrays["v_template"].astype(np.float64) + np.einsum("bk,nck->bnc", betas, arrays["shapedirs"])
    return torch.as_tensor(np.einsum("jn,bnc->bjc", arrays["J_regressor"].astype(np.float64), vertices))


def random_rotmats(n: int, seed: int) -> torch.Tensor:
    """(n, 24, 3, 3) plausible poses with a random heading, a bit wider than the default spread."""
    generator = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(sample_poses(n, generator, spread=1.5, random_yaw=True).double())


def test_round_trip_recovers_joints_rotations_and_twists(rest_joints) -> None:
    rotmats = random_rotmats(5, seed=0)
    joints = ik.forward_kinematics(rotmats, rest_joints, PARENTS)
    twist = ik.twist_angles(rotmats, rest_joints, PARENTS)
    # A root translation must not matter: IK only uses bones.
    translated = joints + torch.tensor([0.3, -1.0, 4.0], dtype=torch.float64)
    recovered, recovered_twist = ik.inverse_kinematics(translated, rest_joints, PARENTS, twist)
    assert recovered.shape == (5, 24, 3, 3) and recovered_twist.shape == (5, 23, 2)
    assert (ik.forward_kinematics(recovered, rest_joints, PARENTS) - joints).abs().max() < 1e-5
    torch.testing.assert_close(recovered[:, NON_LEAVES], rotmats[:, NON_LEAVES], atol=1e-6, rtol=0)
    torch.testing.assert_close(recovered[:, LEAVES], torch.eye(3, dtype=torch.float64).expand(5, len(LEAVES), 3, 3))
    torch.testing.assert_close(recovered_twist, twist, atol=1e-6, rtol=0)


def test_twist_does_not_move_joints(rest_joints) -> None:
    rotmats = random_rotmats(8, seed=1)
    rest = rest_joints[:1]  # one template broadcast over the batch
    joints = ik.forward_kinematics(rotmats, rest, PARENTS)
    untwisted, zero_twist = ik.inverse_kinematics(joints, rest, PARENTS)
    random_twist = torch.randn(8, 23, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    twisted, _ = ik.inverse_kinematics(joints, rest, PARENTS, random_twist)
    for result in (untwisted, twisted):
        assert (ik.forward_kinematics(result, rest, PARENTS) - joints).abs().max() < 1e-10
    # Where a single child defines the bone, the twist used is the (normalised) one given.
    single = [c - 1 for c in range(1, 24) if PARENTS.count(PARENTS[c]) == 1]
    no_twist = torch.tensor([1.0, 0.0], dtype=torch.float64).expand(8, len(single), 2)
    torch.testing.assert_close(zero_twist[:, single], no_twist)
    unit_twist = torch.nn.functional.normalize(random_twist, dim=-1)
    torch.testing.assert_close(ik.twist_angles(twisted, rest, PARENTS)[:, single], unit_twist[:, single])


def test_twist_angles_of_a_known_swing_and_twist() -> None:
    # rest bone from joint 0 to joint 1 along t; R = swing (axis perpendicular to t) after twist about t.
    t = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    perpendicular = np.cross(t, [0.0, 0.0, 1.0])
    perpendicular /= np.linalg.norm(perpendicular)
    phis = np.array([-2.5, -0.3, 0.0, 1.0, 3.0])
    rotations = [
        (Rotation.from_rotvec(0.8 * perpendicular) * Rotation.from_rotvec(phi * t)).as_matrix() for phi in phis
    ]
    rotmats = torch.as_tensor(np.stack(rotations))[:, None].expand(5, 2, 3, 3)
    rest = torch.as_tensor(np.stack([np.zeros(3), t]))[None]
    twist = ik.twist_angles(rotmats, rest, [-1, 0])
    torch.testing.assert_close(twist[:, 0], torch.as_tensor(np.stack([np.cos(phis), np.sin(phis)], -1)))


def test_swing_rotation_is_the_minimal_rotation() -> None:
    generator = torch.Generator().manual_seed(3)
    a, b = torch.nn.functional.normalize(torch.randn(2, 10, 3, dtype=torch.float64, generator=generator), dim=-1)
    axis = np.cross(a.numpy(), b.numpy())
    angle = np.arccos(np.clip((a * b).sum(-1).numpy(), -1, 1))
    expected = Rotation.from_rotvec(axis / np.linalg.norm(axis, axis=-1, keepdims=True) * angle[:, None]).as_matrix()
    torch.testing.assert_close(ik.swing_rotation(a, b), torch.as_tensor(expected))
    torch.testing.assert_close(ik.swing_rotation(a, a), torch.eye(3, dtype=torch.float64).expand(10, 3, 3))


def test_twist_rotation_matches_scipy() -> None:
    axis = torch.nn.functional.normalize(torch.tensor([[0.2, -1.0, 0.4]], dtype=torch.float64), dim=-1)
    phi = 1.2
    twist = 3.0 * torch.tensor([[np.cos(phi), np.sin(phi)]], dtype=torch.float64)  # not unit: normalised
    expected = Rotation.from_rotvec(phi * axis.numpy()).as_matrix()
    torch.testing.assert_close(ik.twist_rotation(axis, twist), torch.as_tensor(expected))


def test_align_bone_directions_matches_scipy() -> None:
    generator = torch.Generator().manual_seed(4)
    rest = torch.nn.functional.normalize(torch.randn(1, 3, 3, dtype=torch.float64, generator=generator), dim=-1)
    posed = torch.nn.functional.normalize(torch.randn(1, 3, 3, dtype=torch.float64, generator=generator), dim=-1)
    expected, _ = Rotation.align_vectors(posed[0].numpy(), rest[0].numpy())
    torch.testing.assert_close(ik.align_bone_directions(rest, posed)[0], torch.as_tensor(expected.as_matrix()))


def test_gradients_match_finite_differences(rest_joints) -> None:
    rotmats = random_rotmats(1, seed=5)
    rest = rest_joints[:1]
    joints = ik.forward_kinematics(rotmats, rest, PARENTS).requires_grad_()
    twist = ik.twist_angles(rotmats, rest, PARENTS).requires_grad_()

    def pose(joints: torch.Tensor, twist: torch.Tensor) -> torch.Tensor:
        return ik.inverse_kinematics(joints, rest, PARENTS, twist)[0]

    assert torch.autograd.gradcheck(pose, (joints, twist))


def test_bad_inputs_raise_value_errors(rest_joints) -> None:
    joints = ik.forward_kinematics(random_rotmats(2, seed=6), rest_joints[:1], PARENTS)
    with pytest.raises(ValueError, match=r"joints must have shape \(B, J, 3\); got \(2, 24, 2\)"):
        ik.inverse_kinematics(joints[..., :2], rest_joints[:1], PARENTS)
    with pytest.raises(ValueError, match="rest_joints must have batch size 1 or 2"):
        ik.inverse_kinematics(joints, rest_joints[:3], PARENTS)
    with pytest.raises(ValueError, match=r"twist must have shape \(2, 23, 2\)"):
        ik.inverse_kinematics(joints, rest_joints[:1], PARENTS, torch.zeros(2, 24, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        ik.inverse_kinematics(joints.index_fill(1, torch.tensor([3]), float("nan")), rest_joints[:1], PARENTS)
    with pytest.raises(ValueError, match="dtype"):
        ik.inverse_kinematics(joints.float(), rest_joints[:1], PARENTS)
    with pytest.raises(ValueError, match="parents"):
        ik.inverse_kinematics(joints, rest_joints[:1], PARENTS[:-1])
    with pytest.raises(ValueError, match=r"rotmats must have shape \(B, J, 3, 3\)"):
        ik.twist_angles(torch.eye(3), rest_joints[:1], PARENTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_swing_of_opposite_directions_is_a_half_turn(dtype):
    rest = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0, 0.0], [0.3, -0.2, 0.9], [1.0, 0.0, 0.0]], dtype=dtype), dim=-1)
    posed = torch.cat([-rest[:2], rest[2:]])  # two opposite, one identical
    rotation = ik.swing_rotation(rest, posed)
    assert torch.isfinite(rotation).all()
    torch.testing.assert_close((rotation @ rest[..., None])[..., 0], posed)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=dtype).expand(3, 3, 3))
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(3, dtype=dtype))


def test_invalid_values_and_dtypes_are_refused(rest_joints) -> None:
    rest = rest_joints[:1]
    joints = ik.forward_kinematics(random_rotmats(2, seed=7), rest, PARENTS)
    for dtype in (torch.float16, torch.int64, torch.complex128):
        with pytest.raises(ValueError, match=f"joints must have dtype float32 or float64; got {str(dtype)[6:]}"):
            ik.inverse_kinematics(joints.to(dtype), rest.to(dtype), PARENTS)
    with pytest.raises(ValueError, match=r"joints has batch size 0 \(shape \(0, 24, 3\)\); IK needs at least one"):
        ik.inverse_kinematics(joints[:0], rest, PARENTS)
    collapsed = joints.clone()
    collapsed[1, 4] = collapsed[1, 1]  # the left knee on the left hip
    with pytest.raises(ValueError, match=r"joints: the two joints coincide .* for bone\(s\) 1->4 \(1 in all, the "
                                         r"first in batch item 1\)"):
        ik.inverse_kinematics(collapsed, rest, PARENTS)
    flat = rest.clone()
    flat[0, 10] = flat[0, 7]
    for call in (lambda: ik.inverse_kinematics(joints, flat, PARENTS),
                 lambda: ik.twist_angles(random_rotmats(2, seed=7), flat, PARENTS)):
        with pytest.raises(ValueError, match=r"rest_joints: the two joints coincide .* bone\(s\) 7->10"):
            call()
    twist = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(2, 23, 1)
    twist[0, 2] = 0
    with pytest.raises(ValueError, match=r"twist: \(cos, sin\) is \(0, 0\), which is no angle.* bone\(s\) 0->3"):
        ik.inverse_kinematics(joints, rest, PARENTS, twist)

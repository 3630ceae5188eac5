"""Joint limits and pose sampling: Euler conversions against SciPy, the table's mirror symmetry and
sign conventions checked by forward kinematics, sampling inside the limits and physically sound."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab.body import SMPL_24, BodyModel, body_model_arrays, forward_kinematics
from hmrlab.data.poses import (
    EULER_ORDERS,
    JOINT_LIMITS,
    axis_angle_to_euler,
    clamp_to_limits,
    euler_to_axis_angle,
    euler_to_matrix,
    sample_poses,
    within_limits,
)
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

AXES = "XYZ"
MIRROR = np.diag([-1.0, 1.0, 1.0])  # reflection x -> -x, the body's left/right swap


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def limits(field: str) -> np.ndarray:
    return np.radians(np.array([getattr(JOINT_LIMITS[n], field) for n in SMPL_24.joint_names]))


@pytest.fixture(scope="module")
def rest_fk():
    """Forward kinematics of the free model's mean shape: (B, 24, 3) pose -> (B, 24, 3) joints."""
    model = BodyModel(body_model_arrays(), dtype=torch.float64)
    rest = model.J_regressor @ model.v_template

    def fk(pose: torch.Tensor) -> torch.Tensor:
        rotmats = axis_angle_to_matrix(pose.double())
        return forward_kinematics(rotmats, rest.expand(len(pose), -1, -1), model.parents)[0]

    return fk


def test_euler_matrices_match_scipy_intrinsic_rotations() -> None:
    euler = (torch.rand(50, 24, 3, generator=seeded(), dtype=torch.float64) * 2 - 1) * 3.0
    matrices = euler_to_matrix(euler).numpy()
    for j, order in enumerate(EULER_ORDERS):
        # SciPy's upper-case sequences are intrinsic and take the angles in order, not by axis.
        angles = euler[:, j, [AXES.index(a) for a in order]].numpy()
        assert np.allclose(matrices[:, j], Rotation.from_euler(order, angles).as_matrix(), atol=1e-12)


def test_euler_axis_angle_round_trips_inside_the_limits() -> None:
    lower, upper = torch.as_tensor(limits("lower")), torch.as_tensor(limits("upper"))
    euler = lower + (upper - lower) * torch.rand(200, 24, 3, generator=seeded(1), dtype=torch.float64)
    assert torch.allclose(axis_angle_to_euler(euler_to_axis_angle(euler)), euler, atol=1e-9)
    pose = sample_poses(100, seeded(2)).double()
    assert torch.allclose(
        axis_angle_to_matrix(euler_to_axis_angle(axis_angle_to_euler(pose))), axis_angle_to_matrix(pose), atol=1e-9
    )


def test_table_is_complete_and_free_of_gimbal_lock() -> None:
    assert list(JOINT_LIMITS) == list(SMPL_24.joint_names)
    lower, upper, relaxed = limits("lower"), limits("upper"), limits("relaxed")
    assert (lower <= relaxed).all() and (relaxed <= upper).all()
    for j, order in enumerate(EULER_ORDERS[1:], start=1):
        middle = AXES.index(order[1])
        assert -math.pi / 2 < lower[j, middle] and upper[j, middle] < math.pi / 2, SMPL_24.joint_names[j]


def test_limits_mirror_left_and_right() -> None:
    """A pose inside the limits, reflected (M R M on each joint, left/right swapped), stays inside."""
    pose = sample_poses(300, seeded(3), spread=3.0).double()
    mirror = torch.as_tensor(MIRROR)
    reflected = matrix_to_axis_angle(mirror @ axis_angle_to_matrix(pose) @ mirror)[:, SMPL_24.flip_permutation]
    assert within_limits(pose).all() and within_limits(reflected).all()
    # and the limit boxes themselves: x ranges equal, y/z ranges negated, for every left/right pair
    lower, upper = limits("lower"), limits("upper")
    flip = SMPL_24.flip_permutation
    assert np.allclose(lower[flip][:, 0], lower[:, 0]) and np.allclose(upper[flip][:, 0], upper[:, 0])
    assert np.allclose(lower[flip][:, 1:], -upper[:, 1:]) and np.allclose(upper[flip][:, 1:], -lower[:, 1:])


def one_joint(name: str, axis: int, degrees: float) -> torch.Tensor:
    euler = torch.zeros(1, 24, 3, dtype=torch.float64)
    euler[0, SMPL_24.index(name), axis] = math.radians(degrees)
    return euler_to_axis_angle(euler)


@pytest.mark.parametrize(
    "joint, axis, degrees, moved, direction",
    [
        ("left_hip", 0, -60, "left_knee", [0, 1, 1]),  # hip flexion: thigh forward and up
        ("right_hip", 0, -60, "right_knee", [0, 1, 1]),
        ("left_knee", 0, 90, "left_ankle", [0, 1, -1]),  # knee flexion: shank backward
        ("left_elbow", 1, -90, "left_wrist", [-1, 0, 1]),  # elbow flexion: forearm forward
        ("right_elbow", 1, 90, "right_wrist", [1, 0, 1]),
        ("left_shoulder", 2, -80, "left_wrist", [-1, -1, 0]),  # lowering the arm
        ("spine1", 0, 30, "head", [0, -1, 1]),  # trunk flexion: head forward
        ("left_ankle", 0, 30, "left_foot", [0, -1, -1]),  # plantarflexion: toes down
    ],
)
def test_documented_signs_move_the_body_as_named(rest_fk, joint, axis, degrees, moved, direction) -> None:
    index = SMPL_24.index(moved)
    displacement = (rest_fk(one_joint(joint, axis, degrees)) - rest_fk(torch.zeros(1, 24, 3)))[0, index]
    assert np.array_equal(np.sign(displacement.numpy().round(3)), direction)


def test_samples_inside_limits_deterministic_and_varied() -> None:
    pose = sample_poses(2000, seeded(4))
    assert pose.shape == (2000, 24, 3) and pose.dtype == torch.float32
    assert within_limits(pose).all()
    assert torch.equal(pose, sample_poses(2000, seeded(4)))
    assert not torch.equal(pose, sample_poses(2000, seeded(5)))
    euler = axis_angle_to_euler(pose.double())
    std = euler.std(0)
    assert torch.equal(pose[:, 0], torch.zeros(2000, 3))  # root fixed by default
    # every limited angle varies, by at least half its table spread (truncation narrows it a little)
    assert (std[1:] > 0.5 * torch.as_tensor(limits("std"))[1:]).all()
    yaw = axis_angle_to_euler(sample_poses(2000, seeded(6), random_yaw=True).double())[:, 0, 1]
    assert yaw.min() < -3.0 and yaw.max() > 3.0 and abs(float(yaw.mean())) < 0.15


def test_spread_zero_gives_the_relaxed_pose() -> None:
    euler = axis_angle_to_euler(sample_poses(3, seeded(), spread=0.0).double())
    assert torch.allclose(euler, torch.as_tensor(limits("relaxed")).expand(3, -1, -1), atol=1e-5)


def test_clamp_projects_into_the_limits_and_is_idempotent() -> None:
    wild = (torch.rand(500, 24, 3, generator=seeded(7), dtype=torch.float64) * 2 - 1) * 2.5
    assert not within_limits(wild).all()
    clamped = clamp_to_limits(wild)
    assert within_limits(clamped).all()
    assert torch.allclose(axis_angle_to_matrix(clamp_to_limits(clamped)), axis_angle_to_matrix(clamped), atol=1e-9)
    inside = sample_poses(200, seeded(8)).double()
    assert torch.allclose(axis_angle_to_matrix(clamp_to_limits(inside)), axis_angle_to_matrix(inside), atol=1e-9)
    knee = SMPL_24.index("left_knee")
    hyperextended = one_joint("left_knee", 0, -20)
    assert not within_limits(hyperextended)[0, knee]
    assert torch.allclose(clamp_to_limits(hyperextended), torch.zeros(1, 24, 3, dtype=torch.float64), atol=1e-9)


def test_sampled_bodies_stand_and_keep_hands_out_of_the_pelvis(rest_fk) -> None:
    joints = rest_fk(sample_poses(1000, seeded(9)))
    index = SMPL_24.index
    feet = joints[:, [index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")], 1]
    knees = joints[:, [index("left_knee"), index("right_knee")], 1]
    assert (feet < -0.3).all() and (knees < 0).all()  # pelvis at the origin, y up
    # No hand joint comes closer to the pelvis centre than the hip joints are (half the hip width).
    half_hip_width = (joints[0, index("left_hip")] - joints[0, index("right_hip")]).norm() / 2
    hands = joints[:, [index(n) for n in ("left_wrist", "right_wrist", "left_hand", "right_hand")]]
    assert (hands - joints[:, :1]).norm(dim=-1).min() > half_hip_width


def test_bad_input_raises_helpful_errors() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 24, 3\)"):
        within_limits(torch.zeros(5, 23, 3))
    with pytest.raises(ValueError, match="non-negative int"):
        sample_poses(-1)
    with pytest.raises(ValueError, match="spread"):
        sample_poses(2, spread=-1.0)

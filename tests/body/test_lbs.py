"""hmrlab.body.lbs against smplx's forward pass, closed-form kinematics and gradcheck.

The models are synthetic: random arrays in the SMPL / SMPL-X file layout (`synthetic_body_arrays`,
also used by test_body.py), so these tests need no model files.
"""

from __future__ import annotations

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial.transform import Rotation
from smplx.utils import Struct

from hmrlab.body.lbs import (
    BodyModel,
    check_body_params,
    forward_kinematics,
    linear_blend_skinning,
    rigid_transform,
)
from hmrlab.body.skeletons import SMPL_24, SMPLX_55

# The 21 extra keypoints smplx reads off the mesh (smplx.vertex_ids), in the free model's layout.
EXTRA_VERTEX_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
    "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
    "rpinky",
)


def synthetic_body_arrays(kind: str = "smpl", num_vertices: int = 150, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays in the layout of a SMPL (10 betas) or SMPL-X (10 betas + 10 expressions) file."""
    rng = np.random.default_rng(seed)
    parents = SMPL_24.parents if kind == "smpl" else SMPLX_55.parents
    num_joints, num_shapes = len(parents), 10 if kind == "smpl" else 20
    regressor = rng.random((num_joints, num_vertices)) * (rng.random((num_joints, num_vertices)) < 0.2)
    regressor[np.arange(num_joints), rng.choice(num_vertices, num_joints, replace=False)] += 1
    faces = np.array([rng.choice(num_vertices, 3, replace=False) for _ in range(2 * num_vertices)])
    arrays = {
        "v_template": rng.normal(scale=0.3, size=(num_vertices, 3)),
        "shapedirs": rng.normal(scale=0.03, size=(num_vertices, 3, num_shapes)),
        "posedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 9 * (num_joints - 1))),
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": rng.dirichlet(np.full(num_joints, 0.2), size=num_vertices),
        "kintree_table": np.array([[4294967295, *parents[1:]], range(num_joints)], dtype=np.int64),
        "f": faces.astype(np.uint32),
        "extra_vertex_names": np.array(EXTRA_VERTEX_NAMES),
        "extra_vertex_ids": rng.choice(num_vertices, len(EXTRA_VERTEX_NAMES), replace=False),
    }
    if kind == "smplx":
        for side in "lr":
            arrays[f"hands_components{side}"] = rng.normal(scale=0.3, size=(45, 45))
            arrays[f"hands_mean{side}"] = rng.normal(scale=0.2, size=45)
        arrays["lmk_faces_idx"] = rng.choice(len(faces), 51)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
    # smplx rounds every model array to float32 (even with dtype=float64): store float32 values so that
    # float64 comparisons see the same model on both sides.
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}


def smplx_vertex_ids(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {str(n): int(i) for n, i in zip(arrays["extra_vertex_names"], arrays["extra_vertex_ids"])}


def random_rotmats(batch: int, joints: int, seed: int) -> torch.Tensor:
    matrices = Rotation.random(batch * joints, random_state=seed).as_matrix()
    return torch.from_numpy(matrices).reshape(batch, joints, 3, 3)


@pytest.fixture(scope="module")
def smpl_arrays() -> dict[str, np.ndarray]:
    return synthetic_body_arrays("smpl")


def test_matches_smplx_forward_float32_axis_angle(smpl_arrays) -> None:
    reference = smplx.SMPL("", data_struct=Struct(**smpl_arrays), vertex_ids=smplx_vertex_ids(smpl_arrays))
    model = BodyModel(smpl_arrays)
    g = torch.Generator().manual_seed(0)
    params = {
        "betas": torch.randn(4, 10, generator=g),
        "body_pose": 0.6 * torch.randn(4, 69, generator=g),
        "global_orient": torch.randn(4, 3, generator=g),
        "transl": torch.randn(4, 3, generator=g),
    }
    vertices, joints = model(**params)
    out = reference(**params)
    torch.testing.assert_close(vertices, out.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, out.joints[:, :24], atol=1e-5, rtol=0)


def test_matches_smplx_lbs_float64_rotation_matrices(smpl_arrays) -> None:
    reference = smplx.SMPL(
        "", data_struct=Struct(**smpl_arrays), vertex_ids=smplx_vertex_ids(smpl_arrays), dtype=torch.float64
    )
    rotmats = random_rotmats(3, 24, seed=1)
    betas = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 10)))
    out = reference(betas=betas, global_orient=rotmats[:, :1], body_pose=rotmats[:, 1:], pose2rot=False)
    a = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in smpl_arrays.items() if k != "extra_vertex_names"}
    vertices, joints = linear_blend_skinning(
        betas, rotmats, a["v_template"], a["shapedirs"], a["posedirs"], a["J_regressor"],
        SMPL_24.parents, a["weights"],
    )
    transl = reference.transl  # smplx adds its (zero) transl parameter
    torch.testing.assert_close(vertices + transl[:, None], out.vertices, atol=1e-10, rtol=0)
    torch.testing.assert_close(joints + transl[:, None], out.joints[:, :24], atol=1e-10, rtol=0)


def test_rest_pose_is_template_plus_shape_blend_shapes(smpl_arrays) -> None:
    model = BodyModel(smpl_arrays, dtype=torch.float64)
    betas = np.random.default_rng(2).normal(size=(2, 10))
    vertices, joints = model(betas=torch.from_numpy(betas))
    v_shaped = smpl_arrays["v_template"] + np.einsum("bk,nck->bnc", betas, smpl_arrays["shapedirs"])
    np.testing.assert_allclose(vertices.numpy(), v_shaped, atol=1e-12)
    np.testing.assert_allclose(joints.numpy(), smpl_arrays["J_regressor"] @ v_shaped, atol=1e-12)


def test_forward_kinematics_of_a_planar_three_joint_chain() -> None:
    # Root at r, bones of length 1 and 0.7 along x, rotations about z by a, b, c: the posed chain is
    # r, r + (cos a, sin a), and that plus 0.7 (cos(a + b), sin(a + b)).
    a, b, c = 0.4, -1.1, 0.8
    root = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)
    rest = (root + torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [1.7, 0, 0]], dtype=torch.float64))[None]
    rotmats = torch.from_numpy(Rotation.from_euler("z", [[a], [b], [c]]).as_matrix())[None]
    joints, transforms = forward_kinematics(rotmats, rest, [-1, 0, 1])
    expected = torch.stack([
        root,
        root + torch.tensor([np.cos(a), np.sin(a), 0.0]),
        root + torch.tensor([np.cos(a), np.sin(a), 0.0]) + 0.7 * torch.tensor([np.cos(a + b), np.sin(a + b), 0.0]),
    ])
    torch.testing.assert_close(joints[0], expected, atol=1e-12, rtol=0)
    # A rest point 0.3 beyond the last joint ends up 0.3 along the last bone's total angle a + b + c.
    point = rest[0, 2] + torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
    moved = (transforms[0, 2] @ torch.cat([point, torch.ones(1, dtype=torch.float64)]))[:3]
    torch.testing.assert_close(moved, expected[2] + 0.3 * torch.tensor([np.cos(a + b + c), np.sin(a + b + c), 0.0]))
    # The rest pose moves nothing: every transform is the identity.
    _, identity = forward_kinematics(torch.eye(3, dtype=torch.float64).expand(1, 3, 3, 3), rest, [-1, 0, 1])
    torch.testing.assert_close(identity, torch.eye(4, dtype=torch.float64).expand(1, 3, 4, 4))


def test_rigid_transform_layout() -> None:
    rotation = torch.from_numpy(Rotation.random(random_state=3).as_matrix())
    matrix = rigid_transform(rotation, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    expected = np.eye(4)
    expected[:3, :3], expected[:3, 3] = rotation.numpy(), [1, 2, 3]
    np.testing.assert_array_equal(matrix.numpy(), expected)


def test_gradients_match_finite_differences() -> None:
    arrays = synthetic_body_arrays("smpl", num_vertices=30, seed=4)
    a = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in arrays.items() if k != "extra_vertex_names"}
    betas = torch.randn(1, 10, dtype=torch.float64, requires_grad=True)
    pose = (0.5 * torch.randn(1, 24, 3, dtype=torch.float64)).requires_grad_()

    def vertices(betas, pose):
        return linear_blend_skinning(
            betas, pose, a["v_template"], a["shapedirs"], a["posedirs"], a["J_regressor"], SMPL_24.parents, a["weights"]
        )[0]

    assert torch.autograd.gradcheck(vertices, (betas, pose))


def test_batch_broadcasting_and_rotation_matrix_inputs(smpl_arrays) -> None:
    model = BodyModel(smpl_arrays, dtype=torch.float64)
    rotmats = random_rotmats(3, 24, seed=5)
    axis_angle = torch.from_numpy(Rotation.from_matrix(rotmats.reshape(-1, 3, 3).numpy()).as_rotvec()).reshape(3, 24, 3)
    betas = torch.randn(1, 10, dtype=torch.float64)
    from_matrices = model(betas=betas, global_orient=rotmats[:, 0], body_pose=rotmats[:, 1:])
    from_vectors = model(betas=betas.expand(3, -1), global_orient=axis_angle[:, 0], body_pose=axis_angle[:, 1:].flatten(1))
    for x, y in zip(from_matrices, from_vectors):
        torch.testing.assert_close(x, y, atol=1e-10, rtol=0)


def test_bad_parameters_are_rejected_with_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"betas must have shape \(B, 10\).*got \(2, 11\)"):
        check_body_params(num_betas=10, num_joints=24, betas=torch.zeros(2, 11))
    with pytest.raises(ValueError, match=r"body_pose must have shape \(B, 69\) or \(B, 23, 3\) or \(B, 23, 3, 3\)"):
        check_body_params(num_betas=10, num_joints=24, body_pose=torch.zeros(2, 72))
    with pytest.raises(ValueError, match="batch sizes must agree"):
        check_body_params(num_betas=10, num_joints=24, betas=torch.zeros(2, 10), transl=torch.zeros(3, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_body_params(num_betas=10, num_joints=24, betas=np.zeros((2, 10)))
    assert check_body_params(num_betas=10, num_joints=24, betas=torch.zeros(1, 10), global_orient=torch.zeros(5, 3)) == 5
    with pytest.raises(ValueError, match=r"parents\[j\] < j"):
        forward_kinematics(torch.eye(3).expand(1, 2, 3, 3), torch.zeros(1, 2, 3), [1, -1])
    with pytest.raises(ValueError, match="num_betas=16"):
        BodyModel(synthetic_body_arrays("smpl", num_vertices=30), num_betas=16)


def test_rest_joints_and_posed_points_equal_the_full_mesh(smpl_arrays) -> None:
    """`BodyModel.rest_joints` and `posed_points` are shortcuts: the same numbers as regressing the
    shaped mesh and skinning every vertex, for the vertices asked for."""
    model = BodyModel(smpl_arrays, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    betas = torch.randn(3, 10, generator=generator, dtype=torch.float64)
    pose = 0.5 * torch.randn(3, 24, 3, generator=generator, dtype=torch.float64)
    vertices, joints = model(betas=betas, body_pose=pose[:, 1:], global_orient=pose[:, 0])
    shaped = model.v_template + torch.einsum("bk,nck->bnc", betas, model.shapedirs)
    torch.testing.assert_close(model.rest_joints(betas), torch.einsum("jn,bnc->bjc", model.J_regressor, shaped))
    ids = [0, 7, 42, len(model.v_template) - 1]
    from hmrlab.geometry import axis_angle_to_matrix

    points, posed_joints = model.posed_points(betas, axis_angle_to_matrix(pose), ids)
    torch.testing.assert_close(points, vertices[:, ids])
    torch.testing.assert_close(posed_joints, joints)
    assert "J_template" not in model.state_dict()  # derived buffers: checkpoints keep their keys

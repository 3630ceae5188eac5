"""hmrlab.nn.keypoints: template sizes and ids, landmark placement (ray casting on a sphere, anatomy and
mirror symmetry on the free model), keypoint gathering, and the greedy selection vs NumPy lstsq."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from hmrlab import body
from hmrlab.nn import keypoints as kp

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def arrays() -> dict:
    return body.body_model_arrays("smpl")


@pytest.fixture(scope="module")
def posed(arrays) -> tuple[torch.Tensor, torch.Tensor]:
    model = body.BodyModel(arrays)
    pose = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0)) * 0.2
    return model(body_pose=pose[:, 1:], global_orient=pose[:, 0])


def test_template_kinds_have_the_papers_sizes() -> None:
    paper = kp.keypoint_template("paper91")
    assert (paper.num_joints, paper.num_markers, paper.num_keypoints) == (24, 67, 91)
    code = kp.keypoint_template("code96")
    assert (code.num_joints, code.num_markers, code.num_keypoints) == (29, 67, 96)
    assert code.joint_names[24:] == kp.LEAF_JOINT_NAMES and len(code.leaf_vertex_ids) == 5
    assert kp.keypoint_template("joints24").num_keypoints == 24
    assert paper.marker_names[:47] == kp.MOCAP_MARKER_NAMES
    assert code.marker_vertex_ids == paper.marker_vertex_ids
    assert len(set(paper.names)) == 91 and len(set(paper.marker_vertex_ids)) == 67
    assert all(0 <= i < paper.num_vertices for i in paper.marker_vertex_ids + code.leaf_vertex_ids)
    assert paper.marker_indices == tuple(range(24, 91))


def test_smpl_ids_are_the_published_layout() -> None:
    assert len(kp.MOCAP_MARKER_NAMES) == 47 and len(set(kp.MOCAP_MARKER_NAMES)) == 47
    assert len(kp.AUTHORS_EXTRA_MARKER_NAMES) == 20
    # the authors' 67 list repeats two of the 47 (LTHI, RTHI)
    assert set(kp.MOCAP_MARKER_NAMES) & set(kp.AUTHORS_EXTRA_MARKER_NAMES) == {"LTHI", "RTHI"}
    names = set(kp.MOCAP_MARKER_NAMES) | set(kp.AUTHORS_EXTRA_MARKER_NAMES)
    assert names == set(kp.SMPL_MARKER_VERTEX_IDS)
    assert all(0 <= i < kp.SMPL_NUM_VERTICES for i in kp.SMPL_MARKER_VERTEX_IDS.values())
    # a 6890-vertex mesh takes the standard ids, not the landmark rules
    fake_smpl = {"v_template": np.zeros((kp.SMPL_NUM_VERTICES, 3))}
    ids = kp.mocap_marker_vertex_ids(fake_smpl)
    assert ids["LKNE"] == kp.SMPL_MARKER_VERTEX_IDS["LKNE"] and ids["head_top"] == 411


def test_ray_exit_vertex_on_a_sphere() -> None:
    directions = np.random.default_rng(0).normal(size=(400, 3))
    sphere = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    faces = ConvexHull(sphere).simplices
    rays = np.array([[1.0, 0.2, 0.1], [0.0, -1.0, 0.3], [-0.5, 0.5, -0.5]])
    hit = kp.ray_exit_vertices(sphere, faces, np.zeros((3, 3)), rays)
    # from the centre, the exit vertex is (up to a neighbour) the one most aligned with the ray
    unit = rays / np.linalg.norm(rays, axis=1, keepdims=True)
    best = (sphere @ unit.T).argmax(0)
    assert np.all(np.linalg.norm(sphere[hit] - sphere[best], axis=1) < 0.25)
    with pytest.raises(ValueError, match="hit no face"):
        kp.ray_exit_vertices(sphere, faces, np.array([[3.0, 0, 0]]), np.array([[1.0, 0, 0]]))


def test_landmarks_are_anatomical_and_mirror_symmetric(arrays) -> None:
    ids = kp.mocap_marker_vertex_ids(arrays)
    rest = arrays["v_template"].astype(np.float64)
    joints = arrays["J_regressor"].astype(np.float64) @ rest
    at = {name: rest[i] for name, i in ids.items()}
    names = body.SMPL_JOINT_NAMES
    J = {n: joints[names.index(n)] for n in names}
    for name, point in at.items():
        if name.startswith("L") and name[1:] not in ("BHD",):
            assert point[0] > 0, name  # left markers on the left (+x) side
    assert at["LKNE"][0] > J["left_knee"][0] and at["LANK"][0] > J["left_ankle"][0]  # lateral
    assert at["LMT1"][0] < J["left_foot"][0] < at["LMT5"][0]  # medial vs lateral forefoot
    assert at["LHEE"][2] < J["left_ankle"][2] and at["LTOE"][2] > J["left_foot"][2]
    assert at["CLAV"][2] > J["spine3"][2] and at["C7"][2] < J["neck"][2] and at["T10"][2] < J["spine2"][2]
    assert at["head_top"][1] > at["LFHD"][1] > J["head"][1]
    assert at["LSHO"][1] > J["left_shoulder"][1]
    # the free model is near symmetric: each right marker mirrors its left twin within 1.5 cm
    for name in ids:
        if name.startswith("L") and "R" + name[1:] in ids:
            mirrored = at["R" + name[1:]] * np.array([-1.0, 1.0, 1.0])
            assert np.linalg.norm(at[name] - mirrored) < 0.015, name


def test_keypoints_gather_joints_then_markers(arrays, posed) -> None:
    vertices, joints = posed
    template = kp.keypoint_template("paper91")
    keypoints = kp.keypoints_from_mesh(vertices, joints, template)
    assert keypoints.shape == (2, 91, 3)
    torch.testing.assert_close(keypoints[:, :24], joints)
    for k, vertex in zip(template.marker_indices, template.marker_vertex_ids):
        torch.testing.assert_close(keypoints[:, k], vertices[:, vertex])
    code = kp.keypoint_template("code96")
    with_leaves = kp.keypoints_from_mesh(vertices, joints, code)
    assert with_leaves.shape == (2, 96, 3)
    torch.testing.assert_close(with_leaves[:, 24:29], vertices[:, list(code.leaf_vertex_ids)])
    torch.testing.assert_close(kp.keypoints_from_mesh(vertices, with_leaves[:, :29], code), with_leaves)
    torch.testing.assert_close(kp.keypoints_from_mesh(vertices, joints, kp.keypoint_template("joints24")), joints)


def test_keypoints_reject_a_mesh_of_another_model(posed) -> None:
    vertices, joints = posed
    with pytest.raises(ValueError, match=r"vertices must have shape \(B, 13718, 3\)"):
        kp.keypoints_from_mesh(vertices[:, :6890], joints, kp.keypoint_template())
    with pytest.raises(ValueError, match=r"\(2, 24, 3\) or \(2, 29, 3\)"):
        kp.keypoints_from_mesh(vertices, joints[:, :17], kp.keypoint_template())
    with pytest.raises(ValueError, match="kind must be one of"):
        kp.keypoint_template("paper67")


def test_farthest_point_sampling_on_a_line() -> None:
    points = np.stack([np.array([0.0, 1.0, 2.0, 5.0, 10.0]), np.zeros(5), np.zeros(5)], 1)
    # from 2: the farthest is 10 (8 away), then 5 (3 from 2 and 5 from 10), then 0 (2 from 2)
    assert kp.farthest_point_sampling(points, 4, start=2).tolist() == [2, 4, 3, 0]


def lstsq_error(keypoints: np.ndarray, vertices: np.ndarray) -> float:
    x = np.concatenate([keypoints.reshape(len(keypoints), -1), np.ones((len(keypoints), 1))], 1)
    y = vertices.reshape(len(vertices), -1)
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return float(np.linalg.norm(residual.reshape(len(y), -1, 3), axis=-1).mean())


@pytest.fixture(scope="module")
def small_problem() -> tuple[torch.Tensor, torch.Tensor]:
    """40 random 'meshes' of 12 vertices driven by 4 latent points, plus noise; base keypoints: a point
    always at the origin (like the root joint, which makes the design matrix rank-deficient) and 2 vertices."""
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(40, 4, 3, generator=generator, dtype=torch.float64)
    mixing = torch.randn(12, 4, generator=generator, dtype=torch.float64)
    vertices = torch.einsum("nk,skc->snc", mixing, latent) + 0.05 * torch.randn(40, 12, 3, generator=generator, dtype=torch.float64)
    return vertices, torch.cat([torch.zeros(40, 1, 3, dtype=torch.float64), vertices[:, :2]], 1)


def test_greedy_errors_are_least_squares_errors(small_problem) -> None:
    vertices, base = small_problem
    chosen, errors = kp.greedy_marker_selection(vertices, base, 4)
    assert len(chosen) == len(set(chosen)) == 4 and len(errors) == 5
    for m in range(5):
        keypoints = torch.cat([base, vertices[:, chosen[:m]]], 1)
        assert errors[m] == pytest.approx(lstsq_error(keypoints.numpy(), vertices.numpy()), rel=1e-9)
        assert errors[m] == pytest.approx(kp.vertex_regression_error(keypoints, vertices), rel=1e-9)
    assert all(a >= b for a, b in zip(errors, errors[1:]))


def test_greedy_step_is_the_brute_force_best(small_problem) -> None:
    vertices, base = small_problem
    candidates = torch.tensor([3, 5, 6, 8, 9, 11])
    chosen, _ = kp.greedy_marker_selection(vertices, base, 1, candidates)

    def squared_error(v: int) -> float:
        keypoints = torch.cat([base, vertices[:, [v]]], 1).numpy()
        x = np.concatenate([keypoints.reshape(40, -1), np.ones((40, 1))], 1)
        y = vertices.reshape(40, -1).numpy()
        return float(((y - x @ np.linalg.lstsq(x, y, rcond=None)[0]) ** 2).sum())

    assert chosen[0] == min(candidates.tolist(), key=squared_error)


def test_greedy_needs_enough_meshes(small_problem) -> None:
    vertices, base = small_problem
    with pytest.raises(ValueError, match="pass more than"):
        kp.greedy_marker_selection(vertices[:10], base[:10], 2)


def test_sampled_meshes_match_the_body_model(arrays) -> None:
    ids = [0, 100, 5000]
    vertices, joints = kp.sample_posed_meshes(arrays, 3, seed=1, vertex_ids=ids)
    all_vertices, all_joints = kp.sample_posed_meshes(arrays, 3, seed=1)
    torch.testing.assert_close(vertices, all_vertices[:, ids])
    torch.testing.assert_close(joints[:, 0], torch.zeros(3, 3))
    # the same bodies as BodyModel's forward pass, moved to the pelvis
    generator = torch.Generator().manual_seed(1)
    from hmrlab.data.poses import sample_poses

    poses = sample_poses(3, generator)
    betas = torch.randn(3, 10, generator=generator)
    reference, reference_joints = body.BodyModel(arrays)(betas=betas, body_pose=poses[:, 1:], global_orient=poses[:, 0])
    torch.testing.assert_close(all_vertices, reference - reference_joints[:, :1], atol=1e-5, rtol=0)

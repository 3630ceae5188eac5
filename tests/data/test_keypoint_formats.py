"""Keypoint layouts and `convert_keypoints`: orders as the formats' documents list them, every rule of
the module docstring on hand-made points, and the rules' accuracy on posed free-model bodies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrlab.body import H36M_17, SMPL_24, body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data import keypoint_formats as kf
from hmrlab.data.keypoint_formats import KeypointOrigin as O
from hmrlab.data.motions import ACTIONS, generate_motion
from hmrlab.data.pw3d import PW3D_KEYPOINTS_2D
from hmrlab.data.synth_images import openpose_keypoints

pytestmark = pytest.mark.usefixtures("one_thread")

# Written out from each format's documentation (not from the module).
OPENPOSE_BODY_25 = ("Nose Neck RShoulder RElbow RWrist LShoulder LElbow LWrist MidHip RHip RKnee RAnkle LHip LKnee "
                    "LAnkle REye LEye REar LEar LBigToe LSmallToe LHeel RBigToe RSmallToe RHeel").split()
HALPE_26 = ("Nose LEye REye LEar REar LShoulder RShoulder LElbow RElbow LWrist RWrist LHip RHip LKnee RKnee LAnkle "
            "RAnkle Head Neck Hip LBigToe RBigToe LSmallToe RSmallToe LHeel RHeel").split()
MEDIAPIPE_33 = ("nose left_eye_inner left_eye left_eye_outer right_eye_inner right_eye right_eye_outer left_ear "
                "right_ear mouth_left mouth_right left_shoulder right_shoulder left_elbow right_elbow left_wrist "
                "right_wrist left_pinky right_pinky left_index right_index left_thumb right_thumb left_hip right_hip "
                "left_knee right_knee left_ankle right_ankle left_heel right_heel left_foot_index "
                "right_foot_index").split()


def test_layout_orders_follow_the_formats_documents():
    assert list(kf.BODY25.joint_names) == OPENPOSE_BODY_25
    assert list(kf.HALPE26.joint_names) == HALPE_26
    assert list(kf.MEDIAPIPE33.joint_names) == MEDIAPIPE_33
    assert kf.COCO18.points == PW3D_KEYPOINTS_2D[:1] + ("neck_base",) + PW3D_KEYPOINTS_2D[2:]
    assert kf.H36M17.joint_names == H36M_17.joint_names and kf.SMPL24.joint_names == SMPL_24.joint_names
    assert kf.COCO17.skeleton is not None and kf.BODY25.skeleton is None
    for layout in kf.LAYOUTS.values():  # left/right twins pair up
        flip = layout.flip_permutation
        assert sorted(flip) == list(range(layout.num_joints)) and (flip[flip] == np.arange(layout.num_joints)).all()


def test_layout_names_and_errors():
    assert kf.get_layout("COCO-17") is kf.COCO17 and kf.get_layout("body_25") is kf.BODY25
    assert kf.get_layout("h36m") is kf.H36M17 and kf.get_layout(kf.SMPL24) is kf.SMPL24
    with pytest.raises(ValueError, match="unknown keypoint layout 'openpose-hands'.*coco17"):
        kf.get_layout("openpose-hands")
    with pytest.raises(ValueError, match=r"\(\.\.\., 17, 2 or 3\)"):
        kf.convert_keypoints(np.zeros((3, 18, 2)), "coco17", "h36m17")


def _points(layout: kf.KeypointLayout, rng: np.random.Generator, frames: int = 4) -> np.ndarray:
    xy = rng.uniform(0, 500, (frames, layout.num_joints, 2))
    return np.concatenate([xy, rng.uniform(0.5, 1.0, (frames, layout.num_joints, 1))], -1)


def test_measured_points_are_copied_and_round_trips_are_exact():
    rng = np.random.default_rng(0)
    coco = _points(kf.COCO17, rng)
    for target in ("body25", "coco18", "halpe26", "mediapipe33"):
        out, origin = kf.convert_keypoints(coco, "coco17", target)
        back, back_origin = kf.convert_keypoints(out, target, "coco17")
        assert np.array_equal(back, coco) and (back_origin == O.MEASURED).all()
    body25 = _points(kf.BODY25, rng)
    h36m, origin = kf.convert_keypoints(body25, "body25", "h36m17")
    assert np.array_equal(h36m[..., 0, :], body25[..., 8, :])  # MidHip is the hip centre: measured
    assert (origin[..., 0] == O.MEASURED).all()


def test_the_human36m_rules():
    rng = np.random.default_rng(1)
    coco = _points(kf.COCO17, rng)
    p = {name: coco[:, i, :2] for i, name in enumerate(kf.COCO17.points)}
    h36m, origin = kf.convert_keypoints(coco, "coco17", "h36m17")
    H = {name: h36m[:, i, :2] for i, name in enumerate(kf.H36M17.points)}
    pelvis = (p["left_hip"] + p["right_hip"]) / 2
    thorax = (p["left_shoulder"] + p["right_shoulder"]) / 2
    mid_ear = (p["left_ear"] + p["right_ear"]) / 2
    np.testing.assert_allclose(H["pelvis"], pelvis)
    np.testing.assert_allclose(H["thorax"], thorax)
    np.testing.assert_allclose(H["spine"], (pelvis + thorax) / 2)
    np.testing.assert_allclose(H["neck_nose"], p["nose"])
    np.testing.assert_allclose(H["head_top"], 1.33 * mid_ear - 0.48 * thorax + 0.15 * p["nose"])
    expected = {"pelvis": O.SYNTHESISED, "spine": O.SYNTHESISED, "thorax": O.SYNTHESISED, "neck_nose": O.COPIED,
                "head_top": O.SYNTHESISED, "left_knee": O.MEASURED}
    for name, how in expected.items():
        assert (origin[:, kf.H36M17.index(name)] == how).all(), name
    # a synthesised joint's confidence is the lowest of its inputs'
    np.testing.assert_allclose(h36m[:, 0, 2], np.minimum(coco[:, 11, 2], coco[:, 12, 2]))


def test_fallbacks_frame_by_frame_and_missing_joints():
    rng = np.random.default_rng(2)
    coco = _points(kf.COCO17, rng, frames=3)
    coco[1, kf.COCO17.index("left_ear"), 2] = 0.0  # no ear in frame 1: the eyes' rule
    coco[2, [1, 2, 3, 4], 2] = 0.0  # no eyes or ears in frame 2: the nose-thorax-pelvis rule
    h36m, origin = kf.convert_keypoints(coco, "coco17", "h36m17")
    head = kf.H36M17.index("head_top")
    p = {name: coco[:, i, :2] for i, name in enumerate(kf.COCO17.points)}
    thorax = (p["left_shoulder"] + p["right_shoulder"]) / 2
    pelvis = (p["left_hip"] + p["right_hip"]) / 2
    mid_eye = (p["left_eye"] + p["right_eye"]) / 2
    np.testing.assert_allclose(h36m[1, head, :2], 3.66 * mid_eye[1] - 2.72 * p["nose"][1] + 0.06 * thorax[1])
    np.testing.assert_allclose(h36m[2, head, :2], 0.26 * p["nose"][2] + 1.36 * thorax[2] - 0.62 * pelvis[2])
    assert (origin[:, head] == O.SYNTHESISED).all()
    coco[0, 0] = np.nan  # a NaN nose: the neck/nose joint and the head top are missing in frame 0 ...
    coco[0, [1, 2], 2] = 0.0
    h36m, origin = kf.convert_keypoints(coco, "coco17", "h36m17")
    assert origin[0, kf.H36M17.index("neck_nose")] == O.MISSING and np.isnan(h36m[0, 9, :2]).all()
    assert h36m[0, 9, 2] == 0.0
    smpl, origin = kf.convert_keypoints(coco, "coco17", "smpl24")  # COCO has no toes or finger points
    assert (origin[:, [10, 11, 22, 23]] == O.MISSING).all() and np.isnan(smpl[:, [10, 11, 22, 23], :2]).all()
    back, origin = kf.convert_keypoints(np.zeros((2, 17, 3)), "h36m17", "coco17")  # 3D, no confidence
    assert back.shape == (2, 17, 3) and origin[0, 0] == O.COPIED and (origin[:, 1:5] == O.MISSING).all()


def test_describe_conversion_names_the_rules():
    lines = kf.describe_conversion("coco17", "h36m17")
    assert lines[0] == "pelvis: SYNTHESISED (0.5 left_hip + 0.5 right_hip)"
    assert "neck: COPIED (from nose)" in lines
    assert "head: MEASURED" in kf.describe_conversion("halpe26", "h36m17")


@pytest.fixture(scope="module")
def posed_bodies():
    """Free-model bodies in 60 poses of the motion library: COCO-17 and BODY_25-like points from the mesh,
    the Human3.6M joints of its regressor and the SMPL joints."""
    arrays = body_model_arrays("smpl")
    model = BodyModel(arrays)
    generator = torch.Generator().manual_seed(3)
    poses = torch.cat([generate_motion(a, generator=generator, fps=10).poses[::4] for a in ACTIONS])[:60]
    betas = torch.randn(len(poses), 10, generator=generator)
    with torch.no_grad():
        vertices, joints = model(betas=betas, body_pose=poses[:, 1:], global_orient=poses[:, 0])
    vertices, joints = vertices.double().numpy(), joints.double().numpy()
    ids = dict(zip(arrays["extra_vertex_names"].tolist(), arrays["extra_vertex_ids"].tolist()))
    coco18 = openpose_keypoints(joints, vertices, ids)  # OpenPose-18 order, from joints and face vertices
    toes = {"left_big_toe": "LBigToe", "left_small_toe": "LSmallToe", "left_heel": "LHeel",
            "right_big_toe": "RBigToe", "right_small_toe": "RSmallToe", "right_heel": "RHeel"}
    openpose = {"neck_base": "neck", **{p: p for p in PW3D_KEYPOINTS_2D}}
    body25 = np.stack([coco18[:, PW3D_KEYPOINTS_2D.index(openpose[p])] if p in openpose
                       else vertices[:, ids[toes[p]]] if p in toes else (joints[:, 1] + joints[:, 2]) / 2
                       for p in kf.BODY25.points], 1)  # MidHip: the mean of the hips
    h36m = np.einsum("kn,bnc->bkc", arrays["J_regressor_h36m"], vertices)
    return {"body25": body25, "h36m": h36m, "smpl": joints}


def _error_mm(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return 1000 * np.linalg.norm(pred - truth, axis=-1).mean(0)


def test_rules_on_posed_bodies_land_where_the_docstring_says(posed_bodies):
    body25 = posed_bodies["body25"]
    h36m, origin = kf.convert_keypoints(body25, "body25", "h36m17", confidence=False)
    assert (origin != O.MISSING).all()
    error = dict(zip(kf.H36M17.points, _error_mm(h36m, posed_bodies["h36m"])))
    made = ("pelvis", "spine", "thorax", "neck_nose", "head_top")  # the synthesised and copied ones
    assert error["head_top"] < 6 and error["neck_nose"] < 10 and error["spine"] < 10, error
    assert np.mean([error[name] for name in made]) < 6, error
    smpl, origin = kf.convert_keypoints(body25, "body25", "smpl24", confidence=False)
    error = dict(zip(kf.SMPL24.joint_names, _error_mm(smpl, posed_bodies["smpl"])))
    assert (origin[:, [22, 23]] == O.MISSING).all()  # no finger points in BODY_25
    del error["left_hand"], error["right_hand"]
    for name in ("head", "left_collar", "right_collar", "left_foot", "right_foot", "pelvis"):
        assert error[name] < 12, (name, error[name])
    assert error["neck"] < 20 and max(error[f"spine{k}"] for k in (1, 2, 3)) < 60, error

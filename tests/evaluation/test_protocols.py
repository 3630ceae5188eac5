"""Benchmark protocols: aggregation checked on poses whose errors are known in closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab import evaluation
from hmrlab.body.skeletons import H36M_17

pytestmark = pytest.mark.usefixtures("one_thread")

RNG = np.random.default_rng(0)


def poses(frames: int, joints: int = 17) -> np.ndarray:
    return RNG.normal(scale=0.3, size=(frames, joints, 3))


def moved_joint(target: np.ndarray, joint: int, offset: np.ndarray) -> np.ndarray:
    pred = target.copy()
    pred[:, joint] += offset
    return pred


def test_h36m_average_over_actions_and_over_frames() -> None:
    # One non-root joint off by d: root-aligned MPJPE is d / 17 in every frame.
    walk, eat = poses(10), poses(30)
    predictions = {
        ("S9", "Walking 1", 0): moved_joint(walk, 5, np.array([0.017, 0, 0])),
        ("S11", "Eating", 1): moved_joint(eat, 5, np.array([0, 0.034, 0])),
    }
    table = evaluation.h36m_protocols(predictions, {("S9", "Walking 1", 0): walk, ("S11", "Eating", 1): eat})
    assert list(table.index) == ["Eating", "Walking", "Average", "All frames"]
    np.testing.assert_allclose(table.loc["Walking", "MPJPE"], 1.0)
    np.testing.assert_allclose(table.loc["Eating", "MPJPE"], 2.0)
    np.testing.assert_allclose(table.loc["Average", "MPJPE"], 1.5)
    np.testing.assert_allclose(table.loc["All frames", "MPJPE"], (10 * 1 + 30 * 2) / 40)
    assert table.loc["All frames", "frames"] == 40 and table.loc["Eating", "frames"] == 30
    # A constant offset has no velocity error.
    np.testing.assert_allclose(table["MPJVE"], 0.0, atol=1e-9)


def test_h36m_takes_of_one_action_are_pooled_and_protocol_2_ignores_rotation() -> None:
    first, second = poses(5), poses(7)
    rotation = Rotation.from_rotvec([0.3, -1.0, 0.2]).as_matrix()
    predictions = {("S9", "Walking 1"): first @ rotation.T + 0.5, ("S9", "Walking"): second.copy()}
    table = evaluation.h36m_protocols(predictions, {("S9", "Walking 1"): first, ("S9", "Walking"): second})
    assert list(table.index) == ["Walking", "Average", "All frames"]
    assert table.loc["Walking", "frames"] == 12
    np.testing.assert_allclose(table["PA-MPJPE"], 0.0, atol=1e-9)
    assert table.loc["Walking", "MPJPE"] > 10  # the rotated take is wrong before alignment


def test_h36m_velocity_error_of_a_drifting_joint() -> None:
    target = poses(20)
    drift = np.arange(20)[:, None] * np.array([0.0, 0.0, 0.017])  # 17 mm per frame on one joint
    table = evaluation.h36m_protocols({("S9", "Posing"): moved_joint(target, 3, drift)}, {("S9", "Posing"): target})
    np.testing.assert_allclose(table.loc["Posing", "MPJVE"], 1.0)


def test_h36m_accepts_torch_and_rejects_bad_input() -> None:
    target = poses(4)
    table = evaluation.h36m_protocols({("S9", "Sitting"): torch.tensor(target)}, {("S9", "Sitting"): target})
    np.testing.assert_allclose(table["MPJPE"], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="same sequence keys"):
        evaluation.h36m_protocols({("S9", "Sitting"): target}, {("S9", "Eating"): target})
    with pytest.raises(ValueError, match="differ"):
        evaluation.h36m_protocols({("S9", "Sitting"): target[:3]}, {("S9", "Sitting"): target})
    with pytest.raises(ValueError, match="empty"):
        evaluation.h36m_protocols({}, {})
    bad = target.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        evaluation.h36m_protocols({("S9", "Sitting"): bad}, {("S9", "Sitting"): target})


def test_lsp14_joints_are_the_spin_selection() -> None:
    # SPIN's H36M_TO_J14 in the order of the Human3.6M regressor used by VideoPose3D's joint names.
    names = [H36M_17.joint_names[i] for i in evaluation.H36M_TO_LSP14]
    assert names[:6] == ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle"]
    assert len(set(evaluation.H36M_TO_LSP14)) == 14 and 0 not in evaluation.H36M_TO_LSP14


def one_hot_regressor(vertices: int) -> np.ndarray:
    """Joint j of the 17 is vertex j: regressed joints are then known exactly."""
    regressor = np.zeros((17, vertices))
    regressor[np.arange(17), np.arange(17)] = 1.0
    return regressor


def test_3dpw_protocol_closed_forms() -> None:
    frames, vertices = 12, 40
    target = poses(frames, vertices)
    regressor = one_hot_regressor(vertices)
    ankle = H36M_17.joint_names.index("right_ankle")
    t = np.arange(frames)[:, None]
    # A global translation is removed by the mid-hip centring; the ankle moves on a parabola
    # x_t = a t^2 whose second difference is 2a; a vertex that is no joint moves by a constant.
    pred = target + np.array([1.0, -2.0, 0.5])
    pred[:, ankle] += t**2 * np.array([0.007, 0.0, 0.0])
    pred[:, 30] += np.array([0.0, 0.08, 0.0])
    table = evaluation.pw3d_protocol({"seq": pred}, {"seq": target}, regressor)
    row = table.loc["seq"]
    np.testing.assert_allclose(row["Accel"], 1000 * 2 * 0.007 / 14)
    expected_mpjpe = 1000 * (0.007 * t[:, 0] ** 2).mean() / 14
    np.testing.assert_allclose(row["MPJPE"], expected_mpjpe)
    expected_mpvpe = 1000 * ((0.007 * t[:, 0] ** 2).mean() + 0.08) / vertices
    np.testing.assert_allclose(row["MPVPE"], expected_mpvpe)
    with pytest.raises(ValueError, match=r"\(17, V\)"):
        evaluation.pw3d_protocol({"seq": pred}, {"seq": target}, regressor[:14])
    with pytest.raises(ValueError, match="at least 3"):
        evaluation.pw3d_protocol({"seq": pred[:2]}, {"seq": target[:2]}, regressor)



def test_3dpw_joint_protocol_equals_the_mesh_protocol_on_regressed_joints() -> None:
    """A lifter's joints scored by pw3d_joint_protocol get the mesh protocol's joint columns."""
    frames, vertices = 9, 40
    rng = np.random.default_rng(3)
    target = poses(frames, vertices)
    pred = target + 0.02 * rng.standard_normal(target.shape)
    regressor = rng.random((17, vertices))
    regressor /= regressor.sum(1, keepdims=True)
    mesh = evaluation.pw3d_protocol({"a": pred}, {"a": target}, regressor)
    joints = evaluation.pw3d_joint_protocol({"a": regressor @ pred}, {"a": regressor @ target})
    assert list(joints.columns) == ["MPJPE", "PA-MPJPE", "Accel", "frames"]
    pd.testing.assert_frame_equal(joints, mesh[joints.columns])
    with pytest.raises(ValueError, match="17 Human3.6M joints"):
        evaluation.pw3d_joint_protocol({"a": target[:, :14]}, {"a": target[:, :14]})

def test_3dhp_pck_and_auc() -> None:
    target = poses(6)
    pred = moved_joint(target, 4, np.array([0.2, 0.0, 0.0]))  # beyond 150 mm: 16 of 17 joints correct
    table = evaluation.mpi3dhp_protocol({"TS1": pred, "TS2": target}, {"TS1": target, "TS2": target})
    np.testing.assert_allclose(table.loc["TS1", "PCK"], 100 * 16 / 17)
    np.testing.assert_allclose(table.loc["TS2", "AUC"], 100 * 30 / 31)  # strict "<": threshold 0 never counts
    np.testing.assert_allclose(table.loc["TS1", "AUC"], 100 * 16 / 17 * 30 / 31)
    np.testing.assert_allclose(table.loc["All frames", "PCK"], 100 * (16 / 17 + 1) / 2)
    subset = evaluation.mpi3dhp_protocol({"TS1": pred}, {"TS1": target}, joints=[1, 2, 3])
    np.testing.assert_allclose(subset.loc["TS1", "PCK"], 100.0)

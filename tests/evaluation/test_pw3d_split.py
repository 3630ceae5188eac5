"""The common 3DPW-format split: targets against smplx and the files' own joints, scoring, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrlab import evaluation, paths
from hmrlab.body import body_model_arrays, load_body_model
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import camera_frame_targets, image_coordinates
from hmrlab.evaluation import pw3d_split

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def test_sequence():
    (name, sequence), = pw3d_split.load_split(paths.SYNTH_3DPW, "test").items()
    actor = sequence.actors[0]
    targets = camera_frame_targets(sequence, actor)
    pose = torch.as_tensor(targets["pose"], dtype=torch.float32)
    betas = torch.as_tensor(actor.betas, dtype=torch.float32).expand(len(pose), -1)
    return name, sequence, targets, pose, betas


def test_target_meshes_equal_smplx(test_sequence):
    _, _, _, pose, betas = test_sequence
    smplx_model = load_body_model("smpl")
    with torch.no_grad():
        reference = smplx_model(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    torch.testing.assert_close(smpl_targets.smpl_meshes(pose, betas), reference, atol=1e-5, rtol=0)


def test_lifting_targets_sit_where_the_files_put_the_body(test_sequence):
    name, sequence, targets, pose, betas = test_sequence
    poses_2d, joints_3d = pw3d_split.lifting_sequences(paths.SYNTH_3DPW)[f"{name}/0"]
    regressor = torch.as_tensor(body_model_arrays("smpl")["J_regressor_h36m"], dtype=torch.float32)
    vertices = smpl_targets.smpl_meshes(pose, betas)
    expected = torch.einsum("jv,tvc->tjc", regressor, vertices)
    torch.testing.assert_close(joints_3d, expected - expected[:, :1], atol=1e-5, rtol=0)
    # Back in pixels, the 2D pelvis (mid-hip of H36M) is the projection of the camera-frame body:
    # compare the 2D hips' midpoint with the projected midpoint of the files' SMPL hip joints,
    # which the H36M regressor places within a few centimetres of (a few pixels at 3-4 m).
    width, height = pw3d_split.image_size(paths.SYNTH_3DPW, name)
    pixels = image_coordinates(poses_2d, width, height)
    smpl_hips_2d = targets["joints_2d"][:, [1, 2]].mean(1)
    assert np.abs(pixels[:, 0].numpy() - smpl_hips_2d).max() < 4.0
    assert poses_2d.shape == (len(pose), 17, 2) and poses_2d.abs().max() <= 1.0


def test_score_frames_groups_interleaved_keys(test_sequence):
    _, _, _, pose, betas = test_sequence
    target = smpl_targets.smpl_meshes(pose, betas)
    pred = target + 0.01 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    keys = ["a" if i % 2 else "b" for i in range(len(target))]
    table = pw3d_split.score_frames(keys, pred, target)
    rows = {k: [i for i in range(len(keys)) if keys[i] == k] for k in ("a", "b")}
    direct = evaluation.pw3d_protocol({k: pred[r].numpy() for k, r in rows.items()},
                                      {k: target[r].numpy() for k, r in rows.items()},
                                      body_model_arrays("smpl")["J_regressor_h36m"])
    np.testing.assert_allclose(table.loc[["a", "b"]].to_numpy(), direct.loc[["a", "b"]].to_numpy())
    shifted = pw3d_split.score_frames(keys, target + torch.tensor([0.3, -0.2, 1.0]), target)
    np.testing.assert_allclose(shifted[["MPJPE", "PA-MPJPE", "MPVPE", "Accel"]].to_numpy(), 0.0, atol=1e-3)
    with pytest.raises(ValueError, match="one key per frame"):
        pw3d_split.score_frames(keys[:-1], pred, target)


def test_bad_folders_and_splits(tmp_path):
    with pytest.raises(FileNotFoundError, match="3DPW-format folder"):
        pw3d_split.load_split(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        pw3d_split.load_split(paths.SYNTH_3DPW, "validation")
    with pytest.raises(FileNotFoundError, match="image_00000.jpg"):
        pw3d_split.image_size(tmp_path, "nothing")

"""Floors of the mesh tasks: the mean training body (chordal rotation mean, as scipy's
`Rotation.mean`), scored with each task's own table, and logged beside the model's error in training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch.utils.data import default_collate

from hmrlab import metrics, paths, training
from hmrlab.data import smpl_targets
from hmrlab.training.tasks import mesh, video, wholebody

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TABLE = ["MPJPE", "PA-MPJPE", "MPVPE", "Accel", "frames"]


def _config(name: str, *overrides: str) -> training.RunConfig:
    return training.load_config(CONFIGS / name, ["out_dir=unused", "progress=false", *overrides], quick=True)


def test_mesh_mean_body_is_scipys_rotation_mean():
    """The mean pose is, joint by joint, scipy's chordal L2 mean of the training rotations, and the
    betas their mean; the floor table is the constant body's 3DPW table on the test frames."""
    config = _config("mesh_keypoint_hmr.yaml")
    train, _ = mesh._raw_datasets(config)
    poses, betas = mesh.training_parameters(train)
    pose, mean_betas = mesh.mean_body(train)
    for joint in range(24):
        expected = Rotation.from_rotvec(poses.reshape(-1, 24, 3)[:, joint].double().numpy()).mean()
        assert np.allclose(Rotation.from_rotvec(pose[3 * joint : 3 * joint + 3].double().numpy()).as_matrix(),
                           expected.as_matrix(), atol=1e-5)
    torch.testing.assert_close(mean_betas, betas.mean(0))
    table = mesh.floor(config)
    assert list(table.columns) == TABLE and table.index[-2:].tolist() == ["Average", "All frames"]
    assert table.equals(mesh.floor(config, paths.SYNTH_3DPW))  # the default folder's test split is the validation
    # the constant's MPJPE, recomputed from its mesh: 3DPW's protocol on the 14 LSP joints, mid-hip centred
    constant, joints = smpl_targets.posed_smpl(pose[None], mean_betas[None])
    samples, _ = mesh._samples(config, paths.SYNTH_3DPW, "test")
    targets = mesh._split_targets(samples)
    from hmrlab.training.tasks.wholebody import lsp14_body_errors

    errors = lsp14_body_errors((constant - joints[:, :1]).expand_as(targets), targets)
    assert table.loc["All frames", "MPJPE"] == pytest.approx(float(errors["MPJPE"].mean()), abs=1e-3)


def test_mesh_loss_logs_the_floor_beside_the_model():
    """Every item carries the mean body's joints; the loss logs their MPJPE against the batch's
    truth, ``floor_mpjpe``, in the same units as ``mpjpe``."""
    config = _config("mesh_keypoint_hmr.yaml", "data.crop_size=[32,32]")
    train, val = mesh.build_datasets(config)
    batch = default_collate([val[i] for i in range(4)])
    terms = mesh.loss(training.build_model(config), batch)
    pose, betas = mesh.mean_body(train.dataset)
    _, joints = smpl_targets.posed_smpl(pose[None], betas[None])
    truth = batch["joints_3d"] - batch["joints_3d"][:, :1]
    expected = 1000 * metrics.mpjpe((joints - joints[:, :1]).expand_as(truth), truth)
    assert float(terms["floor_mpjpe"]) == pytest.approx(float(expected), rel=1e-4)
    assert {"mpjpe", "kp_spread", "kp_spread_target"} <= set(terms)


def test_mesh_task_on_synth_crops(tmp_path):
    """format crops: train and val SynthCrops sets rendered into crops_dir with seeds apart, items as
    MeshSamples', augmentation for training only, and a floor table on the validation samples."""
    config = _config("mesh_keypoint_hmr.yaml", "data.format=crops", f"data.crops_dir={tmp_path}",
                     "data.train_count=4", "data.val_count=3", "data.crop_size=[32,32]", "data.render_workers=1")
    train, val = mesh.build_datasets(config)
    assert (len(train), len(val)) == (4, 3)
    assert train.dataset.augment is not None and val.dataset.augment is None
    assert train.dataset.config["seed"] == mesh.settings(config).seed
    assert val.dataset.config["seed"] == mesh.settings(config).seed + mesh.VAL_SEED_OFFSET
    assert train[0]["image"].shape == (3, 32, 32) and "floor_joints" in train[0]
    table = mesh.floor(config)
    assert table.index.tolist() == ["validation", "Average", "All frames"] and table.loc["All frames", "frames"] == 3
    assert list(mesh.floor(config, paths.SYNTH_3DPW).columns) == TABLE


def test_video_floor_and_metric():
    config = _config("video_lifd_hmr.yaml")
    table = video.floor(config)
    assert list(table.columns) == TABLE and table.loc["All frames", "frames"] == 16
    assert "floor_mpjpe" in video.TASK.metrics and video.TASK.floor is video.floor
    _, val = video.build_datasets(config)
    batch = default_collate([val[i] for i in range(len(val))])
    assert 50 < video.floor_mpjpe(None, batch) < 1000


def test_wholebody_floor_and_metric(tmp_path):
    config = _config("wholebody_bidrn.yaml", f"data.cache_dir={tmp_path}")
    in_domain = wholebody.floor(config)
    assert list(in_domain.columns) == ["MPJPE", "PA-MPJPE", "MPVPE", "Hands PA-MPJPE", "samples"]
    assert list(wholebody.floor(config, paths.SYNTH_3DPW).columns) == TABLE
    _, val = wholebody.build_datasets(config)
    batch = default_collate([val[i] for i in range(len(val))])
    assert 50 < wholebody.floor_mpjpe(None, batch) < 1000
    assert wholebody.TASK.floor is wholebody.floor and mesh.TASK.floor is mesh.floor


def test_mean_mesh_constant_is_notebook_10s():
    """``constant="mesh"`` is the mean of the training meshes (notebook 10's floor), here recomputed."""
    config = _config("mesh_keypoint_hmr.yaml")
    train, _ = mesh._raw_datasets(config)
    samples, keys = mesh._samples(config, paths.SYNTH_3DPW, "test")
    targets = mesh._split_targets(samples)
    from hmrlab.evaluation import pw3d_split

    expected = pw3d_split.score_frames(keys, mesh._split_targets(train).mean(0).expand_as(targets), targets)
    table = mesh.floor(config, constant="mesh")
    np.testing.assert_allclose(table.to_numpy(dtype=float), expected.to_numpy(dtype=float), atol=1e-3)
    assert list(video.floor(_config("video_lifd_hmr.yaml"), constant="mesh").columns) == TABLE
    with pytest.raises(ValueError, match="constant must be"):
        mesh.floor(config, constant="median")

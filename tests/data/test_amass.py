"""AMASS takes on the free model: the fixture (AMASS's exact layout, see its README) read back, the
change to hmrlab's y-up world checked on the posed body, resampling, and the Human3.6M-format writer
read by the lifting task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrlab import paths, training
from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data import amass
from hmrlab.data.cameras import Y_UP_TO_Z_UP
from hmrlab.data.h36m import load_h36m

pytestmark = pytest.mark.usefixtures("one_thread")

FOLDER = paths.FIXTURES / "amass"
WALK = FOLDER / "SynthMocap" / "performer_01" / "walk_01_poses.npz"


@pytest.fixture(scope="module")
def model():
    return BodyModel(body_model_arrays("smpl"), dtype=torch.float64)


def test_the_fixture_is_in_amass_layout():
    content = np.load(WALK, allow_pickle=False)
    assert sorted(content.files) == ["betas", "dmpls", "gender", "mocap_framerate", "poses", "trans"]
    assert content["poses"].shape == (48, 156) and content["poses"].dtype == np.float64
    assert content["trans"].shape == (48, 3) and content["betas"].shape == (16,)
    assert float(content["mocap_framerate"]) == 120
    assert str(content["gender"]) == "male"
    assert amass.amass_files(FOLDER) == sorted(FOLDER.rglob("*_poses.npz"))


def test_load_maps_smplh_to_smpl_and_z_up_to_y_up(model):
    motion = amass.load_amass(WALK, model=model)
    raw = np.load(WALK)["poses"].reshape(48, 52, 3)
    assert motion.poses.shape == (48, 24, 3) and motion.fps == 120 and motion.gender == "male"
    np.testing.assert_allclose(motion.poses[:, 1:22], raw[:, 1:22], atol=1e-6)  # body joints as they are
    np.testing.assert_allclose(motion.poses[:, 22], raw[:, 22 + 3], atol=1e-6)  # left_middle1
    np.testing.assert_allclose(motion.poses[:, 23], raw[:, 37 + 3], atol=1e-6)  # right_middle1
    # the same body posed in the file's z-up world and in ours: every joint turned by Y_UP_TO_Z_UP
    file_pose = torch.as_tensor(np.concatenate([raw[:, :22], raw[:, [25, 40]]], 1))
    trans = torch.as_tensor(np.load(WALK)["trans"])
    _, joints_z = model(body_pose=file_pose[:, 1:], global_orient=file_pose[:, 0], transl=trans)
    ours = torch.as_tensor(motion.poses, dtype=torch.float64)
    _, joints_y = model(body_pose=ours[:, 1:], global_orient=ours[:, 0],
                        transl=torch.as_tensor(motion.transl, dtype=torch.float64))
    np.testing.assert_allclose(joints_y.numpy() @ Y_UP_TO_Z_UP.T, joints_z.numpy(), atol=2e-6)
    assert 0.8 < joints_y[:, 0, 1].mean() < 1.0  # the pelvis about 0.9 m above the floor, y up


def test_resampling(model):
    full = amass.load_amass(WALK, model=model)
    half = amass.load_amass(WALK, fps=60, model=model)
    np.testing.assert_allclose(half.poses, full.poses[::2], atol=1e-5)
    np.testing.assert_allclose(half.transl, full.transl[::2], atol=1e-6)
    fifty = amass.load_amass(WALK, fps=50, model=model)
    assert len(fifty.poses) == 20 and fifty.fps == 50  # 47 / 120 s at 50 Hz: frames 0..19
    # frame 1 at 0.02 s lies between the 120 Hz frames 2 and 3 (0.0167 s, 0.025 s)
    low, high = np.minimum(full.transl[2], full.transl[3]), np.maximum(full.transl[2], full.transl[3])
    assert ((fifty.transl[1] >= low - 1e-7) & (fifty.transl[1] <= high + 1e-7)).all()


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="shape.npz holds only"):
        amass.load_amass(FOLDER / "SynthMocap" / "performer_01" / "shape.npz")
    with pytest.raises(FileNotFoundError):
        amass.load_amass(tmp_path / "absent_poses.npz")
    np.savez(tmp_path / "bad_poses.npz", poses=np.zeros((4, 100)), trans=np.zeros((4, 3)), mocap_framerate=30.0)
    with pytest.raises(ValueError, match=r"\(N, 156\) \(SMPL-H\)"):
        amass.load_amass(tmp_path / "bad_poses.npz")


def test_subjects_split_by_performer():
    files = amass.amass_files(FOLDER)
    assert [amass.assign_subjects(files)[f] for f in files] == ["S1", "S9"]
    same_performer = [FOLDER / "p" / f"take_{k}.npz" for k in range(5)]
    assert list(amass.assign_subjects(same_performer).values()) == ["S1", "S5", "S6", "S9", "S11"]


def test_writer_makes_data_the_lifting_task_reads(tmp_path):
    out = amass.write_h36m_from_amass(FOLDER, tmp_path / "h36m", fps=50, min_frames=9, progress=False)
    data = load_h36m(out / "data_3d_h36m.npz", out / "data_2d_h36m_synth_det.npz")
    assert sorted(data.positions_3d) == ["S1", "S9"]
    assert data.positions_3d["S1"]["walk_01 1"].shape == (20, 17, 3)
    assert len(data.positions_2d["S9"]["squat_01 1"]) == 4
    config = training.load_config({"task": "lifting", "model": "MixSTE", "out_dir": str(tmp_path / "run"),
                                   "data": {"dir": str(out), "frames": 9, "keypoints": "gt"}})
    train_set, val_set = training.get_task("lifting").build_datasets(config)
    inputs, target = train_set[0]
    assert inputs.shape == (9, 17, 2) and target.shape == (9, 17, 3) and len(val_set) > 0
    assert torch.allclose(target[:, 0], torch.zeros(3), atol=1e-6)  # root-relative camera-frame metres

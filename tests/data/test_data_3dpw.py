"""hmrlab.data.pw3d: 3DPW sequence files (Python 2 pickles) read safely, joints through the body model.

References: the fixture (a hand-assembled Python 2 pickle, see hmrlab/assets/fixtures/README.md) read
by the standard library's trusting unpickler; joints in the rest pose from the model's own arrays
(J_regressor @ v_template); hmrlab's own LBS (`BodyModel`) for posed joints.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hmrlab import paths
from hmrlab.body import BodyModel, body_model_arrays, load_body_model
from hmrlab.data.pw3d import PW3D_KEYPOINTS_2D, load_3dpw, write_3dpw

FIXTURE_DIR = paths.FIXTURES / "3dpw"
FIXTURE = FIXTURE_DIR / "sequenceFiles" / "test" / "courtyard_tiny_00.pkl"


@pytest.fixture(scope="module")
def smpl():
    return load_body_model("smpl")


def trusted(path: Path) -> dict:
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def test_fixture_reads_like_the_standard_unpickler(smpl):
    reference = trusted(FIXTURE)
    sequence = load_3dpw(FIXTURE, body_model=smpl)["courtyard_tiny_00"]
    np.testing.assert_array_equal(sequence.cam_poses, reference["cam_poses"])
    np.testing.assert_array_equal(sequence.cam_intrinsics, reference["cam_intrinsics"])
    assert [a.gender for a in sequence.actors] == reference["genders"] == ["m", "f"]
    for i, actor in enumerate(sequence.actors):
        for key in ("betas", "poses", "trans"):
            np.testing.assert_array_equal(getattr(actor, key), reference[key][i])
        np.testing.assert_array_equal(actor.keypoints_2d[:, :, 0], reference["poses2d"][i][:, 0])  # x row
        np.testing.assert_array_equal(actor.keypoints_2d[:, 5], reference["poses2d"][i][:, :, 5])  # left shoulder
        assert actor.keypoints_2d.shape == (3, len(PW3D_KEYPOINTS_2D), 3)
        assert actor.campose_valid.tolist() == [True, True, False]
        # The stored jointPositions were made with the same free model: the computed joints match them.
        assert actor.joints.shape == actor.stored_joints.shape == (3, 24, 3)
        np.testing.assert_allclose(actor.joints.reshape(3, 72), reference["jointPositions"][i], atol=1e-5)
        assert actor.joint_error < 1e-5
    assert set(sequence.content) == set(reference)


def test_folder_is_searched_recursively(smpl):
    assert list(load_3dpw(FIXTURE_DIR, body_model=smpl)) == ["courtyard_tiny_00"]


def test_joints_follow_the_body_model(tmp_path, smpl):
    arrays = body_model_arrays("smpl")
    content = trusted(FIXTURE)
    content["poses"][0] = np.zeros((3, 72))  # rest pose, zero shape: joints = J_regressor @ v_template + trans
    content["betas"][0] = np.zeros(10)
    del content["jointPositions"]
    write_3dpw(tmp_path / "seq.pkl", content)
    actors = load_3dpw(tmp_path / "seq.pkl", body_model={"m": smpl, "f": smpl})["courtyard_tiny_00"].actors
    rest = arrays["J_regressor"].astype(np.float64) @ arrays["v_template"]
    np.testing.assert_allclose(actors[0].joints, rest + content["trans"][0][:, None], atol=1e-5)
    assert actors[0].stored_joints is None and actors[0].joint_error is None
    # A posed actor: hmrlab's own skinning of the same model gives the same joints.
    with torch.no_grad():
        pose = torch.tensor(content["poses"][1], dtype=torch.float32)
        _, joints = BodyModel(arrays)(
            betas=torch.tensor(content["betas"][1], dtype=torch.float32).expand(3, -1),
            global_orient=pose[:, :3],
            body_pose=pose[:, 3:],
            transl=torch.tensor(content["trans"][1], dtype=torch.float32),
        )
    expected = joints[:, :24].numpy()
    np.testing.assert_allclose(actors[1].joints, expected, atol=1e-4)


def test_writer_round_trip_is_protocol_2(tmp_path, smpl):
    content = trusted(FIXTURE)
    path = write_3dpw(tmp_path / "sequenceFiles" / "validation" / "copy.pkl", content)
    assert path.read_bytes()[:2] == b"\x80\x02"
    back = load_3dpw(path, body_model=smpl)["courtyard_tiny_00"].content
    assert back.keys() == content.keys()
    for key, value in content.items():
        for got, want in zip(back[key], value) if isinstance(value, list) else [(back[key], value)]:
            np.testing.assert_array_equal(got, want)


def test_non_smpl_body_model_is_refused():
    with pytest.raises(ValueError, match=r"must be an SMPL module .* got object for gender 'm'"):
        load_3dpw(FIXTURE, body_model=object())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("poses"), r"lacks the key 'poses'"),
        (lambda c: c.update(poses=[p[:, :69] for p in c["poses"]]),
         r"poses\[0\] \(SMPL axis-angle poses\) must be a numeric array of shape \(3, 72\); got shape \(3, 69\)"),
        (lambda c: c.update(trans=c["trans"][:1]), r"trans must be a list of 2 arrays"),
        (lambda c: c.update(genders=["male", "f"]), r"genders must be a non-empty list of 'm' or 'f'"),
        (lambda c: c.update(cam_poses=c["cam_poses"][:, :3]),
         r"cam_poses must be a numeric array of shape \(T, 4, 4\)"),
        (lambda c: c.update(poses2d=[p[:2] for p in c["poses2d"]]),
         r"poses2d\[0\] .* shape \(3, 3, 18\); got shape \(2, 3, 18\)"),
        (lambda c: c.update(jointPositions=[j.reshape(3, 24, 3) for j in c["jointPositions"]]),
         r"jointPositions\[0\] .* shape \(3, 72\)"),
    ],
)
def test_wrong_layouts_name_file_and_key(tmp_path, smpl, edit, message):
    content = trusted(FIXTURE)
    edit(content)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ValueError, match=message) as error:
        load_3dpw(path, body_model=smpl)
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match=message):
        write_3dpw(tmp_path / "out.pkl", content)
    assert not (tmp_path / "out.pkl").exists()


def test_missing_truncated_and_corrupt_files(tmp_path, smpl):
    with pytest.raises(FileNotFoundError, match="no 3DPW sequence file at"):
        load_3dpw(tmp_path / "absent.pkl", body_model=smpl)
    with pytest.raises(FileNotFoundError, match=r"no 3DPW sequence files \(\*\.pkl\) under"):
        load_3dpw(tmp_path, body_model=smpl)
    data = FIXTURE.read_bytes()
    for name, content in (("truncated.pkl", data[: len(data) // 2]), ("noise.pkl", os.urandom(500)),
                          ("list.pkl", pickle.dumps([1, 2]))):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as error:
            load_3dpw(tmp_path / name, body_model=smpl)
        assert name in str(error.value)


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path, smpl):
    content = trusted(FIXTURE)
    marker = tmp_path / "pwned"
    content["texture_maps"] = [RunsCode(marker), RunsCode(marker)]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(ValueError, match=r"refused to load (posix|nt)\.system"):
        load_3dpw(path, body_model=smpl)
    assert not marker.exists()

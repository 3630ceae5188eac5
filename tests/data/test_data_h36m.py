"""hmrlab.data.h36m: VideoPose3D's Human3.6M files read into 17 joints, written back, bad files refused.

References: the fixtures (built with plain NumPy, see hmrlab/assets/fixtures/README.md) read by NumPy's
own trusting loader, and the joint lists of VideoPose3D's common/h36m_dataset.py written out here.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hmrlab import paths
from hmrlab.body.skeletons import H36M_17
from hmrlab.data.h36m import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    load_h36m,
    write_h36m,
)

FIXTURES = paths.FIXTURES / "h36m"
PATH_3D, PATH_2D = FIXTURES / "data_3d_h36m.npz", FIXTURES / "data_2d_h36m_gt.npz"
# VideoPose3D's Human36mDataset(remove_static_joints=True) drops these of the 32 joints.
VP3D_REMOVED = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]
VP3D_KEPT = [j for j in range(32) if j not in VP3D_REMOVED]
# keypoints_symmetry of VideoPose3D's 17-joint files (left joints, right joints).
VP3D_SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]


def trusted_npz(path: Path) -> dict:
    """Our own fixture read with NumPy's pickle-trusting loader, the reference reader."""
    with np.load(path, allow_pickle=True) as data:
        return {key: data[key].item() for key in data.files}


def test_fixture_reads_as_videopose3d_would():
    reference_3d = trusted_npz(PATH_3D)["positions_3d"]
    reference_2d = trusted_npz(PATH_2D)
    data = load_h36m(PATH_3D, PATH_2D)
    assert data.positions_3d.keys() == reference_3d.keys()
    for subject, actions in reference_3d.items():
        for action, positions in actions.items():
            got = data.positions_3d[subject][action]
            assert got.dtype == np.float32 and got.shape == (len(positions), 17, 3)
            np.testing.assert_array_equal(got, positions[:, VP3D_KEPT])
            # The 2D is cut to the motion-capture length ("Walking 1" has one video frame more).
            cameras = reference_2d["positions_2d"][subject][action]
            for camera, reference in zip(data.positions_2d[subject][action], cameras, strict=True):
                np.testing.assert_array_equal(camera, reference[: len(positions)])
    assert data.metadata == reference_2d["metadata"]


def test_subject_split_and_selection():
    assert set(H36M_TRAIN_SUBJECTS) | set(H36M_TEST_SUBJECTS) == {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
    data = load_h36m(PATH_3D, PATH_2D, subjects=["S9"])
    assert list(data.positions_3d) == ["S9"] and list(data.positions_2d) == ["S9"]
    with pytest.raises(ValueError, match=r"no subjects \['S11'\]"):
        load_h36m(PATH_3D, subjects=H36M_TEST_SUBJECTS)


def test_writer_round_trip_and_videopose3d_layout(tmp_path):
    rng = np.random.default_rng(1)
    poses = {"S1": {"Walking": rng.normal(size=(5, 17, 3)).astype(np.float32)},
             "S9": {"Sitting 1": rng.normal(size=(2, 17, 3)).astype(np.float32)}}
    pixels = {s: {a: [rng.uniform(0, 1000, (len(p), 17, 2)).astype(np.float32) for _ in range(4)]
                  for a, p in actions.items()} for s, actions in poses.items()}
    # Detection files also cover subjects without motion capture (S2-S4 in VideoPose3D's CPN file).
    pixels["S2"] = {"Walking": [rng.uniform(0, 1000, (7, 17, 2)).astype(np.float32)] * 4}
    path_3d, path_2d = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_synth.npz"
    write_h36m(path_3d, poses, path_2d, pixels)

    back = load_h36m(path_3d, path_2d)
    assert list(back.positions_3d) == ["S1", "S9"] and list(back.positions_2d) == ["S1", "S9", "S2"]
    assert [len(camera) for camera in back.positions_2d["S2"]["Walking"]] == [7] * 4
    for subject, actions in poses.items():
        for action, positions in actions.items():
            np.testing.assert_array_equal(back.positions_3d[subject][action], positions)
            for got, want in zip(back.positions_2d[subject][action], pixels[subject][action], strict=True):
                np.testing.assert_array_equal(got, want)

    # The files hold VideoPose3D's layout: 32 joints, the removed ones copying a documented neighbour.
    stored = trusted_npz(path_3d)["positions_3d"]["S1"]["Walking"]
    assert stored.shape == (5, 32, 3) and stored.dtype == np.float32
    np.testing.assert_array_equal(stored[:, VP3D_KEPT], poses["S1"]["Walking"])
    thorax, right_ankle, left_wrist = (VP3D_KEPT[H36M_17.index(n)] for n in ("thorax", "right_ankle", "left_wrist"))
    for removed, source in ((16, thorax), (24, thorax), (4, right_ankle), (5, right_ankle), (20, left_wrist)):
        np.testing.assert_array_equal(stored[:, removed], stored[:, source])
    metadata = trusted_npz(path_2d)["metadata"]
    assert metadata == {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": VP3D_SYMMETRY}


def test_writer_keeps_32_joint_input(tmp_path):
    positions = np.random.default_rng(2).normal(size=(4, 32, 3)).astype(np.float32)
    write_h36m(tmp_path / "d.npz", {"S5": {"Eating": positions}})
    np.testing.assert_array_equal(trusted_npz(tmp_path / "d.npz")["positions_3d"]["S5"]["Eating"], positions)
    assert np.array_equal(load_h36m(tmp_path / "d.npz").positions_3d["S5"]["Eating"], positions[:, VP3D_KEPT])


def test_symmetry_metadata_matches_flip_permutation():
    left, right = VP3D_SYMMETRY
    np.testing.assert_array_equal(H36M_17.flip_permutation[left], right)


def videopose3d_npz(path: Path, **entries) -> Path:
    np.savez_compressed(path, **entries)
    return path


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"poses": {}}, r"lacks the key 'positions_3d'"),
        ({"positions_3d": {"S1": {"Walk": np.zeros((3, 17, 3))}}},
         r"positions_3d\['S1'\]\['Walk'\] must be a numeric array of shape \(T, 32, 3\); got shape \(3, 17, 3\)"),
        ({"positions_3d": {"S1": [np.zeros((3, 32, 3))]}}, r"positions_3d\['S1'\] must be a dict"),
        ({"positions_3d": np.zeros(3)}, r"positions_3d must be a dict"),
    ],
)
def test_bad_3d_files_name_file_key_and_layout(tmp_path, entries, message):
    path = videopose3d_npz(tmp_path / "data_3d_h36m.npz", **entries)
    with pytest.raises(ValueError, match=message) as error:
        load_h36m(path)
    assert str(path) in str(error.value)


def set_walking(cameras):
    """An edit of the 2D fixture: subject S1's "Walking 1" (3 motion-capture frames) becomes `cameras`."""
    return lambda positions: positions["S1"].update({"Walking 1": cameras})


@pytest.mark.parametrize(
    "metadata, edit, message",
    [
        ({"num_joints": 16, "keypoints_symmetry": VP3D_SYMMETRY}, None, r"num_joints is 16"),
        ({"num_joints": 17, "keypoints_symmetry": VP3D_SYMMETRY[::-1] + [[0]]}, None, r"keypoints_symmetry must be"),
        ({"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 16, 15, 14]]}, None,
         r"does not swap left and right"),
        ({"num_joints": 17, "layout_name": "coco", "keypoints_symmetry": VP3D_SYMMETRY}, None,
         r"layout_name is 'coco'"),
        ({"keypoints_symmetry": VP3D_SYMMETRY}, None, r"lacks the key 'num_joints'"),
        (None, set_walking([np.zeros((2, 17, 2))] * 4), r"cameras \[0, 1, 2, 3\] have fewer frames than the 3 "),
        (None, set_walking([np.zeros((3, 17, 3))] * 4),
         r"\['Walking 1'\]\[0\] must be a numeric array of shape \(T, 17, 2\); got shape \(3, 17, 3\)"),
        (None, set_walking(np.zeros((4, 3, 17, 2))), r"\['Walking 1'\] must be a list of per-camera"),
        (None, lambda positions: positions["S1"].pop("Directions"), r"lacks the actions \['Directions'\]"),
        (None, lambda positions: positions.pop("S9"), r"positions_2d lacks the subjects \['S9'\]"),
    ],
)
def test_bad_2d_files_are_refused(tmp_path, metadata, edit, message):
    reference = trusted_npz(PATH_2D)
    if edit is not None:
        edit(reference["positions_2d"])
    path = videopose3d_npz(tmp_path / "data_2d_h36m_x.npz", metadata=metadata or reference["metadata"],
                           positions_2d=reference["positions_2d"])
    with pytest.raises(ValueError, match=message) as error:
        load_h36m(PATH_3D, path)
    assert str(path) in str(error.value)


def test_missing_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VideoPose3D Human3.6M 3D file"):
        load_h36m(tmp_path / "absent.npz")
    content = PATH_3D.read_bytes()
    for name, data in (("truncated.npz", content[: len(content) // 2]), ("noise.npz", os.urandom(2000)),
                       ("flipped.npz", content[:200] + bytes([content[200] ^ 0xFF]) + content[201:])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=r"cannot read this VideoPose3D Human3.6M 3D file") as error:
            load_h36m(tmp_path / name)
        assert name in str(error.value)
    with pytest.raises(ValueError, match="pass path_2d and positions_2d together"):
        write_h36m(tmp_path / "a.npz", {}, path_2d=tmp_path / "b.npz")


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_inside_npz_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|O", "fortran_order": False, "shape": ()})
    pickle.dump(RunsCode(marker), member, protocol=3)
    path = tmp_path / "data_3d_h36m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("positions_3d.npy", member.getvalue())
    with pytest.raises(ValueError, match=r"refused to load (posix|nt)\.system"):
        load_h36m(path)
    assert not marker.exists()

"""SynthHuman's Human3.6M-like generator: files, projections, determinism, caching, the shipped set."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hmrlab import paths
from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data.cameras import Y_UP_TO_Z_UP
from hmrlab.data.h36m import load_h36m
from hmrlab.data.safe_files import read_npz
from hmrlab.data.synth import (
    FILES,
    H36M_ACTION_NAMES,
    H36M_SUBJECTS,
    MANIFEST,
    QUICK,
    config_hash,
    generate_h36m_like,
    is_cached,
    load_h36m_cameras,
    load_smpl_params,
    regress_posed_joints,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SHIPPED = paths.SYNTH_H36M
TINY = {"subjects": ("S1", "S9"), "motions_per_subject": 1, "max_frames": 12, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_h36m_like(tmp_path_factory.mktemp("tiny"), **TINY)


def all_arrays(directory: Path) -> dict[str, np.ndarray]:
    data = load_h36m(directory / "data_3d_h36m.npz", directory / "data_2d_h36m_synth_det.npz")
    arrays = {f"3d/{s}/{a}": v for s, actions in data.positions_3d.items() for a, v in actions.items()}
    arrays |= {f"det/{s}/{a}": np.stack(v) for s, actions in data.positions_2d.items() for a, v in actions.items()}
    arrays |= {f"smpl/{k}": v for k, v in read_npz(directory / "smpl_params.npz").items()}
    return arrays


def test_files_load_with_h36m_reader(tiny):
    assert all((tiny / name).is_file() for name in (*FILES, MANIFEST))
    for detector in ("gt", "synth_det"):
        data = load_h36m(tiny / "data_3d_h36m.npz", tiny / f"data_2d_h36m_{detector}.npz")
        assert sorted(data.positions_3d) == ["S1", "S9"]
        for subject, actions in data.positions_3d.items():
            (action, poses), = actions.items()
            assert action.split(" ")[0] in H36M_ACTION_NAMES.values() and action.endswith(" 1")
            assert poses.shape == (12, 17, 3) and poses.dtype == np.float32
            assert [v.shape for v in data.positions_2d[subject][action]] == [(12, 17, 2)] * 4
    confidence = read_npz(tiny / "data_2d_h36m_synth_det_confidence.npz")
    assert all(c.shape == (4, 12, 17) and (c >= 0).all() and (c <= 1).all() for c in confidence.values())


def test_z_up_file_frame(tiny):
    data = load_h36m(tiny / "data_3d_h36m.npz")
    for actions in data.positions_3d.values():
        for poses in actions.values():
            # Human3.6M's world is z-up: the head (joint 10) is above the pelvis along +z, and the
            # lowest joints (ankles) are just above the floor z = 0.
            assert (poses[:, 10, 2] - poses[:, 0, 2] > 0.4).all()
            assert 0.0 < poses[:, [3, 6], 2].min() < 0.2


def test_gt_2d_is_the_projection_of_the_3d(tiny):
    data = load_h36m(tiny / "data_3d_h36m.npz", tiny / "data_2d_h36m_gt.npz")
    cameras = load_h36m_cameras(tiny / "cameras.json")
    for subject, actions in data.positions_3d.items():
        assert len(cameras[subject]) == 4
        for action, poses in actions.items():
            world = poses.astype(np.float64) @ Y_UP_TO_Z_UP  # rows: X_y = Y^T X_z
            for camera, keypoints in zip(cameras[subject], data.positions_2d[subject][action]):
                assert np.abs(camera.project(world) - keypoints).max() < 1e-3


def test_detections_are_near_the_ground_truth(tiny):
    gt = load_h36m(tiny / "data_3d_h36m.npz", tiny / "data_2d_h36m_gt.npz").positions_2d
    det = load_h36m(tiny / "data_3d_h36m.npz", tiny / "data_2d_h36m_synth_det.npz").positions_2d
    error = np.concatenate([
        np.linalg.norm(np.stack(det[s][a]) - np.stack(gt[s][a]), axis=-1).ravel() for s in gt for a in gt[s]
    ])
    assert 0 < np.median(error) < 30  # pixels: a few percent of a ~500 px tall person


def test_smpl_params_reproduce_the_3d_joints(tiny):
    arrays = body_model_arrays("smpl")
    model = BodyModel(arrays)
    regressor = torch.as_tensor(arrays["J_regressor_h36m"], dtype=torch.float32)
    data = load_h36m(tiny / "data_3d_h36m.npz")
    for subject, entry in load_smpl_params(tiny / "smpl_params.npz").items():
        for action, params in entry["actions"].items():
            poses, transl = torch.from_numpy(params["poses"]), torch.from_numpy(params["transl"])
            vertices, _ = model(torch.from_numpy(entry["betas"])[None], poses[:, 1:], poses[:, 0], transl)
            joints = (regressor @ vertices).numpy() @ Y_UP_TO_Z_UP.T
            np.testing.assert_allclose(joints, data.positions_3d[subject][action], atol=1e-5)


def test_regressing_from_the_read_vertices_equals_the_whole_mesh():
    arrays = body_model_arrays("smpl")
    model = BodyModel(arrays)
    regressor = torch.as_tensor(arrays["J_regressor_h36m"], dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    betas, poses = torch.randn(10, generator=generator), 0.4 * torch.randn(5, 24, 3, generator=generator)
    transl = torch.randn(5, 3, generator=generator)
    vertices, _ = model(betas[None], poses[:, 1:], poses[:, 0], transl)
    expected = regressor @ vertices
    assert torch.allclose(regress_posed_joints(model, regressor, betas, poses, transl), expected, atol=1e-5)


def test_deterministic_and_seeded(tiny, tmp_path):
    again = generate_h36m_like(tmp_path / "again", **TINY)
    first, second = all_arrays(tiny), all_arrays(again)
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    other = all_arrays(generate_h36m_like(tmp_path / "other", seed=1, **TINY))
    assert not np.array_equal(first["smpl/S1/betas"], other["smpl/S1/betas"])
    assert not any(np.array_equal(first[k], other[k]) for k in first.keys() & other.keys() if k.startswith("3d"))


def test_subject_data_do_not_depend_on_other_subjects(tiny, tmp_path):
    alone = all_arrays(generate_h36m_like(tmp_path, **{**TINY, "subjects": ("S9",)}))
    both = all_arrays(tiny)
    assert alone.keys() and all(np.array_equal(alone[k], both[k]) for k in alone)


def test_same_config_is_cached_and_a_new_one_regenerates(tiny, tmp_path):
    directory = shutil.copytree(tiny, tmp_path / "copy")
    mtimes = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    generate_h36m_like(directory, **TINY)
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == mtimes
    generate_h36m_like(directory, **{**TINY, "max_frames": 8})
    assert load_h36m(directory / "data_3d_h36m.npz").positions_3d["S1"].popitem()[1].shape[0] == 8
    assert json.loads((directory / MANIFEST).read_text())["config"]["max_frames"] == 8


def test_is_cached_needs_the_manifest_s_hash_and_every_file(tmp_path):
    digest = config_hash({"seed": 0})
    files = ["a.npz", "sub/b.json"]
    assert not is_cached(tmp_path, digest, files)  # no manifest
    (tmp_path / "sub").mkdir()
    for name in files:
        (tmp_path / name).write_text("x")
    for text in ("{not json", "[]", json.dumps({"config_hash": config_hash({"seed": 1})})):
        (tmp_path / MANIFEST).write_text(text)
        assert not is_cached(tmp_path, digest, files)  # unreadable, not a manifest, another config
    (tmp_path / MANIFEST).write_text(json.dumps({"config": {"seed": 0}, "config_hash": digest}))
    assert is_cached(tmp_path, digest, files)
    assert is_cached(tmp_path, digest, iter(files))  # any iterable of names
    (tmp_path / "sub" / "b.json").unlink()
    assert not is_cached(tmp_path, digest, files)  # a file the manifest vouches for is gone
    assert is_cached(tmp_path, digest, ["a.npz"])


@pytest.mark.parametrize(
    "kwargs", [{"motions_per_subject": 0}, {"max_frames": 0}, {"subjects": ("S1", "S1")}, {"subjects": ()}]
)
def test_bad_config_raises(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_h36m_like(tmp_path, **{**TINY, **kwargs})


def test_shipped_quick_set(tmp_path):
    data = load_h36m(SHIPPED / "data_3d_h36m.npz", SHIPPED / "data_2d_h36m_synth_det.npz")
    assert tuple(data.positions_3d) == H36M_SUBJECTS
    assert sorted(load_h36m_cameras(SHIPPED / "cameras.json")) == sorted(H36M_SUBJECTS)
    assert all(len(actions) == QUICK["motions_per_subject"] for actions in data.positions_3d.values())
    # QUICK (what `python -m hmrlab.data --quick` uses) makes exactly the shipped set: on a copy of it, the call is a cache hit.
    directory = shutil.copytree(SHIPPED, tmp_path / "h36m")
    mtimes = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    generate_h36m_like(directory, progress=False, **QUICK)
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == mtimes
    assert sum(p.stat().st_size for p in SHIPPED.parent.rglob("*") if p.is_file()) < 10e6


def test_shipped_set_is_up_to_date(tmp_path):
    """Regenerating one subject gives the shipped data: fails when the motion library or body model
    changed since the set was made (then run ``python -m hmrlab.data --out
    hmrlab/assets/synth --quick``)."""
    fresh = generate_h36m_like(tmp_path, subjects=("S11",), progress=False, **QUICK)
    shipped = {k: v for k, v in all_arrays(SHIPPED).items() if "/S11/" in k}
    regenerated = all_arrays(fresh)
    assert shipped.keys() == regenerated.keys()
    for key, array in shipped.items():
        np.testing.assert_allclose(regenerated[key], array, atol=1e-3, err_msg=key)  # pixels or metres


def test_bad_cameras_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_h36m_cameras(tmp_path / "absent.json")
    (tmp_path / "cameras.json").write_text('{"S1": {"id": "view_0"}}')
    with pytest.raises(ValueError, match="subject -> list of camera dicts"):
        load_h36m_cameras(tmp_path / "cameras.json")
    (tmp_path / "cameras.json").write_text('{"S1": [{"id": "view_0"}]}')
    with pytest.raises(ValueError, match="lacks the keys"):
        load_h36m_cameras(tmp_path / "cameras.json")

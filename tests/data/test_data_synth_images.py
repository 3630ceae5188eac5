"""SynthHuman's 3DPW-like image generator and the image datasets: layout, geometry, determinism, cache."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hmrlab import paths
from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.body.skeletons import COCO_17
from hmrlab.data.coco import load_coco_keypoints
from hmrlab.data.datasets import MeshSamples, VideoClips
from hmrlab.data.pw3d import PW3D_KEYPOINTS_2D, load_3dpw
from hmrlab.data.synth_images import (
    COCO_FILE,
    MANIFEST,
    QUICK,
    expected_files,
    generate_3dpw_like,
)

pytestmark = pytest.mark.usefixtures("one_thread")
SHIPPED = paths.SYNTH_3DPW
TINY = {"sequences": 1, "frames_per_sequence": 4, "image_size": (120, 96), "progress": False}
# OpenPose-18 keypoints that are SMPL joints: name -> SMPL joint index
SMPL_OF = {"right_wrist": 21, "left_knee": 4, "right_ankle": 8, "left_shoulder": 16}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_3dpw_like(tmp_path_factory.mktemp("tiny"), **TINY)


@pytest.fixture(scope="module")
def sequences(tiny):
    return load_3dpw(tiny / "sequenceFiles")


def masks_of(root: Path, name: str) -> np.ndarray:
    files = sorted((root / "maskFiles" / name).glob("mask_*.png"))
    return np.stack([np.asarray(Image.open(file)) > 127 for file in files])


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_follow_3dpw_layout(tiny):
    config = json.loads((tiny / MANIFEST).read_text())["config"]
    (name,) = config["names"]
    assert all((tiny / path).is_file() for path in expected_files(config))
    assert (tiny / "sequenceFiles" / "train" / f"{name}.pkl").is_file()
    with Image.open(tiny / "imageFiles" / name / "image_00003.jpg") as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (96, 120), "RGB")
    assert not list(tiny.rglob("*.tmp"))


def test_loader_joints_equal_stored_and_projections_match(sequences):
    (sequence,) = sequences.values()
    (actor,) = sequence.actors
    assert actor.poses.shape == (4, 72) and actor.keypoints_2d.shape == (4, 18, 3)
    assert np.abs(actor.joints - actor.stored_joints).max() < 1e-4
    np.testing.assert_array_equal(sequence.content["img_frame_ids"], [0, 2, 4, 6])
    np.testing.assert_allclose(sequence.content["poses_60Hz"][0][::2], actor.poses)
    # project the stored world joints with the file's extrinsics and intrinsics by hand
    camera = np.einsum("tij,tkj->tki", sequence.cam_poses[:, :3, :3], actor.stored_joints)
    camera += sequence.cam_poses[:, None, :3, 3]
    pixels = camera @ sequence.cam_intrinsics.T
    pixels = pixels[..., :2] / pixels[..., 2:]
    for name, joint in SMPL_OF.items():
        keypoints = actor.keypoints_2d[:, PW3D_KEYPOINTS_2D.index(name), :2]
        np.testing.assert_allclose(keypoints, pixels[:, joint], atol=1e-3)
    np.testing.assert_array_equal(sequence.cam_poses[:, 3], np.tile([0, 0, 0, 1.0], (4, 1)))
    rotations = sequence.cam_poses[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.tile(np.eye(3), (4, 1, 1)), atol=1e-9)


def test_keypoints_fall_on_the_mask(tiny, sequences):
    (sequence,) = sequences.values()
    keypoints = sequence.actors[0].keypoints_2d
    masks = masks_of(tiny, sequence.name)
    assert keypoints[..., 2].min() == 1  # the person is fully in view
    cols, rows = np.round(keypoints[..., 0]).astype(int), np.round(keypoints[..., 1]).astype(int)
    on_mask = masks[np.arange(4)[:, None], rows, cols]
    assert on_mask.mean() >= 0.9
    # the mask is the person, not the frame: it covers a small part of the image
    assert 0.01 < masks.mean() < 0.5


def test_coco_file_repeats_the_frames_keypoints(tiny, sequences):
    coco = load_coco_keypoints(tiny / COCO_FILE)
    (sequence,) = sequences.values()
    openpose = sequence.actors[0].keypoints_2d  # (T, 18, 3) x, y, inside
    assert len(coco.file_names) == len(coco.keypoints) == len(openpose)
    assert all((tiny / name).is_file() for name in coco.file_names)
    for coco_index, name in enumerate(COCO_17.joint_names):
        source = openpose[:, PW3D_KEYPOINTS_2D.index(name)]
        visible = source[:, 2] > 0
        np.testing.assert_allclose(coco.keypoints[visible, coco_index, :2], source[visible, :2], atol=1e-6)
        assert np.all(coco.keypoints[:, coco_index, 2] == np.where(visible, 2, 0))
    # every visible keypoint lies in its box (taken from the mask), to a pixel
    x, y, w, h = (coco.boxes[:, None, i] for i in range(4))
    u, v, seen = coco.keypoints[..., 0], coco.keypoints[..., 1], coco.keypoints[..., 2] > 0
    inside = (u >= x - 1) & (u <= x + w + 1) & (v >= y - 1) & (v <= y + h + 1)
    assert inside[seen].mean() > 0.9


def test_same_arguments_same_files_and_cache(tiny, tmp_path):
    again = generate_3dpw_like(tmp_path / "again", **TINY)
    assert file_bytes(again) == file_bytes(tiny)
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    generate_3dpw_like(again, **TINY)  # cached: nothing rewritten
    assert stamps == {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    # sequence 0 depends only on the seed and its index, not on how many sequences there are
    two = generate_3dpw_like(tmp_path / "two", **{**TINY, "sequences": 2, "seed": 0})
    (name,) = json.loads((tiny / MANIFEST).read_text())["config"]["names"]
    assert (two / "imageFiles" / name / "image_00002.jpg").read_bytes() == (
        tiny / "imageFiles" / name / "image_00002.jpg"
    ).read_bytes()
    assert len(load_3dpw(two / "sequenceFiles" / "test")) == 1


def test_another_seed_regenerates(tmp_path):
    first = file_bytes(generate_3dpw_like(tmp_path, **TINY))
    second = file_bytes(generate_3dpw_like(tmp_path, **{**TINY, "seed": 1}))
    assert json.loads(second[MANIFEST])["config"]["seed"] == 1
    assert first[MANIFEST] != second[MANIFEST]
    # the previous set's sequences are gone, so the folder holds one set
    assert len(load_3dpw(tmp_path / "sequenceFiles")) == 1
    assert not any((tmp_path / path).exists() for path in set(first) - set(second))


def test_mesh_samples_crop_geometry(tiny, sequences):
    samples = MeshSamples(sequences, tiny / "imageFiles", crop_size=(64, 48))
    assert len(samples) == 4
    item = samples[2]
    assert item["image"].shape == (3, 64, 48) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["pose"].shape == (72,) and item["betas"].shape == (10,)
    # the crop's intrinsics reproject the camera-frame joints onto the crop keypoints
    projected = item["joints_3d"].double() @ item["camera"].double().T
    assert (projected[:, :2] / projected[:, 2:] - item["joints_2d"]).abs().max() < 0.5
    inside = (item["joints_2d"] >= 0).all(-1) & (item["joints_2d"] < torch.tensor([48.0, 64.0])).all(-1)
    assert inside.all()
    # crop keypoints, mapped back through the affine, land on the person's mask
    affine = item["affine"].double().numpy()
    image_points = (item["joints_2d"].double().numpy() - affine[:, 2]) / np.diag(affine[:, :2])
    mask = masks_of(tiny, next(iter(sequences)))[2]
    rows, cols = np.round(image_points[:, 1]).astype(int), np.round(image_points[:, 0]).astype(int)
    assert mask[rows, cols].mean() >= 0.9
    # the crop shows the person: the colour at the keypoints differs from the crop's border colour
    border = torch.cat([item["image"][:, 0], item["image"][:, -1]], 1).mean(1)
    keypoint_pixels = item["image"][:, item["joints_2d"][:, 1].round().long(), item["joints_2d"][:, 0].round().long()]
    assert (keypoint_pixels.mean(1) - border).abs().max() > 0.05


def test_mesh_samples_pose_is_in_the_camera_frame(sequences, tiny):
    item = MeshSamples(sequences, tiny / "imageFiles")[1]
    model = BodyModel(body_model_arrays("smpl"), num_betas=10)
    pose = item["pose"].view(24, 3)
    _, joints = model(betas=item["betas"][None], global_orient=pose[None, 0], body_pose=pose[None, 1:])
    expected = item["joints_3d"] - item["joints_3d"][:1]
    np.testing.assert_allclose((joints[0] - joints[0, :1]).numpy(), expected.numpy(), atol=1e-4)


def test_video_clips_shapes_and_count(sequences, tiny):
    clips = VideoClips(sequences, tiny / "imageFiles", clip_length=2, stride=1, crop_size=(32, 32))
    assert len(clips) == 3
    assert len(VideoClips(sequences, tiny / "imageFiles", clip_length=3, stride=2)) == 1
    item = clips[1]
    assert item["images"].shape == (2, 3, 32, 32)
    assert item["pose"].shape == (2, 72) and item["joints_3d"].shape == (2, 24, 3)
    assert item["joints_2d"].shape == (2, 24, 2) and item["camera"].shape == (3, 3)
    # one crop box for the clip: every frame's joints inside the crop
    assert ((item["joints_2d"] >= 0) & (item["joints_2d"] < 32)).all()
    single = MeshSamples(sequences, tiny / "imageFiles", crop_size=(32, 32))[2]
    np.testing.assert_allclose(item["joints_3d"][1].numpy(), single["joints_3d"].numpy())


def test_bad_arguments_raise(tiny, sequences):
    with pytest.raises(ValueError, match="frames_per_sequence"):
        generate_3dpw_like(tiny, sequences=1, frames_per_sequence=0)
    with pytest.raises(ValueError, match="image_size"):
        generate_3dpw_like(tiny, sequences=1, frames_per_sequence=2, image_size=(8, 8))
    with pytest.raises(FileNotFoundError, match="imageFiles"):
        MeshSamples(sequences, tiny)
    with pytest.raises(ValueError, match="clip_length"):
        VideoClips(sequences, tiny / "imageFiles", clip_length=5)


def test_shipped_set_loads(tmp_path):
    config = json.loads((SHIPPED / MANIFEST).read_text())["config"]
    assert {key: config[key] for key in QUICK} == {**QUICK, "image_size": list(QUICK["image_size"])}
    sequences = load_3dpw(SHIPPED / "sequenceFiles")
    assert len(sequences) == QUICK["sequences"]
    assert all(abs(s.actors[0].joints - s.actors[0].stored_joints).max() < 1e-4 for s in sequences.values())
    assert sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file()) < 8e6
    clips = VideoClips(sequences, SHIPPED / "imageFiles", clip_length=16, stride=8)
    assert len(clips) == 2
    # regenerating from the manifest's config is a cache hit
    copy = shutil.copytree(SHIPPED, tmp_path / "3dpw")
    stamps = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    generate_3dpw_like(copy, **QUICK, progress=False)
    assert stamps == {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}

"""SynthClips: clips of consecutive frames, each its own body, motion, static camera and look, rendered
into canvases; shards that resume and grow; targets that agree with the body model, the camera and the
picture; one augmentation draw for every frame of a clip; kept apart from the benchmark's seeds."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from hmrlab.data import synth_clips, synth_crops
from hmrlab.data.augment import Augmentation, mirror_smpl_pose
from hmrlab.data.datasets import ClipSamples, SynthClips
from hmrlab.data.smpl_targets import posed_smpl
from hmrlab.io import read_npz

pytestmark = pytest.mark.usefixtures("one_thread")

CROP, FRAMES = (40, 40), 4
ARGS = {"clip_length": FRAMES, "crop_size": CROP, "shard_size": 2, "workers": 1, "progress": False}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips") / "set"
    synth_clips.generate_clips(folder, count=3, **ARGS)
    return folder


def test_files_shards_and_members(clips):
    manifest = json.loads((clips / "manifest.json").read_text())
    assert manifest["config"]["count"] == 3 and len(manifest["shards"]) == 2
    assert manifest["config"]["clip_length"] == FRAMES and manifest["config"]["fps"] == synth_clips.FPS
    shard = read_npz(clips / manifest["shards"][0])
    height, width = synth_crops.canvas_size(CROP, manifest["config"]["pad"])
    assert shard["images"].shape == (2, FRAMES, height, width, 3) and shard["images"].dtype == np.uint8
    assert {name: shard[name].shape[1:] for name in synth_clips.MEMBERS if name != "images"} == {
        "pose": (FRAMES, 72), "betas": (10,), "joints_3d": (FRAMES, 24, 3), "joints_2d": (FRAMES, 24, 2),
        "keypoints_2d": (FRAMES, 18, 2), "camera": (3, 3), "action": ()}
    _, arrays = synth_clips.load_clips(clips)
    assert len(arrays["images"]) == 3 and len(np.unique(arrays["betas"][:, 0])) == 3  # a body per clip
    assert all(image.std() > 5 for image in arrays["images"].reshape(-1, height, width, 3))


def test_frames_are_consecutive_under_a_static_camera(clips):
    """One motion filmed at 30 Hz: the pelvis moves less than a sprinter's 10 m/s allows between frames;
    one camera and background: most pixels (the background) are the same in every frame of a clip."""
    _, a = synth_clips.load_clips(clips)
    step = np.linalg.norm(np.diff(a["joints_3d"][:, :, 0], axis=1), axis=-1)
    assert step.max() < 10.0 / synth_clips.FPS
    assert not np.allclose(a["pose"][:, 0], a["pose"][:, -1])  # but it moves
    for images in a["images"]:
        still = (images == images[:1]).all(axis=(0, 3))
        assert still.mean() > 0.5


def test_resume_grow_and_cache(clips, tmp_path):
    """A deleted shard (an interrupted run) is rendered again, identical, the other one kept; the
    same config writes nothing; more clips keep the full shards made; another clip length replaces them."""
    folder = tmp_path / "set"
    synth_clips.generate_clips(folder, count=3, **ARGS)
    names = json.loads((folder / "manifest.json").read_text())["shards"]
    first = read_npz(folder / names[0])
    (folder / names[0]).unlink()
    (folder / "manifest.json").unlink()
    kept = (folder / names[1]).stat().st_mtime_ns
    synth_clips.generate_clips(folder, count=3, **ARGS)
    again = read_npz(folder / names[0])
    assert all(np.array_equal(first[name], again[name]) for name in synth_clips.MEMBERS)
    assert (folder / names[1]).stat().st_mtime_ns == kept
    manifest_time = (folder / "manifest.json").stat().st_mtime_ns
    synth_clips.generate_clips(folder, count=3, **ARGS)
    assert (folder / "manifest.json").stat().st_mtime_ns == manifest_time
    full = (folder / names[0]).stat().st_mtime_ns
    synth_clips.generate_clips(folder, count=4, **ARGS)  # the full shard is kept, the short last one grows
    grown = json.loads((folder / "manifest.json").read_text())["shards"]
    assert grown[0] == names[0] and (folder / names[0]).stat().st_mtime_ns == full
    assert len(grown) == 2 and grown[1] != names[1] and not (folder / names[1]).exists()
    _, arrays = synth_clips.load_clips(clips)
    _, grown_arrays = synth_clips.load_clips(folder)
    assert np.array_equal(arrays["betas"], grown_arrays["betas"][:3])  # the same clips as made in one go
    synth_clips.generate_clips(folder, count=2, **{**ARGS, "clip_length": 2})
    assert sorted(p.name for p in folder.glob("shard_*")) == json.loads((folder / "manifest.json").read_text())["shards"]


def test_targets_agree_with_the_body_model_and_camera(clips):
    """The camera-frame pose posed by the body model gives the stored joints (moved to the stored
    pelvis), which the clip's one camera projects onto the stored 2D joints; the box of every frame's
    joints and keypoints, enlarged by 1.25, is the crop region in the canvas' middle."""
    config, a = synth_clips.load_clips(clips)
    pose = torch.as_tensor(a["pose"]).reshape(-1, 72)
    betas = torch.as_tensor(np.repeat(a["betas"], FRAMES, axis=0))
    _, joints = posed_smpl(pose, betas)
    stored = torch.as_tensor(a["joints_3d"]).reshape(-1, 24, 3)
    torch.testing.assert_close(joints - joints[:, :1], stored - stored[:, :1], atol=2e-4, rtol=0)
    projected = torch.as_tensor(a["joints_3d"]) @ torch.as_tensor(a["camera"])[:, None].transpose(-1, -2)
    torch.testing.assert_close(projected[..., :2] / projected[..., 2:], torch.as_tensor(a["joints_2d"]),
                               atol=1e-3, rtol=0)
    canvas = synth_crops.canvas_size(CROP, config["pad"])
    for joints_2d, keypoints_2d in zip(a["joints_2d"], a["keypoints_2d"]):
        points = np.concatenate([joints_2d, keypoints_2d], 1).reshape(-1, 2)
        low, high = points.min(0), points.max(0)
        assert (high - low).max() == pytest.approx(CROP[0] / 1.25, abs=1e-3)
        np.testing.assert_allclose((low + high) / 2, (np.array(canvas) - 1) / 2, atol=1e-3)


def test_dataset_items_are_video_clips_items(clips):
    """SynthClips items have `VideoClips`' keys and shapes; unaugmented, every frame is the canvas'
    centre and the targets the stored ones moved into the crop; `ClipSamples` makes LIFD-HMR's."""
    samples = SynthClips(clips)
    item = samples[1]
    assert {key: tuple(value.shape) for key, value in item.items()} == {
        "images": (FRAMES, 3, *CROP), "pose": (FRAMES, 72), "joints_3d": (FRAMES, 24, 3),
        "joints_2d": (FRAMES, 24, 2), "betas": (10,), "camera": (3, 3), "affine": (2, 3)}
    pad = samples.config["pad"]
    centre = samples.arrays["images"][1][:, pad:-pad, pad:-pad].astype(np.float32)
    assert np.abs(item["images"].permute(0, 2, 3, 1).numpy() * 255 - centre).max() <= 1.0
    torch.testing.assert_close(item["joints_2d"], torch.as_tensor(samples.arrays["joints_2d"][1]) - pad,
                               atol=1e-3, rtol=0)
    lifd = ClipSamples(samples)[1]
    assert {key: tuple(value.shape) for key, value in lifd.items()} == {
        "images": (FRAMES, 3, *CROP), "keypoints_2d": (FRAMES, 17, 2), "joints": (FRAMES, 17, 3),
        "vertices": (13718, 3), "coarse_vertices": (431, 3), "camera": (3, 3), "root": (3,)}
    assert float(lifd["joints"][:, 0].abs().max()) == 0.0 and float(lifd["keypoints_2d"].abs().max()) < 1.0


def test_augmentation_is_one_draw_for_the_whole_clip(clips):
    """Every frame gets the same transform: the clip's one camera projects every frame's joints onto
    its 2D joints; a flip alone mirrors every frame's picture and swaps left and right in the pose."""
    torch.manual_seed(0)
    augmented = SynthClips(clips, augment=Augmentation(rotation_prob=1.0))[0]
    projected = augmented["joints_3d"] @ augmented["camera"].T
    torch.testing.assert_close(projected[..., :2] / projected[..., 2:], augmented["joints_2d"], atol=1e-3, rtol=0)
    plain = SynthClips(clips)[0]
    flip_only = Augmentation(zoom=(1.0, 1.0), shift=0.0, rotation_prob=0.0, flip=1.0, color=0.0, occlusion=0.0)
    flipped = SynthClips(clips, augment=flip_only)[0]
    torch.testing.assert_close(flipped["images"], plain["images"].flip(-1))
    torch.testing.assert_close(flipped["pose"], mirror_smpl_pose(plain["pose"]))
    torch.testing.assert_close(flipped["camera"][0, 2], CROP[1] - 1 - plain["camera"][0, 2])


def test_seeds_kept_apart_from_the_benchmark_and_the_crops():
    """Shard k draws from SeedSequence([seed, CLIP_KEY, k]), benchmark sequence k from
    SeedSequence([seed, crc32("3dpw-k")]), SynthCrops shard k from [seed, CROP_KEY, k]: no two keys agree."""
    keys = {zlib.crc32(f"3dpw-{k}".encode()) for k in range(10**6)}
    assert synth_clips.CLIP_KEY not in keys and synth_clips.CLIP_KEY != synth_crops.CROP_KEY
    assert synth_clips.DEFAULT_SEED != 0  # the benchmark set's seed


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="count must be"):
        synth_clips.generate_clips(tmp_path, count=0)
    with pytest.raises(ValueError, match="clip_length must be"):
        synth_clips.generate_clips(tmp_path, count=2, clip_length=0)
    with pytest.raises(ValueError, match="crop_size"):
        synth_clips.generate_clips(tmp_path, count=2, crop_size=(8, 8))
    with pytest.raises(FileNotFoundError, match="generate_clips"):
        SynthClips(tmp_path / "missing")

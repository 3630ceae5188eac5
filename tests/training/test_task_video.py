"""The video task: LIFD-HMR trained on 3DPW-format clips, its targets, padded benchmark clips and tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hmrlab import paths, training
from hmrlab.body import body_model_arrays
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import CentredClips, ClipSamples, image_coordinates
from hmrlab.evaluation import pw3d_split
from hmrlab.models.lifd_hmr import lifd_hmr
from hmrlab.training.tasks import video

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "video_lifd_hmr.yaml"
# The config's quick version (clips of 4 frames, 64x64 crops, tiny widths) as a dict to vary.
TINY = dataclasses.asdict(training.load_config(CONFIG, ["progress=false"], quick=True))
COLUMNS = ["MPJPE", "PA-MPJPE", "MPVPE", "Accel", "frames"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    config = training.load_config({**TINY, "out_dir": str(out)})
    return config, training.train(config), out


@pytest.fixture(scope="module")
def test_actor():
    (name, sequence), = pw3d_split.load_split(paths.SYNTH_3DPW, "test").items()
    return name, len(sequence.actors[0].poses)


def test_config_loads_and_builds():
    config = training.load_config(CONFIG)
    model = training.build_model(config)
    assert model.pose_estimator.frames == config.data["clip_length"]
    assert model.extractor.in_channels == 512  # ResNet-18's layer4


def test_train_evaluate_and_benchmark(run, test_actor):
    config, history, out = run
    assert len(history) == 1 and np.isfinite(history[0]["val_mpjpe"])
    assert {"train_mesh", "train_coarse_mesh", "train_joints", "train_poses_3d"} <= set(history[0])
    name, frames = test_actor
    for table in (training.evaluate(out, which="last"), training.benchmark(out, paths.SYNTH_3DPW)):
        assert table.index.tolist() == [f"{name}/0", "Average", "All frames"]
        assert list(table.columns) == COLUMNS
        assert np.isfinite(table.to_numpy()).all()
        assert table.loc["All frames", "frames"] == frames  # every frame of the actor is predicted
    assert (out / "evaluation.csv").is_file() and (out / "benchmark.csv").is_file()


def test_example_inputs_and_examples(run):
    config, _, out = run
    _, model = training.load_run(out)
    inputs = video.TASK.example_inputs(config)
    assert [tuple(x.shape) for x in inputs] == [(1, 4, 3, 64, 64), (1, 4, 17, 2)]
    with torch.no_grad():
        output = model(*inputs)
    assert output.vertices.shape == (1, 13718, 3) and output.poses_3d.shape == (1, 4, 17, 3)
    shown = video.examples(model, config, 3)
    assert shown["images"].shape == (3, 3, 64, 64)
    assert 0 <= float(shown["images"].min()) and float(shown["images"].max()) <= 1
    assert shown["pred_vertices"].shape == shown["target_vertices"].shape == (3, 13718, 3)
    assert shown["camera"].shape == (3, 3, 3) and shown["root"].shape == (3, 3)
    assert (shown["root"][:, 2] > 1).all()  # the pelvis stands metres in front of the camera


def test_targets_match_the_split_and_the_body_model():
    """Inputs and targets of the first clip of the test sequence against `pw3d_split.lifting_sequences`
    (projected with the sequence's own camera onto the whole image) and the posed body model."""
    config = training.load_config({**TINY, "data": {"clip_length": 5, "crop_size": [80, 64]}})
    samples = ClipSamples(video._clips(config, "test"))
    sample, clip = samples[0], samples.clips[0]
    (poses_2d, joints_3d), = pw3d_split.lifting_sequences(paths.SYNTH_3DPW).values()
    (name, sequence), = pw3d_split.load_split(paths.SYNTH_3DPW, "test").items()
    width, height = pw3d_split.image_size(paths.SYNTH_3DPW, name)
    # image pixels -> crop pixels by the clip's affine -> normalised by the crop's (H, W) = (80, 64)
    pixels = image_coordinates(poses_2d[:5], width, height) @ clip["affine"][:, :2].T + clip["affine"][:, 2]
    expected_2d = pixels / 32 - torch.tensor([1.0, 80 / 64])
    torch.testing.assert_close(sample["keypoints_2d"], expected_2d, atol=1e-4, rtol=0)
    torch.testing.assert_close(sample["joints"], joints_3d[:5], atol=1e-5, rtol=0)

    vertices = smpl_targets.smpl_meshes(clip["pose"][2:3], clip["betas"][None])[0]
    regressor = torch.as_tensor(body_model_arrays("smpl")["J_regressor_h36m"], dtype=torch.float32)
    pelvis = regressor[0] @ vertices
    torch.testing.assert_close(sample["vertices"], vertices - pelvis, atol=1e-5, rtol=0)
    chosen = body_model_arrays("smpl")["downsample"].argmax(1)  # one vertex per coarse vertex
    torch.testing.assert_close(sample["coarse_vertices"], sample["vertices"][chosen])


def test_centred_clips_pad_with_the_end_frames(test_actor):
    name, frames = test_actor
    clips = CentredClips(pw3d_split.load_split(paths.SYNTH_3DPW, "test"),
                               paths.SYNTH_3DPW / "imageFiles", clip_length=6, crop_size=(48, 48))
    assert len(clips) == frames and clips.keys == [f"{name}/0"] * frames
    sequence = next(iter(pw3d_split.load_split(paths.SYNTH_3DPW, "test").values()))
    first, last = clips[0], clips[frames - 1]
    # centre 0: frames -3, -2, -1 become frame 0; centre T-1: frames T, T+1 become frame T-1
    torch.testing.assert_close(first["pose"][:4], first["pose"][3:4].expand(4, -1))
    torch.testing.assert_close(first["images"][:3], first["images"][3:4].expand(3, -1, -1, -1))
    torch.testing.assert_close(last["pose"][3:], last["pose"][3:4].expand(3, -1))
    axis_angle = sequence.actors[0].poses[frames - 1, 3:]  # body pose: not turned into the camera frame
    np.testing.assert_allclose(last["pose"][3, 3:].numpy(), axis_angle, atol=1e-6)
    middle = clips[7]
    assert not torch.equal(middle["pose"][0], middle["pose"][-1])


def test_noise_is_in_crop_pixels():
    config = training.load_config({**TINY, "data": {"crop_size": 64}})
    clean, noisy = ClipSamples(video._clips(config, "test")), ClipSamples(video._clips(config, "test"), 3.0)
    torch.manual_seed(0)
    difference = (noisy[0]["keypoints_2d"] - clean[0]["keypoints_2d"]) * 64 / 2  # back to pixels
    assert float(difference.std()) == pytest.approx(3.0, rel=0.25)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    config = training.load_config({**TINY, "data": {"clip_length": 2, "crop_size": 32}})
    model = training.build_model(config)
    train, _ = video.build_datasets(config)
    batch = {key: torch.stack([train[i][key] for i in range(2)]) for key in train[0]}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        terms = video.loss(model, batch)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_bad_settings_raise():
    with pytest.raises(ValueError, match=r"unknown data keys \['frames'\].*'clip_length'"):
        video.build_datasets(training.load_config({**TINY, "data": {"frames": 8}}))
    with pytest.raises(ValueError, match="clip_length must be a positive integer"):
        video.TASK.example_inputs(training.load_config({**TINY, "data": {"clip_length": 0}}))
    with pytest.raises(ValueError, match=r"crop_size must be one side or \[height, width\]"):
        video.TASK.example_inputs(training.load_config({**TINY, "data": {"crop_size": "96"}}))
    with pytest.raises(ValueError, match="backbone must be one of"):
        lifd_hmr("vgg16")
    with pytest.raises(FileNotFoundError, match="3DPW-format"):
        video.build_datasets(training.load_config({**TINY, "data": {"dir": "/nonexistent"}}))

"""The mesh task: the keypoints-guided HMR trained on 3DPW-format crops, its targets and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from hmrlab import paths, training
from hmrlab.body import load_body_model
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import MeshSamples
from hmrlab.evaluation import pw3d_split
from hmrlab.models.keypoint_hmr import KeypointHMR
from hmrlab.training.tasks import mesh

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mesh_keypoint_hmr.yaml"
COLUMNS = ["MPJPE", "PA-MPJPE", "MPVPE", "Accel", "frames"]


def quick_config(out_dir: Path | str = "unused", *overrides: str) -> training.RunConfig:
    """The config's quick version (what CI and notebook 09's quick mode train) on the shipped set."""
    return training.load_config(CONFIG, [f"out_dir={out_dir}", "progress=false", *overrides], quick=True)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mesh") / "run"
    config = quick_config(out)
    return config, training.train(config), out


@pytest.fixture(scope="module")
def test_samples():
    """The shipped test split cropped as the quick config does, built here without the task."""
    config = quick_config()
    sequences = pw3d_split.load_split(paths.SYNTH_3DPW, "test")
    samples = MeshSamples(sequences, paths.SYNTH_3DPW / "imageFiles", crop_size=tuple(config.data["crop_size"]),
                          scale=1.25)
    (name, sequence), = sequences.items()
    return samples, name, len(sequence.actors[0].poses)


def test_config_loads_and_builds():
    config = training.load_config(CONFIG)
    model = training.build_model(config)
    assert isinstance(model, KeypointHMR) and model.image_size == tuple(config.data["crop_size"])
    assert model.kem.num_keypoints == 91  # the paper's template
    assert config.data["format"] == "crops" and config.data["backbone_run"]  # SynthCrops, after 2D pretraining
    # its data settings on the shipped set (format crops would render 21,000 crops first)
    config = training.load_config(CONFIG, ["data.format=3dpw", "data.samples_per_epoch=null", "data.backbone_run=null"])
    train, val = mesh.build_datasets(config)  # the shipped set: one train and one test sequence of 16 frames
    assert (len(train), len(val)) == (16, 16)
    assert train[0]["image"].shape == (3, *config.data["crop_size"])


def test_train_evaluate_and_benchmark(run, test_samples):
    config, history, out = run
    assert len(history) == 1 and np.isfinite(history[0]["val_mpjpe"])
    assert {"train_loss", "train_keypoints", "train_theta", "train_beta", "train_twist", "train_mpjpe"} <= set(history[0])
    _, name, frames = test_samples
    for table in (training.evaluate(out, which="last"), training.benchmark(out, paths.SYNTH_3DPW)):
        assert table.index.tolist() == [f"{name}/0", "Average", "All frames"]
        assert list(table.columns) == COLUMNS
        assert np.isfinite(table.to_numpy()).all()
        assert table.loc["All frames", "frames"] == frames  # every frame of the actor is predicted
    assert (out / "evaluation.csv").is_file() and (out / "benchmark.csv").is_file()


def test_example_inputs_and_examples(run, test_samples):
    config, _, out = run
    _, model = training.load_run(out)
    (images,) = mesh.TASK.example_inputs(config)
    assert images.shape == (1, 3, *config.data["crop_size"])
    with torch.no_grad():
        assert model(images)["vertices"].shape == (1, 13718, 3)

    samples, _, frames = test_samples
    three = mesh.TASK.examples(model, config, 3)
    assert {key: tuple(value.shape) for key, value in three.items()} == {
        "images": (3, 3, *config.data["crop_size"]), "pred_vertices": (3, 13718, 3), "target_vertices": (3, 13718, 3),
        "camera": (3, 3, 3), "root": (3, 3)}
    # camera and root put the true mesh back where the person is: its joints project onto the 2D joints
    first = samples[0]
    _, joints = smpl_targets.posed_smpl(first["pose"][None], first["betas"][None])
    placed = joints[0] - joints[0, :1] + three["root"][0]
    projected = placed @ three["camera"][0].T
    torch.testing.assert_close(projected[:, :2] / projected[:, 2:], first["joints_2d"], atol=1e-3, rtol=0)
    assert torch.equal(three["images"][0], samples[0]["image"]) and torch.equal(three["images"][-1], samples[-1]["image"])
    assert len(mesh.TASK.examples(model, config, 100)["images"]) == frames  # at most every test frame
    with pytest.raises(ValueError, match="positive integer"):
        mesh.TASK.examples(model, config, 0)


def test_example_targets_are_smplx_meshes_at_the_dataset_joints(run, test_samples):
    """Target meshes of `examples` are smplx's meshes of the frames' camera-frame SMPL parameters
    (pelvis-relative), whose joints, placed at the dataset's pelvis and projected by the crop camera,
    are the dataset's 2D joints."""
    config, _, out = run
    _, model = training.load_run(out)
    samples, _, frames = test_samples
    every = mesh.TASK.examples(model, config, frames)
    batch = default_collate([samples[i] for i in range(frames)])
    pose = batch["pose"]
    with torch.no_grad():
        body = load_body_model("smpl")(betas=batch["betas"], body_pose=pose[:, 3:], global_orient=pose[:, :3])
    joints = body.joints[:, :24] - body.joints[:, :1]
    torch.testing.assert_close(every["target_vertices"], body.vertices - body.joints[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, batch["joints_3d"] - batch["joints_3d"][:, :1], atol=1e-4, rtol=0)
    projected = (joints + batch["joints_3d"][:, :1]) @ batch["camera"].transpose(1, 2)
    torch.testing.assert_close(projected[..., :2] / projected[..., 2:], batch["joints_2d"], atol=1e-2, rtol=0)


class _KnownJoints(nn.Module):
    """Wraps a model as DistributedDataParallel does (``.module``) and replaces its predicted joints."""

    def __init__(self, model: KeypointHMR, joints: torch.Tensor):
        super().__init__()
        self.module, self.joints = model, joints

    def forward(self, images, mesh=True):
        return {**self.module(images, mesh=mesh), "joints": self.joints}


def test_loss_targets_are_the_dataset_joints():
    """The loss's MPJPE is 0 for the dataset's own joints_3d (pelvis-relative) and, with every non-root
    joint moved by 3 cm, 23/24 of 30 mm; the wrapped (torchrun) model is unwrapped for its body model."""
    config = quick_config()
    model = training.build_model(config)
    train, _ = mesh.build_datasets(config)
    batch = default_collate([train[i] for i in (0, 5, 10)])
    truth = batch["joints_3d"] - batch["joints_3d"][:, :1]
    assert float(mesh.loss(_KnownJoints(model, truth), batch)["mpjpe"]) < 0.05
    moved = truth.clone()
    moved[:, 1:, 2] += 0.03
    assert float(mesh.loss(_KnownJoints(model, moved), batch)["mpjpe"]) == pytest.approx(30 * 23 / 24, abs=0.05)


def test_loss_falls_on_one_batch():
    torch.manual_seed(0)
    config = quick_config("unused", "data.crop_size=[32,32]")
    model = training.build_model(config).train()
    train, _ = mesh.build_datasets(config)
    batch = default_collate([train[i] for i in (0, 8)])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = []
    for _ in range(40):  # at the configured lr (1e-3) the loss halves in about 30 steps here
        loss = mesh.loss(model, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def test_bad_data_settings():
    with pytest.raises(ValueError, match=r"unknown data keys \['crop'\].*'crop_size'"):
        mesh.build_datasets(quick_config("unused", "data.crop=64"))
    with pytest.raises(ValueError, match="crop_size must be"):
        mesh.build_datasets(quick_config("unused", "data.crop_size=64"))
    with pytest.raises(FileNotFoundError, match="3DPW-format folder"):
        mesh.build_datasets(quick_config("unused", "data.dir=/nonexistent"))

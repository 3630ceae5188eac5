"""The 2D pretraining task (pose2d) and the mesh run that starts from its backbone (data.backbone_run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from hmrlab import training
from hmrlab.data.sampling import Resampled
from hmrlab.training.tasks import mesh, pose2d

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _config(name: str, out_dir: Path, *overrides: str) -> training.RunConfig:
    return training.load_config(CONFIGS / name, [f"out_dir={out_dir}", "progress=false", *overrides], quick=True)


def test_crop_units_span_the_crop():
    size = (48, 64)  # (H, W)
    corners = torch.tensor([[-0.5, -0.5], [63.5, 47.5], [31.5, 23.5]])
    torch.testing.assert_close(pose2d.crop_units(corners, size), torch.tensor([[-0.5, -0.5], [0.5, 0.5], [0.0, 0.0]]))


def test_loss_logs_the_error_and_its_floor():
    config = _config("mesh_pretrain_2d.yaml", Path("unused"))
    train, val = pose2d.build_datasets(config)
    assert isinstance(train.dataset, Resampled) and len(train) == 16
    batch = default_collate([val[i] for i in range(4)])
    terms = pose2d.loss(training.build_model(config), batch)
    assert set(terms) == {"loss", "rle", "l1", "px", "floor_px"}
    # the floor is the mean training 2D pose, read without augmentation: the same on every call
    again, _ = pose2d.build_datasets(config)
    torch.testing.assert_close(again.constants["floor_joints_2d"], train.constants["floor_joints_2d"])
    expected = (train.constants["floor_joints_2d"] - batch["joints_2d"]).norm(dim=-1).mean()
    torch.testing.assert_close(terms["floor_px"], expected)


def test_mesh_run_starts_from_the_pretrained_backbone(tmp_path):
    pretrain = _config("mesh_pretrain_2d.yaml", tmp_path / "pretrain")
    training.train(pretrain)
    table = training.evaluate(tmp_path / "pretrain")
    assert table.index.tolist() == ["model", "mean training 2D pose"]
    _, pretrained = training.load_run(tmp_path / "pretrain")

    config = _config("mesh_keypoint_hmr.yaml", tmp_path / "mesh", f"data.backbone_run={tmp_path / 'pretrain'}")
    model = training.build_model(config)
    assert model.backbone.stem[1].momentum == 0.1  # the authors' batch-norm momentum (mesh.backbone)
    mesh.initialise(model, config)
    for name, value in pretrained.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[name], value, msg=name)

    other = _config("mesh_keypoint_hmr.yaml", tmp_path / "mesh", f"data.backbone_run={tmp_path / 'pretrain'}",
                    "data.crop_size=[96,96]")
    with pytest.raises(ValueError, match="crop_size"):
        mesh.initialise(training.build_model(other), other)

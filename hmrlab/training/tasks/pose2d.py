"""2D keypoints of person crops: the backbone's pretraining (`hmrlab.models.keypoint_hmr.Pretrain2D`)
before the keypoints-guided HMR learns 3D (the paper pretrains MGFENet on COCO's 2D keypoints, Sec. III-A).

The data are the mesh task's crops (the same ``data`` settings, `hmrlab.training.tasks.mesh.MeshData`:
SynthCrops or a 3DPW-format folder's frames, augmented alike), so a ``pose2d`` run and the
``mesh`` run that starts from it (``data.backbone_run``) see the same people. The targets are the 24
body-model joints projected into the crop (``joints_2d``), in crop units: ``(x + 0.5) / W - 0.5`` and
``(y + 0.5) / H - 0.5`` for pixel coordinates (x, y), so [-0.5, 0.5] spans the crop, as
`hmrlab.models.keypoint_hmr.heatmap_decode` reads a heatmap.

**Loss.** The paper's RLE loss with the 2D flow (`pretrain_loss`, Eq. 7) plus ``L1_WEIGHT`` times the L1
distance of the decoded coordinates (integral regression, Sun et al. ECCV 2018). Measured on 20,000
SynthCrops at 64x64: with RLE alone the error stayed at the mean pose's for the first few hundred
steps while the flow and σ adapted; the L1 term gives every coordinate a gradient of the same size
from the first step (configs/mesh_pretrain_2d.yaml records the runs).

**Logged.** ``px``: the mean 2D joint error in crop pixels; ``floor_px``: the same error of the mean
training 2D pose (every item carries it, `build_datasets`), the constant this must beat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from hmrlab.data.datasets import WithConstants
from hmrlab.models.keypoint_hmr import Pretrain2D, pretrain_loss
from hmrlab.training.config import RunConfig
from hmrlab.training.task import Task
from hmrlab.training.tasks import mesh

L1_WEIGHT = 1.0
NUM_JOINTS = 24


def mgfenet_2d(image_size: tuple[int, int] = (64, 64), decoder_channels: tuple[int, ...] = (64, 64, 64)) -> Pretrain2D:
    """`Pretrain2D` on the paper's MGFENet for ``image_size`` (H, W) crops: 24 joint heatmaps at
    ``2^len(decoder_channels) / 32`` of the crop's resolution (SimpleBaseline's decoder, narrowed).
    The backbone's batch norms keep the authors' momentum 0.1 (`mesh.backbone`)."""
    return Pretrain2D(mesh.backbone(image_size), NUM_JOINTS, tuple(decoder_channels))


def crop_units(points: Tensor, size: tuple[int, int]) -> Tensor:
    """Crop pixels (..., 2) of an (H, W) crop -> crop units in [-0.5, 0.5] (module docstring)."""
    extent = points.new_tensor([size[1], size[0]])
    return (points + 0.5) / extent - 0.5


def _mean_pose_2d(samples, count: int = 2000) -> Tensor:
    """The mean (24, 2) of the training items' ``joints_2d``, crop pixels, without augmentation, over
    ``count`` items evenly spread over the set (all of a smaller set): the mean of 2,000 differs from
    the mean of all by a few hundredths of a pixel, and costs two seconds instead of twenty."""
    augment, samples.augment = samples.augment, None
    try:
        items = np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int)
        return torch.stack([samples[int(i)]["joints_2d"] for i in items]).double().mean(0).float()
    finally:
        samples.augment = augment


def build_datasets(config: RunConfig) -> tuple[WithConstants, WithConstants]:
    """The mesh task's training and validation crops (`hmrlab.training.tasks.mesh`), each item also
    carrying ``floor_joints_2d`` (24, 2): the mean training 2D pose, crop pixels."""
    train, val = mesh._raw_datasets(config)
    floor = _mean_pose_2d(train)
    return WithConstants(mesh.epochs(train, config), floor_joints_2d=floor), WithConstants(val, floor_joints_2d=floor)


def loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """RLE (Eq. 7) + ``L1_WEIGHT`` L1 on the 24 joints in crop units; logs ``px`` and ``floor_px``."""
    size = tuple(batch["image"].shape[-2:])
    target = crop_units(batch["joints_2d"], size)
    out = model(batch["image"])
    net = getattr(model, "module", model)
    terms = {"rle": pretrain_loss(out, target, torch.ones(target.shape[:2], device=target.device), net.flow),
             "l1": (out["coords"] - target).abs().mean()}
    extent = target.new_tensor([size[1], size[0]])
    terms["px"] = ((out["coords"].detach() - target) * extent).norm(dim=-1).mean()
    if "floor_joints_2d" in batch:
        terms["floor_px"] = (batch["floor_joints_2d"] - batch["joints_2d"]).norm(dim=-1).mean()
    return {"loss": terms["rle"] + L1_WEIGHT * terms["l1"], **terms}


def evaluate(model: nn.Module, config: RunConfig) -> pd.DataFrame:
    """The validation set's mean 2D joint error (px) and PCK at 5 % of the crop's side, beside the
    mean training 2D pose's: one row each."""
    train, val = build_datasets(config)
    loader = torch.utils.data.DataLoader(val, batch_size=config.batch_size)
    device = next(model.parameters()).device
    errors, floors = [], []
    model.eval()
    with torch.no_grad():
        for batch in loader:
            size = tuple(batch["image"].shape[-2:])
            extent = torch.tensor([size[1], size[0]], dtype=torch.float32)
            coords = model(batch["image"].to(device))["coords"].cpu()
            errors.append(((coords - crop_units(batch["joints_2d"], size)) * extent).norm(dim=-1))
            floors.append((batch["floor_joints_2d"] - batch["joints_2d"]).norm(dim=-1))
    side = max(mesh.settings(config).crop_size)
    rows = {}
    for name, error in (("model", torch.cat(errors)), ("mean training 2D pose", torch.cat(floors))):
        rows[name] = {"px": float(error.mean()), "PCK@0.05": float((error < 0.05 * side).float().mean())}
    return pd.DataFrame.from_dict(rows, orient="index")


TASK = Task(
    models={"MGFENet2D": mgfenet_2d},
    build_datasets=build_datasets,
    loss=loss,
    metrics={},
    evaluate=evaluate,
    best_metric="val_px",
    default_model_args=lambda config: {"image_size": mesh.settings(config).crop_size},
    data=mesh.MeshData,
    example_inputs=mesh.example_inputs,  # one crop, as the mesh task's
)

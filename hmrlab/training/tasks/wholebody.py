"""Whole-body mesh recovery on synthetic images: BiDRN and its full-precision twin (`hmrlab.models.bidrn`).

Both models train on rendered SMPL-X-format people (`hmrlab.data.synth_wholebody`) with `bidrn_loss`
(true part boxes as teacher forcing), are scored in domain by `evaluate`, and body-only on the
common 3DPW-format test split by `benchmark`.

The configuration's ``data`` keys are the fields of `WholeBodyData`. The validation metric ``mpjpe``
is the MPJPE in mm of the 22 SMPL-X body joints (pelvis to wrists, the joints `BiDRN` locates with
its body heatmaps), pelvis-relative, with the model's own part boxes.

**Floor.** `floor` scores the constant prediction, the mean training body (`mean_body`: per-joint
chordal mean of the training samples' camera-frame rotations, `hmrlab.data.mean_body`, and the mean
betas and expression), with `evaluate`'s table on the validation samples or `benchmark`'s on a
3DPW-format folder; validation also logs ``val_floor_mpjpe`` beside ``val_mpjpe``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from hmrlab import evaluation, metrics, paths
from hmrlab.body.wholebody import SMPLX_PARAM_NAMES, load_wholebody_model, part_joint_indices, pose_wholebody
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import MeshSamples, WithConstants
from hmrlab.data.mean_body import mean_axis_angle
from hmrlab.data.synth_wholebody import (
    BODY_ASPECT,
    FOCAL_PER_HEIGHT,
    WholeBodySamples,
    make_wholebody_samples,
)
from hmrlab.evaluation import pw3d_split
from hmrlab.io import atomic_save_npz, read_npz
from hmrlab.models.bidrn import NUM_BODY_JOINTS, BiDRN, bidrn_loss
from hmrlab.training.config import (
    RunConfig,
    data_settings,
    integer,
    path,
    pixel_pair,
    positive_int,
    setting,
)
from hmrlab.training.task import Task

GENERATOR_VERSION = 1
"""Bump when `make_wholebody_samples` changes what it draws or renders: old cache files are then ignored."""
VAL_SEED_OFFSET = 1_000_003
"""Validation samples use ``seed + VAL_SEED_OFFSET``: a seed no nearby training seed reaches."""


@dataclass(frozen=True)
class WholeBodyData:
    """The wholebody task's ``data`` settings, all optional (`settings` reads them from a configuration)."""

    train_count: int = setting(1500, positive_int, (
        "rendered training samples (the full-mode config's; rendering ran at about 15 samples/s at "
        "128x96 on an idle 2-core machine, about 2 minutes with the validation samples)"))
    val_count: int = setting(200, positive_int, "rendered validation samples")
    image_size: tuple[int, int] = setting((128, 96), partial(pixel_pair, minimum=16), (
        "[height, width] of the rendered images (the default is the generator's)"))
    seed: int = setting(0, integer, "the training samples' seed; validation uses seed + VAL_SEED_OFFSET")
    cache_dir: Path = setting(Path("build/synth/wholebody"), path, (
        "where rendered sets are cached (relative to the working directory, like out_dir), one .npz per "
        "(count, size, seed, GENERATOR_VERSION), written atomically; an unreadable or inconsistent cache "
        "file is rendered again and replaced, with a warning (cached_wholebody_samples)"))
    dir: Path = setting(paths.SYNTH_3DPW, path, (
        "the 3DPW-format folder benchmark uses when the caller passes none of its own (the default is "
        "the shipped SynthHuman set)"))


def settings(config: RunConfig) -> WholeBodyData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(WholeBodyData, config, "wholebody")


# ----------------------------------------------------------------------------------------------------
# Rendered samples, cached


def cache_path(cache_dir: str | os.PathLike, count: int, image_size: tuple[int, int], seed: int) -> Path:
    """The cache file of `make_wholebody_samples(count, image_size, seed)` under ``cache_dir``."""
    height, width = image_size
    return Path(cache_dir) / f"wholebody_n{count}_{height}x{width}_seed{seed}_v{GENERATOR_VERSION}.npz"


def _save_samples(samples: WholeBodySamples, path: Path) -> None:
    arrays = {f.name: getattr(samples, f.name).numpy() for f in fields(samples)}
    # The renderer makes 8-bit pictures (uint8 / 255), so bytes store them exactly at a quarter of the size.
    arrays["images"] = (samples.images * 255).round().to(torch.uint8).numpy()
    atomic_save_npz(path, **arrays)


def _load_samples(path: Path, count: int, image_size: tuple[int, int]) -> WholeBodySamples:
    """The samples cached at ``path``; ValueError if the file does not hold `count` samples of that size."""
    data = read_npz(path, "cached whole-body samples", objects="skip")
    missing = [f.name for f in fields(WholeBodySamples) if f.name not in data]
    if missing:
        raise ValueError(f"the file has no {missing}")
    arrays = {f.name: torch.from_numpy(data[f.name]) for f in fields(WholeBodySamples)}
    if arrays["images"].dtype != torch.uint8 or tuple(arrays["images"].shape) != (count, 3, *image_size):
        raise ValueError(f"images are {arrays['images'].dtype} {tuple(arrays['images'].shape)}")
    if any(len(value) != count for name, value in arrays.items() if name not in ("focal", "center")):
        raise ValueError(f"the arrays do not all hold {count} samples")
    arrays["images"] = arrays["images"].float() / 255
    return WholeBodySamples(**arrays)


def cached_wholebody_samples(
    count: int, image_size: tuple[int, int], seed: int, cache_dir: str | os.PathLike
) -> WholeBodySamples:
    """`make_wholebody_samples(count, image_size, seed)`, rendered once and then read from ``cache_dir``.

    The file (`cache_path`) is written atomically, so an interrupted run leaves no half file; one
    that still cannot be read (truncated by hand, another version's layout) is rendered again and
    replaced, with a warning naming it. Images round-trip exactly (stored as the renderer's bytes).
    """
    path = cache_path(cache_dir, count, image_size, seed)
    if path.is_file():
        try:
            return _load_samples(path, count, image_size)
        except ValueError as error:
            warnings.warn(f"cannot read the cached samples {path} ({error}); rendering them again", stacklevel=2)
    samples = make_wholebody_samples(count, image_size, seed)
    _save_samples(samples, path)
    return samples


def load_samples(config: RunConfig, split: str) -> WholeBodySamples:
    """The configured ``"train"`` or ``"val"`` `WholeBodySamples` (rendered, or read from the cache)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
    options = settings(config)
    seed = options.seed + (VAL_SEED_OFFSET if split == "val" else 0)
    count = options.train_count if split == "train" else options.val_count
    return cached_wholebody_samples(count, options.image_size, seed, options.cache_dir)


def mean_body(samples: WholeBodySamples) -> dict[str, Tensor]:
    """The constant prediction: SMPL-X parameters (batch of one, `SMPLX_PARAM_NAMES` and ``transl``
    zero) whose every rotation is the per-joint chordal mean of the samples' camera-frame ones
    (`hmrlab.data.mean_body.mean_axis_angle`) and whose betas and expression are the means."""
    params = {}
    for name in SMPLX_PARAM_NAMES[:-1]:  # all but transl
        value = getattr(samples, name)
        if name in ("betas", "expression"):
            params[name] = value.mean(0, keepdim=True)
        else:
            joints = value.reshape(len(value), -1, 3)
            params[name] = mean_axis_angle(joints).reshape(1, *value.shape[1:])
    params["transl"] = torch.zeros(1, 3)
    return params


def _constant_body(samples: WholeBodySamples) -> tuple[Tensor, Tensor]:
    """Vertices (13718, 3) and joints (127, 3), metres, of `mean_body`, relative to its pelvis."""
    with torch.no_grad():
        vertices, joints = pose_wholebody(load_wholebody_model(), mean_body(samples))
    return (vertices - joints[:, :1])[0], (joints - joints[:, :1])[0]


def build_datasets(config: RunConfig) -> tuple[WithConstants, WithConstants]:
    """Training and validation `WholeBodySamples` (`load_samples`); every item also carries
    ``floor_joints`` (22, 3), the mean training body's body joints (`mean_body`), for ``floor_mpjpe``."""
    count = settings(config).train_count
    if count % config.batch_size == 1:
        raise ValueError(f"train_count {count} leaves a last batch of one sample for batch_size "
                         f"{config.batch_size}, which BatchNorm cannot train on; change either")
    train = load_samples(config, "train")
    floor_joints = _constant_body(train)[1][:NUM_BODY_JOINTS]
    return (WithConstants(train, floor_joints=floor_joints),
            WithConstants(load_samples(config, "val"), floor_joints=floor_joints))


# ----------------------------------------------------------------------------------------------------
# Loss, validation and the in-domain table


def bidrn_fp(**kwargs: Any) -> BiDRN:
    """BiDRN's full-precision twin (``BiDRN(binary=False)``): the paper's main comparison."""
    return BiDRN(False, **kwargs)


def loss(model: BiDRN, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """`bidrn_loss` on a batch of `WholeBodySamples` items."""
    return bidrn_loss(model, batch)


def _predict(model: BiDRN, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The model on a batch of samples with their body boxes and camera, cropping its own part boxes."""
    return model(batch["images"], batch["boxes"][:, 0], None, batch["focal"][0], batch["center"][0])


def body_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """MPJPE (mm) of the 22 SMPL-X body joints, pelvis-relative (the validation metric)."""
    out = _predict(model, batch)
    body = slice(0, NUM_BODY_JOINTS)
    return 1000 * float(metrics.mpjpe(out["joints"][:, body], batch["joints"][:, body], root=0))


def floor_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """`body_mpjpe` of the constant prediction (the batch's ``floor_joints``); the model is not run."""
    target = batch["joints"][:, :NUM_BODY_JOINTS]
    return 1000 * float(metrics.mpjpe(batch["floor_joints"].to(target).expand_as(target), target, root=0))


def target_meshes(batch: dict[str, Tensor], body_model: nn.Module) -> tuple[Tensor, Tensor]:
    """True vertices (B, 13718, 3) and joints (B, 127, 3), metres, camera frame, of a batch's SMPL-X
    parameters through ``body_model`` (`hmrlab.body.wholebody.load_wholebody_model`; the network's
    own copy serves, as it has no parameters)."""
    params = {name: batch[name] for name in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose",
                                             "jaw_pose", "betas", "expression", "transl")}
    return pose_wholebody(body_model, params)


def _batches(samples: Dataset, batch_size: int, device: torch.device) -> Iterator[dict[str, Tensor]]:
    for batch in DataLoader(samples, batch_size=batch_size):
        yield {name: value.to(device) for name, value in batch.items()}


def lsp14_body_errors(pred_vertices: Tensor, target_vertices: Tensor) -> dict[str, Tensor]:
    """Per-sample body errors (N,) in mm of meshes (N, 13718, 3) metres, as 3DPW's protocol
    (`hmrlab.evaluation.pw3d_protocol`): the 14 LSP joints regressed with ``J_regressor_h36m``,
    both centred on their mid-hip; ``MPJPE``, ``PA-MPJPE`` and ``MPVPE`` (all vertices, same centre)."""
    lsp14, hips = list(evaluation.H36M_TO_LSP14), list(evaluation.LSP14_HIPS)
    pred_joints = smpl_targets.h36m_joints(pred_vertices)[:, lsp14]  # (N, 14, 3)
    target_joints = smpl_targets.h36m_joints(target_vertices)[:, lsp14]
    pred_hip = pred_joints[:, hips].mean(1, keepdim=True)  # (N, 1, 3): 3DPW's root, the mid-hip
    target_hip = target_joints[:, hips].mean(1, keepdim=True)
    pred, target = pred_joints - pred_hip, target_joints - target_hip
    return {
        "MPJPE": 1000 * metrics.mpjpe(pred, target, reduction="frame"),
        "PA-MPJPE": 1000 * metrics.pa_mpjpe(pred, target, reduction="frame"),
        "MPVPE": 1000 * metrics.mpvpe(pred_vertices - pred_hip, target_vertices - target_hip, reduction="frame"),
    }


def hands_pa_mpjpe(pred_joints: Tensor, target_joints: Tensor) -> Tensor:
    """Per-sample hand error (N,) mm: PA-MPJPE of each hand's 21 joints (wrist, 15 finger joints, 5 tips)
    aligned on their own, averaged over both hands. Joints (N, 127, 3) in smplx's order, metres."""
    parts = part_joint_indices()
    errors = [metrics.pa_mpjpe(pred_joints[:, parts[h]], target_joints[:, parts[h]], reduction="frame")
              for h in ("left_hand", "right_hand")]
    return 1000 * (errors[0] + errors[1]) / 2


def _in_domain_table(config: RunConfig, predict) -> pd.DataFrame:
    """`evaluate`'s table of ``predict(batch) -> (vertices, joints)`` over the validation samples."""
    val = load_samples(config, "val")
    body_model = load_wholebody_model()
    columns: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for batch in _batches(val, config.batch_size, torch.device("cpu")):
            pred_vertices, pred_joints = predict(batch)
            vertices, joints = target_meshes(batch, body_model)
            errors = lsp14_body_errors(pred_vertices.cpu(), vertices)
            errors["Hands PA-MPJPE"] = hands_pa_mpjpe(pred_joints.cpu(), joints)
            for name, value in errors.items():
                columns.setdefault(name, []).append(value.cpu())
    row = {name: float(torch.cat(values).mean()) for name, values in columns.items()}
    table = pd.DataFrame.from_dict({"All samples": row}, orient="index")
    table["samples"] = len(val)
    return table


def evaluate(model: BiDRN, config: RunConfig) -> pd.DataFrame:
    """The in-domain whole-body table on the validation samples, mm: body ``MPJPE``, ``PA-MPJPE``
    and ``MPVPE`` (`lsp14_body_errors`), ``Hands PA-MPJPE`` (`hands_pa_mpjpe`) and the sample count,
    one row "All samples". The model crops its own predicted part boxes, as at test time."""
    device = next(model.parameters()).device

    def predict(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        out = _predict(model, {name: value.to(device) for name, value in batch.items()})
        return out["vertices"], out["joints"]

    return _in_domain_table(config, predict)


# ----------------------------------------------------------------------------------------------------
# The common 3DPW-format benchmark


def crop_camera(camera: Tensor) -> tuple[Tensor, Tensor]:
    """Focal lengths (B, 2) and principal point (B, 2), pixels, of crop intrinsics (B, 3, 3) (no skew)."""
    return torch.stack([camera[:, 0, 0], camera[:, 1, 1]], -1), camera[:, :2, 2]


def benchmark_crop_size(config: RunConfig) -> tuple[int, int]:
    """(height, width) of the 3DPW-format crops: the rendered images' height at the body crop's 4:3 aspect."""
    height = settings(config).image_size[0]
    return height, round(height / BODY_ASPECT)


def benchmark(model: BiDRN, config: RunConfig, folder: Path | None = None) -> pd.DataFrame:
    """3DPW's protocol (`pw3d_split.score_frames`) on every test frame of a 3DPW-format folder
    (default ``data.dir``): each person crop (`MeshSamples`, `benchmark_crop_size`) is the image,
    the whole crop the body box, the crop's intrinsics the camera; the predicted SMPL-X-format
    vertices are compared with `smpl_targets.smpl_meshes` of the files' parameters.

    Body only, and across a domain shift: the model trained on rendered whole-body samples (random
    poses, one fixed camera, whole pictures with a body box) and has never seen 3DPW-like pictures
    or their poses; the targets are SMPL meshes whose hands stay flat, so predicted fingers count
    in MPVPE as errors.
    """
    folder = Path(folder) if folder is not None else settings(config).dir
    samples = MeshSamples(pw3d_split.load_split(folder, "test"), folder / "imageFiles",
                          crop_size=benchmark_crop_size(config))
    # samples.actors lists every actor of every sequence in turn; keys count actors within a sequence.
    names = [name for name, _, _ in samples.actors]
    keys = [f"{names[a]}/{a - names.index(names[a])}" for a, _ in samples.index]
    device = next(model.parameters()).device
    predictions, targets = [], []
    with torch.no_grad():
        for batch in DataLoader(samples, batch_size=config.batch_size):
            images = batch["image"].to(device)
            height, width = images.shape[2:]
            box = images.new_tensor([0.0, 0.0, width, height]).expand(len(images), 4)
            focal, center = crop_camera(batch["camera"].to(device))
            predictions.append(model(images, box, None, focal, center)["vertices"].cpu())
            targets.append(smpl_targets.smpl_meshes(batch["pose"], batch["betas"]))
    return pw3d_split.score_frames(keys, torch.cat(predictions), torch.cat(targets))


def floor(config: RunConfig, folder: str | Path | None = None) -> pd.DataFrame:
    """The mean training body's table (mm, `mean_body` of the training samples): `evaluate`'s on the
    validation samples (``folder=None``), or `benchmark`'s on the test split of a 3DPW-format
    ``folder``. Both compare meshes as the model's are compared: the same vertices for every sample."""
    vertices, joints = _constant_body(load_samples(config, "train"))
    if folder is None:
        return _in_domain_table(config, lambda batch: (vertices.expand(len(batch["betas"]), -1, -1),
                                                       joints.expand(len(batch["betas"]), -1, -1)))
    folder = Path(folder)
    samples = MeshSamples(pw3d_split.load_split(folder, "test"), folder / "imageFiles",
                          crop_size=benchmark_crop_size(config))
    names = [name for name, _, _ in samples.actors]
    keys = [f"{names[a]}/{a - names.index(names[a])}" for a, _ in samples.index]
    poses = torch.as_tensor(np.stack([samples.actors[a][2]["pose"][frame] for a, frame in samples.index]),
                            dtype=torch.float32)
    betas = torch.as_tensor(np.stack([samples.actors[a][1].betas for a, _ in samples.index]), dtype=torch.float32)
    targets = smpl_targets.smpl_meshes(poses, betas)
    return pw3d_split.score_frames(keys, vertices.expand_as(targets), targets)


# ----------------------------------------------------------------------------------------------------
# Inputs for counting and examples to look at


def example_inputs(config: RunConfig) -> tuple[Tensor, Tensor, None, Tensor, Tensor]:
    """One rendered-size image (1, 3, H, W), its body box (1, 4) (the whole image), no part boxes
    (the model predicts them), focal (1, 2) and center (1, 2) pixels: ``model(*example_inputs)``."""
    height, width = settings(config).image_size
    box = torch.tensor([[0.0, 0.0, width, height]])
    focal = torch.full((1, 2), FOCAL_PER_HEIGHT * height)
    center = torch.tensor([[(width - 1) / 2, (height - 1) / 2]])
    return torch.zeros(1, 3, height, width), box, None, focal, center


def examples(model: BiDRN, config: RunConfig, count: int) -> dict[str, Tensor]:
    """The first ``count`` validation samples: ``images`` (n, 3, H, W) in [0, 1], ``pred_vertices``
    and ``target_vertices`` (n, 13718, 3) metres, each relative to its own pelvis (joint 0)."""
    val = load_samples(config, "val")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(val):
        raise ValueError(f"count must be between 1 and the {len(val)} validation samples; got {count!r}")
    device = next(model.parameters()).device
    batch = next(_batches(Subset(val, range(count)), count, device))
    with torch.no_grad():
        out = _predict(model, batch)
        vertices, joints = target_meshes(batch, model.body_model)
    return {
        "images": batch["images"].cpu(),
        "pred_vertices": (out["vertices"] - out["joints"][:, :1]).cpu(),
        "target_vertices": (vertices - joints[:, :1]).cpu(),
    }


TASK = Task(
    models={"BiDRN": BiDRN, "BiDRN-FP": bidrn_fp},
    build_datasets=build_datasets,
    loss=loss,
    metrics={"mpjpe": body_mpjpe, "floor_mpjpe": floor_mpjpe},
    evaluate=evaluate,
    best_metric="val_mpjpe",
    data=WholeBodyData,
    benchmark=benchmark,
    example_inputs=example_inputs,
    examples=examples,
    floor=floor,
)

"""Whole-body mesh recovery on synthetic images: BiDRN and its full-precision twin (`hmrlab.models.bidrn`).

Both models train on rendered SMPL-X-format people (`hmrlab.data.synth_wholebody`: each sample its own
body, pose, hands, face, camera and look; sets rendered in shards by worker processes, cached and
resumed) with `bidrn_loss` (true part boxes as teacher forcing), are scored in domain by `evaluate`,
and body-only on the common 3DPW-format test split by `benchmark`. Training samples are augmented
(`hmrlab.data.synth_wholebody.AugmentedWholeBody`: colour gain, body-box jitter; no flip) unless
``data.augment`` is false.

The configuration's ``data`` keys are the fields of `WholeBodyData`. The validation metric ``mpjpe``
is the MPJPE in mm of the 22 SMPL-X body joints (pelvis to wrists, the joints `BiDRN` locates with
its body heatmaps), pelvis-relative, with the model's own part boxes; validation also logs the
hands' and the face's errors, ``hand_pa_mpjpe`` (`hands_pa_mpjpe`) and ``face_pa_mpjpe``
(`face_errors`), mm.

**Floors.** `floor` scores the constant prediction, the mean training body (`mean_body`: per-joint
chordal mean of the training samples' camera-frame rotations, `hmrlab.data.mean_body`, hands and jaw
included, and the mean betas and expression), with `evaluate`'s table on the validation samples or
`benchmark`'s on a 3DPW-format folder. Each of the three errors has its floor logged beside it,
the same error of that constant: ``val_floor_mpjpe``, ``val_floor_hand_pa_mpjpe`` (the mean hand
pose's) and ``val_floor_face_pa_mpjpe`` (the mean jaw and expression's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
from hmrlab.data.sampling import Resampled
from hmrlab.data.synth_wholebody import (
    BODY_ASPECT,
    DEFAULT_SEED,
    FOCAL_PER_HEIGHT,
    AugmentedWholeBody,
    WholeBodySamples,
    generate_wholebody,
    load_wholebody,
)
from hmrlab.evaluation import pw3d_split
from hmrlab.models.bidrn import NUM_BODY_JOINTS, BiDRN, bidrn_loss
from hmrlab.training.config import (
    RunConfig,
    boolean,
    data_settings,
    integer,
    optional,
    path,
    pixel_pair,
    positive_int,
    setting,
)
from hmrlab.training.task import Task

VAL_SEED_OFFSET = 1_000_003
"""Validation samples use ``seed + VAL_SEED_OFFSET``: a seed no nearby training seed reaches."""


@dataclass(frozen=True)
class WholeBodyData:
    """The wholebody task's ``data`` settings, all optional (`settings` reads them from a configuration)."""

    train_count: int = setting(10_000, positive_int, (
        "rendered training samples (hmrlab.data.synth_wholebody.generate_wholebody; see the configs for "
        "the rendering time)"))
    val_count: int = setting(200, positive_int, "rendered validation samples")
    image_size: tuple[int, int] = setting((128, 96), partial(pixel_pair, minimum=16), (
        "[height, width] of the rendered images (the default is the generator's)"))
    seed: int = setting(DEFAULT_SEED, integer, (
        "the training samples' seed; validation uses seed + VAL_SEED_OFFSET (keep both off the benchmark "
        "set's seed 0)"))
    cache_dir: Path = setting(Path("build/synth/wholebody"), path, (
        "where rendered sets are cached (relative to the working directory, like out_dir): one folder of "
        "shards per split, size and seed (set_folder), resumed when a rendering was interrupted and "
        "extended when more samples are asked for"))
    render_workers: int = setting(2, positive_int, "processes rendering the shards")
    samples_per_epoch: int | None = setting(None, optional(positive_int), (
        "draw this many random training samples per epoch, with replacement (hmrlab.data.sampling.Resampled), "
        "so that a short run validates often; null: every training sample once per epoch"))
    augment: bool = setting(True, boolean, (
        "augment the training samples (hmrlab.data.synth_wholebody.AugmentedWholeBody: colour gain, "
        "body-box jitter); validation samples never are"))
    dir: Path = setting(paths.SYNTH_3DPW, path, (
        "the 3DPW-format folder benchmark uses when the caller passes none of its own (the default is "
        "the shipped SynthHuman set)"))


def settings(config: RunConfig) -> WholeBodyData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(WholeBodyData, config, "wholebody")


# ----------------------------------------------------------------------------------------------------
# Rendered samples, cached


def _split_seed(config: RunConfig, split: str) -> int:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val'; got {split!r}")
    return settings(config).seed + (VAL_SEED_OFFSET if split == "val" else 0)


def set_folder(config: RunConfig, split: str) -> Path:
    """The folder of the configured ``"train"`` or ``"val"`` set: ``cache_dir/<split>_<H>x<W>_seed<seed>``.
    The count is not in the name: a larger count keeps the shards made (a smaller one drops the rest)."""
    seed, (height, width) = _split_seed(config, split), settings(config).image_size
    return settings(config).cache_dir / f"{split}_{height}x{width}_seed{seed}"


def load_samples(config: RunConfig, split: str) -> WholeBodySamples:
    """The configured ``"train"`` or ``"val"`` `WholeBodySamples`, rendered into `set_folder` first
    when missing or unfinished (`hmrlab.data.synth_wholebody.generate_wholebody`)."""
    options, seed = settings(config), _split_seed(config, split)
    count = options.train_count if split == "train" else options.val_count
    folder = generate_wholebody(set_folder(config, split), count=count, image_size=options.image_size, seed=seed,
                                workers=options.render_workers, progress=config.progress)
    return load_wholebody(folder)


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
    """Training (augmented unless ``data.augment`` is false) and validation `WholeBodySamples`
    (`load_samples`); every item also carries ``floor_joints`` (127, 3), the mean training body's
    joints (`mean_body`), pelvis-relative, metres, for the ``floor_...`` metrics."""
    options = settings(config)
    if options.train_count % config.batch_size == 1:
        raise ValueError(f"train_count {options.train_count} leaves a last batch of one sample for batch_size "
                         f"{config.batch_size}, which BatchNorm cannot train on; change either")
    train = load_samples(config, "train")
    floor_joints = _constant_body(train)[1]
    drawn = AugmentedWholeBody(train) if options.augment else train
    if options.samples_per_epoch is not None:
        drawn = Resampled(drawn, options.samples_per_epoch)
    return (WithConstants(drawn, floor_joints=floor_joints),
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
    constant = batch["floor_joints"][:, :NUM_BODY_JOINTS].to(target)
    return 1000 * float(metrics.mpjpe(constant, target, root=0))


def hand_pa_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """`hands_pa_mpjpe` (mm) of the model's joints, with its own part boxes, averaged over the batch."""
    return float(hands_pa_mpjpe(_predict(model, batch)["joints"], batch["joints"]).mean())


def floor_hand_pa_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """`hand_pa_mpjpe` of the constant prediction (``floor_joints``: the mean hand poses and betas,
    each hand aligned on its own); the model is not run."""
    return float(hands_pa_mpjpe(batch["floor_joints"].to(batch["joints"]), batch["joints"]).mean())


def face_pa_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """`face_errors` (mm) of the model's joints, with its own part boxes, averaged over the batch."""
    return float(face_errors(_predict(model, batch)["joints"], batch["joints"]).mean())


def floor_face_pa_mpjpe(model: BiDRN, batch: dict[str, Tensor]) -> float:
    """`face_pa_mpjpe` of the constant prediction (``floor_joints``: the mean jaw, expression and
    betas, the face aligned on its own); the model is not run."""
    return float(face_errors(batch["floor_joints"].to(batch["joints"]), batch["joints"]).mean())


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


def face_errors(pred_joints: Tensor, target_joints: Tensor) -> Tensor:
    """Per-sample face error (N,) mm: PA-MPJPE of the face's 60 points (head, jaw and eye joints, nose,
    eyes and ears, 51 landmarks: `part_joint_indices`) aligned on their own, so the head's rotation
    and place do not count, the jaw, expression and face shape do. Joints (N, 127, 3) in smplx's
    order, metres."""
    face = part_joint_indices()["face"]
    return 1000 * metrics.pa_mpjpe(pred_joints[:, face], target_joints[:, face], reduction="frame")


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
    and ``target_vertices`` (n, 13718, 3) metres, each relative to its own pelvis (joint 0);
    ``camera`` (n, 3, 3) the images' intrinsics, ``root`` (n, 3) the true pelvis and ``pred_root``
    (n, 3) the predicted one (from BiDRN's camera translation), camera frame, metres."""
    val = load_samples(config, "val")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(val):
        raise ValueError(f"count must be between 1 and the {len(val)} validation samples; got {count!r}")
    device = next(model.parameters()).device
    batch = next(_batches(Subset(val, range(count)), count, device))
    with torch.no_grad():
        out = _predict(model, batch)
        vertices, joints = target_meshes(batch, model.body_model)
    camera = torch.eye(3).repeat(count, 1, 1)
    camera[:, [0, 1], [0, 1]], camera[:, :2, 2] = batch["focal"].cpu(), batch["center"].cpu()
    return {
        "images": batch["images"].cpu(),
        "pred_vertices": (out["vertices"] - out["joints"][:, :1]).cpu(),
        "target_vertices": (vertices - joints[:, :1]).cpu(),
        "camera": camera, "root": joints[:, 0].cpu(), "pred_root": out["joints"][:, 0].cpu(),
    }


TASK = Task(
    models={"BiDRN": BiDRN, "BiDRN-FP": bidrn_fp},
    build_datasets=build_datasets,
    loss=loss,
    metrics={"mpjpe": body_mpjpe, "floor_mpjpe": floor_mpjpe, "hand_pa_mpjpe": hand_pa_mpjpe,
             "floor_hand_pa_mpjpe": floor_hand_pa_mpjpe, "face_pa_mpjpe": face_pa_mpjpe,
             "floor_face_pa_mpjpe": floor_face_pa_mpjpe},
    evaluate=evaluate,
    best_metric="val_mpjpe",
    data=WholeBodyData,
    benchmark=benchmark,
    example_inputs=example_inputs,
    examples=examples,
    floor=floor,
)

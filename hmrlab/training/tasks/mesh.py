"""Single-image mesh recovery on 3DPW-format folders: the keypoints-guided lightweight HMR
(`hmrlab.models.keypoint_hmr.KeypointHMR`) trained end to end on person crops.

The configuration's ``data`` keys are the fields of `MeshData`. Training uses every frame of the
folder's train sequences (`hmrlab.data.datasets.MeshSamples`) with Eq. 9's loss; the targets (the
paper's 91 keypoints, θ, β, twist) come from each frame's SMPL parameters through the model's body
model (`keypoint_hmr.mesh_targets`). The loss also logs
``mpjpe`` (mm, the mesh's 24 body-model joints against the target body's, both pelvis-relative), so
validation on the test sequences' frames gives ``val_mpjpe``, the metric that picks the best epoch.
`evaluate` and `benchmark` score every test frame with 3DPW's protocol (`pw3d_split.score_frames`).

Two sources of training data (``data.format``): ``"3dpw"``, the train sequences of the 3DPW-format
``data.dir`` (validated on its test sequences); ``"crops"``, SynthCrops (`hmrlab.data.synth_crops`:
every sample its own body, pose, camera and look), ``data.train_count`` samples under
``data.crops_dir/<H>x<W>-seed<seed>/train`` and ``data.val_count`` under ``.../val`` (one folder per crop
size and seed; rendered when missing, resumed when interrupted, cached). Training crops are augmented (`hmrlab.data.augment`) unless
``data.augment`` is false; validation crops never are.

**Floor.** `floor` scores the constant prediction, the mean training body (`hmrlab.data.mean_body`:
per-joint chordal mean of the camera-frame rotations, mean betas), with the same table as
`benchmark` (on a folder's test split) or on the validation set; every batch also logs
``floor_mpjpe`` beside ``mpjpe`` (the constant's joints against the batch's), so ``train_`` and
``val_floor_mpjpe`` stand next to the model's in the history.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from hmrlab import metrics, paths
from hmrlab.data import smpl_targets
from hmrlab.data.augment import Augmentation
from hmrlab.data.datasets import MeshSamples, SynthCrops, WithConstants
from hmrlab.data.mean_body import mean_axis_angle
from hmrlab.data.mean_body import mean_mesh as mean_meshes  # the tasks' mean_mesh reads their own data
from hmrlab.data.sampling import Resampled
from hmrlab.data.synth_crops import DEFAULT_SEED, generate_crops
from hmrlab.evaluation import pw3d_split
from hmrlab.models.keypoint_hmr import (
    EPSILON,
    KeypointHMR,
    Pretrain2D,
    keypoint_hmr_step,
    pretrain_loss,
)
from hmrlab.nn.keypoints import KeypointTemplate, keypoint_template
from hmrlab.nn.mgfenet import MGFENet
from hmrlab.training.config import (
    RunConfig,
    boolean,
    choice,
    data_settings,
    integer,
    load_config,
    optional,
    path,
    pixel_pair,
    positive_float,
    positive_int,
    setting,
)
from hmrlab.training.loop import History, best_checkpoint_path, fit, read_checkpoint
from hmrlab.training.task import Task

TEMPLATE = "paper91"  # SMPL's 24 joints + 67 surface markers (Sec. III-B); KeypointHMR's default K = 91
KEYPOINT_L1 = 1.0
"""Weight of the L1 keypoint term beside Eq. 9 (`keypoint_hmr_step`'s ``l1_weight``): with RLE alone the
predictions collapsed to the mean body on diverse crops while σ absorbed the error (issue measurements
in configs/mesh_keypoint_hmr.yaml)."""
FORMATS = ("3dpw", "crops")
VAL_SEED_OFFSET = 1_000_003
"""SynthCrops validation samples use ``seed + VAL_SEED_OFFSET`` (as the wholebody task's)."""


@dataclass(frozen=True)
class MeshData:
    """The mesh task's ``data`` settings, all optional (`settings` reads them from a configuration)."""

    dir: Path = setting(paths.SYNTH_3DPW, path, (
        "a 3DPW-format folder, sequenceFiles/{train,test} and imageFiles/ (the default is the shipped "
        "SynthHuman set; the notebooks' full-mode set is made by "
        "hmrlab.evaluation.pw3d_split.make_benchmark_set)"))
    crop_size: tuple[int, int] = setting((128, 128), pixel_pair, (
        "[height, width] of the person crops in pixels (the model's image_size follows it)"))
    scale: float = setting(1.25, positive_float, (
        "how much the box around the person's keypoints is enlarged before cropping"))
    format: str = setting("3dpw", choice(FORMATS), (
        "'3dpw': train on dir's train sequences, validate on its test sequences; 'crops': train and "
        "validate on SynthCrops sets under crops_dir (evaluate still scores dir's test split)"))
    crops_dir: Path = setting(Path("build/synth/crops"), path, (
        "where the SynthCrops train/ and val/ sets live (relative to the working directory); made by "
        "hmrlab.data.synth_crops.generate_crops when missing (about 25 samples/s a core at 96x96)"))
    train_count: int = setting(20000, positive_int, "SynthCrops training samples (format 'crops')")
    samples_per_epoch: int | None = setting(None, optional(positive_int), (
        "draw this many random training items per epoch, with replacement (hmrlab.data.sampling.Resampled), "
        "so that a short run validates often; null: every training item once per epoch"))
    val_count: int = setting(1000, positive_int, "SynthCrops validation samples (format 'crops')")
    seed: int = setting(DEFAULT_SEED, integer, (
        "the SynthCrops training set's seed; validation uses seed + VAL_SEED_OFFSET (keep both off the "
        "benchmark set's seed 0)"))
    render_workers: int = setting(2, positive_int, "processes rendering SynthCrops shards")
    backbone_run: Path | None = setting(None, optional(path), (
        "a finished pose2d run (hmrlab.training.tasks.pose2d, same crop_size) whose best checkpoint's "
        "backbone starts a new run's MGFENet: the 2D pretraining (the paper's Sec. III-A); null: from scratch"))
    augment: bool = setting(True, boolean, (
        "augment the training crops (hmrlab.data.augment.Augmentation(): jitter, rotation, flip, colour, "
        "occlusion); validation and benchmark crops are never augmented"))


def settings(config: RunConfig) -> MeshData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(MeshData, config, "mesh")


def _samples(config: RunConfig, folder: Path, split: str, augment: bool = False) -> tuple[MeshSamples, list[str]]:
    """The crops of ``folder``'s ``split`` at the configured size, and each item's "<sequence>/<actor>"."""
    options = settings(config)
    sequences = pw3d_split.load_split(folder, split)
    samples = MeshSamples(sequences, folder / "imageFiles", crop_size=options.crop_size, scale=options.scale,
                          augment=Augmentation() if augment else None)
    # MeshSamples numbers the actors sequence by sequence, in the order of `sequences`.
    actor_keys = [f"{name}/{a}" for name, sequence in sequences.items() for a in range(len(sequence.actors))]
    return samples, [actor_keys[a] for a, _ in samples.index]


def _crops(config: RunConfig, split: str, augment: bool = False) -> SynthCrops:
    """The configured SynthCrops ``"train"`` or ``"val"`` set, rendered first if missing or unfinished."""
    options = settings(config)
    seed = options.seed + (VAL_SEED_OFFSET if split == "val" else 0)
    count = options.train_count if split == "train" else options.val_count
    height, width = options.crop_size
    folder = generate_crops(options.crops_dir / f"{height}x{width}-seed{options.seed}" / split, count=count,
                            crop_size=options.crop_size, seed=seed, workers=options.render_workers,
                            progress=config.progress)
    return SynthCrops(folder, scale=options.scale, augment=Augmentation() if augment else None)


def _raw_datasets(config: RunConfig) -> tuple[MeshSamples | SynthCrops, MeshSamples | SynthCrops]:
    options = settings(config)
    if options.format == "crops":
        return _crops(config, "train", options.augment), _crops(config, "val")
    return _samples(config, options.dir, "train", options.augment)[0], _samples(config, options.dir, "test")[0]


def training_parameters(samples: MeshSamples | SynthCrops) -> tuple[Tensor, Tensor]:
    """The camera-frame SMPL poses (N, 72) and betas (N, 10) of every item of a dataset, read without
    its images (and without augmentation): what the mean training body is taken over."""
    if isinstance(samples, SynthCrops):
        return torch.as_tensor(samples.arrays["pose"]), torch.as_tensor(samples.arrays["betas"])
    poses = [samples.actors[a][2]["pose"][frame] for a, frame in samples.index]
    betas = [samples.actors[a][1].betas for a, _ in samples.index]
    return torch.as_tensor(np.stack(poses), dtype=torch.float32), torch.as_tensor(np.stack(betas), dtype=torch.float32)


def mean_body(samples: MeshSamples | SynthCrops) -> tuple[Tensor, Tensor]:
    """The constant prediction: pose (72,) (per-joint chordal mean of the camera-frame rotations,
    `hmrlab.data.mean_body.mean_axis_angle`) and betas (10,) (their mean) of `training_parameters`."""
    poses, betas = training_parameters(samples)
    return mean_axis_angle(poses.reshape(-1, 24, 3)).reshape(72), betas.mean(0)


def _constant_joints(pose: Tensor, betas: Tensor) -> Tensor:
    """The 24 body-model joints (24, 3), pelvis-relative, metres, of one SMPL body."""
    _, joints = smpl_targets.posed_smpl(pose[None], betas[None])
    return (joints - joints[:, :1])[0]


def build_datasets(config: RunConfig) -> tuple[WithConstants, WithConstants]:
    """Training and validation crops (module docstring), each item also carrying ``floor_joints``
    (24, 3): the mean training body's joints, pelvis-relative, for the ``floor_mpjpe`` the loss logs."""
    train, val = _raw_datasets(config)
    floor_joints = _constant_joints(*mean_body(train))
    return WithConstants(epochs(train, config), floor_joints=floor_joints), WithConstants(val, floor_joints=floor_joints)


def epochs(train: Dataset, config: RunConfig) -> Dataset:
    """The training set as one epoch draws it: ``data.samples_per_epoch`` random items, or all."""
    count = settings(config).samples_per_epoch
    return train if count is None else Resampled(train, count)


def loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Eq. 9 and its terms, plus ``KEYPOINT_L1`` times the L1 keypoint term, on a batch of crops, and
    ``mpjpe`` (mm, the mesh's 24 body-model joints, pelvis-relative): `keypoint_hmr_step` with the
    paper's 91-keypoint template of the body model.
    Logged by the loss rather than a separate metric, so validation runs the network once a batch.
    With ``floor_joints`` in the batch (`build_datasets`), also ``floor_mpjpe``: the same error of
    the mean training body."""
    terms = keypoint_hmr_step(model, batch, keypoint_template(TEMPLATE), l1_weight=KEYPOINT_L1)
    if "floor_joints" in batch:
        truth = batch["joints_3d"] - batch["joints_3d"][:, :1]
        terms["floor_mpjpe"] = 1000 * metrics.mpjpe(batch["floor_joints"].to(truth), truth)
    return terms


def _predict(model: nn.Module, batches: Iterable[dict[str, Tensor]]) -> tuple[Tensor, Tensor]:
    """Predicted and target vertices (N, V, 3), metres, pelvis-relative, of batches of `MeshSamples` items."""
    device = next(model.parameters()).device
    predicted, targets = [], []
    with torch.no_grad():
        for batch in batches:
            predicted.append(model(batch["image"].to(device))["vertices"].float().cpu())
            vertices, joints = smpl_targets.posed_smpl(batch["pose"], batch["betas"])
            targets.append(vertices - joints[:, :1])
    return torch.cat(predicted), torch.cat(targets)


def benchmark(model: nn.Module, config: RunConfig, folder: Path) -> pd.DataFrame:
    """3DPW's table (`pw3d_split.score_frames`, mm) of every frame of every actor of the test sequences
    of a 3DPW-format ``folder``, cropped as in training; targets `smpl_targets.smpl_meshes`."""
    samples, keys = _samples(config, Path(folder), "test")
    predicted, targets = _predict(model, DataLoader(samples, config.batch_size))
    return pw3d_split.score_frames(keys, predicted, targets)


def evaluate(model: nn.Module, config: RunConfig) -> pd.DataFrame:
    """`benchmark` on the configured folder's test sequences."""
    return benchmark(model, config, settings(config).dir)


def _split_targets(samples: MeshSamples | SynthCrops) -> Tensor:
    """Target meshes (N, V, 3) of every item, pelvis-relative, from its parameters (no images read)."""
    poses, betas = training_parameters(samples)
    vertices, joints = smpl_targets.posed_smpl(poses, betas)
    return vertices - joints[:, :1]


def mean_mesh(samples: MeshSamples | SynthCrops) -> Tensor:
    """The mean (V, 3) of every item's target mesh, pelvis-relative (`training_parameters`): the
    constant with the least squared vertex error, though no body (notebook 10's floor)."""
    return mean_meshes(*training_parameters(samples), pelvis="smpl")


def floor(config: RunConfig, folder: str | os.PathLike | None = None, constant: str = "body") -> pd.DataFrame:
    """The constant prediction's table (mm): `benchmark`'s on the test split of a 3DPW-format
    ``folder`` (e.g. the common split), or with ``folder=None`` on the validation set (format
    '3dpw': ``data.dir``'s test split, `evaluate`'s table; 'crops': the SynthCrops validation set,
    its samples in one row "validation" whose ``Accel`` means nothing, the samples being unrelated).

    ``constant``: ``"body"``, the mean training body (`mean_body`), a mesh any model could output;
    ``"mesh"``, the mean of the training meshes (`mean_mesh`), lower MPJPE and MPVPE (it hedges
    between facing directions by shrinking toward the middle) but a far higher PA-MPJPE. A model
    should beat both on every column."""
    if constant not in ("body", "mesh"):
        raise ValueError(f"constant must be 'body' or 'mesh'; got {constant!r}")
    train, val = _raw_datasets(config)
    if constant == "mesh":
        constant = mean_mesh(train)[None]
    else:
        pose, betas = mean_body(train)
        constant, constant_joints = smpl_targets.posed_smpl(pose[None], betas[None])
        constant = constant - constant_joints[:, :1]
    if folder is None and settings(config).format == "crops":
        keys, samples = ["validation"] * len(val), val
    else:
        samples, keys = _samples(config, Path(folder) if folder is not None else settings(config).dir, "test")
    targets = _split_targets(samples)
    return pw3d_split.score_frames(keys, constant.expand_as(targets), targets)


def backbone(image_size: tuple[int, int]) -> MGFENet:
    """The paper's MGFENet for ``image_size`` (H, W) crops with the authors' batch-norm momentum 0.1,
    its weights in the channels-last memory layout. Momentum: with MobileNetV3's 0.01 the running
    statistics lagged the weights by hundreds of steps, and a 2D pretraining run's evaluation-mode
    error was 9.7 px where its training-mode error was 6.3 px (200 steps at 64x64). Layout: oneDNN's
    depthwise convolutions, most of MGFENet, run faster channels-last; a training step of 32 crops at
    64x64 (configs/mesh_keypoint_hmr.yaml) took 0.73 of its time (paired runs, one thread)."""
    return MGFENet(image_size=tuple(image_size), bn_momentum=0.1).to(memory_format=torch.channels_last)


def initialise(model: KeypointHMR, config: RunConfig) -> None:
    """Load ``data.backbone_run``'s pretrained backbone (its best epoch, EMA weights if it used them)
    into a new run's model; nothing without one. FileNotFoundError without a trained run there,
    ValueError when it is not a pose2d run of this crop size."""
    run = settings(config).backbone_run
    if run is None:
        return
    run = Path(run).expanduser()
    checkpoint = best_checkpoint_path(run / "checkpoint.pt")
    if not (run / "config.yaml").is_file() or not checkpoint.is_file():
        raise FileNotFoundError(f"data.backbone_run {str(run)!r} holds no trained run (config.yaml and {checkpoint.name}); "
                                "train configs/mesh_pretrain_2d.yaml there first, or set data.backbone_run to null")
    pretrain = load_config(run / "config.yaml")
    if pretrain.task != "pose2d" or settings(pretrain).crop_size != tuple(model.image_size):
        raise ValueError(f"data.backbone_run {str(run)!r} is a {pretrain.task!r} run for {settings(pretrain).crop_size} "
                         f"crops; it must be a pose2d run with this run's crop_size {list(model.image_size)}")
    state = read_checkpoint(checkpoint)
    weights = state["model"] if pretrain.ema_decay is None else {
        name.removeprefix("module."): value for name, value in state["ema"].items() if name.startswith("module.")}
    model.backbone.load_state_dict({name.removeprefix("backbone."): value for name, value in weights.items()
                                    if name.startswith("backbone.")})


def example_inputs(config: RunConfig) -> tuple[Tensor]:
    """One crop (1, 3, H, W) at the configured ``crop_size``."""
    return (torch.zeros(1, 3, *settings(config).crop_size),)


def examples(model: nn.Module, config: RunConfig, count: int) -> dict[str, Tensor]:
    """``count`` test frames spread evenly over the configured folder's test split (all of them if it
    has fewer): ``images`` (n, 3, H, W) in [0, 1], ``pred_vertices`` and ``target_vertices`` (n, V, 3),
    metres, pelvis-relative; ``camera`` (n, 3, 3) the crops' intrinsics and ``root`` (n, 3) the true
    pelvis in the camera frame, metres (the model predicts no translation), to draw both meshes over
    the crop (`hmrlab.viz.overlay_mesh` of ``vertices + root``)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    samples, _ = _samples(config, settings(config).dir, "test")
    picks = torch.linspace(0, len(samples) - 1, min(count, len(samples))).round().long().tolist()
    batch = default_collate([samples[i] for i in picks])
    predicted, targets = _predict(model, [batch])
    return {"images": batch["image"], "pred_vertices": predicted, "target_vertices": targets,
            "camera": batch["camera"], "root": batch["joints_3d"][:, 0]}


# ----------------------------------------------------------------------------------------------------
# Training outside a configured run (notebook 05): the 2D pretraining and the end-to-end model


def _pretrain_step(model: Pretrain2D, batch: Mapping[str, Tensor]) -> Tensor:
    return pretrain_loss(model(batch["image"]), batch["keypoints"], batch["visible"], model.flow)


def pretrain_2d(
    model: Pretrain2D, crops: Dataset, *, epochs: int, batch_size: int = 16, lr: float = 4e-3, seed: int = 0,
    checkpoint: str | os.PathLike | None = None, progress: bool = False,
) -> History:
    """Pretrain a `Pretrain2D` on `CocoCrops` with `pretrain_loss` and AdamW (the paper: lr 4e-3, Sec. IV-B).

    A thin call of `hmrlab.training.loop.fit` (shuffled batches from a seeded generator, so a run is
    reproducible and resumable from `checkpoint`). Returns its `History`.
    """
    loader = DataLoader(crops, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return fit(model, _pretrain_step, loader, epochs=epochs, lr=lr, seed=seed, checkpoint=checkpoint,
               progress=progress)




def train_keypoint_hmr(
    model: KeypointHMR, samples: Dataset, template: KeypointTemplate, *, epochs: int, batch_size: int = 8,
    lr: float = 1e-4, epsilon: Sequence[float] = EPSILON, val_samples: Dataset | None = None, seed: int = 0,
    checkpoint: str | os.PathLike | None = None, progress: bool = False,
) -> History:
    """Train `KeypointHMR` end to end on image samples with SMPL targets (Eq. 9), Adam (Sec. IV-B: lr 1e-4).

    `samples` yield dicts with ``image`` (3, H, W) at the model's ``image_size``, ``pose`` (72,) axis-angle
    in the camera frame and ``betas`` (10,): `hmrlab.data.datasets.MeshSamples` built with
    ``crop_size=model.image_size``. `template` makes the keypoint targets (`mesh_targets`); its
    ``num_keypoints`` must be the model's. Each epoch logs the loss, its four terms and the MPJPE of
    the mesh's joints in millimetres (``train_mpjpe``, and ``val_...`` with `val_samples`).
    """
    if template.num_keypoints != model.kem.num_keypoints:
        raise ValueError(
            f"the template has {template.num_keypoints} keypoints but the model predicts {model.kem.num_keypoints}; "
            "build KeypointHMR(num_keypoints=template.num_keypoints)"
        )
    loader = DataLoader(samples, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = None if val_samples is None else DataLoader(val_samples, batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    step = functools.partial(keypoint_hmr_step, template=template, epsilon=epsilon)
    return fit(model, step, loader, epochs=epochs, optimizer=optimizer, lr=lr, val_data=val, seed=seed,
               checkpoint=checkpoint, progress=progress)


TASK = Task(
    models={"KeypointHMR": KeypointHMR},
    build_datasets=build_datasets,
    loss=loss,
    metrics={},
    evaluate=evaluate,
    best_metric="val_mpjpe",
    default_model_args=lambda config: {"image_size": settings(config).crop_size,
                                       "backbone": backbone(settings(config).crop_size)},
    data=MeshData,
    benchmark=benchmark,
    example_inputs=example_inputs,
    examples=examples,
    floor=floor,
    initialise=initialise,
)

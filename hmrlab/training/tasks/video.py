"""Video mesh recovery on clips: LIFD-HMR (`hmrlab.models.lifd_hmr.LIFDHMR`) trained end to end.

A clip of T frames, all cropped about the person with one box (`hmrlab.data.datasets.VideoClips`),
and the 2D Human3.6M joints of every frame go in; the middle frame's mesh (13,718 vertices of the
free body model) comes out. The paper feeds 16-frame clips at 224x224 through a pretrained
ResNet-50 and 2D joints from a detector (as PMCE does); here the backbone is randomly initialised
(no weights offline), smaller crops and clips keep a CPU run short, and the 2D joints are the
ground truth's, projected by the crop's camera (`hmrlab.data.datasets.clip_targets`), optionally with Gaussian noise.
Images go in as read, in [0, 1]: a backbone trained from scratch needs no ImageNet normalisation.

The configuration's ``data`` keys are the fields of `VideoData`. Two sources of training clips
(``data.format``): ``"3dpw"``, clips of the train sequences of the 3DPW-format ``data.dir`` (every
``stride`` frames), validated on its test sequences; ``"clips"``, SynthClips
(`hmrlab.data.synth_clips`: every clip its own body, motion, camera and look), ``data.train_count``
clips under ``data.clips_dir/<T>f-<H>x<W>-seed<seed>/train`` and ``data.val_count`` under ``.../val`` (rendered
when missing, resumed when interrupted, cached; `hmrlab.data.datasets.SynthClips`), the training
clips augmented (one draw per clip, `hmrlab.data.augment`) unless ``data.augment`` is false.
The loss also logs ``mpjpe`` (mm, the middle frame's joints regressed from the mesh against the
target's, both pelvis-relative), so validation reports ``val_mpjpe``, which picks the best epoch.
Whatever the format, `evaluate` and `benchmark` score 3DPW-format
test splits. `benchmark` predicts every frame of every test actor from a clip centred on it
(`hmrlab.data.datasets.CentredClips`, the ends padded by repeating the first/last frame, as
VideoPose3D and `hmrlab.models.mixste.lift_sequence` pad) and scores the meshes with 3DPW's protocol
(`hmrlab.evaluation.pw3d_split.score_frames`).

**Floor.** `floor` scores the constant prediction, the mean training body (`hmrlab.data.mean_body`:
the chordal mean of every training frame's camera-frame rotations, per joint, and the mean betas,
over the 3DPW-format train sequences or the SynthClips training clips), with `benchmark`'s table;
validation also logs ``val_floor_mpjpe`` (the constant's middle-frame MPJPE, as ``val_mpjpe``)
beside the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hmrlab import metrics, paths
from hmrlab.data import smpl_targets
from hmrlab.data.augment import Augmentation
from hmrlab.data.datasets import CentredClips, ClipSamples, SynthClips, VideoClips, WithConstants
from hmrlab.data.mean_body import mean_axis_angle
from hmrlab.data.mean_body import mean_mesh as mean_meshes  # the tasks' mean_mesh reads their own data
from hmrlab.data.synth_clips import DEFAULT_SEED, generate_clips
from hmrlab.evaluation import pw3d_split
from hmrlab.models.lifd_hmr import lifd_hmr
from hmrlab.training.config import (
    RunConfig,
    boolean,
    choice,
    data_settings,
    integer,
    non_negative_float,
    path,
    pixel_side_or_pair,
    positive_float,
    positive_int,
    setting,
)
from hmrlab.training.loop import to_device
from hmrlab.training.task import Task
from hmrlab.training.tasks.mesh import VAL_SEED_OFFSET

# PMCE-style L1 terms, all weighted 1: the full mesh, the coarse mesh, the joints regressed from
# the mesh, and the pose estimator's joints of every frame (see `loss`).
LOSS_WEIGHTS = {"mesh": 1.0, "coarse_mesh": 1.0, "joints": 1.0, "poses_3d": 1.0}
FORMATS = ("3dpw", "clips")


@dataclass(frozen=True)
class VideoData:
    """The video task's ``data`` settings, all optional (`settings` reads them from a configuration)."""

    dir: Path = setting(paths.SYNTH_3DPW, path, (
        "a 3DPW-format folder (the default is the shipped SynthHuman set); format '3dpw' trains on its "
        "train sequences and validates on its test sequences; every format benchmarks on its test sequences"))
    clip_length: int = setting(8, positive_int, "frames per clip T (the model's frames follows it; the paper: 16)")
    stride: int = setting(4, positive_int, (
        "frames between the starts of training clips of format '3dpw' (validation clips do not overlap)"))
    crop_size: tuple[int, int] = setting((96, 96), pixel_side_or_pair, (
        "the crop's side, or [height, width], in pixels (the paper: 224)"))
    scale: float = setting(1.25, positive_float, "the crop box's enlargement around the person (as VideoClips)")
    noise: float = setting(0.0, non_negative_float, (
        "standard deviation in crop pixels of Gaussian noise added to the training clips' 2D joints "
        "(validation and the benchmark always see the exact ground-truth 2D)"))
    format: str = setting("3dpw", choice(FORMATS), (
        "'3dpw': train on dir's train sequences, validate on its test sequences; 'clips': train and "
        "validate on SynthClips sets under clips_dir (evaluate still scores dir's test split)"))
    clips_dir: Path = setting(Path("build/synth/clips"), path, (
        "where the SynthClips train/ and val/ sets live (relative to the working directory); made by "
        "hmrlab.data.synth_clips.generate_clips at clip_length and crop_size when missing"))
    train_count: int = setting(1000, positive_int, "SynthClips training clips (format 'clips')")
    val_count: int = setting(100, positive_int, "SynthClips validation clips (format 'clips')")
    seed: int = setting(DEFAULT_SEED, integer, (
        "the SynthClips training set's seed; validation uses seed + VAL_SEED_OFFSET (keep both off the "
        "benchmark set's seed 0)"))
    render_workers: int = setting(2, positive_int, "processes rendering SynthClips shards")
    augment: bool = setting(True, boolean, (
        "augment the SynthClips training clips (hmrlab.data.augment.Augmentation(), one draw per clip for "
        "all its frames: jitter, rotation, flip, colour, occlusion); 3DPW-format and validation clips "
        "never are"))


def settings(config: RunConfig) -> VideoData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(VideoData, config, "video")


def _clips(
    config: RunConfig, split: str, centred: bool = False, folder: Path | None = None
) -> VideoClips | CentredClips:
    """The configured clips of ``folder`` (default ``data.dir``): `CentredClips` or `VideoClips`
    (every ``stride`` frames for ``"train"``, non-overlapping for ``"test"``)."""
    options = settings(config)
    folder = options.dir if folder is None else Path(folder)
    sequences = pw3d_split.load_split(folder, split)
    sizes = {"clip_length": options.clip_length, "crop_size": options.crop_size, "scale": options.scale}
    if centred:
        return CentredClips(sequences, folder / "imageFiles", **sizes)
    stride = options.stride if split == "train" else options.clip_length
    return VideoClips(sequences, folder / "imageFiles", stride=stride, **sizes)


def _synth_clips(config: RunConfig, split: str, augment: bool = False) -> SynthClips:
    """The configured SynthClips ``"train"`` or ``"val"`` set, rendered first if missing or unfinished."""
    options = settings(config)
    seed = options.seed + (VAL_SEED_OFFSET if split == "val" else 0)
    count = options.train_count if split == "train" else options.val_count
    height, width = options.crop_size
    name = f"{options.clip_length}f-{height}x{width}-seed{options.seed}"  # one folder per set: none overwrites another
    folder = generate_clips(options.clips_dir / name / split, count=count, clip_length=options.clip_length,
                            crop_size=options.crop_size, seed=seed, workers=options.render_workers,
                            progress=config.progress)
    return SynthClips(folder, scale=options.scale, augment=Augmentation() if augment else None)


def _raw_datasets(config: RunConfig) -> tuple[VideoClips | SynthClips, VideoClips | SynthClips]:
    """Training and validation clips of the configured format (module docstring), before `ClipSamples`."""
    options = settings(config)
    if options.format == "clips":
        return _synth_clips(config, "train", options.augment), _synth_clips(config, "val")
    return _clips(config, "train"), _clips(config, "test")


def training_parameters(clips: VideoClips | CentredClips | SynthClips) -> tuple[Tensor, Tensor]:
    """The camera-frame SMPL poses (N, 72) and betas (N, 10) of every training frame, read without
    images or augmentation: every frame of every actor of a `VideoClips`' sequences, or of every
    `SynthClips` clip."""
    if isinstance(clips, SynthClips):
        poses, betas = clips.arrays["pose"], clips.arrays["betas"]
        betas = np.repeat(betas, poses.shape[1], axis=0)
    else:
        poses = np.concatenate([targets["pose"] for _, _, targets in clips.actors])
        betas = np.concatenate([np.tile(actor.betas, (len(targets["pose"]), 1)) for _, actor, targets in clips.actors])
    return (torch.as_tensor(poses, dtype=torch.float32).reshape(-1, 72),
            torch.as_tensor(betas, dtype=torch.float32))


def mean_body(clips: VideoClips | CentredClips | SynthClips) -> tuple[Tensor, Tensor]:
    """The constant prediction: pose (72,) (per-joint chordal mean of the camera-frame rotations of
    the `training_parameters`) and betas (10,) (their mean over those frames)."""
    poses, betas = training_parameters(clips)
    return mean_axis_angle(poses.reshape(-1, 24, 3)).reshape(72), betas.mean(0)


def _constant_mesh(pose: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """Vertices (V, 3) and Human3.6M joints (17, 3) of one SMPL body, relative to its pelvis (joint 0)."""
    vertices = smpl_targets.smpl_meshes(pose[None], betas[None])
    joints = smpl_targets.h36m_joints(vertices)
    return (vertices - joints[:, :1])[0], (joints - joints[:, :1])[0]


def build_datasets(config: RunConfig) -> tuple[WithConstants, WithConstants]:
    """Training and validation clips of the configured format (format '3dpw': clips of the ``train``
    sequences every ``stride`` frames and non-overlapping clips of the ``test`` sequences; 'clips':
    the SynthClips sets), as `ClipSamples`; every item also carries ``floor_joints`` (17, 3), the mean
    training body's (`mean_body`), for ``floor_mpjpe``."""
    train, val = _raw_datasets(config)
    _, floor_joints = _constant_mesh(*mean_body(train))
    return (WithConstants(ClipSamples(train, settings(config).noise), floor_joints=floor_joints),
            WithConstants(ClipSamples(val), floor_joints=floor_joints))


def _relative(points: Tensor, joints: Tensor) -> Tensor:
    """Points (B, N, 3) relative to the pelvis of joints (B, J, 3)."""
    return points - joints[:, :1]


def loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """PMCE-style L1 losses on a batch of `ClipSamples`, weighted by `LOSS_WEIGHTS`.

    ``mesh``: the full mesh (B, 13718, 3) of the middle frame; ``coarse_mesh``: LDMP's coarse mesh
    (B, 431, 3); ``joints``: the 17 joints regressed from the mesh, each relative to the predicted
    pelvis (the regressed joint 0); ``poses_3d``: the pose estimator's joints of every frame
    (B, T, 17, 3), relative to each frame's pelvis. Targets pelvis-relative (`clip_targets`), metres.
    Also logs ``mpjpe``: mm, the middle frames' joints regressed from the predicted meshes against the
    target's, pelvis-aligned; logged by the loss rather than a separate metric, so that validation
    runs the network once a batch.
    """
    out = model(batch["images"], batch["keypoints_2d"])
    middle = batch["joints"][:, batch["joints"].shape[1] // 2]
    terms = {
        "mesh": F.l1_loss(_relative(out.vertices, out.joints), batch["vertices"]),
        "coarse_mesh": F.l1_loss(_relative(out.coarse_vertices, out.joints), batch["coarse_vertices"]),
        "joints": F.l1_loss(_relative(out.joints, out.joints), middle),
        "poses_3d": F.l1_loss(out.poses_3d - out.poses_3d[:, :, :1], batch["joints"]),
    }
    mpjpe = 1000 * metrics.mpjpe(out.joints.detach(), middle, root=0)
    return {"loss": sum(LOSS_WEIGHTS[name] * value for name, value in terms.items()), **terms, "mpjpe": mpjpe}


def floor_mpjpe(model: nn.Module, batch: dict[str, Tensor]) -> float:
    """The loss' ``mpjpe`` of the constant prediction (the batch's ``floor_joints``, `build_datasets`);
    the model is not run."""
    target = batch["joints"][:, batch["joints"].shape[1] // 2]
    return 1000 * float(metrics.mpjpe(batch["floor_joints"].to(target), target, root=0))


def _predict(model: nn.Module, samples: ClipSamples, batch_size: int, items: list[int] | None = None):
    """Pelvis-relative predicted and target middle-frame meshes (N, V, 3), and the batches' other
    middle-frame entries: ``images`` (N, 3, H, W), ``camera`` (N, 3, 3) and ``root`` (N, 3)."""
    device = next(model.parameters()).device
    subset = samples if items is None else torch.utils.data.Subset(samples, items)
    predicted, targets, extra = [], [], {"images": [], "camera": [], "root": []}
    for batch in DataLoader(subset, batch_size=batch_size):
        out = model(*(to_device(batch[key], device) for key in ("images", "keypoints_2d")))
        predicted.append(_relative(out.vertices, out.joints).cpu())
        targets.append(batch["vertices"])
        extra["images"].append(batch["images"][:, batch["images"].shape[1] // 2])
        extra["camera"].append(batch["camera"])
        extra["root"].append(batch["root"])
    return torch.cat(predicted), torch.cat(targets), {key: torch.cat(value) for key, value in extra.items()}


def benchmark(model: nn.Module, config: RunConfig, folder: Path) -> pd.DataFrame:
    """3DPW's table (`pw3d_split.score_frames`) of every frame of every test actor of a 3DPW-format
    ``folder``, each predicted from the `CentredClips` clip centred on it (the configured clip
    length, crop and scale), fed the ground-truth 2D joints."""
    clips = _clips(config, "test", centred=True, folder=folder)
    with torch.no_grad():
        predicted, targets, _ = _predict(model, ClipSamples(clips), config.batch_size)
    return pw3d_split.score_frames(clips.keys, predicted, targets)


def evaluate(model: nn.Module, config: RunConfig) -> pd.DataFrame:
    """`benchmark` on the configured data folder's test sequences."""
    return benchmark(model, config, settings(config).dir)


def _relative_meshes(poses: Tensor, betas: Tensor) -> Tensor:
    """Meshes (N, V, 3) of poses (N, 72) and betas (N, 10), each relative to its pelvis (Human3.6M
    joint 0, as `clip_targets`)."""
    meshes = smpl_targets.smpl_meshes(poses, betas)
    return meshes - smpl_targets.h36m_joints(meshes)[:, :1]


def _frame_meshes(clips: VideoClips | CentredClips) -> Tensor:
    """Every frame's target mesh (N, V, 3) of every actor of ``clips``' sequences, in actor and frame
    order, pelvis-relative (`_relative_meshes`)."""
    return torch.cat([
        _relative_meshes(torch.as_tensor(targets["pose"], dtype=torch.float32),
                         torch.as_tensor(actor.betas, dtype=torch.float32).expand(len(targets["pose"]), -1))
        for _, actor, targets in clips.actors
    ])


def mean_mesh(clips: VideoClips | SynthClips) -> Tensor:
    """The mean (V, 3) of every training frame's mesh (`training_parameters`), relative to its
    Human3.6M pelvis (as `clip_targets`)."""
    return mean_meshes(*training_parameters(clips), pelvis="h36m")


def floor(config: RunConfig, folder: str | Path | None = None, constant: str = "body") -> pd.DataFrame:
    """`benchmark`'s table (mm) of a constant prediction on every test frame of a 3DPW-format
    ``folder`` (default ``data.dir``; with format '3dpw' its test split validates): ``constant="body"``
    the mean training body (`mean_body` of the configured training clips, either format), ``"mesh"``
    the mean of the training frames' meshes (`mean_mesh`, as `hmrlab.training.tasks.mesh.floor`)."""
    if constant not in ("body", "mesh"):
        raise ValueError(f"constant must be 'body' or 'mesh'; got {constant!r}")
    train, _ = _raw_datasets(config)
    vertices = _constant_mesh(*mean_body(train))[0] if constant == "body" else mean_mesh(train)
    clips = _clips(config, "test", centred=True, folder=folder)
    targets = _frame_meshes(clips)  # CentredClips keys list these actors' frames in the same order
    return pw3d_split.score_frames(clips.keys, vertices.expand_as(targets), targets)


def example_inputs(config: RunConfig) -> tuple[Tensor, Tensor]:
    """One clip (1, T, 3, H, W) and its 2D joints (1, T, 17, 2): what the model reads per forward pass."""
    options = settings(config)
    frames = options.clip_length
    return torch.zeros(1, frames, 3, *options.crop_size), torch.zeros(1, frames, 17, 2)


def examples(model: nn.Module, config: RunConfig, count: int) -> dict[str, Tensor]:
    """``count`` test frames spread evenly over the test actors: ``images`` (n, 3, H, W) in [0, 1]
    (the middle frames of their centred clips), ``pred_vertices`` and ``target_vertices`` (n, V, 3),
    metres, pelvis-relative; ``camera`` (n, 3, 3) the crops' intrinsics and ``root`` (n, 3) the true
    pelvis in the camera frame (LIFD-HMR predicts no translation), to draw the meshes over the crops."""
    if count < 1:
        raise ValueError(f"count must be at least 1; got {count}")
    samples = ClipSamples(_clips(config, "test", centred=True))
    items = np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int).tolist()
    with torch.no_grad():
        predicted, targets, extra = _predict(model, samples, config.batch_size, items)
    return {"pred_vertices": predicted, "target_vertices": targets, **extra}


TASK = Task(
    models={"LIFDHMR": lifd_hmr},
    build_datasets=build_datasets,
    loss=loss,
    metrics={"floor_mpjpe": floor_mpjpe},
    evaluate=evaluate,
    best_metric="val_mpjpe",
    default_model_args=lambda config: {"frames": settings(config).clip_length},
    data=VideoData,
    benchmark=benchmark,
    example_inputs=example_inputs,
    examples=examples,
    floor=floor,
)

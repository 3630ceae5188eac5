"""Single-image mesh recovery on 3DPW-format folders: the keypoints-guided lightweight HMR
(`hmrlab.models.keypoint_hmr.KeypointHMR`) trained end to end on person crops.

The configuration's ``data`` keys are the fields of `MeshData`. Training uses every frame of the
folder's train sequences (`hmrlab.data.datasets.MeshSamples`) with Eq. 9's loss; the targets (the
paper's 91 keypoints, θ, β, twist) come from each frame's SMPL parameters through the model's body
model (`keypoint_hmr.mesh_targets`). The loss also logs
``mpjpe`` (mm, the mesh's 24 body-model joints against the target body's, both pelvis-relative), so
validation on the test sequences' frames gives ``val_mpjpe``, the metric that picks the best epoch.
`evaluate` and `benchmark` score every test frame with 3DPW's protocol (`pw3d_split.score_frames`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, default_collate

from hmrlab import paths
from hmrlab.data import smpl_targets
from hmrlab.data.datasets import MeshSamples
from hmrlab.evaluation import pw3d_split
from hmrlab.models.keypoint_hmr import (
    EPSILON,
    KeypointHMR,
    Pretrain2D,
    keypoint_hmr_step,
    pretrain_loss,
)
from hmrlab.nn.keypoints import KeypointTemplate, keypoint_template
from hmrlab.training.config import (
    RunConfig,
    data_settings,
    path,
    pixel_pair,
    positive_float,
    setting,
)
from hmrlab.training.loop import History, fit
from hmrlab.training.task import Task

TEMPLATE = "paper91"  # SMPL's 24 joints + 67 surface markers (Sec. III-B); KeypointHMR's default K = 91


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


def settings(config: RunConfig) -> MeshData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(MeshData, config, "mesh")


def _samples(config: RunConfig, folder: Path, split: str) -> tuple[MeshSamples, list[str]]:
    """The crops of ``folder``'s ``split`` at the configured size, and each item's "<sequence>/<actor>"."""
    options = settings(config)
    sequences = pw3d_split.load_split(folder, split)
    samples = MeshSamples(sequences, folder / "imageFiles", crop_size=options.crop_size, scale=options.scale)
    # MeshSamples numbers the actors sequence by sequence, in the order of `sequences`.
    actor_keys = [f"{name}/{a}" for name, sequence in sequences.items() for a in range(len(sequence.actors))]
    return samples, [actor_keys[a] for a, _ in samples.index]


def build_datasets(config: RunConfig) -> tuple[MeshSamples, MeshSamples]:
    """Crops of the configured folder's train and test sequences (`MeshSamples`)."""
    folder = settings(config).dir
    return _samples(config, folder, "train")[0], _samples(config, folder, "test")[0]


def loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Eq. 9 and its terms on a batch of crops, plus ``mpjpe`` (mm, the mesh's 24 body-model joints,
    pelvis-relative): `keypoint_hmr_step` with the paper's 91-keypoint template of the body model.
    Logged by the loss rather than a separate metric, so validation runs the network once a batch."""
    return keypoint_hmr_step(model, batch, keypoint_template(TEMPLATE))


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


def example_inputs(config: RunConfig) -> tuple[Tensor]:
    """One crop (1, 3, H, W) at the configured ``crop_size``."""
    return (torch.zeros(1, 3, *settings(config).crop_size),)


def examples(model: nn.Module, config: RunConfig, count: int) -> dict[str, Tensor]:
    """``count`` test frames spread evenly over the configured folder's test split (all of them if it
    has fewer): ``images`` (n, 3, H, W) in [0, 1], ``pred_vertices`` and ``target_vertices`` (n, V, 3),
    metres, pelvis-relative."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    samples, _ = _samples(config, settings(config).dir, "test")
    picks = torch.linspace(0, len(samples) - 1, min(count, len(samples))).round().long().tolist()
    batch = default_collate([samples[i] for i in picks])
    predicted, targets = _predict(model, [batch])
    return {"images": batch["image"], "pred_vertices": predicted, "target_vertices": targets}


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
    default_model_args=lambda config: {"image_size": settings(config).crop_size},
    data=MeshData,
    benchmark=benchmark,
    example_inputs=example_inputs,
    examples=examples,
)

"""2D-to-3D pose lifting on Human3.6M-format files: MixSTE and RTPCA trained sequence to sequence.

The configuration's ``data`` keys are the fields of `LiftingData`. Validation uses the test
subjects' clips (MPJPE in mm); `evaluate` lifts every whole test sequence
(`hmrlab.models.mixste.lift_sequence`) and reports Human3.6M's protocols (`hmrlab.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from hmrlab import evaluation, metrics, paths
from hmrlab.data.datasets import LiftingWindows, h36m_lifting_sequences
from hmrlab.data.h36m import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, load_h36m
from hmrlab.data.synth import load_h36m_cameras
from hmrlab.evaluation import pw3d_split
from hmrlab.models import mixste, rtpca
from hmrlab.training.config import (
    RunConfig,
    boolean,
    data_settings,
    names,
    path,
    positive_int,
    setting,
    text,
)
from hmrlab.training.task import Task


@dataclass(frozen=True)
class LiftingData:
    """The lifting task's ``data`` settings, all optional (`settings` reads them from a configuration)."""

    dir: Path = setting(paths.SYNTH_H36M, path, (
        "a folder with VideoPose3D's data_3d_h36m.npz, data_2d_h36m_<keypoints>.npz and cameras.json "
        "(the default is the small synthetic set shipped with the package; make a larger one with "
        "python -m hmrlab.data --out DIR --full)"))
    keypoints: str = setting("gt", text, (
        'which 2D file, data_2d_h36m_<keypoints>.npz: "gt", "synth_det" or e.g. "cpn_ft_h36m_dbb"'))
    frames: int = setting(27, positive_int, "the clip length F (the model's frames follows it)")
    train_subjects: tuple[str, ...] = setting(H36M_TRAIN_SUBJECTS, names, (
        "the subjects of the training clips (those the files lack are skipped)"))
    test_subjects: tuple[str, ...] = setting(H36M_TEST_SUBJECTS, names, (
        "the subjects of validation and `evaluate` (those the files lack are skipped)"))
    stride: int | None = setting(None, positive_int, (
        "frames between training clips' centres (default: frames, non-overlapping clips)"))
    flip_test: bool = setting(True, boolean, "average with the mirrored input at evaluation and benchmark")

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.frames)  # frozen: the documented default, set once


def settings(config: RunConfig) -> LiftingData:
    """``config.data`` checked and completed (`hmrlab.training.config.data_settings`)."""
    return data_settings(LiftingData, config, "lifting")


def load_sequences(config: RunConfig, split: str) -> dict[tuple[str, str, int], tuple[Any, Any]]:
    """``{(subject, action, camera): (poses_2d, poses_3d)}`` of the configured data's ``"train"`` or
    ``"test"`` subjects (those present in the files)."""
    options = settings(config)
    folder = options.dir
    path_2d = folder / f"data_2d_h36m_{options.keypoints}.npz"
    data = load_h36m(folder / "data_3d_h36m.npz", path_2d)
    wanted = getattr(options, f"{split}_subjects")
    subjects = [s for s in wanted if s in data.positions_3d]
    if not subjects:
        raise ValueError(f"{str(folder)!r} has none of the {split} subjects {list(wanted)}; it has "
                         f"{sorted(data.positions_3d)}. Set data.{split}_subjects in the configuration")
    return h36m_lifting_sequences(data, load_h36m_cameras(folder / "cameras.json"), subjects)


def build_datasets(config: RunConfig) -> tuple[LiftingWindows, LiftingWindows]:
    """Training clips (random flips) and validation clips of the test subjects, (F, 17, 2) -> (F, 17, 3)."""
    options = settings(config)
    frames = options.frames
    train = LiftingWindows(list(load_sequences(config, "train").values()), frames, stride=options.stride,
                           seq2seq=True, flip=True)
    val = LiftingWindows(list(load_sequences(config, "test").values()), frames, stride=frames, seq2seq=True)
    return train, val


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MixSTE's loss (`hmrlab.models.mixste.lifting_loss`) on a batch of clips."""
    inputs, target = batch
    return mixste.lifting_loss(model(inputs), target)


def clip_mpjpe(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Root-aligned MPJPE in mm over the clips of a batch."""
    inputs, target = batch
    return 1000 * float(metrics.mpjpe(model(inputs), target, root=0))


def evaluate(model: nn.Module, config: RunConfig) -> pd.DataFrame:
    """Human3.6M protocols (`hmrlab.evaluation.h36m_protocols`) on every whole test sequence."""
    device = next(model.parameters()).device
    flip = settings(config).flip_test
    predictions, targets = {}, {}
    for key, (poses_2d, poses_3d) in load_sequences(config, "test").items():
        lifted = mixste.lift_sequence(model, torch.as_tensor(poses_2d, device=device), flip=flip)
        predictions[key] = (lifted - lifted[:, :1]).cpu().numpy()  # root-relative, like the targets
        targets[key] = poses_3d
    return evaluation.h36m_protocols(predictions, targets)


def benchmark(model: nn.Module, config: RunConfig, folder: Path) -> pd.DataFrame:
    """3DPW's protocol without MPVPE (`hmrlab.evaluation.pw3d_joint_protocol`) on the test sequences
    of a 3DPW-format folder, lifting their ground-truth 2D joints (`hmrlab.evaluation.pw3d_split`)."""
    device = next(model.parameters()).device
    flip = settings(config).flip_test
    predictions, targets = {}, {}
    for key, (poses_2d, joints_3d) in pw3d_split.lifting_sequences(folder).items():
        predictions[key] = mixste.lift_sequence(model, poses_2d.to(device), flip=flip).cpu().numpy()
        targets[key] = joints_3d.numpy()
    return evaluation.pw3d_joint_protocol(predictions, targets)


def example_inputs(config: RunConfig) -> tuple[torch.Tensor]:
    """One clip of 2D poses (1, F, 17, 2): what the model lifts per forward pass."""
    return (torch.zeros(1, settings(config).frames, 17, 2),)


TASK = Task(
    models={"MixSTE": mixste.MixSTE, "RTPCA": rtpca.RTPCA},
    build_datasets=build_datasets,
    loss=loss,
    metrics={"mpjpe": clip_mpjpe},
    evaluate=evaluate,
    best_metric="val_mpjpe",
    default_model_args=lambda config: {"frames": settings(config).frames},
    data=LiftingData,
    benchmark=benchmark,
    example_inputs=example_inputs,
)

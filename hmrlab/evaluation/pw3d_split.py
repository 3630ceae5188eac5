"""The 3DPW-format test split every model of the collection is scored on (notebooks 09 and 10).

A folder laid out as 3DPW: ``sequenceFiles/{train,test}/<sequence>.pkl`` and
``imageFiles/<sequence>/image_00000.jpg``: the shipped SynthHuman set (`hmrlab.paths.SYNTH_3DPW`, two short
sequences), the notebooks' full-mode set (`make_benchmark_set`), any other SynthHuman set
(`hmrlab.data.synth_images.generate_3dpw_like`), or the real 3DPW. The mesh tasks train on its
``train`` sequences; every task's ``benchmark`` scores its ``test`` sequences with 3DPW's protocol
(`hmrlab.evaluation.pw3d_protocol`: the 14 LSP joints regressed from the mesh, mid-hip centred),
one row per actor ("<sequence>/<actor>") plus "Average" and "All frames".

Targets are the meshes of the files' SMPL parameters through the body model (`hmrlab.data.smpl_targets.smpl_meshes`), with
the global orientation turned into the camera frame, so every model is compared on the same
vertices. Joint-only models (the lifters) get the Human3.6M joints regressed from those meshes,
projected by the sequence's camera (`lifting_sequences`), and are scored without MPVPE
(`hmrlab.evaluation.pw3d_joint_protocol`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from hmrlab import evaluation, paths
from hmrlab.data.datasets import camera_frame_targets, normalize_screen_coordinates
from hmrlab.data.pw3d import PW3DSequence, load_3dpw
from hmrlab.data.safe_files import read_image
from hmrlab.data.smpl_targets import h36m_joints, posed_smpl, smpl_arrays
from hmrlab.data.synth_images import generate_3dpw_like

SPLITS = ("train", "test")
BENCHMARK_SET = {"sequences": 24, "frames_per_sequence": 96, "image_size": (240, 180)}
"""The notebooks' full-mode set: 12 train and 12 test sequences of 96 frames (3.2 s), 240x180 pixels."""


def make_benchmark_set(out_dir: str | os.PathLike, *, seed: int = 0, progress: bool = True) -> Path:
    """Generate (or find, cached by its manifest) the `BENCHMARK_SET` SynthHuman 3DPW-format folder."""
    return generate_3dpw_like(out_dir, seed=seed, progress=progress, **BENCHMARK_SET)


def load_split(folder: str | os.PathLike, split: str) -> dict[str, PW3DSequence]:
    """The sequences of ``folder/sequenceFiles/<split>`` (`hmrlab.data.load_3dpw`), by name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    files = Path(folder).expanduser() / "sequenceFiles" / split
    if not files.is_dir():
        raise FileNotFoundError(
            f"{files} does not exist; data.dir must be a 3DPW-format folder (sequenceFiles/, imageFiles/), "
            f"e.g. {paths.SYNTH_3DPW} or one made by python -m hmrlab.data --out build/synth --full"
        )
    return load_3dpw(files)


def score_frames(keys: Sequence[str], pred_vertices: Tensor, target_vertices: Tensor) -> pd.DataFrame:
    """3DPW's protocol of per-frame meshes (N, V, 3), metres, grouped into sequences by ``keys`` (N,)
    (frames in time order within each key): `hmrlab.evaluation.pw3d_protocol` in mm."""
    if not (len(keys) == len(pred_vertices) == len(target_vertices)):
        raise ValueError(f"need one key per frame; got {len(keys)} keys, {len(pred_vertices)} and "
                         f"{len(target_vertices)} meshes")
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    pred = {key: pred_vertices[rows].numpy() for key, rows in groups.items()}
    target = {key: target_vertices[rows].numpy() for key, rows in groups.items()}
    return evaluation.pw3d_protocol(pred, target, smpl_arrays()["J_regressor_h36m"])


def image_size(folder: str | os.PathLike, sequence: str) -> tuple[int, int]:
    """(width, height) of the sequence's first image."""
    path = Path(folder).expanduser() / "imageFiles" / sequence / "image_00000.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; the folder must hold imageFiles/<sequence>/image_00000.jpg")
    height, width = read_image(path, "3DPW image").shape[:2]
    return width, height


def lifting_sequences(folder: str | os.PathLike, split: str = "test") -> dict[str, tuple[Tensor, Tensor]]:
    """``{"<sequence>/<actor>": (poses_2d (T, 17, 2), joints_3d (T, 17, 3))}`` for 2D-to-3D lifters.

    joints_3d: the Human3.6M joints of the target meshes in the camera frame, metres, relative to the
    pelvis; poses_2d: their projections by the sequence's intrinsics in normalised screen coordinates
    (`hmrlab.data.datasets.normalize_screen_coordinates` with the image's size), i.e. ground-truth 2D.
    """
    sequences = load_split(folder, split)
    out = {}
    for name, sequence in sequences.items():
        width, height = image_size(folder, name)
        for a, actor in enumerate(sequence.actors):
            targets = camera_frame_targets(sequence, actor)
            pose = torch.as_tensor(targets["pose"], dtype=torch.float32)
            betas = torch.as_tensor(actor.betas, dtype=torch.float32).expand(len(pose), -1)
            vertices, smpl_joints = posed_smpl(pose, betas)
            # Place the mesh where the files put the body: its root joint at the camera-frame root.
            offset = torch.as_tensor(targets["joints_3d"][:, :1], dtype=torch.float32) - smpl_joints[:, :1]
            joints = h36m_joints(vertices + offset)
            projected = joints @ torch.as_tensor(sequence.cam_intrinsics, dtype=torch.float32).T
            pixels = projected[..., :2] / projected[..., 2:]
            out[f"{name}/{a}"] = (normalize_screen_coordinates(pixels, width, height), joints - joints[:, :1])
    return out

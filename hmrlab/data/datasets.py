"""Torch datasets for 2D-to-3D lifting, after VideoPose3D's ``common/generators.py`` (Pavllo et al., CVPR 2019).

A lifting model sees a window of R 2D poses (R odd, the receptive field) and predicts the 3D pose of
the centre frame, or of every frame of the window (sequence-to-sequence, as MixSTE does). Windows
near a sequence's ends are padded by repeating the first or last frame, as VideoPose3D does.

2D inputs are in **normalized screen coordinates** (`normalize_screen_coordinates`): pixels scaled
so the image width maps to [-1, 1], keeping the aspect ratio; 3D targets are in the camera frame,
metres, relative to the root joint (pelvis, joint 0 of `H36M_17`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from hmrlab.body.skeletons import H36M_17
from hmrlab.data.cameras import Y_UP_TO_Z_UP, Camera
from hmrlab.data.h36m import H36MData
from hmrlab.validation import format_shape

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _screen_offset(X: Array, w: int, h: int) -> Array:
    offset = (1.0, h / w)
    return torch.tensor(offset, dtype=X.dtype, device=X.device) if isinstance(X, torch.Tensor) else np.asarray(offset)


def _check_last_dim_2(X: np.ndarray | torch.Tensor, name: str) -> None:
    if X.ndim < 1 or X.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., 2) in pixels (u, v); got {format_shape(tuple(X.shape))}")


def normalize_screen_coordinates(X: Array, w: int, h: int) -> Array:
    """Pixels (..., 2) -> normalized screen coordinates (..., 2): ``x / w * 2 - 1``, ``y / w * 2 - h / w``.

    VideoPose3D's convention: the width maps to [-1, 1] and y is scaled by the same factor (so the
    aspect ratio is kept and y spans [-h/w, h/w]). numpy or torch in, the same out.
    """
    _check_last_dim_2(X, "X")
    return X * (2.0 / w) - _screen_offset(X, w, h)


def image_coordinates(X: Array, w: int, h: int) -> Array:
    """Normalized screen coordinates (..., 2) -> pixels (..., 2), the inverse of `normalize_screen_coordinates`."""
    _check_last_dim_2(X, "X")
    return (X + _screen_offset(X, w, h)) * (w / 2.0)


def _check_pair(poses_2d: np.ndarray, poses_3d: np.ndarray, index: int) -> None:
    if poses_2d.ndim != 3 or poses_2d.shape[-1] != 2 or poses_3d.ndim != 3 or poses_3d.shape[-1] != 3:
        raise ValueError(
            f"pair {index}: poses_2d must be (T, J, 2) and poses_3d (T, J, 3); "
            f"got {format_shape(poses_2d.shape)} and {format_shape(poses_3d.shape)}"
        )
    if poses_2d.shape[:2] != poses_3d.shape[:2] or len(poses_2d) == 0:
        raise ValueError(
            f"pair {index}: poses_2d and poses_3d need the same T >= 1 frames and J joints; "
            f"got {format_shape(poses_2d.shape)} and {format_shape(poses_3d.shape)}"
        )


class LiftingWindows(Dataset):
    """Windows of 2D poses centred on every `stride`-th frame, with their 3D targets.

    `pairs`: (poses_2d (T, J, 2) normalized screen coordinates, poses_3d (T, J, 3) camera-frame
    root-relative metres) per sequence and camera. Item i is ``(inputs (R, J, 2), target)`` float32
    tensors with ``R = receptive_field`` (odd): the frames ``t - (R-1)/2 .. t + (R-1)/2`` around the
    centre frame t, the first or last frame repeated beyond the sequence (VideoPose3D's edge padding).
    The target is the 3D pose of frame t (J, 3), or of the whole window (R, J, 3) with `seq2seq`.
    Centre frames are ``0, stride, 2 stride, ...`` of each sequence: ceil(T / stride) items.

    Flip augmentation mirrors the person: x is negated in 2D and 3D (both are centred on the image
    centre or root, so this is a reflection) and left and right joints are swapped with
    `flip_permutation` (default `H36M_17.flip_permutation`). `flip` flips each item with probability
    1/2 (drawn from `generator`; leave it None with a multi-worker DataLoader, which seeds each
    worker's global generator, whereas a shared `generator` would be copied into every worker and
    give them all the same draws), `flip_all` flips every item (for test-time augmentation).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
        receptive_field: int,
        *,
        stride: int = 1,
        seq2seq: bool = False,
        flip: bool = False,
        flip_all: bool = False,
        flip_permutation: Sequence[int] | np.ndarray | None = None,
        generator: torch.Generator | None = None,
    ):
        if receptive_field < 1 or receptive_field % 2 == 0:
            raise ValueError(
                f"receptive_field must be odd and >= 1 (a window centred on a frame); got {receptive_field}"
            )
        if stride < 1:
            raise ValueError(f"stride must be at least 1; got {stride}")
        if flip and flip_all:
            raise ValueError("choose flip (random, for training) or flip_all (every item), not both")
        self.pad = (receptive_field - 1) // 2
        self.seq2seq, self.flip, self.flip_all, self.generator = seq2seq, flip, flip_all, generator
        self.sequences: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.index: list[tuple[int, int]] = []  # (sequence, centre frame) per item
        for i, (poses_2d, poses_3d) in enumerate(pairs):
            poses_2d, poses_3d = np.asarray(poses_2d, dtype=np.float32), np.asarray(poses_3d, dtype=np.float32)
            _check_pair(poses_2d, poses_3d, i)
            edge = ((self.pad, self.pad), (0, 0), (0, 0))
            padded = (np.pad(poses_2d, edge, mode="edge"), np.pad(poses_3d, edge, mode="edge"))
            self.sequences.append((torch.from_numpy(padded[0]), torch.from_numpy(padded[1])))
            self.index.extend((i, t) for t in range(0, len(poses_2d), stride))
        if not self.sequences:
            raise ValueError("pairs is empty; pass at least one (poses_2d, poses_3d) sequence")
        joints = self.sequences[0][0].shape[1]
        if any(s[0].shape[1] != joints for s in self.sequences):
            raise ValueError("every pair must have the same number of joints J")
        permutation = H36M_17.flip_permutation if flip_permutation is None else np.asarray(flip_permutation)
        if sorted(permutation.tolist()) != list(range(joints)):
            raise ValueError(f"flip_permutation must be a permutation of range({joints}); got {list(permutation)}")
        self.flip_permutation = torch.as_tensor(permutation)

    def __len__(self) -> int:
        return len(self.index)

    def mirror(self, poses: torch.Tensor) -> torch.Tensor:
        """Left-right mirror of poses (..., J, C): x negated, left and right joints swapped."""
        mirrored = poses[..., self.flip_permutation, :].clone()
        mirrored[..., 0] *= -1
        return mirrored

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        sequence, centre = self.index[item]
        poses_2d, poses_3d = self.sequences[sequence]
        # padded frame centre + pad is the window's middle, so the window starts at padded index `centre`
        window = slice(centre, centre + 2 * self.pad + 1)
        inputs = poses_2d[window]
        target = poses_3d[window] if self.seq2seq else poses_3d[centre + self.pad]
        if self.flip_all or (self.flip and torch.rand((), generator=self.generator) < 0.5):
            inputs, target = self.mirror(inputs), self.mirror(target)
        return inputs, target


def h36m_lifting_pairs(
    data: H36MData,
    cameras: dict[str, list[Camera]],
    subjects: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(poses_2d (T, 17, 2) normalized screen coordinates, poses_3d (T, 17, 3) camera-frame metres,
    root-relative) for every subject, action and camera of `data`, in that order; `LiftingWindows` takes them.

    `data` comes from `hmrlab.data.h36m.load_h36m` with a 2D file: the ground truth
    (``data_2d_h36m_gt.npz``) or detections (``data_2d_h36m_synth_det.npz``, ``..._cpn_ft_h36m_dbb.npz``):
    the choice of keypoints is the choice of that file. `cameras` maps each subject to its cameras in
    the 2D file's order (`hmrlab.data.synth.load_h36m_cameras`). The world poses, in Human3.6M's z-up
    frame, are turned into hmrlab's y-up world and then into each camera's frame (``R X + t``), the
    pelvis subtracted (VideoPose3D zeroes the root the same way); 2D is normalized by each camera's
    image size.
    """
    if data.positions_2d is None:
        raise ValueError(
            "data has no 2D keypoints; load it with a 2D file, e.g. load_h36m(path_3d, 'data_2d_h36m_gt.npz')"
        )
    subjects = list(data.positions_3d) if subjects is None else list(subjects)
    missing = [s for s in subjects if s not in data.positions_3d or s not in cameras]
    if missing:
        raise ValueError(f"subjects {missing} lack 3D poses or cameras; data has {sorted(data.positions_3d)}, "
                         f"cameras {sorted(cameras)}")
    pairs = []
    for subject in subjects:
        for action, world_file in data.positions_3d[subject].items():
            world = world_file.astype(np.float64) @ Y_UP_TO_Z_UP  # z-up file frame -> y-up: X_y = Y^T X_z
            keypoints = data.positions_2d[subject][action]
            if len(keypoints) != len(cameras[subject]):
                raise ValueError(f"{subject} {action!r}: {len(keypoints)} 2D views but {len(cameras[subject])} cameras")
            for camera, poses_2d in zip(cameras[subject], keypoints):
                in_camera = camera.to_camera(world)
                root_relative = in_camera - in_camera[:, :1]
                width, height = camera.image_size
                normalized = normalize_screen_coordinates(poses_2d, width, height)
                pairs.append((normalized.astype(np.float32), root_relative.astype(np.float32)))
    return pairs

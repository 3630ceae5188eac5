"""Torch datasets for 2D-to-3D lifting, after VideoPose3D's ``common/generators.py`` (Pavllo et al., CVPR 2019).

A lifting model sees a window of R 2D poses (R odd, the receptive field) and predicts the 3D pose of
the centre frame, or of every frame of the window (sequence-to-sequence, as MixSTE does). Windows
near a sequence's ends are padded by repeating the first or last frame, as VideoPose3D does.

2D inputs are in **normalized screen coordinates** (`normalize_screen_coordinates`): pixels scaled
so the image width maps to [-1, 1], keeping the aspect ratio; 3D targets are in the camera frame,
metres, relative to the root joint (pelvis, joint 0 of `H36M_17`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hmrlab.body.skeletons import H36M_17
from hmrlab.data.augment import Augmentation, augment_crop
from hmrlab.data.cameras import Y_UP_TO_Z_UP, Camera
from hmrlab.data.coco import CocoKeypoints
from hmrlab.data.crops import apply_affine, person_crop
from hmrlab.data.h36m import H36MData
from hmrlab.data.pw3d import PW3DActor, PW3DSequence
from hmrlab.data.safe_files import read_image
from hmrlab.data.smpl_targets import h36m_joints, posed_smpl, smpl_arrays
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle, mirror_poses
from hmrlab.validation import check_flip_permutation, format_shape

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
        permutation = H36M_17.flip_permutation if flip_permutation is None else flip_permutation
        self.flip_permutation = torch.as_tensor(check_flip_permutation(permutation, joints))

    def __len__(self) -> int:
        return len(self.index)

    def mirror(self, poses: torch.Tensor) -> torch.Tensor:
        """Left-right mirror of poses (..., J, C) with this dataset's `flip_permutation` (`mirror_poses`)."""
        return mirror_poses(poses, self.flip_permutation)

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


def h36m_lifting_sequences(
    data: H36MData,
    cameras: dict[str, list[Camera]],
    subjects: Sequence[str] | None = None,
) -> dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]]:
    """``{(subject, action, camera index): (poses_2d, poses_3d)}`` for every subject, action and
    camera of `data`, in that order: poses_2d (T, 17, 2) normalized screen coordinates, poses_3d
    (T, 17, 3) camera-frame metres, root-relative. `LiftingWindows` takes the values; the keys are
    what `hmrlab.evaluation.h36m_protocols` groups by.

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
    sequences = {}
    for subject in subjects:
        for action, world_file in data.positions_3d[subject].items():
            world = world_file.astype(np.float64) @ Y_UP_TO_Z_UP  # z-up file frame -> y-up: X_y = Y^T X_z
            keypoints = data.positions_2d[subject][action]
            if len(keypoints) != len(cameras[subject]):
                raise ValueError(f"{subject} {action!r}: {len(keypoints)} 2D views but {len(cameras[subject])} cameras")
            for index, (camera, poses_2d) in enumerate(zip(cameras[subject], keypoints)):
                in_camera = camera.to_camera(world)
                root_relative = in_camera - in_camera[:, :1]
                width, height = camera.image_size
                normalized = normalize_screen_coordinates(poses_2d, width, height)
                sequences[subject, action, index] = (normalized.astype(np.float32), root_relative.astype(np.float32))
    return sequences


def h36m_lifting_pairs(
    data: H36MData,
    cameras: dict[str, list[Camera]],
    subjects: Sequence[str] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The values of `h36m_lifting_sequences`: (poses_2d, poses_3d) pairs for `LiftingWindows`."""
    return list(h36m_lifting_sequences(data, cameras, subjects).values())


def camera_frame_targets(sequence: PW3DSequence, actor: PW3DActor) -> dict[str, np.ndarray]:
    """Per-frame targets of one 3DPW actor in the camera frame: ``pose`` (T, 72) with the global
    orientation turned into the camera frame (``R_cam R_root``, as SPIN's and VIBE's 3DPW
    preprocessing do), ``joints_3d`` (T, 24, 3) metres (``R X + t``), ``joints_2d`` (T, 24, 2)
    pixels (``K X_cam``) and ``box`` (T, 4) the box (x_min, y_min, x_max, y_max) around those and
    the detected keypoints with confidence > 0."""
    rotation, t = sequence.cam_poses[:, :3, :3], sequence.cam_poses[:, :3, 3]
    joints_3d = np.einsum("tij,tkj->tki", rotation, actor.joints) + t[:, None]
    projected = joints_3d @ sequence.cam_intrinsics.T
    joints_2d = projected[..., :2] / projected[..., 2:]
    pose = actor.poses.reshape(-1, 24, 3).copy()
    root = torch.from_numpy(rotation) @ axis_angle_to_matrix(torch.from_numpy(pose[:, 0]))
    pose[:, 0] = matrix_to_axis_angle(root).numpy()
    boxes = []
    for points, keypoints in zip(joints_2d, actor.keypoints_2d):
        points = np.concatenate([points, keypoints[keypoints[:, 2] > 0, :2]])
        boxes.append(np.concatenate([points.min(0), points.max(0)]))
    return {"pose": pose.reshape(-1, 72), "joints_3d": joints_3d, "joints_2d": joints_2d, "box": np.stack(boxes)}


def _checked_image_root(image_root: str | os.PathLike, sequences: Mapping[str, PW3DSequence]) -> Path:
    image_root = Path(image_root).expanduser()
    for name in sequences:
        first = image_root / name / "image_00000.jpg"
        if not first.is_file():
            raise FileNotFoundError(
                f"{first} does not exist; image_root must be 3DPW's imageFiles folder, "
                "holding <sequence>/image_00000.jpg"
            )
    return image_root


class PW3DCrops(Dataset):
    """Shared by `MeshSamples` and the clip datasets: targets of every actor (``actors``: (sequence
    name, actor, camera-frame targets)), image reading and cropping about the person."""

    def __init__(
        self, sequences: Mapping[str, PW3DSequence], image_root: str | os.PathLike, crop_size: tuple[int, int],
        scale: float,
    ):
        if not sequences:
            raise ValueError("sequences is empty; pass load_3dpw(<folder of sequenceFiles>)")
        if len(crop_size) != 2 or min(crop_size) < 1 or scale <= 0:
            raise ValueError(f"crop_size must be (height, width) >= 1 and scale > 0; got {crop_size}, {scale}")
        self.image_root = _checked_image_root(image_root, sequences)
        self.crop_size, self.scale = tuple(crop_size), scale
        # (sequence name, actor, camera-frame targets) per actor
        self.actors = [
            (name, actor, camera_frame_targets(sequence, actor))
            for name, sequence in sequences.items()
            for actor in sequence.actors
        ]
        self.intrinsics = {name: sequence.cam_intrinsics for name, sequence in sequences.items()}

    def _crop(self, name: str, frame: int, box: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Frame `frame` of sequence `name` cropped about `box` (4,): (3, H, W) float32 in [0, 1], (2, 3) affine."""
        rgb = read_image(self.image_root / name / f"image_{frame:05d}.jpg", f"3DPW frame {frame} of {name}")
        crop, affine = person_crop(rgb, box, size=self.crop_size, scale=self.scale)
        return torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0, affine

    def _targets(self, actor: PW3DActor, targets: dict[str, np.ndarray], frames: Any, affine: np.ndarray,
                 name: str) -> dict[str, torch.Tensor]:
        crop_from_image = np.vstack([affine, [0.0, 0.0, 1.0]])
        joints_2d = targets["joints_2d"][frames] @ affine[:, :2].T + affine[:, 2]
        arrays = {
            "pose": targets["pose"][frames],
            "betas": actor.betas,
            "joints_3d": targets["joints_3d"][frames],
            "joints_2d": joints_2d,
            "camera": crop_from_image @ self.intrinsics[name],
            "affine": affine,
        }
        return {key: torch.as_tensor(value, dtype=torch.float32) for key, value in arrays.items()}

    def clip(self, a: int, frames: np.ndarray) -> dict[str, torch.Tensor]:
        """Frames ``frames`` (T,) of actor ``a`` cropped with one box, the union of their boxes (so the
        camera does not jump inside a clip), and their targets: the items of `VideoClips`."""
        name, actor, targets = self.actors[a]
        boxes = targets["box"][frames]
        box = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])
        crops = [self._crop(name, int(frame), box) for frame in frames]
        images = torch.stack([crop for crop, _ in crops])
        return {"images": images, **self._targets(actor, targets, frames, crops[0][1], name)}


class MeshSamples(PW3DCrops):
    """Single frames of 3DPW(-like) sequences, cropped about the person, for image-to-mesh models (HMR, SPIN).

    `sequences` from `hmrlab.data.pw3d.load_3dpw`, `image_root` the ``imageFiles`` folder. One item
    per actor and frame whose camera pose is valid (``campose_valid``), a dict of float32 tensors:
    ``image`` (3, H, W) in [0, 1] at `crop_size` = (H, W), the box around the person's keypoints
    made square-ish to the crop's aspect and enlarged by `scale` (`hmrlab.data.crops.person_crop`);
    ``pose`` (72,) SMPL axis-angle with the global orientation in the camera frame; ``betas`` (10,);
    ``joints_3d`` (24, 3) SMPL joints in the camera frame, metres (from the loader's body model);
    ``joints_2d`` (24, 2) their projections in crop pixels; ``camera`` (3, 3) the intrinsics of the
    crop, ``A K`` with the crop's affine A (so ``camera @ joints_3d`` projects to ``joints_2d``);
    ``affine`` (2, 3) from image pixels to crop pixels.

    ``augment``: an `hmrlab.data.augment.Augmentation` to perturb every item (crop jitter, rotation,
    flip, colour, occlusion; targets kept exact, `hmrlab.data.augment.augment_crop`), drawn from a
    numpy generator seeded by torch's global one (which the training loop and DataLoader workers
    seed); None (the default): the plain crop.
    """

    def __init__(
        self,
        sequences: Mapping[str, PW3DSequence],
        image_root: str | os.PathLike,
        *,
        crop_size: tuple[int, int] = (224, 224),
        scale: float = 1.25,
        augment: Augmentation | None = None,
    ):
        super().__init__(sequences, image_root, crop_size, scale)
        self.augment = augment
        self.index = [
            (a, int(frame))
            for a, (_, actor, _) in enumerate(self.actors)
            for frame in np.flatnonzero(actor.campose_valid)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        a, frame = self.index[item]
        name, actor, targets = self.actors[a]
        if self.augment is None:
            image, affine = self._crop(name, frame, targets["box"][frame])
            return {"image": image, **self._targets(actor, targets, frame, affine, name)}
        rgb = read_image(self.image_root / name / f"image_{frame:05d}.jpg", f"3DPW frame {frame} of {name}")
        x0, y0, x1, y1 = targets["box"][frame]
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
        out = augment_crop(rgb, self.intrinsics[name], targets["joints_3d"][frame], targets["pose"][frame], corners,
                           self.crop_size, self.scale, _item_rng(), self.augment)
        return _augmented_item(out, actor.betas)


def _item_rng() -> np.random.Generator:
    """A numpy generator for one item's augmentation, seeded from torch's global generator."""
    return np.random.default_rng(int(torch.randint(2**62, ())))


def _augmented_item(out: dict[str, np.ndarray], betas: np.ndarray) -> dict[str, torch.Tensor]:
    """`augment_crop`'s result as a `MeshSamples` item (float32 tensors, image (3, H, W) in [0, 1]).
    A flipped item's joints are the body model's at the mirrored pose, placed at the mirrored pelvis,
    so that ``joints_3d`` stays the body model's own joints of ``pose`` and ``betas``."""
    item = {"image": torch.from_numpy(out["image"]).permute(2, 0, 1).float() / 255.0}
    for key in ("pose", "joints_3d", "joints_2d", "camera", "affine"):
        item[key] = torch.as_tensor(out[key], dtype=torch.float32)
    item["betas"] = torch.as_tensor(betas, dtype=torch.float32)
    if out["flipped"]:
        _, joints = posed_smpl(item["pose"][None], item["betas"][None])
        item["joints_3d"] = joints[0] - joints[0, :1] + item["joints_3d"][:1]
        projected = item["joints_3d"] @ item["camera"].T
        item["joints_2d"] = projected[:, :2] / projected[:, 2:]
    return {key: item[key] for key in ("image", "pose", "betas", "joints_3d", "joints_2d", "camera", "affine")}


class _GeneratedSet(Dataset):
    """What `SynthCrops` and `SynthClips` share: a generated set's ``config`` and ``arrays`` (read into
    memory), the ``crop_size`` (H, W) and ``scale`` items are cut at (the set's unless given), and
    the ``augment`` applied to them (None: none)."""

    def __init__(self, loaded: tuple[dict, dict], augment: Augmentation | None,
                 crop_size: tuple[int, int] | None, scale: float | None):
        self.config, self.arrays = loaded
        self.crop_size = tuple(self.config["crop_size"]) if crop_size is None else tuple(crop_size)
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (height, width) >= 1; got {crop_size}")
        self.scale = float(self.config["scale"]) if scale is None else float(scale)
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0; got {scale}")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.arrays["images"])


class SynthCrops(_GeneratedSet):
    """SynthCrops samples (`hmrlab.data.synth_crops`: one body, pose, camera and look per sample), as
    `MeshSamples` items: the same keys, shapes and units, ``affine`` from canvas to crop pixels.

    `folder`: a complete set (`hmrlab.data.synth_crops.generate_crops`), read into memory once
    (uint8 canvases: 43 KB a sample at 96x96 with the default pad). The crop is cut from the canvas
    about the box of the 24 joints and 18 keypoints enlarged by the set's scale, as `MeshSamples`
    cuts a 3DPW frame; without ``augment`` that is the canvas' centre, copied without resampling.
    ``augment``: as `MeshSamples`' (an `hmrlab.data.augment.Augmentation`, or None). ``crop_size``
    defaults to the set's, ``scale`` to the set's (1.25); another size resamples, a larger scale
    reaches into the canvas' margin (beyond it the crop is black).
    """

    def __init__(self, folder: str | os.PathLike, *, augment: Augmentation | None = None,
                 crop_size: tuple[int, int] | None = None, scale: float | None = None):
        from hmrlab.data.synth_crops import load_crops

        super().__init__(load_crops(folder), augment, crop_size, scale)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        a = self.arrays
        points = np.concatenate([a["joints_2d"][item], a["keypoints_2d"][item]]).astype(np.float64)
        out = augment_crop(a["images"][item], a["camera"][item].astype(np.float64),
                           a["joints_3d"][item].astype(np.float64), a["pose"][item], points, self.crop_size,
                           self.scale, _item_rng() if self.augment is not None else None, self.augment)
        return _augmented_item(out, a["betas"][item])


class VideoClips(PW3DCrops):
    """Clips of `clip_length` consecutive frames of 3DPW(-like) sequences, for video models (VIBE, TCMR).

    Clips start at frames 0, `stride`, 2 `stride`, ... of each actor and are kept when they fit in the
    sequence and every frame's camera pose is valid. All frames of a clip are cropped with one box,
    the union of the per-frame boxes of `MeshSamples`, so the camera does not jump inside a clip.
    Items are dicts of float32 tensors: ``images`` (T, 3, H, W) in [0, 1]; per frame ``pose`` (T, 72),
    ``joints_3d`` (T, 24, 3) metres, ``joints_2d`` (T, 24, 2) crop pixels; per clip ``betas`` (10,),
    ``camera`` (3, 3) and ``affine`` (2, 3) as in `MeshSamples`.
    """

    def __init__(
        self,
        sequences: Mapping[str, PW3DSequence],
        image_root: str | os.PathLike,
        *,
        clip_length: int = 16,
        stride: int = 8,
        crop_size: tuple[int, int] = (224, 224),
        scale: float = 1.25,
    ):
        if clip_length < 1 or stride < 1:
            raise ValueError(f"clip_length and stride must be at least 1; got {clip_length}, {stride}")
        super().__init__(sequences, image_root, crop_size, scale)
        self.clip_length = clip_length
        self.index = [
            (a, start)
            for a, (_, actor, _) in enumerate(self.actors)
            for start in range(0, len(actor.poses) - clip_length + 1, stride)
            if actor.campose_valid[start : start + clip_length].all()
        ]
        if not self.index:
            shortest = min(len(actor.poses) for _, actor, _ in self.actors)
            raise ValueError(
                f"no clip of {clip_length} valid frames fits; the shortest sequence has {shortest} frames. "
                "Pass a smaller clip_length."
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        a, start = self.index[item]
        return self.clip(a, np.arange(start, start + self.clip_length))


def clip_targets(
    pose: Tensor, betas: Tensor, joints_3d: Tensor, camera: Tensor, crop_size: tuple[int, int]
) -> dict[str, Tensor]:
    """LIFD-HMR's inputs and targets of one clip from a `VideoClips` item.

    pose (T, 72) camera-frame SMPL axis-angle, betas (10,), joints_3d (T, 24, 3) the files' SMPL
    joints in the camera frame (metres), camera (3, 3) the crop's intrinsics, crop_size (H, W).
    The target meshes (`posed_smpl`) are moved so that their root joint sits at
    ``joints_3d``'s (as `hmrlab.evaluation.pw3d_split.lifting_sequences` places them), their Human3.6M joints
    projected by ``camera`` and normalised by the crop's size
    (`normalize_screen_coordinates`). Returns ``keypoints_2d`` (T, 17, 2)
    normalised screen coordinates; ``joints`` (T, 17, 3), ``vertices`` (V, 3) of the middle frame
    ``T // 2`` and its ``coarse_vertices`` (431, 3) (the body model's ``downsample`` matrix times
    ``vertices``), metres, each frame relative to its pelvis (Human3.6M joint 0); ``root`` (3,) that
    pelvis of the middle frame in the camera frame (to draw the meshes over the crop).
    """
    frames = len(pose)
    vertices, smpl_joints = posed_smpl(pose, betas.expand(frames, -1))
    vertices = vertices + (joints_3d[:, :1] - smpl_joints[:, :1])
    joints = h36m_joints(vertices)
    projected = joints @ camera.T
    height, width = crop_size
    keypoints_2d = normalize_screen_coordinates(projected[..., :2] / projected[..., 2:], width, height)
    pelvis = joints[:, :1]
    middle = vertices[frames // 2] - pelvis[frames // 2]
    return {"keypoints_2d": keypoints_2d, "joints": joints - pelvis, "vertices": middle,
            "coarse_vertices": torch.as_tensor(smpl_arrays()["downsample"], dtype=middle.dtype) @ middle,
            "root": pelvis[frames // 2, 0]}


class CentredClips(PW3DCrops):
    """One clip per frame of every actor, centred on it: frames ``t - T // 2 ... t + T - 1 - T // 2``,
    those outside the sequence replaced by its first or last frame (VideoPose3D's edge padding), so
    that every frame gets a prediction from the middle of its clip (all frames, whether or not
    their camera pose is marked valid, as `hmrlab.evaluation.pw3d_split` scores them all). Items as `VideoClips`' (one
    crop box, the union of the clip's frames' boxes); ``keys[i]`` is item i's "<sequence>/<actor>".
    """

    def __init__(
        self,
        sequences: Mapping[str, PW3DSequence],
        image_root: str | os.PathLike,
        *,
        clip_length: int = 16,
        crop_size: tuple[int, int] = (224, 224),
        scale: float = 1.25,
    ):
        if clip_length < 1:
            raise ValueError(f"clip_length must be at least 1; got {clip_length}")
        super().__init__(sequences, image_root, crop_size, scale)
        self.clip_length = clip_length
        self.index, self.keys, seen = [], [], {}
        for a, (name, actor, _) in enumerate(self.actors):
            number = seen[name] = seen.get(name, -1) + 1
            self.index += [(a, frame) for frame in range(len(actor.poses))]
            self.keys += [f"{name}/{number}"] * len(actor.poses)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        a, centre = self.index[item]
        offsets = np.arange(self.clip_length) - self.clip_length // 2
        return self.clip(a, np.clip(centre + offsets, 0, len(self.actors[a][1].poses) - 1))


class ClipSamples(Dataset):
    """What LIFD-HMR trains on: the images (T, 3, H, W) in [0, 1] and the crop's ``camera`` (3, 3) of a
    `VideoClips`, `CentredClips` or `SynthClips` item, and its `clip_targets`; ``noise`` pixels of Gaussian noise (torch's global
    generator) are added to the 2D joints before they are normalised (0: the exact ground truth)."""

    def __init__(self, clips: VideoClips | CentredClips | SynthClips, noise: float = 0.0):
        self.clips, self.noise = clips, noise

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        clip = self.clips[item]
        targets = clip_targets(clip["pose"], clip["betas"], clip["joints_3d"], clip["camera"], self.clips.crop_size)
        if self.noise:
            # normalize_screen_coordinates scales pixels by 2 / width in both axes.
            width = self.clips.crop_size[1]
            noise = torch.randn_like(targets["keypoints_2d"]) * (2 * self.noise / width)
            targets["keypoints_2d"] = targets["keypoints_2d"] + noise
        return {"images": clip["images"], "camera": clip["camera"], **targets}


class CocoCrops(Dataset):
    """COCO person keypoints cropped about each person, for 2D keypoint pretraining (`hmrlab.models.keypoint_hmr.Pretrain2D`).

    `coco` from `hmrlab.data.load_coco_keypoints`; `image_root` the folder its ``file_names`` are
    relative to. One item per annotation that is not a crowd and has a labelled keypoint, a dict of
    float32 tensors: ``image`` (3, H, W) in [0, 1] at `crop_size` = (H, W), cropped about the
    annotation's box enlarged by `scale` (`hmrlab.data.crops.person_crop`); ``keypoints`` (17, 2) in
    [-0.5, 0.5] crop units (x / W - 0.5, y / H - 0.5); ``visible`` (17,) 1 where labelled and inside the crop.
    """

    def __init__(
        self, coco: CocoKeypoints, image_root: str | os.PathLike, *, crop_size: tuple[int, int] = (256, 256),
        scale: float = 1.25,
    ):
        self.coco, self.image_root = coco, Path(image_root)
        self.crop_size, self.scale = tuple(crop_size), scale
        self.files = dict(zip(coco.image_ids.tolist(), coco.file_names))
        self.index = [
            i for i in range(len(coco.annotation_ids)) if not coco.iscrowd[i] and (coco.keypoints[i, :, 2] > 0).any()
        ]
        if not self.index:
            raise ValueError("coco holds no non-crowd annotation with a labelled keypoint; nothing to train on")
        missing = [f for f in coco.file_names if not (self.image_root / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) of the COCO file are not under {self.image_root}, e.g. {missing[0]}; "
                "image_root must be the folder the file_names are relative to"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        i = self.index[item]
        rgb = read_image(self.image_root / self.files[int(self.coco.annotation_image_ids[i])], "COCO image")
        x, y, w, h = self.coco.boxes[i]
        crop, affine = person_crop(rgb, np.array([x, y, x + w, y + h]), size=self.crop_size, scale=self.scale)
        height, width = self.crop_size
        points = apply_affine(self.coco.keypoints[i, :, :2], affine) / (width, height) - 0.5
        visible = (self.coco.keypoints[i, :, 2] > 0) & (np.abs(points) <= 0.5).all(-1)
        return {
            "image": torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0,
            "keypoints": torch.as_tensor(points, dtype=torch.float32),
            "visible": torch.as_tensor(visible, dtype=torch.float32),
        }


class WithConstants(Dataset):
    """A dataset whose every item also carries the same named tensors (``constants``), e.g. a
    task's floor (the mean training body's joints) for its loss to log beside the model's error."""

    def __init__(self, dataset: Dataset, **constants: Tensor):
        self.dataset, self.constants = dataset, constants

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        return {**self.dataset[item], **self.constants}


class SynthClips(_GeneratedSet):
    """SynthClips clips (`hmrlab.data.synth_clips`: one body, motion, camera and look per clip), as
    `VideoClips` items, for `ClipSamples`: ``images`` (T, 3, H, W) in [0, 1]; per frame ``pose``
    (T, 72), ``joints_3d`` (T, 24, 3) metres, ``joints_2d`` (T, 24, 2) crop pixels; per clip
    ``betas`` (10,), ``camera`` (3, 3) the crop's intrinsics and ``affine`` (2, 3) from canvas to crop
    pixels.

    `folder`: a complete set (`hmrlab.data.synth_clips.generate_clips`), read into memory once (uint8
    canvases: 691 KB a clip of 16 frames at 96x96 with the default pad). Every frame of a clip is cut
    with one affine, about the box of all its frames' 24 joints and 18 keypoints enlarged by the
    set's scale (as `VideoClips` cuts a 3DPW clip); without ``augment`` that is the canvas' centre,
    copied without resampling. ``augment``: an `hmrlab.data.augment.Augmentation` drawn once per clip
    and applied to every frame alike (`augment_crop` on each frame with generators of one seed, whose
    draws do not depend on the picture): the same jitter, rotation, flip (left and right swapped),
    colour gain and occluder. A flip mirrors ``joints_3d`` (within the body model's 0.1 mm asymmetry
    of its joints at the mirrored ``pose``; `clip_targets` poses the body and keeps only their root).
    ``crop_size`` and ``scale`` default to the set's; another size resamples.
    """

    def __init__(self, folder: str | os.PathLike, *, augment: Augmentation | None = None,
                 crop_size: tuple[int, int] | None = None, scale: float | None = None):
        from hmrlab.data.synth_clips import load_clips

        super().__init__(load_clips(folder), augment, crop_size, scale)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        a = self.arrays
        points = np.concatenate([a["joints_2d"][item], a["keypoints_2d"][item]], 1).reshape(-1, 2).astype(np.float64)
        camera = a["camera"][item].astype(np.float64)
        seed = None if self.augment is None else int(torch.randint(2**62, ()))
        frames = [
            augment_crop(image, camera, joints.astype(np.float64), pose, points, self.crop_size, self.scale,
                         None if seed is None else np.random.default_rng(seed), self.augment)
            for image, joints, pose in zip(a["images"][item], a["joints_3d"][item], a["pose"][item])
        ]
        stacked = {key: np.stack([f[key] for f in frames]) for key in ("image", "pose", "joints_3d", "joints_2d")}
        return {
            "images": torch.from_numpy(stacked.pop("image")).permute(0, 3, 1, 2).float() / 255.0,
            **{key: torch.as_tensor(value, dtype=torch.float32) for key, value in stacked.items()},
            "betas": torch.as_tensor(a["betas"][item], dtype=torch.float32),
            "camera": torch.as_tensor(frames[0]["camera"], dtype=torch.float32),
            "affine": torch.as_tensor(frames[0]["affine"], dtype=torch.float32),
        }

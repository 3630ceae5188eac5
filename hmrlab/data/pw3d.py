"""3DPW sequence files: ``sequenceFiles/{train,validation,test}/<sequence>.pkl``.

The format (von Marcard et al., "Recovering Accurate 3D Human Pose in the Wild Using IMUs and a
Moving Camera", ECCV 2018; the dataset's readme and ``demo.py``): one Python 2 pickle per sequence,
a dict with

- ``sequence`` (str); ``genders``: one 'm' or 'f' per actor (the readme says ``gender``; the files
  say ``genders``);
- per actor (lists with one entry per actor, one or two actors): ``betas`` (10,) SMPL shape,
  ``poses`` (T, 72) SMPL axis-angle at the 30 Hz image rate, ``trans`` (T, 3) metres, ``poses2d``
  (T, 3, 18) image keypoints as rows x, y, confidence in OpenPose's 18-keypoint order
  (`PW3D_KEYPOINTS_2D`), ``campose_valid`` (T,) whether the camera pose is aligned to the image,
  ``jointPositions`` (T, 72) the 24 SMPL joints in world metres, ``poses_60Hz`` / ``trans_60Hz``
  (T60, 72) / (T60, 3) at the IMU rate, ``betas_clothed`` (10,), ``v_template_clothed`` (6890, 3),
  ``texture_maps``;
- per sequence: ``cam_poses`` (T, 4, 4) world-to-camera extrinsics, ``cam_intrinsics`` (3, 3) K,
  ``img_frame_ids`` (T,) indices of the image frames in the 60 Hz streams.

The keys from ``sequence`` to ``campose_valid`` in `REQUIRED_KEYS` are needed to read a file; the
others are checked when present and kept in `PW3DSequence.content`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hmrlab.body import load_body_model
from hmrlab.data.safe_files import (
    checked_array,
    checked_dict,
    existing_file,
    read_pickle,
    require_key,
)
from hmrlab.io import atomic_write

if TYPE_CHECKING:  # smplx loads only where a body model is built
    import smplx

REQUIRED_KEYS = (
    "sequence", "genders", "betas", "poses", "trans", "poses2d", "campose_valid", "cam_poses", "cam_intrinsics",
)
# Per-actor entries: name -> (shape of one actor's array, what it holds); "T" is the image frame count.
_ACTOR_ARRAYS: dict[str, tuple[tuple[int | str, ...], str]] = {
    "betas": (("B",), "SMPL shape coefficients"),
    "poses": (("T", 72), "SMPL axis-angle poses"),
    "trans": (("T", 3), "root translations, metres"),
    "poses2d": (("T", 3, 18), "2D keypoints as rows x, y, confidence"),
    "campose_valid": (("T",), "camera-pose validity flags"),
    "jointPositions": (("T", 72), "24 SMPL joints, world metres"),
    "poses_60Hz": (("T60", 72), "SMPL poses at 60 Hz"),
    "trans_60Hz": (("T60", 3), "translations at 60 Hz"),
    "betas_clothed": (("B",), "SMPL shape of the clothed scan"),
    "v_template_clothed": (("V", 3), "clothed template vertices, metres"),
}
PW3D_KEYPOINTS_2D = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
_FILE = "3DPW sequence file"
_CHUNK = 256  # frames per body-model call: skinning memory grows as frames x vertices x 16


@dataclass
class PW3DActor:
    """One actor of a 3DPW sequence; T image frames at 30 Hz.

    ``poses`` (T, 72) SMPL axis-angle (joint 0 is the global orientation), ``trans`` (T, 3) and
    ``betas`` (B,) as stored; ``gender`` 'm' or 'f'; ``keypoints_2d`` (T, 18, 3) pixels x, y and
    confidence in `PW3D_KEYPOINTS_2D` order; ``campose_valid`` (T,) bool; ``joints`` (T, 24, 3) the
    SMPL joints computed through the body model, world metres; ``stored_joints`` (T, 24, 3) the file's
    ``jointPositions`` or None; ``joint_error`` their mean distance to ``joints`` in metres, or None.
    """

    gender: str
    betas: np.ndarray
    poses: np.ndarray
    trans: np.ndarray
    keypoints_2d: np.ndarray
    campose_valid: np.ndarray
    joints: np.ndarray
    stored_joints: np.ndarray | None
    joint_error: float | None


@dataclass
class PW3DSequence:
    """A 3DPW sequence: ``cam_poses`` (T, 4, 4) world-to-camera, ``cam_intrinsics`` (3, 3) pixels,
    ``actors``, and ``content`` the file's whole dict as read (pass it to `write_3dpw` to write it back)."""

    name: str
    path: Path
    cam_poses: np.ndarray
    cam_intrinsics: np.ndarray
    actors: list[PW3DActor]
    content: dict[str, Any]


def check_3dpw_sequence(content: Any, where: str) -> dict[str, Any]:
    """`content` if it has the 3DPW keys with consistent shapes, else `ValueError` naming `where`.

    Every per-actor list present must have one entry per gender; ``poses``, ``trans``, ``poses2d``,
    ``campose_valid``, ``jointPositions`` and ``cam_poses`` must share the frame count T.
    """
    content = checked_dict(content, where, "a 3DPW sequence with keys " + ", ".join(REQUIRED_KEYS))
    for key in REQUIRED_KEYS:
        require_key(content, key, where, "see hmrlab.data.pw3d for the 3DPW keys")
    if not isinstance(content["sequence"], str) or not content["sequence"]:
        raise ValueError(
            f"{where}: sequence must be the sequence's name (a non-empty str); got {content['sequence']!r:.60}"
        )
    genders = content["genders"]
    if not isinstance(genders, (list, tuple)) or not genders or any(g not in ("m", "f") for g in genders):
        raise ValueError(f"{where}: genders must be a non-empty list of 'm' or 'f', one per actor; got {genders!r}")
    num_frames = len(checked_array(content["cam_poses"], ("T", 4, 4), f"{where}: cam_poses"))
    checked_array(content["cam_intrinsics"], (3, 3), f"{where}: cam_intrinsics")
    for key, (shape, meaning) in _ACTOR_ARRAYS.items():
        if key not in content:
            continue
        per_actor = content[key]
        if not isinstance(per_actor, (list, tuple)) or len(per_actor) != len(genders):
            raise ValueError(
                f"{where}: {key} must be a list of {len(genders)} arrays (one per actor) of {meaning}, each {shape}"
            )
        expected = tuple(num_frames if axis == "T" else axis for axis in shape)
        for actor, array in enumerate(per_actor):
            checked_array(array, expected, f"{where}: {key}[{actor}] ({meaning})")
    return dict(content)


def _smpl_joints(model: smplx.SMPL, betas: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T, 24, 3) SMPL joints for (B,) `betas`, (T, 72) `poses` and (T, 3) `trans`, metres.

    Shape coefficients beyond the model's count are dropped and missing ones are zero, which is
    what a model with fewer or more shape directions computes for them.
    """
    dtype = model.shapedirs.dtype
    shape = np.zeros(model.num_betas)
    shape[: min(len(betas), model.num_betas)] = betas[: model.num_betas]
    joints = []
    with torch.no_grad():
        for start in range(0, len(poses), _CHUNK):
            pose = torch.as_tensor(poses[start : start + _CHUNK], dtype=dtype)
            output = model(
                betas=torch.as_tensor(shape, dtype=dtype).expand(len(pose), -1),
                global_orient=pose[:, :3],
                body_pose=pose[:, 3:],
                transl=torch.as_tensor(trans[start : start + _CHUNK], dtype=dtype),
            )
            joints.append(output.joints[:, :24].numpy())
    return np.concatenate(joints).astype(np.float64) if joints else np.zeros((0, 24, 3))


def _model_for(body_model: smplx.SMPL | Mapping[str, smplx.SMPL], gender: str) -> smplx.SMPL:
    model = body_model.get(gender) if isinstance(body_model, Mapping) else body_model
    if getattr(model, "NUM_BODY_JOINTS", None) != 23:
        raise ValueError(
            f"3DPW poses are SMPL poses (24 joints); body_model must be an SMPL module (or a dict 'm'/'f' -> "
            f"SMPL module) as from hmrlab.body.load_body_model('smpl'); got {type(model).__name__} "
            f"for gender {gender!r}"
        )
    return model


def _read_sequence(path: Path, body_model: smplx.SMPL | Mapping[str, smplx.SMPL]) -> PW3DSequence:
    content = check_3dpw_sequence(read_pickle(path, _FILE), str(path))
    actors = []
    for i, gender in enumerate(content["genders"]):
        betas, poses, trans = (np.asarray(content[key][i], dtype=np.float64) for key in ("betas", "poses", "trans"))
        joints = _smpl_joints(_model_for(body_model, gender), betas, poses, trans)
        stored = None
        if "jointPositions" in content:
            stored = np.asarray(content["jointPositions"][i], dtype=np.float64).reshape(-1, 24, 3)
        actors.append(
            PW3DActor(
                gender=gender,
                betas=betas,
                poses=poses,
                trans=trans,
                keypoints_2d=np.asarray(content["poses2d"][i], dtype=np.float64).transpose(0, 2, 1),
                campose_valid=np.asarray(content["campose_valid"][i]).astype(bool),
                joints=joints,
                stored_joints=stored,
                joint_error=None if stored is None else float(np.linalg.norm(joints - stored, axis=-1).mean()),
            )
        )
    return PW3DSequence(
        name=str(content["sequence"]),
        path=path,
        cam_poses=np.asarray(content["cam_poses"], dtype=np.float64),
        cam_intrinsics=np.asarray(content["cam_intrinsics"], dtype=np.float64),
        actors=actors,
        content=content,
    )


def load_3dpw(
    path: str | os.PathLike, *, body_model: smplx.SMPL | Mapping[str, smplx.SMPL] | None = None
) -> dict[str, PW3DSequence]:
    """Read one 3DPW sequence file, or every ``.pkl`` under a folder (e.g. ``sequenceFiles``), by sequence name.

    Each actor's 24 SMPL joints are computed through `body_model` (default: the free model of
    `hmrlab.body.load_body_model`; or an SMPL module, or a dict 'm'/'f' -> SMPL module for 3DPW's
    gendered fits) and compared with the stored ``jointPositions`` (`PW3DActor.joint_error`). Real
    3DPW numbers need the licensed SMPL models: the poses rotate SMPL's own skeleton, so the free
    model gives a similar but not equal body. Pickles are read with a restricted unpickler
    (`hmrlab.data.safe_files`). Raises `FileNotFoundError` for a missing path or a folder without
    sequence files, `ValueError` naming the file and key for a corrupt file or a wrong layout.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.pkl"))
        if not files:
            raise FileNotFoundError(
                f"no 3DPW sequence files (*.pkl) under {path}; expected sequenceFiles/<split>/<sequence>.pkl"
            )
    else:
        files = [existing_file(path, _FILE)]
    model = load_body_model("smpl") if body_model is None else body_model
    sequences = {}
    for file in files:
        sequence = _read_sequence(file, model)
        if sequence.name in sequences:
            raise ValueError(f"{file} repeats the sequence {sequence.name!r} of {sequences[sequence.name].path}")
        sequences[sequence.name] = sequence
    return sequences


def write_3dpw(path: str | os.PathLike, sequence_dict: Mapping[str, Any]) -> Path:
    """Write a 3DPW sequence dict (keys and shapes as in this module's docstring) as a protocol-2 pickle.

    Protocol 2 is what Python 2, which wrote the original files, reads and writes; the dict is
    checked with `check_3dpw_sequence` first and written atomically. Returns `path`.
    """
    content = check_3dpw_sequence(sequence_dict, "write_3dpw: sequence_dict")
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    return Path(path)

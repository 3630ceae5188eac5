"""SynthHuman: Human3.6M-like lifting data from the free body model, in VideoPose3D's file layout.

`generate_h36m_like` writes, for each subject, one body shape (betas ~ N(0, I)), a few motions of
`hmrlab.data.motions` posed through `hmrlab.body.lbs.BodyModel`, the 17 Human3.6M joints regressed
from the mesh (``J_regressor_h36m``), four cameras placed like Human3.6M's (`h36m_like_cameras`)
and each camera's 2D keypoints, exact and with detector-like noise (`DetectorNoise`). The files are
the ones VideoPose3D (Pavllo et al., CVPR 2019) reads, so a user with the real Human3.6M files
changes a path and nothing else:

- ``data_3d_h36m.npz``: world joints in **metres**, in Human3.6M's **z-up** world frame
  (``X_file = Y_UP_TO_Z_UP X``, see `hmrlab.data.cameras`); `hmrlab.data.h36m.load_h36m` reads it.
- ``data_2d_h36m_gt.npz``: the exact pinhole projections in pixels, one (T, 17, 2) array per camera.
- ``data_2d_h36m_synth_det.npz``: the same with detector noise; the detector's confidences, which
  VideoPose3D's 2D layout has no room for, are in ``data_2d_h36m_synth_det_confidence.npz`` (keys
  ``"S1/Walking 1"``, arrays (4, T, 17) in [0, 1]).
- ``cameras.json``: subject -> the four cameras as VideoPose3D's camera dicts (z-up world,
  millimetres); `load_h36m_cameras` reads them back as `Camera` objects in hmrlab's y-up world.
- ``smpl_params.npz``: the body parameters in hmrlab's y-up world, for mesh tasks
  (`load_smpl_params`).
- ``manifest.json``: the generation config and its hash; the same config is not generated twice.

Action names. Human3.6M names its recordings ``"<Action>"`` and ``"<Action> 1"`` (two trials of
15 scripted actions). Here trials are numbered from 1 (``"Walking 1"``, ``"Walking 2"``), and each
motion of the library takes the Human3.6M action it resembles, or a name in the same style where
Human3.6M has none (`H36M_ACTION_NAMES`). Code that groups by action should use
``name.split(" ")[0]``, which works for both files.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hmrlab.body import body_model_arrays, body_model_file
from hmrlab.body.lbs import BodyModel, blend_shapes, forward_kinematics, pose_feature, regress_joints, skin
from hmrlab.body.skeletons import H36M_17
from hmrlab.data.cameras import Y_UP_TO_Z_UP, Camera, DetectorNoise, h36m_like_cameras
from hmrlab.data.h36m import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, write_h36m
from hmrlab.data.motions import ACTIONS, Motion, generate_motion
from hmrlab.data.safe_files import checked_array, existing_file, read_npz
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.io import atomic_save_npz, atomic_write_text, read_json

H36M_SUBJECTS = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS

# Our actions -> Human3.6M's action names where one matches (Walking; SittingDown; Greeting, which
# is mostly waving; Waiting, standing about; Purchases, reaching for goods; Directions, turning to
# point the way), else a name in Human3.6M's style for a motion it did not record.
H36M_ACTION_NAMES = {
    "walk": "Walking",
    "run": "Running",
    "jump": "Jumping",
    "squat": "Squatting",
    "wave": "Greeting",
    "reach": "Purchases",
    "kick": "Kicking",
    "turn": "Directions",
    "sit_stand": "SittingDown",
    "idle": "Waiting",
}

FILES = (
    "data_3d_h36m.npz",
    "data_2d_h36m_gt.npz",
    "data_2d_h36m_synth_det.npz",
    "data_2d_h36m_synth_det_confidence.npz",
    "cameras.json",
    "smpl_params.npz",
)
MANIFEST = "manifest.json"
FORMAT_VERSION = 1  # bump when the generator changes what a config produces
NUM_BETAS = 10
CAPTURE_SPAN = 3.0  # metres a motion may travel, so it stays well inside the 4.5 m camera ring
QUICK = {"motions_per_subject": 3, "max_frames": 100}
FULL = {"motions_per_subject": 30, "max_frames": None}


def config_hash(config: dict[str, Any]) -> str:
    """The sha256 of a generator config (JSON with sorted keys): what a manifest records."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def is_cached(out_dir: Path, digest: str, files: Iterable[str]) -> bool:
    """Whether ``out_dir`` already holds what a config makes: its ``manifest.json`` records the
    config's `config_hash` ``digest`` and every one of ``files`` (paths relative to ``out_dir``)
    exists. Both generators (this module's and `hmrlab.data.synth_images`) delete the manifest
    before writing and write it last, so a manifest never vouches for half-written files."""
    try:
        manifest = read_json(out_dir / MANIFEST, "SynthHuman manifest")
    except (OSError, ValueError):  # absent, unreadable or corrupt: generate again
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("config_hash") == digest
        and all((out_dir / name).is_file() for name in files)
    )


def _subject_rng(seed: int, subject: str) -> np.random.Generator:
    # Keyed by the subject's name, so S9's data do not change when other subjects are added or removed.
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(subject.encode())]))


def capture_frames(motion: Motion, max_frames: int | None) -> slice:
    """Frames of `motion` kept: the first ones within `CAPTURE_SPAN` of the start on the ground,
    then at most `max_frames` of those, centred (where the action happens)."""
    travel = torch.linalg.norm(motion.transl[:, [0, 2]] - motion.transl[:1, [0, 2]], dim=-1)
    inside = int((travel <= CAPTURE_SPAN).long().cumprod(0).sum())
    count = inside if max_frames is None else min(inside, max_frames)
    start = (inside - count) // 2
    return slice(start, start + count)


def standing_transl(model: BodyModel, betas: torch.Tensor) -> torch.Tensor:
    """(3,) SMPL ``transl`` that moves this body's rest-pose pelvis to above the origin, at the height
    where its soles touch the floor y = 0 (metres)."""
    vertices, joints = model(betas=betas[None])
    pelvis = joints[0, 0]
    return torch.stack([-pelvis[0], -vertices[0, :, 1].min(), -pelvis[2]])


def regress_posed_joints(
    model: BodyModel, regressor: torch.Tensor, betas: torch.Tensor, poses: torch.Tensor, transl: torch.Tensor
) -> torch.Tensor:
    """Joints ``regressor @ M(betas, poses) + transl`` (T, K, 3) metres, skinning only the vertices
    the (K, N) regressor reads (255 of 13,718 for the free model's ``J_regressor_h36m``).

    The same steps as `hmrlab.body.lbs.linear_blend_skinning` for one body shape `betas` (10,) and
    axis-angle `poses` (T, 24, 3), `transl` (T, 3): the skeleton's rest joints need the whole shaped
    mesh, but every other step acts on each vertex alone, so the unread vertices can be left out.
    """
    used = regressor.abs().sum(0).nonzero()[:, 0]
    v_shaped = model.v_template + blend_shapes(betas[None], model.shapedirs)  # (1, N, 3)
    rest_joints = regress_joints(model.J_regressor, v_shaped).expand(len(poses), -1, -1)
    rotmats = axis_angle_to_matrix(poses)
    v_posed = v_shaped[:, used] + blend_shapes(pose_feature(rotmats), model.posedirs[used])
    _, transforms = forward_kinematics(rotmats, rest_joints, model.parents)
    vertices = skin(v_posed, model.weights[used], transforms) + transl[:, None]
    return regress_joints(regressor[:, used], vertices)


def pose_motion(
    model: BodyModel, j_regressor_h36m: torch.Tensor, betas: torch.Tensor, motion: Motion, frames: slice
) -> tuple[torch.Tensor, torch.Tensor]:
    """Human3.6M joints (T, 17, 3) in the y-up world (metres) and the SMPL ``transl`` (T, 3) that puts
    the body there, for the `frames` of `motion` posed on a body of shape `betas` (10,).

    The motion's ``transl`` is the pelvis' offset from standing (`hmrlab.data.motions`); the pelvis
    is placed at the standing height of this body plus that offset, moved on the ground so that the
    clip's path is centred on the origin, where the cameras look.
    """
    poses, offset = motion.poses[frames], motion.transl[frames].clone()
    ground = offset[:, [0, 2]]
    offset[:, [0, 2]] = ground - (ground.amax(0) + ground.amin(0)) / 2
    transl = offset + standing_transl(model, betas)
    return regress_posed_joints(model, j_regressor_h36m, betas, poses, transl), transl


def _trial_names(actions: Sequence[str]) -> list[str]:
    counts: dict[str, int] = {}
    names = []
    for action in actions:
        counts[action] = counts.get(action, 0) + 1
        names.append(f"{H36M_ACTION_NAMES[action]} {counts[action]}")
    return names


def generate_h36m_like(
    out_dir: str | os.PathLike,
    *,
    subjects: Sequence[str] = H36M_SUBJECTS,
    motions_per_subject: int,
    seed: int = 0,
    max_frames: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate SynthHuman's Human3.6M-like set into `out_dir` (module docstring for the files); returns it.

    Per subject: betas (10,) ~ N(0, I), `motions_per_subject` motions at 50 fps cycling through
    `hmrlab.data.motions.ACTIONS` from a random start (names in `H36M_ACTION_NAMES`), each cut to
    the frames within `CAPTURE_SPAN` metres of travel and to at most `max_frames` centred frames;
    four cameras from `h36m_like_cameras` with a per-subject jitter; 2D keypoints (T, 17, 2) pixels
    per camera, exact and through `DetectorNoise()`. Arrays are float32. The same arguments give the
    same arrays (on one machine: float32 sums may round differently on other CPUs); if `out_dir`
    already holds a set made with the same arguments and body model file (the manifest's hash),
    nothing is written. Each subject's data depend only on `seed` and its name.
    """
    subjects = list(subjects)
    if not subjects or len(set(subjects)) != len(subjects) or not all(isinstance(s, str) and s for s in subjects):
        raise ValueError(f"subjects must be distinct non-empty names such as ('S1', 'S5'); got {subjects}")
    if motions_per_subject < 1:
        raise ValueError(f"motions_per_subject must be at least 1; got {motions_per_subject}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be None (whole motions) or at least 1; got {max_frames}")
    detector = DetectorNoise()
    model_file = body_model_file("smpl")
    config = {
        "format_version": FORMAT_VERSION,
        "subjects": subjects,
        "motions_per_subject": motions_per_subject,
        "seed": seed,
        "max_frames": max_frames,
        "detector_noise": asdict(detector),
        "body_model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
    }
    out_dir = Path(out_dir)
    digest = config_hash(config)
    if is_cached(out_dir, digest, FILES):
        return out_dir

    arrays = body_model_arrays("smpl", model_file)
    model = BodyModel(arrays, num_betas=NUM_BETAS)
    j_regressor_h36m = torch.as_tensor(np.asarray(arrays["J_regressor_h36m"]), dtype=torch.float32)
    positions_3d: dict[str, dict[str, np.ndarray]] = {}
    gt_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    det_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    confidences: dict[str, np.ndarray] = {}
    smpl: dict[str, np.ndarray] = {}
    cameras_json: dict[str, list[dict[str, Any]]] = {}
    bar = tqdm(total=len(subjects) * motions_per_subject, desc="SynthHuman H3.6M", disable=not progress)
    with torch.no_grad():
        for subject in subjects:
            rng = _subject_rng(seed, subject)
            betas = torch.as_tensor(rng.standard_normal(NUM_BETAS), dtype=torch.float32)
            cameras = h36m_like_cameras(4, generator=rng)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            first = int(rng.integers(len(ACTIONS)))
            actions = [ACTIONS[(first + k) % len(ACTIONS)] for k in range(motions_per_subject)]
            cameras_json[subject] = [camera.to_videopose3d_dict() for camera in cameras]
            smpl[f"{subject}/betas"] = betas.numpy()
            positions_3d[subject], gt_2d[subject], det_2d[subject] = {}, {}, {}
            for action, name in zip(actions, _trial_names(actions)):
                motion = generate_motion(action, generator=generator)
                frames = capture_frames(motion, max_frames)
                joints, transl = pose_motion(model, j_regressor_h36m, betas, motion, frames)
                joints = joints.numpy()  # float32, y-up world
                positions_3d[subject][name] = joints @ Y_UP_TO_Z_UP.T.astype(np.float32)
                gt = [camera.project(joints.astype(np.float64)) for camera in cameras]
                noisy = [detector.apply(keypoints, rng, H36M_17.flip_permutation) for keypoints in gt]
                gt_2d[subject][name] = [keypoints.astype(np.float32) for keypoints in gt]
                det_2d[subject][name] = [keypoints.astype(np.float32) for keypoints, _ in noisy]
                confidences[f"{subject}/{name}"] = np.stack([c for _, c in noisy]).astype(np.float32)
                smpl[f"{subject}/{name}/poses"] = motion.poses[frames].numpy()
                smpl[f"{subject}/{name}/transl"] = transl.numpy()
                bar.update()
    bar.close()

    (out_dir / MANIFEST).unlink(missing_ok=True)  # no stale manifest may vouch for half-written files
    write_h36m(out_dir / "data_3d_h36m.npz", positions_3d, out_dir / "data_2d_h36m_gt.npz", gt_2d)
    # write_h36m writes the 3D file beside each 2D one: the second call rewrites the same 3D poses
    write_h36m(out_dir / "data_3d_h36m.npz", positions_3d, out_dir / "data_2d_h36m_synth_det.npz", det_2d)
    atomic_save_npz(out_dir / "data_2d_h36m_synth_det_confidence.npz", compress=True, **confidences)
    atomic_save_npz(out_dir / "smpl_params.npz", compress=True, **smpl)
    atomic_write_text(out_dir / "cameras.json", json.dumps(cameras_json, indent=1))
    manifest = {"config": config, "config_hash": digest, "files": list(FILES)}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return out_dir


def load_h36m_cameras(path: str | os.PathLike, *, ignore_distortion: bool = False) -> dict[str, list[Camera]]:
    """Read a ``cameras.json`` (subject -> list of VideoPose3D camera dicts, z-up world, millimetres)
    into subject -> list of `Camera` in hmrlab's y-up world, metres.

    World points of ``data_3d_h36m.npz`` are in the z-up frame: turn them into this camera's world
    with ``X @ Y_UP_TO_Z_UP`` (row vectors; the inverse rotation) before `Camera.project`.
    `ignore_distortion` is passed to `Camera.from_videopose3d_dict` (real calibrations have lens
    distortion, which the pinhole camera leaves out).
    """
    description = "cameras.json (subject -> list of VideoPose3D camera dicts)"
    path = existing_file(path, description)
    content = read_json(path, description)
    if not isinstance(content, dict) or not all(isinstance(v, list) for v in content.values()):
        raise ValueError(f"{path} must hold a JSON object: subject -> list of camera dicts")
    cameras_by_subject = {}
    for subject, cameras in content.items():
        cameras_by_subject[subject] = []
        for i, camera in enumerate(cameras):
            if not isinstance(camera, dict):
                raise ValueError(
                    f"{path}: {subject}[{i}] must be a VideoPose3D camera dict; got a {type(camera).__name__}"
                )
            try:
                cameras_by_subject[subject].append(
                    Camera.from_videopose3d_dict(camera, ignore_distortion=ignore_distortion)
                )
            except (TypeError, ValueError, KeyError, IndexError, OverflowError) as error:
                raise ValueError(f"{path}: {subject}[{i}] is not a valid camera: {error}") from error
    return cameras_by_subject


def load_smpl_params(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Read ``smpl_params.npz`` into subject -> {"betas": (10,), "actions": {action: {"poses": (T, 24, 3)
    axis-angle, "transl": (T, 3) metres}}}; `hmrlab.body.lbs.BodyModel` with these gives the mesh in
    hmrlab's y-up world (``global_orient = poses[:, 0]``, ``body_pose = poses[:, 1:]``)."""
    subjects: dict[str, dict[str, Any]] = {}
    for key, array in read_npz(path, "SynthHuman smpl_params.npz").items():
        parts = key.split("/")
        where = f"{path}: {key}"
        if len(parts) == 2 and parts[1] == "betas":
            subjects.setdefault(parts[0], {"actions": {}})["betas"] = checked_array(array, ("B",), where)
        elif len(parts) == 3 and parts[2] in ("poses", "transl"):
            entry = subjects.setdefault(parts[0], {"actions": {}})
            shape = ("T", 24, 3) if parts[2] == "poses" else ("T", 3)
            entry["actions"].setdefault(parts[1], {})[parts[2]] = checked_array(array, shape, where)
        else:
            raise ValueError(f"{path}: unexpected key {key!r}; expected 'S1/betas' or 'S1/<action>/poses|transl'")
    return subjects

"""AMASS motions on the free body model, and Human3.6M-format lifting data made from them.

AMASS (Mahmood et al., ICCV 2019, amass.is.tue.mpg.de) unifies motion-capture archives as SMPL-H
parameters, one ``.npz`` per take, laid out ``<archive>/<performer>/<take>_poses.npz`` (with a
``shape.npz`` per performer). A take holds:

- ``poses`` (N, 156) axis-angle: the root, 21 body joints (SMPL's joints 1-21), then 15 joints per hand
  (left, then right; index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3, smplx's SMPL-H order). The
  SMPL-X release has (N, 165): jaw and eyes come before the hands;
- ``trans`` (N, 3) metres, ``betas`` (16,) SMPL-H shape, ``mocap_framerate`` (Hz; ``mocap_frame_rate``
  in the SMPL-X release), ``gender`` ("male", "female", "neutral"), ``dmpls`` (N, 8) soft-tissue
  coefficients (not used here). The world is **z-up** (the capture floor is z = 0).

`load_amass` maps a take to the 24 SMPL joints of the free model: the root and 21 body joints as
they are, and SMPL's hand joints (22, 23: ``left_hand``, ``right_hand``, at the knuckles) from SMPL-H's
``middle1`` joints, the knuckle joint they sit on; the other finger joints have no SMPL counterpart.
It turns the z-up world into hmrlab's y-up one (`hmrlab.data.cameras.Y_UP_TO_Z_UP`) and can resample
to another frame rate (rotations by spherical interpolation, translations linearly). ``betas`` belong
to SMPL-H's shape space, not the free model's, so they are kept for reference only: bodies are posed
with the free model's shapes, and the root path is kept for the pelvis (the rest pelvis of another
shape sits a few centimetres elsewhere).

`write_h36m_from_amass` writes VideoPose3D's Human3.6M files from AMASS takes, as
`hmrlab.data.synth.generate_h36m_like` does for procedural motions: ``data_3d_h36m.npz``,
``data_2d_h36m_gt.npz``, ``data_2d_h36m_synth_det.npz``, ``cameras.json`` (and ``amass_sources.json``,
which take went where). Train a lifter on it by changing the data path::

    hmrlab train configs/lifting_mixste.yaml --set data.dir=build/amass_h36m
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel, blend_shapes, regress_joints
from hmrlab.body.skeletons import H36M_17
from hmrlab.data.cameras import Y_UP_TO_Z_UP, DetectorNoise, h36m_like_cameras
from hmrlab.data.h36m import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, write_h36m
from hmrlab.data.safe_files import read_npz
from hmrlab.data.synth import CAPTURE_SPAN, regress_posed_joints
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hmrlab.io import atomic_write_text

SMPLH_HAND_JOINTS = tuple(f"{finger}{k}" for finger in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3))
"""SMPL-H's 15 joints of each hand, in the order of AMASS's ``poses`` (smplx's joint names)."""
HAND_START = {156: 22, 165: 25, 72: None}
"""Joint index of the left hand's first joint in ``poses`` of each width (SMPL-H, SMPL-X; SMPL has none)."""
SMPL_HAND_SOURCE = "middle1"
_FILE = "AMASS motion file (<take>_poses.npz)"


@dataclass
class AmassMotion:
    """One AMASS take on SMPL's 24 joints, in hmrlab's y-up world.

    ``poses`` (T, 24, 3) axis-angle (joint 0 the root), ``transl`` (T, 3) metres, ``fps``; ``betas`` and
    ``gender`` as in the file (SMPL-H's, for reference), ``source`` the file, ``name`` its take name.
    """

    name: str
    poses: np.ndarray
    transl: np.ndarray
    fps: float
    betas: np.ndarray
    gender: str
    source: str

    @property
    def num_frames(self) -> int:
        return len(self.poses)


def _scalar_text(value: object) -> str:
    value = np.asarray(value).reshape(-1)[0] if np.size(value) else ""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class _Body:
    model: BodyModel
    regressor: torch.Tensor


def _free_body() -> _Body:
    arrays = body_model_arrays("smpl")
    return _Body(BodyModel(arrays), torch.as_tensor(np.asarray(arrays["J_regressor_h36m"]), dtype=torch.float32))


def rest_pelvis(model: BodyModel, betas: torch.Tensor | None = None) -> np.ndarray:
    """(3,) the rest pose's pelvis joint of `model` for `betas` (default the mean shape), metres."""
    dtype = model.v_template.dtype
    betas = torch.zeros(1, model.num_betas, dtype=dtype) if betas is None else betas.reshape(1, -1).to(dtype)
    with torch.no_grad():
        v_shaped = model.v_template + blend_shapes(betas, model.shapedirs)
        return regress_joints(model.J_regressor, v_shaped)[0, 0].double().numpy()


def change_world(poses: np.ndarray, transl: np.ndarray, rotation: np.ndarray, pelvis: np.ndarray):
    """Poses (T, 24, 3) and translations (T, 3) in the world turned by `rotation` (3, 3): the root becomes
    ``A R`` and the translation ``A (t + p0) - p0`` (SMPL turns the root about the rest pelvis p0)."""
    root = axis_angle_to_matrix(torch.as_tensor(poses[:, 0], dtype=torch.float64)).numpy()
    poses = poses.copy()
    poses[:, 0] = matrix_to_axis_angle(torch.as_tensor(rotation @ root)).numpy()
    return poses, (transl + pelvis) @ rotation.T - pelvis


def resample(poses: np.ndarray, transl: np.ndarray, fps: float, target_fps: float) -> tuple[np.ndarray, np.ndarray]:
    """A motion at `fps` -> `target_fps` over the same time span (frames at ``k / target_fps``): each
    joint's rotation by spherical linear interpolation, the translation linearly."""
    from scipy.spatial.transform import Rotation, Slerp

    if target_fps <= 0 or fps <= 0:
        raise ValueError(f"frame rates must be positive; got {fps} and {target_fps}")
    times = np.arange(len(poses)) / fps
    new_times = np.arange(int(np.floor(times[-1] * target_fps + 1e-6)) + 1) / target_fps
    if len(poses) == 1:
        return poses.copy(), transl.copy()
    new_poses = np.stack([Slerp(times, Rotation.from_rotvec(poses[:, j]))(new_times).as_rotvec()
                          for j in range(poses.shape[1])], 1)
    new_transl = np.stack([np.interp(new_times, times, transl[:, k]) for k in range(3)], -1)
    return new_poses, new_transl


def load_amass(path: str | os.PathLike, *, fps: float | None = None, model: BodyModel | None = None) -> AmassMotion:
    """An AMASS take (module docstring) as an `AmassMotion` on SMPL's 24 joints, y-up, resampled to
    `fps` (None: the capture rate). `model` gives the rest pelvis for the change of world (default:
    the free model's mean shape). Arrays are read without running pickled code (`safe_files.read_npz`)."""
    path = Path(path)
    content = read_npz(path, _FILE)
    missing = [key for key in ("poses", "trans") if key not in content]
    rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in content), None)
    if missing or rate_key is None:
        have = sorted(content)
        hint = (" (a shape.npz holds only a performer's betas; pass the *_poses.npz takes)"
                if "poses" not in content else "")
        lacking = missing + ([] if rate_key else ["mocap_framerate"])
        raise ValueError(f"{path}: lacks {lacking}; an {_FILE} holds poses, "
                         f"trans, betas, mocap_framerate, gender; it has {have}{hint}")
    poses = np.asarray(content["poses"], dtype=np.float64)
    transl = np.asarray(content["trans"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] not in HAND_START or transl.shape != (len(poses), 3) or not len(poses):
        raise ValueError(f"{path}: poses must be (N, 156) (SMPL-H), (N, 165) (SMPL-X) or (N, 72) and trans (N, 3); got "
                         f"{poses.shape} and {transl.shape}")
    if not (np.isfinite(poses).all() and np.isfinite(transl).all()):
        raise ValueError(f"{path}: poses and trans must be finite")
    joints = poses.reshape(len(poses), -1, 3)
    start = HAND_START[poses.shape[1]]
    if start is None:
        smpl = joints
    else:
        middle = SMPLH_HAND_JOINTS.index(SMPL_HAND_SOURCE)
        smpl = np.concatenate([joints[:, :22], joints[:, [start + middle, start + 15 + middle]]], 1)
    capture = float(np.asarray(content[rate_key]))
    if fps is not None and abs(fps - capture) > 1e-9:
        smpl, transl = resample(smpl, transl, capture, fps)
    model = model or _free_body().model
    smpl, transl = change_world(smpl, transl, Y_UP_TO_Z_UP.T, rest_pelvis(model))
    name = path.stem.removesuffix("_poses").removesuffix("_stageii")
    return AmassMotion(name, smpl.astype(np.float32), transl.astype(np.float32), float(fps or capture),
                       np.asarray(content.get("betas", np.zeros(16)), dtype=np.float64),
                       _scalar_text(content.get("gender", "neutral")), str(path))


def amass_files(folder: str | os.PathLike) -> list[Path]:
    """Every take under `folder` (``**/*.npz`` but the performers' ``shape.npz``), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no AMASS folder at {folder}: pass the folder of <archive>/<performer>/*_poses.npz")
    files = sorted(p for p in folder.rglob("*.npz") if p.name != "shape.npz")
    if not files:
        raise ValueError(f"{folder} holds no AMASS takes (*_poses.npz)")
    return files


def assign_subjects(files: Sequence[Path], test_share: float = 0.25) -> dict[Path, str]:
    """Each take's Human3.6M subject name, so that no performer is in both the train and the test set.

    Units are performers (a take's parent folder), or the takes themselves when all share one
    performer. The last ``ceil(test_share n)`` units (at least one, if there are two units or more)
    go to the test subjects S9, S11 in turn; the others to S1, S5, S6, S7, S8 in turn.
    """
    performers = sorted({f.parent for f in files})
    units = performers if len(performers) > 1 else [Path(f) for f in files]
    test = max(1, int(np.ceil(test_share * len(units)))) if len(units) > 1 else 0
    names = {}
    for k, unit in enumerate(units):
        pool, i = (H36M_TEST_SUBJECTS, k - (len(units) - test)) if k >= len(units) - test else (H36M_TRAIN_SUBJECTS, k)
        names[unit] = pool[i % len(pool)]
    return {Path(f): names[Path(f).parent if len(performers) > 1 else Path(f)] for f in files}


def capture_segments(transl: np.ndarray, span: float = CAPTURE_SPAN, min_frames: int = 30,
                     max_frames: int | None = None) -> list[slice]:
    """Consecutive pieces of a motion whose ground path stays within `span` metres of the piece's first
    frame (so that each, centred, stays inside the camera ring), at most `max_frames` long; pieces
    shorter than `min_frames` are dropped."""
    pieces, start = [], 0
    while start < len(transl):
        travel = np.linalg.norm(transl[start:, [0, 2]] - transl[start, [0, 2]], axis=-1)
        outside = np.flatnonzero(travel > span)
        stop = start + (int(outside[0]) if len(outside) else len(travel))
        if max_frames is not None:
            stop = min(stop, start + max_frames)
        stop = max(stop, start + 1)
        if stop - start >= min_frames:
            pieces.append(slice(start, stop))
        start = stop
    return pieces


def _rng(seed: int, subject: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(f"amass-{subject}".encode())]))


def write_h36m_from_amass(
    files: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fps: float = 50.0,
    subjects: dict[str, str] | None = None,
    min_frames: int = 30,
    max_frames: int | None = None,
    seed: int = 0,
    detector: DetectorNoise | None = None,
    progress: bool = True,
) -> Path:
    """Human3.6M-format lifting data (module docstring) from AMASS takes; returns `out_dir`.

    `files`: a folder (`amass_files`) or a list of takes. Each take is loaded at `fps` (50: Human3.6M's
    rate), cut into `capture_segments` (actions ``"<take> 1"``, ``"<take> 2"``, ...), centred on the
    origin on the ground and lifted so that its lowest vertex touches the floor, posed on its subject's
    free-model body (betas ~ N(0, I), seeded by `seed` and the subject's name), and filmed by the
    subject's four Human3.6M-like cameras; 2D keypoints exact and through `detector`
    (default `DetectorNoise()`). `subjects` maps a take's path (as given) to a subject name; by default
    `assign_subjects`.
    """
    paths = amass_files(files) if isinstance(files, (str, os.PathLike)) else [Path(f) for f in files]
    if not paths:
        raise ValueError("no AMASS takes given")
    chosen = {Path(k): v for k, v in subjects.items()} if subjects else assign_subjects(paths)
    missing = [str(p) for p in paths if p not in chosen]
    if missing:
        raise ValueError(f"subjects names no subject for {missing}")
    detector = detector or DetectorNoise()
    body = _free_body()
    out_dir = Path(out_dir)
    positions_3d: dict[str, dict[str, np.ndarray]] = {}
    gt_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    det_2d: dict[str, dict[str, list[np.ndarray]]] = {}
    cameras_json, sources, state = {}, [], {}
    for path in tqdm(paths, desc="AMASS -> H3.6M", disable=not progress):
        subject = chosen[path]
        if subject not in state:
            rng = _rng(seed, subject)
            betas = torch.as_tensor(rng.standard_normal(body.model.num_betas), dtype=torch.float32)
            cameras = h36m_like_cameras(4, generator=rng)
            state[subject] = (rng, betas, cameras)
            cameras_json[subject] = [camera.to_videopose3d_dict() for camera in cameras]
            positions_3d[subject], gt_2d[subject], det_2d[subject] = {}, {}, {}
        rng, betas, cameras = state[subject]
        motion = load_amass(path, fps=fps, model=body.model)
        for k, piece in enumerate(capture_segments(motion.transl, min_frames=min_frames, max_frames=max_frames), 1):
            poses = torch.as_tensor(motion.poses[piece])
            transl = torch.as_tensor(motion.transl[piece]).clone()
            ground = transl[:, [0, 2]]
            transl[:, [0, 2]] = ground - (ground.amax(0) + ground.amin(0)) / 2
            with torch.no_grad():
                some = slice(None, None, max(1, len(poses) // 20))
                vertices, _ = body.model(betas=betas[None].expand(len(poses[some]), -1), body_pose=poses[some, 1:],
                                         global_orient=poses[some, 0], transl=transl[some])
                transl[:, 1] -= vertices[..., 1].min()
                joints = regress_posed_joints(body.model, body.regressor, betas, poses, transl).double().numpy()
            action = f"{motion.name} {k}"
            positions_3d[subject][action] = (joints @ Y_UP_TO_Z_UP.T).astype(np.float32)
            gt = [camera.project(joints) for camera in cameras]
            gt_2d[subject][action] = [g.astype(np.float32) for g in gt]
            det_2d[subject][action] = [detector.apply(g, rng, H36M_17.flip_permutation)[0].astype(np.float32)
                                       for g in gt]
            sources.append({"file": str(path), "subject": subject, "action": action,
                            "frames": [piece.start, piece.stop], "fps": fps})
    if not sources:
        raise ValueError(f"no take had a piece of at least {min_frames} frames at {fps} fps; lower min_frames")
    empty = [s for s, actions in positions_3d.items() if not actions]
    for subject in empty:
        del positions_3d[subject], gt_2d[subject], det_2d[subject], cameras_json[subject]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_h36m(out_dir / "data_3d_h36m.npz", positions_3d, out_dir / "data_2d_h36m_gt.npz", gt_2d)
    write_h36m(out_dir / "data_3d_h36m.npz", positions_3d, out_dir / "data_2d_h36m_synth_det.npz", det_2d)
    atomic_write_text(out_dir / "cameras.json", json.dumps(cameras_json, indent=1))
    atomic_write_text(out_dir / "amass_sources.json", json.dumps(sources, indent=1))
    return out_dir


__all__ = [
    "HAND_START", "SMPLH_HAND_JOINTS", "SMPL_HAND_SOURCE", "AmassMotion", "amass_files", "assign_subjects",
    "capture_segments", "change_world", "load_amass", "resample", "rest_pelvis", "write_h36m_from_amass",
]

"""SynthHuman: 3DPW-like image sequences from the free body model, in 3DPW's file layout.

`generate_3dpw_like` writes, for each sequence, one person (betas ~ N(0, I)) doing one motion of
`hmrlab.data.motions`, filmed by one panning camera and rendered with `hmrlab.data.render` on a
random background, light and body colour. The files are laid out as 3DPW's (von Marcard et al.,
ECCV 2018), so a user with the real dataset changes a path and nothing else:

- ``sequenceFiles/{train,test}/<name>.pkl``: the sequence dict (`hmrlab.data.pw3d.write_3dpw`;
  `load_3dpw` reads it). Sequences alternate between train (even index) and test (odd index).
- ``imageFiles/<name>/image_00000.jpg``: frame i of the sequence (JPEG, quality `JPEG_QUALITY`),
  as in 3DPW, where ``image_{i:05d}.jpg`` shows ``poses[i]``.
- ``maskFiles/<name>/mask_00000.png``: the person's silhouette (8-bit grey, 255 on the person).
  3DPW has no masks; they are an extra of the synthetic set.
- ``annotations/person_keypoints_synth.json``: the same frames as a COCO person-keypoints file
  (`hmrlab.data.coco.write_coco_keypoints`; file names relative to the output folder, the 17 COCO
  keypoints taken from the OpenPose-18 ones by name, visibility 2 inside the image and 0 outside,
  boxes from the masks), for 2D pretraining with the COCO loader.
- ``manifest.json``: the generation config and its hash; the same config is not generated twice.

Like 3DPW, the motion runs at 60 Hz (``poses_60Hz``, ``trans_60Hz``) and the images at 30 Hz
(``img_frame_ids`` = 0, 2, 4, ... index the 60 Hz streams). The camera stands still and turns to
keep the person in view, so ``cam_poses`` (T, 4, 4) changes from frame to frame, as 3DPW's moving
phone camera does. ``poses2d`` are the exact projections of OpenPose's 18 keypoints
(`PW3D_KEYPOINTS_2D`): SMPL joints, the neck as the mid-shoulder point (as OpenPose's COCO-trained
neck), and nose, eye and ear vertices; confidence is 1 inside the image and 0 outside. Genders
are drawn at random as labels only: the free body model is gender-neutral.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from hmrlab.body import body_model_arrays, body_model_file
from hmrlab.body.lbs import BodyModel
from hmrlab.body.skeletons import COCO_17
from hmrlab.data.cameras import Camera
from hmrlab.data.coco import write_coco_keypoints
from hmrlab.data.motions import ACTIONS, MAX_DURATION, generate_motion
from hmrlab.data.pw3d import PW3D_KEYPOINTS_2D, write_3dpw
from hmrlab.data.render import random_background, random_body_color, random_lighting, render_clip
from hmrlab.data.synth import MANIFEST, config_hash, is_cached, standing_transl
from hmrlab.io import atomic_write, atomic_write_text, read_json

COCO_FILE = "annotations/person_keypoints_synth.json"
# COCO's 17 keypoints are 17 of OpenPose's 18 (all but the neck), under the same names.
_COCO_FROM_OPENPOSE = np.array([PW3D_KEYPOINTS_2D.index(name) for name in COCO_17.joint_names])
FORMAT_VERSION = 2  # bump when the generator changes what a config produces
NUM_BETAS = 10
IMAGE_FPS, MOTION_FPS = 30, 60  # 3DPW's image and IMU rates
JPEG_QUALITY = 90
FOCAL_PER_HEIGHT = 1.02  # 3DPW's phone: f = 1961 px for 1920-pixel-high portrait frames
QUICK = {"sequences": 2, "frames_per_sequence": 16, "image_size": (240, 180)}
FULL = {"sequences": 24, "frames_per_sequence": 300, "image_size": (480, 360)}

# OpenPose-18 keypoint -> SMPL joint index, or a pair averaged, or a free-model vertex name.
_SMPL = {
    "right_shoulder": 17, "right_elbow": 19, "right_wrist": 21, "left_shoulder": 16, "left_elbow": 18,
    "left_wrist": 20, "right_hip": 2, "right_knee": 5, "right_ankle": 8, "left_hip": 1, "left_knee": 4,
    "left_ankle": 7,
}
_VERTEX = {"nose": "nose", "right_eye": "reye", "left_eye": "leye", "right_ear": "rear", "left_ear": "lear"}


def _split(index: int) -> str:
    return "test" if index % 2 else "train"


def expected_files(config: dict[str, Any]) -> list[str]:
    """Paths, relative to the output folder, of every file a config makes (manifest aside)."""
    files = [COCO_FILE]
    for index, name in enumerate(config["names"]):
        files.append(f"sequenceFiles/{_split(index)}/{name}.pkl")
        for i in range(config["frames_per_sequence"]):
            files += [f"imageFiles/{name}/image_{i:05d}.jpg", f"maskFiles/{name}/mask_{i:05d}.png"]
    return files


def _remove_previous_set(out_dir: Path, keep: list[str]) -> None:
    """Delete the manifest and the files of the set it lists that the new set does not rewrite, so
    that `load_3dpw` on the folder does not also find an older config's sequences."""
    try:
        previous = expected_files(read_json(out_dir / MANIFEST, "SynthHuman manifest")["config"])
    except (OSError, ValueError, KeyError, TypeError):  # absent or corrupt: nothing known to remove
        previous = []
    (out_dir / MANIFEST).unlink(missing_ok=True)  # no stale manifest may vouch for half-written files
    for name in set(previous) - set(keep):
        (out_dir / name).unlink(missing_ok=True)


def _sequence_start(seed: int, index: int) -> tuple[np.random.Generator, str]:
    """Sequence `index`'s random generator and its action, the generator's first draw."""
    # Keyed by the index, so sequence k does not change when more sequences are asked for.
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(f"3dpw-{index}".encode())]))
    return rng, ACTIONS[int(rng.integers(len(ACTIONS)))]


def openpose_keypoints(joints: np.ndarray, vertices: np.ndarray, extra_vertex_ids: dict[str, int]) -> np.ndarray:
    """OpenPose-18 keypoints (T, 18, 3) in `PW3D_KEYPOINTS_2D` order from SMPL `joints` (T, 24, 3)
    and mesh `vertices` (T, N, 3), metres: SMPL joints for limbs and hips, the shoulders' midpoint
    for the neck, the free model's nose, eye and ear vertices (`extra_vertex_ids`) for the face."""
    points = []
    for name in PW3D_KEYPOINTS_2D:
        if name == "neck":
            points.append((joints[:, _SMPL["left_shoulder"]] + joints[:, _SMPL["right_shoulder"]]) / 2)
        elif name in _SMPL:
            points.append(joints[:, _SMPL[name]])
        else:
            points.append(vertices[:, extra_vertex_ids[_VERTEX[name]]])
    return np.stack(points, axis=1)


def _panning_cameras(target: np.ndarray, image_size: tuple[int, int], rng: np.random.Generator) -> list[Camera]:
    """One camera per frame, at a fixed place 3-4.5 m (plus the path's half extent) from the path's
    centre at phone height, turned toward the person's ground track `target` (T, 3) at pelvis height."""
    height, width = image_size
    centre = (target.max(0) + target.min(0)) / 2
    reach = np.linalg.norm(target[:, [0, 2]] - centre[[0, 2]], axis=-1).max()
    azimuth = rng.uniform(0, 2 * np.pi)
    distance = rng.uniform(3.0, 4.5) + reach
    position = centre + np.array([distance * np.sin(azimuth), 0.0, distance * np.cos(azimuth)])
    position[1] = rng.uniform(1.0, 1.6)
    focal = FOCAL_PER_HEIGHT * height * (1 + rng.uniform(-0.01, 0.01))
    return [Camera.look_at(position, point, focal=focal, image_size=(width, height)) for point in target]


def _render_sequence(
    vertices: np.ndarray, faces: np.ndarray, cameras: list[Camera], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, H, W, 3) uint8 and masks (T, H, W) bool of world `vertices` (T, N, 3) seen by one
    camera per frame, on one random background, light and body colour."""
    # render_clip keeps one window for a clip and one camera: render each frame's camera-frame
    # vertices through a camera at the origin with the same intrinsics (the light is set in the
    # camera frame, so it turns with the camera, as on a phone).
    in_camera = np.stack([camera.to_camera(v) for camera, v in zip(cameras, vertices)])
    first = cameras[0]
    origin = Camera(np.eye(3), np.zeros(3), first.focal, first.center, first.image_size)
    width, height = first.image_size
    background = random_background((height, width), rng)
    return render_clip(
        in_camera, faces, origin, background=background, light=random_lighting(rng), color=random_body_color(rng)
    )


def _write_image(path: Path, array: np.ndarray, **options: Any) -> None:
    with atomic_write(path) as tmp:
        Image.fromarray(array).save(tmp, format=path.suffix[1:].upper().replace("JPG", "JPEG"), **options)


def _coco_rows(name: str, poses2d: np.ndarray, masks: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A sequence's frames as COCO rows: image file names, keypoints (T, 17, 3) with visibility 2
    inside the image and 0 (at 0, 0) outside, and boxes (T, 4) x, y, width, height from the masks."""
    openpose = poses2d.transpose(0, 2, 1)[:, _COCO_FROM_OPENPOSE]  # (T, 17, 3): x, y, inside
    inside = openpose[..., 2:] > 0
    keypoints = np.where(inside, np.concatenate([openpose[..., :2], np.full_like(openpose[..., 2:], 2)], -1), 0)
    boxes = []
    for mask in masks:
        rows, cols = np.nonzero(mask)
        if len(rows) == 0:  # the person left the picture: an empty box, as COCO has no "absent"
            boxes.append([0, 0, 0, 0])
            continue
        boxes.append([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1])
    names = [f"imageFiles/{name}/image_{i:05d}.jpg" for i in range(len(masks))]
    return names, keypoints, np.array(boxes, dtype=np.float64)


def _make_sequence(
    model: BodyModel, extra_ids: dict[str, int], config: dict[str, Any], index: int, out_dir: Path
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Render and write sequence `index`; return its frames as COCO rows (`_coco_rows`)."""
    rng, action = _sequence_start(config["seed"], index)
    betas = torch.as_tensor(rng.standard_normal(NUM_BETAS), dtype=torch.float32)
    gender = "f" if rng.random() < 0.5 else "m"
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    frames = config["frames_per_sequence"]
    motion = generate_motion(action, generator=generator, fps=MOTION_FPS)
    if motion.num_frames < 2 * frames:  # too short a draw: ask for the length needed
        motion = generate_motion(action, generator=generator, fps=MOTION_FPS, duration=2 * frames / MOTION_FPS)
    start = (motion.num_frames - 2 * frames) // 2  # the middle of the motion, where the action happens
    poses_60 = motion.poses[start : start + 2 * frames]
    trans_60 = motion.transl[start : start + 2 * frames] + standing_transl(model, betas)
    poses, trans = poses_60[::2], trans_60[::2]
    with torch.no_grad():
        vertices, joints = model(
            betas=betas[None], global_orient=poses[:, 0], body_pose=poses[:, 1:], transl=trans
        )
    vertices, joints = vertices.double().numpy(), joints.double().numpy()

    track = joints[:, 0].copy()
    track[:, 1] = track[:, 1].mean()  # aim at the pelvis' mean height, so a jump does not shake the camera
    cameras = _panning_cameras(track, tuple(config["image_size"]), rng)
    images, masks = _render_sequence(vertices, model.faces.numpy(), cameras, rng)

    keypoints = np.stack([c.project(k) for c, k in zip(cameras, openpose_keypoints(joints, vertices, extra_ids))])
    width, height = cameras[0].image_size
    inside = (keypoints >= -0.5).all(-1) & (keypoints[..., 0] < width - 0.5) & (keypoints[..., 1] < height - 0.5)
    poses2d = np.concatenate([keypoints, inside[..., None].astype(np.float64)], -1).transpose(0, 2, 1)
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    for pose, camera in zip(cam_poses, cameras):
        pose[:3, :3], pose[:3, 3] = camera.R, camera.t

    name = config["names"][index]
    for i, (image, mask) in enumerate(zip(images, masks)):
        _write_image(out_dir / "imageFiles" / name / f"image_{i:05d}.jpg", image, quality=JPEG_QUALITY)
        _write_image(out_dir / "maskFiles" / name / f"mask_{i:05d}.png", mask.astype(np.uint8) * 255)
    write_3dpw(out_dir / "sequenceFiles" / _split(index) / f"{name}.pkl", {
        "sequence": name,
        "genders": [gender],
        "betas": [betas.double().numpy()],
        "poses": [poses.reshape(frames, 72).double().numpy()],
        "trans": [trans.double().numpy()],
        "poses_60Hz": [poses_60.reshape(2 * frames, 72).double().numpy()],
        "trans_60Hz": [trans_60.double().numpy()],
        "poses2d": [poses2d],
        "jointPositions": [joints.reshape(frames, 72)],
        "campose_valid": [np.ones(frames, dtype=np.int64)],
        "cam_poses": cam_poses,
        "cam_intrinsics": np.array([[cameras[0].focal[0], 0, cameras[0].center[0]],
                                    [0, cameras[0].focal[1], cameras[0].center[1]], [0, 0, 1.0]]),
        "img_frame_ids": np.arange(0, 2 * frames, 2),
    })
    return _coco_rows(name, poses2d, masks)


def generate_3dpw_like(
    out_dir: str | os.PathLike,
    *,
    sequences: int,
    frames_per_sequence: int,
    image_size: tuple[int, int] = (480, 360),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Generate SynthHuman's 3DPW-like image set into `out_dir` (module docstring for the files); returns it.

    Per sequence k: an action drawn from `hmrlab.data.motions.ACTIONS`, betas (10,) ~ N(0, I), the
    middle `frames_per_sequence` image frames (30 Hz) of the motion, one camera at 3-4.5 m with
    f = `FOCAL_PER_HEIGHT` x H pixels panning to follow the person, and images of `image_size` =
    (height, width) pixels (3DPW's are portrait, 1920 x 1080). The same arguments give the same
    files (on one machine: rendering and float sums may differ on others); if `out_dir` already holds
    a set made with the same arguments and body model file (the manifest's hash), nothing is
    written. Sequence k depends only on `seed` and k.
    """
    if sequences < 1 or frames_per_sequence < 1:
        raise ValueError(
            f"sequences and frames_per_sequence must be at least 1; got {sequences}, {frames_per_sequence}"
        )
    if 2 * frames_per_sequence / MOTION_FPS > MAX_DURATION:
        raise ValueError(f"frames_per_sequence must be at most {int(MAX_DURATION * IMAGE_FPS)} (the longest "
                         f"motion, {MAX_DURATION} s at {IMAGE_FPS} fps); got {frames_per_sequence}")
    if len(image_size) != 2 or min(image_size) < 16:
        raise ValueError(
            f"image_size must be (height, width) with both >= 16 pixels, e.g. (480, 360); got {image_size}"
        )
    model_file = body_model_file("smpl")
    config = {
        "format_version": FORMAT_VERSION,
        "sequences": sequences,
        "frames_per_sequence": frames_per_sequence,
        "image_size": [int(image_size[0]), int(image_size[1])],
        "seed": seed,
        "names": [f"synth_{k:02d}_{_sequence_start(seed, k)[1]}" for k in range(sequences)],
        "body_model_sha256": hashlib.sha256(model_file.read_bytes()).hexdigest(),
    }
    out_dir = Path(out_dir)
    digest = config_hash(config)
    if is_cached(out_dir, digest, expected_files(config)):
        return out_dir

    arrays = body_model_arrays("smpl", model_file)
    model = BodyModel(arrays, num_betas=NUM_BETAS)
    extra_ids = {str(n): int(i) for n, i in zip(arrays["extra_vertex_names"], arrays["extra_vertex_ids"])}
    _remove_previous_set(out_dir, expected_files(config))
    rows = [_make_sequence(model, extra_ids, config, index, out_dir)
            for index in tqdm(range(sequences), desc="SynthHuman 3DPW", disable=not progress)]
    height, width = config["image_size"]
    file_names = [name for names, _, _ in rows for name in names]
    write_coco_keypoints(
        out_dir / COCO_FILE, file_names, np.tile([width, height], (len(file_names), 1)),
        np.concatenate([keypoints for _, keypoints, _ in rows]), np.arange(1, len(file_names) + 1),
        boxes=np.concatenate([boxes for _, _, boxes in rows]),
    )
    manifest = {"config": config, "config_hash": digest}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1))
    return out_dir

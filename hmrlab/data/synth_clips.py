"""SynthClips: short video clips rendered at a network's input size, each clip its own body, motion,
camera and look, written in npz shards (what the video task trains on at scale, `data.format: clips`).

`generate_3dpw_like` films a dozen people for many frames: 1,000 clips cut from its sequences hold a
dozen bodies and a dozen motions, and a video model learns them by heart. Here every clip draws anew,
as SynthCrops (`hmrlab.data.synth_crops`) does for single frames:

- **body**: betas (10,) ~ N(0, I), clipped to [-3, 3];
- **motion**: an action drawn uniformly from `hmrlab.data.motions.ACTIONS`, one procedural motion of
  it (its own style, speed, duration and facing direction) at ``FPS`` = 30 Hz (3DPW's image rate, as
  `generate_3dpw_like`'s frames), and ``clip_length`` consecutive frames of it from a random start;
  the root moves as the motion moves it (a walk crosses the picture);
- **camera**: one static camera per clip, drawn as SynthCrops draws one (2.5-7 m, elevation -15 to
  35 degrees, any azimuth, a vertical field of view of 40-75 degrees, the person anywhere in its
  central 70 %) about the middle of the pelvis' path, then moved back along its line of sight by the
  path's reach, so that the person is never nearer than 2.5 m;
- **look**: one procedural background and light (`hmrlab.data.render`) and one outfit
  (`hmrlab.data.outfits`) for the whole clip.

Every frame of a clip is rendered into one **canvas**: the crop `VideoClips` would cut from a full
video with one box for the clip (the union of the frames' boxes around the 24 SMPL joints and the 18
OpenPose keypoints, made to the crop's aspect and enlarged by 1.25), at the crop's pixel density,
plus ``pad`` pixels of margin on each side for augmentation (`hmrlab.data.datasets.SynthClips`);
the person moves within the crop. The canvas camera is the crop's, so ``camera @ joints_3d``
projects onto ``joints_2d`` exactly (`synth_crops._canvas_camera` and the same renderer,
`synth_crops._Worker`).

Files (``out_dir``, `hmrlab.data.shards`): ``shard_<family>_<k>.npz`` (clips ``k * shard_size ...``)
and ``manifest.json``; interrupted runs resume, more clips keep the shards made. Shard members, n
clips of T frames: ``images`` (n, T, Hc, Wc, 3) uint8, ``pose`` (n, T, 72) SMPL axis-angle with the
global orientation in the camera frame, ``betas`` (n, 10), ``joints_3d`` (n, T, 24, 3) camera frame,
metres, ``joints_2d`` (n, T, 24, 2) and ``keypoints_2d`` (n, T, 18, 2) canvas pixels (OpenPose
order, `hmrlab.data.pw3d.PW3D_KEYPOINTS_2D`), ``camera`` (n, 3, 3) canvas intrinsics, ``action``
(n,) int8 (index into `hmrlab.data.motions.ACTIONS`).

**Disjoint from the common test split.** Shard k draws from ``SeedSequence([seed, CLIP_KEY, k])``,
``CLIP_KEY = crc32(b"synth-clips")``; `generate_3dpw_like` sequence k from ``SeedSequence([seed,
crc32(f"3dpw-{k}")])`` and SynthCrops shard k from ``[seed, CROP_KEY, k]``. ``CLIP_KEY`` is neither
``CROP_KEY`` nor any ``3dpw-k`` key (tested for k < 10^6), so no shard shares a generator, hence a
body, motion or camera, with a benchmark sequence whatever the seeds; the default seed
(``DEFAULT_SEED`` = 1, the benchmark set's is 0) keeps them apart a second time.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmrlab.body import body_model_file
from hmrlab.data.motions import ACTIONS, MAX_DURATION, generate_motion
from hmrlab.data.outfits import random_outfit
from hmrlab.data.shards import generate_shards, load_shards
from hmrlab.data.synth_crops import (
    NUM_BETAS,
    SCALE,
    _camera_rotation,
    _canvas_camera,
    _Worker,
    canvas_settings,
    canvas_size,
    vertex_normals,
)
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["CLIP_KEY", "DEFAULT_SEED", "FPS", "MEMBERS", "generate_clips", "load_clips"]

FORMAT_VERSION = 1  # bump when the generator changes what a config produces
CLIP_KEY = zlib.crc32(b"synth-clips")
DEFAULT_SEED = 1
FPS = 30  # frames per second: 3DPW's image rate
MEMBERS = ("images", "pose", "betas", "joints_3d", "joints_2d", "keypoints_2d", "camera", "action")


def _shard_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, CLIP_KEY, index]))


def _motion_segment(frames: int, rng: np.random.Generator) -> tuple[int, torch.Tensor, torch.Tensor]:
    """An action index, poses (T, 24, 3) axis-angle and root translations (T, 3) metres (world, y up)
    of ``frames`` consecutive frames of a new procedural motion at `FPS`, from a random start."""
    action = int(rng.integers(len(ACTIONS)))
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    motion = generate_motion(ACTIONS[action], generator=generator, fps=FPS)
    if motion.num_frames < frames:  # a short draw: ask for the length needed
        motion = generate_motion(ACTIONS[action], generator=generator, fps=FPS, duration=frames / FPS)
    start = int(rng.integers(motion.num_frames - frames + 1))
    return action, motion.poses[start : start + frames], motion.transl[start : start + frames]


class _ClipWorker(_Worker):
    """SynthCrops' worker (body model, outfit parts, one open render window) making clips instead."""

    def shard(self, config: dict[str, Any], index: int, count: int) -> dict[str, np.ndarray]:
        """The arrays of shard `index` (`count` clips), rendered (module docstring)."""
        rng = _shard_rng(config["seed"], index)
        clips = [self._clip(config, rng) for _ in range(count)]
        return {name: np.stack([clip[name] for clip in clips]) for name in MEMBERS}

    def _clip(self, config: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One clip's members (module docstring) without the leading clip axis."""
        from hmrlab.data.render import random_background, random_lighting
        from hmrlab.data.synth_images import openpose_keypoints

        frames, crop_size, pad = config["clip_length"], tuple(config["crop_size"]), config["pad"]
        action, poses, transl = _motion_segment(frames, rng)
        betas = torch.as_tensor(np.clip(rng.standard_normal(NUM_BETAS), -3, 3), dtype=torch.float32)
        with torch.no_grad():
            vertices, joints = self.model(betas=betas[None], body_pose=poses[:, 1:], global_orient=poses[:, 0],
                                          transl=transl)
        vertices, joints = vertices.double().numpy(), joints.double().numpy()
        keypoints = openpose_keypoints(joints, vertices, self.extra_ids)
        pelvis = joints[:, 0]
        centre = (pelvis.min(0) + pelvis.max(0)) / 2
        reach = np.linalg.norm(pelvis - centre, axis=-1).max()
        fov = np.radians(rng.uniform(40.0, 75.0))
        rotation, position = _camera_rotation(rng, fov / 2)
        # back along the line through the centre (its pixel stays put), by the pelvis' reach
        position = centre + position * (1 + reach / np.linalg.norm(position))
        joints_3d, keypoints_3d, vertices_3d = ((p - position) @ rotation.T for p in (joints, keypoints, vertices))
        camera = _canvas_camera(np.concatenate([joints_3d, keypoints_3d], 1).reshape(-1, 3), crop_size, pad,
                                config["scale"])
        size = canvas_size(crop_size, pad)
        light, color, background = random_lighting(rng), random_outfit(self.parts, rng), random_background(size, rng)
        images = np.stack([
            self._draw(v, vertex_normals(v.astype(np.float32), self.faces, self.incidence), camera, light, color,
                       background)
            for v in vertices_3d
        ])
        root = torch.from_numpy(rotation) @ axis_angle_to_matrix(poses[:, 0].double())
        pose = torch.cat([matrix_to_axis_angle(root)[:, None], poses[:, 1:].double()], 1).reshape(frames, 72)

        def project(points: np.ndarray) -> np.ndarray:
            projected = points @ camera.T
            return projected[..., :2] / projected[..., 2:]

        arrays = {"pose": pose.numpy(), "betas": betas.numpy(), "joints_3d": joints_3d,
                  "joints_2d": project(joints_3d), "keypoints_2d": project(keypoints_3d), "camera": camera}
        return {"images": images, "action": np.int8(action),
                **{name: value.astype(np.float32) for name, value in arrays.items()}}


def generate_clips(
    out_dir: str | os.PathLike,
    *,
    count: int,
    clip_length: int = 16,
    crop_size: Sequence[int] = (96, 96),
    pad: int | None = None,
    seed: int = DEFAULT_SEED,
    shard_size: int = 25,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Render `count` SynthClips clips of `clip_length` frames into `out_dir` in shards (module
    docstring); returns `out_dir`.

    crop_size: (height, width) of the network's crop, pixels; pad: canvas margin per side in pixels
    (default an eighth of the crop's larger side, so the canvas spans 1.25 crops); seed: the set's
    seed (keep it off the benchmark's, module docstring); shard_size: clips per file; workers:
    processes rendering shards (1: this process). Shards already present are kept (an interrupted run
    resumes); a manifest with the same config means nothing is rendered. Files of other configs in
    the folder are deleted (`hmrlab.data.shards.generate_shards`).
    """
    longest = int(MAX_DURATION * FPS)
    if isinstance(clip_length, bool) or not isinstance(clip_length, int) or not 1 <= clip_length <= longest:
        raise ValueError(f"clip_length must be an integer from 1 to {longest} frames (the longest motion, "
                         f"{MAX_DURATION} s at {FPS} fps); got {clip_length!r}")
    crop_size, pad = canvas_settings(crop_size, pad)
    family_config = {
        "format_version": FORMAT_VERSION, "clip_length": clip_length, "fps": FPS, "crop_size": list(crop_size),
        "pad": pad, "scale": SCALE, "seed": int(seed), "shard_size": int(shard_size),
        "body_model_sha256": hashlib.sha256(body_model_file("smpl").read_bytes()).hexdigest(),
    }
    return generate_shards(out_dir, family_config, count=count, shard_size=shard_size, worker=_ClipWorker,
                           workers=workers, progress=progress, desc="SynthClips", unit="clip")


def load_clips(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config and the concatenated shard arrays (`MEMBERS`) of a complete SynthClips folder."""
    return load_shards(folder, MEMBERS, "SynthClips", "hmrlab.data.synth_clips.generate_clips")

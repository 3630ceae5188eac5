"""Synthetic whole-body images: SMPL-X-format bodies with posed hands, jaw and expression, rendered
offscreen, each sample its own body, pose, camera and look, written in npz shards (what the wholebody
task, `hmrlab.training.tasks.wholebody`, trains BiDRN on).

Each sample is one person of the free SMPL-X-format model (`hmrlab.body.load_body_model("smplx")`):

- **body**: ``betas`` ~ N(0, I) (10), clipped to [-3, 3];
- **pose**: with probability ``motion_share`` a random frame of a procedural motion, otherwise an
  independent plausible pose at the everyday or twice the spread (SynthCrops' draw,
  `hmrlab.data.synth_crops`); SMPL's first 22 joints are SMPL-X's body joints;
- **hands**: ``hands_mean + sum_k c_k sqrt(var_k) component_k`` with ``c_k ~ N(0, hand_spread^2)``,
  a draw from the model's own hand-pose PCA (absolute axis-angles: the model runs with
  ``flat_hand_mean=True``);
- **face**: a jaw rotation about the left-right axis, U(0, 0.3) rad, and ``expression`` ~ N(0, I)
  (10; the free model's expression directions are scaled to unit variance);
- **camera**: one pinhole per set (R = I, t = 0: the **camera frame is the world frame**, x right,
  y down, metres; focal length ``FOCAL_PER_HEIGHT`` x the image height, the principal point at the
  centre), the person seen from any azimuth, an elevation of -10 to 30 degrees and a roll of up to 8
  degrees, the pelvis 2.6-4.2 m away (``DISTANCE``) and anywhere across the picture that keeps every
  vertex inside it (centred when none does). So ``global_orient`` and ``transl`` are what a network
  regresses from the picture. The intrinsics are shared because `hmrlab.models.bidrn.bidrn_loss`
  reads one camera per batch;
- **look**: a procedural background and light (`hmrlab.data.render`) and an outfit
  (`hmrlab.data.outfits`: shirt, trousers, shoes, skin, hair and eyes).

Every sample is rendered directly at the picture's size in one offscreen window kept open per process,
with vertex normals computed in numpy (SynthCrops' scene, `hmrlab.data.synth_crops`). Boxes
``[x1, y1, x2, y2]`` (pixels, pixel centres at integers) come from the projected joints, as whole-body
datasets make them: each hand's from its wrist, 15 finger joints and 5 finger tips, the face's from the
head, jaw, eye, nose/ear joints and the 51 face landmarks, each made square about its centre and
enlarged by ``part_scale``; the body's from all joints, widened to the body crop's aspect ratio
(height:width 4:3, Hand4Whole's 256x192) and enlarged by 1.2.

Files (``out_dir``, `hmrlab.data.shards`): ``shard_<family>_<k>.npz`` and ``manifest.json``, written
atomically, resumable, and kept when more samples are asked for. Shard members (`MEMBERS`): the
fields of `WholeBodySamples` but the camera, ``images`` as (n, 3, H, W) uint8.

**Disjoint from the common test split.** Shard k draws from ``SeedSequence([seed, WHOLEBODY_KEY, k])``,
``WHOLEBODY_KEY = crc32(b"synth-wholebody")``; `hmrlab.evaluation.pw3d_split.generate_3dpw_like`
sequence k from ``SeedSequence([seed, crc32(f"3dpw-{k}")])``: no ``3dpw-k`` key equals
``WHOLEBODY_KEY`` (tested for k < 10^6) and the entropy lists differ in length, so no shard shares a
generator with a benchmark sequence whatever the seeds; the default seed (``DEFAULT_SEED`` = 1, the
benchmark set's is 0) keeps them apart a second time.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hmrlab.body import body_model_arrays, body_model_file
from hmrlab.body.wholebody import load_wholebody_model, part_joint_indices, pose_wholebody
from hmrlab.data.cameras import Camera, look_at_rotation
from hmrlab.data.outfits import outfit_parts, random_outfit
from hmrlab.data.render import Lighting, random_background, random_lighting
from hmrlab.data.shards import shard_worker
from hmrlab.data.shards import generate_shards, load_shards
from hmrlab.data.synth_crops import DEFAULT_SEED, _crop_scene, _draw_poses, face_incidence, vertex_normals
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "WholeBodySamples", "WholeBodyAugmentation", "AugmentedWholeBody", "make_wholebody_samples",
    "generate_wholebody", "load_wholebody", "wholebody_camera", "joint_box", "PART_NAMES", "BODY_ASPECT",
    "FOCAL_PER_HEIGHT", "DEFAULT_SEED",
]

FORMAT_VERSION = 2  # bump when the generator changes what a config produces
WHOLEBODY_KEY = zlib.crc32(b"synth-wholebody")
PART_NAMES = ("body", "left_hand", "right_hand", "face")
BODY_ASPECT = 256 / 192  # height / width of Hand4Whole's body crop
FOCAL_PER_HEIGHT = 1.4
"""Focal length in pixels per image row: a standing adult fills about 80 % of the height at 3 m."""
DISTANCE = (2.6, 4.2)  # metres from the camera to the pelvis
ELEVATION = (-10.0, 30.0)  # degrees, the camera above the pelvis for positive values
ROLL = 8.0  # degrees, the largest tilt of the camera about its axis
MARGIN = 1.0  # pixels kept between the body and the picture's border
_BODY_SCALE = 1.2
_SAMPLE_FIELDS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "betas",
                  "expression", "transl", "joints", "joints_2d", "boxes")
MEMBERS = ("images", *_SAMPLE_FIELDS)


def joint_box(points: Tensor, scale: float, aspect: float = 1.0) -> Tensor:
    """Box (..., 4) ``[x1, y1, x2, y2]`` around 2D points (..., J, 2) pixels: the tight box, widened
    or heightened about its centre to ``height / width = aspect``, then enlarged by ``scale``."""
    low, high = points.amin(-2), points.amax(-2)
    centre, size = (low + high) / 2, (high - low).clamp(min=1.0)
    width = torch.maximum(size[..., 0], size[..., 1] / aspect) * scale
    half = torch.stack([width, width * aspect], -1) / 2
    return torch.cat([centre - half, centre + half], -1)


def wholebody_camera(image_size: tuple[int, int]) -> Camera:
    """The camera of every sample of a set of `image_size` = (height, width) pixels: R = I, t = 0,
    focal length ``FOCAL_PER_HEIGHT * height`` pixels, principal point at the picture's centre."""
    height, width = image_size
    focal = FOCAL_PER_HEIGHT * height
    return Camera(np.eye(3), np.zeros(3), (focal, focal), ((width - 1) / 2, (height - 1) / 2), (width, height))


@dataclass(eq=False)  # eq would compare tensors, whose truth value is ambiguous
class WholeBodySamples(Dataset):
    """Rendered whole-body samples with their SMPL-X parameters, joints and part boxes (S samples).

    images (S, 3, H, W) uint8, the renderer's bytes; global_orient (S, 3), body_pose (S, 21, 3),
    left_hand_pose / right_hand_pose (S, 15, 3), jaw_pose (S, 3): axis-angle, radians, camera frame;
    betas (S, 10); expression (S, 10); transl (S, 3) metres; joints (S, 127, 3) metres, camera frame;
    joints_2d (S, 127, 2) pixels; boxes (S, 4, 4): ``PART_NAMES`` order, ``[x1, y1, x2, y2]`` pixels;
    focal (2,) and center (2,) pixels, the camera shared by all samples (R = I, t = 0).
    Indexing gives one sample as a dict of these (camera included), the image as float32 (3, H, W)
    in [0, 1], so a DataLoader batches it.
    """

    images: Tensor
    global_orient: Tensor
    body_pose: Tensor
    left_hand_pose: Tensor
    right_hand_pose: Tensor
    jaw_pose: Tensor
    betas: Tensor
    expression: Tensor
    transl: Tensor
    joints: Tensor
    joints_2d: Tensor
    boxes: Tensor
    focal: Tensor
    center: Tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = {name: getattr(self, name)[index] for name in _SAMPLE_FIELDS}
        return {"images": self.images[index].float() / 255, **item, "focal": self.focal, "center": self.center}

    def camera(self) -> Camera:
        """The samples' `Camera` (identity pose), for projecting or rendering more."""
        return wholebody_camera(tuple(self.images.shape[2:]))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> WholeBodySamples:
        """The samples of shard arrays (`MEMBERS`), with the camera of their image size."""
        camera = wholebody_camera(arrays["images"].shape[2:])
        tensors = {name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in MEMBERS}
        return cls(**tensors, focal=torch.tensor(camera.focal, dtype=torch.float32),
                   center=torch.tensor(camera.center, dtype=torch.float32))


# ----------------------------------------------------------------------------------------------------
# Drawing and rendering a shard's samples


def _shard_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, WHOLEBODY_KEY, index]))


def _rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _view_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    """World-to-camera rotations (n, 3, 3) of cameras around a y-up person (module docstring's azimuth,
    elevation and roll)."""
    rotations = np.empty((count, 3, 3))
    for i in range(count):
        elevation, azimuth = np.radians(rng.uniform(*ELEVATION)), rng.uniform(0.0, 2 * np.pi)
        position = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                             np.cos(elevation) * np.cos(azimuth)])
        rotations[i] = _rotation_z(np.radians(rng.uniform(-ROLL, ROLL))) @ look_at_rotation(position, np.zeros(3))
    return rotations


def _hand_poses(count: int, rng: np.random.Generator, arrays: dict[str, np.ndarray], side: str,
                spread: float) -> np.ndarray:
    """Hand poses (n, 15, 3) axis-angle drawn from the model's hand PCA (module docstring); side "l" or "r"."""
    std = spread * np.sqrt(arrays["hands_variances"].astype(np.float64))
    coefficients = rng.standard_normal((count, len(std))) * std
    pose = arrays[f"hands_mean{side}"] + coefficients @ arrays[f"hands_components{side}"]
    return pose.reshape(count, 15, 3)


def _pelvis_positions(vertices: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Camera-frame pelvis positions (n, 3) metres for bodies whose vertices (n, V, 3) are given
    relative to their pelvis: a depth in ``DISTANCE``, then x and y uniform over the offsets that keep
    every vertex ``MARGIN`` pixels inside the picture (the middle of that range when it is empty)."""
    depth = rng.uniform(*DISTANCE, size=len(vertices))
    (width, height), focal, center = camera.image_size, camera.focal, camera.center
    z = vertices[..., 2] + depth[:, None]  # (n, V)
    offsets = []
    for axis, size in ((0, width), (1, height)):
        # u = f (p + t) / z + c lies in [MARGIN, size - 1 - MARGIN] for t in [low_v, high_v] per vertex
        low = ((MARGIN - center[axis]) * z / focal[axis] - vertices[..., axis]).max(1)
        high = ((size - 1 - MARGIN - center[axis]) * z / focal[axis] - vertices[..., axis]).min(1)
        draw = rng.uniform(size=len(vertices))
        offsets.append(np.where(low <= high, low + draw * (high - low), (low + high) / 2))
    return np.stack([*offsets, depth], 1)


class _Worker:
    """What a generating process keeps between shards (`hmrlab.data.shards.ShardWorker`): the body
    model, its outfit parts and one open render window."""

    def __init__(self) -> None:
        torch.set_num_threads(1)
        self.model = load_wholebody_model()
        self.arrays = body_model_arrays("smplx")
        self.faces = np.asarray(self.model.faces, dtype=np.int64)
        self.incidence = face_incidence(self.faces, len(self.arrays["v_template"]))
        self.parts = outfit_parts(self.arrays)
        self.scene = None

    def shard(self, config: dict[str, Any], index: int, count: int) -> dict[str, np.ndarray]:
        """The arrays (`MEMBERS`) of shard `index` (`count` samples) of a `generate_wholebody` config."""
        rng = _shard_rng(config["seed"], index)
        image_size = tuple(config["image_size"])
        camera = wholebody_camera(image_size)
        params = self._draw_params(count, rng, config)
        with torch.no_grad():
            # smplx turns the body about its rest pelvis, then adds transl: posed without transl, the
            # pelvis stays at its rest place, and transl = wanted pelvis - rest pelvis.
            vertices, joints = pose_wholebody(self.model, {**params, "transl": torch.zeros(count, 3)})
        rest_pelvis = joints[:, 0].double().numpy()
        vertices = vertices.double().numpy() - rest_pelvis[:, None]
        joints = joints.double().numpy() - rest_pelvis[:, None]
        pelvis = _pelvis_positions(vertices, camera, rng)
        vertices, joints = vertices + pelvis[:, None], joints + pelvis[:, None]
        (fx, fy), (cx, cy) = camera.focal, camera.center
        intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        images = np.empty((count, 3, *image_size), np.uint8)
        for i in range(count):
            light, color = random_lighting(rng), random_outfit(self.parts, rng)
            images[i] = self._draw(vertices[i], intrinsics, light, color, random_background(image_size, rng))
        joints_2d = torch.from_numpy(camera.project(joints))
        parts = part_joint_indices()
        boxes = torch.stack([
            joint_box(joints_2d, _BODY_SCALE, BODY_ASPECT),
            *(joint_box(joints_2d[:, parts[name]], config["part_scale"]) for name in PART_NAMES[1:]),
        ], 1)
        arrays = {name: value.numpy() for name, value in params.items()}
        arrays.update(transl=pelvis - rest_pelvis, joints=joints, joints_2d=joints_2d.numpy(), boxes=boxes.numpy())
        return {"images": images, **{name: arrays[name].astype(np.float32) for name in _SAMPLE_FIELDS}}

    def _draw_params(self, count: int, rng: np.random.Generator, config: dict[str, Any]) -> dict[str, Tensor]:
        """SMPL-X parameters (float32) of `count` bodies, ``global_orient`` in the camera frame, no transl."""
        poses, _ = _draw_poses(count, rng, config["motion_share"])  # (n, 24, 3) world, y up
        views = torch.from_numpy(_view_rotations(count, rng))
        global_orient = matrix_to_axis_angle(views @ axis_angle_to_matrix(poses[:, 0].double()))
        spread = config["hand_spread"]
        jaw = np.zeros((count, 3))
        jaw[:, 0] = rng.uniform(0.0, 0.3, count)
        drawn = {
            "global_orient": global_orient,
            "body_pose": poses[:, 1:22],
            "left_hand_pose": _hand_poses(count, rng, self.arrays, "l", spread),
            "right_hand_pose": _hand_poses(count, rng, self.arrays, "r", spread),
            "jaw_pose": jaw,
            "betas": np.clip(rng.standard_normal((count, 10)), -3, 3),
            "expression": rng.standard_normal((count, 10)),
        }
        return {name: torch.as_tensor(value, dtype=torch.float32) for name, value in drawn.items()}

    def _draw(self, vertices: np.ndarray, intrinsics: np.ndarray, light: Lighting, color: np.ndarray,
              background: np.ndarray) -> np.ndarray:
        """One picture (3, H, W) uint8 of camera-frame `vertices` (V, 3) seen through `intrinsics`
        (3, 3), lit by `light`, coloured per vertex by `color` (V, 3) in [0, 1], in front of
        `background` (H, W, 3) uint8, whose size is the picture's."""
        size = background.shape[:2]
        if self.scene is None or self.scene.size != (size[1], size[0]):
            if self.scene is not None:
                self.scene.close()
            self.scene = _crop_scene(vertices, self.faces, intrinsics, size)
        normals = vertex_normals(vertices, self.faces, self.incidence)
        rgb, mask = self.scene.render_sample(vertices, normals, intrinsics, light, color)
        return np.where(mask[..., None], rgb, background).transpose(2, 0, 1)


# ----------------------------------------------------------------------------------------------------
# Sets: in memory, or in shards


def _family_config(image_size: tuple[int, int], seed: int, shard_size: int, motion_share: float,
                   hand_spread: float, part_scale: float) -> dict[str, Any]:
    """A set's config without its count, the arguments checked (ValueError)."""
    if (len(image_size) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                        for s in image_size) or min(image_size) < 16):
        raise ValueError(f"image_size must be (height, width) in whole pixels, both >= 16; got {image_size!r}")
    if not (hand_spread >= 0 and part_scale > 0 and 0 <= motion_share <= 1):
        raise ValueError(f"need hand_spread >= 0, part_scale > 0 and motion_share in [0, 1]; got {hand_spread}, "
                         f"{part_scale}, {motion_share}")
    return {
        "format_version": FORMAT_VERSION, "image_size": [int(image_size[0]), int(image_size[1])], "seed": int(seed),
        "shard_size": int(shard_size), "motion_share": float(motion_share), "hand_spread": float(hand_spread),
        "part_scale": float(part_scale),
        "body_model_sha256": hashlib.sha256(body_model_file("smplx").read_bytes()).hexdigest(),
    }


def make_wholebody_samples(
    count: int,
    image_size: tuple[int, int] = (128, 96),
    seed: int = DEFAULT_SEED,
    *,
    motion_share: float = 0.5,
    hand_spread: float = 1.0,
    part_scale: float = 1.5,
) -> WholeBodySamples:
    """Render `count` whole-body samples at `image_size` = (height, width) pixels in this process,
    without files (module docstring): exactly shard 0 of `generate_wholebody` with ``shard_size =
    count`` and the same arguments. Same `seed`, same samples."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int (the number of samples); got {count!r}")
    config = _family_config(image_size, seed, count, motion_share, hand_spread, part_scale)
    # the process' worker, shared with generate_wholebody's shards made here
    return WholeBodySamples.from_arrays(shard_worker(_Worker).shard(config, 0, count))


def generate_wholebody(
    out_dir: str | os.PathLike,
    *,
    count: int,
    image_size: tuple[int, int] = (128, 96),
    seed: int = DEFAULT_SEED,
    shard_size: int = 250,
    motion_share: float = 0.5,
    hand_spread: float = 1.0,
    part_scale: float = 1.5,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Render `count` whole-body samples into `out_dir` in shards (module docstring); returns `out_dir`.

    image_size: (height, width) of the pictures in pixels; seed: the set's seed (keep it off the
    benchmark's 0, module docstring); shard_size: samples per file; motion_share: the share of body
    poses taken from procedural motions; hand_spread: the hand PCA coefficients' standard deviation
    in units of their own; part_scale: enlargement of the hand and face boxes; workers: processes
    rendering shards (1: this process). One process rendered 42.6 samples/s at 128x96 (about 24 ms
    of CPU a sample, half of it in VTK's render) on a shared 2-core machine; 2 workers, 31.7 samples/s there,
    the other load holding the second core. Shards already present are kept (an interrupted run
    resumes); shards of other configs in the folder are deleted (`hmrlab.data.shards.generate_shards`).
    """
    config = _family_config(image_size, seed, shard_size, motion_share, hand_spread, part_scale)
    return generate_shards(out_dir, config, count=count, shard_size=shard_size, worker=_Worker, workers=workers,
                           progress=progress, desc="SynthWholeBody")


def load_wholebody(folder: str | os.PathLike) -> WholeBodySamples:
    """The `WholeBodySamples` of a complete `generate_wholebody` folder (FileNotFoundError without its
    manifest, ValueError when its shards are incomplete)."""
    _, arrays = load_shards(folder, MEMBERS, "SynthWholeBody", "hmrlab.data.synth_wholebody.generate_wholebody")
    return WholeBodySamples.from_arrays(arrays)


# ----------------------------------------------------------------------------------------------------
# Training augmentation


@dataclass(frozen=True)
class WholeBodyAugmentation:
    """How `AugmentedWholeBody` perturbs a training sample: ``color``, a gain per channel in
    ``[1 - color, 1 + color]``; ``shift``, the most the body box's centre moves, as a share of its
    width and height; ``zoom``, the range of the body box's scale factor (its aspect kept)."""

    color: float = 0.3
    shift: float = 0.1
    zoom: tuple[float, float] = (0.9, 1.15)

    def __post_init__(self) -> None:
        if not (0 <= self.color < 1 and self.shift >= 0 and 0 < self.zoom[0] <= self.zoom[1]):
            raise ValueError(f"invalid WholeBodyAugmentation {self}: need color in [0, 1), shift >= 0 and "
                             "0 < zoom[0] <= zoom[1]")


class AugmentedWholeBody(Dataset):
    """`WholeBodySamples` items with a colour gain and a jittered body box (`WholeBodyAugmentation`).

    Both leave every target exact: the network crops its body box from the picture and regresses
    camera-frame parameters, which no box changes; the part boxes (teacher forcing and the box loss's
    targets) stay the true ones. No flip: mirroring would need the betas and expression mapped to
    their mirror images, which the free model's 10-dimensional spaces hold only to 0.1-0.3 mm per unit
    coefficient, and a left-right permutation of the 51 face landmarks. Draws from torch's global
    generator (which the training loop seeds, and DataLoader workers reseed).
    """

    def __init__(self, samples: WholeBodySamples, options: WholeBodyAugmentation | None = None):
        self.samples, self.options = samples, options or WholeBodyAugmentation()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.samples[index]
        options = self.options
        gain = 1 + options.color * (2 * torch.rand(3, 1, 1) - 1)
        body = item["boxes"][0]
        size = body[2:] - body[:2]
        centre = (body[:2] + body[2:]) / 2 + options.shift * (2 * torch.rand(2) - 1) * size
        zoom = options.zoom[0] + (options.zoom[1] - options.zoom[0]) * torch.rand(())
        boxes = item["boxes"].clone()
        boxes[0] = torch.cat([centre - zoom * size / 2, centre + zoom * size / 2])
        return {**item, "images": (item["images"] * gain).clamp(0, 1), "boxes": boxes}

"""SynthCrops: single-person crops rendered at a network's input size, each sample its own body, pose,
camera and look, written in npz shards (what the mesh task trains on at scale, `data.format: crops`).

`generate_3dpw_like` films a dozen people for many frames: neighbouring frames repeat the body, the
background and much of the pose, so 1,000 frames hold a dozen bodies. Here every sample draws anew:

- **body**: betas (10,) ~ N(0, I), clipped to [-3, 3];
- **pose**: with probability ``motion_share`` a random frame of a procedural motion
  (`hmrlab.data.motions`, an action drawn uniformly, a few motions per shard sampled at 10 Hz),
  otherwise an independent plausible pose (`hmrlab.data.poses.sample_poses`, spread 1 or 2, random
  heading);
- **camera**: distance 2.5-7 m, elevation -15 to 35 degrees, any azimuth, a vertical field of view of
  40-75 degrees with the person anywhere in its central 70 % (so the perspective of an off-centre
  person, too);
- **look**: a procedural background and light (`hmrlab.data.render`) and an outfit
  (`hmrlab.data.outfits`: shirt, trousers, shoes, skin, hair and eyes, which tell front from back).

Each sample is rendered directly into a square-ish **canvas**: the crop `MeshSamples` would cut from
a full picture (the box around the 24 SMPL joints and the 18 OpenPose keypoints, made to the crop's
aspect and enlarged by ``scale``, 1.25), at the crop's pixel density, plus ``pad`` pixels of margin
on each side, so that augmentation (`hmrlab.data.augment`) can shift, zoom out and rotate without
running out of picture; without augmentation the crop is the canvas' centre, with no resampling.
The canvas camera is the crop's (``K_canvas = A K`` of the virtual picture), so ``camera @ joints_3d``
projects onto ``joints_2d`` exactly.

Files (``out_dir``, `hmrlab.data.shards`): ``shard_<family>_<k>.npz``, samples ``k * shard_size ...``,
each written atomically once complete, so an interrupted generation keeps the shards it finished and
the next call makes only the others; ``manifest.json`` (written last) lists the config and the shards.
A shard depends only on the config without ``count`` (its *family*, hashed into the name) and k, so
asking for more samples keeps the shards made. Shard members: ``images`` (n, Hc, Wc, 3) uint8,
``pose`` (n, 72) SMPL axis-angle with the global orientation in the camera frame, ``betas`` (n, 10),
``joints_3d`` (n, 24, 3) camera frame, metres, ``joints_2d`` (n, 24, 2) and ``keypoints_2d``
(n, 18, 2) canvas pixels (OpenPose order, `hmrlab.data.pw3d.PW3D_KEYPOINTS_2D`), ``camera``
(n, 3, 3) canvas intrinsics, ``action`` (n,) int8 (index into `hmrlab.data.motions.ACTIONS`, -1 for
a sampled pose).

**Disjoint from the common test split.** Shard k draws from ``SeedSequence([seed, CROP_KEY, k])``,
``CROP_KEY = crc32(b"synth-crops")``; `generate_3dpw_like` sequence k from ``SeedSequence([seed,
crc32(f"3dpw-{k}")])``. No ``3dpw-k`` key equals ``CROP_KEY`` (tested for k < 10^6), so no shard shares
a generator, hence a body, motion or camera, with a benchmark sequence whatever the seeds; the default
seed (``DEFAULT_SEED`` = 1, the benchmark set's is 0) keeps them apart a second time.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse
import torch

from hmrlab.body import body_model_arrays, body_model_file
from hmrlab.body.lbs import BodyModel
from hmrlab.data.cameras import look_at_rotation
from hmrlab.data.motions import ACTIONS, generate_motion
from hmrlab.data.outfits import outfit_parts, random_outfit
from hmrlab.data.poses import sample_poses
from hmrlab.data.shards import generate_shards, load_shards
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

if TYPE_CHECKING:
    from hmrlab.data.render import Lighting

FORMAT_VERSION = 2  # bump when the generator changes what a config produces
CROP_KEY = zlib.crc32(b"synth-crops")
DEFAULT_SEED = 1
NUM_BETAS = 10
SCALE = 1.25  # the box's enlargement, as MeshSamples' default
MOTION_FPS = 10
MEMBERS = ("images", "pose", "betas", "joints_3d", "joints_2d", "keypoints_2d", "camera", "action")


def canvas_size(crop_size: tuple[int, int], pad: int) -> tuple[int, int]:
    """(height, width) of the canvas of a crop of `crop_size` (H, W) with `pad` pixels each side."""
    return crop_size[0] + 2 * pad, crop_size[1] + 2 * pad


def canvas_settings(crop_size: Sequence[int], pad: int | None) -> tuple[tuple[int, int], int]:
    """`crop_size` (height, width) checked (both >= 16 pixels) and `pad`, the canvas margin per side
    in pixels, checked or (None) an eighth of the crop's larger side, so the canvas spans 1.25 crops."""
    if len(crop_size) != 2 or min(crop_size) < 16:
        raise ValueError(f"crop_size must be (height, width) with both >= 16 pixels, e.g. (96, 96); got {crop_size}")
    pad = max(crop_size) // 8 if pad is None else pad
    if pad < 0:
        raise ValueError(f"pad must be >= 0 pixels; got {pad}")
    return (int(crop_size[0]), int(crop_size[1])), int(pad)


def _shard_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, CROP_KEY, index]))


# ----------------------------------------------------------------------------------------------------
# Drawing a shard's samples


def _draw_poses(n: int, rng: np.random.Generator, motion_share: float) -> tuple[torch.Tensor, np.ndarray]:
    """World poses (n, 24, 3) axis-angle, y up, and each one's action index (-1: a sampled pose)."""
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    from_motion = rng.random(n) < motion_share
    poses = torch.zeros(n, 24, 3)
    actions = np.full(n, -1, dtype=np.int8)
    count = int(from_motion.sum())
    if count:
        # A few motions per shard, each giving several random frames: generating a motion costs
        # about as much as rendering ten samples, a frame of one costs nothing.
        motions = []
        for _ in range(max(1, math.ceil(count / 8))):
            action = int(rng.integers(len(ACTIONS)))
            motions.append((action, generate_motion(ACTIONS[action], generator=generator, fps=MOTION_FPS).poses))
        for i in np.flatnonzero(from_motion):
            action, frames = motions[int(rng.integers(len(motions)))]
            poses[i], actions[i] = frames[int(rng.integers(len(frames)))], action
    static = np.flatnonzero(~from_motion)
    wide = rng.random(len(static)) < 0.5  # half at twice the everyday spread, still inside the limits
    for spread, chosen in ((1.0, static[~wide]), (2.0, static[wide])):
        if len(chosen):
            poses[torch.as_tensor(chosen)] = sample_poses(len(chosen), generator, spread=spread, random_yaw=True)
    return poses, actions


def _camera_rotation(rng: np.random.Generator, half_fov: float) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera rotation (3, 3) and camera centre (3,) looking toward a pelvis at the origin,
    then turned so that the pelvis lands off-centre, within 70 % of the half field of view."""
    distance = rng.uniform(2.5, 7.0)
    elevation, azimuth = np.radians(rng.uniform(-15.0, 35.0)), rng.uniform(0.0, 2 * np.pi)
    position = distance * np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                                    np.cos(elevation) * np.cos(azimuth)])
    look = look_at_rotation(position, np.zeros(3))
    off_x, off_y = rng.uniform(-0.7, 0.7, size=2) * half_fov
    # turning the camera by (off_x, off_y) about its own y and x axes moves the target off the axis
    turn_y = np.array([[np.cos(off_x), 0, -np.sin(off_x)], [0, 1, 0], [np.sin(off_x), 0, np.cos(off_x)]])
    turn_x = np.array([[1, 0, 0], [0, np.cos(off_y), np.sin(off_y)], [0, -np.sin(off_y), np.cos(off_y)]])
    return turn_x @ turn_y @ look, position


def _canvas_camera(points: np.ndarray, crop_size: tuple[int, int], pad: int, scale: float) -> np.ndarray:
    """Canvas intrinsics (3, 3) for camera-frame `points` (P, 3) to box: a unit-focal picture's box
    of their projections, made to the crop's aspect and enlarged by `scale`, fills the crop region
    (the canvas minus `pad` pixels each side), as `hmrlab.data.crops.person_crop` would cut it."""
    uv = points[:, :2] / points[:, 2:]
    low, high = uv.min(0), uv.max(0)
    height, width = crop_size
    box_w, box_h = high - low
    aspect = width / height
    box_w = max(box_w, box_h * aspect)
    s = width / (scale * box_w)  # canvas pixels per unit of the unit-focal picture
    centre = (low + high) / 2
    out_h, out_w = canvas_size(crop_size, pad)
    return np.array([[s, 0.0, (out_w - 1) / 2 - s * centre[0]], [0.0, s, (out_h - 1) / 2 - s * centre[1]],
                     [0.0, 0.0, 1.0]])


def face_incidence(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """The (N, F) sparse matrix with a 1 where vertex n is a corner of face f (for `vertex_normals`)."""
    count = len(faces)
    ones = np.ones(3 * count, np.float32)
    return scipy.sparse.csr_matrix((ones, (faces.T.reshape(-1), np.tile(np.arange(count), 3))),
                                   shape=(num_vertices, count))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence: scipy.sparse.csr_matrix) -> np.ndarray:
    """Unit vertex normals (N, 3) of a mesh (N, 3) with faces (F, 3) and their `face_incidence`: the
    area-weighted sum of the normals of the faces around each vertex, what VTK's smooth shading
    computes (here in a few milliseconds, without VTK's pipeline)."""
    a = vertices[faces[:, 0]]
    e1, e2 = vertices[faces[:, 1]] - a, vertices[faces[:, 2]] - a
    face_normals = np.empty_like(e1)  # e1 x e2, written out: np.cross is several times slower here
    face_normals[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
    face_normals[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    face_normals[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    normals = incidence @ face_normals
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


class _Worker:
    """What a generating process keeps between shards: the body model and one open render window."""

    def __init__(self) -> None:
        torch.set_num_threads(1)
        arrays = body_model_arrays("smpl")
        self.model = BodyModel(arrays, num_betas=NUM_BETAS)
        self.faces = self.model.faces.numpy().astype(np.int64)
        self.incidence = face_incidence(self.faces, self.model.v_template.shape[0])
        self.extra_ids = {str(n): int(i) for n, i in zip(arrays["extra_vertex_names"], arrays["extra_vertex_ids"])}
        self.parts = outfit_parts(arrays)
        self.scene = None

    def shard(self, config: dict[str, Any], index: int, count: int) -> dict[str, np.ndarray]:
        """The arrays of shard `index` (`count` samples), rendered (module docstring)."""
        from hmrlab.data.synth_images import openpose_keypoints

        rng = _shard_rng(config["seed"], index)
        crop_size, pad = tuple(config["crop_size"]), config["pad"]
        poses, actions = _draw_poses(count, rng, config["motion_share"])
        betas = torch.as_tensor(np.clip(rng.standard_normal((count, NUM_BETAS)), -3, 3), dtype=torch.float32)
        with torch.no_grad():
            vertices, joints = self.model(betas=betas, body_pose=poses[:, 1:], global_orient=poses[:, 0])
            root = joints[:, :1]
            vertices, joints = vertices - root, joints - root  # pelvis at the world origin
        keypoints = openpose_keypoints(joints.double().numpy(), vertices.double().numpy(), self.extra_ids)
        images = np.zeros((count, *canvas_size(crop_size, pad), 3), np.uint8)
        out = {name: [] for name in ("pose", "joints_3d", "joints_2d", "keypoints_2d", "camera")}
        for i in range(count):
            fov = np.radians(rng.uniform(40.0, 75.0))
            rotation, position = _camera_rotation(rng, fov / 2)
            to_camera = (lambda p: (p - position) @ rotation.T)  # noqa: E731
            points_3d, kp_3d = to_camera(joints[i].double().numpy()), to_camera(keypoints[i])
            camera = _canvas_camera(np.concatenate([points_3d, kp_3d]), crop_size, pad, config["scale"])
            v_cam = to_camera(vertices[i].double().numpy())
            n_cam = vertex_normals(vertices[i].numpy(), self.faces, self.incidence) @ rotation.T
            images[i] = self._render(v_cam, n_cam, camera, images.shape[1:3], rng)
            root = rotation @ axis_angle_to_matrix(poses[i, 0].double()).numpy()
            pose = poses[i].double().clone()
            pose[0] = matrix_to_axis_angle(torch.from_numpy(root))
            project = (lambda p: (p @ camera.T)[:, :2] / p[:, 2:])  # noqa: E731
            out["pose"].append(pose.reshape(72).numpy())
            out["joints_3d"].append(points_3d)
            out["joints_2d"].append(project(points_3d))
            out["keypoints_2d"].append(project(kp_3d))
            out["camera"].append(camera)
        arrays = {name: np.stack(values).astype(np.float32) for name, values in out.items()}
        return {"images": images, "betas": betas.numpy(), "action": actions, **arrays}

    def _render(self, vertices: np.ndarray, normals: np.ndarray, camera: np.ndarray, size: tuple[int, int],
                rng: np.random.Generator) -> np.ndarray:
        """One canvas (H, W, 3) uint8, `size` = (H, W), of camera-frame `vertices` (N, 3) with their
        `normals`, seen through canvas intrinsics `camera` (3, 3), on a random background and light."""
        from hmrlab.data.render import random_background, random_lighting

        light, color = random_lighting(rng), random_outfit(self.parts, rng)
        return self._draw(vertices, normals, camera, light, color, random_background(size, rng))

    def _draw(self, vertices: np.ndarray, normals: np.ndarray, camera: np.ndarray, light: Lighting,
              color: np.ndarray, background: np.ndarray) -> np.ndarray:
        """`_render` with the look given: `light`, per-vertex `color` (N, 3) in [0, 1] and the
        `background` (H, W, 3) uint8 behind the person, whose size is the picture's."""
        size = background.shape[:2]
        if self.scene is None or self.scene.size != (size[1], size[0]):
            if self.scene is not None:
                self.scene.close()
            self.scene = _crop_scene(vertices, self.faces, camera, size)
        rgb, mask = self.scene.render_sample(vertices, normals, camera, light, color)
        return np.where(mask[..., None], rgb, background)


def _crop_scene(vertices: np.ndarray, faces: np.ndarray, camera: np.ndarray, size: tuple[int, int]):
    """An offscreen window (`hmrlab.data.render`'s) that re-aims its camera, light and colour per sample
    and shades with the vertex normals it is given: pyvista's smooth shading recomputes them in its
    pipeline on every frame, the larger part of a frame's time at these sizes."""
    import pyvista as pv

    from hmrlab.data.cameras import Camera
    from hmrlab.data.render import FLAT_BACKGROUND, Lighting, _OffscreenScene, color_temperature_rgb

    def view(matrix: np.ndarray) -> Camera:
        return Camera(np.eye(3), np.zeros(3), (matrix[0, 0], matrix[1, 1]), matrix[:2, 2], (size[1], size[0]))

    class CropScene(_OffscreenScene):
        def _build(self, vertices, faces, camera, light, color) -> None:
            self.plotter.ren_win.SetMultiSamples(0)  # as the parent: masks at pixel centres
            self.mesh = pv.PolyData.from_regular_faces(vertices, faces)
            self.mesh.point_data["Normals"] = np.zeros_like(vertices)
            self.mesh.point_data.active_normals_name = "Normals"
            self.mesh.point_data["colors"] = np.zeros((len(vertices), 3), np.uint8)
            self.actor = self.plotter.add_mesh(self.mesh, scalars="colors", rgb=True, smooth_shading=False)
            self.actor.prop.interpolation = "gouraud"
            self.actor.prop.specular, self.actor.prop.specular_power = 0.15, 20.0
            self.plotter.set_background(FLAT_BACKGROUND)
            self.light = pv.Light(positional=False)
            self.plotter.add_light(self.light)

        def render_sample(self, vertices, normals, camera, light, color):
            self._set_camera(view(camera))
            # the camera sits at the origin looking along +z: the light's camera-frame direction is
            # its world direction; place it one unit from the focal point along it
            direction = np.asarray(light.direction, dtype=float)
            self.light.position, self.light.focal_point = tuple(np.array([0, 0, 1.0]) + direction), (0.0, 0.0, 1.0)
            self.light.intensity = light.intensity
            self.light.color = tuple(color_temperature_rgb(light.temperature))
            prop = self.actor.prop
            prop.ambient, prop.diffuse = light.ambient, 1.0 - light.ambient
            self.mesh.points = vertices
            self.mesh.point_data["Normals"] = normals
            self.mesh.point_data["colors"] = np.round(255 * color).astype(np.uint8)
            depth = vertices[:, 2]
            self.plotter.camera.clipping_range = (max(0.05, depth.min() - 0.5), depth.max() + 0.5)
            window = self.plotter.ren_win
            window.Render()
            height, width = size
            window.GetPixelData(0, 0, width - 1, height - 1, 1, self._rgb, 0)
            rgb = vtk_to_numpy(self._rgb).reshape(height, width, 3)[::-1].copy()
            window.GetZbufferData(0, 0, width - 1, height - 1, self._depth)
            mask = vtk_to_numpy(self._depth).reshape(height, width)[::-1] < 1.0
            return rgb, mask

    from vtkmodules.util.numpy_support import vtk_to_numpy

    return CropScene(vertices, faces, view(camera), Lighting(), (0.5, 0.5, 0.5))


# ----------------------------------------------------------------------------------------------------
# Generation: shards in worker processes (`hmrlab.data.shards`)


def generate_crops(
    out_dir: str | os.PathLike,
    *,
    count: int,
    crop_size: tuple[int, int] = (96, 96),
    pad: int | None = None,
    seed: int = DEFAULT_SEED,
    shard_size: int = 250,
    motion_share: float = 0.5,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Render `count` SynthCrops samples into `out_dir` in shards (module docstring); returns `out_dir`.

    crop_size: (height, width) of the network's crop; pad: canvas margin per side in pixels (default
    an eighth of the crop's larger side, so the canvas spans 1.25 crops); seed: the set's seed (keep
    it off the benchmark's, module docstring); shard_size: samples per file; motion_share: the
    share of poses taken from procedural motions; workers: processes rendering shards (1: this
    process). Shards already present are kept (an interrupted run resumes); a manifest with the same
    config means nothing is rendered. Files of other configs in the folder are deleted
    (`hmrlab.data.shards.generate_shards`).
    """
    crop_size, pad = canvas_settings(crop_size, pad)
    if not 0 <= motion_share <= 1:
        raise ValueError(f"motion_share must be in [0, 1]; got {motion_share}")
    family_config = {
        "format_version": FORMAT_VERSION, "crop_size": list(crop_size), "pad": pad,
        "scale": SCALE, "seed": int(seed), "shard_size": int(shard_size), "motion_share": float(motion_share),
        "body_model_sha256": hashlib.sha256(body_model_file("smpl").read_bytes()).hexdigest(),
    }
    return generate_shards(out_dir, family_config, count=count, shard_size=shard_size, worker=_Worker,
                           workers=workers, progress=progress, desc="SynthCrops")


def load_crops(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The config and the concatenated shard arrays (`MEMBERS`) of a complete SynthCrops folder."""
    return load_shards(folder, MEMBERS, "SynthCrops", "hmrlab.data.synth_crops.generate_crops")

"""Files a fitted body motion can be used from: OBJ meshes, an animated GLB, a BVH, an MP4/GIF render.

- `write_obj` / `write_obj_sequence`: one Wavefront OBJ per frame (``v`` and 1-based ``f`` lines),
  metres, the mesh as posed (pose correctives included).
- `write_glb`: one binary glTF 2.0 file (Khronos glTF 2.0 specification): the shaped rest mesh skinned to
  the body's 24 joints (``skin`` with inverse bind matrices, each vertex's `GLB_INFLUENCES` strongest
  weights renormalised, as JOINTS_0 / WEIGHTS_0), and one animation sampling every joint's rotation and
  the root's translation per frame (LINEAR). glTF's frame is hmrlab's world (y up, metres, +z the front),
  so a `WorldMotion` is written as it is. Skinning in the viewer is linear blend skinning without SMPL's
  pose-corrective blend shapes, so elbows and knees bend a little flatter than in the OBJs.
- `write_bvh`: the joint rotations on the body model's skeleton (rest offsets of the shaped body, metres),
  Euler angles in degrees with BVH's usual ``Zrotation Xrotation Yrotation`` channels (``R = Rz Rx Ry``),
  the root's position channels the pelvis' world path.
- `render_overlay` (the mesh over the input frames, through the camera), `render_ground_view` (the mesh
  on a floor, seen by a still virtual camera), `draw_skeleton` (2D bones on frames) and `write_video`
  (MP4 through imageio's ffmpeg, or GIF) make a clip; rendering is offscreen (`hmrlab.data.render`).

The renderers and imageio are imported when called, so exporting files needs neither.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hmrlab.apply.fit import FitBody, WorldMotion, fitting_body
from hmrlab.body.lbs import blend_shapes, regress_joints
from hmrlab.body.skeletons import SMPL_24
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_quaternion
from hmrlab.io import atomic_write, atomic_write_text
from hmrlab.validation import check_faces, format_shape

GLB_INFLUENCES = 4
"""Joint influences per vertex in the GLB (glTF viewers support 4 everywhere; the free model uses up to 7)."""


def _vertices(vertices: np.ndarray, name: str = "vertices") -> np.ndarray:
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 3 or vertices.shape[-1] != 3 or not np.isfinite(vertices).all():
        raise ValueError(f"{name} must be finite (T, N, 3) metres; got {format_shape(vertices.shape)}")
    return vertices


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """One mesh as a Wavefront OBJ: vertices (N, 3) metres, faces (F, 3) 0-based (written 1-based)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = check_faces(faces, len(vertices))
    # one %-format over the whole array: ten times faster than a line at a time
    text = ("v %.6f %.6f %.6f\n" * len(vertices)) % tuple(vertices.reshape(-1).tolist())
    text += ("f %d %d %d\n" * len(faces)) % tuple((faces + 1).reshape(-1).tolist())
    return atomic_write_text(path, "# hmrlab body mesh, metres, y up\n" + text)


def write_obj_sequence(folder: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray,
                       *, progress: bool = True) -> list[Path]:
    """Meshes (T, N, 3) as ``folder/frame_00000.obj`` ...; returns the paths."""
    vertices = _vertices(vertices)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_obj(folder / f"frame_{t:05d}.obj", v, faces)
            for t, v in enumerate(tqdm(vertices, desc="OBJ", disable=not progress))]


# ---------------------------------------------------------------------------------------------------
# glTF 2.0 (GLB)
# ---------------------------------------------------------------------------------------------------

_FLOAT, _UINT, _UBYTE, _USHORT = 5126, 5125, 5121, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


class _GltfBuffer:
    """Accumulates bufferViews and accessors over one binary buffer, 4-byte aligned."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, component: int, *, target: int | None = None, bounds: bool = False) -> int:
        dtype = {_FLOAT: "<f4", _UINT: "<u4", _UBYTE: "u1", _USHORT: "<u2"}[component]
        array = np.ascontiguousarray(array, dtype=dtype)
        width = 1 if array.ndim == 1 else int(np.prod(array.shape[1:]))
        self.data.extend(b"\0" * (-len(self.data) % 4))
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": array.nbytes}
        if target is not None:
            view["target"] = target
        self.data.extend(array.tobytes())
        self.views.append(view)
        accessor = {"bufferView": len(self.views) - 1, "componentType": component, "count": len(array),
                    "type": _TYPES[width]}
        if bounds:
            flat = array.reshape(len(array), width).astype(np.float64)
            accessor["min"], accessor["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-12), np.array([0.0, 1.0, 0.0]))


def strongest_influences(weights: np.ndarray, count: int = GLB_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """Each vertex's `count` largest skinning weights (N, J) -> joints (N, count) and weights (N, count)
    renormalised to sum to 1 (what the GLB stores)."""
    weights = np.asarray(weights, dtype=np.float64)
    joints = np.argsort(-weights, axis=1, kind="stable")[:, :count]
    kept = np.take_along_axis(weights, joints, 1)
    kept = kept / kept.sum(1, keepdims=True)
    joints = np.where(kept > 0, joints, 0)  # unused slots point at joint 0 with weight 0
    return joints, kept


def _rest_skeleton(body: FitBody, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shaped rest mesh (N, 3) and rest joints (24, 3), metres."""
    with torch.no_grad():
        betas_t = torch.as_tensor(np.asarray(betas), dtype=body.model.v_template.dtype).reshape(1, -1)
        v_shaped = body.model.v_template + blend_shapes(betas_t, body.model.shapedirs)
        joints = regress_joints(body.model.J_regressor, v_shaped)
    return v_shaped[0].double().numpy(), joints[0].double().numpy()


def write_glb(
    path: str | os.PathLike,
    motion: WorldMotion,
    *,
    body: FitBody | None = None,
    color: Sequence[float] = (0.78, 0.62, 0.52),
    influences: int = GLB_INFLUENCES,
) -> Path:
    """An animated, skinned body as one binary glTF 2.0 file (module docstring); returns the path."""
    body = body or fitting_body()
    parents = body.model.parents.tolist()
    faces = body.faces
    rest_vertices, rest_joints = _rest_skeleton(body, motion.betas)
    joints, weights = strongest_influences(body.model.weights.double().numpy(), influences)
    frames = len(motion.poses)
    quaternions = matrix_to_quaternion(axis_angle_to_matrix(torch.as_tensor(motion.poses, dtype=torch.float64)))
    quaternions = quaternions[..., [1, 2, 3, 0]].numpy()  # glTF stores (x, y, z, w)
    root_path = np.asarray(motion.transl, dtype=np.float64) + rest_joints[0]
    times = np.arange(frames) / float(motion.fps)

    buffer = _GltfBuffer()
    attributes = {
        "POSITION": buffer.add(rest_vertices, _FLOAT, target=_ARRAY_BUFFER, bounds=True),
        "NORMAL": buffer.add(_vertex_normals(rest_vertices, faces), _FLOAT, target=_ARRAY_BUFFER),
    }
    for k in range(0, influences, 4):  # sets of four: JOINTS_0/WEIGHTS_0, JOINTS_1/WEIGHTS_1, ...
        block_joints = np.zeros((len(joints), 4), dtype=np.uint8)
        block_weights = np.zeros((len(joints), 4))
        width = min(4, influences - k)
        block_joints[:, :width], block_weights[:, :width] = joints[:, k : k + width], weights[:, k : k + width]
        attributes[f"JOINTS_{k // 4}"] = buffer.add(block_joints, _UBYTE, target=_ARRAY_BUFFER)
        attributes[f"WEIGHTS_{k // 4}"] = buffer.add(block_weights, _FLOAT, target=_ARRAY_BUFFER)
    indices = buffer.add(faces.reshape(-1).astype(np.uint32), _UINT, target=_ELEMENT_ARRAY_BUFFER)
    inverse_bind = np.tile(np.eye(4), (len(parents), 1, 1))
    inverse_bind[:, :3, 3] = -rest_joints
    ibm = buffer.add(np.swapaxes(inverse_bind, 1, 2).reshape(len(parents), 16), _FLOAT)  # column-major
    time_accessor = buffer.add(times, _FLOAT, bounds=True)
    rotation_accessors = [buffer.add(quaternions[:, j], _FLOAT) for j in range(len(parents))]
    translation_accessor = buffer.add(root_path, _FLOAT)

    # node 0: the mesh; nodes 1..24: the joints, joint j at node j + 1
    joint_nodes = []
    for j, parent in enumerate(parents):
        offset = rest_joints[j] - (rest_joints[parent] if parent >= 0 else 0.0)
        node = {"name": SMPL_24.joint_names[j] if len(parents) == 24 else f"joint_{j}",
                "translation": offset.tolist(), "rotation": [0.0, 0.0, 0.0, 1.0]}
        children = [c + 1 for c, p in enumerate(parents) if p == j]
        if children:
            node["children"] = children
        joint_nodes.append(node)
    channels = [{"sampler": j, "target": {"node": j + 1, "path": "rotation"}} for j in range(len(parents))]
    samplers = [{"input": time_accessor, "output": a, "interpolation": "LINEAR"} for a in rotation_accessors]
    samplers.append({"input": time_accessor, "output": translation_accessor, "interpolation": "LINEAR"})
    channels.append({"sampler": len(samplers) - 1, "target": {"node": 1, "path": "translation"}})
    document = {
        "asset": {"version": "2.0", "generator": "hmrlab.apply.export"},
        "scene": 0,
        "scenes": [{"name": "hmrlab", "nodes": [0, 1]}],
        "nodes": [{"name": "body", "mesh": 0, "skin": 0}, *joint_nodes],
        "meshes": [{"name": "body", "primitives": [{"attributes": attributes, "indices": indices, "material": 0,
                                                     "mode": 4}]}],
        "materials": [{"name": "skin", "pbrMetallicRoughness": {
            "baseColorFactor": [*map(float, color), 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8}}],
        "skins": [{"name": "body", "inverseBindMatrices": ibm, "joints": list(range(1, len(parents) + 1)),
                   "skeleton": 1}],
        "animations": [{"name": "motion", "channels": channels, "samplers": samplers}],
        "buffers": [{"byteLength": len(buffer.data)}],
        "bufferViews": buffer.views,
        "accessors": buffer.accessors,
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = bytes(buffer.data) + b"\0" * (-len(buffer.data) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        handle.write(struct.pack("<4sII", b"glTF", 2, total))
        handle.write(struct.pack("<I4s", len(text), b"JSON") + text)
        handle.write(struct.pack("<I4s", len(binary), b"BIN\0") + binary)
    return Path(path)


# ---------------------------------------------------------------------------------------------------
# BVH
# ---------------------------------------------------------------------------------------------------

BVH_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


def euler_zxy(rotmats: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> BVH angles (..., 3) in degrees, (z, x, y) with ``R = Rz(z) Rx(x) Ry(y)``."""
    from scipy.spatial.transform import Rotation

    shape = rotmats.shape[:-2]
    angles = Rotation.from_matrix(np.asarray(rotmats, dtype=np.float64).reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)
    return angles.reshape(*shape, 3)


def write_bvh(path: str | os.PathLike, motion: WorldMotion, *, body: FitBody | None = None,
              scale: float = 1.0) -> Path:
    """The motion's joint rotations as BVH on the body model's skeleton (module docstring); offsets and
    positions in metres times `scale` (100 for centimetres). Returns the path."""
    body = body or fitting_body()
    parents = body.model.parents.tolist()
    names = SMPL_24.joint_names if len(parents) == 24 else tuple(f"joint_{j}" for j in range(len(parents)))
    _, rest_joints = _rest_skeleton(body, motion.betas)
    children = [[c for c, p in enumerate(parents) if p == j] for j in range(len(parents))]
    order: list[int] = []
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        order.append(j)
        offset = np.zeros(3) if parents[j] < 0 else (rest_joints[j] - rest_joints[parents[j]]) * scale
        kind = "ROOT" if parents[j] < 0 else "JOINT"
        lines.extend([f"{pad}{kind} {names[j]}", f"{pad}{{", f"{pad}  OFFSET {' '.join(f'{o:.6f}' for o in offset)}"])
        if parents[j] < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {' '.join(BVH_CHANNELS)}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {' '.join(BVH_CHANNELS)}")
        for child in children[j]:
            joint(child, depth + 1)
        if not children[j]:  # an end site half a bone beyond the leaf, along its bone
            tip = 0.5 * (rest_joints[j] - rest_joints[parents[j]]) * scale
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {' '.join(f'{o:.6f}' for o in tip)}",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    frames = len(motion.poses)
    angles = euler_zxy(axis_angle_to_matrix(torch.as_tensor(motion.poses, dtype=torch.float64)).numpy())
    position = (np.asarray(motion.transl, dtype=np.float64) + rest_joints[0]) * scale
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    for t in range(frames):
        values = [*position[t], *angles[t, order].reshape(-1)]
        lines.append(" ".join(f"{v:.9f}" for v in values))
    return atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------
# Pictures and clips
# ---------------------------------------------------------------------------------------------------


def render_overlay(
    frames: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    focal: float | Sequence[float],
    center: Sequence[float],
    *,
    alpha: float = 0.65,
) -> np.ndarray:
    """The camera-frame meshes (T, N, 3) rendered through the pinhole (focal, center pixels) over the
    input `frames` (T, H, W, 3) uint8, blended by `alpha` where the body covers a pixel: (T, H, W, 3) uint8."""
    from hmrlab.data.cameras import Camera
    from hmrlab.data.render import render_clip

    frames = np.asarray(frames)
    vertices = _vertices(vertices)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) != len(vertices):
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T = {len(vertices)} (one per mesh); got "
                         f"{frames.dtype} {format_shape(frames.shape)}")
    height, width = frames.shape[1:3]
    camera = Camera(np.eye(3), np.zeros(3), np.broadcast_to(np.asarray(focal, dtype=float), (2,)), center,
                    (width, height))
    rendered, masks = render_clip(vertices, faces, camera)
    blend = (alpha * rendered + (1 - alpha) * frames).round().astype(np.uint8)
    return np.where(masks[..., None], blend, frames)


def render_ground_view(
    vertices: np.ndarray,
    faces: np.ndarray,
    *,
    size: tuple[int, int] = (480, 360),
    azimuth: float = 30.0,
    progress: bool = True,
) -> np.ndarray:
    """World meshes (T, N, 3) (y up, floor y = 0) on a grey floor, seen by a still camera `azimuth`
    degrees round from the front (+z), 1.6 m high, far enough to keep the whole path in view:
    (T, H, W, 3) uint8 for `size` = (width, height)."""
    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkLogger

    vertices = _vertices(vertices)
    faces = check_faces(faces, vertices.shape[1])
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    low, high = vertices.min((0, 1)), vertices.max((0, 1))
    centre = (low + high) / 2
    reach = float(np.linalg.norm(high[[0, 2]] - low[[0, 2]]) / 2 + 1.2)
    plotter = pv.Plotter(off_screen=True, window_size=size)
    try:
        floor = pv.Plane(center=(centre[0], 0.0, centre[2]), direction=(0, 1, 0), i_size=2 * reach + 2,
                         j_size=2 * reach + 2, i_resolution=12, j_resolution=12)
        plotter.add_mesh(floor, color=(0.82, 0.82, 0.8), show_edges=True, edge_color=(0.6, 0.6, 0.6))
        mesh = pv.PolyData.from_regular_faces(vertices[0], faces)
        plotter.add_mesh(mesh, color=(0.78, 0.62, 0.52), smooth_shading=True)
        plotter.set_background((1.0, 1.0, 1.0))
        angle = np.radians(azimuth)
        distance = 2.2 * reach + 1.5
        plotter.camera.position = (centre[0] + distance * np.sin(angle), 1.6, centre[2] + distance * np.cos(angle))
        plotter.camera.focal_point = (centre[0], 0.9, centre[2])
        plotter.camera.up = (0, 1, 0)
        images = []
        for frame in tqdm(vertices, desc="render", disable=not progress):
            mesh.points = frame
            plotter.render()
            images.append(np.asarray(plotter.screenshot(return_img=True))[..., :3].copy())
    finally:
        plotter.close()
    return np.stack(images)


def draw_skeleton(
    frames: np.ndarray,
    keypoints: np.ndarray,
    bones: Sequence[tuple[int, int]],
    *,
    color: tuple[int, int, int] = (40, 220, 90),
    width: int = 2,
) -> np.ndarray:
    """2D bones (T, J, 2 or 3) pixels drawn over `frames` (T, H, W, 3) uint8 (missing points skipped)."""
    from PIL import Image, ImageDraw

    frames = np.asarray(frames)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if len(frames) != len(keypoints):
        raise ValueError(f"one keypoint set per frame: {len(frames)} frames, {len(keypoints)} keypoint sets")
    out = []
    for image, points in zip(frames, keypoints):
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        known = np.isfinite(points[:, :2]).all(-1) & ((points[:, 2] > 0) if points.shape[-1] == 3 else True)
        for a, b in bones:
            if known[a] and known[b]:
                draw.line([tuple(points[a, :2]), tuple(points[b, :2])], fill=color, width=width)
        for point in points[known, :2]:
            x, y = point
            draw.ellipse([x - width, y - width, x + width, y + width], fill=color)
        out.append(np.asarray(picture))
    return np.stack(out)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 30.0, *, progress: bool = True) -> Path:
    """Frames (T, H, W, 3) uint8 as an MP4 (H.264 through imageio-ffmpeg's own ffmpeg) or a GIF (by the suffix)."""
    try:
        import imageio.v2 as imageio
    except ImportError as error:  # a core dependency; a trimmed environment may lack it
        raise ImportError("writing a video needs imageio and imageio-ffmpeg: "
                          "pip install imageio imageio-ffmpeg") from error
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3); got {frames.dtype} {format_shape(frames.shape)}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"write_video writes .mp4 or .gif files; got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # imageio picks its writer by the suffix: a temporary name that keeps it, renamed when complete
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}{suffix}"
    try:
        if suffix == ".gif":
            imageio.mimsave(tmp, list(frames), duration=1000.0 / fps, loop=0)
        else:
            # H.264 in yuv420p needs even sizes: pad by one pixel where needed rather than rescale
            pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=2, ffmpeg_log_level="error")
            try:
                for frame in tqdm(np.pad(frames, pad, mode="edge"), desc="video", disable=not progress):
                    writer.append_data(frame)
            finally:
                writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = [
    "BVH_CHANNELS", "GLB_INFLUENCES", "draw_skeleton", "euler_zxy", "render_ground_view", "render_overlay",
    "strongest_influences", "write_bvh", "write_glb", "write_obj", "write_obj_sequence", "write_video",
]

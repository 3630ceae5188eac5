"""Plotting helpers for the notebooks: skeletons and meshes in plotly, offscreen renders with pyvista.

Conventions follow SMPL: metres, y up, the body faces +z, so the person's left side is +x.
The "front" view puts the camera on +z looking toward -z with y up; in it +x appears on the
right of the image, as in a photo of a person facing the camera (their left hand on our right).

Everything here works headless (no display, no GPU): plotly figures are JSON, and pyvista renders
through VTK's offscreen OpenGL (EGL or OSMesa). Nothing in `hmrlab`'s core maths imports this module.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pyvista as pv
from vtkmodules.vtkCommonCore import vtkLogger

from hmrlab.validation import (
    check_faces,
    check_parents,
    check_points,
    check_same_shape,
    format_shape,
    to_numpy,
)

# Slightly above and to the side of the front view, so that depth is visible in 3D plots.
FIGURE_HEIGHT = 500  # pixels; JupyterLab gives a 3D scene without one only ~180 px
_PLOTLY_CAMERA = dict(up=dict(x=0, y=1, z=0), eye=dict(x=0.6, y=0.4, z=1.8))
_COLOR, _OTHER_COLOR = "royalblue", "crimson"
_AXIS_TITLES = {"xaxis_title": "x (m)", "yaxis_title": "y (m)", "zaxis_title": "z (m)"}


def configure_notebook_output() -> None:
    """Choose notebook output formats that need no display and keep committed notebooks small.

    plotly: the renderer is ``$PLOTLY_RENDERER`` if set, else
    ``"plotly_mimetype"``. That renderer emits only the figure's JSON under the MIME type
    ``application/vnd.plotly.v1+json``; JupyterLab, Notebook 7 and VS Code draw it with the plotly
    extension shipped in the plotly wheel, so the ~4 MB plotly.js bundle is never written into the
    notebook. (plotly's default inside Jupyter, ``"plotly_mimetype+notebook"``, embeds it.)

    pyvista: ``pyvista.OFF_SCREEN`` is set when ``$PYVISTA_OFF_SCREEN`` is ``"true"`` or when no
    display is available (Linux without ``$DISPLAY`` or ``$WAYLAND_DISPLAY``). The Jupyter backend
    of ``Plotter.show()`` is ``$PYVISTA_JUPYTER_BACKEND`` if set; else ``"trame"`` (a 3D view to
    rotate, rendered by VTK in the kernel and streamed to the page) where a display is available and
    the ``interactive`` extra (``pyvista[jupyter]``) is installed; else ``"static"`` (a PNG image,
    no extra packages, also what committed notebooks keep).
    Without a display VTK first tries X, warns "bad X server connection" and falls back to EGL or
    OSMesa by itself; that warning is silenced so it does not land in every notebook's outputs.

    Calling it again applies the same settings (idempotent).
    """
    pio.renderers.default = os.environ.get("PLOTLY_RENDERER", "plotly_mimetype")
    no_display = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if os.environ.get("PYVISTA_OFF_SCREEN", "").lower() == "true" or no_display:
        pv.OFF_SCREEN = True
    if no_display:
        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
    interactive = not no_display and importlib.util.find_spec("trame_vtk") is not None
    pv.set_jupyter_backend(os.environ.get("PYVISTA_JUPYTER_BACKEND") or ("trame" if interactive else "static"))


def _check_points(points: Any, name: str) -> np.ndarray:
    """Points as a float (N, 3) array: non-empty and finite (NaN would break VTK's bounds)."""
    points = to_numpy(points)
    check_points(points, name)
    if points.ndim != 2:
        raise ValueError(f"{name} must have shape (N, 3) in metres; got {format_shape(points.shape)}")
    return points.astype(float)


def _check_names(names: Sequence[str] | None, n_joints: int) -> None:
    if names is not None and len(names) != n_joints:
        raise ValueError(f"names must have one entry per joint ({n_joints}); got {len(names)}")


def _xyz(points: np.ndarray) -> dict[str, np.ndarray]:
    """Plotly's x, y, z columns of (N, 3) points, in float32: sub-micrometre at human scale,
    and half the bytes in the notebook."""
    points = points.astype(np.float32)
    return dict(x=points[:, 0], y=points[:, 1], z=points[:, 2])


def _bone_segments(joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(3 B, 3) rows (parent, child, NaN) for each of the B bones; NaN breaks the line between bones."""
    children = np.flatnonzero(parents >= 0)
    gaps = np.full((len(children), 3), np.nan)
    return np.stack([joints[parents[children]], joints[children], gaps], axis=1).reshape(-1, 3)


def _skeleton_traces(
    joints: np.ndarray,
    parents: np.ndarray,
    names: Sequence[str] | None,
    color: str,
    label: str,
) -> list[go.Scatter3d]:
    """Two traces, toggled together in the legend: the bones (lines) and the joints (markers)."""
    hover = list(names) if names is not None else [f"joint {j}" for j in range(len(joints))]
    bones = go.Scatter3d(
        **_xyz(_bone_segments(joints, parents)), mode="lines",
        line=dict(color=color, width=6), name=label, legendgroup=label, hoverinfo="skip",
    )
    markers = go.Scatter3d(
        **_xyz(joints), mode="markers", marker=dict(color=color, size=4), text=hover,
        hoverinfo="text", name=label, legendgroup=label, showlegend=False,
    )
    return [bones, markers]


def skeleton_figure(
    joints: Any,
    parents: Any,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
    color: str = _COLOR,
    label: str = "skeleton",
    other: Any | None = None,
    other_label: str = "other",
    other_color: str = _OTHER_COLOR,
) -> go.Figure:
    """A 3D skeleton as bones (lines) and joints (markers with hover names).

    joints: (J, 3) in metres, numpy or torch; parents: (J,) with parents[j] < j and -1 for the
    root, as in SMPL's kinematic tree. other: an optional second (J, 3) skeleton on the same tree
    (e.g. the ground truth beside a prediction), drawn in `other_color`. Equal axis scales, y up.
    """
    joints = _check_points(joints, "joints")
    parents = np.array(check_parents(parents, len(joints)))
    _check_names(names, len(joints))
    traces = _skeleton_traces(joints, parents, names, color, label)
    if other is not None:
        other = _check_points(other, "other")
        check_same_shape(joints, other, ("joints", "other"))
        traces += _skeleton_traces(other, parents, names, other_color, other_label)
    fig = go.Figure(traces)
    fig.update_layout(
        title=title, height=FIGURE_HEIGHT, scene=dict(aspectmode="data", camera=_PLOTLY_CAMERA, **_AXIS_TITLES)
    )
    return fig


def decimate_mesh(vertices: Any, faces: Any, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a triangle mesh to at most `max_faces` faces by quadric edge collapse.

    vertices: (V, 3), faces: (F, 3) int. Returns (V', 3) float and (F', 3) int64 with F' <= max_faces;
    meshes already small enough come back unchanged. Uses VTK's vtkQuadricDecimation (Garland &
    Heckbert, "Surface simplification using quadric error metrics", SIGGRAPH 1997), which keeps the
    silhouette where dropping random faces would leave holes.
    """
    vertices = _check_points(vertices, "vertices")
    faces = check_faces(faces, len(vertices))
    if max_faces < 1:
        raise ValueError(f"max_faces must be a positive number of faces; got {max_faces}")
    if len(faces) <= max_faces:
        return vertices, faces
    mesh = pv.PolyData.from_regular_faces(vertices, faces)
    target = 1.0 - max_faces / len(faces)
    # VTK treats the reduction as a goal, not a bound (boundaries can stop collapses): tighten it.
    for _ in range(10):
        small = mesh.decimate(target)
        if small.n_cells <= max_faces:
            return np.asarray(small.points, dtype=float), np.asarray(small.regular_faces, dtype=np.int64)
        target = 1.0 - (1.0 - target) * 0.9
    raise ValueError(f"could not decimate {len(faces)} faces to {max_faces}; raise max_faces")


def mesh_figure(
    vertices: Any,
    faces: Any,
    *,
    max_faces: int = 5000,
    color: str = "lightgray",
    opacity: float = 1.0,
    joints: Any | None = None,
    parents: Any | None = None,
    title: str | None = None,
) -> go.Figure:
    """A triangle mesh as a plotly `Mesh3d`, decimated to at most `max_faces` faces.

    vertices: (V, 3) in metres, faces: (F, 3) int (numpy or torch). Meshes above `max_faces` are
    simplified with `decimate_mesh` so the notebook stays light (SMPL's 13,776 faces become 5,000).
    joints (J, 3) with parents (J,) overlay a skeleton; joints alone are drawn as markers.
    """
    if parents is not None and joints is None:
        raise ValueError("parents describe a skeleton overlay: pass the (J, 3) joints as well")
    vertices, faces = decimate_mesh(vertices, faces, max_faces)
    traces: list[go.BaseTraceType] = [
        go.Mesh3d(
            **_xyz(vertices), i=faces[:, 0].astype(np.int32), j=faces[:, 1].astype(np.int32),
            k=faces[:, 2].astype(np.int32),
            color=color, opacity=opacity, flatshading=False, name="mesh", hoverinfo="skip",
        )
    ]
    if joints is not None:
        joints = _check_points(joints, "joints")
        # Without a tree every joint is a root: markers only.
        parents = np.full(len(joints), -1) if parents is None else np.array(check_parents(parents, len(joints)))
        traces += _skeleton_traces(joints, parents, None, _OTHER_COLOR, "joints")
    fig = go.Figure(traces)
    fig.update_layout(
        title=title, height=FIGURE_HEIGHT, scene=dict(aspectmode="data", camera=_PLOTLY_CAMERA, **_AXIS_TITLES)
    )
    return fig


def animate_skeleton(
    sequence: Any,
    parents: Any,
    *,
    fps: float = 25,
    other: Any | None = None,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """An animated skeleton: one plotly frame per time step, play/pause buttons and a time slider.

    sequence: (T, J, 3) in metres; parents: (J,); other: an optional second (T, J, 3) sequence
    (e.g. ground truth) drawn in another colour. The axes are fixed to the whole sequence's extent,
    with equal scales, so the body does not jump as the view refits each frame.
    """
    sequence = to_numpy(sequence)
    check_points(sequence, "sequence", dims=("T", "J"))
    if sequence.ndim != 3:
        raise ValueError(f"sequence must have shape (T, J, 3); got {format_shape(sequence.shape)}")
    if other is not None:
        other = to_numpy(other)
        check_same_shape(sequence, other, ("sequence", "other"))
        check_points(other, "other", dims=("T", "J"))
    if fps <= 0:
        raise ValueError(f"fps must be positive; got {fps}")
    parents = np.array(check_parents(parents, sequence.shape[1]))
    _check_names(names, sequence.shape[1])
    skeletons = [(sequence, _COLOR, "skeleton")]
    if other is not None:
        skeletons.append((other, _OTHER_COLOR, "other"))
    data = []
    for points, color, label in skeletons:
        data += _skeleton_traces(points[0], parents, names, color, label)

    def moving_coordinates(t: int) -> list[go.Scatter3d]:
        # Only positions change between frames; plotly merges them into the styled traces of `data`.
        return [
            go.Scatter3d(**_xyz(p))
            for points, _, _ in skeletons
            for p in (_bone_segments(points[t], parents), points[t])
        ]

    frames = [
        go.Frame(data=moving_coordinates(t), traces=list(range(len(data))), name=str(t))
        for t in range(len(sequence))
    ]

    everything = np.concatenate([points for points, _, _ in skeletons]).reshape(-1, 3)
    low, high = everything.min(axis=0), everything.max(axis=0)
    pad = 0.05 * max((high - low).max(), 1e-3)
    low, high = low - pad, high + pad
    extent = high - low
    scene = dict(
        camera=_PLOTLY_CAMERA, aspectmode="manual",
        aspectratio=dict(zip("xyz", (extent / extent.max()).tolist())),
        **{f"{a}axis": dict(range=[lo, hi], autorange=False) for a, lo, hi in zip("xyz", low, high)},
        **_AXIS_TITLES,
    )
    # 3D scenes only update on redraw; a zero-length transition avoids interpolating between poses.
    play = dict(frame=dict(duration=1000.0 / fps, redraw=True), transition=dict(duration=0), fromcurrent=True)
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    step = dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")
    fig = go.Figure(data=data, frames=frames)
    fig.update_layout(
        title=title, height=FIGURE_HEIGHT, scene=scene,
        updatemenus=[dict(
            type="buttons", direction="left", x=0.0, y=0.0, xanchor="left", yanchor="top",
            buttons=[dict(label="Play", method="animate", args=[None, play]),
                     dict(label="Pause", method="animate", args=[[None], pause])],
        )],
        sliders=[dict(
            x=0.15, len=0.85, y=0.0, yanchor="top", currentvalue=dict(prefix="frame "),
            steps=[dict(label=f.name, method="animate", args=[[f.name], step]) for f in frames],
        )],
    )
    return fig


def render_mesh(
    vertices: Any,
    faces: Any,
    *,
    image_size: tuple[int, int] = (256, 256),
    camera: Sequence[Sequence[float]] | None = None,
    color: str = "lightgray",
    background: str = "white",
    joints: Any | None = None,
) -> np.ndarray:
    """Render a triangle mesh offscreen with smooth shading; returns a uint8 (H, W, 3) RGB image.

    vertices: (V, 3) in metres, faces: (F, 3) int; image_size: (H, W) in pixels. camera: a pyvista
    camera position ``(position, focal_point, view_up)`` in world coordinates; by default the front
    view (on +z looking toward -z, y up) zoomed to fit the mesh, in which the person's left (+x)
    appears on the image's right. joints (J, 3), if given, are drawn as red spheres.
    """
    vertices = _check_points(vertices, "vertices")
    faces = check_faces(faces, len(vertices))
    height, width = image_size
    mesh = pv.PolyData.from_regular_faces(vertices, faces)
    plotter = pv.Plotter(off_screen=True, window_size=(width, height))
    try:
        plotter.set_background(background)
        plotter.add_mesh(mesh, color=color, smooth_shading=True)
        if joints is not None:
            points = pv.PolyData(_check_points(joints, "joints"))
            plotter.add_mesh(points, color="red", point_size=8, render_points_as_spheres=True)
        if camera is None:
            center = np.asarray(mesh.center)
            plotter.camera_position = [center + (0.0, 0.0, 1.0), center, (0.0, 1.0, 0.0)]
            plotter.reset_camera()
        else:
            plotter.camera_position = camera
        return np.asarray(plotter.screenshot(return_img=True), dtype=np.uint8)[..., :3]
    finally:
        # Each Plotter holds an OpenGL context; closing it here keeps loops over frames from leaking.
        plotter.close()


def overlay_mesh(
    image: Any,
    vertices: Any,
    faces: Any,
    intrinsics: Any,
    *,
    upscale: int = 4,
    color: Sequence[float] = (0.35, 0.65, 1.0),
    alpha: float = 0.6,
) -> np.ndarray:
    """A mesh drawn over the picture it was predicted from: uint8 (upscale H, upscale W, 3).

    image: (H, W, 3) uint8, or (3, H, W) float in [0, 1] as a network reads it; vertices: (V, 3)
    metres in that picture's camera frame (x right, y down, z forward); faces: (F, 3); intrinsics:
    (3, 3) pixels of ``image``. The picture is enlarged ``upscale`` times (nearest neighbour, so a
    64-pixel crop stays readable) and the mesh rendered through the same enlarged camera
    (`hmrlab.data.render.render_person`), blended in with opacity ``alpha`` where it covers a pixel.
    """
    from PIL import Image

    from hmrlab.data.cameras import Camera
    from hmrlab.data.render import render_person

    picture = to_numpy(image)
    if picture.ndim == 3 and picture.shape[0] == 3 and picture.shape[-1] != 3:
        picture = np.clip(255 * picture.transpose(1, 2, 0), 0, 255).astype(np.uint8)
    if picture.ndim != 3 or picture.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3) uint8 or (3, H, W) float; got {format_shape(picture.shape)}")
    intrinsics = np.asarray(to_numpy(intrinsics), dtype=np.float64)
    if intrinsics.shape != (3, 3):
        raise ValueError(f"intrinsics must have shape (3, 3) in pixels; got {format_shape(intrinsics.shape)}")
    if not 0 <= alpha <= 1 or upscale < 1:
        raise ValueError(f"need alpha in [0, 1] and upscale >= 1; got {alpha}, {upscale}")
    height, width = picture.shape[0] * upscale, picture.shape[1] * upscale
    big = np.asarray(Image.fromarray(picture.astype(np.uint8)).resize((width, height), Image.NEAREST))
    # pixel centres: u' + 0.5 = upscale (u + 0.5)
    focal = upscale * np.diag(intrinsics)[:2]
    principal = upscale * (intrinsics[:2, 2] + 0.5) - 0.5
    camera = Camera(np.eye(3), np.zeros(3), focal, principal, (width, height))
    rgb, mask = render_person(_check_points(vertices, "vertices"), faces, camera, color=color)
    out = big.astype(np.float64)
    out[mask] = (1 - alpha) * out[mask] + alpha * rgb[mask]
    return out.round().astype(np.uint8)

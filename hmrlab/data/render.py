"""Synthetic images of a body mesh seen by a `Camera`: offscreen rendering, backgrounds, lights, crops.

`render_person` draws a mesh with pyvista/VTK so that the picture agrees with `Camera.project`:
the VTK camera sits at the camera centre looking along its z axis with the image's up ``-y``; its
vertical view angle is ``2 atan(H / (2 f_y))``, its aspect ratio ``(W / H) (f_y / f_x)`` (so the
horizontal focal length is f_x too), and its window centre is shifted so that the principal point
lands on (c_x, c_y). VTK puts pixel centres at half-integers and rows bottom-up; the shift accounts
for both, so a pixel (column u, row v) is covered exactly when its centre lies inside a triangle
projected by `Camera.project` (tested against such a rasteriser). The mask is read from the same
render's depth buffer (pixels nearer than the far plane), so it matches the colours pixel for pixel.
Multisampling is off (it would move the depth samples off the pixel centres): edges are hard, as
the mask is.

`person_crop` cuts the person out at a network's input size and returns the affine map that takes
the full image's pixel coordinates to the crop's (`apply_affine` moves keypoints with it).
All random choices take a seeded ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvista as pv
from scipy import ndimage
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkFloatArray, vtkLogger, vtkUnsignedCharArray

from hmrlab.data.cameras import Camera
from hmrlab.validation import check_faces, check_points, format_shape, to_numpy

DEFAULT_BODY_COLOR = (0.78, 0.62, 0.52)
FLAT_BACKGROUND = (0.5, 0.5, 0.5)

# Approximate sRGB colour of black-body light (as in published black-body colour tables, white
# point D65), brightest channel 1: tungsten (3000 K) is orange, daylight (6500 K) white, shade bluish.
_KELVIN = np.array([2000.0, 3000.0, 4000.0, 5000.0, 6500.0, 8000.0, 10000.0])
_BLACKBODY_RGB = np.array([
    [1.000, 0.541, 0.071], [1.000, 0.706, 0.420], [1.000, 0.820, 0.639], [1.000, 0.894, 0.808],
    [1.000, 0.996, 0.980], [0.890, 0.914, 1.000], [0.788, 0.843, 1.000],
])


def color_temperature_rgb(kelvin: float) -> np.ndarray:
    """Linear-interpolated RGB (3,) in [0, 1] of a light of colour temperature `kelvin` (2000-10000 K)."""
    if not 2000 <= kelvin <= 10000:
        raise ValueError(f"kelvin must lie in [2000, 10000] (candle to blue sky); got {kelvin}")
    return np.array([np.interp(kelvin, _KELVIN, _BLACKBODY_RGB[:, c]) for c in range(3)])


@dataclass(frozen=True)
class Lighting:
    """One directional light plus ambient light.

    direction: (3,) direction from the body toward the light **in the camera frame** (x right,
    y down, z forward), so ``(0, 0, -1)`` is a light behind the camera; intensity: the light's
    strength (1 = VTK's default); temperature: colour temperature in kelvin; ambient: the share of
    the body colour seen without any light (0 gives black shadows).
    """

    direction: tuple[float, float, float] = (0.3, -0.5, -1.0)
    intensity: float = 1.0
    temperature: float = 6500.0
    ambient: float = 0.25


def random_lighting(generator: np.random.Generator) -> Lighting:
    """A light from the camera's side, within 60 degrees of the viewing axis, 3000-8000 K, intensity 0.7-1.3."""
    polar = np.radians(generator.uniform(0.0, 60.0))
    around = generator.uniform(0.0, 2 * np.pi)
    direction = (np.sin(polar) * np.cos(around), np.sin(polar) * np.sin(around), -np.cos(polar))
    return Lighting(
        direction=tuple(float(d) for d in direction),
        intensity=float(generator.uniform(0.7, 1.3)),
        temperature=float(generator.uniform(3000.0, 8000.0)),
        ambient=float(generator.uniform(0.15, 0.4)),
    )


def random_body_color(generator: np.random.Generator) -> tuple[float, float, float]:
    """An RGB body colour (3 floats in [0, 1]): a random hue, moderately saturated, mid to light."""
    hue = generator.uniform(0.0, 1.0)
    saturation = generator.uniform(0.1, 0.6)
    value = generator.uniform(0.45, 0.95)
    # HSV to RGB: each channel is value minus a saturation-weighted triangle wave of the hue.
    k = (np.array([5.0, 3.0, 1.0]) + 6.0 * hue) % 6.0
    rgb = value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return tuple(float(c) for c in rgb)


def _smooth_noise(shape: tuple[int, int], generator: np.random.Generator, cells: int) -> np.ndarray:
    """Value noise in [0, 1], (H, W): a `cells`-wide random grid upsampled with cubic splines."""
    grid = generator.random((cells + 1, cells + 1))
    rows = np.linspace(0, cells, shape[0])
    cols = np.linspace(0, cells, shape[1])
    field = ndimage.map_coordinates(grid, np.meshgrid(rows, cols, indexing="ij"), order=3, mode="nearest")
    low, high = field.min(), field.max()
    return (field - low) / max(high - low, 1e-12)


def random_background(size: tuple[int, int], generator: np.random.Generator) -> np.ndarray:
    """A procedural background (H, W, 3) uint8 for `size` = (height, width) pixels.

    One of four patterns picked at random, each blending random colours: a linear gradient, smooth
    value noise, stripes or a checkerboard at a random angle and period, or soft blobs on a base
    colour; then a faint fine-grained noise, like sensor noise. Same generator state, same image.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be (height, width) with both >= 1; got {size}")
    unit = max(height, width)  # patterns keep their proportions whatever the aspect ratio
    rows, cols = np.meshgrid(np.arange(height) / unit, np.arange(width) / unit, indexing="ij")
    colors = generator.uniform(0.05, 0.95, size=(2, 3))
    kind = generator.integers(4)
    if kind == 0:  # gradient
        angle = generator.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * cols + np.sin(angle) * rows
        weight = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-12)
    elif kind == 1:  # smooth noise
        weight = _smooth_noise((height, width), generator, cells=int(generator.integers(2, 8)))
    elif kind == 2:  # stripes, or checks as the product of two perpendicular stripe patterns
        angle = generator.uniform(0, np.pi)
        period = generator.uniform(0.04, 0.25)
        along = np.cos(angle) * cols + np.sin(angle) * rows
        across = -np.sin(angle) * cols + np.cos(angle) * rows
        weight = np.sin(2 * np.pi * along / period) > 0
        if generator.random() < 0.5:
            weight = weight ^ (np.sin(2 * np.pi * across / period) > 0)
        weight = weight.astype(float)
    else:  # blobs
        weight = np.zeros((height, width))
        for _ in range(int(generator.integers(3, 9))):
            center = generator.uniform(0, 1, size=2) * (rows.max(), cols.max())
            radius = generator.uniform(0.05, 0.3)
            weight = np.maximum(weight, np.exp(-((rows - center[0]) ** 2 + (cols - center[1]) ** 2) / (2 * radius**2)))
    image = colors[0] + weight[..., None] * (colors[1] - colors[0])
    image = image + generator.normal(0.0, 0.01, size=image.shape)
    return np.clip(np.round(255 * image), 0, 255).astype(np.uint8)


def _check_background(background: np.ndarray | None, camera: Camera) -> np.ndarray | None:
    if background is None:
        return None
    background = np.asarray(background)
    width, height = camera.image_size
    if background.shape != (height, width, 3) or background.dtype != np.uint8:
        raise ValueError(
            f"background must be a uint8 image of shape (H, W, 3) = ({height}, {width}, 3) to match the "
            f"camera; got {background.dtype} {format_shape(background.shape)}. Use random_background((H, W), rng)."
        )
    return background


class _OffscreenScene:
    """One VTK window showing one mesh through one `Camera`; frames update the vertices in place.

    Creating a window and its OpenGL context costs about as much as ten frames, so `render_clip`
    keeps one open for a whole clip; `close` frees it (use as a context manager).
    """

    def __init__(
        self, vertices: np.ndarray, faces: np.ndarray, camera: Camera, light: Lighting, color: Sequence[float]
    ):
        width, height = camera.image_size
        self.size = (width, height)
        # Without a display VTK warns that it cannot open X before falling back to EGL/OSMesa.
        vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_ERROR)
        self.plotter = pv.Plotter(off_screen=True, window_size=(width, height), lighting="none")
        try:
            self._build(vertices, faces, camera, light, color)
        except Exception:
            self.plotter.close()
            raise
        self._rgb, self._depth = vtkUnsignedCharArray(), vtkFloatArray()

    def _build(
        self, vertices: np.ndarray, faces: np.ndarray, camera: Camera, light: Lighting, color: Sequence[float]
    ) -> None:
        # pyvista's theme asks for 8x multisampling; the depth buffer then holds one sample taken
        # off the pixel centre (0.4 px here), so the mask would be shifted against the projection.
        self.plotter.ren_win.SetMultiSamples(0)
        self.mesh = pv.PolyData.from_regular_faces(vertices, faces)
        self.plotter.add_mesh(
            self.mesh, color=tuple(color), smooth_shading=True, ambient=light.ambient, diffuse=1.0 - light.ambient,
            specular=0.15, specular_power=20.0,
        )
        self.plotter.set_background(FLAT_BACKGROUND)
        self._set_camera(camera)
        direction = camera.R.T @ np.asarray(light.direction, dtype=float)
        focus = camera.position + camera.R[2]
        self.plotter.add_light(pv.Light(
            position=tuple(focus + direction), focal_point=tuple(focus), positional=False,
            intensity=light.intensity, color=tuple(color_temperature_rgb(light.temperature)),
        ))

    def _set_camera(self, camera: Camera) -> None:
        width, height = self.size
        (fx, fy), (cx, cy) = camera.focal, camera.center
        vtk_camera = self.plotter.camera
        vtk_camera.position = tuple(camera.position)
        vtk_camera.focal_point = tuple(camera.position + camera.R[2])
        vtk_camera.up = tuple(-camera.R[1])
        vtk_camera.view_angle = float(np.degrees(2 * np.arctan(height / (2 * fy))))
        vtk_camera.SetUseExplicitAspectRatio(True)
        vtk_camera.SetExplicitAspectRatio(width / height * fy / fx)
        # VTK centres the projection on the window, at OpenCV pixel ((W - 1) / 2, (H - 1) / 2); the
        # window centre (in [-1, 1] units, y up) moves the image the opposite way.
        vtk_camera.SetWindowCenter(-2 * (cx - (width - 1) / 2) / width, 2 * (cy - (height - 1) / 2) / height)

    def render(self, vertices: np.ndarray, with_mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 colours and, if asked, the (H, W) bool mask of the mesh's pixels."""
        self.mesh.points = vertices
        self.plotter.reset_camera_clipping_range()
        window = self.plotter.ren_win
        window.Render()
        width, height = self.size
        # Reading the window's buffers directly is ~50x faster than Plotter.screenshot/get_image_depth.
        window.GetPixelData(0, 0, width - 1, height - 1, 1, self._rgb, 0)
        rgb = vtk_to_numpy(self._rgb).reshape(height, width, 3)[::-1].copy()
        if not with_mask:
            return rgb, None
        window.GetZbufferData(0, 0, width - 1, height - 1, self._depth)
        mask = vtk_to_numpy(self._depth).reshape(height, width)[::-1] < 1.0
        return rgb, mask

    def close(self) -> None:
        self.plotter.close()

    def __enter__(self) -> _OffscreenScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def render_clip(
    vertices_seq: Any,
    faces: Any,
    camera: Camera,
    *,
    background: np.ndarray | None = None,
    light: Lighting | None = None,
    color: Sequence[float] = DEFAULT_BODY_COLOR,
    with_mask: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render a mesh sequence through `camera`: frames (T, H, W, 3) uint8 and masks (T, H, W) bool.

    vertices_seq: (T, N, 3) metres in the world frame (numpy or torch); faces: (F, 3) int. The whole
    clip shares one `background` ((H, W, 3) uint8 at the camera's image size; None: flat grey), one
    `light` (None: `Lighting()`), one body `color` (RGB in [0, 1]). Geometry agrees with
    `camera.project` (module docstring). ``with_mask=False`` skips reading the depth buffer and
    returns None for the masks; it needs ``background=None`` (compositing uses the mask).
    Render at reduced size with ``camera.scaled(0.5)``.
    """
    vertices_seq = to_numpy(vertices_seq).astype(np.float64)
    check_points(vertices_seq, "vertices_seq", dims=("T", "N"))
    if vertices_seq.ndim != 3:
        raise ValueError(f"vertices_seq must have shape (T, N, 3) in metres; got {format_shape(vertices_seq.shape)}")
    faces = check_faces(faces, vertices_seq.shape[1])
    background = _check_background(background, camera)
    if background is not None and not with_mask:
        raise ValueError("a background is pasted through the mask: pass with_mask=True, or background=None")
    color = np.asarray(color, dtype=float)
    if color.shape != (3,) or (color < 0).any() or (color > 1).any():
        raise ValueError(f"color must be RGB (3,) in [0, 1]; got {color.tolist()}")
    frames, masks = [], []
    with _OffscreenScene(vertices_seq[0], faces, camera, light or Lighting(), color) as scene:
        for vertices in vertices_seq:
            rgb, mask = scene.render(vertices, with_mask)
            if background is not None:
                rgb = np.where(mask[..., None], rgb, background)
            frames.append(rgb)
            masks.append(mask)
    return np.stack(frames), (np.stack(masks) if with_mask else None)


def render_person(
    vertices: Any,
    faces: Any,
    camera: Camera,
    *,
    background: np.ndarray | None = None,
    light: Lighting | None = None,
    color: Sequence[float] = DEFAULT_BODY_COLOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one mesh through `camera`: rgb (H, W, 3) uint8 and mask (H, W) bool (`render_clip` of one frame).

    vertices: (N, 3) metres, world frame; faces: (F, 3) int; background: (H, W, 3) uint8 at the
    camera's image size, or None for flat grey. A projected vertex ``camera.project(v)`` at (u, v)
    falls on the mask's pixel (round(v), round(u)) when it is visible.
    """
    vertices = to_numpy(vertices)
    if vertices.ndim != 2:
        raise ValueError(f"vertices must have shape (N, 3) in metres; got {format_shape(vertices.shape)}")
    rgb, mask = render_clip(vertices[None], faces, camera, background=background, light=light, color=color)
    return rgb[0], mask[0]

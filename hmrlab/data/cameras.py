"""Pinhole cameras for synthetic data, in Human3.6M's layout, and a model of 2D detector noise.

Camera convention (OpenCV, Human3.6M, VideoPose3D): a world point ``X`` (metres) is moved into the
camera frame by ``X_cam = R X + t``; in that frame the camera looks along **+z**, **x points right**
and **y points down** in the image, and ``u = f_x X_cam/Z_cam + c_x``, ``v = f_y Y_cam/Z_cam + c_y``
(pixels; the centre of the top-left pixel is (0, 0)). hmrlab's world is y-up, so a level camera has
its y axis along the world's **-y**: `look_at_rotation` builds the camera's y axis as the *negated*
world up (made orthogonal to the viewing direction). A person facing a camera therefore appears
upright, with their left side (+x of the body) on the image's right.

`Camera.to_videopose3d_dict` writes the per-camera dict of VideoPose3D's ``h36m_dataset.py``
(Pavllo et al., CVPR 2019), which is Human3.6M's own calibration: intrinsics in pixels, the
``orientation`` quaternion (w, x, y, z) rotating camera-frame vectors into the world (camera to
world, i.e. ``R^T``), and ``translation`` the camera centre in the world in **millimetres**, in
Human3.6M's **z-up** world. hmrlab's y-up world is turned into that one by `Y_UP_TO_Z_UP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hmrlab.geometry import matrix_to_quaternion, perspective_projection, quaternion_to_matrix
from hmrlab.validation import check_points, format_shape

# Rotation by +90 degrees about x: (x, y, z) -> (x, -z, y). The y-up world's up (0, 1, 0) becomes
# Human3.6M's up (0, 0, 1); the body's facing direction +z becomes -y.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Human3.6M's four cameras (VideoPose3D's `h36m_cameras_intrinsic_params`), rounded: the corners of
# the capture room at these azimuths (degrees about the z-up world's vertical, from +x toward +y),
# 1000 pixels wide, 1002 or 1000 high.
H36M_AZIMUTHS = (70.0, -70.0, 110.0, -110.0)
H36M_IMAGE_SIZES = ((1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002))
H36M_FOCAL = 1146.8
H36M_CENTER_OFFSET = 12.0  # pixels: how far the real principal points lie from the image centre


def _float_array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.array(value, dtype=np.float64)  # a copy: the camera must not share memory with its inputs
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {format_shape(shape)}; got {format_shape(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite; got {array.tolist()}")
    return array


def look_at_rotation(position: Sequence[float], target: Sequence[float], up: Sequence[float] = (0, 1, 0)) -> np.ndarray:
    """World-to-camera rotation (3, 3) of a camera at `position` looking at `target` (metres).

    Rows of R are the camera axes written in world coordinates: ``z = normalise(target - position)``
    (forward), ``x = normalise(z x up)`` (right), ``y = z x x`` (down: the negated `up`, made
    orthogonal to z). Raises ValueError if the camera looks straight along `up`.
    """
    position = _float_array(position, "position", (3,))
    forward = _float_array(target, "target", (3,)) - position
    up = _float_array(up, "up", (3,))
    right = np.cross(forward, up)
    if np.linalg.norm(forward) < 1e-9 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        raise ValueError(
            f"look_at_rotation needs a target away from the position and not straight along up={up.tolist()}; "
            f"got position={position.tolist()}, target={(position + forward).tolist()}"
        )
    z = forward / np.linalg.norm(forward)
    x = right / np.linalg.norm(right)
    return np.stack([x, np.cross(z, x), z])


@dataclass(frozen=True, eq=False)  # eq would compare numpy arrays, whose truth value is ambiguous
class Camera:
    """A pinhole camera without lens distortion (module docstring for the axes).

    R: (3, 3) world-to-camera rotation; t: (3,) metres, so ``X_cam = R X + t`` and the camera centre
    is ``-R^T t``; focal: (2,) (f_x, f_y) pixels; center: (2,) principal point (c_x, c_y) pixels;
    image_size: (width, height) pixels; name: the camera id written to dataset files.
    """

    R: np.ndarray
    t: np.ndarray
    focal: np.ndarray
    center: np.ndarray
    image_size: tuple[int, int]
    name: str = field(default="camera")

    def __post_init__(self) -> None:
        rotation = _float_array(self.R, "R", (3, 3))
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
            raise ValueError(f"R must be a rotation matrix (orthonormal, det +1); got {rotation.tolist()}")
        focal = _float_array(self.focal, "focal", (2,))
        if (focal <= 0).any():
            raise ValueError(f"focal must be positive pixels (f_x, f_y); got {focal.tolist()}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ValueError(f"image_size must be (width, height) in pixels, both >= 1; got {self.image_size}")
        width, height = (int(s) for s in self.image_size)
        object.__setattr__(self, "R", rotation)
        object.__setattr__(self, "t", _float_array(self.t, "t", (3,)))
        object.__setattr__(self, "focal", focal)
        object.__setattr__(self, "center", _float_array(self.center, "center", (2,)))
        object.__setattr__(self, "image_size", (width, height))

    @classmethod
    def look_at(
        cls,
        position: Sequence[float],
        target: Sequence[float],
        *,
        focal: float | Sequence[float],
        image_size: tuple[int, int],
        center: Sequence[float] | None = None,
        up: Sequence[float] = (0, 1, 0),
        name: str = "camera",
    ) -> Camera:
        """A camera at `position` (metres) looking at `target` (`look_at_rotation`); principal point at
        the image centre ``((W - 1) / 2, (H - 1) / 2)`` unless `center` is given."""
        rotation = look_at_rotation(position, target, up)
        width, height = image_size
        center = ((width - 1) / 2, (height - 1) / 2) if center is None else center
        t = -rotation @ np.asarray(position, dtype=np.float64)
        return cls(rotation, t, np.broadcast_to(np.asarray(focal, dtype=np.float64), (2,)), center, image_size, name)

    @property
    def position(self) -> np.ndarray:
        """The camera centre in world coordinates (3,), metres: ``-R^T t``."""
        return -self.R.T @ self.t

    def _params_like(self, points: np.ndarray | torch.Tensor) -> tuple[Any, ...]:
        """R, t, focal, center as arrays of the kind (numpy or torch, dtype, device) of `points`."""
        params = (self.R, self.t, self.focal, self.center)
        if isinstance(points, torch.Tensor):
            return tuple(torch.as_tensor(p, dtype=points.dtype, device=points.device) for p in params)
        return params

    def to_camera(self, points_world: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """World points (..., N, 3) metres -> camera frame (..., N, 3) metres, ``R X + t``.

        numpy in, numpy out; torch in, torch out (differentiable).
        """
        check_points(points_world, "points_world")
        rotation, t, _, _ = self._params_like(points_world)
        return points_world @ rotation.T + t

    def project(self, points_world: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """World points (..., N, 3) metres -> pixels (..., N, 2), via `hmrlab.geometry.perspective_projection`.

        numpy in, numpy out (float64); torch in, torch out (differentiable). Raises ValueError for a
        point behind the camera.
        """
        check_points(points_world, "points_world")
        is_numpy = not isinstance(points_world, torch.Tensor)
        points = torch.from_numpy(np.asarray(points_world, dtype=np.float64)) if is_numpy else points_world
        rotation, t, focal, center = self._params_like(points)
        pixels = perspective_projection(points, focal, center, rotation=rotation, translation=t)
        return pixels.numpy() if is_numpy else pixels

    def scaled(self, factor: float) -> Camera:
        """The same camera for an image resized by `factor` (e.g. 0.5: 1000x1002 -> 500x501).

        Pixel coordinates scale about the top-left pixel's outer corner, so with pixel centres at
        integers ``u' = (u + 0.5) factor - 0.5``: ``f' = f factor``, ``c' = (c + 0.5) factor - 0.5``.
        The image size is rounded to whole pixels.
        """
        if not factor > 0:
            raise ValueError(f"factor must be positive; got {factor}")
        width, height = self.image_size
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        return Camera(self.R, self.t, self.focal * factor, (self.center + 0.5) * factor - 0.5, size, self.name)

    def to_videopose3d_dict(self, *, z_up: bool = True) -> dict[str, Any]:
        """The camera as one entry of VideoPose3D's Human3.6M camera lists (``h36m_dataset.py``).

        Keys: ``id`` (str), ``center`` and ``focal_length`` [2] pixels, ``radial_distortion`` [3]
        and ``tangential_distortion`` [2] (zeros), ``res_w``, ``res_h`` (int pixels), ``azimuth``
        (degrees of the camera centre about the vertical axis, which VideoPose3D uses only to view
        3D plots), ``orientation`` [4] the camera-to-world quaternion (w, x, y, z), ``translation``
        [3] the camera centre in **millimetres**. With ``z_up`` the world is Human3.6M's z-up frame
        (``Y_UP_TO_Z_UP @ X``), else hmrlab's y-up frame; the 3D points written beside the cameras
        must use the same frame.
        """
        to_file_world = Y_UP_TO_Z_UP if z_up else np.eye(3)
        camera_to_world = to_file_world @ self.R.T
        centre = to_file_world @ self.position
        orientation = matrix_to_quaternion(torch.from_numpy(camera_to_world)).numpy()
        # Azimuth about the vertical: the z axis of a z-up world, the y axis of a y-up one (seen from
        # above, measured from +x toward -z so that both frames give the same angle).
        azimuth = np.degrees(np.arctan2(centre[1], centre[0]) if z_up else np.arctan2(-centre[2], centre[0]))
        return {
            "id": self.name,
            "center": self.center.tolist(),
            "focal_length": self.focal.tolist(),
            "radial_distortion": [0.0, 0.0, 0.0],
            "tangential_distortion": [0.0, 0.0],
            "res_w": self.image_size[0],
            "res_h": self.image_size[1],
            "azimuth": float(azimuth),
            "orientation": orientation.tolist(),
            "translation": (1000.0 * centre).tolist(),
        }

    @classmethod
    def from_videopose3d_dict(
        cls, camera: dict[str, Any], *, z_up: bool = True, ignore_distortion: bool = False
    ) -> Camera:
        """A `Camera` (hmrlab's y-up world, metres) from a dict laid out as `to_videopose3d_dict` writes.

        Real Human3.6M calibrations carry lens distortion (radial k1 about -0.2), which moves points
        near the image border by tens of pixels and which this pinhole camera does not model: they
        raise ValueError unless ``ignore_distortion=True`` says that the pinhole approximation is wanted.
        """
        required = ("id", "center", "focal_length", "res_w", "res_h", "orientation", "translation")
        missing = [key for key in required if key not in camera]
        if missing:
            raise ValueError(f"camera dict lacks the keys {missing}; expected VideoPose3D's layout {list(required)}")
        distortion = np.concatenate(
            [np.ravel(camera.get("radial_distortion", [])), np.ravel(camera.get("tangential_distortion", []))]
        )
        if not ignore_distortion and np.any(distortion != 0):
            raise ValueError(
                f"camera {camera['id']!r} has lens distortion {distortion.tolist()}, which Camera does not "
                "model; pass ignore_distortion=True to use it as a pinhole camera"
            )
        from_file_world = Y_UP_TO_Z_UP.T if z_up else np.eye(3)
        quaternion = torch.from_numpy(_float_array(camera["orientation"], "orientation", (4,)))
        camera_to_world = from_file_world @ quaternion_to_matrix(quaternion).numpy()
        centre = from_file_world @ _float_array(camera["translation"], "translation", (3,)) / 1000.0
        rotation = camera_to_world.T
        return cls(
            rotation, -rotation @ centre, camera["focal_length"], camera["center"],
            (int(camera["res_w"]), int(camera["res_h"])), str(camera["id"]),
        )


def h36m_like_cameras(
    n_views: int = 4,
    generator: np.random.Generator | None = None,
    target: Sequence[float] = (0.0, 0.9, 0.0),
) -> list[Camera]:
    """`n_views` cameras placed like Human3.6M's around a subject at `target` (metres, y-up world).

    Each camera sits on a ring about the vertical through `target`, at azimuth ``a`` (degrees,
    Human3.6M's: in the z-up world from +x toward +y, i.e. here the centre is ``(r cos a, h,
    -r sin a)``), and looks at `target` (`look_at_rotation`). Four views use Human3.6M's corners
    (70, -70, 110, -110) and image sizes; other counts are spaced evenly from 70 degrees, 1000x1002.
    Without a generator the cameras are the nominal ones: r = 5 m, h = 1.5 m, f = 1146.8 px, the
    principal point at the image centre. With one, each camera is jittered like the real rig: r in
    [4.5, 5.5] m, h in [1.2, 1.8] m, azimuth +-5 degrees, f +-1 %, principal point +-12 px, and the
    look-at point +-5 cm.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be at least 1; got {n_views}")
    target = _float_array(target, "target", (3,))
    if n_views == 4:
        azimuths, sizes = np.array(H36M_AZIMUTHS), H36M_IMAGE_SIZES
    else:
        azimuths, sizes = H36M_AZIMUTHS[0] + 360.0 * np.arange(n_views) / n_views, [(1000, 1002)] * n_views
    cameras = []
    for view, (azimuth, (width, height)) in enumerate(zip(azimuths, sizes)):
        radius, camera_height, focal = 5.0, 1.5, np.full(2, H36M_FOCAL)
        center = np.array([(width - 1) / 2, (height - 1) / 2])
        look_at = target
        if generator is not None:
            radius = generator.uniform(4.5, 5.5)
            camera_height = generator.uniform(1.2, 1.8)
            azimuth = azimuth + generator.uniform(-5.0, 5.0)
            focal = focal * (1 + generator.uniform(-0.01, 0.01, size=2))
            center = center + generator.uniform(-H36M_CENTER_OFFSET, H36M_CENTER_OFFSET, size=2)
            look_at = target + generator.uniform(-0.05, 0.05, size=3)
        angle = np.radians(azimuth)
        position = np.array([target[0] + radius * np.cos(angle), camera_height, target[2] - radius * np.sin(angle)])
        cameras.append(
            Camera.look_at(
                position, look_at, focal=focal, image_size=(width, height), center=center, name=f"view_{view}"
            )
        )
    return cameras


def _check_probability(value: float, name: str, upper_open: bool = False) -> None:
    if not (0 <= value < 1 if upper_open else 0 <= value <= 1):
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}; got {value}")


@dataclass(frozen=True)
class DetectorNoise:
    """What a 2D keypoint detector does to true keypoints, as a sampler (`apply`).

    Lengths are fractions of the person's size in each frame, ``scale`` = the longer side of the box
    around the true keypoints (as COCO's OKS scales its per-keypoint sigmas by the object's size).

    - sigma: std of the Gaussian error on each coordinate, a float or one per joint (J,);
    - temporal_correlation: rho of the AR(1) process ``e_t = rho e_(t-1) + sqrt(1 - rho^2) w_t``
      (stationary, std sigma), so the error drifts smoothly over frames like a detector's jitter;
    - swap_prob: probability that a frame has left and right exchanged (the joint set's flip
      permutation applied to the whole frame), the commonest gross error of detectors;
    - outlier_prob: probability that a joint in a frame is displaced by ``outlier_magnitude`` in a
      uniformly random direction (a detection on the wrong limb or in the background);
    - confidence_scale: the error at which confidence has fallen to ``exp(-1/2)``; confidence is
      ``exp(-|error|^2 / (2 (confidence_scale scale)^2))``, the OKS-like similarity to the truth.
    """

    sigma: float | Sequence[float] = 0.015
    temporal_correlation: float = 0.8
    swap_prob: float = 0.02
    outlier_prob: float = 0.01
    outlier_magnitude: float = 0.3
    confidence_scale: float = 0.1

    def __post_init__(self) -> None:
        if np.any(np.asarray(self.sigma) < 0) or np.ndim(self.sigma) > 1:
            raise ValueError(f"sigma must be a non-negative float or one per joint (J,); got {self.sigma}")
        _check_probability(self.temporal_correlation, "temporal_correlation", upper_open=True)
        _check_probability(self.swap_prob, "swap_prob")
        _check_probability(self.outlier_prob, "outlier_prob")
        if self.outlier_magnitude < 0 or self.confidence_scale <= 0:
            raise ValueError(
                f"outlier_magnitude must be >= 0 and confidence_scale > 0; got {self.outlier_magnitude}, "
                f"{self.confidence_scale}"
            )

    def apply(
        self,
        keypoints: np.ndarray,
        generator: np.random.Generator,
        flip_permutation: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy keypoints (T, J, 2) pixels and confidences (T, J) in [0, 1] for true `keypoints` (T, J, 2).

        Steps: correlated Gaussian error, then outliers, then left/right swaps (which needs the
        joint set's `flip_permutation` (J,), e.g. ``H36M_17.flip_permutation``, when swap_prob > 0);
        the confidence follows the final error. Same generator state, same result.
        """
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(f"keypoints must have shape (T, J, 2) in pixels; got {format_shape(keypoints.shape)}")
        check_points(keypoints, "keypoints", dims=("T", "J"), last_dim=2)
        frames, joints, _ = keypoints.shape
        sigma = np.asarray(self.sigma, dtype=np.float64)
        sigma = np.full(joints, sigma) if sigma.ndim == 0 else sigma
        if sigma.shape != (joints,):
            raise ValueError(f"sigma has {sigma.shape[0]} values but keypoints have J = {joints} joints")
        scale = np.ptp(keypoints, axis=1).max(axis=-1)  # (T,)
        if (scale <= 0).any():
            raise ValueError("every frame needs keypoints spread over a non-zero box (its size scales the noise)")

        rho = self.temporal_correlation
        white = generator.standard_normal((frames, joints, 2))
        error = np.empty_like(white)
        error[0] = white[0]
        for t in range(1, frames):
            error[t] = rho * error[t - 1] + np.sqrt(1 - rho**2) * white[t]
        noisy = keypoints + error * sigma[:, None] * scale[:, None, None]

        is_outlier = generator.random((frames, joints)) < self.outlier_prob
        angle = generator.uniform(0, 2 * np.pi, (frames, joints))
        offset = self.outlier_magnitude * scale[:, None, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
        noisy = np.where(is_outlier[..., None], noisy + offset, noisy)

        swapped = generator.random(frames) < self.swap_prob
        if self.swap_prob > 0:
            if flip_permutation is None:
                raise ValueError("swap_prob > 0 needs flip_permutation (J,), e.g. H36M_17.flip_permutation")
            permutation = np.asarray(flip_permutation)
            if sorted(permutation.tolist()) != list(range(joints)):
                raise ValueError(
                    f"flip_permutation must be a permutation of range({joints}); got {permutation.tolist()}"
                )
            noisy[swapped] = noisy[swapped][:, permutation]

        distance = np.linalg.norm(noisy - keypoints, axis=-1) / scale[:, None]
        confidence = np.exp(-0.5 * (distance / self.confidence_scale) ** 2)
        return noisy, confidence

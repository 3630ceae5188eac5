"""Training augmentation of person crops with their 3D targets kept exact: crop jitter, in-plane
rotation, horizontal flip, colour jitter and occlusion (SPIN's and HybrIK's recipe, Kolotouros et al.
ICCV 2019; Li et al. CVPR 2021).

Every geometric step is a camera operation, so the targets follow without approximation:

- **rotation** by an angle a about the camera's optical axis, ``R_z(a)``: the camera-frame joints and
  the global orientation turn by it (``X' = R_z X``, ``R_root' = R_z R_root``) and the picture moves by
  ``K R_z K^{-1}``, an affine map of the pixels (the third row of ``R_z`` is (0, 0, 1)) that turns them
  about the principal point;
- **crop jitter**: the crop box (the box of the person's 2D points after the rotation, made to the
  crop's aspect, enlarged by the crop's ``scale``) is shifted by up to ``shift`` of its size and scaled
  by a factor in ``zoom``; the crop's affine A changes the intrinsics to ``A K``;
- **flip**: mirroring the crop about its vertical centre line is mirroring the world ``x -> -x``: the
  camera-frame joints have x negated and left and right swapped (`hmrlab.geometry.mirror_poses`), the
  SMPL pose swaps left and right joints and negates the y and z components of every axis-angle
  (`mirror_smpl_pose`: for the reflection S = diag(-1, 1, 1), ``S R S`` has axis-angle
  (r_x, -r_y, -r_z)), and the principal point moves to ``W - 1 - c_x``;
- **colour**: a gain per channel in ``[1 - color, 1 + color]``; **occlusion**: with probability
  ``occlusion`` a rectangle of random colour covering ``occluder`` of the crop's side in each direction.

`augment_crop` does all of them on one picture; `hmrlab.data.datasets.SynthCrops` and
`hmrlab.data.datasets.MeshSamples` apply it per item when given an `Augmentation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from hmrlab.body.skeletons import SMPL_24
from hmrlab.data.crops import crop_affine
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle, mirror_poses

__all__ = ["Augmentation", "augment_crop", "mirror_smpl_pose", "warp_crop"]

_SMPL_FLIP = torch.as_tensor(SMPL_24.flip_permutation)


@dataclass(frozen=True)
class Augmentation:
    """How strongly `augment_crop` perturbs a training crop (``Augmentation()``: SPIN-like defaults).

    zoom: range of the crop box's scale factor; shift: the most the box centre moves, as a share of
    the box's width and height; rotation: the largest in-plane angle (degrees), applied with
    probability ``rotation_prob``; flip: probability of the horizontal flip; color: gain range per
    channel; occlusion: probability of an occluding rectangle of side ``occluder`` (share of the crop).
    """

    zoom: tuple[float, float] = (0.8, 1.2)
    shift: float = 0.1
    rotation: float = 30.0
    rotation_prob: float = 0.6
    flip: float = 0.5
    color: float = 0.3
    occlusion: float = 0.3
    occluder: tuple[float, float] = (0.1, 0.4)

    def __post_init__(self) -> None:
        probabilities = (self.rotation_prob, self.flip, self.occlusion)
        if not (0 < self.zoom[0] <= self.zoom[1] and self.shift >= 0 and self.rotation >= 0 and 0 <= self.color < 1
                and all(0 <= p <= 1 for p in probabilities) and 0 < self.occluder[0] <= self.occluder[1] <= 1):
            raise ValueError(f"invalid Augmentation {self}: need 0 < zoom[0] <= zoom[1], shift >= 0, rotation >= 0, "
                             "color in [0, 1), probabilities in [0, 1] and 0 < occluder[0] <= occluder[1] <= 1")


def mirror_smpl_pose(pose: torch.Tensor) -> torch.Tensor:
    """The left-right mirror image of SMPL axis-angle poses (..., 72) or (..., 24, 3): joints swapped
    left for right (`SMPL_24.flip_permutation`) and each rotation conjugated by the reflection
    diag(-1, 1, 1), which keeps the axis-angle's x and negates its y and z. Its own inverse."""
    flat = pose.shape[-1] == 72
    joints = pose.reshape(*pose.shape[:-1], 24, 3) if flat else pose
    # mirror_poses swaps and negates x; negating the whole result keeps x and negates y and z.
    mirrored = -mirror_poses(joints, _SMPL_FLIP)
    return mirrored.reshape(pose.shape) if flat else mirrored


def warp_crop(image: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The crop (h, w, 3) uint8, `size` = (h, w), of an image (H, W, 3) uint8 through a (2, 3) affine
    from image to crop pixels (pixel centres at integers), bilinear, black outside the image; a
    shrinking map first blurs the image (sigma = (1/s - 1) / 2, as `hmrlab.data.crops.person_crop`)."""
    linear = affine[:, :2]
    s = float(np.sqrt(abs(np.linalg.det(linear))))
    if s < 1:
        sigma = (1 / s - 1) / 2
        image = np.clip(np.round(ndimage.gaussian_filter(image.astype(np.float32), (sigma, sigma, 0))), 0, 255)
        image = image.astype(np.uint8)
    inverse = np.linalg.inv(np.vstack([affine, [0.0, 0.0, 1.0]]))
    # PIL samples output pixel (x, y) at its centre (x + 0.5, y + 0.5) and maps it back with the
    # inverse affine in coordinates whose pixel centres are at +0.5: shift in and out by half a pixel.
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    pil_inverse = half @ inverse @ np.linalg.inv(half)
    height, width = size
    out = Image.fromarray(image).transform((width, height), Image.Transform.AFFINE, tuple(pil_inverse[:2].ravel()),
                                           resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.array(out)


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _box_affine(points: np.ndarray, size: tuple[int, int], scale: float, zoom: float = 1.0,
                shift: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """`person_crop`'s affine (2, 3) for the box of `points` (P, 2), with its centre moved by `shift`
    (shares of the box) and its size multiplied by `zoom`."""
    low, high = points.min(0), points.max(0)
    height, width = size
    box_w, box_h = np.maximum(high - low, 1.0)
    aspect = width / height
    box_w, box_h = max(box_w, box_h * aspect), max(box_h, box_w / aspect)
    centre = (low + high) / 2 + np.asarray(shift) * (box_w, box_h)
    return crop_affine(centre, (scale * zoom * box_w, scale * zoom * box_h), size)


def augment_crop(
    image: np.ndarray,
    camera: np.ndarray,
    joints_3d: np.ndarray,
    pose: np.ndarray,
    points: np.ndarray,
    size: tuple[int, int],
    scale: float,
    rng: np.random.Generator | None,
    options: Augmentation | None,
) -> dict[str, np.ndarray]:
    """A (possibly augmented) crop of a picture and its targets.

    image (H, W, 3) uint8, camera (3, 3) its intrinsics (pixels), joints_3d (J, 3) camera frame
    (metres; SMPL's 24 joints), pose (72,) SMPL axis-angle with the global orientation in the camera
    frame, points (P, 2) the 2D points whose box is cropped (pixels), size (h, w) of the crop, scale
    the box's enlargement. With ``options=None`` the crop is `person_crop`'s (no randomness);
    otherwise the steps of the module docstring, drawn from `rng`. Returns ``image`` (h, w, 3) uint8,
    ``camera`` (3, 3) the crop's intrinsics, ``joints_3d``, ``joints_2d`` (J, 2) their projections by
    ``camera``, ``pose`` (72,), ``affine`` (2, 3) from picture to crop pixels and ``flipped``.
    A flip mirrors the joints; a body model that is left-right symmetric only to a fraction of a
    millimetre (the free model: 0.1 mm) then puts its own joints for the mirrored pose that far away
    (`hmrlab.data.datasets.MeshSamples` re-poses them).
    """
    rotation = np.eye(3)
    if options is not None and rng.random() < options.rotation_prob:
        rotation = _rotation_z(np.radians(rng.uniform(-options.rotation, options.rotation)))
    turn = camera @ rotation @ np.linalg.inv(camera)  # pixels moved by R_z: affine, third row (0, 0, 1)
    turned_points = points @ turn[:2, :2].T + turn[:2, 2]
    if options is None:
        affine = _box_affine(turned_points, size, scale)
    else:
        zoom = rng.uniform(*options.zoom)
        affine = _box_affine(turned_points, size, scale, zoom, rng.uniform(-options.shift, options.shift, 2))
    total = affine @ turn  # (2, 3): picture -> crop
    crop = warp_crop(image, total, size)
    crop_camera = np.vstack([affine, [0.0, 0.0, 1.0]]) @ camera
    joints_3d = joints_3d @ rotation.T
    pose = np.asarray(pose, dtype=np.float64).copy()
    if options is not None and not np.allclose(rotation, np.eye(3)):
        root = torch.from_numpy(rotation) @ axis_angle_to_matrix(torch.from_numpy(pose[:3]))
        pose[:3] = matrix_to_axis_angle(root).numpy()
    height, width = size
    flipped = options is not None and rng.random() < options.flip
    if flipped:
        crop = crop[:, ::-1]
        crop_camera = crop_camera.copy()
        crop_camera[0, 2] = width - 1 - crop_camera[0, 2]
        total = np.array([[-1.0, 0.0, width - 1], [0.0, 1.0, 0.0]]) @ np.vstack([total, [0.0, 0.0, 1.0]])
        joints_3d = mirror_poses(torch.from_numpy(joints_3d), _SMPL_FLIP).numpy()
        pose = mirror_smpl_pose(torch.from_numpy(pose)).numpy()
    if options is not None:
        crop = crop.astype(np.float32) * rng.uniform(1 - options.color, 1 + options.color, 3)
        if rng.random() < options.occlusion:
            h, w = (rng.uniform(*options.occluder, 2) * (height, width)).astype(int) + 1
            top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            crop[top : top + h, left : left + w] = rng.uniform(0, 255, 3)
        crop = np.clip(np.round(crop), 0, 255).astype(np.uint8)
    projected = joints_3d @ crop_camera.T
    return {
        "image": np.ascontiguousarray(crop), "camera": crop_camera, "joints_3d": joints_3d,
        "joints_2d": projected[:, :2] / projected[:, 2:], "pose": pose, "affine": total, "flipped": flipped,
    }

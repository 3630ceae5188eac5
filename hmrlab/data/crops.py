"""Person crops: the affine map from image to crop pixels and the crop a network reads.

Pure NumPy/SciPy (no renderer), so datasets and models can crop without loading VTK. Pixel
centres are at integers; a crop's ``size`` is (height, width).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from hmrlab.validation import check_points, format_shape

__all__ = ["apply_affine", "crop_affine", "person_crop"]


def crop_affine(center: Sequence[float], box_size: Sequence[float], size: tuple[int, int]) -> np.ndarray:
    """The (2, 3) affine taking image pixels to crop pixels for a box of `box_size` (w, h) at `center`.

    The box must have the crop's aspect ratio (`size` = (height, width)): the map is a uniform scale
    ``s = width / w`` and a shift, ``u' = s (u - c_x) + (width - 1) / 2``, so that the box's edges
    land on the crop's outer pixel edges (pixel centres at integers).
    """
    height, width = size
    s = width / box_size[0]
    return np.array([[s, 0.0, (width - 1) / 2 - s * center[0]], [0.0, s, (height - 1) / 2 - s * center[1]]])


def apply_affine(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine map to 2D points (..., N, 2): ``points @ A[:, :2]^T + A[:, 2]``."""
    points, affine = np.asarray(points, dtype=np.float64), np.asarray(affine, dtype=np.float64)
    if affine.shape != (2, 3):
        raise ValueError(f"affine must have shape (2, 3); got {format_shape(affine.shape)}")
    check_points(points, "points", last_dim=2)
    return points @ affine[:, :2].T + affine[:, 2]


def person_crop(
    image: np.ndarray,
    target: np.ndarray,
    *,
    size: tuple[int, int] = (224, 224),
    scale: float = 1.25,
    fill: float = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop the person at a network's input `size` = (height, width), e.g. (224, 224) or (256, 192).

    image: (H, W, C) or (H, W) (a mask: bool, resampled by nearest neighbour). target: 2D keypoints
    (J, 2) pixels, whose bounding box is used, or a box (4,) (x_min, y_min, x_max, y_max). The box
    is widened or heightened to the crop's aspect ratio about its centre, then enlarged by `scale`
    (1.25 as in SPIN/HMR-style pipelines); parts outside the image are `fill`. Returns the crop
    (height, width[, C]) in the image's dtype and the (2, 3) affine from image to crop pixels, also
    for ``apply_affine(keypoints, affine)``. Shrinking blurs first (Gaussian, sigma = (1/s - 1)/2) so
    that fine background patterns do not alias.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C); got {format_shape(image.shape)}")
    target = np.asarray(target, dtype=np.float64)
    if target.shape == (4,):
        low, high = target[:2], target[2:]
    elif target.ndim == 2 and target.shape[1] == 2 and len(target):
        low, high = target.min(axis=0), target.max(axis=0)
    else:
        raise ValueError(
            "target must be keypoints (J, 2) or a box (4,) (x_min, y_min, x_max, y_max); "
            f"got {format_shape(target.shape)}"
        )
    if not np.isfinite(target).all() or (high < low).any() or scale <= 0:
        raise ValueError(
            f"need a finite box with x_max >= x_min, y_max >= y_min and scale > 0; got {low}, {high}, {scale}"
        )
    height, width = size
    box_w, box_h = np.maximum(high - low, 1.0)
    aspect = width / height
    box_w, box_h = max(box_w, box_h * aspect), max(box_h, box_w / aspect)
    affine = crop_affine((low + high) / 2, (scale * box_w, scale * box_h), size)
    s = affine[0, 0]
    is_mask = image.dtype == bool
    source = image.astype(np.float64)
    if s < 1 and not is_mask:
        sigma = (1 / s - 1) / 2
        source = ndimage.gaussian_filter(source, sigma=(sigma, sigma, 0)[: image.ndim])
    # ndimage maps each output (row, col[, channel]) index to an input index: the inverse affine.
    inverse_scale = np.array([1 / s, 1 / s, 1.0][: image.ndim])
    offset = np.array([-affine[1, 2] / s, -affine[0, 2] / s, 0.0][: image.ndim])
    output_shape = (height, width) + image.shape[2:]
    crop = ndimage.affine_transform(
        source, inverse_scale, offset=offset, output_shape=output_shape, order=0 if is_mask else 1,
        mode="constant", cval=float(fill),
    )
    if is_mask:
        return crop > 0.5, affine
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        crop = np.clip(np.round(crop), info.min, info.max)
    return crop.astype(image.dtype), affine

"""RoIAlign (He et al., "Mask R-CNN", ICCV 2017, Sec. 3) in plain torch, as torchvision computes it.

RoIAlign resamples a box of a feature map (or of an image) to a fixed ``output_size`` grid without
rounding the box to whole pixels. Each output cell ("bin") is the average of
``grid_h x grid_w`` bilinear samples placed regularly inside the bin. The conventions are those of
``torchvision.ops.roi_align`` (torchvision cannot be imported with this torch, so this is written
from the paper and torchvision's documented semantics, and tested against a NumPy loop):

* boxes are ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in input pixels; they are multiplied by
  ``spatial_scale`` (e.g. 1/32 for a stride-32 map) before sampling;
* ``aligned=True`` shifts the box by half a pixel so that pixel centres sit at integer coordinates
  (``x1 = 0, x2 = W`` covers the whole image); ``aligned=False`` is the original Mask R-CNN rule,
  which also stretches boxes narrower than one pixel to one pixel;
* ``sampling_ratio > 0`` puts that many samples per bin along each axis; ``<= 0`` chooses
  ``ceil(box size / output size)`` per box (adaptive, as torchvision);
* a sample further than one pixel outside the map is 0; one within that pixel reads the border.

Because bilinear interpolation and the sample grid are both separable, each box's output is a
product of matrices, ``out_k = A_y(k) F_{b_k} A_x(k)^T``, with ``A_y`` (PH, H) and ``A_x`` (PW, W)
holding the interpolation weights averaged over each bin's samples (`roi_align_weights`). The
result is differentiable in the features and, almost everywhere, in the box coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hmrlab.validation import as_pair, check_finite, format_shape

__all__ = ["roi_align", "roi_align_weights", "bin_sample_coordinates", "bilinear_weights"]


def bin_sample_coordinates(
    start: Tensor, length: Tensor, bins: int, grid: Tensor
) -> tuple[Tensor, Tensor]:
    """Sample positions along one axis: (K,), (K,), bins, (K,) int -> coordinates (K, bins, G), mask.

    Box k starts at ``start[k]`` (pixels) and is ``length[k]`` long, cut into ``bins`` equal bins,
    each sampled at ``grid[k]`` evenly spaced points, the i-th at ``(i + 0.5) / grid`` of the bin.
    ``G = max(grid)``; the bool mask (K, 1, G) marks the samples that exist for each box.
    """
    max_grid = max(int(grid.max()), 1)
    bin_size = length / bins
    steps = torch.arange(max_grid, dtype=start.dtype, device=start.device)
    offsets = (steps + 0.5) / grid.clamp(min=1).to(start.dtype)[:, None]  # (K, G), in bins
    bin_index = torch.arange(bins, dtype=start.dtype, device=start.device)
    coords = start[:, None, None] + bin_size[:, None, None] * (bin_index[None, :, None] + offsets[:, None, :])
    return coords, (steps[None, None, :] < grid[:, None, None])


def bilinear_weights(coords: Tensor, exists: Tensor, size: int) -> Tensor:
    """One-axis bilinear weights of sample coordinates (K, P, G), summed over each row's G samples: (K, P, size).

    A sample at ``c`` reads ``1 - l`` of the pixel below it and ``l`` of the one above, ``l`` the
    fractional part. As torchvision: a sample below -1 or above ``size`` reads nothing; one in
    [-1, 0] reads pixel 0, one at or beyond ``size - 1`` reads pixel ``size - 1``. Samples where
    ``exists`` (broadcast to coords) is False count for nothing. Memory is O(K P G), not O(K P G size).
    """
    inside = ((coords >= -1.0) & (coords <= size) & exists).to(coords.dtype)
    coords = coords.clamp(min=0.0)
    low = coords.floor().clamp(max=size - 1)
    at_end = low >= size - 1
    # A sample at or past the last pixel reads that pixel alone (fraction 0).
    frac = torch.where(at_end, torch.zeros_like(coords), coords - low)
    low_index = low.long()
    high_index = torch.where(at_end, low_index, low_index + 1)
    weights = coords.new_zeros(*coords.shape[:2], size)
    weights = weights.scatter_add(2, low_index, (1 - frac) * inside)
    return weights.scatter_add(2, high_index, frac * inside)


def roi_align_weights(
    boxes: Tensor,
    feature_size: tuple[int, int],
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> tuple[Tensor, Tensor]:
    """The separable resampling matrices of each box: ``A_y`` (K, PH, H) and ``A_x`` (K, PW, W).

    ``A_y[k, p, h]`` is the weight of feature row h in output row p of box k: the bilinear weights
    of the bin's ``grid_h`` samples (`bilinear_weights`), averaged. With ``sampling_ratio <= 0`` a
    box much larger than the output takes many samples per bin (as in torchvision), and time and
    memory grow with it. ``roi_align`` is then
    ``A_y F A_x^T`` for each box. boxes: (K, 5) ``[batch_index, x1, y1, x2, y2]`` in input pixels.
    """
    (height, width), (out_h, out_w) = feature_size, output_size
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (boxes[:, i] * spatial_scale - offset for i in range(1, 5))
    box_w, box_h = x2 - x1, y2 - y1
    if not aligned:  # Mask R-CNN's original rule: at least one pixel
        box_w, box_h = box_w.clamp(min=1.0), box_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(box_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(box_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h = torch.ceil(box_h.detach() / out_h).long().clamp(min=0)
        grid_w = torch.ceil(box_w.detach() / out_w).long().clamp(min=0)
    matrices = []
    for start, length, bins, grid, size in ((y1, box_h, out_h, grid_h, height), (x1, box_w, out_w, grid_w, width)):
        coords, exists = bin_sample_coordinates(start, length, bins, grid)
        weights = bilinear_weights(coords, exists, size)  # (K, bins, size)
        matrices.append(weights / grid.clamp(min=1).to(coords.dtype)[:, None, None])
    return matrices[0], matrices[1]


def roi_align(
    features: Tensor,
    boxes: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """Resample boxes of ``features`` (N, C, H, W) to (K, C, PH, PW), as ``torchvision.ops.roi_align``.

    boxes: (K, 5) float rows ``[batch_index, x1, y1, x2, y2]``, corners in input pixels (scaled by
    ``spatial_scale``); output_size: ``PH`` or ``(PH, PW)``; sampling_ratio: samples per bin along
    each axis (``<= 0``: ``ceil(box size / output size)``, per box); aligned: half-pixel offset
    (module docstring; use True to crop images, where ``[0, 0, W, H]`` is the whole picture).
    Differentiable in ``features`` and, almost everywhere, in the box corners.
    """
    out_h, out_w = as_pair(output_size, "output_size")
    if not isinstance(features, Tensor) or features.ndim != 4:
        shape = format_shape(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"features must have shape (N, C, H, W); got {shape}")
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        shape = format_shape(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(
            f"boxes must have shape (K, 5) with rows [batch_index, x1, y1, x2, y2]; got {shape}. "
            "Prepend the image index to (K, 4) boxes with torch.cat([index[:, None], boxes], 1)."
        )
    if not math.isfinite(spatial_scale) or spatial_scale <= 0:
        raise ValueError(f"spatial_scale must be a positive number (feature pixels per input pixel); got {spatial_scale}")
    check_finite(boxes, "boxes")
    batch_index = boxes[:, 0].detach().long()
    if len(boxes) and (
        (boxes[:, 0].detach() != batch_index).any() or batch_index.min() < 0 or batch_index.max() >= len(features)
    ):
        raise ValueError(
            f"boxes[:, 0] must be whole image indices in [0, {len(features) - 1}]; got {boxes[:, 0].tolist()}"
        )
    boxes = boxes.to(features.dtype)
    if len(boxes) == 0:
        return features.new_zeros(0, features.shape[1], out_h, out_w)
    weights_y, weights_x = roi_align_weights(
        boxes, tuple(features.shape[2:]), (out_h, out_w), spatial_scale, sampling_ratio, aligned
    )
    rows = weights_y[:, None] @ features[batch_index]  # (K, C, PH, W)
    return rows @ weights_x[:, None].transpose(-1, -2)

"""SimCC: keypoint coordinates as classification over bins, one 1D classifier per axis.

SimCC (Li et al., ECCV 2022) replaces a (H, W) heatmap per keypoint by one vector of bins per axis:
the network outputs logits (..., D, n) for D axes with n bins each, trained against soft labels
(a Gaussian over the bins around the true coordinate) with a KL divergence. The keypoints-guided
lightweight HMR (Chen and Wang; Sec. III-B, "coordinate classification") uses three such
classifiers, x, y and depth, for each of its 91 keypoints, and decodes a coordinate *and* a
spread per axis, the σ that its RLE loss (Eq. 7, `hmrlab.nn.rle`) needs.

A range ``[low, high]`` is split into ``n`` equal bins whose centres are
``c_i = low + (i + 1/2) (high - low) / n``; coordinates are in the range's units (normalised image
coordinates or metres, ``[-0.5, 0.5]`` by default, as in HybrIK's and RLE's normalised uvd). The
decoding is the expectation ``sum_i p_i c_i`` of the softmax (differentiable, sub-bin precise)
and the spread its standard deviation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hmrlab.validation import check_finite, check_nonempty, format_shape


def _check_range(num_bins: int, low: float, high: float) -> None:
    if not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2; got {num_bins!r}")
    if not high > low:
        raise ValueError(f"the coordinate range must have high > low; got low={low}, high={high}")


def bin_centres(
    num_bins: int, low: float = -0.5, high: float = 0.5, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Centres (num_bins,) of `num_bins` equal bins splitting ``[low, high]``, in the range's units."""
    _check_range(num_bins, low, high)
    width = (high - low) / num_bins
    return low + width * (torch.arange(num_bins, dtype=dtype, device=device) + 0.5)


def simcc_targets(
    coords: torch.Tensor, num_bins: int, sigma: float, low: float = -0.5, high: float = 0.5
) -> torch.Tensor:
    """Soft labels (..., D, num_bins) for coordinates (..., D): a Gaussian over the bin centres.

    ``label_i ∝ exp(-(c_i - x)^2 / (2 sigma^2))``, normalised to sum to 1 per axis (SimCC's
    Gaussian label smoothing, Sec. 3.3 of SimCC). `sigma` is in the coordinates' units (a bin is
    ``(high - low) / num_bins`` wide); coordinates outside the range get the tail of their Gaussian,
    so keep the range wide enough for the data.
    """
    if not isinstance(coords, torch.Tensor) or not coords.is_floating_point():
        raise ValueError(f"coords must be a floating-point torch.Tensor of shape (..., D); got {type(coords).__name__}")
    check_nonempty(coords, "coords")
    check_finite(coords, "coords")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 (in the coordinates' units); got {sigma}")
    centres = bin_centres(num_bins, low, high, dtype=coords.dtype, device=coords.device)
    logits = -((centres - coords[..., None]) ** 2) / (2 * sigma**2)
    return torch.softmax(logits, dim=-1)


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or logits.shape[-1] < 2:
        shape = format_shape(tuple(logits.shape)) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a tensor of shape (..., D, num_bins) with num_bins >= 2; got {shape}")


def simcc_decode(
    logits: torch.Tensor, low: float = -0.5, high: float = 0.5, *, method: str = "expectation"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates and spreads (..., D) from per-axis bin logits (..., D, num_bins).

    With ``p = softmax(logits)`` over the bins: ``coords = sum_i p_i c_i`` (soft-argmax) and
    ``sigma = sqrt(sum_i p_i (c_i - coords)^2)``, both in the range's units. The spread is the
    per-axis "degree of deviation" that the paper's classifiers output next to the coordinates
    (Sec. III-B) and that scales the residual in the RLE loss.

    ``method="argmax"`` decodes as SimCC's released code does (leeyegy/SimCC, ``lib/core/function.py``):
    the centre of the most probable bin (not differentiable, precise to a bin), the spread then taken
    about it. Their ``argmax / k`` (k the splitting factor, ``n = k W`` bins for W pixels) puts bin i at
    pixel ``i / k``: it is ``method="argmax"`` with ``low = -0.5 / k`` and ``high = W - 0.5 / k``.
    """
    _check_logits(logits)
    if method not in ("expectation", "argmax"):
        raise ValueError(f"method must be 'expectation' (soft-argmax) or 'argmax' (SimCC's code); got {method!r}")
    centres = bin_centres(logits.shape[-1], low, high, dtype=logits.dtype, device=logits.device)
    probs = torch.softmax(logits, dim=-1)
    coords = centres[logits.argmax(-1)] if method == "argmax" else (probs * centres).sum(-1)
    variance = (probs * (centres - coords[..., None]) ** 2).sum(-1)
    # the floor keeps sigma > 0 (RLE divides by it) when all mass sits in one bin
    return coords, variance.clamp_min(torch.finfo(logits.dtype).tiny).sqrt()


def simcc_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None, *, normalisation: str = "bins"
) -> torch.Tensor:
    """KL divergence ``KL(targets || softmax(logits))`` summed over bins, averaged over the rest.

    logits, targets: (..., K, D, num_bins), targets rows summing to 1 (`simcc_targets`); weight:
    optional (..., K) visibility (0 drops a keypoint), the mean is then over weighted keypoints and
    axes. SimCC's training loss (Sec. 3.3 of SimCC).

    ``normalisation="authors"`` divides as SimCC's released ``KLDiscretLoss`` does: the weighted
    elementwise KL *averaged* over the bins, the batch and the keypoints (weights multiply, they do not
    renormalise) and *summed* over the D axes, i.e. ``sum(w KL) / (B K num_bins)`` for (B, K, D, num_bins)
    logits. That is ``D / num_bins`` times the default (1/64 for 2 axes of 128 bins): the paper gives the
    KL only, the scale matters for the loss weights tuned with it. Their labels are Gaussians normalised as
    densities (``1 / (sigma sqrt(2 pi))``), not to sum 1; pass them as ``targets`` for their values.
    """
    _check_logits(logits)
    if normalisation not in ("bins", "authors"):
        raise ValueError(f"normalisation must be 'bins' or 'authors' (SimCC's code); got {normalisation!r}")
    if tuple(targets.shape) != tuple(logits.shape):
        raise ValueError(
            f"targets must have the logits' shape {format_shape(tuple(logits.shape))}; got "
            f"{format_shape(tuple(targets.shape))}. Make them with simcc_targets(coords, num_bins, sigma)."
        )
    kl = F.kl_div(torch.log_softmax(logits, -1), targets, reduction="none").sum(-1)  # (..., K, D)
    if normalisation == "authors":
        if weight is not None:
            if tuple(weight.shape) != tuple(kl.shape[:-1]):
                raise ValueError(f"weight must have shape {format_shape(tuple(kl.shape[:-1]))} (one per keypoint); "
                                 f"got {format_shape(tuple(weight.shape))}")
            kl = kl * weight[..., None]
        return kl.sum(-1).mean() / logits.shape[-1]
    if weight is None:
        return kl.mean()
    if tuple(weight.shape) != tuple(kl.shape[:-1]):
        raise ValueError(
            f"weight must have shape {format_shape(tuple(kl.shape[:-1]))} (one per keypoint); got "
            f"{format_shape(tuple(weight.shape))}"
        )
    weighted = kl * weight[..., None]
    return weighted.sum() / (weight.sum() * kl.shape[-1]).clamp_min(1e-12)


__all__ = ["bin_centres", "simcc_decode", "simcc_loss", "simcc_targets"]

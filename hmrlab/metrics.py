"""3D pose and mesh metrics, with the definitions used by the community benchmarks.

Inputs are NumPy arrays or torch tensors of shape (..., J, 3) (joints) or (..., V, 3) (vertices),
both the same kind and shape, non-empty and finite (NaN or inf raise ValueError: mask invalid joints
first). NumPy inputs are computed in float64 and give NumPy results; torch inputs keep their device and
give (differentiable) tensors in the promoted dtype of the two, with two deliberate conversions:
integer tensors are computed in the default float dtype (float32), and float16/bfloat16 tensors in
float32 (squared distances in millimetres overflow float16 beyond 256 mm, and PA-MPJPE's SVD has no
half-precision kernel), so those results are float32. Complex and boolean inputs raise ValueError.
Distances are in the units of the input: benchmarks report millimetres, so multiply metre inputs by
1000 before reporting.

``reduction`` chooses the output shape of the per-joint errors (..., J):

* ``"mean"``: one scalar, the mean over everything (what papers report);
* ``"frame"``: (...,), the mean over joints, one value per pose;
* ``"joint"``: (J,), the mean over all leading dims, one value per joint (or vertex);
* ``"none"``: (..., J), no averaging.

For the temporal metrics (`accel_error`, `mpjve`) the pose axis T shrinks to T-2 or T-1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from hmrlab.geometry import procrustes_align, root_align
from hmrlab.validation import check_points, check_same_shape

Array = np.ndarray | torch.Tensor
Reduction = Literal["mean", "frame", "joint", "none"]

MPI_INF_3DHP_AUC_THRESHOLDS = tuple(0.005 * i for i in range(31))
"""The 31 thresholds 0, 5, ..., 150 mm (in metres) of the MPI-INF-3DHP evaluation code."""


def _as_tensors(
    pred: Array, target: Array, dims: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check a (pred, target) pair and return them as tensors, plus whether they were NumPy."""
    check_points(pred, "pred", dims=dims)
    check_points(target, "target", dims=dims)
    check_same_shape(pred, target, ("pred", "target"))
    from_numpy = isinstance(pred, np.ndarray)
    if from_numpy != isinstance(target, np.ndarray):
        raise TypeError(
            "pred and target must both be NumPy arrays or both torch tensors; got "
            f"{type(pred).__name__} and {type(target).__name__}"
        )
    if from_numpy:
        return torch.from_numpy(pred.astype(np.float64)), torch.from_numpy(
            target.astype(np.float64)
        ), True
    dtype = torch.promote_types(pred.dtype, target.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    elif dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return pred.to(dtype), target.to(dtype), False


def _as_output(x: torch.Tensor, from_numpy: bool) -> Array:
    """Give NumPy callers a NumPy result (a np.float64 scalar for 0-d results)."""
    return x.numpy()[()] if from_numpy else x


def _reduce(errors: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Average per-joint values (..., J) as the module docstring describes."""
    if reduction == "mean":
        return errors.mean()
    if reduction == "frame":
        return errors.mean(-1)
    if reduction == "joint":
        return errors.reshape(-1, errors.shape[-1]).mean(0)
    if reduction == "none":
        return errors
    raise ValueError(
        f"reduction must be one of 'mean', 'frame', 'joint', 'none'; got {reduction!r}"
    )


def _point_distances(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean distance per point, (..., J, 3) -> (..., J); gradient 0 where they coincide."""
    return torch.linalg.vector_norm(pred - target, dim=-1)


def _position_error(
    pred: Array,
    target: Array,
    dims: Sequence[str],
    root: int | Sequence[int] | None,
    reduction: Reduction,
) -> Array:
    p, t, from_numpy = _as_tensors(pred, target, dims)
    if root is not None:
        p, t = root_align(p, root), root_align(t, root)
    return _as_output(_reduce(_point_distances(p, t), reduction), from_numpy)


def _procrustes_error(
    pred: Array, target: Array, dims: Sequence[str], reduction: Reduction
) -> Array:
    p, t, from_numpy = _as_tensors(pred, target, dims)
    distances = _point_distances(procrustes_align(p, t), t)
    return _as_output(_reduce(distances, reduction), from_numpy)


def mpjpe(
    pred: Array,
    target: Array,
    *,
    root: int | Sequence[int] | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Mean per-joint position error, Human3.6M Protocol 1: ``mean_j |pred_j - target_j|``.

    pred, target: (..., J, 3). With `root` (a joint index, or several whose mean is the root,
    see `geometry.root_align`) both poses are first made root-relative, as Protocol 1 does with
    the pelvis. Units: those of the input (report millimetres).
    """
    return _position_error(pred, target, ("J",), root, reduction)


def mpvpe(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Mean per-vertex position error (3DPW "PVE"): MPJPE over mesh vertices (..., V, 3).

    3DPW evaluations translate both meshes to a common origin first (e.g. subtract each mesh's
    pelvis joint); do that before calling. ``reduction="joint"`` gives one value per vertex (V,).
    Units: those of the input (report millimetres).
    """
    return _position_error(pred, target, ("V",), None, reduction)


def pa_mpjpe(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Procrustes-aligned MPJPE, Human3.6M Protocol 2 (also "reconstruction error" in HMR/SPIN).

    Each predicted pose (J, 3) is moved onto its target by the least-squares similarity
    transform (scale, rotation, translation; `geometry.similarity_transform`) before MPJPE, so
    only the articulated shape of the pose is scored. Units: those of the input (mm reported).
    """
    return _procrustes_error(pred, target, ("J",), reduction)


def pa_mpvpe(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Procrustes-aligned per-vertex error (3DPW PA-PVE): `pa_mpjpe` over vertices (..., V, 3)."""
    return _procrustes_error(pred, target, ("V",), reduction)


def n_mpjpe(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Scale-normalised MPJPE (Rhodin et al., CVPR 2018), as in VideoPose3D's ``n_mpjpe``.

    Each prediction is multiplied by its least-squares scale ``s = <pred, target> / <pred, pred>``
    (sums over the pose's J x 3 coordinates) before MPJPE; there is no rotation and no
    translation, so pass root-relative poses (..., J, 3). Units: those of the input.
    """
    p, t, from_numpy = _as_tensors(pred, target, ("J",))
    numerator = (p * t).sum((-1, -2), keepdim=True)
    # An all-zero prediction gets s = 0 instead of 0/0.
    denominator = (p * p).sum((-1, -2), keepdim=True).clamp(min=torch.finfo(p.dtype).tiny)
    distances = _point_distances(numerator / denominator * p, t)
    return _as_output(_reduce(distances, reduction), from_numpy)


def _temporal_error(pred: Array, target: Array, order: int, reduction: Reduction) -> Array:
    """Error of the order-th finite difference along T of (..., T, J, 3) sequences."""
    p, t, from_numpy = _as_tensors(pred, target, ("T", "J"))
    frames = p.shape[-3]
    if frames < order + 1:
        raise ValueError(
            f"pred and target need at least {order + 1} frames along T in (..., T, J, 3) for a "
            f"difference of order {order}; got T = {frames}"
        )
    distances = _point_distances(torch.diff(p, n=order, dim=-3), torch.diff(t, n=order, dim=-3))
    return _as_output(_reduce(distances, reduction), from_numpy)


def accel_error(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Acceleration error of HMR-video/VIBE (``compute_error_accel``), used on 3DPW and Human3.6M.

    With the second difference ``a_t = x_{t-1} - 2 x_t + x_{t+1}`` of each joint along time,
    the error is ``|a_pred - a_target|`` per joint and frame t = 1 .. T-2, averaged.
    pred, target: (..., T, J, 3) with T >= 3; ``reduction="frame"`` gives (..., T-2).
    Units: input units per frame^2 (VIBE reports mm/frame^2 and labels it mm/s^2).
    """
    return _temporal_error(pred, target, 2, reduction)


def mpjve(pred: Array, target: Array, *, reduction: Reduction = "mean") -> Array:
    """Mean per-joint velocity error (VideoPose3D ``mean_velocity_error``, also MixSTE "MPJVE").

    Velocities are first differences ``v_t = x_{t+1} - x_t`` along time; the error is
    ``|v_pred - v_target|`` per joint, averaged. pred, target: (..., T, J, 3) with T >= 2;
    ``reduction="frame"`` gives (..., T-1). Units: input units per frame.
    """
    return _temporal_error(pred, target, 1, reduction)


def _fraction_within(
    pred: Array, target: Array, thresholds: Sequence[float], reduction: Reduction
) -> Array:
    """Mean over thresholds of the per-joint indicator ``distance < threshold``, then reduced."""
    p, t, from_numpy = _as_tensors(pred, target, ("J",))
    limits = torch.as_tensor(thresholds, dtype=p.dtype, device=p.device)
    if limits.ndim != 1 or limits.numel() == 0 or not bool((limits >= 0).all()):
        raise ValueError(
            f"thresholds must be a non-empty 1-D sequence of distances >= 0; got {thresholds!r}"
        )
    within = _point_distances(p, t).detach()[..., None] < limits
    return _as_output(_reduce(within.to(p.dtype).mean(-1), reduction), from_numpy)


def pck(
    pred: Array, target: Array, *, threshold: float = 0.15, reduction: Reduction = "mean"
) -> Array:
    """Percentage of correct 3D keypoints (MPI-INF-3DHP "3DPCK"), as a fraction in [0, 1].

    A joint is correct when its distance to the target is strictly below `threshold`, as in the
    official MATLAB evaluation (``error < 150``). The default 0.15 is 150 mm in metres, so
    inputs are expected in metres (pass 150 for millimetre inputs). The official protocol uses
    root-(pelvis-)relative poses (..., J, 3) on 14 joints; select and align them before calling.
    Not differentiable (a step function).
    """
    return _fraction_within(pred, target, [threshold], reduction)


def auc(
    pred: Array,
    target: Array,
    *,
    thresholds: Sequence[float] | None = None,
    reduction: Reduction = "mean",
) -> Array:
    """Area under the 3DPCK curve (MPI-INF-3DHP), as a fraction in [0, 1].

    The mean of `pck` over `thresholds`, by default the 31 values 0, 5, ..., 150 mm of the
    official code, in metres (`MPI_INF_3DHP_AUC_THRESHOLDS`). Because the comparison is strict
    (``error < t``) the threshold 0 never counts, so a perfect prediction scores 30/31 ≈ 0.968,
    exactly as the official code would.
    """
    limits = MPI_INF_3DHP_AUC_THRESHOLDS if thresholds is None else thresholds
    return _fraction_within(pred, target, limits, reduction)

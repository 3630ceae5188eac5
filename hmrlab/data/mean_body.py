"""The mean training body: the constant prediction every trained mesh model must beat (its floor).

A constant that predicts the same body for every picture scores what a model scores that has learnt
nothing from the pixels; STYLE.md asks for it beside every trained number. We take it as a *body*,
the mean parameters of the training set, so that it is a mesh every model could output:

- each joint's rotation (global orientation included, in the camera frame) is the **chordal L2
  mean** of the training rotations: the arithmetic mean of the rotation matrices projected back onto
  SO(3) (the nearest rotation in Frobenius norm, by SVD, determinant +1; Hartley et al., "Rotation
  averaging", IJCV 2013, Sec. 5.3). It minimises the summed squared matrix distance to the training
  rotations, the distance the mesh losses' θ terms use;
- betas (and any other linear parameter) are their mean.

The mean of the training *meshes* (notebook 10's floor) is the better constant for MPVPE (it
minimises the squared vertex error) but is no body: it shrinks limbs toward the middle when poses
vary. The two agree on how little a constant can do; the tasks' ``floor`` use the body.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["mean_axis_angle", "mean_mesh", "mean_rotation"]


def mean_rotation(matrices: Tensor) -> Tensor:
    """The chordal L2 mean (..., 3, 3) of rotations (N, ..., 3, 3): the mean matrix projected onto
    SO(3), ``U diag(1, 1, det(U V^T)) V^T`` of its SVD ``U S V^T``. Rotations spread uniformly over
    SO(3) have no meaningful mean (the mean matrix is near zero); the projection still returns one."""
    if matrices.dim() < 3 or matrices.shape[-2:] != (3, 3) or len(matrices) == 0:
        raise ValueError(f"matrices must have shape (N, ..., 3, 3) with N >= 1; got {tuple(matrices.shape)}")
    u, _, vh = torch.linalg.svd(matrices.double().mean(0))
    sign = torch.linalg.det(u @ vh)
    fix = torch.ones(*sign.shape, 3, dtype=torch.float64)
    fix[..., 2] = sign
    return ((u * fix[..., None, :]) @ vh).to(matrices.dtype)


def mean_axis_angle(poses: Tensor) -> Tensor:
    """Per-joint chordal mean (`mean_rotation`) of axis-angle poses (N, ..., J, 3), e.g. SMPL's (N, 24, 3):
    (..., J, 3) axis-angle."""
    if poses.dim() < 2 or poses.shape[-1] != 3:
        raise ValueError(f"poses must have shape (N, ..., 3) axis-angle; got {tuple(poses.shape)}")
    return matrix_to_axis_angle(mean_rotation(axis_angle_to_matrix(poses.double()))).to(poses.dtype)


def mean_mesh(poses: Tensor, betas: Tensor, pelvis: str = "smpl", chunk: int = 512) -> Tensor:
    """The mean (V, 3) of the SMPL-format meshes of poses (N, 72) camera-frame axis-angle and betas
    (N, 10), each relative to its pelvis: SMPL's joint 0 (``pelvis="smpl"``, the mesh task's
    targets) or Human3.6M's regressed joint 0 (``"h36m"``, the video task's), metres. The constant
    with the least squared vertex error, though no body (module docstring); ``chunk`` meshes are
    built at a time (16,000 at once would take 2.6 GB)."""
    from hmrlab.data import smpl_targets

    if pelvis not in ("smpl", "h36m"):
        raise ValueError(f"pelvis must be 'smpl' or 'h36m'; got {pelvis!r}")
    total = torch.zeros(smpl_targets.smpl_body().v_template.shape, dtype=torch.float64)
    for start in range(0, len(poses), chunk):
        vertices, joints = smpl_targets.posed_smpl(poses[start : start + chunk], betas[start : start + chunk])
        root = joints[:, :1] if pelvis == "smpl" else smpl_targets.h36m_joints(vertices)[:, :1]
        total += (vertices - root).double().sum(0)
    return (total / len(poses)).float()

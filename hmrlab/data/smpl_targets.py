"""SMPL meshes and joints from a dataset's SMPL parameters: the targets the mesh models train on and
are scored against (`hmrlab.evaluation.pw3d_split`), with the body model read once per process.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel, regress_joints

__all__ = ["h36m_joints", "posed_smpl", "smpl_arrays", "smpl_body", "smpl_meshes"]


@functools.cache
def smpl_arrays() -> dict[str, np.ndarray]:
    """The arrays of the SMPL-format body model the targets are made with (`hmrlab.body.body_model_arrays`:
    the free model unless a licensed one is set), read once per process."""
    return body_model_arrays("smpl")


@functools.cache
def smpl_body() -> BodyModel:
    """The body model of `smpl_arrays`, as a module."""
    return BodyModel(smpl_arrays())


def posed_smpl(pose: Tensor, betas: Tensor) -> tuple[Tensor, Tensor]:
    """Vertices (N, V, 3) and joints (N, J, 3), metres, of SMPL parameters: pose (N, 72) axis-angle,
    betas (N, 10). No translation: posed about the body model's origin (the protocols centre it)."""
    with torch.no_grad():
        return smpl_body()(betas=betas, body_pose=pose[:, 3:], global_orient=pose[:, :3])


def smpl_meshes(pose: Tensor, betas: Tensor) -> Tensor:
    """The vertices (N, V, 3) of `posed_smpl`: the targets every mesh model is scored against."""
    return posed_smpl(pose, betas)[0]


def h36m_joints(vertices: Tensor) -> Tensor:
    """The 17 Human3.6M joints (N, 17, 3) regressed from vertices (N, V, 3) of the body model's topology."""
    regressor = torch.as_tensor(smpl_arrays()["J_regressor_h36m"], dtype=vertices.dtype)
    return regress_joints(regressor, vertices)

"""Lifted 3D joints -> a posed body: the SMPL-format model's pose (and shape) fitted to Human3.6M joints.

Two stages, after SMPLify (Bogo et al., ECCV 2016) with HybrIK's analytical start (Li et al., CVPR 2021):

1. **Analytical IK** (`ik_initialisation`). The joints fix every bone's direction, hence the swing
   of each joint with one child and the whole rotation of joints with several (`hmrlab.nn.ik`). SMPL's
   tree is matched to Human3.6M's points by `SMPL_FROM_H36M` (spine1 halfway from the pelvis to the
   spine, spine2 the spine, spine3 halfway to the thorax, neck the thorax, collars 30 % of the way to
   the shoulders, head between the neck/nose marker and the head top), applied alike to the body's
   rest joints and to the targets, so that both skeletons are made the same way. Twists are zero; the
   feet, hands, head, ankles and wrists (no child among the targets) stay at rest.
2. **A short batched optimisation** (`fit_body`) of every frame's pose (and one shape for the sequence)
   with Adam: the squared distance between the targets and the joints the model's ``J_regressor_h36m``
   reads from the posed mesh (both root-relative, cm²), plus a Gaussian pose prior fitted on the motion
   library (`pose_prior`, a Mahalanobis distance: it decides what the joints leave free: twists, feet,
   hands, head), a smoothness term on frame-to-frame pose changes and a small shape prior.

Coordinates: the fit lives in the camera frame of the lifter (OpenCV: x right, y down, z forward,
metres); ``global_orient`` turns the y-up body into that frame and ``transl`` puts its pelvis on the
lifted root trajectory. `to_world` turns a fit into a y-up world (hmrlab's and glTF's: y up, metres).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel, blend_shapes, regress_joints
from hmrlab.body.skeletons import H36M_17, SMPL_24
from hmrlab.data.motions import ACTIONS, generate_motion
from hmrlab.data.synth import regress_posed_joints
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle
from hmrlab.nn.ik import inverse_kinematics
from hmrlab.validation import format_shape

NUM_BETAS = 10
# SMPL joints that IK poses: all but the feet and hands, which no Human3.6M joint follows.
IK_JOINTS = tuple(j for j, name in enumerate(SMPL_24.joint_names) if not name.endswith(("_foot", "_hand")))
_IK_PARENTS = tuple(-1 if SMPL_24.parents[j] < 0 else IK_JOINTS.index(SMPL_24.parents[j]) for j in IK_JOINTS)


def _smpl_from_h36m() -> np.ndarray:
    weights = np.zeros((len(IK_JOINTS), 17))
    h = H36M_17.index
    rules = {
        "spine1": {"pelvis": 0.5, "spine": 0.5}, "spine2": {"spine": 1.0}, "spine3": {"spine": 0.5, "thorax": 0.5},
        "neck": {"thorax": 1.0}, "head": {"neck": 0.5, "head": 0.5},
        "left_collar": {"thorax": 0.7, "left_shoulder": 0.3}, "right_collar": {"thorax": 0.7, "right_shoulder": 0.3},
    }
    for row, joint in enumerate(IK_JOINTS):
        name = SMPL_24.joint_names[joint]
        for point, weight in rules.get(name, {name: 1.0}).items():
            weights[row, h(point)] = weight
    return weights


SMPL_FROM_H36M = _smpl_from_h36m()
"""(20, 17) weights: the points of Human3.6M's joints that stand for SMPL's `IK_JOINTS` in the IK."""


@dataclass(frozen=True)
class FitBody:
    """The body model the fit poses: a `BodyModel` and its (17, N) ``J_regressor_h36m``."""

    model: BodyModel
    regressor: torch.Tensor

    @property
    def faces(self) -> np.ndarray:
        return self.model.faces.cpu().numpy()

    def rest_pelvis(self, betas: torch.Tensor) -> torch.Tensor:
        """(3,) the rest pose's SMPL pelvis joint (the centre of ``global_orient``), metres."""
        v_shaped = self.model.v_template + blend_shapes(betas.reshape(1, -1), self.model.shapedirs)
        return regress_joints(self.model.J_regressor, v_shaped)[0, 0]

    def vertices(self, poses: np.ndarray | torch.Tensor, betas: np.ndarray | torch.Tensor,
                 transl: np.ndarray | torch.Tensor, chunk: int = 64) -> np.ndarray:
        """Posed meshes (T, N, 3) metres for axis-angle ``poses`` (T, 24, 3), ``betas`` (10,), ``transl`` (T, 3)."""
        dtype = self.model.v_template.dtype
        poses, transl = (torch.as_tensor(np.asarray(a), dtype=dtype) for a in (poses, transl))
        betas = torch.as_tensor(np.asarray(betas), dtype=dtype).reshape(1, -1)
        out = []
        with torch.no_grad():
            for p, t in zip(poses.split(chunk), transl.split(chunk)):
                v, _ = self.model(betas=betas.expand(len(p), -1), body_pose=p[:, 1:], global_orient=p[:, 0], transl=t)
                out.append(v)
        return torch.cat(out).numpy()


@functools.lru_cache(maxsize=2)
def fitting_body(path: str | None = None) -> FitBody:
    """The free body model (or the SMPL file at `path`, which must carry ``J_regressor_h36m``) for fitting."""
    arrays = body_model_arrays("smpl", path)
    if "J_regressor_h36m" not in arrays:
        raise ValueError(f"the body model {path} has no J_regressor_h36m (17, N) array; the free model has one, "
                         "or add the Human3.6M regressor to the file")
    model = BodyModel(arrays, num_betas=NUM_BETAS)
    return FitBody(model, torch.as_tensor(np.asarray(arrays["J_regressor_h36m"]), dtype=torch.float32))


@functools.lru_cache(maxsize=1)
def pose_prior(seed: int = 0, per_action: int = 3, variance_floor: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian over the 23 body joints' axis-angles (69,) of the motion library: ``(mean (69,),
    precision (69, 69))``.

    `per_action` clips of every action of `hmrlab.data.motions` (at 10 fps, seeded) give the mean and
    the covariance, to which `variance_floor` rad² (a 0.1 rad standard deviation) is added on the
    diagonal: joints the library never moves (fingers' base, toes) are held near rest, not frozen.
    """
    generator = torch.Generator().manual_seed(seed)
    poses = torch.cat([generate_motion(action, generator=generator, fps=10).poses[:, 1:].reshape(-1, 69)
                       for action in ACTIONS for _ in range(per_action)]).double()
    mean = poses.mean(0)
    centred = poses - mean
    covariance = centred.T @ centred / (len(poses) - 1) + variance_floor * torch.eye(69, dtype=torch.float64)
    return mean.float(), torch.linalg.inv(covariance).float()


def _check_joints(joints: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    joints = torch.as_tensor(np.asarray(joints), dtype=torch.float64)
    if joints.ndim != 3 or joints.shape[1:] != (17, 3) or not len(joints):
        raise ValueError(f"{name} must have shape (T, 17, 3) (Human3.6M joints, metres); got "
                         f"{format_shape(tuple(joints.shape))}")
    if not torch.isfinite(joints).all():
        raise ValueError(f"{name} must be finite; fill or cut missing frames first")
    return joints


def ik_initialisation(joints: np.ndarray | torch.Tensor, body: FitBody | None = None,
                      betas: torch.Tensor | None = None) -> torch.Tensor:
    """Axis-angle poses (T, 24, 3) that point SMPL's bones along the Human3.6M `joints` (T, 17, 3),
    by `hmrlab.nn.ik.inverse_kinematics` on the `SMPL_FROM_H36M` points (module docstring, stage 1)."""
    body = body or fitting_body()
    joints = _check_joints(joints, "joints")
    betas = torch.zeros(NUM_BETAS) if betas is None else betas.detach().float()
    with torch.no_grad():
        v_shaped = body.model.v_template + blend_shapes(betas[None], body.model.shapedirs)
        rest_h36m = regress_joints(body.regressor, v_shaped).double()
    weights = torch.as_tensor(SMPL_FROM_H36M)
    rotmats, _ = inverse_kinematics(weights @ joints, weights @ rest_h36m, _IK_PARENTS)
    full = torch.eye(3, dtype=torch.float64).repeat(len(joints), 24, 1, 1)
    full[:, list(IK_JOINTS)] = rotmats
    return matrix_to_axis_angle(full).float()


@dataclass
class BodyFit:
    """A fitted body sequence, camera frame (module docstring).

    ``poses`` (T, 24, 3) SMPL axis-angle, joint 0 ``global_orient``; ``betas`` (10,); ``transl`` (T, 3)
    metres; ``joints`` (T, 17, 3) the fitted body's Human3.6M joints (``J_regressor_h36m``) with the
    translation; ``error_ik_mm`` / ``error_mm`` (T,) the root-aligned joint error against the targets
    after IK and after the optimisation (mm); ``seconds_ik`` / ``seconds_optimise``; ``iterations``.
    """

    poses: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    joints: np.ndarray
    error_ik_mm: np.ndarray
    error_mm: np.ndarray
    seconds_ik: float
    seconds_optimise: float
    iterations: int

    @property
    def seconds_per_frame(self) -> float:
        return (self.seconds_ik + self.seconds_optimise) / max(len(self.poses), 1)

    def summary(self) -> str:
        return (f"{len(self.poses)} frames: joint error {self.error_ik_mm.mean():.1f} mm after IK, "
                f"{self.error_mm.mean():.1f} mm after {self.iterations} iterations; "
                f"{1000 * self.seconds_per_frame:.1f} ms per frame")


def _mpjpe_mm(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    error = (pred - pred[:, :1]) - (target - target[:, :1])
    return 1000 * error.norm(dim=-1).mean(-1).detach().double().numpy()


def fit_body(
    joints: np.ndarray | torch.Tensor,
    trajectory: np.ndarray | torch.Tensor | None = None,
    *,
    body: FitBody | None = None,
    fit_shape: bool = True,
    iterations: int = 80,
    lr: float = 0.03,
    prior_weight: float = 0.2,
    smooth_weight: float = 20.0,
    shape_weight: float = 0.05,
) -> BodyFit:
    """Fit the body's poses (T, 24, 3) and, with `fit_shape`, one shape (10,) to Human3.6M `joints`
    (T, 17, 3) metres (root-relative or not: only the pose relative to the pelvis is fitted).

    `trajectory` (T, 3) places each frame's pelvis (Human3.6M's, the hip centre) there; without it the
    pelvis stays at the origin. Loss per iteration (module docstring): ``data [cm²] + prior_weight *
    Mahalanobis² / 69 + smooth_weight * mean |pose_t+1 - pose_t|² [rad²] + shape_weight * |betas|²``,
    minimised by Adam (`lr`) for `iterations` steps over the whole batch of frames at once.
    """
    body = body or fitting_body()
    target = _check_joints(joints, "joints").float()
    target = target - target[:, :1]
    frames = len(target)
    start = time.perf_counter()
    initial = ik_initialisation(target, body)
    zeros = torch.zeros(frames, 3)
    betas = torch.zeros(NUM_BETAS)
    with torch.no_grad():
        error_ik = _mpjpe_mm(regress_posed_joints(body.model, body.regressor, betas, initial, zeros), target)
    seconds_ik = time.perf_counter() - start

    start = time.perf_counter()
    mean, precision = pose_prior()
    pose = initial.clone().requires_grad_(True)
    betas = betas.clone().requires_grad_(fit_shape)
    optimizer = torch.optim.Adam([pose, betas] if fit_shape else [pose], lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad()
        pred = regress_posed_joints(body.model, body.regressor, betas, pose, zeros)
        data = (100 * ((pred - pred[:, :1]) - target)).square().sum(-1).mean()
        offset = pose[:, 1:].reshape(frames, 69) - mean
        prior = ((offset @ precision) * offset).sum(-1).mean() / 69
        smooth = (pose[1:] - pose[:-1]).square().sum(-1).mean() if frames > 1 else pose.new_zeros(())
        loss = data + prior_weight * prior + smooth_weight * smooth + shape_weight * betas.square().sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        pred = regress_posed_joints(body.model, body.regressor, betas, pose, zeros)
        transl = zeros if trajectory is None else (
            torch.as_tensor(np.asarray(trajectory), dtype=torch.float32).reshape(frames, 3) - pred[:, 0])
        fitted = pred + transl[:, None]
    seconds = time.perf_counter() - start
    return BodyFit(pose.detach().numpy(), betas.detach().numpy(), transl.numpy(), fitted.numpy(), error_ik,
                   _mpjpe_mm(pred, target), seconds_ik, seconds, iterations)


# ---------------------------------------------------------------------------------------------------
# World coordinates
# ---------------------------------------------------------------------------------------------------

CAMERA_TO_WORLD = np.diag([1.0, -1.0, -1.0])
"""A level camera's frame (OpenCV: x right, y down, z forward) -> the y-up world when the camera's
calibration is unknown: y up, the camera looking along -z, x to its right (glTF's camera, hmrlab's world)."""


@dataclass
class WorldMotion:
    """A body motion in a y-up world: ``poses`` (T, 24, 3) axis-angle, ``betas`` (10,), ``transl`` (T, 3)
    metres, ``fps``; ``frame`` says which world (`to_world`), ``camera_position`` (T, 3) where the camera
    was in it (metres; None when unknown)."""

    poses: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    fps: float
    frame: str
    camera_position: np.ndarray | None = None

    @property
    def pelvis_path(self) -> np.ndarray:
        """(T, 3) the root joint's world path: ``transl`` plus the rest pelvis (rotations turn about it)."""
        pelvis = fitting_body().rest_pelvis(torch.as_tensor(self.betas, dtype=torch.float32)).numpy()
        return self.transl + pelvis


def to_world(fit: BodyFit, fps: float = 30.0, *, rotation: np.ndarray | None = None,
             translation: np.ndarray | None = None, body: FitBody | None = None) -> WorldMotion:
    """A camera-frame fit in a y-up world: ``X_world = R^T (X_cam - t)``.

    With the camera's extrinsics `rotation` R (3, 3) or (T, 3, 3) and `translation` t (3,) or (T, 3)
    (world-to-camera, as `hmrlab.data.cameras.Camera`), that world. Without, the camera is taken as level
    and still at height h above a flat floor: ``R = CAMERA_TO_WORLD`` (its own inverse), and the world is
    shifted so that the floor, the lowest point any foot vertex reaches in the sequence, is y = 0, with
    the origin on the floor below the camera. A root rotation ``G`` and translation ``tr`` become
    ``A G`` and ``A (tr + p0) + b - p0`` for the world map ``x -> A x + b``, p0 the rest pelvis (SMPL
    turns ``global_orient`` about it).
    """
    body = body or fitting_body()
    frames = len(fit.poses)
    betas = torch.as_tensor(fit.betas, dtype=torch.float32)
    p0 = body.rest_pelvis(betas).detach().double().numpy()
    if rotation is None:
        A = np.broadcast_to(CAMERA_TO_WORLD, (frames, 3, 3))
        b = np.zeros((frames, 3))
        frame = "level camera at the origin's vertical, floor y = 0 (lowest foot point), camera looking along -z"
    else:
        R = np.broadcast_to(np.asarray(rotation, dtype=np.float64), (frames, 3, 3))
        t = np.broadcast_to(np.asarray(translation, dtype=np.float64), (frames, 3))
        A = np.swapaxes(R, -1, -2)
        b = -np.einsum("tij,tj->ti", A, t)
        frame = "the camera's world (X_world = R^T (X_cam - t))"
    rotmats = axis_angle_to_matrix(torch.as_tensor(fit.poses[:, 0], dtype=torch.float64)).numpy()
    root = matrix_to_axis_angle(torch.as_tensor(A @ rotmats)).numpy()
    transl = np.einsum("tij,tj->ti", A, fit.transl + p0) + b - p0
    poses = np.concatenate([root[:, None], fit.poses[:, 1:]], 1).astype(np.float32)
    camera = b.copy()  # the camera centre: x_cam = 0 maps to b
    if rotation is None:
        vertices = body.vertices(poses, fit.betas, transl)
        floor = vertices[..., 1].min()
        transl[:, 1] -= floor
        camera[:, 1] -= floor
    return WorldMotion(poses, fit.betas.copy(), transl.astype(np.float32), float(fps), frame, camera)


__all__ = ["CAMERA_TO_WORLD", "IK_JOINTS", "NUM_BETAS", "SMPL_FROM_H36M", "BodyFit", "FitBody", "WorldMotion",
           "fit_body", "fitting_body", "ik_initialisation", "pose_prior", "to_world"]

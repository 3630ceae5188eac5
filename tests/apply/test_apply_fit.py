"""`hmrlab.apply.fit`: bodies posed from known poses are recovered (IK start, then the optimisation),
and the world frame is the camera frame turned to y up with the floor at y = 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrlab.apply import fit
from hmrlab.data.motions import generate_motion
from hmrlab.data.synth import regress_posed_joints
from hmrlab.geometry import axis_angle_to_matrix

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def truth():
    """Human3.6M joints of a walking free-model body of a random shape, in a camera's frame."""
    body = fit.fitting_body()
    generator = torch.Generator().manual_seed(1)
    poses = generate_motion("walk", generator=generator, duration=1.0).poses[::5]
    betas = 0.5 * torch.randn(10, generator=generator)
    with torch.no_grad():
        world = regress_posed_joints(body.model, body.regressor, betas, poses, torch.zeros(len(poses), 3))
    camera = world.double().numpy() @ fit.CAMERA_TO_WORLD.T + [0.2, 0.3, 4.0]
    return body, poses, betas, camera


def test_ik_then_optimisation_recover_the_pose(truth):
    body, poses, betas, camera = truth
    result = fit.fit_body(camera - camera[:, :1], camera[:, 0], body=body, iterations=60)
    assert result.error_mm.mean() < 4 < result.error_ik_mm.mean() < 40, result.summary()
    assert result.poses.shape == (len(poses), 24, 3) and result.betas.shape == (10,)
    np.testing.assert_allclose(result.joints[:, 0], camera[:, 0], atol=1e-5)  # the pelvis on the trajectory
    # the rotations the joints determine: hips, knees, spine, shoulders, elbows within a few degrees
    fitted = axis_angle_to_matrix(torch.as_tensor(result.poses, dtype=torch.float64))
    true = axis_angle_to_matrix(poses.double())
    fitted[:, 0] = torch.as_tensor(fit.CAMERA_TO_WORLD) @ fitted[:, 0]  # camera -> world orientation
    cos = ((fitted.transpose(-1, -2) @ true).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    degrees = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean(0)
    assert degrees[[0, 1, 2, 4, 5, 16, 17, 18, 19]].max() < 10, degrees
    assert np.abs(result.betas[:2] - betas[:2].numpy()).max() < 0.3


def test_the_world_frame(truth):
    body, poses, _, camera = truth
    result = fit.fit_body(camera - camera[:, :1], camera[:, 0], body=body, iterations=10)
    motion = fit.to_world(result, fps=10, body=body)
    vertices = body.vertices(motion.poses, motion.betas, motion.transl)
    assert abs(vertices[..., 1].min()) < 1e-5  # the floor at y = 0
    world_joints = regress_posed_joints(body.model, body.regressor, torch.as_tensor(motion.betas),
                                        torch.as_tensor(motion.poses), torch.as_tensor(motion.transl)).numpy()
    expected = result.joints @ fit.CAMERA_TO_WORLD.T
    shift = (world_joints - expected)[..., 1].mean()  # the same up to the camera's height
    np.testing.assert_allclose(world_joints, expected + [0.0, shift, 0.0], atol=1e-4)
    np.testing.assert_allclose(motion.pelvis_path, world_joints[:, 0], atol=0.03)  # SMPL's vs Human3.6M's pelvis
    # with known extrinsics: X_world = R^T (X_cam - t)
    rotation, translation = fit.CAMERA_TO_WORLD, np.array([0.2, 0.3, 4.0])
    known = fit.to_world(result, rotation=rotation, translation=translation, body=body)
    joints = regress_posed_joints(body.model, body.regressor, torch.as_tensor(known.betas),
                                  torch.as_tensor(known.poses), torch.as_tensor(known.transl)).numpy()
    np.testing.assert_allclose(joints, (result.joints - translation) @ rotation, atol=1e-4)
    with pytest.raises(ValueError, match=r"\(T, 17, 3\)"):
        fit.fit_body(np.zeros((3, 16, 3)))


def test_the_pose_prior():
    mean, precision = fit.pose_prior()
    assert mean.shape == (69,) and precision.shape == (69, 69)
    assert torch.allclose(precision, precision.T, atol=1e-3) and (torch.linalg.eigvalsh(precision.double()) > 0).all()

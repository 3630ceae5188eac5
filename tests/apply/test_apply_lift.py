"""`hmrlab.apply.lift`: the root's path recovered exactly from a pinhole projection, sequences of any
length through a clip model, and the checks on what goes in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmrlab.apply import lift
from hmrlab.data.keypoint_formats import KeypointOrigin
from hmrlab.models.mixste import MixSTE

pytestmark = pytest.mark.usefixtures("one_thread")


def test_root_trajectory_inverts_the_pinhole_projection():
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.3, (5, 17, 3))
    joints -= joints[:, :1]
    root = np.column_stack([rng.uniform(-1, 1, 5), rng.uniform(-0.5, 0.5, 5), rng.uniform(3, 8, 5)])
    focal, center = np.array([1100.0, 1150.0]), np.array([499.5, 480.0])
    posed = joints + root[:, None]
    pixels = focal * posed[..., :2] / posed[..., 2:] + center
    np.testing.assert_allclose(lift.root_trajectory(joints, pixels, focal, center), root, rtol=1e-9)
    confident = np.concatenate([pixels, np.ones((5, 17, 1))], -1)
    confident[:, 3] = (1e6, -1e6, 0.0)  # a wild point with confidence 0 does not count
    np.testing.assert_allclose(lift.root_trajectory(joints, confident, focal, center), root, rtol=1e-9)


def test_lift_keypoints_any_length_and_the_checks():
    torch.manual_seed(0)
    model = MixSTE(dim=8, depth=1, heads=2, frames=9)
    keypoints = np.random.default_rng(1).uniform(0, 640, (23, 17, 2))
    lifted = lift.lift_keypoints(keypoints, (640, 480), model)
    assert lifted.shape == (23, 17, 3) and np.allclose(lifted[:, 0], 0) and model.training
    assert lift.lift_keypoints(keypoints[:4], (640, 480), model, flip=False).shape == (4, 17, 3)
    broken = keypoints.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match="missing in 1 frames.*complete_span"):
        lift.lift_keypoints(broken, (640, 480), model)
    with pytest.raises(ValueError, match=r"\(T, 17, 2 or 3\)"):
        lift.lift_keypoints(keypoints[:, :16], (640, 480), model)
    origin = np.full((10, 17), KeypointOrigin.MEASURED)
    origin[[0, 6], 4] = KeypointOrigin.MISSING
    assert lift.complete_span(origin) == slice(1, 6)


def test_lift_from_coco_keypoints_keeps_the_longest_complete_run():
    torch.manual_seed(0)
    model = MixSTE(dim=8, depth=1, heads=2, frames=9)
    rng = np.random.default_rng(2)
    coco = np.concatenate([rng.uniform(100, 500, (12, 17, 2)), np.ones((12, 17, 1))], -1)
    coco[2, 11, 2] = 0  # a hip missing in frame 2: the pelvis cannot be made there
    result = lift.lift_detections(coco, model, (640, 480), layout="coco17", focal=800.0)
    assert list(result.frame_ids) == list(range(3, 12)) and result.joints.shape == (9, 17, 3)
    assert result.trajectory.shape == (9, 3) and (result.trajectory[:, 2] >= 0.5).all()
    assert result.focal == 800.0 and np.allclose(result.center, (319.5, 239.5))
    assert lift.default_focal((640, 480)) == 640.0
    with pytest.raises(ValueError, match="image_size"):
        lift.lift_detections(coco, model, layout="coco17")

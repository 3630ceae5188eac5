"""hmrlab.data.synth_wholebody: shapes, boxes around their joints, pinhole projection by hand, params that
reproduce the joints through smplx, placement and sampling ranges, determinism."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hmrlab.body import SMPLX_JOINT_NAMES, load_body_model
from hmrlab.body.wholebody import SMPLX_PARAM_NAMES, part_joint_indices
from hmrlab.data.synth_wholebody import (
    PART_NAMES,
    WholeBodySamples,
    joint_box,
    make_wholebody_samples,
)

pytestmark = pytest.mark.usefixtures("one_thread")

COUNT, SIZE = 3, (64, 48)


@pytest.fixture(scope="module")
def samples() -> WholeBodySamples:
    return make_wholebody_samples(COUNT, image_size=SIZE, seed=2)


def test_shapes_and_ranges(samples):
    assert len(samples) == COUNT
    assert samples.images.shape == (COUNT, 3, *SIZE) and samples.images.dtype == torch.float32
    assert 0 <= samples.images.min() and samples.images.max() <= 1
    expected = {
        "global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3),
        "jaw_pose": (3,), "betas": (10,), "expression": (10,), "transl": (3,), "joints": (127, 3),
        "joints_2d": (127, 2), "boxes": (4, 4),
    }
    for name, shape in expected.items():
        assert getattr(samples, name).shape == (COUNT, *shape), name


def test_joints_project_through_the_pinhole(samples):
    # u = f x / z + c, v = f y / z + c with the camera at the origin (R = I, t = 0).
    joints = samples.joints.double()
    expected = joints[..., :2] / joints[..., 2:] * samples.focal.double() + samples.center.double()
    torch.testing.assert_close(samples.joints_2d.double(), expected, rtol=0, atol=1e-3)
    assert samples.focal.tolist() == pytest.approx([1.4 * SIZE[0]] * 2)


def test_params_reproduce_the_joints_through_smplx(samples):
    model = load_body_model(
        "smplx", num_betas=10, num_expression_coeffs=10, use_pca=False, flat_hand_mean=True, batch_size=COUNT
    )
    params = {name: getattr(samples, name).reshape(COUNT, -1) for name in SMPLX_PARAM_NAMES}
    with torch.no_grad():
        joints = model(**params).joints
    torch.testing.assert_close(joints, samples.joints, rtol=0, atol=1e-5)


def test_pelvis_placement_and_pose_ranges(samples):
    pelvis = samples.joints[:, 0]
    assert (pelvis[:, 2] >= 2.6).all() and (pelvis[:, 2] <= 3.4).all()
    assert (pelvis[:, :2].abs() <= 0.15 + 1e-5).all()
    jaw = samples.jaw_pose
    assert (jaw[:, 0] >= 0).all() and (jaw[:, 0] <= 0.3).all() and (jaw[:, 1:] == 0).all()
    # The body faces the camera's half-space: its head is above (smaller v than) its pelvis.
    head = SMPLX_JOINT_NAMES.index("head")
    assert (samples.joints_2d[:, head, 1] < samples.joints_2d[:, 0, 1]).all()


def test_boxes_hold_their_joints(samples):
    parts = part_joint_indices()
    assert len(parts["left_hand"]) == len(parts["right_hand"]) == 21
    assert SMPLX_JOINT_NAMES[parts["left_hand"][0]] == "left_wrist"
    groups = {"body": list(range(127)), **parts}
    for index, name in enumerate(PART_NAMES):
        points, box = samples.joints_2d[:, groups[name]], samples.boxes[:, index]
        assert (points >= box[:, None, :2] - 1e-4).all() and (points <= box[:, None, 2:] + 1e-4).all(), name
        width, height = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
        aspect = 256 / 192 if name == "body" else 1.0
        torch.testing.assert_close(height / width, torch.full_like(width, aspect))


def test_joint_box_by_hand():
    points = torch.tensor([[0.0, 0.0], [4.0, 2.0]])
    assert joint_box(points, 1.0).tolist() == [0.0, -1.0, 4.0, 3.0]
    assert joint_box(points, 1.0, aspect=2.0).tolist() == [0.0, -3.0, 4.0, 5.0]
    assert joint_box(points, 1.5).tolist() == [-1.0, -2.0, 5.0, 4.0]


def test_items_batch_with_a_dataloader(samples):
    batch = next(iter(DataLoader(samples, batch_size=2)))
    assert batch["images"].shape == (2, 3, *SIZE)
    assert batch["focal"].shape == (2, 2) and batch["boxes"].shape == (2, 4, 4)
    camera = samples.camera()
    assert camera.image_size == (SIZE[1], SIZE[0])
    np.testing.assert_allclose(camera.project(samples.joints[0].double().numpy()), samples.joints_2d[0].numpy(), atol=1e-3)


def test_same_seed_same_samples():
    first, second = (make_wholebody_samples(1, image_size=(32, 24), seed=5) for _ in range(2))
    assert torch.equal(first.images, second.images)
    assert all(torch.equal(getattr(first, name), getattr(second, name)) for name in SMPLX_PARAM_NAMES)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"count": 0}, "count"), ({"count": 1, "image_size": (8, 8)}, "image_size"),
     ({"count": 1, "part_scale": 0.0}, "part_scale")],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_wholebody_samples(**kwargs)

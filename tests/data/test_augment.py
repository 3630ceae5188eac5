"""Augmentation keeps the targets exact: the SMPL mirror rule, flips, rotations and crop jitter checked
against the body model, the camera's projection and marks drawn into the picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from hmrlab import paths
from hmrlab.body.skeletons import SMPL_24
from hmrlab.data.augment import Augmentation, augment_crop, mirror_smpl_pose, warp_crop
from hmrlab.data.crops import person_crop
from hmrlab.data.datasets import MeshSamples
from hmrlab.data.poses import sample_poses
from hmrlab.data.smpl_targets import posed_smpl, smpl_body
from hmrlab.evaluation import pw3d_split

pytestmark = pytest.mark.usefixtures("one_thread")

GEOMETRY_ONLY = Augmentation(color=0.0, occlusion=0.0)


def _poses(n: int = 4, seed: int = 0) -> torch.Tensor:
    return sample_poses(n, torch.Generator().manual_seed(seed), spread=1.5, random_yaw=True).reshape(n, 72)


def test_mirror_twice_is_the_identity():
    pose = _poses()
    torch.testing.assert_close(mirror_smpl_pose(mirror_smpl_pose(pose)), pose)
    assert mirror_smpl_pose(pose.reshape(-1, 24, 3)).shape == (4, 24, 3)


def test_mirrored_pose_gives_the_mirrored_mesh():
    """The body model at the mirrored pose is the mirror image (x -> -x) of the mesh at the pose, each
    vertex matched to its twin across the (symmetric) template by nearest neighbour."""
    template = smpl_body().v_template.double().numpy()
    distance, twin = cKDTree(template).query(template * [-1, 1, 1])
    assert distance.max() < 1e-3  # the free model is left-right symmetric to a millimetre
    pose, betas = _poses(), torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    vertices, _ = posed_smpl(pose, betas)
    flipped, _ = posed_smpl(mirror_smpl_pose(pose), betas)
    mirrored = vertices * torch.tensor([-1.0, 1.0, 1.0])
    assert (flipped[:, twin] - mirrored).norm(dim=-1).max() < 2e-3


def _picture_with_marks(camera: np.ndarray, joints: np.ndarray, size=(200, 160)) -> np.ndarray:
    """A black picture with a 3x3 white square at each joint's projection."""
    image = np.zeros((*size, 3), np.uint8)
    uv = joints @ camera.T
    for u, v in np.round(uv[:, :2] / uv[:, 2:]).astype(int):
        image[v - 1 : v + 2, u - 1 : u + 2] = 255
    return image


@pytest.mark.parametrize("seed", range(4))
def test_augmented_targets_follow_the_picture(seed):
    """After rotation, jitter and flip, each joint's mark sits at its new joints_2d; those are the new
    camera's projections of the new joints_3d; and the new pose, through the body model, gives the
    new joints (pelvis-relative): picture, camera, joints and pose all moved together."""
    pose, betas = _poses(1, seed)[0], torch.zeros(10)
    _, joints = posed_smpl(pose[None], betas[None])
    joints_3d = joints[0].double().numpy() + [0.1, -0.2, 4.0]
    camera = np.array([[300.0, 0.0, 85.0], [0.0, 300.0, 95.0], [0.0, 0.0, 1.0]])
    image = _picture_with_marks(camera, joints_3d)
    uv = joints_3d @ camera.T
    points = uv[:, :2] / uv[:, 2:]
    rng = np.random.default_rng(seed)
    options = Augmentation(rotation=40.0, rotation_prob=1.0, flip=float(seed % 2), color=0.0, occlusion=0.0)
    out = augment_crop(image, camera, joints_3d, pose.numpy(), points, (96, 96), 1.25, rng, options)
    projected = out["joints_3d"] @ out["camera"].T
    np.testing.assert_allclose(projected[:, :2] / projected[:, 2:], out["joints_2d"], atol=1e-6)
    # the affine the picture went through moves the original 2D joints onto the new ones (a flip
    # also swaps which joint is called left)
    moved = points @ out["affine"][:, :2].T + out["affine"][:, 2]
    order = SMPL_24.flip_permutation if seed % 2 else np.arange(24)
    np.testing.assert_allclose(moved[order], out["joints_2d"], atol=1e-6)
    for u, v in out["joints_2d"]:
        if 2 <= u < 94 and 2 <= v < 94:
            # the mark (3x3 white, blurred by the bilinear resampling) peaks within a pixel of the joint
            window = out["image"][int(v) - 2 : int(v) + 4, int(u) - 2 : int(u) + 4].sum(-1)
            assert window.max() > 200
    _, posed = posed_smpl(torch.as_tensor(out["pose"], dtype=torch.float32)[None], betas[None])
    relative = torch.as_tensor(out["joints_3d"] - out["joints_3d"][:1], dtype=torch.float32)
    torch.testing.assert_close(posed[0] - posed[0, :1], relative, atol=1e-3, rtol=0)


def test_flip_twice_gives_the_picture_back():
    """A flip-only augmentation applied to its own output returns the first crop and targets."""
    pose = _poses(1)[0].numpy()
    _, joints = posed_smpl(torch.as_tensor(pose)[None], torch.zeros(1, 10))
    joints_3d = joints[0].double().numpy() + [0.0, 0.0, 4.0]
    camera = np.array([[250.0, 0.0, 47.5], [0.0, 250.0, 47.5], [0.0, 0.0, 1.0]])
    image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    points = 47.5 + np.array([[-1.0, -1.0], [1.0, 1.0]]) * 96 / 1.25 / 2  # a centred box, 96 pixels once enlarged
    flip = Augmentation(zoom=(1.0, 1.0), shift=0.0, rotation_prob=0.0, flip=1.0, color=0.0, occlusion=0.0)
    once = augment_crop(image, camera, joints_3d, pose, points, (96, 96), 1.25, np.random.default_rng(0), flip)
    twice = augment_crop(once["image"], once["camera"], once["joints_3d"], once["pose"], points, (96, 96), 1.25,
                         np.random.default_rng(0), flip)
    # PIL's fixed-point bilinear weights may round a level off on each pass
    assert np.abs(once["image"].astype(int) - image[:, ::-1]).max() <= 1
    assert np.abs(twice["image"].astype(int) - image).max() <= 2
    np.testing.assert_allclose(twice["joints_3d"], joints_3d, atol=1e-9)
    np.testing.assert_allclose(twice["pose"], pose, atol=1e-6)
    np.testing.assert_allclose(twice["camera"], camera, atol=1e-6)


def test_plain_crop_is_person_crop():
    """Without options, `augment_crop` cuts what `person_crop` cuts (the same box, affine and pixels)."""
    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    points = np.array([[20.0, 30.0], [60.0, 100.0]])
    reference, affine = person_crop(image, points, size=(64, 48), scale=1.25)
    out = augment_crop(image, np.eye(3), np.ones((24, 3)), np.zeros(72), points, (64, 48), 1.25, None, None)
    np.testing.assert_allclose(out["affine"], affine, atol=1e-9)
    assert np.abs(out["image"].astype(int) - reference.astype(int)).max() <= 2
    assert np.abs(warp_crop(image, np.array([[1.0, 0, -10], [0, 1.0, -5]]), (50, 40)).astype(int)
                  - image[5:55, 10:50]).max() == 0


def test_colour_and_occlusion():
    image = np.full((64, 64, 3), 128, np.uint8)
    points = np.array([[10.0, 10.0], [53.0, 53.0]])
    options = Augmentation(zoom=(1.0, 1.0), shift=0.0, rotation_prob=0.0, flip=0.0, color=0.3, occlusion=1.0)
    out = augment_crop(image, np.eye(3), np.ones((24, 3)), np.zeros(72), points, (64, 64), 1.0,
                       np.random.default_rng(3), options)
    colours, counts = np.unique(out["image"].reshape(-1, 3), axis=0, return_counts=True)
    assert len(colours) == 2  # the picture's grey, gained per channel, and the occluder's colour
    gained = colours[counts.argmax()]
    assert ((gained >= 128 * 0.7 - 1) & (gained <= 128 * 1.3 + 1)).all() and len(set(gained)) > 1
    with pytest.raises(ValueError, match="invalid Augmentation"):
        Augmentation(zoom=(1.2, 0.8))


def test_mesh_samples_augment_keeps_the_targets_consistent():
    """MeshSamples with augmentation (on the shipped set): the same keys and shapes as without, and
    the targets still agree (projection of joints_3d; body model at the pose)."""
    sequences = pw3d_split.load_split(paths.SYNTH_3DPW, "train")
    plain = MeshSamples(sequences, paths.SYNTH_3DPW / "imageFiles", crop_size=(64, 64))
    augmented = MeshSamples(sequences, paths.SYNTH_3DPW / "imageFiles", crop_size=(64, 64), augment=Augmentation())
    torch.manual_seed(0)
    for i in (0, 7, 15):
        item, reference = augmented[i], plain[i]
        assert {k: v.shape for k, v in item.items()} == {k: v.shape for k, v in reference.items()}
        projected = item["joints_3d"] @ item["camera"].T
        torch.testing.assert_close(projected[:, :2] / projected[:, 2:], item["joints_2d"], atol=1e-3, rtol=0)
        _, joints = posed_smpl(item["pose"][None], item["betas"][None])
        torch.testing.assert_close(joints[0] - joints[0, :1], item["joints_3d"] - item["joints_3d"][:1],
                                   atol=2e-3, rtol=0)

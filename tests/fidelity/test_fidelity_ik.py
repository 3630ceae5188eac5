"""`inverse_kinematics(..., convention="hybrik")` equals HybrIK's batch_inverse_kinematics_transform (eval mode)."""

import pytest
import torch

from hmrlab.nn.ik import inverse_kinematics

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(fixture):
    joints, phis = fixture["joints"], fixture["phis"]
    num_joints = joints.shape[1]
    # Their phis cover the 23 rotated joints 1..23; entries for the five leaf joints 24..28 are not used.
    twist = torch.cat([phis, phis.new_tensor([1.0, 0.0]).expand(len(joints), num_joints - 1 - phis.shape[1], 2)], 1)
    return joints, fixture["rest_joints"], fixture["parents"], twist


def test_hybrik_convention_on_the_29_joint_tree(load_fixture):
    fixture = load_fixture("hybrik_ik")
    rotmats, _ = inverse_kinematics(*_inputs(fixture), convention="hybrik")
    assert rotmats.shape[1] == 29
    # HybrIK returns SMPL's 24 rotations; the leaves 24..28 are last in the tree and get the identity here.
    torch.testing.assert_close(rotmats[:, :24], fixture["rotmats"], rtol=0, atol=1e-5)


def test_the_default_convention_differs(load_fixture):
    """Ours indexes a twist by the bone's child and aligns spine3 to all three children: other rotations."""
    fixture = load_fixture("hybrik_ik")
    rotmats, _ = inverse_kinematics(*_inputs(fixture))
    assert (rotmats[:, :24] - fixture["rotmats"]).abs().max() > 0.1


def test_hybrik_twists_are_indexed_by_the_rotated_joint(load_fixture):
    fixture = load_fixture("hybrik_ik")
    joints, rest, parents, twist = _inputs(fixture)
    _, twists = inverse_kinematics(joints, rest, parents, twist, convention="hybrik")
    # Joints with one child (e.g. the left knee, 4 -> 7) return the normalised input twist at entry j - 1.
    torch.testing.assert_close(twists[:, 3], torch.nn.functional.normalize(twist[:, 3], dim=-1), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="convention must be"):
        inverse_kinematics(joints, rest, parents, twist, convention="smpl")

"""The mean training body's rotation mean against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from hmrlab.data.mean_body import mean_axis_angle, mean_rotation
from hmrlab.geometry import axis_angle_to_matrix


def test_rotations_about_one_axis_average_their_sines_and_cosines():
    """For rotations about one axis the chordal mean is the rotation by atan2(mean sin, mean cos)."""
    angles = torch.tensor([0.1, 0.7, 1.9, -0.4], dtype=torch.float64)
    axis = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64) / 3
    mean = mean_rotation(axis_angle_to_matrix(angles[:, None] * axis))
    expected = math.atan2(angles.sin().mean(), angles.cos().mean())
    torch.testing.assert_close(mean, axis_angle_to_matrix(expected * axis), atol=1e-10, rtol=0)


def test_mean_is_a_rotation_and_equivariant():
    """The mean is in SO(3), a single rotation is its own mean, and turning every rotation by G
    turns the mean by G (per joint, for (N, J, 3) axis-angle poses)."""
    generator = torch.Generator().manual_seed(0)
    poses = 0.8 * torch.randn(50, 24, 3, generator=generator, dtype=torch.float64)
    mean = axis_angle_to_matrix(mean_axis_angle(poses))
    torch.testing.assert_close(mean @ mean.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(24, 3, 3))
    assert torch.allclose(torch.linalg.det(mean), torch.ones(24, dtype=torch.float64))
    torch.testing.assert_close(mean_axis_angle(poses[:1]), poses[0], atol=1e-9, rtol=0)
    turn = axis_angle_to_matrix(torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64))
    turned = mean_rotation(turn @ axis_angle_to_matrix(poses))
    torch.testing.assert_close(turned, turn @ mean, atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="N >= 1"):
        mean_rotation(torch.zeros(0, 3, 3))

"""Lifting windows (padding, stride, flips), screen normalization, and Human3.6M lifting pairs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hmrlab.body.skeletons import H36M_17
from hmrlab.data.cameras import Y_UP_TO_Z_UP
from hmrlab.data.datasets import (
    LiftingWindows,
    h36m_lifting_pairs,
    h36m_lifting_sequences,
    image_coordinates,
    normalize_screen_coordinates,
)
from hmrlab.data.h36m import load_h36m
from hmrlab.data.synth import generate_h36m_like, load_h36m_cameras

pytestmark = pytest.mark.usefixtures("one_thread")
T, J = 6, 17


def sequence(frames: int = T, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Frame t, joint j holds (t, j) in 2D and (t, j, -t) in 3D, so every slice is recognisable."""
    t, j = np.meshgrid(np.arange(frames) + offset, np.arange(J), indexing="ij")
    return np.stack([t, j], -1).astype(np.float32), np.stack([t, j, -t], -1).astype(np.float32)


@pytest.mark.parametrize("seq2seq", [False, True])
def test_windows_are_slices_with_edge_padding(seq2seq):
    poses_2d, poses_3d = sequence()
    dataset = LiftingWindows([(poses_2d, poses_3d)], receptive_field=5, seq2seq=seq2seq)
    assert len(dataset) == T
    for centre in range(T):
        # frames centre-2 .. centre+2, clamped into the sequence: the first/last frame repeated
        frames = np.clip(np.arange(centre - 2, centre + 3), 0, T - 1)
        inputs, target = dataset[centre]
        assert torch.equal(inputs, torch.from_numpy(poses_2d[frames]))
        expected = poses_3d[frames] if seq2seq else poses_3d[centre]
        assert torch.equal(target, torch.from_numpy(expected))
    assert dataset[0][0][:3, 0, 0].tolist() == [0, 0, 0] and dataset[T - 1][0][-3:, 0, 0].tolist() == [T - 1] * 3


def test_stride_and_several_sequences():
    pairs = [sequence(12), sequence(8, offset=100)]
    dataset = LiftingWindows(pairs, receptive_field=3, stride=4)
    assert len(dataset) == 12 // 4 + 8 // 4
    centres = [dataset[i][1][0, 0].item() for i in range(len(dataset))]
    assert centres == [0, 4, 8, 100, 104]


def test_flip_maps_left_to_right_and_twice_is_identity():
    poses_2d, poses_3d = sequence()
    plain = LiftingWindows([(poses_2d, poses_3d)], receptive_field=3, seq2seq=True)
    flipped = LiftingWindows([(poses_2d, poses_3d)], receptive_field=3, seq2seq=True, flip_all=True)
    inputs, target = plain[2]
    inputs_f, target_f = flipped[2]
    for left, name in enumerate(H36M_17.joint_names):
        if name.startswith("left"):
            right = H36M_17.index(name.replace("left", "right"))
            assert torch.equal(inputs_f[:, right, 0], -inputs[:, left, 0])
            assert torch.equal(inputs_f[:, right, 1], inputs[:, left, 1])
            assert torch.equal(target_f[:, left, 1:], target[:, right, 1:])
    assert torch.equal(inputs_f[:, 0, 0], -inputs[:, 0, 0])  # the pelvis stays, mirrored
    assert torch.equal(flipped.mirror(inputs_f), inputs) and torch.equal(flipped.mirror(target_f), target)


def test_random_flip_is_seeded_and_flips_about_half():
    poses_2d, poses_3d = sequence(200, offset=1)  # x = t + 1 > 0, so a flipped item has x < 0

    def flips(seed: int) -> list[bool]:
        dataset = LiftingWindows([(poses_2d, poses_3d)], 1, flip=True, generator=torch.Generator().manual_seed(seed))
        return [bool(dataset[i][1][0, 0] < 0) for i in range(200)]

    assert flips(0) == flips(0) != flips(1)
    assert 70 < sum(flips(0)) < 130


@pytest.mark.parametrize(
    "kwargs", [{"receptive_field": 4}, {"receptive_field": 0}, {"stride": 0}, {"flip": True, "flip_all": True}]
)
def test_bad_windows_raise(kwargs):
    with pytest.raises(ValueError):
        LiftingWindows([sequence()], **{"receptive_field": 3, **kwargs})


def test_mismatched_pair_raises():
    poses_2d, poses_3d = sequence()
    with pytest.raises(ValueError, match="same T"):
        LiftingWindows([(poses_2d[:-1], poses_3d)], 3)


def test_normalization_round_trip_and_convention():
    pixels = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    normalized = normalize_screen_coordinates(pixels, 1000, 1002)
    np.testing.assert_allclose(normalized, [[-1, -1.002], [1, 1.002], [0, 0]], atol=1e-12)
    np.testing.assert_allclose(image_coordinates(normalized, 1000, 1002), pixels, atol=1e-9)
    tensor = torch.rand(4, 17, 2, dtype=torch.float64) * 1000
    assert torch.allclose(image_coordinates(normalize_screen_coordinates(tensor, 640, 480), 640, 480), tensor)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        normalize_screen_coordinates(np.zeros((4, 3)), 640, 480)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate_h36m_like(
        tmp_path_factory.mktemp("synth"), subjects=("S1",), motions_per_subject=2, max_frames=10, progress=False
    )


def test_pairs_match_the_cameras(synthetic):
    data = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz")
    cameras = load_h36m_cameras(synthetic / "cameras.json")
    pairs = h36m_lifting_pairs(data, cameras, ["S1"])
    assert len(pairs) == 2 * 4
    pair = iter(pairs)
    for action, world_z_up in data.positions_3d["S1"].items():
        world = world_z_up.astype(np.float64) @ Y_UP_TO_Z_UP
        for camera in cameras["S1"]:
            poses_2d, poses_3d = next(pair)
            in_camera = world @ camera.R.T + camera.t
            # an independent pinhole projection of the camera-frame joints
            pixels = camera.focal * in_camera[..., :2] / in_camera[..., 2:] + camera.center
            in_pixels = image_coordinates(poses_2d.astype(np.float64), *camera.image_size)
            np.testing.assert_allclose(in_pixels, pixels, atol=1e-3)
            np.testing.assert_allclose(poses_3d, in_camera - in_camera[:, :1], atol=1e-5)
            assert np.all(poses_3d[:, 0] == 0)
    dataset = LiftingWindows(pairs, receptive_field=9, seq2seq=True)
    assert len(dataset) == 8 * 10 and dataset[0][0].shape == (9, 17, 2) and dataset[0][1].shape == (9, 17, 3)


def test_sequences_are_keyed_by_subject_action_and_camera(synthetic):
    data = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_gt.npz")
    cameras = load_h36m_cameras(synthetic / "cameras.json")
    sequences = h36m_lifting_sequences(data, cameras, ["S1"])
    expected = [("S1", action, c) for action in data.positions_3d["S1"] for c in range(4)]
    assert list(sequences) == expected
    for (poses_2d, poses_3d), (key, (ours_2d, ours_3d)) in zip(h36m_lifting_pairs(data, cameras, ["S1"]), sequences.items()):
        assert len(ours_3d) == len(data.positions_3d["S1"][key[1]])
        np.testing.assert_array_equal(ours_2d, poses_2d)
        np.testing.assert_array_equal(ours_3d, poses_3d)


def test_pairs_need_2d_and_cameras(synthetic):
    cameras = load_h36m_cameras(synthetic / "cameras.json")
    with pytest.raises(ValueError, match="no 2D"):
        h36m_lifting_pairs(load_h36m(synthetic / "data_3d_h36m.npz"), cameras)
    data = load_h36m(synthetic / "data_3d_h36m.npz", synthetic / "data_2d_h36m_synth_det.npz")
    with pytest.raises(ValueError, match="S9"):
        h36m_lifting_pairs(data, cameras, ["S9"])

"""hmrlab.data.cameras: projection against the pinhole closed form, look-at against a hand-built
camera, the VideoPose3D dict against SciPy's quaternions and Human3.6M's real calibration, and the
detector-noise sampler's statistics against its parameters."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hmrlab.body.skeletons import H36M_17
from hmrlab.data.cameras import (
    H36M_AZIMUTHS,
    Y_UP_TO_Z_UP,
    Camera,
    DetectorNoise,
    h36m_like_cameras,
    look_at_rotation,
)

# Human3.6M subject S1's calibration as VideoPose3D lists it (common/h36m_dataset.py): reference data.
H36M_S1_ORIENTATIONS = [
    [0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088],
    [0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205],
    [0.14651472866535187, -0.14647851884365082, 0.7653023600578308, -0.6094175577163696],
    [0.5834008455276489, -0.7853162288665771, 0.14548823237419128, -0.14749594032764435],
]
H36M_S1_CAMERA_0 = {
    "id": "54138969",
    "center": [512.54150390625, 515.4514770507812],
    "focal_length": [1145.0494384765625, 1143.7811279296875],
    "radial_distortion": [-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043],
    "tangential_distortion": [-0.0009756988729350269, -0.00142447161488235],
    "res_w": 1000,
    "res_h": 1002,
    "azimuth": 70,
    "orientation": H36M_S1_ORIENTATIONS[0],
    "translation": [1841.1070556640625, 4955.28466796875, 1563.4454345703125],
}


def random_camera(seed: int) -> Camera:
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(random_state=seed).as_matrix()
    t = rng.uniform(-1, 1, 3) + (0, 0, 6)
    return Camera(rotation, t, rng.uniform(800, 1200, 2), rng.uniform(400, 600, 2), (1000, 1002))


def points_in_front(camera: Camera, n: int, seed: int) -> np.ndarray:
    """World points whose camera-frame depth is 3-8 m."""
    rng = np.random.default_rng(seed)
    cam_points = np.column_stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(3, 8, n)])
    return (cam_points - camera.t) @ camera.R


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_project_equals_pinhole_closed_form(seed):
    camera = random_camera(seed)
    points = points_in_front(camera, 50, seed)
    x_cam = np.einsum("ij,nj->ni", camera.R, points) + camera.t
    expected = camera.focal * x_cam[:, :2] / x_cam[:, 2:] + camera.center
    np.testing.assert_allclose(camera.project(points), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(camera.to_camera(points), x_cam, atol=1e-12)
    # Batched, and torch in -> torch out with gradients.
    batched = camera.project(np.stack([points, points]))
    assert batched.shape == (2, 50, 2)
    tensor = torch.tensor(points, requires_grad=True)
    projected = camera.project(tensor)
    assert isinstance(projected, torch.Tensor)
    projected.sum().backward()
    assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
    np.testing.assert_allclose(projected.detach().numpy(), expected, atol=1e-9)


def test_look_at_matches_a_hand_built_camera():
    # On the +z axis at height 1 looking back at the origin's vertical: camera x = world +x,
    # camera y (down) = world -y, camera z (forward) = world -z.
    camera = Camera.look_at((0.0, 1.0, 5.0), (0.0, 1.0, 0.0), focal=1000.0, image_size=(640, 480))
    np.testing.assert_allclose(camera.R, np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(camera.position, [0, 1, 5], atol=1e-12)
    # 0.5 m to the world's +x and 0.2 m up, 5 m away: right of and above the image centre.
    u, v = camera.project(np.array([[0.5, 1.2, 0.0]]))[0]
    np.testing.assert_allclose([u, v], [319.5 + 1000 * 0.5 / 5, 239.5 - 1000 * 0.2 / 5], atol=1e-9)
    # Any look-at rotation is proper and its z axis points at the target.
    position, target = np.array([3.0, 2.0, -4.0]), np.array([0.2, 0.9, 0.3])
    rotation = look_at_rotation(position, target)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(rotation[2], (target - position) / np.linalg.norm(target - position), atol=1e-12)
    assert rotation[1] @ (0, 1, 0) < 0  # image down is world down
    assert abs(rotation[0] @ (0, 1, 0)) < 1e-12  # no roll: the image x axis is horizontal


def test_scaled_camera_scales_pixel_coordinates():
    camera = random_camera(3)
    points = points_in_front(camera, 20, 3)
    small = camera.scaled(0.5)
    assert small.image_size == (500, 501)
    np.testing.assert_allclose(small.project(points), (camera.project(points) + 0.5) * 0.5 - 0.5, atol=1e-9)


@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
def test_generated_cameras_look_at_the_target(seed):
    generator = None if seed is None else np.random.default_rng(seed)
    target = np.array([0.0, 0.9, 0.0])
    cameras = h36m_like_cameras(4, generator, target=target)
    assert len(cameras) == 4 and len({c.name for c in cameras}) == 4
    for camera in cameras:
        width, height = camera.image_size
        assert width == 1000 and height in (1000, 1002)
        assert 1100 < camera.focal.mean() < 1200
        offset = camera.project(target[None])[0] - ((width - 1) / 2, (height - 1) / 2)
        # The jitter (+-5 cm look-at, +-12 px principal point) keeps the target near the centre.
        assert np.abs(offset).max() < (1e-9 if seed is None else 40.0)
        centre = camera.position - target
        assert 4.5 <= np.hypot(centre[0], centre[2]) <= 5.5
        assert 1.2 <= camera.position[1] <= 1.8


def test_generated_cameras_are_deterministic_and_placed_like_human36m():
    first = h36m_like_cameras(4, np.random.default_rng(7))
    again = h36m_like_cameras(4, np.random.default_rng(7))
    for a, b in zip(first, again):
        assert a.to_videopose3d_dict() == b.to_videopose3d_dict()
    for camera, azimuth, real in zip(h36m_like_cameras(), H36M_AZIMUTHS, H36M_S1_ORIENTATIONS):
        as_dict = camera.to_videopose3d_dict()
        assert as_dict["azimuth"] == pytest.approx(azimuth)
        ours = Rotation.from_quat(as_dict["orientation"], scalar_first=True)
        angle = np.degrees((ours.inv() * Rotation.from_quat(real, scalar_first=True)).magnitude())
        assert angle < 12.0, f"{camera.name}: {angle:.1f} degrees from Human3.6M's camera"
    assert len(h36m_like_cameras(3)) == 3


@pytest.mark.parametrize("z_up", [True, False])
def test_videopose3d_dict_round_trip_and_meaning(z_up):
    camera = h36m_like_cameras(4, np.random.default_rng(0))[1]
    as_dict = camera.to_videopose3d_dict(z_up=z_up)
    assert set(as_dict) == {
        "id", "center", "focal_length", "radial_distortion", "tangential_distortion", "res_w", "res_h",
        "azimuth", "orientation", "translation",
    }
    back = Camera.from_videopose3d_dict(as_dict, z_up=z_up)
    np.testing.assert_allclose(back.R, camera.R, atol=1e-12)
    np.testing.assert_allclose(back.t, camera.t, atol=1e-12)
    np.testing.assert_allclose(back.focal, camera.focal)
    np.testing.assert_allclose(back.center, camera.center)
    assert (back.image_size, back.name) == (camera.image_size, camera.name)
    # VideoPose3D's world_to_camera: rotate X - translation by the inverse of the orientation.
    to_file = Y_UP_TO_Z_UP if z_up else np.eye(3)
    points = points_in_front(camera, 10, 0)
    orientation = Rotation.from_quat(as_dict["orientation"], scalar_first=True)
    in_camera = orientation.inv().apply(points @ to_file.T - np.array(as_dict["translation"]) / 1000)
    np.testing.assert_allclose(in_camera, camera.to_camera(points), atol=1e-9)


def test_real_human36m_camera_reads_as_a_pinhole_camera():
    with pytest.raises(ValueError, match="distortion"):
        Camera.from_videopose3d_dict(H36M_S1_CAMERA_0)
    camera = Camera.from_videopose3d_dict(H36M_S1_CAMERA_0, ignore_distortion=True)
    # The capture volume's centre, 1 m above Human3.6M's floor (z-up (0, 0, 1000) mm = y-up (0, 1, 0) m).
    u, v = camera.project(np.array([[0.0, 1.0, 0.0]]))[0]
    assert 0 < u < 1000 and 0 < v < 1002
    again = camera.to_videopose3d_dict()
    np.testing.assert_allclose(again["translation"], H36M_S1_CAMERA_0["translation"], atol=1e-6)
    assert np.abs(np.abs(np.dot(again["orientation"], H36M_S1_CAMERA_0["orientation"])) - 1) < 1e-7


def test_bad_cameras_raise():
    with pytest.raises(ValueError, match="rotation"):
        Camera(np.diag([1.0, 1.0, -1.0]), np.zeros(3), (1, 1), (0, 0), (10, 10))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        Camera(np.eye(2), np.zeros(3), (1, 1), (0, 0), (10, 10))
    with pytest.raises(ValueError, match="Z > 0"):
        Camera(np.eye(3), np.zeros(3), (1, 1), (0, 0), (10, 10)).project(np.array([[0.0, 0.0, -1.0]]))
    with pytest.raises(ValueError, match="up"):
        look_at_rotation((0, 5, 0), (0, 0, 0))


def person_keypoints(frames: int, seed: int = 0) -> np.ndarray:
    """Fixed H36M-17-sized keypoints spread over a 150 x 400 px box (scale 400 px), repeated over time."""
    rng = np.random.default_rng(seed)
    frame = np.column_stack([rng.uniform(300, 450, 17), rng.uniform(100, 500, 17)])
    frame[0], frame[1] = (300, 100), (450, 500)
    return np.repeat(frame[None], frames, axis=0)


def test_gaussian_part_has_the_requested_std_and_autocorrelation():
    keypoints = person_keypoints(4000)
    sigma = np.linspace(0.005, 0.03, 17)
    noise = DetectorNoise(sigma=sigma, temporal_correlation=0.7, swap_prob=0, outlier_prob=0)
    noisy, _ = noise.apply(keypoints, np.random.default_rng(0))
    error = (noisy - keypoints) / 400.0
    std = error.std(axis=(0, 2))
    # 4000 frames at rho = 0.7 are worth about 4000 (1 - rho) / (1 + rho) ~ 700 independent ones per
    # coordinate: the std's relative error is about 1 / sqrt(2 * 1400) ~ 2 %.
    np.testing.assert_allclose(std, sigma, rtol=0.08)
    lag1 = (error[1:] * error[:-1]).mean() / (error * error).mean()
    assert lag1 == pytest.approx(0.7, abs=0.03)
    white, _ = DetectorNoise(sigma=0.01, temporal_correlation=0.0, swap_prob=0, outlier_prob=0).apply(
        keypoints, np.random.default_rng(1)
    )
    white_error = white - keypoints
    assert abs((white_error[1:] * white_error[:-1]).mean() / (white_error**2).mean()) < 0.03


def test_swap_and_outlier_rates_match_their_probabilities():
    frames = 4000
    keypoints = person_keypoints(frames)
    flip = H36M_17.flip_permutation
    swaps = DetectorNoise(sigma=0.001, swap_prob=0.1, outlier_prob=0)
    noisy, _ = swaps.apply(keypoints, np.random.default_rng(2), flip)
    to_truth = np.linalg.norm(noisy - keypoints, axis=-1).sum(-1)
    to_flipped = np.linalg.norm(noisy - keypoints[:, flip], axis=-1).sum(-1)
    swap_rate = (to_flipped < to_truth).mean()
    assert abs(swap_rate - 0.1) < 4 * np.sqrt(0.1 * 0.9 / frames)

    noise = DetectorNoise(sigma=0.001, swap_prob=0, outlier_prob=0.05, outlier_magnitude=0.3)
    noisy, confidence = noise.apply(keypoints, np.random.default_rng(3))
    distance = np.linalg.norm(noisy - keypoints, axis=-1) / 400.0
    is_outlier = distance > 0.15
    assert abs(is_outlier.mean() - 0.05) < 4 * np.sqrt(0.05 * 0.95 / is_outlier.size)
    np.testing.assert_allclose(distance[is_outlier], 0.3, atol=0.01)
    assert confidence[is_outlier].mean() < 0.5 * confidence[~is_outlier].mean()
    assert ((confidence >= 0) & (confidence <= 1)).all()


def test_noise_is_deterministic_for_a_seed():
    keypoints = person_keypoints(50)
    noise = DetectorNoise()
    first = noise.apply(keypoints, np.random.default_rng(5), H36M_17.flip_permutation)
    again = noise.apply(keypoints, np.random.default_rng(5), H36M_17.flip_permutation)
    other = noise.apply(keypoints, np.random.default_rng(6), H36M_17.flip_permutation)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_bad_noise_parameters_raise():
    with pytest.raises(ValueError, match="temporal_correlation"):
        DetectorNoise(temporal_correlation=1.0)
    with pytest.raises(ValueError, match="flip_permutation"):
        DetectorNoise(swap_prob=0.5).apply(person_keypoints(3), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(T, J, 2\)"):
        DetectorNoise().apply(np.zeros((17, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigma has 3 values"):
        DetectorNoise(sigma=[0.1, 0.1, 0.1]).apply(person_keypoints(3), np.random.default_rng(0))

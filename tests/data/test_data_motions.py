"""Procedural motions: inside the joint limits, smooth, reproducible, and physically sensible when
the free body model is moved by them (feet alternate, flight is ballistic, feet stay planted)."""

import math

import numpy as np
import pytest
import torch

from hmrlab.body import SMPL_24, BodyModel, body_model_arrays, forward_kinematics
from hmrlab.data.motions import ACTIONS, GRAVITY, Motion, generate_motion, random_motion
from hmrlab.data.poses import within_limits
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

FPS = 50
SEEDS = range(4)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def clips() -> dict[tuple[str, int], Motion]:
    return {(action, seed): generate_motion(action, generator=seeded(seed)) for action in ACTIONS for seed in SEEDS}


@pytest.fixture(scope="module")
def fk():
    """World joints (T, 24, 3) of the free model's mean shape moved by a motion."""
    model = BodyModel(body_model_arrays(), dtype=torch.float64)
    rest = model.J_regressor @ model.v_template

    def joints(motion: Motion) -> torch.Tensor:
        rotmats = axis_angle_to_matrix(motion.poses.double())
        posed = forward_kinematics(rotmats, rest.expand(motion.num_frames, -1, -1), model.parents)[0]
        return posed + motion.transl.double()[:, None]

    return joints


def heading(motion: Motion) -> torch.Tensor:
    """(T,) yaw of the root's forward axis (+z of the body), radians."""
    forward = axis_angle_to_matrix(motion.poses[:, 0].double())[:, :, 2]
    return torch.atan2(forward[:, 0], forward[:, 2])


def test_at_least_eight_actions_and_the_required_ones() -> None:
    required = {"walk", "run", "jump", "squat", "wave", "reach", "kick", "turn", "sit_stand"}
    assert required <= set(ACTIONS)


def test_every_frame_inside_the_joint_limits(clips) -> None:
    for (action, seed), motion in clips.items():
        inside = within_limits(motion.poses)
        assert inside.all(), f"{action} seed {seed}: joints {sorted(set((~inside).nonzero()[:, 1].tolist()))} outside"


def test_motions_are_smooth(clips) -> None:
    """Per-frame rotation of every joint (relative rotation between frames, so heading wrap-around
    is no jump) below 10°/frame = 500°/s, under the knee's ~800°/s in running; its change per frame
    (angular acceleration) below 4°/frame² = 10^4 °/s², also a human-range bound."""
    for (action, seed), motion in clips.items():
        rotmats = axis_angle_to_matrix(motion.poses.double())
        velocity = matrix_to_axis_angle(rotmats[:-1].transpose(-1, -2) @ rotmats[1:])  # (T-1, 24, 3) rad/frame
        acceleration = velocity[1:] - velocity[:-1]
        assert math.degrees(velocity.norm(dim=-1).max()) < 10, (action, seed)
        assert math.degrees(acceleration.norm(dim=-1).max()) < 4, (action, seed)
        step = (motion.transl[1:] - motion.transl[:-1]).norm(dim=-1)
        assert step.max() < 6.0 / FPS, (action, seed)  # root under 6 m/s


def test_deterministic_for_a_seed_and_different_across_seeds(clips) -> None:
    for action in ACTIONS:
        again = generate_motion(action, generator=seeded(0))
        assert torch.equal(again.poses, clips[action, 0].poses) and torch.equal(again.transl, clips[action, 0].transl)
        assert again.style == clips[action, 0].style
        assert not torch.equal(clips[action, 0].poses[:50], clips[action, 1].poses[:50])


def test_duration_and_fps_are_honoured() -> None:
    for action in ACTIONS:
        motion = generate_motion(action, duration=3.5, generator=seeded(2))
        assert motion.fps == FPS and motion.num_frames == 175 and motion.duration == pytest.approx(3.5)
        assert motion.poses.shape == (175, 24, 3) and motion.transl.shape == (175, 3)
    assert generate_motion("walk", duration=2.0, fps=30, generator=seeded()).num_frames == 60


@pytest.mark.parametrize("action, speed", [("walk", 1.3), ("run", 3.2)])
def test_locomotion_moves_forward_at_its_speed_with_alternating_feet(fk, action, speed) -> None:
    motion = generate_motion(action, duration=4.0, speed=speed, generator=seeded(3))
    travel = motion.transl[-1] - motion.transl[0]
    elapsed = (motion.num_frames - 1) / FPS
    assert abs(travel[1]) < 0.1
    assert travel[[0, 2]].norm() == pytest.approx(speed * elapsed, rel=0.03)
    # along the way the body faces where it goes (the pelvis oscillates a few degrees about it)
    facing = heading(motion).mean()
    assert math.atan2(travel[0], travel[2]) == pytest.approx(float(facing), abs=0.05)
    joints = fk(motion)
    pelvis = joints[:, 0, 1]
    left, right = (joints[:, SMPL_24.index(f"{side}_ankle"), 1] - pelvis for side in ("left", "right"))
    # the feet take turns: anti-correlated heights, the higher foot switching twice per stride
    assert np.corrcoef(left.numpy(), right.numpy())[0, 1] < -0.3
    switches = int(((left - right)[1:].sign() != (left - right)[:-1].sign()).sum())
    strides = elapsed * (1.3 + 0.05 * speed if action == "run" else 0.55 + 0.3 * speed)
    assert abs(switches - 2 * strides) <= 2


def test_jump_has_one_ballistic_peak(fk) -> None:
    for seed in SEEDS:
        motion = generate_motion("jump", generator=seeded(seed))
        height = motion.transl[:, 1].double()
        above = (height > height[0] + 0.02).nonzero().flatten()
        assert len(above) > 0 and torch.equal(above, torch.arange(above[0], above[-1] + 1))  # one airborne stretch
        rise = height[above[0] : above[-1] + 1].diff()
        assert (rise.sign().diff() <= 0).all()  # rising, then falling: a single peak
        assert height.max() == pytest.approx(motion.style["height"], abs=0.01)
        # while both feet are off the floor the root falls with gravity: second difference -g / fps^2
        joints = fk(motion)
        toes = joints[:, [SMPL_24.index("left_foot"), SMPL_24.index("right_foot")], 1]
        airborne = ((toes - toes[0]).min(-1).values > 0.02).nonzero().flatten()
        assert len(airborne) > 10 and torch.equal(airborne, torch.arange(airborne[0], airborne[-1] + 1))
        flight = height[airborne[0] : airborne[-1] + 1]
        assert torch.allclose(flight.diff(n=2), torch.full_like(flight[2:], -GRAVITY / FPS**2), atol=1e-5)
        # and on the floor the feet neither sink through it nor float more than the heels lift them
        assert toes.min() > toes[0].min() - 0.02


def test_turn_changes_the_heading_by_its_angle() -> None:
    for seed in SEEDS:
        motion = generate_motion("turn", generator=seeded(seed))
        yaw = heading(motion)
        change = math.remainder(float(yaw[-1] - yaw[0]), 2 * math.pi)
        angle = motion.style["turn_angle"] * (1 if motion.style["direction"] == "+" else -1)
        assert math.degrees(change) == pytest.approx(angle, abs=1.0)


@pytest.mark.parametrize("action", ["squat", "sit_stand"])
def test_lowering_the_pelvis_over_planted_feet(fk, action) -> None:
    motion = generate_motion(action, generator=seeded(4))
    joints = fk(motion)
    assert motion.transl[:, 1].min() < -0.2  # the pelvis comes down by more than 20 cm
    ankles = joints[:, [SMPL_24.index("left_ankle"), SMPL_24.index("right_ankle")]]
    assert (ankles - ankles[:1]).norm(dim=-1).max() < 0.01  # while the feet stay where they were


def test_random_motion_draws_every_action_eventually() -> None:
    generator = seeded(5)
    seen = {random_motion(generator).action for _ in range(60)}
    assert seen == set(ACTIONS)


def test_bad_arguments_raise_helpful_errors() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        generate_motion("moonwalk")
    with pytest.raises(ValueError, match="speed applies to walk and run"):
        generate_motion("squat", speed=1.0)
    with pytest.raises(ValueError, match=r"duration for 'jump' must be within"):
        generate_motion("jump", duration=0.5)
    with pytest.raises(ValueError, match=r"speed for 'run' must be within \[1.5, 6.0\] m/s"):
        generate_motion("run", speed=0.5)

"""Procedural human motions: short clips of everyday actions as smooth functions of time.

Each action is one small function of the frame times: joint angles built from periodic curves
(gait) or eased keyframes, written in the anatomical Euler angles of `hmrlab.data.poses` and kept
inside its limits, plus the root's translation. Style (amplitudes, asymmetry, arm swing, tempo,
side, facing direction), speed and duration are drawn from a seeded ``torch.Generator``; the draws
are kept in `Motion.style`.

Conventions: y up; an actor with zero yaw faces +z and its left is +x; ``transl`` is the pelvis'
offset from upright standing (``transl[:, 1] == 0`` standing on straight legs, negative when
crouching) so a generator adds the standing pelvis height of whatever body shape it poses.
Leg geometry (the pelvis' path over planted feet, stride length in a gait) uses the free model's
mean-shape thigh and shank, `THIGH_YZ` and `SHANK_YZ`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from hmrlab.body.skeletons import SMPL_24
from hmrlab.data.poses import JOINT_LIMITS, euler_to_axis_angle

# (y, z) metres from hip to knee and knee to ankle, the free model's mean shape in its rest pose
THIGH_YZ, SHANK_YZ = (-0.376, 0.029), (-0.431, -0.031)
LEG = -(THIGH_YZ[0] + SHANK_YZ[0])  # hip-to-ankle height
GRAVITY = 9.81  # m/s^2
_TOE_LEVER = 0.15  # metres from the ankle to the balls of the feet, about which the heels lift

# anatomical angle -> (joint without its side, Euler axis, sign of the left side's angle);
# see the sign table of `hmrlab.data.poses`. Right-side y/z angles are the left ones negated.
_ANATOMY = {
    "hip_flexion": ("hip", 0, -1),
    "hip_abduction": ("hip", 2, 1),
    "hip_external_rotation": ("hip", 1, 1),
    "knee_flexion": ("knee", 0, 1),
    "ankle_dorsiflexion": ("ankle", 0, -1),
    "shoulder_elevation": ("shoulder", 2, 1),
    "shoulder_forward": ("shoulder", 1, -1),
    "shoulder_external_rotation": ("shoulder", 0, -1),
    "elbow_flexion": ("elbow", 1, -1),
}
SIDES = ("left", "right")
_SPINE = ("spine1", "spine2", "spine3")


@dataclass
class Motion:
    """A clip: ``poses`` (T, 24, 3) SMPL axis-angle (joint 0 the root), ``transl`` (T, 3) metres.

    `style` records the random draws that made it (speed in m/s, angles in degrees, times in s).
    """

    action: str
    poses: torch.Tensor
    transl: torch.Tensor
    fps: int = 50
    style: dict[str, float | str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.poses.shape[0]

    @property
    def duration(self) -> float:
        """Seconds, ``num_frames / fps``."""
        return self.num_frames / self.fps


class _Style:
    """Random style parameters from one generator, recorded by name; `preset` values are not drawn."""

    def __init__(self, generator: torch.Generator | None, preset: dict[str, float]):
        self.generator = generator
        self.values: dict[str, float | str] = dict(preset)

    def uniform(self, name: str, low: float, high: float) -> float:
        if name not in self.values:
            u = torch.rand((), generator=self.generator, dtype=torch.float64).item()
            self.values[name] = low + (high - low) * u
        return self.values[name]

    def choice(self, name: str, options: Sequence[str]) -> str:
        if name not in self.values:
            self.values[name] = options[int(torch.randint(len(options), (), generator=self.generator))]
        return self.values[name]

    def sign(self, name: str) -> float:
        return 1.0 if self.choice(name, ("+", "-")) == "+" else -1.0


# --- curves -----------------------------------------------------------------------------------


def _bump(phase: torch.Tensor, centre: float, sharpness: float) -> torch.Tensor:
    """Smooth periodic bump, 1 at the cycle fraction `centre`, near 0 half a cycle away (von Mises)."""
    return torch.exp(sharpness * (torch.cos(phase - 2 * math.pi * centre) - 1))


def _keyframes(t: torch.Tensor, times: Sequence[float], values: Sequence[float]) -> torch.Tensor:
    """(T,) values eased between keys with ``(1 - cos(pi s)) / 2``: zero speed at each key, never
    outside the key values (so keys inside the joint limits keep the curve inside); held outside."""
    times_t = torch.as_tensor(times, dtype=t.dtype)
    values_t = torch.as_tensor(values, dtype=t.dtype)
    k = (torch.searchsorted(times_t, t, right=True) - 1).clamp(0, len(times) - 2)
    span = (times_t[k + 1] - times_t[k]).clamp(min=1e-9)
    s = ((t - times_t[k]) / span).clamp(0, 1)
    return values_t[k] + (values_t[k + 1] - values_t[k]) * (1 - torch.cos(math.pi * s)) / 2


def _hermite(t: torch.Tensor, t0: float, t1: float, y0: float, y1: float, v0: float, v1: float) -> torch.Tensor:
    """Cubic from (t0, y0) with slope v0 to (t1, y1) with slope v1, evaluated at t (clamped to [t0, t1])."""
    h = t1 - t0
    s = ((t - t0) / h).clamp(0, 1)
    return (
        (2 * s**3 - 3 * s**2 + 1) * y0 + (s**3 - 2 * s**2 + s) * h * v0
        + (-2 * s**3 + 3 * s**2) * y1 + (s**3 - s**2) * h * v1
    )


def _rotate_yz(vector: tuple[float, float], angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A (y, z) vector turned by `angle` radians about x (positive turns +y toward +z)."""
    y, z = vector
    return y * torch.cos(angle) - z * torch.sin(angle), y * torch.sin(angle) + z * torch.cos(angle)


def _leg_drop(knee: torch.Tensor, dorsiflexion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pelvis (y, z) offsets in metres that keep a flat foot planted: with the pelvis upright the
    thigh turns forward by the hip flexion ``knee - dorsiflexion`` and the shank back by the
    dorsiflexion (degrees), so the ankle is at ``R(-hip) thigh + R(dorsiflexion) shank``."""
    hip, shank = torch.deg2rad(knee - dorsiflexion), torch.deg2rad(dorsiflexion)
    thigh_y, thigh_z = _rotate_yz(THIGH_YZ, -hip)
    shank_y, shank_z = _rotate_yz(SHANK_YZ, shank)
    rest_y, rest_z = THIGH_YZ[0] + SHANK_YZ[0], THIGH_YZ[1] + SHANK_YZ[1]
    return rest_y - thigh_y - shank_y, rest_z - thigh_z - shank_z


def _timeline(style: _Style, duration: float, phases: Sequence[float], fixed: Sequence[bool] = ()) -> list[float]:
    """Key times (s) of consecutive phases of at least `phases` seconds, slowed by a random tempo
    (up to 1.4) where the clip allows, after a random lead-in; `fixed` phases keep their length."""
    fixed = list(fixed) + [False] * (len(phases) - len(fixed))
    rigid = sum(p for p, f in zip(phases, fixed) if f)
    tempo = min(style.uniform("tempo", 1.0, 1.4), (duration - rigid) / (sum(phases) - rigid))
    lengths = [p if f else p * tempo for p, f in zip(phases, fixed)]
    times = [style.uniform("lead_in", 0.0, 1.0) * (duration - sum(lengths))]
    for length in lengths:
        times.append(times[-1] + length)
    return times


# --- writing a pose -----------------------------------------------------------------------------


def _standing(num_frames: int) -> torch.Tensor:
    """(T, 24, 3) Euler angles in degrees of the relaxed standing pose of `JOINT_LIMITS`."""
    relaxed = torch.tensor([JOINT_LIMITS[name].relaxed for name in SMPL_24.joint_names], dtype=torch.float64)
    return relaxed.expand(num_frames, -1, -1).clone()


def _set(euler: torch.Tensor, side: str, angle: str, degrees: torch.Tensor | float) -> None:
    """Write an anatomical angle (`_ANATOMY`) of one side's joint into (T, 24, 3) Euler degrees."""
    joint, axis, sign = _ANATOMY[angle]
    mirror = -1 if side == "right" and axis > 0 else 1
    euler[:, SMPL_24.index(f"{side}_{joint}"), axis] = sign * mirror * degrees


def _trunk(euler: torch.Tensor, flexion: torch.Tensor | float = 0.0, turn_left: torch.Tensor | float = 0.0) -> None:
    """Bend the trunk forward and turn it left (degrees), shared equally by the three spine joints."""
    for joint in _SPINE:
        euler[:, SMPL_24.index(joint), 0] = flexion / 3
        euler[:, SMPL_24.index(joint), 1] = turn_left / 3


def _plant_legs(euler: torch.Tensor, knee: torch.Tensor, dorsiflexion: torch.Tensor, sides=SIDES) -> torch.Tensor:
    """Pose legs in the sagittal plane over planted flat feet; returns the pelvis offset (T, 3)
    that keeps the feet still."""
    for side in sides:
        _set(euler, side, "knee_flexion", knee)
        _set(euler, side, "ankle_dorsiflexion", dorsiflexion)
        _set(euler, side, "hip_flexion", knee - dorsiflexion)
        _set(euler, side, "hip_abduction", 0.0)
        _set(euler, side, "hip_external_rotation", 0.0)
    y, z = _leg_drop(knee, dorsiflexion)
    return torch.stack([torch.zeros_like(y), y, z], -1)


# --- actions ------------------------------------------------------------------------------------


def _gait(euler: torch.Tensor, phase: torch.Tensor, style: _Style, running: bool, stride: float,
          envelope: torch.Tensor | float = 1.0) -> None:
    """Legs, arms and trunk of a walking or running cycle; ``phase`` (T,) radians is 0 at the left
    heel strike. The hips swing ±A about a forward-tilted mean, with ``2 LEG sin A`` = the ground
    covered while a foot is down (half the stride walking, a third running); `envelope` scales
    every oscillation (0 stands still)."""
    duty = 0.35 if running else 0.5
    swing = math.degrees(math.asin(min(duty * stride / (2 * LEG), 0.5)))
    asymmetry = style.uniform("asymmetry", 0.0, 0.1)
    arm_swing = style.uniform("arm_swing", 20.0, 40.0) if running else style.uniform("arm_swing", 8.0, 25.0)
    knee_swing = style.uniform("knee_swing", 70.0, 95.0) if running else style.uniform("knee_swing", 50.0, 65.0)
    elbow = style.uniform("elbow", 70.0, 95.0) if running else style.uniform("elbow", 10.0, 25.0)
    lean = style.uniform("lean", 5.0, 12.0) if running else style.uniform("lean", 0.0, 5.0)
    for side, offset, scale in (("left", 0.0, 1 + asymmetry), ("right", math.pi, 1 - asymmetry)):
        leg = phase + offset
        knee = 4 + envelope * (
            (25 if running else 12) * _bump(leg, 0.15, 2.0) + knee_swing * _bump(leg, 0.68, 1.0 if running else 1.5)
        )
        _set(euler, side, "hip_flexion", 4 + envelope * (2 * running + scale * swing * torch.cos(leg)))
        _set(euler, side, "knee_flexion", knee)
        _set(euler, side, "ankle_dorsiflexion", envelope * (6 * _bump(leg, 0.4, 3.0) - 18 * _bump(leg, 0.6, 3.0)))
        # each arm swings with the opposite leg, flexing its elbow as it comes forward
        _set(euler, side, "shoulder_forward", -envelope * scale * arm_swing * torch.cos(leg))
        _set(euler, side, "elbow_flexion", elbow + envelope * 8 * (1 - torch.cos(leg)))
    pelvis_turn = envelope * (4 if running else 6) * torch.cos(phase)
    euler[:, 0, 1] -= pelvis_turn
    _trunk(euler, flexion=lean * envelope, turn_left=pelvis_turn)  # shoulders stay square


def _locomotion(t: torch.Tensor, style: _Style, running: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Walking or running forward (+z) at `speed`; stride frequency grows with speed, much more
    for walking than running (running lengthens its stride instead)."""
    speed = style.uniform("speed", 2.2, 4.0) if running else style.uniform("speed", 0.9, 1.7)
    frequency = 1.3 + 0.05 * speed if running else 0.55 + 0.3 * speed  # strides per second
    phase = 2 * math.pi * frequency * t + style.uniform("phase", 0.0, 2 * math.pi)
    euler = _standing(len(t))
    _gait(euler, phase, style, running, speed / frequency)
    if running:  # lowest at mid-stance, highest in flight
        bob = style.uniform("bob", 0.03, 0.06) * -torch.cos(2 * phase - 2 * math.pi * 0.35)
    else:  # an inverted pendulum: lowest in double support, when both legs are furthest apart
        hip = math.asin(min(0.5 * speed / frequency / (2 * LEG), 0.5))
        bob = -0.5 * LEG * (1 - math.cos(hip)) * (1 + torch.cos(2 * phase))
    sway = style.uniform("sway", 0.005, 0.015 if running else 0.03) * torch.sin(phase)
    return euler, torch.stack([sway, bob, speed * t], -1)


def _walk(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    return _locomotion(t, style, running=False)


def _run(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    return _locomotion(t, style, running=True)


def _jump(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Countermovement jump: crouch, push off, fly, land, recover.

    On the ground the pelvis follows the legs over planted feet (`_leg_drop`), the heels lifting
    as the ankles plantarflex; in the air it flies a ballistic arc, height ``v s - g s^2 / 2``.
    A simplification: the eased knees reach full extension at rest, so the root's vertical speed
    steps from 0 to ``v`` at take-off (and back at touchdown) while positions and joint angles
    stay smooth; matching it would need the ~1000°/s knee and ankle speeds of a real take-off.
    """
    crouch, landing = style.uniform("crouch_knee", 70.0, 100.0), style.uniform("landing_knee", 40.0, 65.0)
    v_up = math.sqrt(2 * GRAVITY * style.uniform("flight_rise", 0.1, 0.3))
    flight = 2 * v_up / GRAVITY
    start, crouched, takeoff, touchdown, absorbed, end = _timeline(
        style, t[-1].item(), [0.45, 0.35, flight, 0.3, 0.5], fixed=[False, False, True]
    )
    keys = [start, crouched, takeoff, takeoff + flight / 2, touchdown, absorbed, end]
    euler = _standing(len(t))
    knee = _keyframes(t, keys, [5, crouch, 5, 30, 5, landing, 5])
    dorsiflexion = _keyframes(t, keys, [2, 0.25 * crouch, -30, -15, -30, 0.25 * landing, 2])
    # Split the ankle angle into the shank's forward lean over a flat foot (a smooth max(., 0))
    # and the plantarflexion about the balls of the feet that lifts the heels and the pelvis.
    lean = (dorsiflexion + torch.sqrt(dorsiflexion**2 + 16.0)) / 2
    grounded = _plant_legs(euler, knee, lean)
    _set(euler, "left", "ankle_dorsiflexion", dorsiflexion)
    _set(euler, "right", "ankle_dorsiflexion", dorsiflexion)
    grounded[:, 1] += _TOE_LEVER * torch.sin(torch.deg2rad(lean - dorsiflexion))
    in_flight = (t > takeoff) & (t < touchdown)
    tuck = _keyframes(t, keys[2:5], [5, 30, 5])  # hips and knees draw up in the air
    for side in SIDES:
        _set(euler, side, "hip_flexion", torch.where(in_flight, tuck, knee - lean))
        # arms swing back in the crouch and forward through the take-off
        _set(euler, side, "shoulder_forward", _keyframes(t, keys, [5, -30, 60, 50, 30, 20, 5]))
        _set(euler, side, "elbow_flexion", _keyframes(t, keys, [20, 15, 30, 40, 30, 25, 20]))
    _trunk(euler, flexion=_keyframes(t, keys, [0, 35, 0, 10, 10, 25, 0]))
    launch = grounded[(t <= takeoff).nonzero().max()]  # the pelvis at take-off, (3,)
    style.values["height"] = launch[1].item() + v_up**2 / (2 * GRAVITY)  # apex above standing
    v_forward = style.uniform("forward", 0.0, 0.5) / flight  # metres flown forward / flight time
    in_air = (t - takeoff).clamp(0, flight)[:, None]
    airborne = launch + in_air * torch.tensor([0.0, v_up, v_forward], dtype=t.dtype)
    airborne[:, 1] -= GRAVITY / 2 * in_air[:, 0] ** 2
    flown = torch.tensor([0.0, 0.0, v_forward * flight], dtype=t.dtype)
    transl = torch.where((t < touchdown)[:, None], airborne, grounded + flown)
    return euler, torch.where((t <= takeoff)[:, None], grounded, transl)


def _squat(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """One to three squats over planted feet, arms raised forward for balance, trunk leaning."""
    rep = [0.9, 0.2, 0.9, 0.3]  # down, hold, up, pause (s)
    fits = max(1, min(3, int(t[-1].item() // sum(rep))))
    reps = int(style.choice("repetitions", [str(n) for n in range(1, fits + 1)]))
    depth = style.uniform("depth_knee", 80.0, 125.0)
    times = _timeline(style, t[-1].item(), rep * reps)
    down = _keyframes(t, times, [0.0, 1.0, 1.0, 0.0] * reps + [0.0])
    euler = _standing(len(t))
    knee = 5 + (depth - 5) * down
    pelvis = _plant_legs(euler, knee, 2 + 0.22 * (knee - 5))
    _trunk(euler, flexion=0.35 * depth * down)
    for side in SIDES:
        _set(euler, side, "shoulder_forward", 5 + style.uniform("arms_forward", 40.0, 80.0) * down)
        _set(euler, side, "shoulder_elevation", -62 + 40 * down)
    return euler, pelvis


def _sit_stand(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Sit down on a chair behind, rest, stand up; the trunk leans forward while the weight moves."""
    seat = style.uniform("seat_knee", 85.0, 100.0)
    start, seated, rested, end = _timeline(style, t[-1].item(), [1.2, 0.8, 1.2])
    sitting = _keyframes(t, [start, seated, rested, end], [0.0, 1.0, 1.0, 0.0])
    euler = _standing(len(t))
    knee = 5 + (seat - 5) * sitting
    pelvis = _plant_legs(euler, knee, 2 + 6 * sitting)
    transfer = torch.sin(math.pi * sitting)  # largest halfway down or up
    _trunk(euler, flexion=style.uniform("lean", 25.0, 45.0) * transfer)
    for side in SIDES:
        _set(euler, side, "shoulder_forward", 5 + 30 * transfer)
        _set(euler, side, "elbow_flexion", 20 + 30 * sitting)
    return euler, pelvis


def _wave(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise one arm out to the side, forearm up, and wave the forearm side to side."""
    side = style.choice("side", SIDES)
    duration = t[-1].item()
    raise_time = style.uniform("raise_time", 0.5, 0.8)
    start = style.uniform("lead_in", 0.0, 0.3)
    up = _keyframes(t, [start, start + raise_time, duration - raise_time, duration], [0.0, 1.0, 1.0, 0.0])
    frequency, amplitude = style.uniform("frequency", 1.2, 2.0), style.uniform("amplitude", 15.0, 25.0)
    euler = _standing(len(t))
    _set(euler, side, "shoulder_elevation", -62 + (62 + style.uniform("elevation", 0.0, 40.0)) * up)
    _set(euler, side, "shoulder_external_rotation", 80 * up)
    _set(euler, side, "elbow_flexion", 20 + 80 * up + amplitude * up * torch.sin(2 * math.pi * frequency * t))
    return euler, torch.zeros(len(t), 3, dtype=t.dtype)


def _reach(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Reach forward with one or both arms to a target above or below shoulder height, then back;
    the trunk bends toward a low target and turns toward a one-handed one."""
    sides = {"both": SIDES, "left": ("left",), "right": ("right",)}[style.choice("side", ("both", "left", "right"))]
    forward, elevation = style.uniform("forward", 40.0, 85.0), style.uniform("elevation", -40.0, 30.0)
    start, reached, held, end = _timeline(style, t[-1].item(), [0.7, 0.4, 0.7])
    out = _keyframes(t, [start, reached, held, end], [0.0, 1.0, 1.0, 0.0])
    euler = _standing(len(t))
    for side in sides:
        _set(euler, side, "shoulder_forward", -5 + (forward + 5) * out)
        _set(euler, side, "shoulder_elevation", -62 + (elevation + 62) * out)
        _set(euler, side, "elbow_flexion", 20 - 15 * out)
    turn = 0.0 if len(sides) == 2 else (-15.0 if sides[0] == "left" else 15.0)
    _trunk(euler, flexion=max(0.0, -elevation) * 0.6 * out, turn_left=turn * out)
    return euler, torch.zeros(len(t), 3, dtype=t.dtype)


def _kick(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Front kick: shift the weight, chamber the knee, snap the leg out, retract and put it down."""
    kicking = style.choice("side", SIDES)
    standing_side = "right" if kicking == "left" else "left"
    height = style.uniform("kick_hip", 55.0, 90.0)
    keys = _timeline(style, t[-1].item(), [0.4, 0.35, 0.3, 0.3, 0.45, 0.3])
    euler = _standing(len(t))
    _set(euler, kicking, "hip_flexion", _keyframes(t, keys, [3, 3, 70, height, 70, 3, 3]))
    _set(euler, kicking, "knee_flexion", _keyframes(t, keys, [5, 5, 100, 10, 90, 5, 5]))
    _set(euler, kicking, "ankle_dorsiflexion", _keyframes(t, keys, [2, 2, -20, -30, -20, 2, 2]))
    stance_knee = _keyframes(t, keys, [5, 15, 15, 15, 15, 15, 5])
    pelvis = _plant_legs(euler, stance_knee, 2 + 0.2 * (stance_knee - 5), sides=(standing_side,))
    _trunk(euler, flexion=_keyframes(t, keys, [0, 0, -5, -10, -5, 0, 0]))
    _set(euler, standing_side, "shoulder_forward", _keyframes(t, keys, [5, 5, 30, 40, 30, 5, 5]))
    shift = (1 if standing_side == "left" else -1) * style.uniform("weight_shift", 0.04, 0.08)
    pelvis[:, 0] = shift * _keyframes(t, keys, [0, 1, 1, 1, 1, 1, 0])
    return euler, pelvis


def _turn(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn on the spot by `turn_angle` degrees, stepping in place while the heading changes."""
    angle = style.sign("direction") * style.uniform("turn_angle", 60.0, 180.0)
    duration = t[-1].item()
    start = style.uniform("lead_in", 0.1, 0.25) * duration
    stop = duration - style.uniform("lead_out", 0.1, 0.25) * duration
    ramp = min(0.4, (stop - start) / 2)
    stepping = _keyframes(t, [start, start + ramp, stop - ramp, stop], [0.0, 1.0, 1.0, 0.0])
    euler = _standing(len(t))
    phase = 2 * math.pi * style.uniform("step_frequency", 0.9, 1.2) * (t - start)
    _gait(euler, phase, style, running=False, stride=style.uniform("stride", 0.2, 0.4), envelope=stepping)
    euler[:, 0, 1] += _keyframes(t, [start, stop], [0.0, angle])
    return euler, torch.zeros(len(t), 3, dtype=t.dtype)


def _idle(t: torch.Tensor, style: _Style) -> tuple[torch.Tensor, torch.Tensor]:
    """Standing: breathing, slow weight shifts from foot to foot, looking around."""
    euler = _standing(len(t))
    shift_frequency = style.uniform("shift_frequency", 0.1, 0.25)
    shift = torch.sin(2 * math.pi * shift_frequency * t + style.uniform("shift_phase", 0.0, 2 * math.pi))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        _set(euler, side, "hip_abduction", 2 - 3 * sign * shift)
    breath = torch.sin(2 * math.pi * style.uniform("breathing", 0.2, 0.35) * t)
    _trunk(euler, flexion=1.5 * breath)
    look = style.uniform("look", 10.0, 30.0) * torch.sin(2 * math.pi * style.uniform("look_frequency", 0.1, 0.3) * t)
    for joint in ("neck", "head"):
        euler[:, SMPL_24.index(joint), 1] = look / 2
    return euler, torch.stack([0.03 * shift, torch.zeros_like(shift), torch.zeros_like(shift)], -1)


# name -> (function, default duration range in s, shortest duration the action fits in)
_Action = Callable[[torch.Tensor, _Style], tuple[torch.Tensor, torch.Tensor]]
_ACTIONS: dict[str, tuple[_Action, tuple[float, float], float]] = {
    "walk": (_walk, (3.0, 6.0), 1.0),
    "run": (_run, (2.0, 5.0), 1.0),
    "jump": (_jump, (2.4, 3.5), 2.4),
    "squat": (_squat, (3.0, 8.0), 2.4),
    "wave": (_wave, (2.0, 4.0), 2.0),
    "reach": (_reach, (2.0, 4.0), 1.9),
    "kick": (_kick, (2.2, 3.5), 2.2),
    "turn": (_turn, (2.0, 4.0), 1.5),
    "sit_stand": (_sit_stand, (3.5, 7.0), 3.3),
    "idle": (_idle, (2.0, 6.0), 0.5),
}
ACTIONS: tuple[str, ...] = tuple(_ACTIONS)
SPEED_RANGES: dict[str, tuple[float, float]] = {"walk": (0.3, 2.5), "run": (1.5, 6.0)}  # m/s accepted
MAX_DURATION = 120.0  # seconds


def generate_motion(
    action: str,
    *,
    duration: float | None = None,
    speed: float | None = None,
    generator: torch.Generator | None = None,
    fps: int = 50,
) -> Motion:
    """One clip of `action` (one of `ACTIONS`), (T, 24, 3) poses and (T, 3) translation, T = round(duration * fps).

    `duration` (s) and, for walk and run, `speed` (m/s, along the facing direction) are drawn from
    the action's usual range when None, as are the style and a facing direction (yaw uniform in
    [-180°, 180°)). Joint angles stay inside `hmrlab.data.poses.JOINT_LIMITS`. The same seeded
    `generator` gives the same clip.
    """
    if action not in _ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    function, durations, shortest = _ACTIONS[action]
    if speed is not None and action not in SPEED_RANGES:
        raise ValueError(f"speed applies to {' and '.join(SPEED_RANGES)} only; pass speed=None for {action!r}")
    if speed is not None and not SPEED_RANGES[action][0] <= speed <= SPEED_RANGES[action][1]:
        raise ValueError(f"speed for {action!r} must be within {list(SPEED_RANGES[action])} m/s; got {speed}")
    if not isinstance(fps, int) or fps < 10:
        raise ValueError(f"fps must be an int >= 10; got {fps!r}")
    style = _Style(generator, {} if speed is None else {"speed": float(speed)})
    duration = style.uniform("duration", *durations) if duration is None else float(duration)
    if not shortest <= duration <= MAX_DURATION:
        raise ValueError(f"duration for {action!r} must be within [{shortest}, {MAX_DURATION}] seconds; got {duration}")
    style.values["duration"] = duration
    t = torch.arange(round(duration * fps), dtype=torch.float64) / fps
    euler, transl = function(t, style)
    facing = style.uniform("facing", -180.0, 180.0)
    euler[:, 0, 1] += facing
    yaw = math.radians(facing)
    cos, sin = math.cos(yaw), math.sin(yaw)
    # rotate the local (x, z) ground-plane offsets by the yaw about y
    x, y, z = transl.unbind(-1)
    transl = torch.stack([cos * x + sin * z, y, -sin * x + cos * z], -1)
    poses = euler_to_axis_angle(torch.deg2rad(euler)).float()
    return Motion(action, poses, transl.float(), fps, style.values)


def random_motion(generator: torch.Generator | None = None, **kwargs) -> Motion:
    """A clip of an action drawn uniformly from `ACTIONS`; `kwargs` go to `generate_motion`."""
    action = ACTIONS[int(torch.randint(len(ACTIONS), (), generator=generator))]
    return generate_motion(action, generator=generator, **kwargs)


__all__ = ["ACTIONS", "GRAVITY", "LEG", "MAX_DURATION", "Motion", "SHANK_YZ", "SPEED_RANGES",
           "THIGH_YZ", "generate_motion", "random_motion"]

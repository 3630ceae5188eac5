"""Analytical IK (hmrlab.nn.ik) against iterative fitting, on the free SMPL model's skeleton, CPU.

    python benchmarks/bench_ik.py [--batch 1024] [--max-steps 2000] [--lr 0.05]    # from the repository root

Both recover poses of `batch` plausible bodies from their FK joints. IK is given the true twists
(as a network would predict them). The iterative baseline runs Adam on axis-angle rotations (from
the rest pose) through FK on the mean squared joint error until the mean per-joint error reaches
max(IK's error, 1e-5 m) or `max-steps`. Prints time, joint error (m) and the speed ratio; float32.
``rows`` gives IK's time and error against Adam's to ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from timing import Row, median_seconds, time_row

from hmrlab import body
from hmrlab.data.poses import sample_poses
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.nn import ik


@dataclass
class Comparison:
    ik_seconds: float
    ik_error: float  # mean per-joint error, metres
    fit_seconds: float
    fit_error: float
    steps: int
    tolerance: float


def mean_joint_error(joints: torch.Tensor, target: torch.Tensor) -> float:
    return float((joints - target).norm(dim=-1).mean())


def fit_by_adam(joints, rest, max_steps: int, lr: float, tolerance: float) -> tuple[torch.Tensor, int]:
    """Axis-angle pose (B, 24, 3) fitted to `joints` by Adam through FK; also the steps taken."""
    pose = torch.zeros(joints.shape[0], 24, 3, dtype=joints.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([pose], lr=lr)
    for step in range(1, max_steps + 1):
        optimizer.zero_grad()
        posed = ik.forward_kinematics(axis_angle_to_matrix(pose), rest, body.SMPL_PARENTS)
        ((posed - joints) ** 2).sum(-1).mean().backward()
        optimizer.step()
        if mean_joint_error(posed.detach(), joints) < tolerance:
            break
    return pose.detach(), step


def compare(batch: int, max_steps: int, lr: float) -> Comparison:
    arrays = body.body_model_arrays("smpl")
    rest = torch.as_tensor(arrays["J_regressor"] @ arrays["v_template"], dtype=torch.float32)[None]
    rotmats = axis_angle_to_matrix(sample_poses(batch, torch.Generator().manual_seed(0), random_yaw=True))
    joints = ik.forward_kinematics(rotmats, rest, body.SMPL_PARENTS)
    twist = ik.twist_angles(rotmats, rest, body.SMPL_PARENTS)
    with torch.no_grad():
        ik_time = median_seconds(lambda: ik.inverse_kinematics(joints, rest, body.SMPL_PARENTS, twist), 3)
        recovered, _ = ik.inverse_kinematics(joints, rest, body.SMPL_PARENTS, twist)
        ik_error = mean_joint_error(ik.forward_kinematics(recovered, rest, body.SMPL_PARENTS), joints)
    tolerance = max(ik_error, 1e-5)
    started = time.perf_counter()  # one fit: it is the slow side, and it stops at the tolerance
    pose, steps = fit_by_adam(joints, rest, max_steps, lr, tolerance)
    fit_time = time.perf_counter() - started
    with torch.no_grad():
        fit_error = mean_joint_error(ik.forward_kinematics(axis_angle_to_matrix(pose), rest, body.SMPL_PARENTS), joints)
    return Comparison(ik_time, ik_error, fit_time, fit_error, steps, tolerance)


def rows(quick: bool) -> list[Row]:
    batch, max_steps = (64, 100) if quick else (1024, 2000)
    result = compare(batch, max_steps, 0.05)
    adam = f"Adam through FK ({result.steps} steps)"
    return [
        time_row(f"pose from joints, batch {batch}", result.ik_seconds, adam, result.fit_seconds),
        Row(f"mean joint error, batch {batch}", result.ik_error, adam, result.fit_error, "m"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()
    print(f"batch {args.batch}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    result = compare(args.batch, args.max_steps, args.lr)
    print(f"analytical IK      {1000 * result.ik_seconds:9.1f} ms  mean joint error {result.ik_error:.2e} m")
    stopped = "reached" if result.fit_error < result.tolerance else "step cap, not reached"
    print(f"Adam through FK    {1000 * result.fit_seconds:9.1f} ms  mean joint error {result.fit_error:.2e} m "
          f"after {result.steps} steps (target {result.tolerance:.0e} m: {stopped})")
    print(f"speed ratio (Adam / IK): {result.fit_seconds / result.ik_seconds:.0f}x")


if __name__ == "__main__":
    main()

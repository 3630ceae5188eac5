"""Analytical IK (hmrlab.nn.ik) against iterative fitting, on the free SMPL model's skeleton, CPU.

    python benchmarks/bench_ik.py [--batch 1024] [--max-steps 2000] [--lr 0.05]

Both recover poses of `batch` plausible bodies from their FK joints. IK is given the true twists
(as a network would predict them). The iterative baseline runs Adam on axis-angle rotations (from
the rest pose) through FK on the mean squared joint error until the mean per-joint error reaches
max(IK's error, 1e-5 m) or `max-steps`. Prints time, joint error (m) and the speed ratio; float32.
"""

from __future__ import annotations

import argparse
import time

import torch

from hmrlab import body
from hmrlab.data.poses import sample_poses
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.nn import ik


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()
    arrays = body.body_model_arrays("smpl")
    rest = torch.as_tensor(arrays["J_regressor"] @ arrays["v_template"], dtype=torch.float32)[None]
    rotmats = axis_angle_to_matrix(sample_poses(args.batch, torch.Generator().manual_seed(0), random_yaw=True))
    joints = ik.forward_kinematics(rotmats, rest, body.SMPL_PARENTS)
    twist = ik.twist_angles(rotmats, rest, body.SMPL_PARENTS)
    print(f"batch {args.batch}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")

    with torch.no_grad():
        ik.inverse_kinematics(joints, rest, body.SMPL_PARENTS, twist)  # warm-up
        started = time.perf_counter()
        recovered, _ = ik.inverse_kinematics(joints, rest, body.SMPL_PARENTS, twist)
        ik_time = time.perf_counter() - started
        ik_error = mean_joint_error(ik.forward_kinematics(recovered, rest, body.SMPL_PARENTS), joints)
    print(f"analytical IK      {1000 * ik_time:9.1f} ms  mean joint error {ik_error:.2e} m")

    tolerance = max(ik_error, 1e-5)
    started = time.perf_counter()
    pose, steps = fit_by_adam(joints, rest, args.max_steps, args.lr, tolerance)
    fit_time = time.perf_counter() - started
    with torch.no_grad():
        fit_error = mean_joint_error(ik.forward_kinematics(axis_angle_to_matrix(pose), rest, body.SMPL_PARENTS), joints)
    stopped = "reached" if fit_error < tolerance else "step cap, not reached"
    print(f"Adam through FK    {1000 * fit_time:9.1f} ms  mean joint error {fit_error:.2e} m "
          f"after {steps} steps (target {tolerance:.0e} m: {stopped})")
    print(f"speed ratio (Adam / IK): {fit_time / ik_time:.0f}x")


if __name__ == "__main__":
    main()

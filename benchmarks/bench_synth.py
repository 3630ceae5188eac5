"""Throughput of SynthHuman's lifting data on CPU: motion generation, forward kinematics of the free
body model with Human3.6M joint regression, and projection into four cameras (no rendering).

    python benchmarks/bench_synth.py [--motions 10] [--threads 2]    # from the repository root

Prints poses per second (one pose = one body in one frame, projected into all four cameras) for
each stage and end to end; float32 body model, no grad. ``rows`` gives each stage's time per pose
against the whole pipeline's (its share of the time) to ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import Row

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data.cameras import h36m_like_cameras
from hmrlab.data.motions import ACTIONS, generate_motion
from hmrlab.data.synth import capture_frames, pose_motion


def stage_seconds(motions: int) -> tuple[dict[str, float], int]:
    """Seconds spent in each stage over `motions` 4-second clips, and the poses they made."""
    arrays = body_model_arrays("smpl")
    model = BodyModel(arrays)
    regressor = torch.as_tensor(arrays["J_regressor_h36m"], dtype=torch.float32)
    cameras = h36m_like_cameras(4, generator=np.random.default_rng(0))
    generator = torch.Generator().manual_seed(0)
    betas = torch.zeros(10)
    seconds = {"motion": 0.0, "fk": 0.0, "projection": 0.0}
    frames = 0
    # Stages interleave within each clip, so each is timed once per clip and summed.
    with torch.no_grad():
        for k in range(motions):
            started = time.perf_counter()
            motion = generate_motion(ACTIONS[k % len(ACTIONS)], generator=generator, duration=4.0)
            seconds["motion"] += time.perf_counter() - started
            started = time.perf_counter()
            joints, _ = pose_motion(model, regressor, betas, motion, capture_frames(motion, None))
            seconds["fk"] += time.perf_counter() - started
            started = time.perf_counter()
            for camera in cameras:
                camera.project(joints.numpy().astype(np.float64))
            seconds["projection"] += time.perf_counter() - started
            frames += motion.num_frames
    return seconds, frames


def rows(quick: bool) -> list[Row]:
    seconds, frames = stage_seconds(2 if quick else 10)
    total = 1e6 * sum(seconds.values()) / frames
    return [Row(f"SynthHuman lifting data, {stage} stage ({frames} poses)", 1e6 * spent / frames,
                "end to end (all stages)", total, "us/pose", threads=torch.get_num_threads())
            for stage, spent in seconds.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--motions", type=int, default=10, help="clips, cycling through the actions")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds, frames = stage_seconds(args.motions)
    for stage, spent in seconds.items():
        print(f"{stage:>10}: {frames / spent:10.0f} poses/s")
    print(f"{'total':>10}: {frames / sum(seconds.values()):10.0f} poses/s ({frames} poses, {args.threads} threads)")


if __name__ == "__main__":
    main()

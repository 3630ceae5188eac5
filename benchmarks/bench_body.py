"""Forward speed of the free body model at batch 64 on CPU: smplx against hmrlab.body.lbs.

    python benchmarks/bench_body.py [--batch 64] [--repeats 10]    # from the repository root

Prints the median and minimum time per batch and bodies per second for each; float32, no grad.
``rows`` gives hmrlab's time against smplx's to ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from timing import Row, run_seconds, time_row

from hmrlab import body
from hmrlab.body.lbs import BodyModel

SMPLX, OURS = "smplx.SMPL", "hmrlab.body.BodyModel"


def measure(batch: int, repeats: int) -> tuple[dict[str, list[float]], int]:
    """Seconds of each of `repeats` forward passes of smplx's and hmrlab's SMPL; the vertex count."""
    generator = torch.Generator().manual_seed(0)
    betas = torch.randn(batch, 10, generator=generator)
    body_pose = 0.3 * torch.randn(batch, 69, generator=generator)
    global_orient = 0.3 * torch.randn(batch, 3, generator=generator)
    smpl = body.load_body_model("smpl", batch_size=batch)
    ours = BodyModel(body.body_model_arrays("smpl"))
    with torch.no_grad():
        candidates = {
            SMPLX: lambda: smpl(betas=betas, body_pose=body_pose, global_orient=global_orient),
            OURS: lambda: ours(betas=betas, body_pose=body_pose.reshape(batch, 23, 3), global_orient=global_orient),
        }
        return {name: run_seconds(call, repeats) for name, call in candidates.items()}, ours.v_template.shape[0]


def rows(quick: bool) -> list[Row]:
    batch = 8 if quick else 64
    times, _ = measure(batch, 3 if quick else 10)
    return [time_row(f"SMPL forward, batch {batch}, no grad", statistics.median(times[OURS]),
                     SMPLX, statistics.median(times[SMPLX]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    times, vertices = measure(args.batch, args.repeats)
    print(f"free SMPL-format model, {vertices} vertices, batch {args.batch}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:24s} median {1000 * median:7.1f} ms  min {1000 * min(seconds):7.1f} ms  "
              f"{args.batch / median:8.0f} bodies/s")


if __name__ == "__main__":
    main()

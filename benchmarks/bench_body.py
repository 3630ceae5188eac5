"""Forward speed of the free body model at batch 64 on CPU: smplx against hmrlab.body.lbs.

    python benchmarks/bench_body.py [--batch 64] [--repeats 10]

Prints the median and minimum time per batch and bodies per second for each; float32, no grad.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hmrlab import body
from hmrlab.body.lbs import BodyModel


def time_call(call, repeats: int) -> list[float]:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    betas = torch.randn(args.batch, 10, generator=generator)
    body_pose = 0.3 * torch.randn(args.batch, 69, generator=generator)
    global_orient = 0.3 * torch.randn(args.batch, 3, generator=generator)
    smpl = body.load_body_model("smpl", batch_size=args.batch)
    ours = BodyModel(body.body_model_arrays("smpl"))
    with torch.no_grad():
        candidates = {
            "smplx.SMPL": lambda: smpl(betas=betas, body_pose=body_pose, global_orient=global_orient),
            "hmrlab.body.BodyModel": lambda: ours(betas=betas, body_pose=body_pose.reshape(args.batch, 23, 3),
                                                   global_orient=global_orient),
        }
        print(f"free SMPL-format model, {ours.v_template.shape[0]} vertices, batch {args.batch}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}")
        for name, call in candidates.items():
            times = time_call(call, args.repeats)
            median = statistics.median(times)
            print(f"{name:24s} median {1000 * median:7.1f} ms  min {1000 * min(times):7.1f} ms  "
                  f"{args.batch / median:8.0f} bodies/s")


if __name__ == "__main__":
    main()

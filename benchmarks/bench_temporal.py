"""Cost of MixSTE, STE+TPCA and RTPCA (a script, not a test).

Run ``python benchmarks/bench_temporal.py``. It prints, for the reference setting (width 512,
depth 8, 8 heads, 243 frames) and the CPU settings (81 and 27 frames) of the notebook, the parameters
and MACs per clip (`hmrlab.complexity.measure`, models built on the ``meta`` device so nothing is
computed), then the median wall time of one training step (forward, MixSTE's loss, backward, AdamW)
of the notebook's CPU-size models (width 32, depth 2, 4 heads, 27 frames, batch 32) on one CPU thread.
"""

from __future__ import annotations

import statistics
import time

import torch

from hmrlab.complexity import format_count, measure
from hmrlab.models.mixste import MixSTE, lifting_loss
from hmrlab.models.rtpca import RTPCA

VARIANTS = {
    "MixSTE": (MixSTE, {}),
    "STE+TPCA": (RTPCA, {"xlr": False}),
    "RTPCA": (RTPCA, {}),
}
REPEATS = 5


def complexity_table() -> None:
    print(f"{'setting':<28}{'model':<10}{'params':>12}{'MACs/clip':>12}")
    for label, size in (("dim 512, depth 8, T 243", dict(frames=243)),
                        ("dim 512, depth 8, T 81", dict(frames=81)),
                        ("dim 512, depth 8, T 27", dict(frames=27))):
        for name, (cls, extra) in VARIANTS.items():
            with torch.device("meta"):
                cost = measure(cls(**size, **extra), torch.zeros(1, size["frames"], 17, 2))
            print(f"{label:<28}{name:<10}{format_count(cost.params):>12}{format_count(cost.macs):>12}")


def step_seconds(model: torch.nn.Module, batch: int, frames: int) -> float:
    """Median time of one optimizer step on random data, after one warm-up step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, frames, 17, 2), torch.randn(batch, frames, 17, 3)
    times = []
    for _ in range(REPEATS + 1):
        start = time.perf_counter()
        loss = lifting_loss(model(x), y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    torch.set_num_threads(1)
    complexity_table()
    print(f"\ntraining step, width 32, depth 2, 4 heads, T 27, batch 32, {torch.get_num_threads()} thread, "
          f"median of {REPEATS}")
    for name, (cls, extra) in VARIANTS.items():
        torch.manual_seed(0)
        model = cls(dim=32, depth=2, heads=4, frames=27, **extra)
        print(f"{name:<10}{1000 * step_seconds(model, 32, 27):8.0f} ms")


if __name__ == "__main__":
    main()

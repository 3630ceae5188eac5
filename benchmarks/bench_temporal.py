"""Cost of MixSTE, STE+TPCA and RTPCA (a script, not a test).

Run ``python benchmarks/bench_temporal.py`` from the repository root. It prints, for the reference
setting (width 512, depth 8, 8 heads, 243 frames) and the CPU settings (81 and 27 frames) of the
notebook, the parameters and MACs per clip (`hmrlab.complexity.measure`, models built on the ``meta``
device so nothing is computed), then the median wall time of one training step (forward, MixSTE's
loss, backward, AdamW) of the notebook's CPU-size models (width 32, depth 2, 4 heads, 27 frames,
batch 32) on one CPU thread. ``rows`` gives STE+TPCA's and RTPCA's figures against MixSTE's to
``python -m benchmarks``.
"""

from __future__ import annotations

import torch
from timing import Row, median_seconds, time_row

from hmrlab.complexity import Complexity, format_count, measure
from hmrlab.models.mixste import MixSTE, lifting_loss
from hmrlab.models.rtpca import RTPCA

VARIANTS = {
    "MixSTE": (MixSTE, {}),
    "STE+TPCA": (RTPCA, {"xlr": False}),
    "RTPCA": (RTPCA, {}),
}
REPEATS = 5


def clip_cost(name: str, frames: int) -> Complexity:
    """Parameters and MACs per clip of a variant at width 512, depth 8, built on the meta device."""
    cls, extra = VARIANTS[name]
    with torch.device("meta"):
        return measure(cls(frames=frames, **extra), torch.zeros(1, frames, 17, 2))


def complexity_table() -> None:
    print(f"{'setting':<28}{'model':<10}{'params':>12}{'MACs/clip':>12}")
    for frames in (243, 81, 27):
        for name in VARIANTS:
            cost = clip_cost(name, frames)
            print(f"{f'dim 512, depth 8, T {frames}':<28}{name:<10}{format_count(cost.params):>12}"
                  f"{format_count(cost.macs):>12}")


def step_seconds(name: str, batch: int, frames: int = 27, repeats: int = REPEATS) -> float:
    """Median time of one optimizer step of a CPU-size variant on random data, after one warm-up step."""
    cls, extra = VARIANTS[name]
    torch.manual_seed(0)
    model = cls(dim=32, depth=2, heads=4, frames=frames, **extra)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, frames, 17, 2), torch.randn(batch, frames, 17, 3)

    def one_step() -> None:
        loss = lifting_loss(model(x), y)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return median_seconds(one_step, repeats)


def rows(quick: bool) -> list[Row]:
    frames, batch, repeats = (27, 4, 2) if quick else (243, 32, REPEATS)
    reference = clip_cost("MixSTE", frames)
    reference_step = step_seconds("MixSTE", batch, repeats=repeats)
    table = []
    for name in ("STE+TPCA", "RTPCA"):
        cost = clip_cost(name, frames)
        table += [
            Row(f"{name} params, dim 512, depth 8, T {frames}", cost.params, "MixSTE", reference.params, "count"),
            Row(f"{name} MACs/clip, dim 512, depth 8, T {frames}", cost.macs, "MixSTE", reference.macs, "count"),
            time_row(f"{name} training step, dim 32, depth 2, T 27, batch {batch}",
                     step_seconds(name, batch, repeats=repeats), "MixSTE", reference_step),
        ]
    return table


def main() -> None:
    torch.set_num_threads(1)
    complexity_table()
    print(f"\ntraining step, width 32, depth 2, 4 heads, T 27, batch 32, {torch.get_num_threads()} thread, "
          f"median of {REPEATS}")
    for name in VARIANTS:
        print(f"{name:<10}{1000 * step_seconds(name, 32):8.0f} ms")


if __name__ == "__main__":
    main()

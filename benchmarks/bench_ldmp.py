"""Time LDMP's parallel branches against the sequential ones (a script, not a test).

Run ``python benchmarks/bench_ldmp.py [--repeats N] [--threads 1 2]`` from the repository root: for
LDMP at PMCE's sizes (17 joints, the free body model's 431 coarse vertices, 64 channels, 3 layers, a
2048-wide context), pooled (C/4, N/4) and standard attention, batch sizes 1 and 8, it prints the
median wall time of a forward pass without gradients and of a forward + backward pass, sequential
and parallel (a second thread on the CPU; a second CUDA stream on a GPU, when there is one), and the
paper's ratio ``sequential / parallel`` (> 1: parallel is faster; the paper reports 1.14x).
Sequential and parallel runs alternate, so that a change in the machine's load hits both; the ratio
is the median of the per-pair ratios. Figures depend on the machine and its load: print ``uptime``
with them. ``rows`` gives the CPU figures to ``python -m benchmarks`` on the runner's thread count,
as ``parallel / sequential`` (the paper's 1.14x is 0.88 there).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from timing import Row, paired_seconds, time_row

from hmrlab import body
from hmrlab.models.lifd_hmr import LDMP, nearest_joint

ATTENTION = {"C/4, N/4": 4, "standard": 1}


def vertex_joint() -> torch.Tensor:
    arrays = body.body_model_arrays("smpl")
    template = torch.tensor(arrays["v_template"])
    coarse = torch.tensor(arrays["downsample"]) @ template
    return nearest_joint(coarse, torch.tensor(arrays["J_regressor_h36m"]) @ template)


def step(model: LDMP, joints: torch.Tensor, context: torch.Tensor, parallel: bool, backward: bool) -> None:
    if backward:
        joints_out, vertices = model(joints, context, parallel=parallel)
        (joints_out.square().sum() + vertices.square().sum()).backward()
    else:
        with torch.no_grad():
            model(joints, context, parallel=parallel)


def measure(index: torch.Tensor, device: str, attention: str, batch: int, backward: bool, repeats: int,
            sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Alternating sequential and parallel wall times of one LDMP pass (`paired_seconds`)."""
    torch.manual_seed(0)
    ratio = ATTENTION[attention]
    model = LDMP(index, channel_ratio=ratio, token_ratio=ratio).to(device)
    joints = torch.randn(batch, 17, 3, device=device)
    context = torch.randn(batch, 2048, device=device)
    return paired_seconds(
        {mode: (lambda p=(mode == "parallel"): step(model, joints, context, p, backward))
         for mode in ("sequential", "parallel")},
        repeats, sync,
    )


def rows(quick: bool) -> list[Row]:
    index = vertex_joint()
    table = []
    for attention in ("C/4, N/4",) if quick else tuple(ATTENTION):
        for batch in (1,) if quick else (1, 8):
            for backward in (False,) if quick else (False, True):
                times = measure(index, "cpu", attention, batch, backward, 2 if quick else 5)
                paired = statistics.median(p / s for s, p in zip(times["sequential"], times["parallel"]))
                table.append(time_row(
                    f"LDMP {attention}, B {batch}, {'fwd+bwd' if backward else 'forward'}, parallel branches",
                    statistics.median(times["parallel"]), "sequential branches",
                    statistics.median(times["sequential"]), ratio=paired))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads (CPU)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    index = vertex_joint()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}; LDMP 17 joints, {len(index)} coarse vertices, 64 channels, 3 layers; "
          f"median of {args.repeats} alternating runs")
    print(f"{'device':<26}{'attention':<11}{'B':>4}{'pass':>10}{'seq (ms)':>10}{'par (ms)':>10}{'seq/par':>9}")
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            where = f"cpu, {threads} thread(s)" if device == "cpu" else torch.cuda.get_device_name()
            for name in ATTENTION:
                for batch in args.batches:
                    for backward in (False, True):
                        times = measure(index, device, name, batch, backward, args.repeats, sync)
                        ratio_median = statistics.median(s / p for s, p in zip(times["sequential"], times["parallel"]))
                        print(f"{where:<26}{name:<11}{batch:>4}{'fwd+bwd' if backward else 'forward':>10}"
                              f"{1e3 * statistics.median(times['sequential']):>10.1f}"
                              f"{1e3 * statistics.median(times['parallel']):>10.1f}{ratio_median:>9.2f}")


if __name__ == "__main__":
    main()

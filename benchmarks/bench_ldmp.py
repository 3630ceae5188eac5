"""Time LDMP's parallel branches against the sequential ones (a script, not a test).

Run ``python benchmarks/bench_ldmp.py [--repeats N] [--threads 1 2]``: for LDMP at PMCE's sizes
(17 joints, the free body model's 431 coarse vertices, 64 channels, 3 layers, a 2048-wide context),
pooled (C/4, N/4) and standard attention, batch sizes 1 and 8, it prints the median wall time of a
forward pass without gradients and of a forward + backward pass, sequential and parallel (a second
thread on the CPU; a second CUDA stream on a GPU, when there is one), and the paper's ratio
``sequential / parallel`` (> 1: parallel is faster; the paper reports 1.14x). Sequential and parallel
runs alternate, so that a change in the machine's load hits both; the ratio is the median of the
per-pair ratios. Figures depend on the machine and its load: print ``uptime`` with them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from hmrlab import body
from hmrlab.models.lifd_hmr import LDMP, nearest_joint


def vertex_joint() -> torch.Tensor:
    arrays = body.body_model_arrays("smpl")
    template = torch.tensor(arrays["v_template"])
    coarse = torch.tensor(arrays["downsample"]) @ template
    return nearest_joint(coarse, torch.tensor(arrays["J_regressor_h36m"]) @ template)


def paired_times(runs: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]) -> dict[str, list[float]]:
    """Wall times of each run, alternating between them, after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def step(model: LDMP, joints: torch.Tensor, context: torch.Tensor, parallel: bool, backward: bool) -> None:
    if backward:
        joints_out, vertices = model(joints, context, parallel=parallel)
        (joints_out.square().sum() + vertices.square().sum()).backward()
    else:
        with torch.no_grad():
            model(joints, context, parallel=parallel)


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
            for name, ratio in (("C/4, N/4", 4), ("standard", 1)):
                torch.manual_seed(0)
                model = LDMP(index, channel_ratio=ratio, token_ratio=ratio).to(device)
                for batch in args.batches:
                    joints = torch.randn(batch, 17, 3, device=device)
                    context = torch.randn(batch, 2048, device=device)
                    for backward in (False, True):
                        times = paired_times(
                            {mode: (lambda p=(mode == "parallel"): step(model, joints, context, p, backward))
                             for mode in ("sequential", "parallel")},
                            args.repeats, sync,
                        )
                        ratio_median = statistics.median(s / p for s, p in zip(times["sequential"], times["parallel"]))
                        print(f"{where:<26}{name:<11}{batch:>4}{'fwd+bwd' if backward else 'forward':>10}"
                              f"{1e3 * statistics.median(times['sequential']):>10.1f}"
                              f"{1e3 * statistics.median(times['parallel']):>10.1f}{ratio_median:>9.2f}")


if __name__ == "__main__":
    main()

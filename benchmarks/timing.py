"""What the benchmark scripts share: wall-time helpers and `Row`, one line of the runner's table.

Each ``bench_*.py`` has ``rows(quick) -> list[Row]``: ours against the reference it names, measured in
one process on the same inputs. ``python -m benchmarks`` (from the repository root) prints every
script's rows as one table; ``python benchmarks/bench_x.py`` prints one script's detailed figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Row:
    """One comparison: `ours` and `reference_value` in `unit`, and ``ratio = ours / reference_value``
    unless the script gives a better estimate (e.g. the median of paired ratios). `threads` is the
    torch thread count of a timing, None for a count (parameters, MACs, bytes, errors)."""

    measure: str
    ours: float
    reference: str
    reference_value: float
    unit: str
    threads: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None:
            object.__setattr__(self, "ratio", self.ours / self.reference_value)


def time_row(measure: str, ours_seconds: float, reference: str, reference_seconds: float,
             ratio: float | None = None) -> Row:
    """A timing `Row` in milliseconds, with the torch thread count it ran on."""
    return Row(measure, 1e3 * ours_seconds, reference, 1e3 * reference_seconds, "ms",
               threads=torch.get_num_threads(), ratio=ratio)


def run_seconds(fn: Callable[[], object], repeats: int = 7, warmup: bool = True) -> list[float]:
    """Wall time of each of `repeats` runs of `fn()`, after one warm-up run unless `warmup` is False."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int = 7) -> float:
    """Median wall time of `fn()` over `repeats` runs, after one warm-up run."""
    return statistics.median(run_seconds(fn, repeats))


def paired_seconds(runs: dict[str, Callable[[], object]], repeats: int,
                   sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Wall times of each run, alternating between them so that a change in the machine's load hits
    all of them, after one warm-up each; `sync` waits for a device (``torch.cuda.synchronize``)."""
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

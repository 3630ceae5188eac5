"""Time the bit-packed XNOR-popcount convolution against the float convolution (a script, not a test).

Run ``python benchmarks/bench_bitpack.py`` from the repository root: for a typical binary layer,
256 -> 256 channels, 3x3 kernel, padding 1, a (1, 256, 14, 14) ±1 input (a ResNet layer3-sized map),
it prints the median time on the CPU with 1 torch thread of

- ``F.conv2d`` on the float32 sign tensors (MKL/oneDNN),
- `PackedBinaryConv2d` (filters packed once; the input is unfolded and packed on every call),
- its parts: unfold + pack of the input, and XNOR-popcount on already packed words,

their ratio to the float convolution (> 1: slower than float), and the weight storage of both.
Every output is checked to equal the float convolution first. ``rows`` gives the same comparisons
to ``python -m benchmarks``.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from timing import Row, median_seconds, time_row

from hmrlab.nn.bitpack import PackedBinaryConv2d, _conv_columns, storage_bytes, xnor_dot

CHANNELS, SIZE, KERNEL, BATCH = 256, 14, 3, 1
QUICK_CHANNELS, QUICK_SIZE = 64, 7
REPEATS = 9
FLOAT = "float conv2d (F.conv2d)"


def measure(channels: int, size: int, repeats: int) -> tuple[dict[str, float], int, int]:
    """Seconds per operation (`FLOAT` and the packed layer's), and float32 and packed weight bytes."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (BATCH, channels, size, size), generator=generator).float() * 2 - 1
    weight = torch.randn(channels, channels, KERNEL, KERNEL, generator=generator)
    binary = torch.where(weight >= 0, 1.0, -1.0)
    packed = PackedBinaryConv2d(weight, padding=1)
    n = channels * KERNEL * KERNEL
    columns, valid = _conv_columns(x, (KERNEL, KERNEL), 1, 1, 1)
    assert torch.equal(packed(x), F.conv2d(x, binary, padding=1)), "packed conv differs from the float conv"
    timings = {
        FLOAT: median_seconds(lambda: F.conv2d(x, binary, padding=1), repeats),
        "packed conv, end to end": median_seconds(lambda: packed(x), repeats),
        "  unfold + pack input": median_seconds(lambda: _conv_columns(x, (KERNEL, KERNEL), 1, 1, 1), repeats),
        "  XNOR-popcount, 1 MB steps": median_seconds(
            lambda: [xnor_dot(columns[:, None], w[:, None], n, valid[:, None]) for w in packed.weight_words.split(18)],
            repeats,
        ),
        "  XNOR-popcount, all at once": median_seconds(
            lambda: xnor_dot(columns[:, None], packed.weight_words[:, None], n, valid[:, None]), repeats
        ),
    }
    return timings, storage_bytes(weight), storage_bytes(packed.weight_words)


def rows(quick: bool) -> list[Row]:
    channels, size = (QUICK_CHANNELS, QUICK_SIZE) if quick else (CHANNELS, SIZE)
    timings, float_bytes, packed_bytes = measure(channels, size, 3 if quick else REPEATS)
    layer = f"{channels}->{channels} 3x3, {size}x{size} map"
    return [
        *(time_row(f"{name.strip()}, {layer}", seconds, FLOAT, timings[FLOAT])
          for name, seconds in timings.items() if name != FLOAT),
        Row(f"weight storage, {layer}", packed_bytes, "float32 weights", float_bytes, "B"),
    ]


def main() -> None:
    torch.set_num_threads(1)
    timings, float_bytes, packed_bytes = measure(CHANNELS, SIZE, REPEATS)
    print(f"layer {CHANNELS}->{CHANNELS}, {KERNEL}x{KERNEL}, padding 1, input ({BATCH}, {CHANNELS}, {SIZE}, {SIZE}); "
          f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread, {os.cpu_count()} cores; "
          f"median of {REPEATS}")
    float_time = timings[FLOAT]
    print(f"{'operation':<28}{'ms':>9}{'x float':>10}")
    for name, seconds in timings.items():
        print(f"{name:<28}{1e3 * seconds:>9.2f}{seconds / float_time:>10.1f}")
    print(f"weight storage: float32 {float_bytes} B, packed {packed_bytes} B "
          f"({float_bytes / packed_bytes:.0f}x smaller)")


if __name__ == "__main__":
    main()

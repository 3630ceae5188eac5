"""Time the XNOR-popcount convolutions against the float convolution (a script, not a test).

Run ``python benchmarks/bench_bitpack.py`` from the repository root: over the layer sizes of the
binarized ResNets (channels 64-512 on maps 56x56-7x7, 3x3 with padding 1 and 1x1, and a stride-2 3x3),
batch 1, it prints the median time on the CPU of

- ``F.conv2d`` on the float32 ±1 tensors (MKL/oneDNN), the reference,
- `hmrlab.nn.xnor.XnorConv2d` (the fused numba kernel of `hmrlab.nn.xnor_kernels`; its time includes
  binarizing and packing the float input and the float output),
- and, for the 256 -> 256, 3x3, 14x14 layer, `hmrlab.nn.bitpack.PackedBinaryConv2d` (the readable
  pure-torch reference, also the fallback without numba),

and their ratio to the float convolution (< 1: faster), on 1 and 2 threads (torch's and the kernel's).
Runs alternate between ours and the reference. Every output is checked to equal the float convolution
first. ``rows`` gives the same comparisons to ``python -m benchmarks`` at the runner's threads.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from timing import Row, paired_seconds, time_row

from hmrlab.nn.bitpack import PackedBinaryConv2d, storage_bytes
from hmrlab.nn.xnor import XnorConv2d, kernels_available

# (channels, map size, kernel, stride): the binary convolutions of ResNet-18/50 stages 1-4
SWEEP = [(64, 56, 3, 1), (128, 28, 3, 1), (256, 14, 3, 1), (512, 7, 3, 1),
         (64, 56, 1, 1), (128, 28, 1, 1), (256, 14, 1, 1), (512, 7, 1, 1), (128, 56, 3, 2)]
QUICK_SWEEP = [(64, 7, 3, 1)]
REFERENCE_LAYER = (256, 14, 3, 1)  # the layer: 256 -> 256, 3x3, padding 1, (1, 256, 14, 14)
REPEATS = 9
FLOAT = "float conv2d (F.conv2d)"


def layer(channels: int, size: int, kernel: int, stride: int):
    """A ±1 input (1, C, S, S), real filters (C, C, k, k), their signs, and the packed layers."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (1, channels, size, size), generator=generator).float() * 2 - 1
    weight = torch.randn(channels, channels, kernel, kernel, generator=generator)
    binary = torch.where(weight >= 0, 1.0, -1.0)
    padding = kernel // 2
    return x, weight, binary, padding, XnorConv2d(weight, stride=stride, padding=padding)


def measure(config: tuple[int, int, int, int], repeats: int, reference_too: bool = False) -> dict[str, float]:
    """Median seconds of `FLOAT`, the xnor kernel and (if asked) the bitpack reference on one layer."""
    channels, size, kernel, stride = config
    x, weight, binary, padding, fast = layer(*config)
    expected = F.conv2d(x, binary, stride=stride, padding=padding)
    assert torch.equal(fast(x), expected), "xnor conv differs from the float conv"
    runs = {FLOAT: lambda: F.conv2d(x, binary, stride=stride, padding=padding), "xnor kernel": lambda: fast(x)}
    if reference_too:
        packed = PackedBinaryConv2d(weight, stride=stride, padding=padding)
        assert torch.equal(packed(x), expected), "packed conv differs from the float conv"
        runs["bitpack reference (pure torch)"] = lambda: packed(x)
    with torch.no_grad():
        times = paired_seconds(runs, repeats)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def describe(config: tuple[int, int, int, int]) -> str:
    channels, size, kernel, stride = config
    return f"{channels}->{channels} {kernel}x{kernel}{f' stride {stride}' if stride > 1 else ''}, {size}x{size} map"


def rows(quick: bool) -> list[Row]:
    table = []
    kernel_name = "xnor kernel" if kernels_available() else "xnor layer (torch fallback: no numba)"
    for config in QUICK_SWEEP if quick else SWEEP:
        timings = measure(config, 3 if quick else REPEATS, reference_too=config == REFERENCE_LAYER)
        for name, seconds in timings.items():
            if name != FLOAT:
                label = kernel_name if name == "xnor kernel" else name
                table.append(time_row(f"{label}, {describe(config)}", seconds, FLOAT, timings[FLOAT]))
    x, weight, _, _, fast = layer(*(QUICK_SWEEP[0] if quick else REFERENCE_LAYER))
    table.append(Row(f"weight storage, {describe(QUICK_SWEEP[0] if quick else REFERENCE_LAYER)}",
                     storage_bytes(fast.weight_words), "float32 weights", storage_bytes(weight), "B"))
    return table


def main() -> None:
    print(f"batch 1, torch {torch.__version__}, CPU; kernels {'numba' if kernels_available() else 'unavailable (torch fallback)'}; "
          f"median of {REPEATS} interleaved runs")
    print(f"{'threads':>7}  {'layer':<34}{'F.conv2d ms':>12}{'xnor ms':>9}{'x float':>9}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for config in SWEEP:
            timings = measure(config, REPEATS)
            print(f"{threads:>7}  {describe(config):<34}{1e3 * timings[FLOAT]:>12.2f}{1e3 * timings['xnor kernel']:>9.2f}"
                  f"{timings['xnor kernel'] / timings[FLOAT]:>9.2f}")
    torch.set_num_threads(1)
    timings = measure(REFERENCE_LAYER, REPEATS, reference_too=True)
    print(f"bitpack reference (pure torch), {describe(REFERENCE_LAYER)}, 1 thread: "
          f"{1e3 * timings['bitpack reference (pure torch)']:.1f} ms, "
          f"{timings['bitpack reference (pure torch)'] / timings[FLOAT]:.1f}x the float conv")


if __name__ == "__main__":
    main()

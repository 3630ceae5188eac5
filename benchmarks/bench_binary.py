"""Params, OPs and forward time of the binarized ResNets of `hmrlab.nn.binary` (a script, not a test).

Run ``python benchmarks/bench_binary.py``: for ResNet-18 and ResNet-50 at 224x224 (batch 1,
1000 classes) in each block style and in full precision, prints the parameters and operations in the
binary-network convention of `hmrlab.nn.binary.count_ops` (params = real + binary / 32, OPs = real MACs +
binary MACs / 64) and the forward time in eval mode. The time is that of the training-time
simulation (signs stored as float32, float convolutions), so a binary model is *slower* than its
full-precision twin here: the speed the OPs promise needs bit-packed kernels (`hmrlab.nn.bitpack`).
"""

from __future__ import annotations

import time

import torch

from hmrlab.complexity import count_params, format_count
from hmrlab.nn.binary import binary_resnet18, binary_resnet50, count_ops

REPEATS = 5


def forward_ms(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Median wall time of ``model(x)`` in milliseconds, eval mode, no gradients, after one warm-up."""
    model.eval()
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(REPEATS):
            start = time.perf_counter()
            model(x)
            times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def main() -> None:
    torch.set_num_threads(2)
    x = torch.zeros(1, 3, 224, 224)
    print(f"1x3x224x224, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name, builder in (("ResNet-18", binary_resnet18), ("ResNet-50", binary_resnet50)):
        variants = {f"{style}": dict(style=style) for style in ("bnn", "bireal", "bidrn")}
        variants["full-precision twin (bidrn layout)"] = dict(binary=False)
        for label, options in variants.items():
            torch.manual_seed(0)
            model = builder(**options)
            counted = count_ops(model, x)
            print(
                f"{name} {label:36s} params {format_count(count_params(model)):>9s} raw, "
                f"{format_count(counted.params):>9s} (32-bit equiv.); OPs {format_count(counted.ops):>9s} "
                f"(binary MACs {format_count(counted.macs_binary)}, real MACs {format_count(counted.macs_real)}); "
                f"forward {forward_ms(model, x):.0f} ms"
            )


if __name__ == "__main__":
    main()

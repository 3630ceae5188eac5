"""Params, OPs and forward time of the binarized ResNets of `hmrlab.nn.binary` (a script, not a test).

Run ``python benchmarks/bench_binary.py`` from the repository root: for ResNet-18 and ResNet-50 at
224x224 (batch 1, 1000 classes) in each block style and in full precision, prints the parameters and
operations in the binary-network convention of `hmrlab.nn.binary.count_ops` (params = real + binary /
32, OPs = real MACs + binary MACs / 64) and the forward time in eval mode. The time is that of the
training-time simulation (signs stored as float32, float convolutions), so a binary model is *slower*
than its full-precision twin here; the same model packed for inference
(`hmrlab.nn.xnor.pack_binary_network`, XNOR-popcount kernels) is timed too, against the twin in
interleaved runs. ``rows`` gives the bidrn style against the full-precision twin to
``python -m benchmarks``.
"""

from __future__ import annotations

import statistics

import torch
from timing import Row, median_seconds, paired_seconds, time_row

from hmrlab.complexity import count_params, format_count
from hmrlab.nn.binary import binary_resnet18, binary_resnet50, count_ops
from hmrlab.nn.xnor import pack_binary_network

REPEATS = 5
BUILDERS = {"ResNet-18": binary_resnet18, "ResNet-50": binary_resnet50}
TWIN = "full-precision twin (bidrn layout)"


def forward_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int = REPEATS) -> float:
    """Median wall time of ``model(x)``, eval mode, no gradients, after one warm-up."""
    model.eval()
    with torch.no_grad():
        return median_seconds(lambda: model(x), repeats)


def variants() -> dict[str, dict]:
    options = {style: dict(style=style) for style in ("bnn", "bireal", "bidrn")}
    options[TWIN] = dict(binary=False)
    return options


def build(network: str, options: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return BUILDERS[network](**options)


def rows(quick: bool) -> list[Row]:
    size, networks, repeats = (64, ("ResNet-18",), 2) if quick else (224, tuple(BUILDERS), REPEATS)
    x = torch.zeros(1, 3, size, size)
    table = []
    for network in networks:
        binary, twin = build(network, dict(style="bidrn")), build(network, dict(binary=False))
        counts, twin_counts = count_ops(binary, x), count_ops(twin, x)
        where = f"binary {network} (bidrn), {size}x{size}"
        table += [
            Row(f"{where} params (32-bit equiv.)", counts.params, TWIN, twin_counts.params, "count"),
            Row(f"{where} OPs", counts.ops, TWIN, twin_counts.ops, "count"),
            time_row(f"{where} forward (float simulation)", forward_seconds(binary, x, repeats),
                     TWIN, forward_seconds(twin, x, repeats)),
            time_row(f"{where} forward, packed (XNOR kernels)", *packed_and_twin_seconds(binary, twin, x, repeats)),
        ]
    return table


def packed_and_twin_seconds(binary: torch.nn.Module, twin: torch.nn.Module, x: torch.Tensor, repeats: int):
    """(packed seconds, TWIN, twin seconds): medians of interleaved eval-mode forwards."""
    packed = pack_binary_network(binary)
    twin.eval()
    with torch.no_grad():
        times = paired_seconds({"packed": lambda: packed(x), "twin": lambda: twin(x)}, repeats)
    return statistics.median(times["packed"]), TWIN, statistics.median(times["twin"])


def main() -> None:
    torch.set_num_threads(2)
    x = torch.zeros(1, 3, 224, 224)
    print(f"1x3x224x224, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in BUILDERS:
        for label, options in variants().items():
            model = build(name, options)
            counted = count_ops(model, x)
            print(
                f"{name} {label:36s} params {format_count(count_params(model)):>9s} raw, "
                f"{format_count(counted.params):>9s} (32-bit equiv.); OPs {format_count(counted.ops):>9s} "
                f"(binary MACs {format_count(counted.macs_binary)}, real MACs {format_count(counted.macs_real)}); "
                f"forward {1000 * forward_seconds(model, x):.0f} ms"
            )


if __name__ == "__main__":
    main()

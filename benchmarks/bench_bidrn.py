"""Params and OPs of BiDRN, its full-precision twin and a Hand4Whole-style model (a script, not a test).

Run ``python benchmarks/bench_bidrn.py`` from the repository root: builds the three whole-body models of
`hmrlab.models.bidrn` at the paper's sizes (backbone width 64, a 512x384 image, body crop 256x192,
hand crops 256x256, face crop 192x192, batch 1) and prints, per model and per part, the parameters
and operations in the binary-network convention of `hmrlab.nn.binary.count_ops` (params = real +
binary / 32, OPs = real MACs + binary MACs / 64), beside the appendix's Table 2 / Table 8 numbers.
It also prints the MACs of the four RoIAlign crops alone: `hmrlab.nn.roi_align` computes a crop as
two dense matrix products (separable interpolation), which the FLOP counter sees, whereas the usual
counters (thop, fvcore) give torchvision's gather-based ``roi_align`` no cost at all; the totals
"without crops" are the ones comparable with the paper. Takes a few minutes on a 2-core CPU.

Then it times one frame (batch 1, eval mode, no gradients) of BiDRN packed for inference
(`hmrlab.models.bidrn.pack_bidrn`: XNOR-popcount kernels), of its full-precision twin and of the
Hand4Whole-style model, on 1 and 2 torch threads, runs interleaved, and puts the packed/twin ratio
beside the appendix's estimate (Table 8, 22.1 %). ``rows`` gives BiDRN's and Hand4Whole's totals
without crops against the paper's, and those timings, to ``python -m benchmarks``.
"""

from __future__ import annotations

import statistics
import time

import torch
from timing import Row, paired_seconds, time_row
from torch import nn

from hmrlab.complexity import format_count, measure
from hmrlab.models.bidrn import PAPER_COMPLEXITY, PAPER_PACKED_TIME_RATIO, BiDRN, crop_boxes, hand4whole, pack_bidrn
from hmrlab.nn.binary import BinaryComplexity, count_ops, is_binary_layer

IMAGE = (512, 384)
QUICK_IMAGE = (256, 192)  # the crops keep their sizes; only the box net sees fewer pixels
MODELS = {
    "BiDRN (binary)": lambda: BiDRN(True),
    "BiDRN full-precision twin": lambda: BiDRN(False),
    "Hand4Whole-style (torchvision ResNets)": hand4whole,
}
PARTS = {
    "body backbone": "body_backbone", "hand backbone": "hand_backbone", "face backbone": "face_backbone",
    "box net": "box_net", "body heads": ("body_position", "body_rotation", "shape_out", "camera_out"),
    "hand heads": ("hand_position", "hand_rotation"), "face regressor": "face_regressor",
}


def part_params(model: BiDRN, attributes) -> float:
    """Parameters of the named submodules in 32-bit equivalents (binary weights / 32)."""
    names = (attributes,) if isinstance(attributes, str) else attributes
    total = 0.0
    for name in names:
        for module in getattr(model, name).modules():
            own = sum(p.numel() for p in module.parameters(recurse=False))
            if is_binary_layer(module):
                total += module.weight.numel() / 32 + own - module.weight.numel()
            else:
                total += own
    return total


class Crops(nn.Module):
    """The four RoIAlign crops `BiDRN.forward` takes of each image (body, left hand, right hand, face)."""

    def __init__(self, model: BiDRN):
        super().__init__()
        self.shapes = (model.body_shape, model.hand_shape, model.hand_shape, model.face_shape)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        box = images.new_tensor([[0.0, 0.0, images.shape[3], images.shape[2]]])
        return [crop_boxes(images, box, shape) for shape in self.shapes]


def paper_figures(name: str) -> tuple[float, float]:
    """(params, OPs) the appendix reports for a model of `MODELS` (the twin is compared with Hand4Whole)."""
    return PAPER_COMPLEXITY["BiDRN" if "binary" in name else "Hand4Whole"]


def count(name: str, image_size: tuple[int, int]) -> tuple[BiDRN, BinaryComplexity, float, float]:
    """A model of `MODELS`, its counts on one image, the MACs of its four crops, and the seconds counting took."""
    image = torch.rand(1, 3, *image_size, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = MODELS[name]()
    start = time.perf_counter()
    counts = count_ops(model, image)
    seconds = time.perf_counter() - start
    return model, counts, measure(Crops(model), image).macs, seconds


TIME_REPEATS = 5
# Quick mode times small models (backbone width 16, small crops): a smoke test of the rows.
QUICK_MODEL = dict(width=16, body_shape=(64, 48), hand_shape=(64, 64), face_shape=(48, 48))


def frame_seconds(image_size: tuple[int, int], threads: int, repeats: int, quick: bool = False) -> dict[str, float]:
    """Median seconds of one frame of BiDRN packed, its twin and Hand4Whole on `threads` threads."""
    options = QUICK_MODEL if quick else {}
    torch.manual_seed(0)
    packed = pack_bidrn(BiDRN(True, **options))
    torch.manual_seed(0)
    models = {"BiDRN packed": packed, "full-precision twin": BiDRN(False, **options).eval()}
    if not quick:
        torch.manual_seed(0)
        models["Hand4Whole-style"] = hand4whole().eval()
    image = torch.rand(1, 3, *image_size, generator=torch.Generator().manual_seed(0))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            times = paired_seconds({name: (lambda m=model: m(image)) for name, model in models.items()}, repeats)
    finally:
        torch.set_num_threads(previous)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def timing_rows(quick: bool) -> list[Row]:
    image = QUICK_IMAGE if quick else IMAGE
    table = []
    for threads in (1,) if quick else (1, 2):
        times = frame_seconds(image, threads, 2 if quick else TIME_REPEATS, quick)
        where = f"{image[0]}x{image[1]} image, batch 1"
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)  # so that the rows say the threads they ran on
        for reference in [name for name in times if name != "BiDRN packed"]:
            table.append(time_row(f"BiDRN packed (XNOR kernels), {where}", times["BiDRN packed"], reference, times[reference]))
        table.append(Row(f"BiDRN packed time / twin's, {where}", times["BiDRN packed"] / times["full-precision twin"],
                         "paper, Table 8 (estimate)", PAPER_PACKED_TIME_RATIO, "fraction", threads=threads))
        torch.set_num_threads(previous)
    return table


def rows(quick: bool) -> list[Row]:
    image = QUICK_IMAGE if quick else IMAGE
    table = timing_rows(quick)
    for name in ("BiDRN (binary)",) if quick else ("BiDRN (binary)", "Hand4Whole-style (torchvision ResNets)"):
        _, counts, crops, _ = count(name, image)
        params, ops = paper_figures(name)
        where = f"{name.split(' (')[0]}, {image[0]}x{image[1]} image"
        table += [Row(f"{where}, params (32-bit equiv.)", counts.params, "paper, Tables 2/8", params, "count"),
                  Row(f"{where}, OPs without the crops", counts.ops - crops, "paper, Tables 2/8", ops, "count")]
    return table


def main() -> None:
    torch.set_num_threads(2)
    print(f"image 1x3x{IMAGE[0]}x{IMAGE[1]}, torch {torch.__version__}, CPU; OPs = real MACs + binary MACs / 64")
    for name in MODELS:
        model, counts, crops, seconds = count(name, IMAGE)
        paper = paper_figures(name)
        print(f"\n{name}: params {format_count(counts.params)} (paper {format_count(paper[0])}), "
              f"OPs {format_count(counts.ops)} (paper {format_count(paper[1])}); "
              f"binary params {format_count(counts.params_binary)}, real params {format_count(counts.params_real)}, "
              f"binary MACs {format_count(counts.macs_binary)}, real MACs {format_count(counts.macs_real)} "
              f"[counted in {seconds:.0f} s]")
        print(f"  RoIAlign crops as matrix products: {format_count(crops)} MACs; OPs without them "
              f"{format_count(counts.ops - crops)} (paper {format_count(paper[1])})")
        for part, attributes in PARTS.items():
            print(f"  {part:<16} params {format_count(part_params(model, attributes)):>10}")
    for threads in (1, 2):
        times = frame_seconds(IMAGE, threads, TIME_REPEATS)
        print(f"\none frame on {threads} thread(s), median of {TIME_REPEATS} interleaved runs: " + ", ".join(
            f"{name} {1e3 * seconds:.0f} ms" for name, seconds in times.items()))
        print(f"  BiDRN packed / twin {times['BiDRN packed'] / times['full-precision twin']:.1%} "
              f"(paper's estimate {PAPER_PACKED_TIME_RATIO:.1%}), / Hand4Whole-style "
              f"{times['BiDRN packed'] / times['Hand4Whole-style']:.1%}")


if __name__ == "__main__":
    main()

"""Complexity and a short training run of the keypoints-guided lightweight HMR (a script, not a test).

    python benchmarks/bench_keypoint_hmr.py [--epochs 0] [--size 64] [--threads 1]    # from the repository root

Prints, measured with `hmrlab.complexity.measure` on one 256x256 image:

1. Table III/IV: MobileNetV3 -> +7x7 -> +MFC -> +global filter (MGFENet) and ResNet-18, with the
   authors' stride schedule (the paper's counts) and with torchvision's MobileNetV3-Large table;
2. the whole network (Table II's "Ours, MGFENet": 0.8 GFLOPs, 10.9 M) for 91 and 96 keypoints, with
   GAU / standard attention / none and SimCC / regression heads, and where its MACs go;
3. median CPU time of one forward pass (batch 1, 256x256);
4. with ``--epochs N``: N epochs of end-to-end training on the shipped synthetic 3DPW-like set
   (crops of ``--size`` pixels, train/test split of the files), with each epoch's losses and MPJPE.

``rows`` gives 1 and 2's counts against the paper's to ``python -m benchmarks``, and (full mode) the
time of one training step as training runs it (joints and the template's vertices only) against the
same step building the full 13,718-vertex meshes, interleaved (`training_step_seconds`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
from timing import Row, median_seconds, paired_seconds, time_row

from hmrlab import paths
from hmrlab.complexity import format_count, measure
from hmrlab.models.keypoint_hmr import KeypointHMR
from hmrlab.nn.mgfenet import complexity_table
from hmrlab.training.tasks.mesh import train_keypoint_hmr

SYNTH = paths.SYNTH_3DPW
# Table II, "Ours, MGFENet": 10.9 M parameters, 0.8 GFLOPs (read as MACs, as `PAPER_TABLE` of
# hmrlab.nn.mgfenet reads Tables III and IV).
PAPER_TABLE_II = {"params": 10.9e6, "MACs": 0.8e9}


def print_backbones() -> None:
    for late in (True, False):
        schedule = "authors' stride schedule" if late else "torchvision's MobileNetV3-Large schedule"
        print(f"\nTable III/IV at 256x256, {schedule}:")
        print(complexity_table((256, 256), late_downsample=late).to_string(float_format=lambda x: f"{x:,.2f}"))


def network_complexity(keypoints: int = 91, attention: str = "gau", head: str = "simcc"):
    """`hmrlab.complexity.measure` of the whole network on one 256x256 image."""
    # A random image, not a blank one: on a constant image every keypoint token is the same vector up to
    # sign after the LayerNorm, the keypoints fall on a line, and IK's swing of exactly opposite bones is NaN.
    images = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return measure(KeypointHMR(num_keypoints=keypoints, attention=attention, head=head), images)


def print_networks() -> None:
    rows = []
    for keypoints in (91, 96):
        for attention in ("gau", "standard", "none"):
            for head in ("simcc", "regression"):
                if keypoints == 96 and (attention, head) != ("gau", "simcc"):
                    continue
                measured = network_complexity(keypoints, attention, head)
                parts = {name: format_count(flops // 2) for name, flops in measured.by_module.items()}
                rows.append({"K": keypoints, "attention": attention, "head": head,
                             "params": format_count(measured.params), "MACs": format_count(measured.macs), **parts})
    print("\nWhole network at 256x256 (paper, Table II: 0.8 G, 10.9 M); MACs per part ('kem' = 3DKEM;")
    print("IK and skinning run outside any child module, so they are in MACs only):")
    print(pd.DataFrame(rows).to_string(index=False))


def time_forward(repeats: int = 5) -> None:
    torch.manual_seed(0)
    model = KeypointHMR().eval()
    images = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        seconds = median_seconds(lambda: model(images), repeats)
    print(f"\nforward, batch 1, 256x256, {torch.get_num_threads()} thread(s): median {1000 * seconds:.0f} ms")


def training_step_seconds(size: int = 64, batch: int = 32, repeats: int = 7) -> dict[str, list[float]]:
    """Paired wall times of one training step (forward, Eq. 9 + L1, backward, Adam) of notebook 09's
    configuration (channels 64, 64 bins) on a batch of ``size`` crops: ``"joints only"`` as training
    runs it (``model(..., mesh=False)``, targets without the mesh: only the template's vertices are
    skinned) against ``"full mesh"`` (the 13,718-vertex mesh built for the prediction and the target)."""
    from hmrlab.models.keypoint_hmr import keypoint_hmr_loss, mesh_targets
    from hmrlab.nn.keypoints import keypoint_template

    template = keypoint_template("paper91")
    torch.manual_seed(0)
    model = KeypointHMR(image_size=(size, size), channels=64, num_bins=64)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    images, pose, betas = torch.rand(batch, 3, size, size), 0.3 * torch.randn(batch, 72), torch.randn(batch, 10)

    def step(mesh: bool) -> None:
        output = model(images, mesh=mesh)
        target = mesh_targets(model.body, template, pose, betas, vertices=mesh)
        terms = keypoint_hmr_loss(output, target, model.flow, model.body.parents, box_size=model.box_size)
        loss = terms["loss"] + (output["coords"] - target["keypoints"] / model.box_size).abs().sum((-2, -1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return paired_seconds({"joints only": lambda: step(False), "full mesh": lambda: step(True)}, repeats)


def rows(quick: bool) -> list[Row]:
    """The whole network (91 keypoints, GAU, SimCC) against Table II; in full mode also the backbones
    against Tables III/IV (the authors' stride schedule). Counts at 256x256 in both modes."""
    measured = network_complexity()
    table = [Row(f"KeypointHMR (K 91, GAU, SimCC) {unit}", value, "paper, Table II", PAPER_TABLE_II[unit], "count")
             for unit, value in (("params", measured.params), ("MACs", measured.macs))]
    if not quick:
        backbones = complexity_table((256, 256), late_downsample=True)
        times = training_step_seconds()
        ratios = [ours / full for ours, full in zip(times["joints only"], times["full mesh"])]
        table.append(time_row("KeypointHMR training step, batch 32 at 64x64 (joints only)",
                              statistics.median(times["joints only"]), "the same step building the full meshes",
                              statistics.median(times["full mesh"]), ratio=statistics.median(ratios)))
        for name in ("+ global filter = MGFENet", "MobileNetV3", "ResNet-18"):
            for unit in ("params", "MACs"):
                paper = backbones.loc[name, f"{unit} (paper)"]
                if paper == paper:  # NaN where the paper gives no figure
                    table.append(Row(f"backbone {name.removeprefix('+ global filter = ')} {unit}",
                                     float(backbones.loc[name, unit]), "paper, Tables III/IV", float(paper), "count"))
    return table


def train(epochs: int, size: int) -> None:
    from hmrlab.data import load_3dpw
    from hmrlab.data.datasets import MeshSamples
    from hmrlab.nn.keypoints import keypoint_template

    crop = (size, size)
    train_set = MeshSamples(load_3dpw(SYNTH / "sequenceFiles" / "train"), SYNTH / "imageFiles", crop_size=crop)
    test_set = MeshSamples(load_3dpw(SYNTH / "sequenceFiles" / "test"), SYNTH / "imageFiles", crop_size=crop)
    torch.manual_seed(0)
    model = KeypointHMR(num_keypoints=91, image_size=crop, num_bins=2 * size)
    start = time.perf_counter()
    history = train_keypoint_hmr(model, train_set, keypoint_template("paper91"), epochs=epochs, batch_size=8,
                                 lr=1e-3, val_samples=test_set)
    print(f"\n{epochs} epochs on {len(train_set)} training / {len(test_set)} test crops of {size}x{size} "
          f"({time.perf_counter() - start:.0f} s):")
    print(history.to_frame().round(3).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=0, help="training epochs on the synthetic set (0: skip)")
    parser.add_argument("--size", type=int, default=64, help="crop size for the training run, pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print_backbones()
    print_networks()
    time_forward()
    if args.epochs:
        train(args.epochs, args.size)


if __name__ == "__main__":
    main()

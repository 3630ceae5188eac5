"""Rendering speed of hmrlab.data.render on the CPU (a script, not a test).

    python benchmarks/bench_render.py [--frames 40] [--repeats 3]    # from the repository root

Renders a clip of posed free-model bodies (13,718 vertices) through a Human3.6M-like camera scaled
to 256x256 and to 500x500 pixels, with the mask pass (depth buffer read, background pasted through
the mask) and without it (colour only, flat background). Prints frames per second for the whole
`render_clip` call (window creation included) and the best of `--repeats` runs. ``rows`` gives the
time per frame with the mask pass against colour only to ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from timing import Row, run_seconds, time_row

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data.cameras import h36m_like_cameras
from hmrlab.data.render import random_background, render_clip

COLOUR = "colour only"
MASKED = "colour + mask + background"


def posed_clip(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, N, 3) vertices of a body swinging its limbs, pelvis 0.9 m above the floor, and faces (F, 3)."""
    arrays = body_model_arrays("smpl")
    model = BodyModel(arrays)
    generator = torch.Generator().manual_seed(0)
    poses = 0.3 * torch.randn(2, 23, 3, generator=generator)
    weights = torch.linspace(0, 1, frames)[:, None, None]
    with torch.no_grad():
        vertices, _ = model(body_pose=(1 - weights) * poses[0] + weights * poses[1],
                            transl=torch.tensor([[0.0, 0.9, 0.0]]).expand(frames, 3))
    return vertices.numpy().astype(np.float64), arrays["f"].astype(np.int64)


def measure(frames: int, repeats: int, factors: tuple[float, ...]) -> dict[tuple[str, str], float]:
    """Best seconds per frame of `render_clip` for each (image size, pass), a clip of `frames`."""
    vertices, faces = posed_clip(frames)
    camera = h36m_like_cameras(4)[1]  # 1000 x 1000 pixels, like Human3.6M's second camera
    # One frame first, so that loading VTK's renderer is not charged to the first size measured.
    render_clip(vertices[:1], faces, camera.scaled(factors[0]))
    results = {}
    for factor in factors:
        scaled = camera.scaled(factor)
        width, height = scaled.image_size
        background = random_background((height, width), np.random.default_rng(0))
        for with_mask in (False, True):
            times = run_seconds(lambda: render_clip(vertices, faces, scaled, with_mask=with_mask,
                                                    background=background if with_mask else None),
                                repeats, warmup=False)  # window creation is part of what is timed
            results[f"{width}x{height}", MASKED if with_mask else COLOUR] = min(times) / frames
    return results


def rows(quick: bool) -> list[Row]:
    frames = 4 if quick else 40
    results = measure(frames, 1 if quick else 3, (0.256,) if quick else (0.256, 0.5))
    return [time_row(f"render a frame, {size}, {MASKED} ({frames}-frame clip)", seconds,
                     COLOUR, results[size, COLOUR])
            for (size, label), seconds in results.items() if label == MASKED]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    arrays = body_model_arrays("smpl")
    print(f"{len(arrays['v_template'])} vertices, {len(arrays['f'])} faces, {args.frames} frames per clip, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}")
    for (size, label), seconds in measure(args.frames, args.repeats, (0.256, 0.5)).items():
        print(f"{size} {label:27s}: {1 / seconds:6.1f} frames/s ({1000 * seconds:.1f} ms/frame)")


if __name__ == "__main__":
    main()

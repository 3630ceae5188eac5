"""Rendering speed of hmrlab.data.render on the CPU (a script, not a test).

    python benchmarks/bench_render.py [--frames 40] [--repeats 3]

Renders a clip of posed free-model bodies (13,718 vertices) through a Human3.6M-like camera scaled
to 256x256 and to 500x500 pixels, with the mask pass (depth buffer read, background pasted through
the mask) and without it (colour only, flat background). Prints frames per second for the whole
`render_clip` call (window creation included) and the best of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from hmrlab.body import body_model_arrays
from hmrlab.body.lbs import BodyModel
from hmrlab.data.cameras import h36m_like_cameras
from hmrlab.data.render import random_background, render_clip


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    vertices, faces = posed_clip(args.frames)
    camera = h36m_like_cameras(4)[1]  # 1000 x 1000 pixels, like Human3.6M's second camera
    print(f"{vertices.shape[1]} vertices, {len(faces)} faces, {args.frames} frames per clip, "
          f"{os.cpu_count()} CPUs, best of {args.repeats}")
    for factor in (0.256, 0.5):
        scaled = camera.scaled(factor)
        width, height = scaled.image_size
        background = random_background((height, width), np.random.default_rng(0))
        for with_mask in (False, True):
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                render_clip(vertices, faces, scaled, background=background if with_mask else None, with_mask=with_mask)
                times.append(time.perf_counter() - started)
            label = "colour + mask + background" if with_mask else "colour only"
            print(f"{width}x{height} {label:27s}: {args.frames / min(times):6.1f} frames/s "
                  f"({1000 * min(times) / args.frames:.1f} ms/frame)")


if __name__ == "__main__":
    main()

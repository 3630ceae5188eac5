"""``python -m hmrlab.data --out DIR [--quick | --full] [--seed N]``: every SynthHuman set at once.

Writes ``DIR/h36m`` (`hmrlab.data.synth`, Human3.6M's VideoPose3D files) and ``DIR/3dpw``
(`hmrlab.data.synth_images`, 3DPW's layout with images, plus a COCO keypoints file). Sets already
generated with the same arguments are kept (each generator caches by its manifest).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hmrlab.data import synth, synth_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hmrlab.data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the h36m/ and 3dpw/ sets")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sets, as shipped in hmrlab/assets/synth (default)")
    size.add_argument("--full", action="store_true", help=f"larger sets: {synth.FULL}, {synth_images.FULL}")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lifting = synth.generate_h36m_like(args.out / "h36m", seed=args.seed, **(synth.FULL if args.full else synth.QUICK))
    print(f"SynthHuman Human3.6M-like set in {lifting}")
    images = synth_images.generate_3dpw_like(
        args.out / "3dpw", seed=args.seed, **(synth_images.FULL if args.full else synth_images.QUICK)
    )
    print(f"SynthHuman 3DPW-like set (and COCO keypoints) in {images}")


if __name__ == "__main__":
    main()

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
    size.add_argument("--quick", action="store_true", help="small sets, as shipped in data_samples/synth (default)")
    size.add_argument("--full", action="store_true", help="the full-mode sets")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    flags = ["--full" if args.full else "--quick", "--seed", str(args.seed)]
    synth.main(["--out", str(args.out / "h36m"), *flags])
    synth_images.main(["--out", str(args.out / "3dpw"), *flags])


if __name__ == "__main__":
    main()

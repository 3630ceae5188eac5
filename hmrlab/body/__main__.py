"""Command line: ``python -m hmrlab.body convert IN.pkl OUT.npz``.

Converts a licensed SMPL / SMPL-X pickle (chumpy arrays, scipy.sparse matrices) into a clean `.npz`
that ``numpy.load`` reads without pickle; see `hmrlab.body.model_files`.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from hmrlab.body.model_files import read_model_file
from hmrlab.io import atomic_save_npz


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hmrlab.body", description="Body-model file tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a body-model .pkl (or .npz) into a clean .npz")
    convert.add_argument("source", help="model file to read, e.g. SMPL_NEUTRAL.pkl")
    convert.add_argument("target", help="npz file to write, e.g. SMPL_NEUTRAL.npz")
    args = parser.parse_args(argv)
    if Path(args.target).suffix != ".npz":
        parser.error(f"the target must be an .npz file; got {args.target}. Name it <something>.npz")
    try:
        arrays = read_model_file(args.source)
        atomic_save_npz(args.target, **arrays)
    except (OSError, ValueError, pickle.UnpicklingError) as error:
        parser.error(str(error))
    for key, array in arrays.items():
        print(f"{key:20s} {array.dtype!s:10s} {tuple(array.shape)}")
    print(f"wrote {len(arrays)} arrays to {args.target}")


if __name__ == "__main__":
    main()

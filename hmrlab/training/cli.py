"""The ``hmrlab`` command: train and evaluate configured runs (`hmrlab.training`).

    hmrlab train CONFIG [--quick] [--set key=value ...]     # also: torchrun --nproc_per_node=N -m hmrlab train CONFIG
    hmrlab eval RUN_DIR [--which best|last] [--on 3DPW_FOLDER]

``python -m hmrlab`` is the same command.
"""

from __future__ import annotations

import argparse
import sys

import torch.distributed as dist

from hmrlab import training


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hmrlab", description="Train and evaluate hmrlab models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train as a YAML configuration says (resumes its run folder)")
    train.add_argument("config", help="a YAML file, e.g. configs/lifting_mixste.yaml")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set epochs=5 --set model_args.dim=64 (repeatable)")
    train.add_argument("--quick", action="store_true", help="apply the configuration's quick settings (a few steps)")
    evaluate = commands.add_parser("eval", help="evaluate a trained run on its test split")
    evaluate.add_argument("run_dir", help="the run's out_dir (holds config.yaml and checkpoint.pt)")
    evaluate.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint (default best)")
    evaluate.add_argument("--on", metavar="FOLDER",
                          help="score on the test sequences of this 3DPW-format folder instead (the common benchmark)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            history = training.train(training.load_config(args.config, args.overrides, quick=args.quick))
            if not dist.is_initialized() or dist.get_rank() == 0:
                print(history.to_frame().to_string(index=False))
        elif args.on is not None:
            print(training.benchmark(args.run_dir, args.on, which=args.which).round(2).to_string())
        else:
            print(training.evaluate(args.run_dir, which=args.which).round(2).to_string())
    except (FileNotFoundError, ValueError) as error:
        print(f"hmrlab {args.command}: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

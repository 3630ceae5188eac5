"""Every benchmark in one table: ours against the reference each one names, and their ratio.

    python -m benchmarks [--quick] [--only NAME ...] [--threads N] [--csv FILE]   # from the repository root
    python3 tasks.py bench [...]                                                  # the same, after the setup

Each ``benchmarks/bench_NAME.py`` gives its comparisons as `timing.Row`s (``rows(quick)``), measured
in one process on the same inputs; run one alone (``python benchmarks/bench_NAME.py``) for its
detailed figures. ``ratio = ours / reference``: below 1 a time is faster than the reference, and a
count near 1 matches the paper. Timings run on ``--threads`` torch threads, 1 unless told, because
the machine is often shared and two threads on two busy cores oversubscribe them. ``--quick`` takes
small sizes: a smoke test, whose ratios say little.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = sorted(path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py"))
COLUMNS = ["benchmark", "measure", "ours", "reference", "reference value", "unit", "ratio", "threads"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", nargs="+", action="extend", choices=NAMES, metavar="NAME",
                        help=f"run only these ({', '.join(NAMES)})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the timings (default 1)")
    parser.add_argument("--csv", type=Path, help="also write the table, unrounded, to this CSV file")
    return parser.parse_args(argv)


def collect(names: list[str], quick: bool) -> tuple[list[dict], list[str]]:
    """The rows of each benchmark, as table records, and the names of those that failed (reported on stderr)."""
    if str(HERE) not in sys.path:  # the scripts import `timing` as they do when run alone
        sys.path.insert(0, str(HERE))
    records, failed = [], []
    for name in names:
        started = time.perf_counter()
        try:
            rows = importlib.import_module(f"bench_{name}").rows(quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            print(f"[bench] {name} failed after {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
            continue
        print(f"[bench] {name}: {len(rows)} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        records += [{"benchmark": name, "measure": row.measure, "ours": row.ours, "reference": row.reference,
                     "reference value": row.reference_value, "unit": row.unit, "ratio": row.ratio,
                     "threads": row.threads} for row in rows]
    return records, failed


def format_table(records: list[dict]) -> str:
    """The records as aligned text: counts with SI suffixes, other values to 4 significant digits."""
    from hmrlab.complexity import format_count

    def value(record: dict, column: str) -> str:
        return format_count(record[column]) if record["unit"] == "count" else f"{record[column]:.4g}"

    cells = [[record["benchmark"], record["measure"], value(record, "ours"), record["reference"],
              value(record, "reference value"), record["unit"], f"{record['ratio']:.3g}",
              "-" if record["threads"] is None else str(record["threads"])] for record in records]
    widths = [max(len(line[k]) for line in [COLUMNS, *cells]) for k in range(len(COLUMNS))]
    numeric = {"ours", "reference value", "ratio", "threads"}
    return "\n".join(
        "  ".join(cell.rjust(width) if column in numeric else cell.ljust(width)
                  for column, cell, width in zip(COLUMNS, line, widths)).rstrip()
        for line in [COLUMNS, *cells]
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Before torch and NumPy load, so their OpenMP pools start at this size too.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    names = args.only or NAMES
    records, failed = collect(names, args.quick)
    print(f"hmrlab benchmarks{' (quick sizes: a smoke test)' if args.quick else ''}: torch {torch.__version__}, "
          f"CPU, timings on {args.threads} torch thread{'s' if args.threads > 1 else ''} of {os.cpu_count()} cores "
          f"(column 'threads'); ratio = ours / reference "
          f"(a time below 1: ours is faster; a count near 1: as the paper)")
    print(format_table(records))
    if args.csv:
        with args.csv.open("w", newline="") as file:
            writer = csv.DictWriter(file, COLUMNS)
            writer.writeheader()
            writer.writerows(records)
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (tracebacks above)")


if __name__ == "__main__":
    main()

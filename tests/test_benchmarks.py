"""The benchmark runner (``python -m benchmarks``) gives one table of every script's rows.

A smoke test of the table's shape on two cheap benchmarks at their quick sizes, not of the timings:
those are printed figures (`benchmarks/`), never asserted.
"""

from __future__ import annotations

import ast
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("bench_*.py"))
COLUMNS = ["benchmark", "measure", "ours", "reference", "reference value", "unit", "ratio", "threads"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_every_script_gives_rows_and_runs_alone(script: Path) -> None:
    tree = ast.parse(script.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "rows" in functions, f"{script.name} has no rows(quick) for the runner"
    assert [a.arg for a in functions["rows"].args.args] == ["quick"]
    assert "main" in functions and "__main__" in script.read_text(), f"{script.name} no longer runs alone"
    assert f"python benchmarks/{script.name}" in ast.get_docstring(tree), f"{script.name}'s docstring: how to run it"


def test_quick_run_prints_one_table(tmp_path: Path) -> None:
    table = tmp_path / "bench.csv"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "wavelets", "bitpack", "--csv", table],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "1 torch thread" in lines[0] and "ratio = ours / reference" in lines[0]
    assert lines[1].split()[:2] == ["benchmark", "measure"]

    with table.open() as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == COLUMNS
    assert len(lines) == 2 + len(rows), "one printed line per row, after the header and the column names"
    assert {row["benchmark"] for row in rows} == {"wavelets", "bitpack"}
    assert sum(row["benchmark"] == "wavelets" for row in rows) == 4  # dwt2/idwt2 x haar/db2, against pywt
    for row in rows:
        ours, reference, ratio = float(row["ours"]), float(row["reference value"]), float(row["ratio"])
        assert ours > 0 and reference > 0 and ratio == pytest.approx(ours / reference, rel=1e-6), row
        assert row["threads"] == ("1" if row["unit"] == "ms" else ""), row

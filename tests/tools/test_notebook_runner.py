"""The runner reports a failing notebook by name and cell, and injects QUICK."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools.notebook_runner import NotebookError, execute_notebook


def write_notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "hmrlab", "language": "python", "display_name": "hmrlab"}
    notebook.cells.append(nbformat.v4.new_code_cell("QUICK = False", metadata={"tags": ["parameters"]}))
    notebook.cells.extend(nbformat.v4.new_code_cell(s) for s in sources)
    nbformat.write(notebook, path)
    return path


def test_failure_names_notebook_and_cell(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "99_broken.ipynb", "x = 1", "raise ValueError('bad shape')")
    with pytest.raises(NotebookError) as info:
        execute_notebook(path, tmp_path / "out")
    message = str(info.value)
    assert "99_broken.ipynb" in message
    assert "ValueError: bad shape" in message
    assert "raise ValueError('bad shape')" in message


def test_quick_is_injected(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "98_quick.ipynb", "assert QUICK is True")
    run = execute_notebook(path, tmp_path / "out", quick=True)
    assert run.output.exists()
    with pytest.raises(NotebookError, match="AssertionError"):
        execute_notebook(path, tmp_path / "out", quick=False)

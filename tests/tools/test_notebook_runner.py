"""The runner reports a failing notebook by name and cell, and injects QUICK."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tools.notebook_runner import NotebookError, execute_notebook, notebook_parameters


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


def test_unknown_parameters_are_refused_with_the_notebooks_own(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "97_params.ipynb", "x = 1")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['SEDE'\]: its parameters cell defines \['QUICK'\]"):
        execute_notebook(path, tmp_path / "out", parameters={"SEDE": 3})
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].metadata["tags"] = []
    nbformat.write(notebook, path)
    with pytest.raises(ValueError, match=r"\['QUICK'\]: it has no cell tagged 'parameters'"):
        execute_notebook(path, tmp_path / "out")  # QUICK would be injected and silently ignored
    assert not (tmp_path / "out").exists()


def test_notebook_parameters_reads_the_assignments() -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(
        "%matplotlib inline\nQUICK = os.environ.get('Q') == '1'\nA, B = 1, 2\nC: int = 3\nif QUICK:\n    D = 4",
        metadata={"tags": ["parameters"]}))
    assert notebook_parameters(notebook) == ["QUICK", "A", "B", "C", "D"]


def test_missing_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no notebook at"):
        execute_notebook(tmp_path / "missing.ipynb", tmp_path / "out")
    (tmp_path / "config.yaml").write_text("epochs: 1\n")
    with pytest.raises(ValueError, match=r"is not a Jupyter notebook: give an \.ipynb file \(got a \.yaml file\)"):
        execute_notebook(tmp_path / "config.yaml", tmp_path / "out")
    (tmp_path / "broken.ipynb").write_text("epochs: 1\n")
    with pytest.raises(ValueError, match="is not a readable Jupyter notebook"):
        execute_notebook(tmp_path / "broken.ipynb", tmp_path / "out")

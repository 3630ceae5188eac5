"""Every notebook: named and shaped as the collection expects, small, with a working quick switch.

Each notebook is executed in quick mode by nbval (pytest collects notebooks/ with `--nbval-lax`:
every cell must run without error, and cells marked `# NBVAL_CHECK_OUTPUT` must reproduce their
committed output) and twice more by tests/test_coursework.py (the student edition, and nbgrader's
autograde of this teaching edition). papermill's runner is tested in tests/tools/test_notebook_runner.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.notebook_runner import NOTEBOOK_DIR, NOTEBOOK_NAME, list_notebooks

NOTEBOOKS = list_notebooks()
MAX_NOTEBOOK_BYTES = 1_000_000
# A line that only the full plotly.js bundle contains (its licence banner).
PLOTLY_BUNDLE_MARKER = "plotly.js v"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def split_at_parameters(notebook: dict) -> tuple[list[str], str | None]:
    """Sources of the code cells before the `parameters` cell, and that cell's source (or None)."""
    before = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return before, source
        before.append(source)
    return before, None


def test_collection_has_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_numbered(path: Path) -> None:
    assert NOTEBOOK_NAME.match(path.name), f"{path.name}: name notebooks NN_lowercase_words.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_switches_quick_mode(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup, source = split_at_parameters(load(path))
    assert source is not None, f"{path.name}: no code cell tagged 'parameters'"
    for quick_env, expected in ((None, False), ("1", True)):
        if quick_env is None:
            monkeypatch.delenv("HMRLAB_QUICK", raising=False)
        else:
            monkeypatch.setenv("HMRLAB_QUICK", quick_env)
        namespace: dict = {}
        for cell_source in (*setup, source):  # the imports the parameters cell relies on, then the cell
            exec(cell_source, namespace)
        assert namespace.get("QUICK") is expected, (
            f"{path.name}: the parameters cell must set QUICK = {expected} when HMRLAB_QUICK="
            f"{quick_env!r} (write QUICK = os.environ.get('HMRLAB_QUICK', '0') == '1')"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_light(path: Path) -> None:
    size = path.stat().st_size
    assert size <= MAX_NOTEBOOK_BYTES, f"{path.name} is {size / 1e6:.2f} MB; strip heavy outputs (cap 1 MB)"
    assert PLOTLY_BUNDLE_MARKER not in path.read_text(encoding="utf-8"), (
        f"{path.name} embeds the plotly.js bundle; call hmrlab.viz.configure_notebook_output() first"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_hmrlab_kernel(path: Path) -> None:
    kernel = load(path)["metadata"].get("kernelspec", {}).get("name")
    assert kernel == "hmrlab", f"{path.name}: kernelspec is {kernel!r}; select the 'hmrlab' kernel"

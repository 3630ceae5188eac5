"""Execute the collection's notebooks headless with papermill, in quick mode by default.

Used by `python3 tasks.py notebooks` (results land in `build/notebooks/`) and by the test suite,
so both report a failure the same way: the notebook, the failing cell and the error.

    python -m tools.notebook_runner --output-dir build/notebooks [00_tour.ipynb ...] [--full]
    python -m tools.notebook_runner --in-place 00_tour.ipynb     # refresh the committed outputs

`--in-place` is for authors: it runs the notebook itself in full mode with plotly figures stored as
JSON for JupyterLab (`plotly_mimetype`), and strips execution metadata so diffs stay small.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.ipynb$")
KERNEL_NAME = "hmrlab"
# Headless settings shared by the test suite and `tasks.py notebooks`: quick mode, plotly figures as
# their JSON mimetype (no plotly.js bundle; the plain "json" renderer makes nbclient crawl on figures
# shown inside ipywidgets' interact), pyvista offscreen with static images.
HEADLESS_ENV = {
    "HMRLAB_QUICK": "1",
    "PLOTLY_RENDERER": "plotly_mimetype",
    "PYVISTA_OFF_SCREEN": "true",
    "PYVISTA_JUPYTER_BACKEND": "static",
}


class NotebookError(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: source path, executed copy and wall time in seconds."""

    source: Path
    output: Path
    seconds: float


def apply_headless_env() -> None:
    """Set `HEADLESS_ENV` where unset, and make kernels resolve to this environment's `hmrlab`.

    Jupyter looks in the user's data directory before the environment's, so a kernel registered by
    another clone could shadow ours; `JUPYTER_PATH` is searched first.
    """
    for name, value in HEADLESS_ENV.items():
        os.environ.setdefault(name, value)
    kernels = Path(sys.prefix) / "share" / "jupyter"
    if (kernels / "kernels" / KERNEL_NAME).exists():
        os.environ["JUPYTER_PATH"] = str(kernels)


def _without_output_widget_emulation(client) -> None:
    """Let a widget's captured outputs (ipywidgets' `interact`) land in the cell itself.

    nbclient imitates JupyterLab's Output widget by sending every captured output back to the kernel,
    and now and then that exchange deadlocks: the kernel is idle, the client waits forever
    (jupyter/nbclient#312, nteract/papermill#723; seen here in several test runs). Headless
    runs need no live widget, so the outputs are simply kept as the cell's own.
    """
    client.widget_registry = {}


@contextlib.contextmanager
def _papermill_without_output_widget_emulation() -> Iterator[None]:
    """papermill builds its nbclient client internally; swap in one set up as above while it runs."""
    import papermill.engines
    from papermill.clientwrap import PapermillNotebookClient

    class HeadlessClient(PapermillNotebookClient):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _without_output_widget_emulation(self)

    original = papermill.engines.PapermillNotebookClient
    papermill.engines.PapermillNotebookClient = HeadlessClient
    try:
        yield
    finally:
        papermill.engines.PapermillNotebookClient = original


def read_notebook(path: Path):
    """The notebook at `path` (nbformat 4); FileNotFoundError if there is none, ValueError if the file
    is not a Jupyter notebook (another suffix, or not notebook JSON)."""
    import nbformat

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {str(path)!r}" + (" (it is a folder)" if path.is_dir() else ""))
    if path.suffix != ".ipynb":
        kind = f"a {path.suffix} file" if path.suffix else "a file without a suffix"
        raise ValueError(f"{str(path)!r} is not a Jupyter notebook: give an .ipynb file (got {kind})")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises NotJSONError, ValidationError, UnicodeDecodeError...
        raise ValueError(f"{str(path)!r} is not a readable Jupyter notebook ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200] if str(error) else ''})") from None


def notebook_parameters(notebook) -> list[str] | None:
    """The names assigned in the notebook's cell tagged ``parameters`` (papermill injects values in a
    cell after it), in order; None when no cell has that tag."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            # IPython magics and shell lines are no Python; they assign nothing papermill could override.
            source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                tree = ast.parse(source)
            except SyntaxError as error:
                raise ValueError(f"the notebook's parameters cell is not valid Python (line {error.lineno}: "
                                 f"{error.msg})") from None
            names: list[str] = []
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                    targets = [node.target]
                else:
                    continue
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name) and leaf.id not in names:
                            names.append(leaf.id)
            return names
    return None


def list_notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """Every `*.ipynb` directly under `directory`, in name order (checkpoints excluded)."""
    return sorted(p for p in directory.glob("*.ipynb") if p.is_file())


def execute_notebook(
    path: Path,
    output_dir: Path,
    *,
    quick: bool = True,
    parameters: dict | None = None,
    kernel_name: str = KERNEL_NAME,
) -> NotebookRun:
    """Run `path` in a fresh kernel with `QUICK` (and `parameters`) injected; write the result.

    The notebook runs with its own folder as working directory, as it does in JupyterLab. Raises
    `NotebookError` naming the notebook and the failing cell when a cell raises; before running,
    FileNotFoundError for a missing file and ValueError for a file that is not a notebook, or for
    parameters (QUICK included) that its ``parameters`` cell does not define: papermill would inject
    them and the notebook would silently ignore them.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).expanduser().resolve()
    known = notebook_parameters(read_notebook(path))
    given = {"QUICK": quick, **(parameters or {})}
    unknown = sorted(set(given) - set(known or []))
    if unknown:
        defined = f"its parameters cell defines {known}" if known is not None else "it has no cell tagged 'parameters'"
        raise ValueError(f"{path.name} has no parameter(s) {unknown}: {defined}. Check the spelling, or add them "
                         "to that cell")
    # papermill cannot infer a parameter written as an expression (QUICK = os.environ...) and says so
    # on every run; the injected value still takes effect (checked above), so keep only its errors.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / path.name
    started = time.perf_counter()
    try:
        with _papermill_without_output_widget_emulation():
            papermill.execute_notebook(
                str(path),
                str(output),
                parameters=given,
                kernel_name=kernel_name,
                cwd=str(path.parent),
                progress_bar=False,
            )
    except PapermillExecutionError as error:
        source = "\n    ".join(error.source.splitlines()[:8])
        raise NotebookError(
            f"{path.name}: code cell {error.exec_count} (cell index {error.cell_index}) raised "
            f"{error.ename}: {error.evalue}\n  cell source:\n    {source}\n"
            f"  executed copy with the full traceback: {output}"
        ) from None
    return NotebookRun(path, output, time.perf_counter() - started)


def refresh_outputs(path: Path, *, kernel_name: str = KERNEL_NAME) -> float:
    """Execute `path` in place in full mode and keep its outputs; return the wall time in seconds.

    Cell tags are kept (the `parameters` tag matters); per-cell execution timestamps are dropped.
    """
    import nbformat
    from nbclient import NotebookClient

    from hmrlab.io import atomic_write_text

    os.environ["HMRLAB_QUICK"] = "0"
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(notebook, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}})
    _without_output_widget_emulation(client)
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    atomic_write_text(path, nbformat.writes(notebook) + "\n")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--output-dir", type=Path, default=Path("build/notebooks"))
    parser.add_argument("--full", action="store_true", help="full mode (QUICK=False): the real experiments")
    parser.add_argument("--in-place", action="store_true", help="refresh the notebooks' own outputs (full mode)")
    args = parser.parse_args(argv)
    apply_headless_env()
    selected = [NOTEBOOK_DIR / name for name in args.names] or list_notebooks()
    missing = [p.name for p in selected if not p.exists()]
    if missing:
        parser.error(f"no such notebook(s) in {NOTEBOOK_DIR}: {', '.join(missing)}")
    if args.in_place:
        for path in selected:
            print(f"ok    {refresh_outputs(path):7.1f} s  {path.name} (outputs refreshed in place)", flush=True)
        return
    failures = 0
    for path in selected:
        try:
            run = execute_notebook(path, args.output_dir, quick=not args.full)
            print(f"ok    {run.seconds:7.1f} s  {path.name} -> {run.output}", flush=True)
        except (NotebookError, ValueError, FileNotFoundError) as error:
            failures += 1
            print(f"FAIL  {error}", flush=True)
    if failures:
        raise SystemExit(f"{failures} notebook(s) failed")


if __name__ == "__main__":
    main()

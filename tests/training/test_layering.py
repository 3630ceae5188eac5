"""The training package's imports point one way: ``cli -> runs -> tasks -> (task, config, loop)``.

A cycle shows only in some import orders, so each module is imported first in a fresh interpreter;
the layering itself is read from the sources.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hmrlab" / "training"
MODULES = [
    "hmrlab.training.tasks.lifting", "hmrlab.training.tasks.mesh", "hmrlab.training.tasks.video",
    "hmrlab.training.tasks.wholebody", "hmrlab.training.tasks", "hmrlab.training.task", "hmrlab.training.config",
    "hmrlab.training.loop", "hmrlab.training.runs", "hmrlab.training.cli", "hmrlab.training",
]


def _import_alone(module: str) -> str:
    """'' if ``module`` imports first in a fresh interpreter, else the end of its error."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
    return "" if done.returncode == 0 else done.stderr[-2000:]


def test_each_module_imports_first_in_a_fresh_interpreter():
    with ThreadPoolExecutor(max_workers=2) as pool:  # each start loads torch: two at a time
        errors = dict(zip(MODULES, pool.map(_import_alone, MODULES)))
    assert {module: error for module, error in errors.items() if error} == {}


def _hmrlab_imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The hmrlab modules (and names imported from them, as ``module.name``) a source file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("hmrlab")}


def _within(name: str, modules: tuple[str, ...]) -> bool:
    """Whether ``name`` is one of ``modules`` or inside one (``hmrlab.training.task.Task``)."""
    return any(name == module or name.startswith(module + ".") for module in modules)


def test_the_layers():
    # runs imports the task registry at module top; the registry imports only `Task`.
    assert "hmrlab.training.tasks" in _hmrlab_imports(PACKAGE / "runs.py", top_level_only=True)
    assert _hmrlab_imports(PACKAGE / "tasks" / "__init__.py") == {"hmrlab.training.task", "hmrlab.training.task.Task"}
    # The tasks use config, task and loop, and each other's modules (pose2d reads the mesh task's crops),
    # never runs, cli, the task registry or the package's own __init__.
    training_allowed = ("hmrlab.training.config", "hmrlab.training.task", "hmrlab.training.loop")
    siblings = tuple(f"hmrlab.training.tasks.{path.stem}" for path in (PACKAGE / "tasks").glob("*.py")
                     if path.name != "__init__.py")
    for path in sorted((PACKAGE / "tasks").glob("*.py")):
        if path.name != "__init__.py":
            # `from hmrlab.training.tasks import mesh` also names the package: its sibling is what counts
            training = {n for n in _hmrlab_imports(path) if n.startswith("hmrlab.training")} - {"hmrlab.training.tasks"}
            assert training and all(_within(n, training_allowed + siblings) for n in training), (path.name, training)
    # The bottom layer knows nothing above it.
    for name in ("config.py", "task.py", "loop.py"):
        above = {n for n in _hmrlab_imports(PACKAGE / name)
                 if _within(n, ("hmrlab.training.runs", "hmrlab.training.tasks", "hmrlab.training.cli"))
                 or n == "hmrlab.training"}
        assert not above, (name, above)

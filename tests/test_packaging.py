"""The wheel carries the package and its data, nothing else, and works without the checkout.

Builds the wheel from a copy of the source tree (so the checkout's `build/` is left alone) with this
environment's setuptools, offline (``--no-build-isolation``), then installs it into a bare folder and
loads the shipped body model from there with the checkout out of sight.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hmrlab import paths
from hmrlab.body import body_model_arrays

ROOT = Path(__file__).resolve().parents[1]
# What a checkout holds that a build must not see: environments, outputs, caches.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".ipynb_checkpoints",
)


def pip(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"pip {' '.join(map(str, args))} failed:\n{(done.stdout + done.stderr)[-3000:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the repository, as `pip wheel . --no-deps` builds it."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    pip("wheel", ".", "--no-deps", "--no-build-isolation", "--quiet", "-w", tmp / "dist", cwd=source)
    (built,) = (tmp / "dist").glob("hmrlab-*.whl")
    return built


def test_wheel_holds_the_package_and_its_data_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in paths.ASSETS.rglob("*") if p.is_file()}
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hmrlab").rglob("*.py")}
    assert shipped, f"no package data found under {paths.ASSETS}"
    assert not shipped - names, f"package data missing from the wheel: {sorted(shipped - names)[:10]}"
    assert not modules - names, f"modules missing from the wheel: {sorted(modules - names)[:10]}"
    outside = sorted(n for n in names if n.split("/")[0] in {"tools", "benchmarks", "tests", "course", "notebooks"})
    assert not outside, f"the wheel carries files from outside the package: {outside[:10]}"
    assert {n.split("/")[0] for n in names} == {"hmrlab", wheel.name.split("-py3")[0] + ".dist-info"}


def test_installed_wheel_loads_the_free_body_model(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip("install", "--no-deps", "--quiet", "--target", target, wheel, cwd=tmp_path)
    code = ("import hmrlab, hmrlab.body as b; print(hmrlab.__file__); "
            "print(b.load_body_model('smpl').faces.shape)")
    # From /, with only the installed copy on the path before site-packages (the venv's editable
    # install of the checkout comes after it), so the data must come from the wheel.
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(target)})
    assert done.returncode == 0, done.stderr[-3000:]
    location, faces = done.stdout.strip().splitlines()[-2:]
    assert Path(location).is_relative_to(target), f"hmrlab was imported from {location}, not from the wheel"
    assert faces == str(body_model_arrays("smpl")["f"].shape)

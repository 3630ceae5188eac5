"""Set up hmrlab and run its main jobs, with nothing but Python 3.10+ and pip.

    python3 tasks.py lab         # set up, then open the collection in JupyterLab
    python3 tasks.py test        # set up, then run the whole test suite (what CI runs)
    python3 tasks.py notebooks   # set up, then execute every notebook headless into build/notebooks/
    python3 tasks.py release     # set up, then build the student edition (nbgrader) into build/course/release/
    python3 tasks.py bench       # set up, then run every benchmark and print one table of ratios (ours / reference)

Setting up means: a virtual environment in `.venv/`, this package installed into it in editable
mode with its `lab`, `test` and `course` extras, and a Jupyter kernel named `hmrlab` registered inside it.
The setup is skipped when `pyproject.toml` has not changed since the last one, so re-running a
command is fast. Extra arguments after the command go to the tool it runs (JupyterLab, pytest,
papermill's notebook list, or the benchmark runner: `--quick`, `--only NAME`, `--threads N`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".hmrlab-setup"
BUILD = ROOT / "build"
KERNEL_NAME = "hmrlab"
# Debian's browser for tests/test_browser.py (Playwright drives it; it never downloads a browser).
BROWSER_PACKAGES = ("chromium",)


def venv_python() -> Path:
    """Path of the virtual environment's interpreter."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup_fingerprint() -> str:
    """What the setup depends on: the package metadata, this script and the Python version."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", Path(__file__).resolve()):
        digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def run(*args: str | Path) -> None:
    """Run a command from the repository root, stopping with its exit code if it fails."""
    printable = " ".join(str(a) for a in args)
    print(f"[hmrlab] $ {printable}", flush=True)
    completed = subprocess.run([str(a) for a in args], cwd=ROOT)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def setup() -> Path:
    """Create or refresh `.venv` when the fingerprint changed; return its interpreter."""
    if sys.version_info < (3, 10):
        sys.exit(f"hmrlab needs Python 3.10 or newer (3.11 recommended); this is {sys.version.split()[0]}.")
    fingerprint = setup_fingerprint()
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text() == fingerprint:
        return python
    started = time.perf_counter()
    if not python.exists():
        print(f"[hmrlab] creating the virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
        run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(python, "-m", "pip", "install", "--quiet", "--editable", ".[lab,test,course]")
    run(python, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL_NAME,
        "--display-name", "Python (hmrlab)")
    STAMP.write_text(fingerprint)
    print(f"[hmrlab] environment ready in {time.perf_counter() - started:.0f} s", flush=True)
    return python


def ensure_browser() -> None:
    """Install Debian's Chromium for the browser test when it is missing and this machine can.

    Uses apt-get as root, or through `sudo -n` (never a password prompt); anywhere else it says why
    not, and tests/test_browser.py skips with the same reason.
    """
    if shutil.which("chromium") or os.environ.get("HMRLAB_CHROMIUM"):
        return
    if not shutil.which("apt-get"):
        print("[hmrlab] no chromium and no apt-get: the JupyterLab browser test will be skipped "
              "(set HMRLAB_CHROMIUM to a Chromium binary to run it)", flush=True)
        return
    if os.geteuid() == 0:
        prefix = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        print("[hmrlab] chromium is missing and installing it needs root (sudo -n was refused): "
              "the JupyterLab browser test will be skipped; `sudo apt-get install chromium` enables it", flush=True)
        return
    print(f"[hmrlab] installing {' '.join(BROWSER_PACKAGES)} from Debian's packages for the browser test", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *BROWSER_PACKAGES]):
        done = subprocess.run([*prefix, *command], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"[hmrlab] `{' '.join(command)}` failed, so the browser test will be skipped:\n"
                  f"{(done.stdout + done.stderr)[-2000:]}", flush=True)
            return


def trust_notebooks(python: Path) -> None:
    """Mark the collection's own notebooks as trusted, so JupyterLab shows their saved widgets
    (sliders) before they are run; an untrusted notebook shows them as plain text."""
    run(python, "-m", "jupyter", "trust", *sorted((ROOT / "notebooks").glob("*.ipynb")))


def lab(extra: list[str]) -> None:
    """Open JupyterLab on the collection, starting at the tour notebook."""
    python = setup()
    trust_notebooks(python)
    # Containers and cloud machines often run as root, which JupyterLab refuses without this flag.
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    run(python, "-m", "jupyterlab", "notebooks/00_tour.ipynb", *as_root, *extra)


def test(extra: list[str]) -> None:
    """Run the unit tests, every notebook under papermill in quick mode, nbval's checked cells and
    the JupyterLab browser test."""
    python = setup()
    ensure_browser()
    run(python, "-m", "pytest", *extra)


def notebooks(extra: list[str]) -> None:
    """Execute every notebook (or those named) headless in quick mode into build/notebooks/."""
    python = setup()
    run(python, "-m", "tools.notebook_runner", "--output-dir", BUILD / "notebooks", *extra)


def release(extra: list[str]) -> None:
    """Build the student edition of every notebook (or those named) with nbgrader into build/course/release/."""
    python = setup()
    run(python, "course/release.py", "build", *extra)


def bench(extra: list[str]) -> None:
    """Run every benchmark (or `--only NAME ...`) on one torch thread unless told, and print one table:
    ours against the reference each names (`python -m benchmarks`, benchmarks/__main__.py)."""
    python = setup()
    run(python, "-m", "benchmarks", *extra)


COMMANDS = {
    "lab": lab, "test": test, "notebooks": notebooks, "release": release, "bench": bench,
    "setup": lambda extra: setup(),
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])

"""What a person sees: notebooks opened and run in JupyterLab inside headless Chromium.

papermill proves that the cells run; it cannot see "Error displaying widget", a blank plotly cell
after an extension mismatch, or a pyvista render that never became an image. This test starts
JupyterLab from this environment on loopback (a random free port, a token it makes up), drives
Debian's `chromium` with Playwright (no browser download), and for each notebook in
`BROWSER_NOTEBOOKS`:

1. opens it without running it: the committed outputs (plotly JSON, saved widget state) must render
   (the notebook is trusted first, as `python3 tasks.py lab` does);
2. runs every cell in quick mode (`HMRLAB_QUICK=1` reaches the kernel through the server's
   environment) and checks the page: no error or stderr output, every plotly figure drawn (SVG,
   plus a WebGL canvas for 3D scenes), every pyvista render shown as a non-blank image;
3. moves the first slider of an ipywidgets `interact` to its maximum (the End key) and checks that
   the interact's output (printed text, figure data) changes.

Screenshots land in `build/browser/`. Notebooks are copied to a temporary folder first, so
nothing JupyterLab saves touches `notebooks/`. Without Chromium the test is skipped, saying so;
`python3 tasks.py test` installs it from Debian's packages when it can.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tools.notebook_runner import HEADLESS_ENV, NOTEBOOK_DIR

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = ROOT / "build" / "browser"
PYVISTA_PROBE = "pyvista_probe.ipynb"
# One line per notebook of the collection; the probe (written by `write_pyvista_probe`) shows a
# pyvista plot through the Jupyter backend that `viz.configure_notebook_output` chooses.
BROWSER_NOTEBOOKS = [
    "00_tour.ipynb",
    "01_body_models.ipynb",
    PYVISTA_PROBE,
]
# Imports and calls that show plotly figures.
PLOTLY_CALLS = ("plotly", "viz.skeleton_figure(", "viz.mesh_figure(", "viz.animate_skeleton(")
# Calls that render with pyvista; the cells holding them must show at least one image in all.
PYVISTA_CALLS = ("render_mesh(", "render_person(", "pv.")
CHROMIUM_ARGS = [
    # Root in a container has no user namespaces for the sandbox; the machine has no GPU; and with no
    # network outside, Chromium's own background connections only fail and slow the start.
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SERVER_START_S, RUN_ALL_S, WIDGET_UPDATE_S = 60, 150, 30
# Settings a fresh JupyterLab would ask about or fetch from the internet.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def chromium_path() -> str | None:
    """`$HMRLAB_CHROMIUM` if set, else Debian's `chromium` on the PATH; None when it is not there."""
    path = os.environ.get("HMRLAB_CHROMIUM") or shutil.which("chromium")
    return path if path and Path(path).is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_pyvista_probe(path: Path) -> None:
    """A two-cell notebook: configure outputs as the collection does, then `pyvista.Sphere().plot()`.

    Written at test time rather than kept under tests/, where nbval would collect it.
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(cells=[
        new_code_cell("import pyvista as pv\nfrom hmrlab import viz\n\nviz.configure_notebook_output()"),
        new_code_cell("pv.Sphere().plot(window_size=(300, 200), color='lightgray')"),
    ])
    notebook.metadata["kernelspec"] = {"name": "hmrlab", "display_name": "Python (hmrlab)", "language": "python"}
    nbformat.write(notebook, path)


def notebook_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def expectations(path: Path) -> dict[str, bool]:
    """What the notebook's own source promises a person will see (so adding a notebook is one line)."""
    code = "\n".join("".join(c["source"]) for c in notebook_cells(path) if c["cell_type"] == "code")
    return {
        "slider": "interact(" in code,
        "plotly": any(call in code for call in PLOTLY_CALLS),
        "pyvista": any(call in code for call in PYVISTA_CALLS),
    }


def distinct_colours(image: Image.Image) -> int:
    """Number of different RGB colours in an image: 1 for a blank area."""
    return len(image.convert("RGB").getcolors(maxcolors=1 << 24))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on loopback serving copies of the notebooks.

    Yields the URL template of a notebook (``.format(name=...)``) and the folder of the copies.
    """
    if chromium_path() is None:
        pytest.skip("Chromium is not installed, so the JupyterLab browser test cannot run: install "
                    "Debian's package (apt-get install chromium; `python3 tasks.py test` does it as root "
                    "or with sudo -n) or set HMRLAB_CHROMIUM to a Chromium binary")
    home = tmp_path_factory.mktemp("lab")
    workspace = home / "workspace"
    (workspace / "notebooks").mkdir(parents=True)
    for name in BROWSER_NOTEBOOKS:
        if name == PYVISTA_PROBE:
            write_pyvista_probe(workspace / "notebooks" / name)
        else:
            shutil.copy(NOTEBOOK_DIR / name, workspace / "notebooks" / name)
    for name, values in LAB_SETTINGS.items():
        target = home / "settings" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = {
        **os.environ, **HEADLESS_ENV,
        # Keep the user's Jupyter configuration, trust database and runtime files out of the test.
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    # What `python3 tasks.py lab` does: trust the collection's notebooks so saved widgets show.
    subprocess.run([sys.executable, "-m", "jupyter", "trust", *sorted((workspace / "notebooks").glob("*.ipynb"))],
                   env=env, check=True, capture_output=True)
    port, token = free_port(), secrets.token_hex(16)
    log = (home / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workspace}",
         f"--LabApp.user_settings_dir={home / 'settings'}", f"--LabApp.workspaces_dir={home / 'workspaces'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(home / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.2)
        # `reset`: each page starts from an empty workspace, not with the previous page's tabs restored.
        yield f"{base}/lab/tree/notebooks/{{name}}?token={token}&reset", workspace / "notebooks"
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(lab: tuple[str, Path]):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_notebook(browser, url: str, path: Path):
    """A new page showing the notebook with all its cells attached and its kernel idle."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []  # uncaught page errors, reported with any failure
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(url.format(name=path.name))
    # JupyterLab attaches cells in batches while the notebook loads.
    page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n",
                           arg=len(notebook_cells(path)), timeout=SERVER_START_S * 1000)
    wait_for_idle_kernel(page, SERVER_START_S)
    return page


def wait_for_idle_kernel(page, seconds: float) -> None:
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=seconds * 1000)


def run_all_cells(page) -> None:
    """Run > Run All Cells, as a person would; wait until every code cell has its execution count,
    or until a cell's error has stopped the run (JupyterLab then leaves the cells after it unrun)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # Committed notebooks already show execution counts: clear them, so a count means "ran here".
    page.get_by_role("menuitem", name="Edit", exact=True).click()
    page.get_by_role("menuitem", name="Clear Outputs of All Cells", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                           ".every(p => p.textContent.trim() === '[ ]:')", timeout=SERVER_START_S * 1000)
    # A click landing while JupyterLab still sets the notebook up is ignored: click until cells queue.
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                                   ".some(p => p.textContent.trim() !== '[ ]:')", timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    try:
        page.wait_for_function("""() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            const stopped = document.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                && !prompts.some(p => p.includes('*'));
            return stopped || prompts.every(p => /\\[\\d+\\]/.test(p));
        }""", timeout=RUN_ALL_S * 1000)
    except PlaywrightTimeout:
        page.screenshot(path=SCREENSHOT_DIR / "run-all-timeout.png")
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
        pytest.fail(f"Run All did not finish within {RUN_ALL_S} s; prompts {prompts}; "
                    f"screenshot {SCREENSHOT_DIR / 'run-all-timeout.png'}")
    wait_for_idle_kernel(page, RUN_ALL_S)


# Everything a person would read as broken, and what each figure and image is made of.
PAGE_REPORT_JS = """() => {
  const text = sel => [...document.querySelectorAll(sel)].map(e => e.textContent.trim().slice(0, 400));
  const outputs = '.jp-Notebook .jp-OutputArea-output';
  return {
    errors: text(`${outputs}[data-mime-type="application/vnd.jupyter.stderr"]`),
    broken: [...document.querySelectorAll(outputs)].map(e => e.textContent)
      .filter(t => /Error displaying widget|No renderer could be found|Javascript Error/.test(t))
      .map(t => t.slice(0, 300)),
    plotly: [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')].map(e => ({
      svg: e.querySelectorAll('svg.main-svg').length,
      traces: e.querySelectorAll('.trace, .scatterlayer path, .imagelayer image').length,
      scenes: e.querySelectorAll('.gl-container > [id^="scene"]').length,
      canvases: [...e.querySelectorAll('.gl-container > [id^="scene"] canvas')]
        .filter(c => c.width > 0 && c.height > 0).length,
    })),
    sliders: document.querySelectorAll('.jp-Notebook .widget-slider').length,
    widgetsAsText: text(`${outputs}[data-mime-type="text/plain"]`).filter(t => t.startsWith('interactive(')),
  };
}"""


def page_report(page) -> dict:
    return page.evaluate(PAGE_REPORT_JS)


def check_rendered(report: dict, expect: dict[str, bool], where: str) -> None:
    assert not report["errors"], f"{where}: error or stderr output in the page: {report['errors']}"
    assert not report["broken"], f"{where}: an output failed to render: {report['broken']}"
    assert not report["widgetsAsText"], (
        f"{where}: widgets shown as plain text, not as widgets (untrusted notebook or missing "
        f"@jupyter-widgets/jupyterlab-manager): {report['widgetsAsText']}")
    if expect["plotly"]:
        assert report["plotly"], f"{where}: no plotly figure rendered (is the jupyterlab-plotly extension enabled?)"
    for figure in report["plotly"]:
        # 2D traces are SVG paths and images; a 3D scene's traces are drawn in its WebGL canvas.
        assert figure["svg"] and (figure["traces"] or figure["scenes"]), f"{where}: a plotly figure without content: {figure}"
        assert figure["canvases"] == figure["scenes"], f"{where}: a 3D plotly scene without its WebGL canvas: {figure}"
    if expect["slider"]:
        assert report["sliders"], f"{where}: the notebook calls interact() but no slider is on the page"


def pyvista_images(page, path: Path) -> list[Image.Image]:
    """The images shown by the cells that render with pyvista (<img> outputs and plotly image traces),
    decoded from the data URLs the page displays; each must be laid out at a visible size."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    images = []
    for index, cell in enumerate(notebook_cells(path)):
        if cell["cell_type"] != "code" or not any(call in "".join(cell["source"]) for call in PYVISTA_CALLS):
            continue
        # A plotly output also holds a hidden, empty <img> of its own: only its image traces count.
        shown = cells.nth(index).evaluate("""c => [...c.querySelectorAll('.jp-RenderedImage img, .imagelayer image')]
            .map(e => [e.getAttribute('src') || e.getAttribute('href'), e.getBoundingClientRect().width,
                       e.getBoundingClientRect().height])""")
        for url, width, height in shown:
            assert width > 0 and height > 0, f"{path.name}: cell {index} lays a pyvista image out at size 0"
            assert url.startswith("data:image/"), f"{path.name}: cell {index} shows an image from {url[:60]}"
            images.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    return images


def settled_box(locator) -> dict:
    """The element's box once it stops moving: off-screen cells (CSS content-visibility) take their
    real height only when scrolled to, which shifts everything below them for a moment."""
    locator.scroll_into_view_if_needed()
    box = None
    while box != (box := locator.bounding_box()):
        time.sleep(0.3)
    return box


# What an interact shows: its printed text, its figures' text and the data of its plotly figures.
INTERACT_OUTPUT_JS = """o => o.innerText + [...o.querySelectorAll('.js-plotly-plot')].map(g => JSON.stringify(g.data)).join()"""


def move_first_slider(page, path: Path) -> None:
    """Move the first interact slider to its maximum; the interact's output must change."""
    interact = page.locator(".jp-Notebook .widget-interact").first
    handle = interact.locator(".widget-slider .noUi-handle").first
    output = interact.locator(".widget-output")
    readout = interact.locator(".widget-slider .widget-readout").first
    before_value, before_output = readout.inner_text(), output.evaluate(INTERACT_OUTPUT_JS)
    # The keyboard, not a mouse drag: while JupyterLab lays out cells around it, the slider's position
    # on screen is not stable enough to aim at.
    handle.press("End")
    assert readout.inner_text() != before_value, f"{path.name}: End on the slider did not move it"
    deadline = time.monotonic() + WIDGET_UPDATE_S
    while output.evaluate(INTERACT_OUTPUT_JS) == before_output:
        assert time.monotonic() < deadline, (
            f"{path.name}: the slider moved ({before_value} -> {readout.inner_text()}) but the interact's "
            f"output did not change within {WIDGET_UPDATE_S} s: the widget is not live")
        time.sleep(0.5)
    wait_for_idle_kernel(page, WIDGET_UPDATE_S)
    settled_box(interact)
    interact.screenshot(path=SCREENSHOT_DIR / f"{path.stem}-slider.png")


def test_browser_notebooks_cover_widgets_plotly_and_pyvista(tmp_path: Path) -> None:
    probe = tmp_path / PYVISTA_PROBE
    write_pyvista_probe(probe)
    paths = [probe if name == PYVISTA_PROBE else NOTEBOOK_DIR / name for name in BROWSER_NOTEBOOKS]
    covered = {kind for path in paths for kind, shown in expectations(path).items() if shown}
    assert covered == {"slider", "plotly", "pyvista"}, f"the browser test checks only {covered}"


def test_lab_extensions_installed() -> None:
    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                             capture_output=True, text=True, check=True)
    text = listing.stdout + listing.stderr
    for extension in ("jupyterlab-plotly", "@jupyter-widgets/jupyterlab-manager"):
        line = next((l for l in text.splitlines() if extension in l), "")
        assert "enabled" in line and "OK" in line, (
            f"JupyterLab extension {extension} is missing or incompatible: {line or 'not listed'}; "
            f"reinstall with python3 tasks.py setup")


@pytest.mark.parametrize("name", BROWSER_NOTEBOOKS)
def test_notebook_in_browser(browser, lab: tuple[str, Path], name: str) -> None:
    """Committed outputs render on opening; after Run All everything renders and sliders are live."""
    url, folder = lab
    path = folder / name
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    expect = expectations(path)
    page = open_notebook(browser, url, path)
    try:
        committed = any(c.get("outputs") for c in notebook_cells(path))
        check_rendered(page_report(page), {k: v and committed for k, v in expect.items()}, f"{name} as committed")
        run_all_cells(page)
        report = page_report(page)
        page.screenshot(path=SCREENSHOT_DIR / f"{path.stem}-run.png")
        check_rendered(report, expect, f"{name} after Run All")
        if expect["pyvista"]:
            images = pyvista_images(page, path)
            assert images, f"{name}: the cells that render with pyvista show no image"
            for image in images:
                colours = distinct_colours(image)
                assert colours > 16, f"{name}: a pyvista render looks blank ({colours} colours)"
        if expect["slider"]:
            move_first_slider(page, path)
        assert not page.problems, f"{name}: uncaught errors in the page: {page.problems}"
    finally:
        page.close()

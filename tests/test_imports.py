"""Light imports: a mechanism or a model loads no renderer, no smplx and no pandas.

Each module is imported in a fresh interpreter and `sys.modules` is read afterwards, so what an
earlier import in this test process loaded cannot hide a heavy dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HEAVY = ("pyvista", "vtk", "vtkmodules", "smplx", "pandas", "plotly", "sklearn", "ipywidgets", "matplotlib")
LIGHT_MODULES = (
    "hmrlab.nn",
    "hmrlab.nn.attention",
    "hmrlab.nn.backbones",
    "hmrlab.nn.binary",
    "hmrlab.nn.bitpack",
    "hmrlab.nn.ik",
    "hmrlab.nn.keypoints",
    "hmrlab.nn.mgfenet",
    "hmrlab.nn.pyramid",
    "hmrlab.nn.rle",
    "hmrlab.nn.roi_align",
    "hmrlab.nn.simcc",
    "hmrlab.nn.wavelets",
    "hmrlab.nn.xnor",
    "hmrlab.models",
    "hmrlab.models.authors",
    "hmrlab.models.bidrn",
    "hmrlab.models.keypoint_hmr",
    "hmrlab.models.lifd_hmr",
    "hmrlab.models.mixste",
    "hmrlab.models.pmce",
    "hmrlab.models.rtpca",
    "hmrlab.body",
    "hmrlab.body.lbs",
    "hmrlab.body.wholebody",
    "hmrlab.geometry",
    "hmrlab.metrics",
    "hmrlab.complexity",
    "hmrlab.data.datasets",
    "hmrlab.apply",
)


def loaded_after_import(module: str) -> list[str]:
    """The top-level names of `HEAVY` that are in `sys.modules` after importing `module` alone."""
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_mechanisms_models_and_body_load_no_renderer_smplx_or_pandas():
    with ThreadPoolExecutor(max_workers=2) as pool:  # each start loads torch: two at a time
        loaded = dict(zip(LIGHT_MODULES, pool.map(loaded_after_import, LIGHT_MODULES)))
    assert {module: heavy for module, heavy in loaded.items() if heavy} == {}


def test_the_check_sees_a_heavy_import():
    # The renderer does load pyvista: the check above is not blind.
    assert "pyvista" in loaded_after_import("hmrlab.data.render")

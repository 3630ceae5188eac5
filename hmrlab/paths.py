"""Where the data that ships inside the package lies (package data: a wheel carries it too).

``ASSETS`` holds the free body models (`BODY_MODELS`), the small SynthHuman sets the quick mode of
every notebook and configuration uses (`SYNTH_H36M` in VideoPose3D's Human3.6M layout, `SYNTH_3DPW`
in 3DPW's layout) and tiny files in the real datasets' own formats (`FIXTURES`). Nothing here is
written to: generated data goes to folders the caller names.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
BODY_MODELS = ASSETS / "body_models"
SYNTH_H36M = ASSETS / "synth" / "h36m"
SYNTH_3DPW = ASSETS / "synth" / "3dpw"
FIXTURES = ASSETS / "fixtures"

__all__ = ["ASSETS", "BODY_MODELS", "FIXTURES", "SYNTH_3DPW", "SYNTH_H36M"]

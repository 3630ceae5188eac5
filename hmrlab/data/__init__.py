"""Data: synthetic humans written in real dataset formats, and the loaders that read both.

Loaders (the real datasets' own files, or SynthHuman's in the same layouts): `load_h36m`
(VideoPose3D's Human3.6M npz files), `load_3dpw` (3DPW sequence files), `load_coco_keypoints`
(COCO person keypoints). Generators: `hmrlab.data.synth` (Human3.6M-like lifting data) and
`hmrlab.data.synth_images` (3DPW-like rendered sequences, also as a COCO keypoints file); both at
once with ``python -m hmrlab.data --out DIR [--quick | --full]``.
"""

from hmrlab.data.coco import load_coco_keypoints
from hmrlab.data.h36m import load_h36m
from hmrlab.data.pw3d import load_3dpw

__all__ = ["load_3dpw", "load_coco_keypoints", "load_h36m"]

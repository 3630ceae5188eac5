"""Data: synthetic humans written in real dataset formats, and the loaders that read both.

Loaders (the real datasets' own files, or SynthHuman's in the same layouts): `load_h36m`
(VideoPose3D's Human3.6M npz files), `load_3dpw` (3DPW sequence files), `load_coco_keypoints`
(COCO person keypoints). Generators: `hmrlab.data.synth` (Human3.6M-like lifting data) and
`hmrlab.data.synth_images` (3DPW-like rendered sequences, also as a COCO keypoints file); both at
once with ``python -m hmrlab.data --out DIR [--quick | --full]``.

Your own data: `hmrlab.data.detections` reads detectors' outputs (COCO results, OpenPose, AlphaPose,
plain arrays), `hmrlab.data.keypoint_formats` converts between keypoint layouts (COCO-17, BODY_25,
Halpe-26, MediaPipe-33, Human3.6M-17, SMPL-24), and `hmrlab.data.amass` reads AMASS motions and
writes them as Human3.6M-format lifting data. Every Dataset is in `hmrlab.data.datasets`; crops are
made by `hmrlab.data.crops`, renders by `hmrlab.data.render`.
"""

from hmrlab.data.coco import load_coco_keypoints
from hmrlab.data.h36m import load_h36m
from hmrlab.data.pw3d import load_3dpw

__all__ = ["load_3dpw", "load_coco_keypoints", "load_h36m"]

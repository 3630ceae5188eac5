"""Applying the collection to your own video: detections -> 3D joints -> a body -> files you can use.

- `hmrlab.apply.lift`: a detector's 2D keypoints (read by `hmrlab.data.detections`, converted by
  `hmrlab.data.keypoint_formats`) lifted to Human3.6M's 3D joints by a trained run, with the root's path;
- `hmrlab.apply.fit`: the body model posed (and shaped) to those joints, analytical IK then a short
  optimisation with a pose prior, and the result in a y-up world;
- `hmrlab.apply.export`: per-frame OBJ meshes, an animated glTF (GLB), a BVH of the joint rotations and
  an MP4/GIF render.

``hmrlab lift KEYPOINTS --format coco17 --size W H --run RUN --out DIR`` does all of it from the shell.
Notebook 12 walks through each step.
"""

from hmrlab.apply.fit import BodyFit, WorldMotion, fit_body, fitting_body, to_world
from hmrlab.apply.lift import LiftResult, lift_detections, lift_keypoints, root_trajectory, to_h36m

__all__ = [
    "BodyFit", "LiftResult", "WorldMotion", "fit_body", "fitting_body", "lift_detections", "lift_keypoints",
    "root_trajectory", "to_h36m", "to_world",
]

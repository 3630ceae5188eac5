"""The problems `hmrlab.training` can train and evaluate, one module each.

- ``lifting`` (`hmrlab.training.tasks.lifting`): 2D-to-3D pose lifting on Human3.6M-format files (MixSTE, RTPCA).
- ``mesh`` (`hmrlab.training.tasks.mesh`): single-image mesh recovery on SynthCrops or 3DPW-format files (the keypoints-guided HMR).
- ``pose2d`` (`hmrlab.training.tasks.pose2d`): 2D keypoints of the mesh task's crops, the backbone's pretraining.
- ``video`` (`hmrlab.training.tasks.video`): video mesh recovery on SynthClips or 3DPW-format clips (LIFD-HMR).
- ``wholebody`` (`hmrlab.training.tasks.wholebody`): SMPL-X whole-body recovery on synthetic images (BiDRN).

Every task is also scored on the common 3DPW-format test split (`hmrlab.evaluation.pw3d_split`).
"""

from __future__ import annotations

import importlib

from hmrlab.training.task import Task

TASKS = {
    "lifting": "hmrlab.training.tasks.lifting",
    "mesh": "hmrlab.training.tasks.mesh",
    "pose2d": "hmrlab.training.tasks.pose2d",
    "video": "hmrlab.training.tasks.video",
    "wholebody": "hmrlab.training.tasks.wholebody",
}


def get(name: str) -> Task:
    """The `Task` called ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK

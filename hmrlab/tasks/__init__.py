"""The problems `hmrlab.experiment` can train and evaluate, one module each.

- ``lifting`` (`hmrlab.tasks.lifting`): 2D-to-3D pose lifting on Human3.6M-format files (MixSTE, RTPCA).
- ``mesh`` (`hmrlab.tasks.mesh`): single-image mesh recovery on 3DPW-format files (the keypoints-guided HMR).
- ``video`` (`hmrlab.tasks.video`): video mesh recovery on 3DPW-format clips (LIFD-HMR).
- ``wholebody`` (`hmrlab.tasks.wholebody`): SMPL-X whole-body recovery on synthetic images (BiDRN).

Every task is also scored on the common 3DPW-format test split (`hmrlab.tasks.pw3d_split`).
"""

from __future__ import annotations

import importlib

from hmrlab.experiment import Task

TASKS = {
    "lifting": "hmrlab.tasks.lifting",
    "mesh": "hmrlab.tasks.mesh",
    "video": "hmrlab.tasks.video",
    "wholebody": "hmrlab.tasks.wholebody",
}


def get(name: str) -> Task:
    """The `Task` called ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK

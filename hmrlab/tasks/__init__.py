"""The problems `hmrlab.experiment` can train and evaluate, one module each.

- ``lifting`` (`hmrlab.tasks.lifting`): 2D-to-3D pose lifting on Human3.6M-format files (MixSTE, RTPCA).
"""

from __future__ import annotations

import importlib

from hmrlab.experiment import Task

TASKS = {"lifting": "hmrlab.tasks.lifting"}


def get(name: str) -> Task:
    """The `Task` called ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK

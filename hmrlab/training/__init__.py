"""Training: the loop (`loop.fit`), a run's configuration (`config`), the problems (`tasks`), whole
runs from a YAML file (`runs`) and the ``hmrlab`` command (`cli`).

    from hmrlab import training
    history = training.train(training.load_config("configs/lifting_mixste.yaml", quick=True))
    table = training.evaluate(history_run_dir)

Dependencies point one way: ``cli -> runs -> tasks -> (task, config, loop)``; the tasks use
`hmrlab.models`, `hmrlab.data` and `hmrlab.evaluation`.
"""

from hmrlab.training.config import SCHEDULES, RunConfig, load_config
from hmrlab.training.runs import (
    benchmark,
    build_model,
    evaluate,
    get_task,
    learning_rate_factor,
    load_run,
    train,
)
from hmrlab.training.task import Task

__all__ = [
    "SCHEDULES", "RunConfig", "Task", "benchmark", "build_model", "evaluate", "get_task", "learning_rate_factor",
    "load_config", "load_run", "train",
]

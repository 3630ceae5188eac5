"""`Task`: what a problem needs to be trained and evaluated by `hmrlab.training.runs`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from hmrlab.training.config import RunConfig
from hmrlab.training.loop import LossFn, MetricFn


@dataclass(frozen=True)
class Task:
    """What a problem needs to be trained and evaluated by `train` and `evaluate`.

    ``models`` maps the names a configuration may give to constructors; ``build_datasets(config)``
    returns (train, validation) datasets whose items the default collation batches;
    ``evaluate(model, config)`` runs the benchmark protocol on the test split and returns its table;
    ``best_metric`` is the logged validation column that selects the best epoch (lower is better);
    ``data`` is the frozen dataclass of its ``data`` settings, which
    `hmrlab.training.config.data_settings` reads ``config.data`` into (each field documents its key).

    For the collection's common benchmark (notebook 10, `benchmark`): ``benchmark(model, config,
    folder)`` scores the model on the test sequences of a 3DPW-format folder
    (`hmrlab.evaluation.pw3d_split`) and returns 3DPW's table; ``example_inputs(config)`` gives the
    positional inputs of ``model(...)`` for one sample (to count parameters and MACs and time it);
    ``examples(model, config, count)`` gives ``count`` test samples to look at: ``images``
    (n, 3, H, W) in [0, 1] and ``pred_vertices`` / ``target_vertices`` (n, V, 3) metres (mesh tasks).
    ``initialise(model, config)`` prepares a new run's model before its first step (not on resume),
    e.g. loads pretrained weights. ``floor(config, folder=None)`` scores the constant prediction (the mean training body): the
    table of ``benchmark`` on ``folder``'s test split, or with ``folder=None`` of the validation set.
    """

    models: Mapping[str, Callable[..., nn.Module]]
    build_datasets: Callable[[RunConfig], tuple[Dataset, Dataset]]
    loss: LossFn
    metrics: Mapping[str, MetricFn]
    evaluate: Callable[[nn.Module, RunConfig], pd.DataFrame]
    best_metric: str
    default_model_args: Callable[[RunConfig], dict[str, Any]] = lambda config: {}
    data: type | None = None
    benchmark: Callable[[nn.Module, RunConfig, Path], pd.DataFrame] | None = None
    example_inputs: Callable[[RunConfig], tuple[torch.Tensor, ...]] | None = None
    examples: Callable[[nn.Module, RunConfig, int], dict[str, torch.Tensor]] | None = None
    floor: Callable[..., pd.DataFrame] | None = None
    initialise: Callable[[nn.Module, RunConfig], None] | None = None

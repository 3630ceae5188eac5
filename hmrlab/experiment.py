"""Training runs described by a configuration file: what `hmrlab train CONFIG` and `hmrlab eval RUN` do.

A run is a folder (``out_dir``) holding ``config.yaml`` (the full configuration, defaults filled
in), ``checkpoint.pt`` (every epoch; resumable), ``checkpoint.best.pt`` (the best epoch by the
task's validation metric), ``history.csv`` and TensorBoard events, and after evaluation
``evaluation.csv`` (the benchmark protocol's table). A task (`hmrlab.tasks`) says how to build the
model, the data, the loss and the evaluation; this module does the rest the same way for every task,
in one process or under ``torchrun`` (`hmrlab.train.fit` handles DistributedDataParallel)::

    hmrlab train configs/lifting_mixste.yaml --set epochs=5 --set model_args.dim=64
    hmrlab train configs/lifting_mixste.yaml --quick          # the config's few-step version
    torchrun --nproc_per_node=2 -m hmrlab train configs/lifting_mixste.yaml
    hmrlab eval build/runs/lifting_mixste

Notebooks call the same functions: ``history = experiment.train(experiment.load_config(path))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from torch import nn
from torch.utils.data import Dataset

from hmrlab.io import atomic_write_text
from hmrlab.runtime import get_device, seed_everything
from hmrlab.train import (
    History,
    LossFn,
    MetricFn,
    best_checkpoint_path,
    fit,
    init_distributed,
    load_checkpoint,
    sharded_loader,
)

SCHEDULES = ("constant", "cosine", "exponential")


@dataclass
class RunConfig:
    """One training run. ``model_args`` go to the task's model constructor; ``data`` to its datasets
    (paths, frames, subjects: see the task's module). ``batch_size`` is per process; ``lr`` is the
    peak learning rate of AdamW, reached after ``warmup_steps`` linear steps, then held
    (``"constant"``), annealed to zero over the run (``"cosine"``) or multiplied by ``lr_decay``
    each epoch (``"exponential"``, MixSTE's schedule)."""

    task: str = "lifting"
    model: str = "MixSTE"
    model_args: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    out_dir: str = "build/runs/run"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_steps: int = 0
    lr_decay: float = 0.99
    grad_clip: float | None = None
    ema_decay: float | None = None
    amp: bool | None = None
    seed: int = 0
    workers: int = 0
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("model_args", "data"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping (YAML: key: value lines); got {getattr(self, name)!r}")

    def to_yaml(self) -> str:
        """The configuration as YAML, every field written out (what ``config.yaml`` of a run holds)."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[key]`` for a dotted key (``"model_args.dim"`` sets ``config["model_args"]["dim"]``)."""
    *sections, leaf = key.strip().split(".")
    target = config
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise ValueError(f"{key!r}: {section!r} is not a mapping in the configuration")
    target[leaf] = value


def _parse_assignment(assignment: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value parsed as YAML)."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"an override must look like key=value or model_args.dim=64; got {assignment!r}")
    return key, yaml.safe_load(text)


def load_config(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (), *, quick: bool = False
) -> RunConfig:
    """A `RunConfig` from a YAML file (or a dict), with ``key=value`` overrides applied in order.

    A configuration may hold a ``quick`` mapping of dotted keys to values (``data.frames: 9``): the
    few-step version of the run that tests, CI and the notebooks' quick mode use. With
    ``quick=True`` those settings are applied before `overrides`; the section is never part of the run.

    Raises FileNotFoundError for a missing file and ValueError naming unknown keys (with the known
    ones) or bad values.
    """
    if isinstance(source, Mapping):
        raw = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no configuration file at {str(path)!r}; see configs/ for examples")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{str(path)!r} must hold a YAML mapping of settings; got {type(raw).__name__}")
    quick_settings = raw.pop("quick", None) or {}
    if not isinstance(quick_settings, dict):
        raise ValueError(f"'quick' must map settings to values (e.g. epochs: 1); got {quick_settings!r}")
    if quick:
        for key, value in quick_settings.items():
            _set_dotted(raw, key, value)
    for assignment in overrides:
        _set_dotted(raw, *_parse_assignment(assignment))
    known = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"unknown configuration keys {unknown}; the known keys are {known}")
    return RunConfig(**raw)


@dataclass(frozen=True)
class Task:
    """What a problem needs to be trained and evaluated by `train` and `evaluate`.

    ``models`` maps the names a configuration may give to constructors; ``build_datasets(config)``
    returns (train, validation) datasets whose items the default collation batches;
    ``evaluate(model, config)`` runs the benchmark protocol on the test split and returns its table;
    ``best_metric`` is the logged validation column that selects the best epoch (lower is better).

    For the collection's common benchmark (notebook 10, `benchmark`): ``benchmark(model, config,
    folder)`` scores the model on the test sequences of a 3DPW-format folder
    (`hmrlab.tasks.pw3d_split`) and returns 3DPW's table; ``example_inputs(config)`` gives the
    positional inputs of ``model(...)`` for one sample (to count parameters and MACs and time it);
    ``examples(model, config, count)`` gives ``count`` test samples to look at: ``images``
    (n, 3, H, W) in [0, 1] and ``pred_vertices`` / ``target_vertices`` (n, V, 3) metres (mesh tasks).
    """

    models: Mapping[str, Callable[..., nn.Module]]
    build_datasets: Callable[[RunConfig], tuple[Dataset, Dataset]]
    loss: LossFn
    metrics: Mapping[str, MetricFn]
    evaluate: Callable[[nn.Module, RunConfig], pd.DataFrame]
    best_metric: str
    default_model_args: Callable[[RunConfig], dict[str, Any]] = lambda config: {}
    benchmark: Callable[[nn.Module, RunConfig, Path], pd.DataFrame] | None = None
    example_inputs: Callable[[RunConfig], tuple[torch.Tensor, ...]] | None = None
    examples: Callable[[nn.Module, RunConfig, int], dict[str, torch.Tensor]] | None = None


def get_task(name: str) -> Task:
    """The task called ``name`` (one module of `hmrlab.tasks` each)."""
    from hmrlab import tasks

    return tasks.get(name)


def build_model(config: RunConfig) -> nn.Module:
    """The configured model: the task's defaults for this configuration, then ``model_args``."""
    task = get_task(config.task)
    if config.model not in task.models:
        raise ValueError(f"task {config.task!r} has no model {config.model!r}; choose one of {sorted(task.models)}")
    return task.models[config.model](**{**task.default_model_args(config), **config.model_args})


def learning_rate_factor(config: RunConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of ``config.lr`` at each optimizer step (for `torch.optim.lr_scheduler.LambdaLR`)."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))
        if config.schedule == "exponential":
            return config.lr_decay ** (step // steps_per_epoch)
        return 1.0

    return factor


def train(config: RunConfig) -> History:
    """Train as configured (resuming ``out_dir/checkpoint.pt`` if present); return the history.

    Under torchrun each process calls this; process 0 writes the files.
    """
    rank, _ = init_distributed()
    task = get_task(config.task)
    out = Path(config.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", config.to_yaml())
    seed_everything(config.seed)  # the same initial weights in every process
    model = build_model(config)
    train_set, val_set = task.build_datasets(config)
    loader_args = {"num_workers": config.workers}
    train_loader = sharded_loader(train_set, config.batch_size, seed=config.seed, **loader_args)
    val_loader = sharded_loader(val_set, config.batch_size, shuffle=False, **loader_args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(config, len(train_loader)))
    return fit(
        model, task.loss, train_loader, epochs=config.epochs, optimizer=optimizer, val_data=val_loader,
        val_metrics=task.metrics, checkpoint=out / "checkpoint.pt", seed=config.seed, device=config.device,
        progress=config.progress, grad_clip=config.grad_clip, scheduler=scheduler, ema_decay=config.ema_decay,
        amp=config.amp, log_dir=out, best_metric=task.best_metric,
    )


def load_run(run_dir: str | Path, which: str = "best") -> tuple[RunConfig, nn.Module]:
    """The configuration and trained model of a run, in eval mode on the configured device.

    ``which`` is ``"best"`` (the best validation epoch) or ``"last"``; with EMA the averaged weights
    are loaded, as in training's validation.
    """
    run_dir = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a training run (no config.yaml); train it with hmrlab train")
    config = load_config(config_file)
    model = build_model(config)
    checkpoint = run_dir / "checkpoint.pt"
    load_checkpoint(best_checkpoint_path(checkpoint) if which == "best" else checkpoint, model,
                    ema=config.ema_decay is not None)
    return config, model.to(get_device(config.device)).eval()


def evaluate(run_dir: str | Path, *, which: str = "best") -> pd.DataFrame:
    """The benchmark table of a trained run on its task's test split, also written to ``evaluation.csv``."""
    config, model = load_run(run_dir, which)
    with torch.no_grad():
        table = get_task(config.task).evaluate(model, config)
    atomic_write_text(Path(run_dir) / "evaluation.csv", table.to_csv())
    return table


def benchmark(run_dir: str | Path, folder: str | Path, *, which: str = "best") -> pd.DataFrame:
    """3DPW's table of a trained run on the test sequences of the 3DPW-format ``folder`` (the common
    split of notebook 10, `hmrlab.tasks.pw3d_split`), also written to ``benchmark.csv``."""
    config, model = load_run(run_dir, which)
    task = get_task(config.task)
    if task.benchmark is None:
        raise ValueError(f"task {config.task!r} has no benchmark on 3DPW-format data")
    with torch.no_grad():
        table = task.benchmark(model, config, Path(folder))
    atomic_write_text(Path(run_dir) / "benchmark.csv", table.to_csv())
    return table

"""Training runs described by a configuration file: what `hmrlab train CONFIG` and `hmrlab eval RUN` do.

A run is a folder (``out_dir``) holding ``config.yaml`` (the full configuration, defaults filled
in), ``checkpoint.pt`` (every epoch; resumable), ``checkpoint.best.pt`` (the best epoch by the
task's validation metric), ``history.csv`` and TensorBoard events, and after evaluation
``evaluation.csv`` (the benchmark protocol's table). A task (`hmrlab.training.tasks`) says how to build the
model, the data, the loss and the evaluation; this module does the rest the same way for every task,
in one process or under ``torchrun`` (`hmrlab.training.loop.fit` handles DistributedDataParallel)::

    hmrlab train configs/lifting_mixste.yaml --set epochs=5 --set model_args.dim=64
    hmrlab train configs/lifting_mixste.yaml --quick          # the config's few-step version
    torchrun --nproc_per_node=2 -m hmrlab train configs/lifting_mixste.yaml
    hmrlab eval build/runs/lifting_mixste

Notebooks call the same functions: ``history = training.train(training.load_config(path))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hmrlab.io import atomic_write_text
from hmrlab.runtime import get_device, seed_everything
from hmrlab.training import tasks
from hmrlab.training.config import RunConfig, data_settings, load_config
from hmrlab.training.loop import (
    History,
    best_checkpoint_path,
    fit,
    init_distributed,
    load_checkpoint,
    sharded_loader,
)
from hmrlab.training.task import Task


def get_task(name: str) -> Task:
    """The task called ``name`` (one module of `hmrlab.training.tasks` each)."""
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
    if task.data is not None:  # a bad data key fails here, before the run folder is written
        data_settings(task.data, config, config.task)
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
    split of notebook 10, `hmrlab.evaluation.pw3d_split`), also written to ``benchmark.csv``."""
    config, model = load_run(run_dir, which)
    task = get_task(config.task)
    if task.benchmark is None:
        raise ValueError(f"task {config.task!r} has no benchmark on 3DPW-format data")
    with torch.no_grad():
        table = task.benchmark(model, config, Path(folder))
    atomic_write_text(Path(run_dir) / "benchmark.csv", table.to_csv())
    return table

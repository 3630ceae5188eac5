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

A folder is recognised as a run by its ``config.yaml``, whose first line is `RUN_HEADER` (written by
`train`), or, for runs of earlier versions, by a ``checkpoint.pt`` that `read_checkpoint` accepts.
`train` refuses any other non-empty folder (it would overwrite the user's own files), and checks
everything before it writes anything: the configuration, the model and its ``model_args``, the data,
that the folder is writable, and, for a run to resume, that its checkpoint is sound and that only
`RESUMABLE_FIELDS` differ from its ``config.yaml`` (``epochs`` no fewer than those trained), naming
each other setting that changed with both values. ``config.yaml`` is rewritten only then, when
training goes ahead with it.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hmrlab.io import atomic_write_text
from hmrlab.runtime import get_device, seed_everything
from hmrlab.training import tasks
from hmrlab.training.config import RESUMABLE_FIELDS, RunConfig, data_settings, load_config
from hmrlab.training.loop import (
    History,
    best_checkpoint_path,
    check_run_files,
    fit,
    init_distributed,
    load_checkpoint,
    read_checkpoint,
    sharded_loader,
)
from hmrlab.training.task import Task


def get_task(name: str) -> Task:
    """The task called ``name`` (one module of `hmrlab.training.tasks` each)."""
    return tasks.get(name)


RUN_HEADER = "# hmrlab run, written by hmrlab train (on resume only epochs, progress, workers, device may change)\n"
"""The first line of a run's ``config.yaml``: what marks a folder as an hmrlab run."""


def _accepted_arguments(constructor: Callable[..., nn.Module]) -> list[str] | None:
    """The keyword arguments ``constructor`` takes, or None when it takes any (``**kwargs``)."""
    try:
        parameters = inspect.signature(constructor).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                       inspect.Parameter.KEYWORD_ONLY)]


def build_model(config: RunConfig) -> nn.Module:
    """The configured model: the task's defaults for this configuration, then ``model_args``.

    Raises ValueError for an unknown model, a ``model_args`` key the constructor does not take
    (naming the arguments it takes), or values it cannot be built from (the constructor's TypeError
    or RuntimeError, with the arguments given).
    """
    task = get_task(config.task)
    if config.model not in task.models:
        raise ValueError(f"task {config.task!r} has no model {config.model!r}; choose one of {sorted(task.models)}")
    constructor = task.models[config.model]
    accepted = _accepted_arguments(constructor)
    unknown = [key for key in config.model_args if accepted is not None and key not in accepted]
    if unknown:
        named = ", ".join(f"model_args.{key}" for key in unknown)
        raise ValueError(f"{named}: not {'an argument' if len(unknown) == 1 else 'arguments'} of {config.model}; "
                         f"it takes {accepted}")
    arguments = {**task.default_model_args(config), **config.model_args}
    try:
        return constructor(**arguments)
    except (TypeError, RuntimeError) as error:
        raise ValueError(f"cannot build {config.model} from model_args {config.model_args} (with the task's "
                         f"defaults: {arguments}): {type(error).__name__}: {error}. Check each value's type and "
                         f"range in {config.model}'s docstring") from error


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


def _run_config(out: Path) -> tuple[bool, RunConfig | None]:
    """Whether ``out`` can hold this run (a missing or empty folder, or an hmrlab run) and, for a run,
    its saved configuration (None when a run of an earlier version lost its config.yaml)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file; give a folder for the run")
    if not out.exists() or not any(out.iterdir()):
        return False, None
    config_file, checkpoint = out / "config.yaml", out / "checkpoint.pt"
    try:
        marked = config_file.is_file() and config_file.open(encoding="utf-8").readline() == RUN_HEADER
    except (OSError, UnicodeDecodeError):
        marked = False
    if not marked:
        try:
            read_checkpoint(checkpoint, mmap=True)  # a run of an earlier version: no header yet
        except (FileNotFoundError, ValueError):
            names = sorted(p.name for p in out.iterdir())
            raise ValueError(
                f"out_dir {str(out)!r} is not empty and is not an hmrlab run (its config.yaml was not written by "
                f"hmrlab train, and it has no hmrlab checkpoint.pt); it holds {names[:6]}"
                f"{' ...' if len(names) > 6 else ''}. Choose another out_dir (--set out_dir=...), or empty it"
            ) from None
    if not config_file.is_file():
        return True, None
    try:
        return True, load_config(config_file)
    except ValueError as error:
        raise ValueError(f"the run in {str(out)!r} has a damaged config.yaml ({error}); restore it, or train a "
                         "new run in another out_dir") from None


def check_resume(saved: RunConfig | None, config: RunConfig, epochs_done: int, out: Path) -> None:
    """ValueError unless ``config`` may resume the run configured as ``saved`` after ``epochs_done``
    epochs: only `RESUMABLE_FIELDS` may differ, and ``epochs`` must be at least ``epochs_done``."""
    changed = [] if saved is None else [
        f"{f.name}: {getattr(saved, f.name)!r} in the run, {getattr(config, f.name)!r} now"
        for f in dataclasses.fields(RunConfig)
        if f.name not in RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if changed:
        raise ValueError(
            f"the run in {str(out)!r} was trained with other settings ({'; '.join(changed)}). Resuming would train "
            f"something else than its config.yaml says, so it is refused: set them back, or train a new run with "
            f"another out_dir. Only {list(RESUMABLE_FIELDS)} may change when resuming."
        )
    if config.epochs < epochs_done:
        raise ValueError(f"epochs is {config.epochs}, but the run in {str(out)!r} has already trained {epochs_done} "
                         f"epochs; set epochs to {epochs_done} or more")


def train(config: RunConfig) -> History:
    """Train as configured (resuming ``out_dir/checkpoint.pt`` if present); return the history.

    Everything is checked before anything is written (module docstring): an ``out_dir`` that is
    neither empty nor an hmrlab run, an unwritable folder, a damaged checkpoint, or a change to a
    setting that cannot change on resume raise ValueError and leave the folder as it was. Under
    torchrun each process calls this; process 0 writes the files.
    """
    rank, _ = init_distributed()
    task = get_task(config.task)
    if task.data is not None:
        data_settings(task.data, config, config.task)
    out = Path(config.out_dir).expanduser()
    is_run, saved = _run_config(out)
    checkpoint = out / "checkpoint.pt"
    resuming = is_run and checkpoint.exists()
    if resuming:  # the settings first: their names say more than the model's tensors
        check_resume(saved, config, read_checkpoint(checkpoint, mmap=True)["epoch"], out)
    seed_everything(config.seed)  # the same initial weights in every process
    model = build_model(config)
    train_set, val_set = task.build_datasets(config)
    loader_args = {"num_workers": config.workers}
    train_loader = sharded_loader(train_set, config.batch_size, seed=config.seed, **loader_args)
    val_loader = sharded_loader(val_set, config.batch_size, shuffle=False, **loader_args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(config, len(train_loader)))
    if resuming:
        read_checkpoint(checkpoint, model, mmap=True)  # written for this model (a run without its config.yaml)
    elif task.initialise is not None:
        task.initialise(model, config)  # e.g. pretrained weights, before the first step of a new run
    if rank == 0:
        check_run_files(checkpoint, model, best=True, log_dir=out)
        atomic_write_text(out / "config.yaml", RUN_HEADER + config.to_yaml())
    return fit(
        model, task.loss, train_loader, epochs=config.epochs, optimizer=optimizer, val_data=val_loader,
        val_metrics=task.metrics, checkpoint=checkpoint, seed=config.seed, device=config.device,
        progress=config.progress, grad_clip=config.grad_clip, scheduler=scheduler, ema_decay=config.ema_decay,
        amp=config.amp, log_dir=out, best_metric=task.best_metric,
    )


def load_run(run_dir: str | Path, which: str = "best") -> tuple[RunConfig, nn.Module]:
    """The configuration and trained model of a run, in eval mode on the configured device.

    ``which`` is ``"best"`` (the best validation epoch) or ``"last"``; with EMA the averaged weights
    are loaded, as in training's validation.
    """
    run_dir = Path(run_dir).expanduser()
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a training run (no config.yaml); train it with hmrlab train")
    config = load_config(config_file)
    model = build_model(config)
    checkpoint = run_dir / "checkpoint.pt"
    chosen = best_checkpoint_path(checkpoint) if which == "best" else checkpoint
    if not chosen.is_file():
        other = "--which last (the last epoch)" if which == "best" and checkpoint.is_file() else "hmrlab train first"
        raise FileNotFoundError(f"the run in {str(run_dir)!r} has no {chosen.name} (no epoch saved yet?); use {other}")
    load_checkpoint(chosen, model, ema=config.ema_decay is not None)
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

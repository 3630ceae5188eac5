"""The training loop of the collection: `fit` a model, log each epoch, checkpoint, resume, scale out.

Everything a notebook or a long run needs to train, stop (the stop button, Ctrl-C, a time limit),
and pick up where it stopped with exactly the same result:

* `fit` runs epochs of ``loss_fn(model, batch)`` -> backward -> optimizer step (with optional gradient
  clipping, a learning-rate ``scheduler`` stepped every step, an exponential moving average of the
  weights, and mixed precision on GPUs), then optional validation, one row per epoch in a `History`;
* with ``checkpoint=path`` it saves, after every complete epoch and atomically (`hmrlab.io`), the model,
  optimizer, scheduler, EMA and gradient-scaler states, the history, and every random generator's
  state (Python, NumPy, torch, and a DataLoader's own ``generator``), so that a resumed run continues
  bit for bit as if uninterrupted. An interrupt (SIGINT: Ctrl-C, Jupyter's stop button) is honoured
  at the end of the current step: the partial epoch is saved too, and resuming replays the epoch's
  data order and continues from the next step;
* ``best_metric`` keeps a second checkpoint of the best epoch; ``log_dir`` writes ``history.csv``
  and TensorBoard scalars;
* under ``torchrun`` (after `torch.distributed.init_process_group`) the same call trains with
  DistributedDataParallel: each process sees its shard of the data (a `DistributedSampler`), logs
  and metrics are averaged over processes, and only process 0 writes files.
* `load_checkpoint` restores a model (and optimizer) from such a file after checking that it was
  written for a model with the same parameter names and shapes.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from hmrlab.io import atomic_torch_save, atomic_write_text
from hmrlab.runtime import get_device, seed_everything

CHECKPOINT_FORMAT = "hmrlab.train/2"
_READABLE_FORMATS = ("hmrlab.train/1", CHECKPOINT_FORMAT)

LossOutput = torch.Tensor | Mapping[str, torch.Tensor | float]
LossFn = Callable[[nn.Module, Any], LossOutput]
MetricFn = Callable[[nn.Module, Any], float]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; `fit` stops at that step."""


class History(list):
    """One dict per completed epoch: ``epoch`` (from 1), ``train_loss``, ``train_<name>`` for each
    extra entry ``loss_fn`` returns, ``val_loss``/``val_<name>`` when there is validation data,
    ``lr`` when a scheduler is used, and ``seconds`` (the epoch's wall-clock time)."""

    def to_frame(self) -> pd.DataFrame:
        """The history as a DataFrame, one row per epoch, one column per logged value."""
        return pd.DataFrame(list(self))

    def best(self, metric: str, mode: str = "min") -> dict:
        """The row of the epoch with the lowest (``mode="min"``) or highest (``"max"``) ``metric``.

        Epochs where ``metric`` is missing or NaN are skipped.
        """
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; got {mode!r}")
        rows = [row for row in self if metric in row and not math.isnan(row[metric])]
        if not rows:
            columns = sorted({key for row in self for key in row})
            raise ValueError(f"no epoch has a value for {metric!r}; the logged columns are {columns}")
        choose = min if mode == "min" else max
        return choose(rows, key=lambda row: row[metric])


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor in ``batch`` (a tensor, or dicts/tuples/lists of them, nested) to ``device``.

    Anything that is not a tensor (strings, numbers, file names) is returned unchanged.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple keeps its type
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


def model_signature(model: nn.Module) -> dict:
    """What a checkpoint must match to be loaded into ``model``: its class name and the name and
    shape of each parameter and buffer, ``{"class": str, "tensors": {name: [size, ...]}}``."""
    tensors = {name: list(t.shape) for name, t in model.named_parameters()}
    tensors.update({name: list(t.shape) for name, t in model.named_buffers()})
    return {"class": type(model).__name__, "tensors": tensors}


def _signature_mismatch(saved: dict, current: dict, limit: int = 5) -> list[str]:
    """Human-readable differences between two `model_signature` results (empty if they match)."""
    problems = []
    if saved["class"] != current["class"]:
        problems.append(f"model class {saved['class']} in the checkpoint, {current['class']} here")
    old, new = saved["tensors"], current["tensors"]
    missing = [name for name in new if name not in old]
    unexpected = [name for name in old if name not in new]
    reshaped = [f"{name} {old[name]} -> {new[name]}" for name in new if old.get(name, new[name]) != new[name]]
    for label, names in (("not in the checkpoint", missing), ("only in the checkpoint", unexpected),
                         ("shape changed (checkpoint -> model)", reshaped)):
        if names:
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            problems.append(f"{label}: {', '.join(names[:limit])}{more}")
    return problems


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ema: bool = False,
) -> dict:
    """Load a `fit` checkpoint into ``model`` (and ``optimizer``, when given); return its contents.

    With ``ema=True`` the model receives the exponential-moving-average weights instead (the run
    must have used ``ema_decay``). The returned dict holds ``epoch`` (completed epochs), ``step``
    (steps done in the next epoch when the run was interrupted, else 0), ``history`` (rows as in
    `History`), the ``model``/``optimizer``/``scheduler``/``ema``/``scaler`` states, ``rng``
    (generator states, one entry per process) and ``signature``. Random generators are not touched;
    `fit` restores them when it resumes.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a `fit` checkpoint, has no EMA weights when ``ema=True``, or was
            written for a model whose parameter names or shapes differ (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; train with fit(..., checkpoint=path) first")
    # weights_only: a checkpoint downloaded from elsewhere cannot run code when loaded.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") not in _READABLE_FORMATS:
        raise ValueError(f"{str(path)!r} is not a checkpoint written by hmrlab.training.loop.fit")
    problems = _signature_mismatch(state["signature"], model_signature(model))
    if problems:
        raise ValueError(
            f"checkpoint {str(path)!r} was written for a different model ({'; '.join(problems)}). "
            "To train this model from scratch, give fit a new checkpoint path, or resume=False "
            "to overwrite this one."
        )
    if ema:
        if state.get("ema") is None:
            raise ValueError(f"{str(path)!r} holds no EMA weights; the run did not use fit(..., ema_decay=...)")
        prefix = "module."
        model.load_state_dict({k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)})
    else:
        model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    state.setdefault("step", 0)
    if isinstance(state["rng"], dict):  # format 1: one process
        state["rng"] = [state["rng"]]
    return state


# ---------------------------------------------------------------------------------------------------
# Processes: a single one, or several under torchrun.


def process_rank_and_count() -> tuple[int, int]:
    """(rank, number of processes) of this training process: (0, 1) unless a process group is up."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group torchrun set up (``RANK``/``WORLD_SIZE`` in the environment); return
    (rank, number of processes), or (0, 1) when not launched by torchrun.

    The backend defaults to NCCL with CUDA and gloo on CPU. Call once per process, before `fit`;
    `torch.distributed.destroy_process_group()` ends it.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return process_rank_and_count()


def sharded_loader(
    dataset: torch.utils.data.Dataset, batch_size: int, *, shuffle: bool = True, seed: int = 0, **loader_args
) -> torch.utils.data.DataLoader:
    """A DataLoader over this process's shard of ``dataset`` (a `DistributedSampler`, one shard when
    not distributed), so that one script gives the same batches under ``python`` and ``torchrun``.

    ``batch_size`` is per process: with N processes, N x batch_size samples make one optimizer step.
    The shuffle depends only on ``seed`` and the epoch (`fit` calls ``set_epoch``).
    """
    rank, world = process_rank_and_count()
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_args)


def _sum_over_processes(values: list[float], world: int) -> list[float]:
    """Each value summed over all processes (unchanged with one process)."""
    if world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


# ---------------------------------------------------------------------------------------------------
# Random generators.


def _data_generators(*datasets: Iterable | None) -> list[torch.Generator]:
    """The private torch generators that shuffle these DataLoaders (``DataLoader(generator=g)``)."""
    found: list[torch.Generator] = []
    for data in datasets:
        for owner in (data, getattr(data, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
    return found


def _global_rng_state() -> dict:
    """Python's, NumPy's and torch's global generator states, as `torch.load(weights_only=True)` types."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                  float(cached_gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_global_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------
# One run: its parts, steps, epochs and checkpoints.


@dataclass
class _Run:
    """Everything one `fit` call trains with (the arguments, resolved)."""

    model: nn.Module  # the model itself (what is saved)
    trained: nn.Module  # what the loss sees: the model, or its DistributedDataParallel wrapper
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    device: torch.device
    grad_clip: float | None
    scheduler: Any
    ema: AveragedModel | None
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    generators: list[torch.Generator]
    rank: int
    world: int
    progress: bool
    stop_requested: bool = False
    sums: dict[str, float] = field(default_factory=dict)  # loss sums of the current epoch so far
    steps: int = 0  # steps of the current epoch so far

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


class _StopRequested(Exception):
    """Raised at the end of a step after a SIGINT, so that `fit` saves the partial epoch and stops."""


def _loss_and_logs(output) -> tuple[torch.Tensor, dict[str, float]]:
    """Split ``loss_fn``'s output into the scalar loss tensor and the other values as floats."""
    logs = {}
    if isinstance(output, Mapping):
        if "loss" not in output:
            raise ValueError(f"loss_fn returned a dict without a 'loss' entry (keys {list(output)}); add one")
        for key, value in output.items():
            if key == "loss":
                continue
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise ValueError(f"loss_fn's {key!r} must be a scalar; got shape {tuple(value.shape)}")
                value = value.item()
            logs[key] = float(value)
        output = output["loss"]
    if not isinstance(output, torch.Tensor) or output.numel() != 1:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (or a dict with it as 'loss'); got {shape}")
    return output.reshape(()), logs


def _add_to(sums: dict[str, float], values: dict[str, float]) -> None:
    for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + value


def _train_step(run: _Run, batch: Any, epoch: int) -> float:
    """Forward, backward, (clip), optimizer, scheduler and EMA step on one batch; returns the loss."""
    with run.autocast():
        loss, logs = _loss_and_logs(run.loss_fn(run.trained, to_device(batch, run.device)))
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    value = loss.item()
    # One collective per step tells every process whether any loss is bad or any was interrupted.
    total, stops = _sum_over_processes([value, float(run.stop_requested)], run.world)
    if not math.isfinite(total):
        raise NonFiniteLossError(
            f"loss is {value if not math.isfinite(value) else total} at epoch {epoch}, step {run.steps + 1}; "
            "training stopped and the checkpoint, if any, keeps the last complete epoch. Lower the "
            f"learning rate (now {run.optimizer.param_groups[0]['lr']:g}) or set grad_clip, and check "
            "this batch's inputs and targets for NaN/inf."
        )
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.scheduler is not None:
        run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    _add_to(run.sums, {"loss": value, **logs})
    run.steps += 1
    if stops:
        raise _StopRequested
    return value


def _train_epoch(run: _Run, data: Iterable, epoch: int, replay_rng: dict | None) -> dict:
    """The rest of an epoch from step ``run.steps`` (0 unless resuming an interrupted epoch);
    returns the batch-averaged logs, averaged over processes too."""
    run.trained.train()
    sampler = getattr(data, "sampler", None)
    if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch, same on all ranks
        sampler.set_epoch(epoch)
    batches: Iterator = iter(data)
    for _ in range(run.steps):  # replay the interrupted epoch's data order up to where it stopped
        next(batches)
    if replay_rng is not None:
        _set_global_rng_state(replay_rng)
    total = len(data) if hasattr(data, "__len__") else None
    disable = not (run.progress and run.rank == 0)
    with tqdm(batches, total=total, initial=run.steps, desc=f"epoch {epoch}", leave=False, disable=disable) as bar:
        for batch in bar:
            value = _train_step(run, batch, epoch)
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
    steps, *sums = _sum_over_processes([float(run.steps), *run.sums.values()], run.world)
    if steps == 0:
        raise ValueError(f"train_data gave no batches in epoch {epoch}; it must be a non-empty re-iterable")
    return {f"train_{key}": total / steps for key, total in zip(run.sums, sums)}


def _evaluate(run: _Run, data: Iterable, metrics: Mapping[str, MetricFn]) -> dict:
    """Batch-averaged loss, extra logs and ``metrics`` over ``data`` (over all processes' shards), in
    eval mode without gradients, with the EMA weights when there are some."""
    model = run.ema.module if run.ema is not None else run.model
    model.eval()
    sums: dict[str, float] = {}
    steps = 0
    with torch.no_grad(), run.autocast():
        for steps, batch in enumerate(data, start=1):
            batch = to_device(batch, run.device)
            loss, logs = _loss_and_logs(run.loss_fn(model, batch))
            clashes = logs.keys() & metrics.keys()
            if clashes:
                raise ValueError(f"val_metrics {sorted(clashes)} clash with loss_fn's outputs; rename them")
            scores = {name: float(metric(model, batch)) for name, metric in metrics.items()}
            _add_to(sums, {"loss": loss.item(), **logs, **scores})
    steps, *totals = _sum_over_processes([float(steps), *sums.values()], run.world)
    if steps == 0:
        raise ValueError("val_data gave no batches; pass None for no validation")
    return {f"val_{key}": total / steps for key, total in zip(sums, totals)}


def _rng_state(generators: list[torch.Generator]) -> dict:
    """The global generators' states and the DataLoaders' own (``"data"``)."""
    return {**_global_rng_state(), "data": [g.get_state() for g in generators]}


def _set_rng_state(state: dict, generators: list[torch.Generator]) -> None:
    if len(state["data"]) != len(generators):
        raise ValueError(
            f"the checkpoint holds {len(state['data'])} DataLoader generator state(s) but train_data and "
            f"val_data have {len(generators)}; build the loaders as in the interrupted run "
            "(same generator= arguments) to resume it exactly"
        )
    _set_global_rng_state(state)
    for generator, generator_state in zip(generators, state["data"]):
        generator.set_state(generator_state)


def _save_checkpoint(path: Path, run: _Run, history: History, epoch_start_rng: dict | None) -> None:
    """Write the run's state (every process's generators included) from process 0, atomically.

    ``epoch_start_rng`` is given for an interrupted epoch: the generators' states at its start, from
    which resuming replays its data order.
    """
    rng = _rng_state(run.generators)
    if epoch_start_rng is not None:
        rng["epoch_start"] = epoch_start_rng
    every_rng = [rng]
    if run.world > 1:
        every_rng = [None] * run.world
        dist.all_gather_object(every_rng, rng)
    if run.rank == 0:
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": history[-1]["epoch"] if history else 0,
                "step": run.steps if epoch_start_rng is not None else 0,
                "partial_sums": dict(run.sums) if epoch_start_rng is not None else {},
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
                "ema": run.ema.state_dict() if run.ema is not None else None,
                "scaler": run.scaler.state_dict(),
                "history": list(history),
                "rng": every_rng,
                "signature": model_signature(run.model),
            },
            path,
        )
    if run.world > 1:
        dist.barrier()


def _resume(path: Path, run: _Run) -> tuple[History, int, dict | None]:
    """Load a checkpoint into the run; return the history, completed epochs, and, for an
    interrupted epoch, the global generator state to restore once its first steps are replayed."""
    state = load_checkpoint(path, run.model, run.optimizer)
    if len(state["rng"]) != run.world:
        raise ValueError(
            f"{str(path)!r} was written by {len(state['rng'])} training process(es); resume it with "
            f"the same number (now {run.world})"
        )
    for name, part in (("scheduler", run.scheduler), ("ema", run.ema)):
        saved = state.get(name)
        if (saved is None) != (part is None):
            have = "has" if saved is not None else "has no"
            raise ValueError(f"{str(path)!r} {have} {name} state but this fit call differs; use the same arguments")
        if part is not None:
            part.load_state_dict(saved)
    if state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    rng = state["rng"][run.rank]
    run.steps, run.sums = state["step"], dict(state.get("partial_sums", {}))
    if run.steps:
        _set_rng_state(rng["epoch_start"], run.generators)
        return History(state["history"]), state["epoch"], rng
    _set_rng_state(rng, run.generators)
    return History(state["history"]), state["epoch"], None


class _EpochLog:
    """``history.csv`` and TensorBoard scalars in ``log_dir``, written by process 0 after each epoch."""

    def __init__(self, log_dir: str | Path, first_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.csv = Path(log_dir) / "history.csv"
        # purge_step drops events a resumed run is about to write again.
        self.writer = SummaryWriter(str(log_dir), purge_step=first_epoch)

    def write(self, history: History) -> None:
        atomic_write_text(self.csv, history.to_frame().to_csv(index=False))
        row = history[-1]
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _install_stop_handler(run: _Run) -> Callable[[], None]:
    """Route SIGINT to "stop after this step" (a second one stops at once); return the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def request_stop(signum, frame) -> None:
        if run.stop_requested:
            signal.default_int_handler(signum, frame)
        run.stop_requested = True
        if run.rank == 0:
            print("[hmrlab.training.loop] stopping after this step and saving it (interrupt again to stop at once)",
                  flush=True)

    signal.signal(signal.SIGINT, request_stop)
    return lambda: signal.signal(signal.SIGINT, previous)


def _improved(history: History, metric: str, mode: str) -> bool:
    """Whether the last epoch's ``metric`` beats every earlier epoch's."""
    value = history[-1].get(metric, math.nan)
    if math.isnan(value):
        return False
    earlier = [row[metric] for row in history[:-1] if not math.isnan(row.get(metric, math.nan))]
    if not earlier:
        return True
    return value < min(earlier) if mode == "min" else value > max(earlier)


def best_checkpoint_path(checkpoint: str | Path) -> Path:
    """Where `fit(..., best_metric=...)` keeps the best epoch's checkpoint: ``run.pt`` -> ``run.best.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.best{checkpoint.suffix}")


def _check_fit_arguments(
    loss_fn, train_data, epochs, lr, val_data, val_metrics, checkpoint, grad_clip, ema_decay, best_metric,
    best_mode,
) -> None:
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable as loss_fn(model, batch); got {type(loss_fn).__name__}")
    for name, data in (("train_data", train_data), ("val_data", val_data)):
        if isinstance(data, Iterator):  # not iter(data): that would start a DataLoader's workers
            raise ValueError(
                f"{name} is a one-shot iterator (a generator?) and would be empty after the first epoch; "
                "pass a list of batches or a DataLoader"
            )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive gradient norm or None; got {grad_clip!r}")
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999, or None; got {ema_decay!r}")
    if val_metrics and val_data is None:
        raise ValueError("val_metrics need val_data to be computed on; pass val_data=...")
    if val_metrics and "loss" in val_metrics:
        raise ValueError("'loss' is reserved for loss_fn's value; give the metric another name")
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint must be a file path; {str(checkpoint)!r} is a directory")
    if best_metric is not None and (checkpoint is None or val_data is None):
        raise ValueError("best_metric needs checkpoint=... (the best epoch is saved beside it) and val_data")
    if best_mode not in ("min", "max"):
        raise ValueError(f"best_mode must be 'min' or 'max'; got {best_mode!r}")


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Iterable,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    val_data: Iterable | None = None,
    val_metrics: Mapping[str, MetricFn] | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    grad_clip: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema_decay: float | None = None,
    amp: bool | None = None,
    log_dir: str | Path | None = None,
    best_metric: str | None = None,
    best_mode: str = "min",
) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch `History`.

    Each step calls ``loss_fn(model, batch)`` on a batch already moved to the device (`to_device`);
    it returns the scalar loss, or a dict with the loss under ``"loss"`` and other scalars to log.
    ``train_data`` and ``val_data`` are re-iterable collections of batches (a DataLoader, a list).
    After each epoch, if ``val_data`` is given, the loss, the extra logs and each
    ``val_metrics[name](model, batch)`` are averaged over its batches (in eval mode, no gradients).

    Args:
        optimizer: defaults to ``torch.optim.AdamW(model.parameters(), lr)`` (with AdamW's default
            weight decay 0.01); build your own after moving the model to ``device``.
        checkpoint: a file written after every complete epoch (atomically, so an interrupted epoch
            leaves the previous one intact) and when SIGINT stops the run mid-epoch. With
            ``resume=True`` an existing file is loaded and training continues where it stopped, with
            the same final parameters and history (timings aside) as an uninterrupted run; if it
            already holds ``epochs`` epochs nothing is trained, which makes "train, or load if
            already trained" one call.
        seed: passed to `seed_everything` at the start (plus the process rank under torchrun, so
            that dropout differs between processes); resuming then restores the saved states.
        device: as in `get_device` (the ``HMRLAB_DEVICE`` environment variable wins); default: the
            best available. Under torchrun with CUDA, pass ``f"cuda:{local_rank}"``.
        progress: tqdm bars for epochs and steps (the epoch bar shows the last losses).
        grad_clip: if given, the gradients' total norm is clipped to this value before each step.
        scheduler: a learning-rate scheduler built on ``optimizer``, stepped after every optimizer
            step (so schedules are in steps); the history then logs ``lr`` per epoch.
        ema_decay: keep an exponential moving average of the weights (e.g. 0.999); validation and
            ``best_metric`` use it, and `load_checkpoint(..., ema=True)` loads it.
        amp: mixed precision (float16 with gradient scaling on CUDA, bfloat16 on CPU); default on
            for CUDA only.
        log_dir: a folder for ``history.csv`` (rewritten atomically each epoch) and TensorBoard
            event files (``tensorboard --logdir``).
        best_metric: a logged column (e.g. ``"val_mpjpe"``); the epoch that is best by
            ``best_mode`` is also saved to `best_checkpoint_path` (checkpoint).

    Under torchrun (a process group initialised before the call) the model is wrapped in
    DistributedDataParallel for training; give each process its shard with a DataLoader over a
    `torch.utils.data.DistributedSampler` (fit calls its ``set_epoch``). Process 0 alone writes
    files and shows progress; every process returns the same history.

    Raises:
        NonFiniteLossError: (a `FloatingPointError`) the training loss became NaN or inf; the
            message gives the epoch, step and value.
        KeyboardInterrupt: after SIGINT, once the step in progress and the checkpoint are done.
        ValueError: bad arguments, or a checkpoint written for a different model or run.
    """
    val_metrics = dict(val_metrics or {})
    _check_fit_arguments(loss_fn, train_data, epochs, lr, val_data, val_metrics, checkpoint, grad_clip,
                         ema_decay, best_metric, best_mode)
    rank, world = process_rank_and_count()
    device = get_device(device)
    seed_everything(seed + rank)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    use_amp = device.type == "cuda" if amp is None else amp
    run = _Run(
        model=model,
        trained=DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        if world > 1 else model,
        loss_fn=loss_fn,
        optimizer=optimizer,
        device=device,
        grad_clip=grad_clip,
        scheduler=scheduler,
        ema=AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        if ema_decay is not None else None,
        scaler=torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda"),
        amp_dtype=(torch.float16 if device.type == "cuda" else torch.bfloat16) if use_amp else None,
        generators=_data_generators(train_data, val_data),
        rank=rank,
        world=world,
        progress=progress,
    )

    history, done, replay_rng = History(), 0, None
    if checkpoint is not None and resume and Path(checkpoint).exists():
        history, done, replay_rng = _resume(Path(checkpoint), run)
    log = _EpochLog(log_dir, done + 1) if log_dir is not None and rank == 0 else None
    undo_handler = _install_stop_handler(run)
    try:
        with tqdm(total=epochs, initial=done, desc="epochs", disable=not (progress and rank == 0)) as bar:
            for epoch in range(done + 1, epochs + 1):
                start = time.perf_counter()
                # (When resuming mid-epoch, _resume has set the generators to these states.)
                epoch_start_rng = _rng_state(run.generators)
                row = {"epoch": epoch}
                try:
                    row.update(_train_epoch(run, train_data, epoch, replay_rng))
                except _StopRequested:
                    if checkpoint is not None:
                        _save_checkpoint(Path(checkpoint), run, history, epoch_start_rng)
                    raise KeyboardInterrupt(
                        f"stopped in epoch {epoch} after step {run.steps}"
                        + (f"; saved to {str(checkpoint)!r}, fit again to resume" if checkpoint else "")
                    ) from None
                replay_rng, run.steps, run.sums = None, 0, {}
                if val_data is not None:
                    row.update(_evaluate(run, val_data, val_metrics))
                if scheduler is not None:
                    row["lr"] = optimizer.param_groups[0]["lr"]
                row["seconds"] = time.perf_counter() - start
                history.append(row)
                if checkpoint is not None:
                    _save_checkpoint(Path(checkpoint), run, history, None)
                    if best_metric is not None and _improved(history, best_metric, best_mode):
                        _save_checkpoint(best_checkpoint_path(checkpoint), run, history, None)
                if log is not None:
                    log.write(history)
                bar.set_postfix({key: f"{value:.4g}" for key, value in row.items() if key.endswith("loss")})
                bar.update()
    finally:
        undo_handler()
        if log is not None:
            log.close()
    return history

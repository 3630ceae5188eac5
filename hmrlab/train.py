"""A small training loop for notebook experiments: `fit` a model, log each epoch, checkpoint, resume.

Everything a notebook needs to train for a while, stop (the stop button, a closed laptop, a time limit),
and pick up where it stopped with exactly the same result:

* `fit` runs epochs of ``loss_fn(model, batch)`` -> backward -> optimizer step, then optional
  validation, and records one row per epoch in a `History`;
* with ``checkpoint=path`` it saves, after every complete epoch and atomically (`hmrlab.io`), the model
  and optimizer state, the history, and every random generator's state (Python, NumPy, torch, and a
  DataLoader's own ``generator``), so that a resumed run continues bit for bit as if uninterrupted;
* `load_checkpoint` restores a model (and optimizer) from such a file after checking that it was
  written for a model with the same parameter names and shapes.

The loop is one process on one device; each phase (`to_device`, one training epoch, one evaluation,
one checkpoint) is its own function so that a multi-process version can replace them one at a time.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from hmrlab.io import atomic_torch_save
from hmrlab.runtime import get_device, seed_everything

CHECKPOINT_FORMAT = "hmrlab.train/1"

LossOutput = torch.Tensor | Mapping[str, torch.Tensor | float]
LossFn = Callable[[nn.Module, Any], LossOutput]
MetricFn = Callable[[nn.Module, Any], float]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; `fit` stops at that step."""


class History(list):
    """One dict per completed epoch: ``epoch`` (from 1), ``train_loss``, ``train_<name>`` for each
    extra entry ``loss_fn`` returns, ``val_loss``/``val_<name>`` when there is validation data,
    and ``seconds`` (the epoch's wall-clock time)."""

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
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Load a `fit` checkpoint into ``model`` (and ``optimizer``, when given); return its contents.

    The returned dict holds ``epoch`` (completed epochs), ``history`` (rows as in `History`),
    ``model``/``optimizer`` state dicts, ``rng`` (generator states) and ``signature``. Random
    generators are not touched; `fit` restores them when it resumes.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a `fit` checkpoint, or was written for a model whose parameter
            names or shapes differ (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; train with fit(..., checkpoint=path) first")
    # weights_only: a checkpoint downloaded from elsewhere cannot run code when loaded.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a checkpoint written by hmrlab.train.fit")
    problems = _signature_mismatch(state["signature"], model_signature(model))
    if problems:
        raise ValueError(
            f"checkpoint {str(path)!r} was written for a different model ({'; '.join(problems)}). "
            "To train this model from scratch, give fit a new checkpoint path, or resume=False "
            "to overwrite this one."
        )
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state


def _data_generators(*datasets: Iterable | None) -> list[torch.Generator]:
    """The private torch generators that shuffle these DataLoaders (``DataLoader(generator=g)``)."""
    found: list[torch.Generator] = []
    for data in datasets:
        for owner in (data, getattr(data, "sampler", None)):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
                found.append(generator)
    return found


def _rng_state(generators: list[torch.Generator]) -> dict:
    """Every random generator's state, as types `torch.load(weights_only=True)` accepts."""
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                  float(cached_gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": [g.get_state() for g in generators],
    }


def _set_rng_state(state: dict, generators: list[torch.Generator]) -> None:
    if len(state["data"]) != len(generators):
        raise ValueError(
            f"the checkpoint holds {len(state['data'])} DataLoader generator state(s) but train_data and "
            f"val_data have {len(generators)}; build the loaders as in the interrupted run "
            "(same generator= arguments) to resume it exactly"
        )
    random.setstate(state["python"])
    kind, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, generator_state in zip(generators, state["data"]):
        generator.set_state(generator_state)


def _save_checkpoint(path, model, optimizer, history: History, generators) -> None:
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "epoch": history[-1]["epoch"],
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": list(history),
            "rng": _rng_state(generators),
            "signature": model_signature(model),
        },
        path,
    )


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


def _train_epoch(model, loss_fn, data, optimizer, device, grad_clip, epoch: int, progress: bool) -> dict:
    """One pass over ``data`` with an optimizer step per batch; returns the batch-averaged logs."""
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    with tqdm(data, desc=f"epoch {epoch}", leave=False, disable=not progress) as batches:
        for steps, batch in enumerate(batches, start=1):
            loss, logs = _loss_and_logs(loss_fn(model, to_device(batch, device)))
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss is {value} at epoch {epoch}, step {steps}; training stopped and the "
                    "checkpoint, if any, keeps the last complete epoch. Lower the learning rate (now "
                    f"{optimizer.param_groups[0]['lr']:g}) or set grad_clip, and check this batch's "
                    "inputs and targets for NaN/inf."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            _add_to(sums, {"loss": value, **logs})
            batches.set_postfix(loss=f"{value:.4g}", refresh=False)
    if steps == 0:
        raise ValueError(f"train_data gave no batches in epoch {epoch}; it must be a non-empty re-iterable")
    return {f"train_{key}": total / steps for key, total in sums.items()}


def _evaluate(model, loss_fn, data, metrics: Mapping[str, MetricFn], device) -> dict:
    """Batch-averaged loss, extra logs and ``metrics`` over ``data``, in eval mode without gradients."""
    model.eval()
    sums: dict[str, float] = {}
    steps = 0
    with torch.no_grad():
        for steps, batch in enumerate(data, start=1):
            batch = to_device(batch, device)
            loss, logs = _loss_and_logs(loss_fn(model, batch))
            clashes = logs.keys() & metrics.keys()
            if clashes:
                raise ValueError(f"val_metrics {sorted(clashes)} clash with loss_fn's outputs; rename them")
            scores = {name: float(metric(model, batch)) for name, metric in metrics.items()}
            _add_to(sums, {"loss": loss.item(), **logs, **scores})
    if steps == 0:
        raise ValueError("val_data gave no batches; pass None for no validation")
    return {f"val_{key}": total / steps for key, total in sums.items()}


def _check_fit_arguments(
    loss_fn, train_data, epochs, lr, val_data, val_metrics, checkpoint, grad_clip
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
    if val_metrics and val_data is None:
        raise ValueError("val_metrics need val_data to be computed on; pass val_data=...")
    if val_metrics and "loss" in val_metrics:
        raise ValueError("'loss' is reserved for loss_fn's value; give the metric another name")
    if checkpoint is not None and Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint must be a file path; {str(checkpoint)!r} is a directory")


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
            leaves the previous one intact). With ``resume=True`` an existing file is loaded and
            training continues from the next epoch, with the same final parameters and history
            (timings aside) as an uninterrupted run; if it already holds ``epochs`` epochs nothing
            is trained, which makes "train, or load if already trained" one call.
        seed: passed to `seed_everything` at the start (resuming then restores the saved states).
        device: as in `get_device` (the ``HMRLAB_DEVICE`` environment variable wins); default: the
            best available.
        progress: tqdm bars for epochs and steps (the epoch bar shows the last losses).
        grad_clip: if given, the gradients' total norm is clipped to this value before each step.

    Raises:
        NonFiniteLossError: (a `FloatingPointError`) the training loss became NaN or inf; the
            message gives the epoch, step and value.
        ValueError: bad arguments, or a checkpoint written for a different model.
    """
    val_metrics = dict(val_metrics or {})
    _check_fit_arguments(loss_fn, train_data, epochs, lr, val_data, val_metrics, checkpoint, grad_clip)
    device = get_device(device)
    seed_everything(seed)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    generators = _data_generators(train_data, val_data)

    history, done = History(), 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, model, optimizer)
        history, done = History(state["history"]), state["epoch"]
        _set_rng_state(state["rng"], generators)

    with tqdm(total=epochs, initial=done, desc="epochs", disable=not progress) as bar:
        for epoch in range(done + 1, epochs + 1):
            start = time.perf_counter()
            row = {"epoch": epoch}
            row.update(
                _train_epoch(model, loss_fn, train_data, optimizer, device, grad_clip, epoch, progress)
            )
            if val_data is not None:
                row.update(_evaluate(model, loss_fn, val_data, val_metrics, device))
            row["seconds"] = time.perf_counter() - start
            history.append(row)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, history, generators)
            bar.set_postfix({key: f"{value:.4g}" for key, value in row.items() if key.endswith("loss")})
            bar.update()
    return history

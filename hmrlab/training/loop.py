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
  written for a model with the same parameter names and shapes; `read_checkpoint` is the one reader
  and validator of these files (a damaged, truncated or foreign file, or one holding code, is refused
  with a ValueError naming it and what to do).

What may change when resuming: the number of ``epochs`` (to train further), ``progress``, ``device``
and the DataLoaders' workers. Everything the saved state depends on is checked and refused with both
values named: the model's parameters, the optimizer's settings (learning rate, weight decay, betas...),
the scheduler and EMA being used or not, the number of training processes and the number of batches
an epoch (the batch size or the data changed). `check_run_files` checks, before the first step, that
the files can be written (folder writable, no read-only file, room for a checkpoint); a save that
still fails raises `CheckpointWriteError` naming the file, and the previous checkpoint stays intact.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import re
import shutil
import signal
import tempfile
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
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from hmrlab.io import atomic_torch_save, atomic_write_text
from hmrlab.runtime import get_device, seed_everything

CHECKPOINT_FORMAT = "hmrlab.train/2"
_READABLE_FORMATS = ("hmrlab.train/1", CHECKPOINT_FORMAT)

LossOutput = torch.Tensor | Mapping[str, torch.Tensor | float]
LossFn = Callable[[nn.Module, Any], LossOutput]
MetricFn = Callable[[nn.Module, Any], float]


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """The update of an exponential moving average of weights whose decay warms up: after n updates
    the average moves by ``1 - d_n`` toward the weights, ``d_n = min(decay, (1 + n) / (10 + n))``
    (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``; the first update copies them, as
    `AveragedModel` does). Without the warm-up a run of a few hundred steps validates an average that
    still holds much of its first steps' weights (0.99^100 = 37 % after 100 steps at decay 0.99)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:  # integer buffers (BatchNorm's num_batches_tracked), as torch's own EMA treats them
            for mine, theirs in zip(averaged, current, strict=True):
                mine.copy_(mine * d + theirs * (1 - d))

    return update


class NonFiniteLossError(FloatingPointError):
    """The training loss, or the model's weights, became NaN or infinite; `fit` stops there."""


class CheckpointWriteError(OSError):
    """A checkpoint or ``history.csv`` could not be written (disk full, file-size limit, permissions).
    The message names the file and the reason; the file keeps its previous contents."""


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


_RNG_KEYS = ("python", "numpy", "torch", "cuda", "data")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _first_line(error: BaseException, limit: int = 200) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:limit]


def _checkpoint_advice(path: Path) -> str:
    """What to do about an unusable checkpoint file."""
    advice = (f"Delete or move {str(path)!r} to train from scratch (fit's resume=False overwrites it), or "
              "restore it from a backup")
    best = best_checkpoint_path(path)
    if not path.stem.endswith(".best") and best.is_file():
        advice += f"; if {str(best)!r} is intact, copying it to {str(path)!r} resumes from the best epoch"
    return advice + "."


def _unreadable(path: Path, error: Exception) -> str:
    """Why torch.load failed on ``path``, told from the file itself, and what to do."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as io_error:
        return f"cannot read checkpoint {str(path)!r}: {io_error.strerror or io_error}"
    if size == 0:
        what = "is empty (0 bytes): the write that made it was interrupted"
    elif head == b"PK\x03\x04":  # torch.save's zip archive
        what = (f"is truncated or damaged ({size} bytes; PyTorch could not read its archive: "
                f"{type(error).__name__}: {_first_line(error)})")
    else:
        what = f"is not an hmrlab checkpoint: it is not a PyTorch archive (it starts with {head!r})"
    return f"checkpoint {str(path)!r} {what}. {_checkpoint_advice(path)}"


def _rng_problems(rng: Any, where: str, step: int) -> list[str]:
    if not isinstance(rng, dict) or any(key not in rng for key in _RNG_KEYS):
        return [f"{where} is not a random-generator state (it needs {list(_RNG_KEYS)})"]
    if not (isinstance(rng["python"], tuple) and isinstance(rng["numpy"], (tuple, list)) and len(rng["numpy"]) == 5
            and isinstance(rng["torch"], torch.Tensor) and isinstance(rng["cuda"], list)
            and isinstance(rng["data"], list) and all(isinstance(g, torch.Tensor) for g in rng["data"])):
        return [f"{where} holds damaged random-generator states"]
    if step:  # an interrupted epoch: its starting states replay its data order
        if "epoch_start" not in rng:
            return [f"{where} lacks the interrupted epoch's starting generator states"]
        return _rng_problems(rng["epoch_start"], f"{where}['epoch_start']", 0)
    return []


def _checkpoint_problems(state: Any) -> list[str]:
    """What is wrong with the contents of a would-be `fit` checkpoint (empty when nothing is)."""
    if not isinstance(state, dict):
        return [f"it holds a {type(state).__name__}, not the dict fit writes"]
    if state.get("format") not in _READABLE_FORMATS:
        keys = sorted(map(str, state))
        more = " ..." if len(keys) > 8 else ""
        return [f"it has no hmrlab format tag (format {state.get('format')!r}, keys {keys[:8]}{more}); a plain "
                "state dict loads with model.load_state_dict(torch.load(path, weights_only=True))"]
    problems = []
    epoch, step = state.get("epoch"), state.get("step", 0)
    for name, value in (("epoch", epoch), ("step", step)):
        if not _is_count(value):
            problems.append(f"{name} is {value!r}, not a whole number >= 0")
    for name in ("model", "optimizer", "signature"):
        if not isinstance(state.get(name), dict):
            problems.append(f"its {name!r} entry is {type(state.get(name)).__name__}, not a dict")
    for name in ("scheduler", "ema", "scaler"):
        if state.get(name) is not None and not isinstance(state[name], dict):
            problems.append(f"its {name!r} entry is {type(state[name]).__name__}, not a dict")
    if state.get("batches") is not None and not (_is_count(state["batches"]) and state["batches"] > 0):
        problems.append(f"batches is {state['batches']!r}, not a positive whole number")
    if not isinstance(state.get("partial_sums", {}), dict):
        problems.append("its partial epoch's sums are not a dict")
    history = state.get("history")
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        problems.append("its history is not a list of rows")
    elif _is_count(epoch) and [row.get("epoch") for row in history] != list(range(1, epoch + 1)):
        problems.append(f"its history has {len(history)} rows (epochs {[row.get('epoch') for row in history][:6]}) "
                        f"for epoch = {epoch}")
    signature = state.get("signature")
    if isinstance(signature, dict):
        tensors = signature.get("tensors")
        if not isinstance(signature.get("class"), str) or not isinstance(tensors, dict):
            problems.append("its model signature is damaged")
        elif isinstance(state.get("model"), dict):
            # (Tied weights appear once in the signature, extra states are no tensors: only shapes are compared.)
            odd = [name for name, value in state["model"].items()
                   if isinstance(value, torch.Tensor) and name in tensors and tensors[name] != list(value.shape)]
            if odd:
                problems.append(f"its weights do not match its own model signature ({', '.join(map(str, odd[:3]))})")
    optimizer = state.get("optimizer")
    if isinstance(optimizer, dict) and not (isinstance(optimizer.get("state"), dict)
                                            and isinstance(optimizer.get("param_groups"), list)):
        problems.append("its optimizer state is damaged (no 'state' and 'param_groups')")
    rng = state.get("rng")
    if isinstance(rng, dict) and state["format"] == "hmrlab.train/1":
        rng = [rng]
    if not isinstance(rng, list) or not rng:
        problems.append(f"its random-generator states are {type(rng).__name__}, not one per training process")
    else:
        for rank, entry in enumerate(rng):
            problems += _rng_problems(entry, f"rng[{rank}]", step if _is_count(step) else 0)
    return problems


def read_checkpoint(path: str | Path, model: nn.Module | None = None, *, mmap: bool = False) -> dict:
    """The checked contents of a `fit` checkpoint file, loaded into nothing.

    The one reader of these files (`load_checkpoint` and resuming use it). The file is read with
    ``torch.load(weights_only=True)``, so it can run no code: a file holding other Python objects is
    refused as not trusted, and not loaded. Its structure is then checked (format tag, a whole number
    of epochs matching the history, weights matching the model signature, generator states), and,
    when ``model`` is given, that it was written for a model of the same class, parameter names and
    shapes. ``mmap=True`` maps the tensors instead of reading them (a cheap check of a large file).
    Returns the dict `load_checkpoint` describes, with ``step`` and one ``rng`` entry per process.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, truncated or damaged, not an hmrlab checkpoint, not trusted,
            or written for another model; the message names the file and says what to do.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is a folder; give the checkpoint file's path")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; train with fit(..., checkpoint=path) first")
    try:
        # weights_only: a checkpoint downloaded from elsewhere cannot run code when loaded.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "weights_only" not in str(error) and "Weights only" not in str(error):
            raise ValueError(_unreadable(path, error)) from error
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"checkpoint {str(path)!r} was not loaded: it is not trusted. It holds Python objects{what} that "
            "would run code when unpickled, where a checkpoint of hmrlab's fit holds only tensors, numbers and "
            "strings. Use checkpoints written by fit; for a file of your own, save only its tensors and plain values."
        ) from None
    except MemoryError:
        raise
    except Exception as error:  # torch reports a damaged archive as RuntimeError, OSError, EOFError, KeyError...
        raise ValueError(_unreadable(path, error)) from error
    problems = _checkpoint_problems(state)
    if problems:
        raise ValueError(f"checkpoint {str(path)!r} is damaged or was not written by hmrlab's fit: "
                         f"{'; '.join(problems)}. {_checkpoint_advice(path)}")
    state.setdefault("step", 0)
    if isinstance(state["rng"], dict):  # format 1: one process
        state["rng"] = [state["rng"]]
    if model is not None:
        problems = _signature_mismatch(state["signature"], model_signature(model))
        if problems:
            raise ValueError(
                f"checkpoint {str(path)!r} was written for a different model ({'; '.join(problems)}). "
                "To train this model from scratch, give fit a new checkpoint path, or resume=False "
                "to overwrite this one."
            )
    return state


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
    (generator states, one entry per process), ``signature`` and ``batches`` (batches an epoch,
    when known). Random generators are not touched; `fit` restores them when it resumes.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: as `read_checkpoint` (a damaged, foreign or untrusted file, or one written for a
            model whose parameter names or shapes differ: the message lists them), or no EMA
            weights when ``ema=True``, or an optimizer state that does not fit ``optimizer``.
    """
    path = Path(path).expanduser()
    state = read_checkpoint(path, model)
    if ema:
        if state.get("ema") is None:
            raise ValueError(f"{str(path)!r} holds no EMA weights; the run did not use fit(..., ema_decay=...)")
        prefix = "module."
        weights = {k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)}
    else:
        weights = state["model"]
    for part, part_state, label in ((model, weights, "weights"), (optimizer, state["optimizer"], "optimizer state")):
        if part is None:
            continue
        try:
            part.load_state_dict(part_state)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"checkpoint {str(path)!r}: its {label} do not fit ({_first_line(error, 300)}). "
                             f"{_checkpoint_advice(path)}") from error
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
    batches: int | None = None  # batches an epoch of train_data, when it has a length
    stop_requested: bool = False
    sums: dict[str, float] = field(default_factory=dict)  # loss sums of the current epoch so far
    steps: int = 0  # steps of the current epoch so far

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


_EXHAUSTED = object()


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
        bad = value if not math.isfinite(value) else total
        where = f"loss is {bad} at epoch {epoch}, step {run.steps + 1}"
        if _non_finite_weights(run.model):
            cause = (f"The model's weights are already non-finite, so earlier optimizer steps diverged: lower the "
                     f"learning rate (now {_learning_rates(run.optimizer)}) or set grad_clip.")
        else:
            cause = (f"The weights are still finite: if this follows some training, lower the learning rate (now "
                     f"{_learning_rates(run.optimizer)}) or set grad_clip; else check this batch's inputs and "
                     "targets for NaN/inf, and the loss for log(0) or a division by zero.")
        raise NonFiniteLossError(
            f"{where}; training stopped and the checkpoint, if any, keeps the last complete epoch. {cause}"
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


def _learning_rates(optimizer: torch.optim.Optimizer) -> str:
    rates = sorted({group["lr"] for group in optimizer.param_groups})
    return ", ".join(f"{rate:g}" for rate in rates)


def _non_finite_weights(model: nn.Module) -> list[str]:
    """Names of the parameters holding NaN or inf (one device sync when there are none)."""
    named = [(name, p) for name, p in model.named_parameters() if p.is_floating_point() or p.is_complex()]
    if not named or bool(torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).all()):
        return []
    return [name for name, p in named if not bool(torch.isfinite(p.detach()).all())]


def _train_epoch(run: _Run, data: Iterable, epoch: int, replay_rng: dict | None) -> dict:
    """The rest of an epoch from step ``run.steps`` (0 unless resuming an interrupted epoch);
    returns the batch-averaged logs, averaged over processes too."""
    run.trained.train()
    sampler = getattr(data, "sampler", None)
    if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch, same on all ranks
        sampler.set_epoch(epoch)
    batches: Iterator = iter(data)
    for done in range(run.steps):  # replay the interrupted epoch's data order up to where it stopped
        if next(batches, _EXHAUSTED) is _EXHAUSTED:
            raise ValueError(
                f"the checkpoint stopped in epoch {epoch} after step {run.steps}, but train_data now gives only "
                f"{done} batches an epoch; resume with the same data and batch size (or resume=False)"
            )
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


def _file_size_limit() -> int | None:
    """The soft limit on the size of a file this process writes (``ulimit -f``), or None."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _write_problem(path: Path, error: BaseException) -> str:
    """Why writing ``path`` failed, with what the disk and the limits say."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:  # torch.save's zip writer reports a short write as RuntimeError "[enforce fail at inline_container...]"
        reason = f"the file could not be written completely: {_first_line(error)}"
    notes = []
    try:
        free = shutil.disk_usage(path.parent).free
        if free < 256 * 2**20:
            notes.append(f"the disk has {free / 2**20:.1f} MiB free")
    except OSError:
        pass
    limit = _file_size_limit()
    if limit is not None:
        notes.append(f"files are limited to {limit} bytes (ulimit -f)")
    return reason + (f"; {'; '.join(notes)}" if notes else "")


def _raise_together(error: Exception | None, world: int, what: str) -> None:
    """Raise ``error`` (process 0's) in process 0 and a pointer to it in every other process, so that
    no process waits forever in a collective the failed one will never reach."""
    failed = error is not None
    if world > 1:
        failed = _sum_over_processes([float(failed)], world)[0] > 0
    if error is not None:
        raise error
    if failed:
        raise CheckpointWriteError(f"process 0 could not {what}; its error says why")


def _save_checkpoint(paths: list[Path], run: _Run, history: History, epoch_start_rng: dict | None) -> None:
    """Write the run's state (every process's generators included) from process 0, atomically, to
    each of ``paths`` in order (the best-epoch file first: if a save fails, the regular checkpoint
    and ``history.csv`` still agree on the previous epoch).

    ``epoch_start_rng`` is given for an interrupted epoch: the generators' states at its start, from
    which resuming replays its data order. Raises `CheckpointWriteError` naming the file.
    """
    rng = _rng_state(run.generators)
    if epoch_start_rng is not None:
        rng["epoch_start"] = epoch_start_rng
    every_rng = [rng]
    if run.world > 1:
        every_rng = [None] * run.world
        dist.all_gather_object(every_rng, rng)
    error = None
    if run.rank == 0:
        epoch = history[-1]["epoch"] if history else 0
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
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
            "batches": run.batches,
        }
        for path in paths:
            try:
                atomic_torch_save(state, path)
            except (OSError, RuntimeError) as caught:
                saved = (f"the interrupted epoch {epoch + 1} (step {run.steps})" if epoch_start_rng is not None
                         else f"epoch {epoch}")
                unwritten = [other.name for other in paths[paths.index(path) + 1:]]
                error = CheckpointWriteError(
                    f"could not write {str(path)!r} ({_write_problem(path, caught)}): {saved} was not saved, and "
                    f"{path.name} keeps its previous contents"
                    + (f" ({', '.join(unwritten)} and history.csv were not updated either, so they still agree)"
                       if unwritten else "")
                    + ". Free disk space, raise the limit or fix the folder's permissions, then run again to resume "
                    "from the last saved epoch."
                )
                error.__cause__ = caught
                break
    _raise_together(error, run.world, "write the checkpoint")


def _optimizer_changes(saved: dict, current: dict, scheduled: bool) -> list[str]:
    """Settings of the optimizer's parameter groups that differ between a checkpoint and this call.

    With a scheduler the learning rate moves step by step; its starting value (``initial_lr``) is
    compared instead. Keys only one side has (another torch version) are skipped.
    """
    saved_groups, groups = saved["param_groups"], current["param_groups"]
    if len(saved_groups) != len(groups):
        return [f"{len(saved_groups)} parameter group(s) in the checkpoint, {len(groups)} now"]
    changes = []
    for index, (old, new) in enumerate(zip(saved_groups, groups)):
        for key, value in new.items():
            if key == "params" or (key == "lr" and scheduled) or key not in old or old[key] == value:
                continue
            group = f" (group {index})" if len(groups) > 1 else ""
            changes.append(f"{key}{group} {old[key]!r} in the checkpoint, {value!r} now")
    return changes


def _resume(path: Path, run: _Run) -> tuple[History, int, dict | None]:
    """Load a checkpoint into the run after checking that it continues this run; return the history,
    completed epochs, and, for an interrupted epoch, the global generator state to restore once its
    first steps are replayed."""
    state = read_checkpoint(path, run.model)
    if len(state["rng"]) != run.world:
        raise ValueError(
            f"{str(path)!r} was written by {len(state['rng'])} training process(es); resume it with "
            f"the same number (now {run.world})"
        )
    saved_batches = state.get("batches")
    if saved_batches is not None and run.batches is not None and saved_batches != run.batches:
        raise ValueError(
            f"train_data gives {run.batches} batches an epoch but the run in {str(path)!r} had {saved_batches}: "
            "the batch size or the data changed, and resuming would continue another run. Use the same data and "
            "batch size, or start a new run (another checkpoint path, or resume=False)."
        )
    changes = _optimizer_changes(state["optimizer"], run.optimizer.state_dict(), run.scheduler is not None)
    if changes:
        raise ValueError(
            f"{str(path)!r} was written with other optimizer settings: {'; '.join(changes)}. Resuming restores "
            "the checkpoint's optimizer, so this call's settings would be silently ignored: pass the same ones, "
            "or start a new run (another checkpoint path, or resume=False) to train with the new ones."
        )
    for name, part in (("scheduler", run.scheduler), ("ema", run.ema)):
        saved = state.get(name)
        if (saved is None) != (part is None):
            have = "has" if saved is not None else "has no"
            raise ValueError(f"{str(path)!r} {have} {name} state but this fit call differs; use the same arguments")
    for part, part_state, label in ((run.model, state["model"], "weights"),
                                    (run.optimizer, state["optimizer"], "optimizer state"),
                                    (run.scheduler, state.get("scheduler"), "scheduler state"),
                                    (run.ema, state.get("ema"), "EMA state"),
                                    (run.scaler, state.get("scaler") or None, "gradient-scaler state")):
        if part is None or part_state is None:
            continue
        try:
            part.load_state_dict(part_state)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"checkpoint {str(path)!r}: its {label} does not fit this fit call "
                             f"({_first_line(error, 300)}). {_checkpoint_advice(path)}") from error
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

    def write_csv(self, history: History) -> None:
        """Rewrite ``history.csv`` (also when resuming, so that it matches the checkpoint)."""
        try:
            atomic_write_text(self.csv, history.to_frame().to_csv(index=False))
        except OSError as error:
            raise CheckpointWriteError(
                f"could not write {str(self.csv)!r} ({_write_problem(self.csv, error)}); the checkpoint holds "
                f"epoch {len(history)}, and history.csv is rewritten in full when the run resumes"
            ) from error

    def write(self, history: History) -> None:
        self.write_csv(history)
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


def _writable_folder(folder: Path) -> None:
    """Create ``folder`` if needed and write a probe file in it; ValueError saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((f for f in (folder, *folder.parents) if f.exists() and not f.is_dir()), folder)
        raise ValueError(f"cannot create the folder {str(folder)!r}: {str(blocking)!r} is a file. Choose another "
                         "path, or move that file") from None
    except OSError as error:
        raise ValueError(f"cannot create the folder {str(folder)!r} ({error.strerror}); choose a folder you "
                         "can write to") from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hmrlab-write-test-") as handle:
            handle.write(b"0")
            handle.flush()
    except OSError as error:
        raise ValueError(f"cannot write in the folder {str(folder)!r} ({error.strerror}); make it writable "
                         "(chmod u+w) or choose another folder") from None


def check_run_files(
    checkpoint: str | Path | None,
    model: nn.Module | None = None,
    *,
    best: bool = False,
    log_dir: str | Path | None = None,
    resume: bool = True,
) -> None:
    """Check, before any training, that `fit` will be able to write its files; ValueError if not.

    The checkpoint's folder and ``log_dir`` must be creatable and writable (a probe file is written
    and removed), the checkpoint, its best-epoch file (with ``best``) and ``history.csv`` must not be
    folders or read-only files, and, given the ``model``, there must be room for its weights (the
    smallest a checkpoint can be) on the disk and under the file-size limit (``ulimit -f``). With
    ``best`` and ``resume``, a best-epoch file without its checkpoint is refused: starting over would
    silently replace it (the checkpoint was deleted, perhaps because it was damaged).
    """
    files, folders = [], []
    if checkpoint is not None:
        checkpoint = Path(checkpoint).expanduser()
        files.append(checkpoint)
        if best:
            files.append(best_checkpoint_path(checkpoint))
        folders.append(checkpoint.parent)
    if log_dir is not None:
        log_dir = Path(log_dir).expanduser()
        files.append(log_dir / "history.csv")
        folders.append(log_dir)
    for file in files:
        if file.is_dir():
            raise ValueError(f"{str(file)!r} is a folder; it must be a file path (the checkpoint is one file)")
    for folder in dict.fromkeys(folders):
        _writable_folder(folder)
    for file in files:
        if file.exists() and not os.access(file, os.W_OK):
            raise ValueError(f"{str(file)!r} is read-only, so training could not update it; make it writable "
                             f"(chmod u+w {str(file)!r}) or choose another path")
    if checkpoint is not None and best and resume and not checkpoint.exists() and files[1].exists():
        raise ValueError(
            f"{str(files[1])!r} exists but {str(checkpoint)!r} does not: training from scratch would replace the "
            f"best epoch's checkpoint. Restore {str(checkpoint)!r} (copying the best file there resumes from the "
            "best epoch), or move the best file away to start over."
        )
    if checkpoint is not None and model is not None:
        needed = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        limit = _file_size_limit()
        if limit is not None and limit < needed:
            raise ValueError(f"a checkpoint of this model needs at least {needed} bytes, but files are limited "
                             f"to {limit} bytes (ulimit -f); raise the limit or train without a checkpoint")
        free = shutil.disk_usage(checkpoint.parent).free
        if free < needed * (2 if best else 1):
            raise ValueError(f"the disk of {str(checkpoint.parent)!r} has {free / 2**20:.1f} MiB free, but a "
                             f"checkpoint of this model needs at least {needed / 2**20:.1f} MiB; free some space "
                             "or choose another folder")


def _batch_count(data: Iterable) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:  # no length (an iterable dataset)
        return None


def _known_columns(val_metrics: Mapping[str, MetricFn], val_data, scheduled: bool) -> list[str]:
    """The columns every history row has, whatever loss_fn returns besides its loss."""
    columns = ["epoch", "train_loss", "seconds"] + (["lr"] if scheduled else [])
    if val_data is not None:
        columns += ["val_loss", *(f"val_{name}" for name in val_metrics)]
    return columns


def _check_best_metric(best_metric: str, columns: list[str], when: str) -> None:
    if best_metric not in columns:
        raise ValueError(f"best_metric {best_metric!r} is not a logged column; {when} {columns}")


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
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number; got {lr!r}")
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
    if best_metric is not None and not (isinstance(best_metric, str) and best_metric.startswith(("train_", "val_"))):
        # train_/val_<name> of loss_fn's extra values are only known at the first validation.
        qualities = [c for c in _known_columns(val_metrics, val_data, False) if c.startswith(("train_", "val_"))]
        _check_best_metric(best_metric, qualities, "it must be train_<name> or val_<name>, e.g. one of")


def _check_optimizer(optimizer: torch.optim.Optimizer) -> None:
    for index, group in enumerate(optimizer.param_groups):
        rate = group.get("lr")
        if not isinstance(rate, (int, float, torch.Tensor)) or not 0 <= float(rate) < math.inf:
            raise ValueError(f"the optimizer's learning rate (group {index}) is {rate!r}; it must be a finite "
                             "number >= 0")


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
        ema_decay: keep an exponential moving average of the weights (e.g. 0.999), its decay warmed
            up over the first steps (`ema_with_warmup`); validation and ``best_metric`` use it, and
            `load_checkpoint(..., ema=True)` loads it.
        amp: mixed precision (float16 with gradient scaling on CUDA, bfloat16 on CPU); default on
            for CUDA only.
        log_dir: a folder for ``history.csv`` (rewritten atomically each epoch) and TensorBoard
            event files (``tensorboard --logdir``).
        best_metric: a logged column (e.g. ``"val_mpjpe"``); the epoch that is best by
            ``best_mode`` is also saved to `best_checkpoint_path` (checkpoint). A name that is not
            logged is refused before training when it can be known then (on resume, from the
            history), else at the end of the first epoch, before anything of it is saved.

    Before the first step the files are checked (`check_run_files`) and a checkpoint to resume is
    checked to continue this run (module docstring: what may change). Each epoch's best-epoch file is
    written before the checkpoint and ``history.csv``, so a failed save leaves them agreeing on the
    previous epoch.

    Under torchrun (a process group initialised before the call) the model is wrapped in
    DistributedDataParallel for training; give each process its shard with a DataLoader over a
    `torch.utils.data.DistributedSampler` (fit calls its ``set_epoch``). Process 0 alone writes
    files and shows progress; every process returns the same history.

    Raises:
        NonFiniteLossError: (a `FloatingPointError`) the training loss or the weights became NaN or
            inf; the message gives the epoch, step, value and learning rate, and whether the weights
            had already diverged (lower the learning rate) or the batch gave it (check the data).
        KeyboardInterrupt: after SIGINT, once the step in progress and the checkpoint are done.
        CheckpointWriteError: (an `OSError`) a checkpoint or history.csv could not be written; the
            message names the file and why, and the previous file is kept.
        ValueError: bad arguments, unwritable files, or a checkpoint that is damaged, not trusted, or
            written for a different model or run (the message names what differs).
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
    _check_optimizer(optimizer)
    if amp is not None and not isinstance(amp, bool):
        raise ValueError(f"amp must be True, False or None (on for CUDA only); got {amp!r}")
    checkpoint = Path(checkpoint).expanduser() if checkpoint is not None else None
    log_dir = Path(log_dir).expanduser() if log_dir is not None else None
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
        ema=AveragedModel(model, multi_avg_fn=ema_with_warmup(ema_decay), use_buffers=True)
        if ema_decay is not None else None,
        scaler=torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda"),
        amp_dtype=(torch.float16 if device.type == "cuda" else torch.bfloat16) if use_amp else None,
        generators=_data_generators(train_data, val_data),
        rank=rank,
        world=world,
        progress=progress,
        batches=_batch_count(train_data),
    )

    error = None
    if rank == 0:
        try:
            check_run_files(checkpoint, model, best=best_metric is not None, log_dir=log_dir, resume=resume)
        except ValueError as caught:
            error = caught
    _raise_together(error, world, "use the run's files")
    history, done, replay_rng = History(), 0, None
    if checkpoint is not None and resume and checkpoint.exists():
        history, done, replay_rng = _resume(checkpoint, run)
        if best_metric is not None and history:
            _check_best_metric(best_metric, list(history[-1]), f"the columns logged in {str(checkpoint)!r} are")
    log = _EpochLog(log_dir, done + 1) if log_dir is not None and rank == 0 else None
    if log is not None and history:
        log.write_csv(history)  # a failed write of the last epoch left it behind the checkpoint
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
                        _save_checkpoint([checkpoint], run, history, epoch_start_rng)
                    raise KeyboardInterrupt(
                        f"stopped in epoch {epoch} after step {run.steps}"
                        + (f"; saved to {str(checkpoint)!r}, fit again to resume" if checkpoint else "")
                    ) from None
                replay_rng, run.steps, run.sums = None, 0, {}
                diverged = _non_finite_weights(run.model)
                if diverged:
                    raise NonFiniteLossError(
                        f"the model's weights became NaN or inf during epoch {epoch} ({', '.join(diverged[:4])}"
                        f"{' ...' if len(diverged) > 4 else ''}), although every step's loss was finite: the "
                        f"optimizer diverged. Lower the learning rate (now {_learning_rates(run.optimizer)}) or "
                        "set grad_clip; the checkpoint, if any, keeps the last complete epoch."
                    )
                if val_data is not None:
                    row.update(_evaluate(run, val_data, val_metrics))
                if scheduler is not None:
                    row["lr"] = optimizer.param_groups[0]["lr"]
                row["seconds"] = time.perf_counter() - start
                if best_metric is not None:
                    _check_best_metric(best_metric, list(row),
                                       f"nothing of epoch {epoch} was saved; the logged columns are")
                history.append(row)
                if checkpoint is not None:
                    best = best_metric is not None and _improved(history, best_metric, best_mode)
                    _save_checkpoint([best_checkpoint_path(checkpoint)] * best + [checkpoint], run, history, None)
                if log is not None:
                    log.write(history)
                bar.set_postfix({key: f"{value:.4g}" for key, value in row.items() if key.endswith("loss")})
                bar.update()
    finally:
        undo_handler()
        if log is not None:
            log.close()
    return history

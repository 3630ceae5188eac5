"""A training run's configuration: `RunConfig`, read from YAML by `load_config` with overrides.

A configuration file (``configs/*.yaml``) holds the fields of `RunConfig`; its ``data`` mapping goes
to the task's datasets and ``model_args`` to the model's constructor. A ``quick`` mapping of dotted
keys holds the run's few-step version (``load_config(..., quick=True)``).

Each task declares its ``data`` keys as a frozen dataclass of `setting` fields (default, validator,
meaning; e.g. `hmrlab.training.tasks.lifting.LiftingData`), and `data_settings` reads ``config.data``
into it by one rule: unknown keys are refused, missing ones take the field's default, and each given
value passes the field's validator (`positive_int`, `pixel_pair`, `path`, ...).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

SCHEDULES = ("constant", "cosine", "exponential")


@dataclass
class RunConfig:
    """One training run. ``model_args`` go to the task's model constructor; ``data`` to its datasets
    (paths, frames, subjects: the keys are the fields of the task's data settings, e.g.
    `hmrlab.training.tasks.lifting.LiftingData`, read by `data_settings`). ``batch_size`` is per process; ``lr`` is the
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


# ----------------------------------------------------------------------------------------------------
# A task's ``data`` settings: a frozen dataclass per task, read from ``config.data`` by one rule

Settings = TypeVar("Settings")
Validator = Callable[[Any, str], Any]
"""``check(value, key)``: the value to use for the configured ``value`` of ``key`` (``"data.frames"``),
or ValueError saying what ``key`` must be and what came."""


def setting(default: Any, check: Validator, doc: str) -> Any:
    """A field of a task's data settings: its ``default``, the validator of a configured value and
    what the key means (``doc``), kept in the field's metadata for `data_settings`."""
    return field(default=default, metadata={"check": check, "doc": doc})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(value: Any, key: str) -> int:
    """A whole number >= 1 (frames, samples, a stride)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive integer; got {value!r}")
    return value


def integer(value: Any, key: str) -> int:
    """Any whole number (a seed)."""
    if not _is_int(value):
        raise ValueError(f"{key} must be an integer; got {value!r}")
    return value


def non_negative_float(value: Any, key: str) -> float:
    """A number >= 0 (a noise level)."""
    if not _is_number(value) or not value >= 0:  # `not >=` also refuses NaN
        raise ValueError(f"{key} must be a number >= 0; got {value!r}")
    return float(value)


def positive_float(value: Any, key: str) -> float:
    """A number > 0 (a scale factor)."""
    if not _is_number(value) or not value > 0:
        raise ValueError(f"{key} must be a number > 0; got {value!r}")
    return float(value)


def boolean(value: Any, key: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false; got {value!r}")
    return value


def text(value: Any, key: str) -> str:
    """A non-empty string (a file's name part)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string; got {value!r}")
    return value


def path(value: Any, key: str) -> Path:
    """A file or folder path (relative ones to the working directory); whether it exists is checked
    where it is read, with the layout it must have."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{key} must be a path (a string); got {value!r}")
    return Path(value)


def names(value: Any, key: str) -> tuple[str, ...]:
    """A non-empty list of names (subjects such as ``[S9, S11]``)."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(n, str) and n for n in value):
        raise ValueError(f"{key} must be a non-empty list of names such as [S9, S11]; got {value!r}")
    return tuple(value)


def pixel_pair(value: Any, key: str, minimum: int = 1) -> tuple[int, int]:
    """``[height, width]`` in pixels, each a whole number >= ``minimum`` (bind another minimum with
    `functools.partial`)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(n) and n >= minimum for n in value):
        expected = "two positive integers" if minimum == 1 else f"two integers >= {minimum}"
        raise ValueError(f"{key} must be [height, width], {expected} (pixels); got {value!r}")
    return tuple(value)


def pixel_side_or_pair(value: Any, key: str) -> tuple[int, int]:
    """One side (a square) or ``[height, width]`` in pixels, positive whole numbers; returns (H, W)."""
    if _is_int(value) and value >= 1:
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(n) and n >= 1 for n in value):
        return tuple(value)
    raise ValueError(f"{key} must be one side or [height, width] in pixels, positive integers; got {value!r}")


def data_settings(cls: type[Settings], config: RunConfig, task: str) -> Settings:
    """``config.data`` read into the task's settings ``cls``, a dataclass of `setting` fields.

    The one rule of every task: a key that is not a field of ``cls`` is refused (the message lists
    the known keys), a missing key takes the field's default, and a given value goes through the
    field's validator (``check(value, "data.<key>")``), whose result is the field's value.
    ``config.data`` itself stays the plain mapping ``config.yaml`` stores. Raises ValueError.
    """
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    unknown = sorted(set(config.data) - set(known))
    if unknown:
        raise ValueError(f"unknown data keys {unknown} for the {task} task; the known keys are {known}")
    checked = {f.name: f.metadata["check"](config.data[f.name], f"data.{f.name}")
               for f in fields if f.name in config.data}
    return cls(**checked)

"""A training run's configuration: `RunConfig`, read from YAML by `load_config` with overrides.

A configuration file (``configs/*.yaml``) holds the fields of `RunConfig`; its ``data`` mapping goes
to the task's datasets (each task documents its keys) and ``model_args`` to the model's constructor.
A ``quick`` mapping of dotted keys holds the run's few-step version (``load_config(..., quick=True)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

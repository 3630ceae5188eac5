"""A training run's configuration: `RunConfig`, read from YAML by `load_config` with overrides.

A configuration file (``configs/*.yaml``) holds the fields of `RunConfig`; its ``data`` mapping goes
to the task's datasets and ``model_args`` to the model's constructor. A ``quick`` mapping of dotted
keys holds the run's few-step version (``load_config(..., quick=True)``).

Each task declares its ``data`` keys as a frozen dataclass of `setting` fields (default, validator,
meaning; e.g. `hmrlab.training.tasks.lifting.LiftingData`), and `data_settings` reads ``config.data``
into it by one rule: unknown keys are refused, missing ones take the field's default, and each given
value passes the field's validator (`positive_int`, `pixel_pair`, `path`, ...). `RunConfig`'s own
fields follow the same rule (`RUN_FIELDS`): a configuration is checked whole when it is made, before a
run writes anything.

YAML is read strictly (`load_yaml`): a duplicate key is an error (YAML would keep the last silently),
``1e-3`` is a number (YAML 1.1 reads it as a string), and a syntax error names the line. ``~`` in
paths (``out_dir``, ``data.dir``) is the home folder.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

SCHEDULES = ("constant", "cosine", "exponential")


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys and reads ``1e-3`` as a float (YAML 1.2)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, resolved by SafeLoader
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                    seen.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: SafeLoader says so itself
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {first + 1}); keep one of them",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str, source: str) -> Any:
    """``text`` parsed as YAML by the strict rules of the module docstring; ValueError naming
    ``source`` (a file name, or ``"override 'lr=...'"``), the line and the problem otherwise."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        detail = f" ({context})" if context else ""
        raise ValueError(f"{source} is not valid YAML{where}: {problem}{detail}") from None


@dataclass
class RunConfig:
    """One training run. ``model_args`` go to the task's model constructor; ``data`` to its datasets
    (paths, frames, subjects: the keys are the fields of the task's data settings, e.g.
    `hmrlab.training.tasks.lifting.LiftingData`, read by `data_settings`). ``batch_size`` is per process; ``lr`` is the
    peak learning rate of AdamW, reached after ``warmup_steps`` linear steps, then held
    (``"constant"``), annealed to zero over the run (``"cosine"``) or multiplied by ``lr_decay``
    each epoch (``"exponential"``, MixSTE's schedule).

    Every field is checked when the configuration is made (`RUN_FIELDS`; ValueError naming the key,
    what it must be and what came), numbers converted to float where a float is meant, ``~`` in
    ``out_dir`` expanded. Resuming a run may change only `RESUMABLE_FIELDS`."""

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
        for name, check in RUN_FIELDS.items():
            setattr(self, name, check(getattr(self, name), name))

    def to_yaml(self) -> str:
        """The configuration as YAML, every field written out (what ``config.yaml`` of a run holds)."""
        return yaml.safe_dump(dataclasses.asdict(self), sort_keys=False)


def _set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    """Set ``config[key]`` for a dotted key (``"model_args.dim"`` sets ``config["model_args"]["dim"]``)."""
    *sections, leaf = key.strip().split(".")
    if not all(sections) or not leaf:
        raise ValueError(f"{key!r} is not a setting name: write e.g. epochs or model_args.dim")
    target = config
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise ValueError(f"{key!r}: {section!r} is not a mapping in the configuration")
    target[leaf] = value


def _parse_assignment(assignment: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value parsed as YAML)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"an override must look like key=value or model_args.dim=64; got {assignment!r}")
    return key.strip(), load_yaml(value, f"the value of the override {assignment!r}")


def load_config(
    source: str | Path | Mapping[str, Any], overrides: Iterable[str] = (), *, quick: bool = False
) -> RunConfig:
    """A `RunConfig` from a YAML file (or a dict), with ``key=value`` overrides applied in order.

    A configuration may hold a ``quick`` mapping of dotted keys to values (``data.frames: 9``): the
    few-step version of the run that tests, CI and the notebooks' quick mode use. With
    ``quick=True`` those settings are applied before `overrides`; the section is never part of the run.

    Raises FileNotFoundError for a missing file and ValueError naming unknown keys (with the known
    ones), bad values, YAML errors (with the line), duplicate keys, or an empty file (which would
    otherwise train the default, paper-size run; write ``{}`` to mean the defaults).
    """
    known = [f.name for f in dataclasses.fields(RunConfig)]
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))  # overrides must not edit the caller's nested mappings
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            raise ValueError(f"{str(path)!r} is a folder; give a configuration file, e.g. configs/lifting_mixste.yaml")
        if not path.is_file():
            raise FileNotFoundError(f"no configuration file at {str(path)!r}; see configs/ for examples")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{str(path)!r} is not a text file; a configuration is YAML text") from None
        raw = load_yaml(text, repr(str(path)))
        if raw is None:
            raise ValueError(
                f"{str(path)!r} holds no settings (it is empty or only comments), which would train the default, "
                "paper-size run; write the settings (see configs/ for examples), or {} to mean the defaults"
            )
        if not isinstance(raw, dict):
            raise ValueError(f"{str(path)!r} must hold a YAML mapping of settings; got {type(raw).__name__}")
    quick_settings = raw.pop("quick", None) or {}
    if not isinstance(quick_settings, dict):
        raise ValueError(f"'quick' must map settings to values (e.g. epochs: 1); got {quick_settings!r}")
    odd = sorted(str(k) for k in quick_settings if str(k).strip().split(".")[0] not in known)
    if odd:  # checked with or without quick=True, so a typo there shows on the first load
        raise ValueError(f"unknown keys {odd} in 'quick'; its keys are settings such as epochs or "
                         f"model_args.dim, whose first part is one of {known}")
    if quick:
        for key, value in quick_settings.items():
            _set_dotted(raw, key, value)
    if isinstance(overrides, str):
        raise ValueError(f"overrides must be a list of key=value strings; got the string {overrides!r}")
    for assignment in overrides:
        _set_dotted(raw, *_parse_assignment(assignment))
    unknown = sorted(map(str, set(raw) - set(known)))
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
    """A finite number >= 0 (a noise level)."""
    if not _is_number(value) or not 0 <= value < math.inf:  # `not <=` also refuses NaN
        raise ValueError(f"{key} must be a number >= 0 and finite; got {value!r}")
    return float(value)


def positive_float(value: Any, key: str) -> float:
    """A finite number > 0 (a scale factor, a learning rate)."""
    if not _is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"{key} must be a number > 0 and finite; got {value!r}")
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
    """A file or folder path (relative ones to the working directory, ``~`` the home folder); whether
    it exists is checked where it is read, with the layout it must have."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{key} must be a path (a string); got {value!r}")
    return Path(value).expanduser()


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


def non_negative_int(value: Any, key: str) -> int:
    """A whole number >= 0 (warm-up steps, DataLoader workers)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0; got {value!r}")
    return value


def fraction(value: Any, key: str) -> float:
    """A number in (0, 1] (a decay factor per epoch; 1 keeps the rate)."""
    if not _is_number(value) or not 0 < value <= 1:
        raise ValueError(f"{key} must be a number in (0, 1], e.g. 0.95; got {value!r}")
    return float(value)


def open_fraction(value: Any, key: str) -> float:
    """A number strictly between 0 and 1 (an EMA decay such as 0.999)."""
    if not _is_number(value) or not 0 < value < 1:
        raise ValueError(f"{key} must be a number strictly between 0 and 1, e.g. 0.999; got {value!r}")
    return float(value)


def mapping(value: Any, key: str) -> dict[str, Any]:
    """A mapping of names to values (YAML ``key: value`` lines)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{key} must be a mapping of names to values (YAML: key: value lines); got {value!r}")
    return value


def optional(check: Validator) -> Validator:
    """``check``, or None (YAML ``null``) for "not set"."""

    def check_or_none(value: Any, key: str) -> Any:
        return None if value is None else check(value, key)

    check_or_none.__doc__ = f"None, or {check.__doc__}"
    return check_or_none


def choice(options: tuple[str, ...]) -> Validator:
    """One of ``options``."""

    def one_of(value: Any, key: str) -> str:
        if value not in options:
            raise ValueError(f"{key} must be one of {options}; got {value!r}")
        return value

    return one_of


def _amp(value: Any, key: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{key} must be true, false or null (automatic: on for CUDA only); got {value!r}")
    return value


def _out_dir(value: Any, key: str) -> str:
    return str(path(value, key))


RUN_FIELDS: dict[str, Validator] = {
    "task": text, "model": text, "model_args": mapping, "data": mapping, "out_dir": _out_dir,
    "epochs": positive_int, "batch_size": positive_int, "lr": positive_float, "weight_decay": non_negative_float,
    "schedule": choice(SCHEDULES), "warmup_steps": non_negative_int, "lr_decay": fraction,
    "grad_clip": optional(positive_float), "ema_decay": optional(open_fraction), "amp": _amp, "seed": integer,
    "workers": non_negative_int, "device": optional(text), "progress": boolean,
}
"""The validator of each `RunConfig` field (the same rule as `data_settings`)."""

RESUMABLE_FIELDS = ("epochs", "out_dir", "progress", "workers", "device")
"""What may differ from a run's ``config.yaml`` when it resumes: ``epochs`` (at least those already
trained: to train further), the folder itself (a moved run), and how the same computation runs.
Every other field shapes what is trained (the model, data, batch size, optimizer, schedule, seed,
AMP) and is restored from the checkpoint, so a change is refused (`hmrlab.training.runs.train`)."""


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

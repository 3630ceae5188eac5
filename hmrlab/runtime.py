"""Reproducible runs and device choice: what a notebook's setup cell calls first.

`seed_everything` seeds every random number generator a notebook touches (Python's `random`, NumPy's
global generator, torch on all devices); `get_device` picks the accelerator (CUDA, then Apple's MPS,
then CPU), overridable by the ``HMRLAB_DEVICE`` environment variable so that CI or a student without a
GPU can force ``cpu`` without editing the notebook; `describe_device` prints the line that makes a
notebook's output say where it ran.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEVICE_ENV_VAR = "HMRLAB_DEVICE"
_KNOWN_DEVICE_TYPES = ("cpu", "cuda", "mps")


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and every GPU).

    ``PYTHONHASHSEED`` is set too; it only reaches processes started afterwards (DataLoader workers,
    subprocesses), since the running interpreter fixed its hash seed at start-up.

    Args:
        seed: an integer in ``[0, 2**32 - 1]`` (the range NumPy accepts).
        deterministic: also make torch choose deterministic kernels (and raise on ops that have
            none), at some cost in speed; ``False`` leaves that setting as it was.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; got {seed!r}")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU and all CUDA generators
    if deterministic:
        # cuBLAS needs a fixed workspace to give the same sums twice (CUDA >= 10.2 docs).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def _device_available(device: torch.device) -> bool:
    if device.type == "cuda":
        index = 0 if device.index is None else device.index
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if device.type == "mps":
        return _mps_available()
    return True


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on.

    Without a preference: CUDA when present, else MPS (Apple GPUs) when available, else CPU.
    ``prefer`` names a device ("cpu", "cuda", "cuda:1", "mps", or "auto" for the default choice);
    the ``HMRLAB_DEVICE`` environment variable, when set, wins over both.

    Raises:
        ValueError: for a name that is not a torch device type hmrlab supports, or a device that is
            not available on this machine.
    """
    from_env = os.environ.get(DEVICE_ENV_VAR, "").strip()
    request = from_env or prefer
    source = f"the {DEVICE_ENV_VAR} environment variable" if from_env else "prefer"
    if request is None or (isinstance(request, str) and request.lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")

    hint = f"use one of 'auto', {', '.join(repr(t) for t in _KNOWN_DEVICE_TYPES)} (or 'cuda:N')"
    try:
        device = torch.device(request.lower() if isinstance(request, str) else request)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {request!r} from {source}; {hint}") from error
    if device.type not in _KNOWN_DEVICE_TYPES:
        raise ValueError(f"unsupported device {request!r} from {source}; {hint}")
    if not _device_available(device):
        raise ValueError(
            f"device {request!r} from {source} is not available on this machine; "
            f"use 'auto' or 'cpu' (or unset {DEVICE_ENV_VAR})"
        )
    return device


def describe_device(device: str | torch.device | None = None) -> str:
    """One line for a notebook's setup cell: the device (GPU name if any), torch version, CPU threads.

    ``device`` defaults to `get_device()`; e.g. ``"device: cpu | torch 2.13.0 | 2 CPU threads"``.
    """
    device = get_device() if device is None else torch.device(device)
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return f"device: {name} | torch {torch.__version__} | {torch.get_num_threads()} CPU threads"

"""Input checks shared by `geometry`, `metrics` and later modules.

Each check raises `ValueError` (`TypeError` for something that is not an array at all) with a
message that names the argument, the expected shape and the shape received, e.g.
``pred must have shape (..., J, 3); got (4, 17, 2)``. They accept NumPy arrays and torch tensors.

Shapes are written as patterns: a tuple of ints (sizes that must match exactly) and strings
(named dimensions of any size), always preceded by any number of leading dimensions ``...``.
``("J", 3)`` reads ``(..., J, 3)``; ``(3, 3)`` reads ``(..., 3, 3)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def format_shape(shape: Sequence[int | str]) -> str:
    """Write a shape as ``(4, 17, 3)``, or a pattern as ``(..., J, 3)`` (module docstring)."""
    return "(" + ", ".join(str(d) for d in shape) + ")"


def check_array(x: object, name: str) -> None:
    """Raise `TypeError` unless `x` is a NumPy array or a torch tensor."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"{name} must be a numpy.ndarray or a torch.Tensor; got {type(x).__name__}. "
            f"Convert it with numpy.asarray({name}) or torch.as_tensor({name})."
        )


def check_shape(x: Array, name: str, pattern: Sequence[int | str]) -> None:
    """Check that `x` has shape ``(..., *pattern)``: ints must match, strings are any size.

    Checks only the shape, never the values, so it costs nothing on a GPU (no device sync).
    """
    check_array(x, name)
    expected = format_shape(["...", *pattern])
    shape = tuple(x.shape)
    if len(shape) < len(pattern):
        raise ValueError(f"{name} must have shape {expected}; got {format_shape(shape)}")
    for size, want in zip(shape[len(shape) - len(pattern) :], pattern):
        if isinstance(want, int) and size != want:
            raise ValueError(f"{name} must have shape {expected}; got {format_shape(shape)}")


def check_nonempty(x: Array, name: str) -> None:
    """Reject arrays with a zero-sized dimension."""
    if x.shape and min(x.shape) == 0:
        raise ValueError(
            f"{name} is empty (shape {format_shape(tuple(x.shape))}); pass at least one element "
            "along every dimension"
        )


def check_finite(x: Array, name: str) -> None:
    """Reject arrays containing NaN or +/-inf (reads the values: a device sync on GPU)."""
    finite = torch.isfinite(x.detach()) if isinstance(x, torch.Tensor) else np.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or inf value(s); remove or mask invalid entries first"
        )


def check_points(
    x: Array, name: str, *, dims: Sequence[str] = ("N",), last_dim: int = 3
) -> None:
    """Check a set of points of shape ``(..., *dims, last_dim)``: non-empty and finite.

    `dims` names the dimensions before the coordinates, for the error message and the minimum
    number of dimensions: ``dims=("T", "J")`` requires ``(..., T, J, 3)``.
    """
    check_shape(x, name, (*dims, last_dim))
    check_nonempty(x, name)
    check_finite(x, name)


def check_same_shape(a: Array, b: Array, names: tuple[str, str]) -> None:
    """Require `a` and `b` to have exactly the same shape (no broadcasting)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; got "
            f"{format_shape(tuple(a.shape))} and {format_shape(tuple(b.shape))}"
        )


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from an array-like or a (possibly GPU, grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_parents(parents: Any, num_joints: int) -> list[int]:
    """A kinematic tree as a list: ``parents[j]`` is -1 (a root) or an earlier joint; else ValueError.

    Topological order (a parent before its children) lets forward kinematics and drawing walk the
    joints in index order.
    """
    parents = to_numpy(parents)
    if parents.shape != (num_joints,):
        raise ValueError(f"parents must have shape (J,) with J = {num_joints}; got {format_shape(parents.shape)}")
    parents = parents.astype(np.int64).tolist()
    bad = [j for j, p in enumerate(parents) if not -1 <= p < j]
    if bad:
        raise ValueError(
            "parents must list each joint's parent before the joint (parents[j] < j) and -1 for a root; "
            f"joints {bad} have parents {[parents[j] for j in bad]}. Reorder the joints so that every "
            "parent comes before its children."
        )
    return parents

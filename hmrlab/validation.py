"""Input checks shared by every module: one shape guard per kind of input.

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


def check_exact_shape(x: Any, name: str, pattern: Sequence[int | str]) -> None:
    """Check that `x` is a tensor or array of exactly ``pattern``'s rank: ints must match, strings
    name dimensions of any size, e.g. ``("B", 256, "H", "W")`` for a feature map of 256 channels
    or ``("B", "N", 64)`` for tokens of width 64. Raises ValueError (naming what came instead)."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a tensor of shape {format_shape(pattern)}; got {type(x).__name__}")
    shape = tuple(x.shape)
    if len(shape) != len(pattern) or any(isinstance(w, int) and s != w for s, w in zip(shape, pattern)):
        raise ValueError(f"{name} must have shape {format_shape(pattern)}; got {format_shape(shape)}")


def as_pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``(height, width)`` from one positive int or a pair of them (an output size, a kernel)."""
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else size
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in pair)):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of them; got {size!r}")
    return tuple(pair)


def check_faces(faces: Any, n_vertices: int) -> np.ndarray:
    """Triangle indices as an int64 (F, 3) array within [0, n_vertices), or ValueError."""
    faces = to_numpy(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3) (triangles); got {format_shape(faces.shape)}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices; got dtype {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ValueError(
            f"faces index vertices in [{faces.min()}, {faces.max()}] but there are "
            f"{n_vertices} vertices: indices must lie in [0, {n_vertices - 1}]"
        )
    return faces.astype(np.int64)


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

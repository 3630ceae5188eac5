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


def check_real(x: Array, name: str) -> None:
    """Reject arrays that do not hold real numbers: complex and boolean dtypes (and NumPy arrays of
    strings or objects) raise ValueError; integers and floats pass. Reads only the dtype.

    Complex values are never silently reduced to their real part: the caller says which of
    ``.real``, ``.abs()`` or ``.angle()`` it means.
    """
    if isinstance(x, torch.Tensor):
        bad = x.dtype.is_complex or x.dtype == torch.bool
    else:
        bad = not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == bool
    if bad:
        hint = " Take .real or .abs() first, whichever you mean." if "complex" in str(x.dtype) else ""
        raise ValueError(f"{name} must hold real numbers (integer or floating point); got dtype {x.dtype}.{hint}")


def check_floating(x: Any, name: str, dtypes: Sequence[torch.dtype] | None = None) -> None:
    """Require a torch tensor of a real floating-point dtype (one of `dtypes` when given, e.g.
    ``(torch.float32, torch.float64)`` for code that needs an SVD). Raises `TypeError` for
    something that is not a tensor, ValueError naming the dtype and the conversion otherwise.
    Reads only the dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor; got {type(x).__name__}. Convert it with torch.as_tensor({name})."
        )
    allowed = tuple(dtypes) if dtypes is not None else None
    if x.dtype.is_floating_point and (allowed is None or x.dtype in allowed):
        return
    wanted = ("dtype " + " or ".join(str(d).removeprefix("torch.") for d in allowed) if allowed
              else "a floating-point dtype")
    hint = (" Take .real or .abs() first, whichever you mean." if x.dtype.is_complex
            else f" Convert it with {name}.float() or {name}.double().")
    raise ValueError(f"{name} must have {wanted}; got {str(x.dtype).removeprefix('torch.')}.{hint}")


def check_flip_permutation(permutation: Any, num_joints: int, name: str = "flip_permutation") -> list[int]:
    """A left-right joint swap as a list: (J,) integers that permute range(J) and undo themselves
    (mirroring twice gives the poses back, ``p[p[j]] == j``); else ValueError."""
    values = to_numpy(permutation)
    if values.shape != (num_joints,) or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"{name} must be {num_joints} integer joint indices (shape ({num_joints},), one per joint of the "
            f"poses); got shape {format_shape(values.shape)} and dtype {values.dtype}"
        )
    indices = values.astype(np.int64).tolist()
    if sorted(indices) != list(range(num_joints)):
        raise ValueError(f"{name} must be a permutation of range({num_joints}) (each joint once); got {indices}")
    if any(indices[i] != j for j, i in enumerate(indices)):
        raise ValueError(
            f"{name} must swap left and right joints in pairs (p[p[j]] == j, so that mirroring twice gives the "
            f"poses back); got {indices}"
        )
    return indices


def check_points(
    x: Array, name: str, *, dims: Sequence[str] = ("N",), last_dim: int = 3
) -> None:
    """Check a set of points of shape ``(..., *dims, last_dim)``: real numbers, non-empty and finite.

    `dims` names the dimensions before the coordinates, for the error message and the minimum
    number of dimensions: ``dims=("T", "J")`` requires ``(..., T, J, 3)``.
    """
    check_shape(x, name, (*dims, last_dim))
    check_real(x, name)
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

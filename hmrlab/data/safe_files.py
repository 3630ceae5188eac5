"""Read dataset files (VideoPose3D's ``.npz``, 3DPW's ``.pkl``, COCO's ``.json``, images) without
running code, trusting a declared size, or loading a NaN unnoticed.

A pickle names callables that the reader calls while loading, so ``pickle.load`` (and
``numpy.load(..., allow_pickle=True)``, which uses it) runs whatever a file names. Dataset files
need only arrays, numbers, strings, lists and dicts: the unpickler here admits NumPy's array and
scalar reconstruction functions and nothing else (dicts, lists, tuples and strings need none). An
``.npz`` is a zip of ``.npy`` members; each member's header is read and its declared size checked
first, and object members are unpickled with that unpickler (`hmrlab.io.read_npz`). JSON files
refuse NaN and nesting deeper than Python parses (`hmrlab.io.read_json`); images open only as
JPEG or PNG. `checked_array` refuses NaN and infinities.

Every failure (missing file, unreadable, empty, truncated or corrupt, refused callable, wrong layout)
raises `FileNotFoundError` or `ValueError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hmrlab import io as _io
from hmrlab.io import RestrictedUnpickler


class ArrayUnpickler(RestrictedUnpickler):
    """An unpickler that builds NumPy arrays, scalars and plain Python containers only."""

    refusal = "a dataset file should hold only NumPy arrays, numbers, strings, lists and dicts"


def existing_file(path: str | os.PathLike, description: str) -> Path:
    """`path` as a Path; `FileNotFoundError` naming the `description` ("3DPW sequence file") if absent."""
    return _io.input_file(path, description)


def read_pickle(path: str | os.PathLike, description: str = "pickle file") -> Any:
    """The object pickled in `path` (Python 2 or 3), built by `ArrayUnpickler`."""
    return _io.read_pickle(path, description, ArrayUnpickler)


def read_npz(path: str | os.PathLike, description: str = "npz file") -> dict[str, Any]:
    """All members of the ``.npz`` `path` by name: numeric arrays, and pickled objects (0-d object
    arrays come back as the object they wrap, e.g. VideoPose3D's dicts) built by `ArrayUnpickler`."""
    return _io.read_npz(path, description, objects="unpickle", unpickler=ArrayUnpickler)


IMAGE_FORMATS = ("JPEG", "PNG")


def read_image(path: str | os.PathLike, description: str = "image") -> np.ndarray:
    """The JPEG or PNG image `path` as (H, W, 3) uint8 RGB.

    Only those two formats are opened (Pillow would otherwise hand an EPS file to Ghostscript), and
    Pillow's decompression-bomb limit stands. Raises `FileNotFoundError` for a missing file and
    `ValueError` naming the file for an unreadable, truncated or corrupt one.
    """
    from PIL import Image  # here, so that reading arrays does not import Pillow

    path = _io.input_file(path, description)
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            return np.asarray(image.convert("RGB"))
    except PermissionError as error:
        raise ValueError(f"{path}: cannot read this {description}: permission denied. Make it readable "
                         f"(chmod u+r {path}).") from error
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"{path}: cannot read this {description}: it is not a complete JPEG or PNG image "
            f"({type(error).__name__}: {error}). Copy or render it again."
        ) from error


def checked_list(value: Any, where: str, expected: str) -> list:
    """`value` if it is a list (or tuple), else a `ValueError` naming `where` and what it should hold."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where} must be a list ({expected}); got a {type(value).__name__}")
    return list(value)


def checked_dict(value: Any, where: str, expected: str) -> Mapping[str, Any]:
    """`value` if it is a dict, else a `ValueError` naming `where` (file and entry) and what it should hold."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a dict ({expected}); got a {type(value).__name__}")
    return value


def require_key(mapping: Any, key: str, where: str, expected: str) -> Any:
    """``mapping[key]``, or a `ValueError` naming `where` (file and entry), the key and what it should hold."""
    mapping = checked_dict(mapping, where, f"holding {key!r}")
    if key not in mapping:
        raise ValueError(f"{where} lacks the key {key!r} ({expected}); it has {sorted(map(str, mapping))}")
    return mapping[key]


def checked_array(value: Any, shape: tuple[int | str, ...], where: str, *, finite: bool = True) -> np.ndarray:
    """`value` as a numeric ndarray of `shape`, where a str entry ("T") matches any size; else `ValueError`.

    `where` names the file and entry, e.g. ``"data_3d_h36m.npz: positions_3d['S1']['Walk']"``. NaN
    and infinities are refused unless ``finite=False``.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError, OverflowError):  # ragged or absurdly nested lists
        array = np.empty(0, dtype=object)
    if (
        array.dtype.kind not in "biuf"
        or array.ndim != len(shape)
        or any(isinstance(want, int) and have != want for have, want in zip(array.shape, shape))
    ):
        wanted = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        got = f"shape {array.shape}" if array.dtype.kind in "biuf" else f"a {type(value).__name__} of {array.dtype}"
        raise ValueError(f"{where} must be a numeric array of shape {wanted}; got {got}")
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(
            f"{where} holds {bad} NaN or infinite value(s) of {array.size}; the file is corrupt, or its writer "
            "marks missing values with NaN: replace them (e.g. with 0 and a confidence of 0) and write it again"
        )
    return array

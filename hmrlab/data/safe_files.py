"""Read dataset files that hold pickles (VideoPose3D's ``.npz``, 3DPW's ``.pkl``) without running code.

A pickle names callables that the reader calls while loading, so ``pickle.load`` (and
``numpy.load(..., allow_pickle=True)``, which uses it) runs whatever a file names. Dataset files
need only arrays, numbers, strings, lists and dicts: the unpickler here admits NumPy's array and
scalar reconstruction functions and nothing else (dicts, lists, tuples and strings need no callable).
An ``.npz`` is a zip of ``.npy`` members; we read each member's header ourselves
(`numpy.lib.format`) and unpickle object members with that unpickler.

Every failure (missing file, truncated or corrupt archive, refused callable) raises
`FileNotFoundError` or `ValueError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from hmrlab.io import RestrictedUnpickler


class ArrayUnpickler(RestrictedUnpickler):
    """An unpickler that builds NumPy arrays, scalars and plain Python containers only."""

    refusal = "a dataset file should hold only NumPy arrays, numbers, strings, lists and dicts"


def _unpickle(handle: IO[bytes], what: str) -> Any:
    # latin1 turns Python 2's byte strings (NumPy's raw buffers among them) into str unchanged.
    try:
        return ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as error:  # a truncated or hostile pickle fails in many ways; say which part
        raise ValueError(f"cannot unpickle {what}: {type(error).__name__}: {error}") from error


def existing_file(path: str | os.PathLike, description: str) -> Path:
    """`path` as a Path; `FileNotFoundError` naming the `description` ("3DPW sequence file") if absent."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no {description} at {path}")
    return path


def read_pickle(path: str | os.PathLike, description: str = "pickle file") -> Any:
    """The object pickled in `path` (Python 2 or 3), built by `ArrayUnpickler`."""
    path = existing_file(path, description)
    with open(path, "rb") as handle:
        try:
            return _unpickle(handle, "the file")
        except ValueError as error:
            raise ValueError(f"{path}: {error} (is it a {description}?)") from error


def _read_npy_member(archive: zipfile.ZipFile, member: str) -> Any:
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        if dtype.hasobject:
            array = _unpickle(handle, f"the object array {member!r}")
            if not isinstance(array, np.ndarray) or array.shape != shape:
                raise ValueError(f"member {member!r} should unpickle to an array of shape {shape}")
            # VideoPose3D stores each dict as a 0-d object array; hand back the dict itself.
            return array.item() if array.shape == () else array
    with archive.open(member) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


def read_npz(path: str | os.PathLike, description: str = "npz file") -> dict[str, Any]:
    """All members of the ``.npz`` `path` by name: numeric arrays, and pickled objects (0-d object
    arrays come back as the object they wrap, e.g. VideoPose3D's dicts) built by `ArrayUnpickler`."""
    path = existing_file(path, description)
    try:
        with zipfile.ZipFile(path) as archive:
            return {
                member.removesuffix(".npy"): _read_npy_member(archive, member)
                for member in archive.namelist()
            }
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read this {description}: {error}") from error


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


def checked_array(value: Any, shape: tuple[int | str, ...], where: str) -> np.ndarray:
    """`value` as a numeric ndarray of `shape`, where a str entry ("T") matches any size; else `ValueError`.

    `where` names the file and entry, e.g. ``"data_3d_h36m.npz: positions_3d['S1']['Walk']"``.
    """
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        array = np.empty(0, dtype=object)
    if (
        array.dtype.kind not in "biuf"
        or array.ndim != len(shape)
        or any(isinstance(want, int) and have != want for have, want in zip(array.shape, shape))
    ):
        wanted = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        got = f"shape {array.shape}" if array.dtype.kind in "biuf" else f"a {type(value).__name__} of {array.dtype}"
        raise ValueError(f"{where} must be a numeric array of shape {wanted}; got {got}")
    return array

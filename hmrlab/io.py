"""Atomic file writes: a file hmrlab produces is either the old one or the complete new one.

A notebook interrupted while saving (the stop button, a kernel restart, a full disk) must not leave
a half-written checkpoint that the next "load the checkpoint if it exists" cell then fails on. Every
writer here writes into a temporary file in the destination's own directory, flushes it to disk
(``fsync``), and only then renames it over the destination with `os.replace`: within one file
system, a reader then sees either the old file or the new one, never a mixture.

Reading is guarded too: `RestrictedUnpickler` builds only NumPy arrays and plain containers, for the
pickles inside body-model and dataset files (a pickle can otherwise name any callable to run).
"""

from __future__ import annotations

import codecs
import os
import pickle
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

# NumPy's reconstruction callables under the module names NumPy 1 and 2 (and Python 2) pickle them
# with; taking them from `__reduce_ex__` avoids importing NumPy's private modules.
_RECONSTRUCT = np.zeros(0).__reduce_ex__(2)[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.float64(0).__reduce__()[0]
NUMPY_PICKLE_CALLABLES: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes (array buffers) under protocol 2
}
for _core in ("numpy.core", "numpy._core"):
    NUMPY_PICKLE_CALLABLES[(f"{_core}.multiarray", "_reconstruct")] = _RECONSTRUCT
    NUMPY_PICKLE_CALLABLES[(f"{_core}.multiarray", "scalar")] = _SCALAR
    NUMPY_PICKLE_CALLABLES[(f"{_core}.numeric", "_frombuffer")] = _FROMBUFFER


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that calls only the callables in `allowed` (default: NumPy arrays, dtypes and
    scalars; dicts, lists, tuples, numbers and strings need none). Subclasses widen `allowed` and
    say in `refusal` what their files should hold."""

    allowed: dict[tuple[str, str], Any] = NUMPY_PICKLE_CALLABLES
    refusal = "the file should hold only NumPy arrays, numbers, strings, lists and dicts"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: {self.refusal}")


def _fsync_file(path: Path) -> None:
    # Opened for writing because Windows refuses to flush a read-only handle.
    with open(path, "r+b") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; only POSIX lets a directory be opened for this.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` in one step.

    The temporary file sits beside ``path`` (same directory, hence same file system, which
    `os.replace` needs) under a hidden name ending in ``.tmp``. Missing parent directories are
    created. If the block raises anything (including ``KeyboardInterrupt``), the temporary file is
    removed and ``path`` keeps its previous content.

    Example::

        with atomic_write("out/model.pt") as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"atomic_write needs a file path; {str(path)!r} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # os.open with mode 0o666 lets the user's umask decide the permissions, as a plain open() would;
    # tempfile.mkstemp would leave the final file readable by its owner only.
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` ``obj`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def atomic_save_npz(path: str | os.PathLike, *, compress: bool = False, **arrays: np.ndarray) -> Path:
    """`numpy.savez` (or `numpy.savez_compressed` with ``compress=True``) the named ``arrays`` to
    ``path`` atomically; returns ``path``.

    The name is used as given: unlike `numpy.savez` on a path, no ``.npz`` is appended. Arrays of
    Python objects are refused (ValueError): every npz hmrlab writes loads with
    ``numpy.load(path, allow_pickle=False)``, so reading it can run no code.
    """
    if not arrays:
        raise ValueError("atomic_save_npz needs at least one array, e.g. atomic_save_npz(path, x=x)")
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    objects = [key for key, value in arrays.items() if value.dtype == object]
    if objects:
        raise ValueError(
            f"arrays {objects} hold Python objects; an npz must hold numbers or strings only "
            "(it is read with allow_pickle=False). Convert them, or leave them out."
        )
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)

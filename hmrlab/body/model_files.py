"""Read body-model files into plain NumPy arrays: `.npz`, and the licensed `.pkl` files without chumpy.

The SMPL (and some SMPL-X) pickles were written in Python 2 with chumpy, an autodiff library that no
longer imports on current NumPy: arrays such as ``shapedirs`` are chumpy ``Ch`` objects and
``J_regressor`` is a ``scipy.sparse`` matrix. Unpickling can run any callable the file names, so we
use a restricted unpickler that admits only NumPy's and scipy.sparse's reconstruction functions and
maps chumpy's ``Ch`` to a stand-in that keeps the wrapped array; everything else is refused.
`hmrlab.io.atomic_save_npz` then stores the arrays as a clean `.npz` that ``numpy.load`` reads
without pickle.
"""

from __future__ import annotations

import copyreg
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from hmrlab.io import NUMPY_PICKLE_CALLABLES, RestrictedUnpickler


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the array, drops chumpy's autodiff bookkeeping.

    chumpy pickles a ``Ch`` as its ``__dict__`` minus the unpicklable weak references
    (``Ch.__getstate__`` deletes ``_parents`` and ``_cache``): a dict whose ``'x'`` entry is the
    wrapped ndarray, beside bookkeeping entries (``_dirty_vars``, ``_itr``, ``_depends_on_deps``,
    ``_make_dense``, ``_make_sparse``). The object itself is created without arguments
    (``NEWOBJ`` under protocol 2, ``copy_reg._reconstructor`` under protocols 0 and 1).
    """

    array: np.ndarray | None = None

    def __setstate__(self, state: dict) -> None:
        self.array = state.get("x")


# Beyond NumPy's, what a body-model pickle may name, under Python 2 and Python 3 spellings.
_MODEL_CALLABLES = {
    **NUMPY_PICKLE_CALLABLES,
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("chumpy.ch", "Ch"): _ChumpyArray,
}
_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix")


class _ModelUnpickler(RestrictedUnpickler):
    """An unpickler that builds only arrays, sparse matrices and chumpy stand-ins."""

    allowed = _MODEL_CALLABLES
    refusal = (
        "a body-model pickle should hold only NumPy arrays, scipy.sparse matrices and chumpy arrays. "
        "Is this really an SMPL/SMPL-X model file?"
    )

    def find_class(self, module: str, name: str) -> object:
        # scipy moved its classes between private modules (scipy.sparse.csc -> scipy.sparse._csc).
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
            return getattr(scipy.sparse, name)
        return super().find_class(module, name)


def _as_array(value: object) -> np.ndarray | None:
    """A pickled model entry as a dense ndarray, or None for entries that are not arrays (dicts)."""
    if isinstance(value, _ChumpyArray):
        if value.array is None:
            raise pickle.UnpicklingError("a chumpy object without an 'x' array: only plain Ch arrays are supported")
        value = value.array
    if scipy.sparse.issparse(value):
        value = value.toarray()
    if isinstance(value, (dict, list, tuple)):
        return None
    array = np.asarray(value)
    return None if array.dtype == object else array


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        # latin1 turns Python 2's byte strings (NumPy's raw buffers among them) into str unchanged.
        content = _ModelUnpickler(handle, encoding="latin1").load()
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a {type(content).__name__}; a body-model pickle holds a dict of arrays")
    arrays = {str(key): _as_array(value) for key, value in content.items()}
    return {key: array for key, array in arrays.items() if array is not None}


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as error:
                # Pickled Python objects (SMPL-X's joint2num/part2num dicts) are metadata, not arrays.
                if "allow_pickle" not in str(error):
                    raise
    return arrays


def read_model_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a body-model file (``.npz`` or licensed ``.pkl``) by name, dense, as NumPy.

    chumpy arrays become ndarrays, scipy.sparse matrices dense ndarrays; entries that are not
    arrays (dicts of training metadata, pickled objects inside an npz) are left out. Pickles are read
    with a restricted unpickler: anything but NumPy, scipy.sparse and chumpy arrays raises
    `pickle.UnpicklingError`, so a file cannot run code on loading.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no body-model file at {path}")
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix == ".pkl":
        return _read_pickle(path)
    raise ValueError(f"body-model files are .npz or .pkl; got {path.name}")

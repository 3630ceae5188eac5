"""Read body-model files into plain NumPy arrays: `.npz`, and the licensed `.pkl` files without chumpy;
check that the arrays make a body model before anything is built from them.

The SMPL (and some SMPL-X) pickles were written in Python 2 with chumpy, an autodiff library that no
longer imports on current NumPy: arrays such as ``shapedirs`` are chumpy ``Ch`` objects and
``J_regressor`` is a ``scipy.sparse`` matrix. Unpickling can run any callable the file names, so we
use a restricted unpickler (`hmrlab.io.RestrictedUnpickler`) that admits only NumPy's reconstruction
functions and maps chumpy's ``Ch`` and scipy's sparse matrices to stand-ins that keep their state;
everything else is refused. A sparse matrix becomes a dense array here, after its indices have been
checked against its shape (scipy trusts a pickled matrix's indices: one out of range crashes the
interpreter in ``toarray``). An ``.npz`` is read member by member (`hmrlab.io.read_npz`), its object
members (SMPL-X's ``joint2num`` dicts) skipped unread. `check_model_arrays` then checks shapes,
dtypes, index ranges and finiteness. `hmrlab.io.atomic_save_npz` stores the arrays as a clean `.npz`
that ``numpy.load`` reads without pickle.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hmrlab.io import (
    MAX_ARRAY_BYTES,
    NUMPY_PICKLE_CALLABLES,
    OBJECT_TYPE,
    RestrictedUnpickler,
    describe_bytes,
    input_file,
    read_npz,
    read_pickle,
)
from hmrlab.validation import check_parents

# The arrays smplx reads to build each model (SMPL-X adds hand PCA and face landmarks).
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "smpl": ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"),
}
REQUIRED_KEYS["smplx"] = REQUIRED_KEYS["smpl"] + (
    "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "lmk_faces_idx", "lmk_bary_coords",
)
# SMPL-X's face contour (smplx's use_face_contour=True), when a file has it.
OPTIONAL_KEYS = {"smpl": (), "smplx": ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")}
NUM_JOINTS = {"smpl": 24, "smplx": 55}
_FILE = "body-model file (.npz, or a licensed SMPL/SMPL-X .pkl)"
_FIX = (
    "The file is corrupt or not an SMPL/SMPL-X model: download the licensed model again "
    "(https://smpl.is.tue.mpg.de, https://smpl-x.is.tue.mpg.de) or rebuild the free one with "
    "`python -m tools.build_free_model`."
)


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch``: keeps the array, drops chumpy's autodiff bookkeeping.

    chumpy pickles a ``Ch`` as its ``__dict__`` minus the unpicklable weak references
    (``Ch.__getstate__`` deletes ``_parents`` and ``_cache``): a dict whose ``'x'`` entry is the
    wrapped ndarray, beside bookkeeping entries (``_dirty_vars``, ``_itr``, ``_depends_on_deps``,
    ``_make_dense``, ``_make_sparse``). The object itself is created without arguments
    (``NEWOBJ`` under protocol 2, ``copy_reg._reconstructor`` under protocols 0 and 1).
    """

    array: Any = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"a chumpy array's state should be a dict; got a {type(state).__name__}")
        self.array = state.get("x")


class _SparseMatrix:
    """Stand-in for a pickled ``scipy.sparse`` matrix: its state (``data``, ``indices``, ``indptr``
    or ``row``/``col``/``coords``, ``_shape``), kept unchecked until `_sparse_to_dense`."""

    format = ""
    state: dict = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"a scipy.sparse matrix's state should be a dict; got a {type(state).__name__}")
        self.state = state


class _Csc(_SparseMatrix):
    format = "csc"


class _Csr(_SparseMatrix):
    format = "csr"


class _Coo(_SparseMatrix):
    format = "coo"


_SPARSE_CLASSES = {"csc_matrix": _Csc, "csr_matrix": _Csr, "coo_matrix": _Coo}
_STAND_INS = (_ChumpyArray, _Csc, _Csr, _Coo)


def _reconstructor(cls: Any, base: Any, state: Any) -> object:
    # copy_reg._reconstructor(cls, object, None), how protocols 0 and 1 create chumpy and scipy objects.
    if not any(cls is allowed for allowed in _STAND_INS) or base is not OBJECT_TYPE or state is not None:
        raise ValueError(f"refused copy_reg._reconstructor{(cls, base, state)!r}")
    return cls.__new__(cls)


# Beyond NumPy's, what a body-model pickle may name, under Python 2 and Python 3 spellings.
_MODEL_CALLABLES = {
    **NUMPY_PICKLE_CALLABLES,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): OBJECT_TYPE,
    ("builtins", "object"): OBJECT_TYPE,
    ("__builtin__", "set"): set,
    ("builtins", "set"): set,
    ("chumpy.ch", "Ch"): _ChumpyArray,
}


class _ModelUnpickler(RestrictedUnpickler):
    """An unpickler that builds only arrays and the chumpy and scipy.sparse stand-ins."""

    allowed = _MODEL_CALLABLES
    classes = _STAND_INS
    refusal = (
        "a body-model pickle should hold only NumPy arrays, scipy.sparse matrices and chumpy arrays. "
        "Is this really an SMPL/SMPL-X model file?"
    )

    def find_class(self, module: str, name: str) -> object:
        # scipy moved its classes between private modules (scipy.sparse.csc -> scipy.sparse._csc).
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        return super().find_class(module, name)


def _index_array(value: Any, what: str, length: int | None, bound: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.ndim != 1 or (length is not None and len(array) != length):
        wanted = f"({length},)" if length is not None else "(N,)"
        raise ValueError(f"{what} must be a 1-D integer array of shape {wanted}; got {array.dtype} {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= bound):
        raise ValueError(f"{what} run {int(array.min())}..{int(array.max())}, outside 0..{bound - 1}")
    return array.astype(np.int64)


def _sparse_to_dense(matrix: _SparseMatrix) -> np.ndarray:
    """The dense array of a pickled sparse matrix, after checking every index against its shape."""
    state = matrix.state
    shape = state.get("_shape", state.get("shape"))
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"a sparse matrix's shape must be two sizes >= 0; got {shape!r}")
    data = np.asarray(state.get("data"))
    if data.dtype.kind not in "biuf" or data.ndim != 1:
        raise ValueError(f"a sparse matrix's data must be a 1-D numeric array; got {data.dtype} {data.shape}")
    nbytes = math.prod(shape) * data.dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ValueError(f"a sparse matrix of shape {shape} would take {describe_bytes(nbytes)} dense")
    rows_count, cols_count = shape
    if matrix.format == "coo":
        coords = state.get("coords", (state.get("row"), state.get("col")))
        if not isinstance(coords, tuple) or len(coords) != 2:
            raise ValueError("a COO matrix needs its row and column indices")
        rows = _index_array(coords[0], "its row indices", len(data), rows_count)
        cols = _index_array(coords[1], "its column indices", len(data), cols_count)
    else:
        major, minor = (cols_count, rows_count) if matrix.format == "csc" else (rows_count, cols_count)
        indptr = _index_array(state.get("indptr"), "its indptr", major + 1, len(data) + 1)
        if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("its indptr must start at 0 and never decrease")
        nnz = int(indptr[-1])
        indices = _index_array(np.asarray(state.get("indices"))[:nnz], "its indices", nnz, minor)
        outer = np.repeat(np.arange(major), np.diff(indptr))
        rows, cols = (indices, outer) if matrix.format == "csc" else (outer, indices)
        data = data[:nnz]
    dense = np.zeros(shape, dtype=data.dtype)
    np.add.at(dense, (rows, cols), data)  # duplicates add up, as scipy's toarray
    return dense


def _as_array(value: object) -> np.ndarray | None:
    """A pickled model entry as a dense ndarray, or None for entries that are not arrays (dicts)."""
    if isinstance(value, _ChumpyArray):
        if value.array is None:
            raise ValueError("it is a chumpy object without an 'x' array: only plain Ch arrays are supported")
        value = value.array
    if isinstance(value, _SparseMatrix):
        value = _sparse_to_dense(value)
    if isinstance(value, (dict, list, tuple, set)):
        return None
    array = np.asarray(value)
    return None if array.dtype == object else array


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    content = read_pickle(path, _FILE, _ModelUnpickler)
    if not isinstance(content, dict):
        raise ValueError(f"{path} holds a {type(content).__name__}; a body-model pickle holds a dict of arrays. {_FIX}")
    arrays = {}
    for key, value in content.items():
        try:
            array = _as_array(value)
        except ValueError as error:
            raise ValueError(f"{path}: the entry {key!r} is not a valid array: {error}. {_FIX}") from error
        if array is not None:
            arrays[str(key)] = array
    return arrays


def read_model_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a body-model file (``.npz`` or licensed ``.pkl``) by name, dense, as NumPy.

    chumpy arrays become ndarrays, scipy.sparse matrices dense ndarrays (their indices checked first);
    entries that are not arrays (dicts of training metadata, pickled objects inside an npz) are left
    out. Pickles are read with a restricted unpickler: anything but NumPy, scipy.sparse and chumpy
    arrays is refused, so a file cannot run code on loading. The arrays present are checked by
    `check_model_arrays`. Raises `FileNotFoundError` for a missing file and `ValueError` naming the
    file, what is wrong and what to do for anything else.
    """
    return check_model_arrays(read_unchecked(path), None, str(path))


def read_unchecked(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """`read_model_file` without `check_model_arrays`, for callers that check for a kind themselves."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no body-model file at {path}")
    path = input_file(path, _FILE)
    if path.suffix == ".npz":
        return read_npz(path, _FILE, objects="skip")
    if path.suffix == ".pkl":
        return _read_pickle(path)
    raise ValueError(f"body-model files are .npz or .pkl; got {path.name}")


def _format(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def check_model_arrays(
    arrays: Mapping[str, np.ndarray], kind: str | None, where: str
) -> dict[str, np.ndarray]:
    """`arrays` if they make a body model of `kind` ('smpl', 'smplx', or None: check what is there),
    else `ValueError` naming `where` (the file), the array and what it should be.

    With V vertices, J joints and F faces: ``v_template`` (V, 3), ``shapedirs`` (V, 3, B),
    ``posedirs`` (V, 3, 9(J-1)), ``J_regressor`` (J, V), ``weights`` (V, J), ``kintree_table``
    (2, J) whose first row lists each joint's parent before the joint (J = 24 for SMPL, 55 for
    SMPL-X), ``f`` (F, 3) vertex indices below V; SMPL-X's ``hands_components{l,r}`` (K, 45),
    ``hands_mean{l,r}`` (45,), ``lmk_faces_idx`` (L,) face indices below F, ``lmk_bary_coords`` (L, 3);
    the free model's ``extra_vertex_ids`` below V. Geometry is floating point and finite, indices
    are integers.
    """
    arrays = dict(arrays)
    if kind is not None:
        missing = [key for key in REQUIRED_KEYS[kind] if key not in arrays]
        if missing:
            raise ValueError(
                f"{where} lacks the keys {missing} that a {kind} model needs (it has {sorted(arrays)}). "
                f"Is it a {kind.upper()} model file? Pass kind='smpl' or 'smplx' to match it."
            )
    problems: list[str] = []
    sizes: dict[str, int] = {}

    def check(key: str, shape: tuple[int | str, ...], kinds: str) -> np.ndarray | None:
        """The array `key` if present with `shape` (a str names a size, fixed by its first use)."""
        if key not in arrays:
            return None
        array = np.asarray(arrays[key])
        wanted = tuple(sizes.get(n, n) if isinstance(n, str) else n for n in shape)
        if array.dtype.kind not in kinds:
            what = "floating-point numbers" if kinds == "f" else "integers"
            problems.append(f"{key} must hold {what}; it holds {array.dtype}")
            return None
        if array.ndim != len(shape) or any(isinstance(w, int) and s != w for s, w in zip(array.shape, wanted)):
            named = _format(tuple(f"{n}={sizes[n]}" if n in sizes else n for n in shape))
            problems.append(f"{key} must have shape {named}; it has {_format(array.shape)}")
            return None
        for name, size in zip(shape, array.shape):
            if isinstance(name, str):
                sizes.setdefault(name, size)
        return array

    def indices(key: str, array: np.ndarray | None, bound: str) -> None:
        if array is not None and bound in sizes and array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high >= sizes[bound]:
                problems.append(f"{key} holds {low}..{high}; indices must lie in 0..{sizes[bound] - 1} ({bound})")

    joints = NUM_JOINTS.get(kind, "J")
    if kind is not None:
        sizes["J"] = joints
    check("v_template", ("V", 3), "f")
    kintree = check("kintree_table", (2, "J"), "iu")
    check("J_regressor", ("J", "V"), "f")
    check("weights", ("V", "J"), "f")
    check("shapedirs", ("V", 3, "B"), "f")
    if "J" in sizes:
        check("posedirs", ("V", 3, 9 * (sizes["J"] - 1)), "f")
    indices("f", check("f", ("F", 3), "iu"), "V")
    for side in "lr":
        check(f"hands_components{side}", ("K", 45), "f")
        check(f"hands_mean{side}", (45,), "f")
    indices("lmk_faces_idx", check("lmk_faces_idx", ("L",), "iu"), "F")
    check("lmk_bary_coords", ("L", 3), "f")
    indices("dynamic_lmk_faces_idx", check("dynamic_lmk_faces_idx", ("D", "C"), "iu"), "F")
    check("dynamic_lmk_bary_coords", ("D", "C", 3), "f")
    indices("extra_vertex_ids", check("extra_vertex_ids", ("E",), "iu"), "V")
    check("extra_vertex_names", ("E",), "US")
    check("J_regressor_h36m", ("H", "V"), "f")
    check("downsample", ("v", "V"), "f")
    check("upsample", ("V", "v"), "f")
    indices("coarse_faces", check("coarse_faces", ("Fc", 3), "iu"), "v")
    if kintree is not None:
        parents = kintree[0].astype(np.int64)
        parents[0] = -1  # stored as an unsigned -1 (4294967295) in the model files
        try:
            check_parents(parents, len(parents))
        except ValueError as error:
            problems.append(f"kintree_table's first row is not a kinematic tree ({error})")
    for key, array in arrays.items():
        array = np.asarray(array)
        if array.dtype.kind == "O" or array.dtype.hasobject:
            problems.append(f"{key} holds Python objects")
        elif array.dtype.kind in "fc" and not np.isfinite(array).all():
            problems.append(f"{key} holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
    if problems:
        raise ValueError(f"{where} is not a valid body model: " + "; ".join(problems) + f". {_FIX}")
    return arrays

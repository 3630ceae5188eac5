"""Files: atomic writes (the old file or the complete new one) and one restricted reader per kind of file.

A notebook interrupted while saving (the stop button, a kernel restart, a full disk) must not leave
a half-written checkpoint that the next "load the checkpoint if it exists" cell then fails on. Every
writer here writes into a temporary file in the destination's own directory, flushes it to disk
(``fsync``), and only then renames it over the destination with `os.replace`: within one file
system, a reader then sees either the old file or the new one, never a mixture.

Reading is guarded too, with one reader per kind of file; each names the file, what is wrong with it
and what to do in a `ValueError` (`FileNotFoundError` for a missing file):

- `read_pickle`: `RestrictedUnpickler` builds only NumPy arrays, dtypes, scalars and plain containers
  (a pickle can otherwise name any callable to run), and checks every array's declared shape against
  the bytes it carries;
- `read_npz`: each ``.npy`` member's header is read and its declared size checked against the
  member's own size before anything is allocated; object members are unpickled by
  `RestrictedUnpickler` (or skipped), never by ``numpy.load(allow_pickle=True)``;
- `read_json`: no ``NaN``/``Infinity`` constants, no nesting deeper than Python can parse (or than
  ``max_depth``), no file larger than ``max_bytes``.

No file may unpack to more than `MAX_ARRAY_BYTES`.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import torch


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


# --- Reading ------------------------------------------------------------------------------------------

MAX_ARRAY_BYTES = 4 * 2**30
"""The most one file may unpack to (4 GiB: SMPL-X's pose directions take 122 MB, Human3.6M's largest
2D file about 300 MB). A header declaring more is refused before anything is allocated."""

_REFETCH = "Download, copy or write the file again; if it keeps failing, it is not a file hmrlab can read."
_NO_CODE = "hmrlab never runs code named by a data file: use files from a source you trust."


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something `RestrictedUnpickler` does not build (a callable, a class, a state)."""


class _BadFile(ValueError):
    """What is wrong with a file (`problem`, a phrase) and what to do about it (`fix`); readers add the path."""

    def __init__(self, problem: str, fix: str = _REFETCH):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def describe_bytes(count: int) -> str:
    """A byte count for people: ``"2.4 PB"``, ``"512 bytes"``."""
    if count < 1024:
        return f"{count} bytes"
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        count /= 1000
        if count < 1000:
            break
    return f"{count:.1f} {unit}"


def _file_error(path: Path, description: str, error: BaseException, member: str | None = None) -> ValueError:
    """The ValueError a reader raises: the file (and member), what it should be, what is wrong, what to do."""
    if isinstance(error, _BadFile):
        problem, fix = error.problem, error.fix
    elif isinstance(error, _Refused):
        problem, fix = str(error), _NO_CODE
    elif isinstance(error, (EOFError, zipfile.BadZipFile)) or "truncated" in str(error):
        problem, fix = f"it is truncated or corrupt ({type(error).__name__}: {error})", _REFETCH
    elif isinstance(error, RecursionError):
        problem, fix = "it is nested deeper than Python can parse (RecursionError)", _REFETCH
    else:
        problem, fix = f"it is corrupt or not in the expected format ({type(error).__name__}: {error})", _REFETCH
    where = f"{path} (member {member!r})" if member else str(path)
    end = "" if problem.endswith((".", "?", "!")) else "."
    return ValueError(f"{where}: cannot read this {description}: {problem}{end} {fix}")


def input_file(path: str | os.PathLike, description: str) -> Path:
    """`path` as a Path if it is a file; `FileNotFoundError` (absent) or `ValueError` (a folder) naming
    `description` ("3DPW sequence file") otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no {description} at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file (a folder?); pass the {description} itself")
    return path


@contextmanager
def _opened(path: Path, description: str) -> Iterator[IO[bytes]]:
    """`path` opened for reading, after checks every reader shares: readable, not empty, not too big."""
    try:
        handle = open(path, "rb")
    except PermissionError as error:
        raise ValueError(
            f"{path}: cannot read this {description}: permission denied. Make it readable "
            f"(chmod u+r {path}) or copy it to a folder you can read."
        ) from error
    except OSError as error:
        raise ValueError(f"{path}: cannot open this {description}: {error.strerror or error}") from error
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise ValueError(f"{path}: cannot read this {description}: it is empty (0 bytes). {_REFETCH}")
        if size > MAX_ARRAY_BYTES:
            raise ValueError(
                f"{path}: cannot read this {description}: it is {describe_bytes(size)}, more than hmrlab's "
                f"limit of {describe_bytes(MAX_ARRAY_BYTES)} (hmrlab.io.MAX_ARRAY_BYTES). Is it the right file?"
            )
        yield handle


def _read_all(path: Path, description: str) -> bytes:
    with _opened(path, description) as handle:
        try:
            return handle.read()
        except OSError as error:
            raise ValueError(f"{path}: cannot read this {description}: {error.strerror or error}") from error


# --- Pickles -------------------------------------------------------------------------------------------

class _Name:
    """What a pickle gets for a class it may name only as an argument (``numpy.ndarray`` given to
    ``_reconstruct``, ``object`` given to ``copyreg._reconstructor``): a token, not the class, so that
    no pickle can call or instantiate it directly."""

    def __init__(self, name: str, value: type):
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return self.name


ARRAY_TYPE = _Name("numpy.ndarray", np.ndarray)
OBJECT_TYPE = _Name("object", object)
_REAL_RECONSTRUCT = np.zeros(0).__reduce_ex__(2)[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.float64(0).__reduce__()[0]
_DTYPE_CODE = re.compile(r"[<>|=]?[?biufcSUVO][0-9]{0,6}")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # NumPy pickles an array as _reconstruct(ndarray, (0,), b'b') and then BUILDs its real state.
    if subtype is not ARRAY_TYPE or not isinstance(shape, tuple) or math.prod(shape) > 1:
        raise _Refused(f"refused numpy _reconstruct{(subtype, shape, dtype)!r}: only plain arrays are built")
    return _REAL_RECONSTRUCT(np.ndarray, shape, dtype)


def _dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    # copy=True always: a BUILD must not rewrite NumPy's shared float64 (or other) dtype.
    if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code):
        raise _Refused(f"refused the dtype {code!r}: only plain numeric, string and object dtypes are built")
    return np.dtype(code, bool(align), True)


def _latin1_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # How Python 3 writes bytes (array buffers among them) under protocol 2: _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise _Refused(f"refused _codecs.encode(..., {encoding!r}): only latin1 byte strings are built")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    # Python 3 writes b'' under protocol 2 as bytes(); bytes(10**12) would allocate a terabyte.
    if not args:
        return b""
    raise _Refused("refused bytes(...) with arguments: only the empty bytes() is built")


NUMPY_PICKLE_CALLABLES: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): ARRAY_TYPE,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _bytes,
    ("builtins", "bytes"): _bytes,
}
"""What a pickle of arrays may name, by (module, name), under NumPy 1's and 2's (and Python 2's) spellings."""
for _core in ("numpy.core", "numpy._core"):
    NUMPY_PICKLE_CALLABLES[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    NUMPY_PICKLE_CALLABLES[(f"{_core}.multiarray", "scalar")] = _SCALAR
    NUMPY_PICKLE_CALLABLES[(f"{_core}.numeric", "_frombuffer")] = _FROMBUFFER


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(type(n) is int and n >= 0 for n in value):
        raise _Refused(f"refused an array state with the shape {value!r}: a shape is a tuple of sizes >= 0")
    return tuple(value)


def _check_array_state(state: Any) -> None:
    """An ndarray's pickled state (version, shape, dtype, fortran, data) whose data match its shape."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _Refused("refused an array state that is not NumPy's (version, shape, dtype, order, data)")
    shape, dtype, _, data = state[-4:]
    shape = _shape(shape)
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"refused an array state with the dtype {dtype!r}")
    count = math.prod(shape)
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            raise _Refused(f"an object array of shape {shape} carries {_length(data)} items, not {count}")
        return
    if not isinstance(data, (bytes, str)) or len(data) != count * dtype.itemsize:
        raise _Refused(
            f"an array of shape {shape} and dtype {dtype} ({describe_bytes(count * dtype.itemsize)}) carries "
            f"{_length(data)} bytes of data"
        )


def _length(value: Any) -> str:
    return str(len(value)) if isinstance(value, (bytes, str, list, tuple)) else f"a {type(value).__name__}, not"


def _check_dtype_state(state: Any) -> None:
    # (version, byte order, subarray, names, fields, itemsize, alignment, flags[, metadata]); plain dtypes
    # have no subarray, names or fields: structured dtypes are refused.
    if (
        not isinstance(state, tuple)
        or len(state) not in (8, 9)
        or state[0] not in (3, 4)
        or state[1] not in ("<", ">", "|", "=")
        or any(part is not None for part in state[2:5] + state[8:])
        or not all(type(n) is int and -1 <= n <= 2**24 for n in state[5:8])
    ):
        raise _Refused(f"refused the dtype state {state!r}: only plain numeric, string and object dtypes are built")


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that calls only the callables in `allowed` (default `NUMPY_PICKLE_CALLABLES`: NumPy
    arrays, dtypes and scalars; dicts, lists, tuples, numbers and strings need none), creates only the
    classes in `classes` and checks every array's declared shape against the data it carries.

    It is the pure-Python unpickler (``pickle._Unpickler``), whose opcodes can be checked one by one:
    REDUCE, NEWOBJ and INST/OBJ may call only what `allowed` holds; BUILD may set the state only of
    arrays (the shape, dtype and data length checked, so no header can make it allocate more than the
    file holds), plain dtypes and `classes` (which define ``__setstate__``). Subclasses widen `allowed`
    and `classes` and say in `refusal` what their files should hold.
    """

    allowed: dict[tuple[str, str], Any] = NUMPY_PICKLE_CALLABLES
    classes: tuple[type, ...] = ()
    refusal = "the file should hold only NumPy arrays, numbers, strings, lists and dicts"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise _Refused(f"refused to load {module}.{name}: {self.refusal}")

    def _callable(self, func: Any) -> Any:
        if isinstance(func, _Name) or not callable(func) or not any(func is v for v in self.allowed.values()):
            raise _Refused(f"refused to call {func!r}: {self.refusal}")
        return func

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self._callable(self.stack[-1])
        if not isinstance(args, tuple):
            raise _Refused("refused a REDUCE whose arguments are not a tuple")
        self.stack[-1] = func(*args)

    def _new(self, cls: Any, args: Any, kwargs: Any = None) -> Any:
        if not any(cls is allowed for allowed in self.classes):
            raise _Refused(f"refused to create a {cls!r}: {self.refusal}")
        if args or kwargs:
            raise _Refused(f"refused to create a {cls.__name__} with arguments")
        return cls.__new__(cls)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        self.append(self._new(self.stack.pop(), args))

    def _load_newobj_ex(self) -> None:
        kwargs, args = self.stack.pop(), self.stack.pop()
        self.append(self._new(self.stack.pop(), args, kwargs))

    def _instantiate(self, klass: Any, args: list) -> None:  # INST and OBJ
        self.append(self._callable(klass)(*args))

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            _check_array_state(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(state)
        elif not any(type(inst) is allowed for allowed in self.classes):
            raise _Refused(f"refused to set the state of a {type(inst).__name__}: {self.refusal}")
        inst.__setstate__(state)

    def get_extension(self, code: int) -> None:  # EXT1/2/4: copyreg's registry (and cache) would skip find_class
        raise _Refused(f"refused the extension code {code}: a data file never uses copyreg's extension registry")

    dispatch = {
        **pickle._Unpickler.dispatch,
        pickle.REDUCE[0]: _load_reduce,
        pickle.NEWOBJ[0]: _load_newobj,
        pickle.NEWOBJ_EX[0]: _load_newobj_ex,
        pickle.BUILD[0]: _load_build,
    }


def unpickle(data: bytes, unpickler: type[RestrictedUnpickler] = RestrictedUnpickler) -> Any:
    """The object pickled in `data` (Python 2 or 3), built by `unpickler`; raises what it raises."""
    # latin1 turns Python 2's byte strings (NumPy's raw buffers among them) into str unchanged.
    return unpickler(io.BytesIO(data), encoding="latin1").load()


def read_pickle(
    path: str | os.PathLike,
    description: str = "pickle file",
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
) -> Any:
    """The object pickled in the file `path`, built by `unpickler` (default: arrays and plain containers).

    Raises `FileNotFoundError` for a missing file, `ValueError` naming the file, what is wrong
    (truncated, corrupt, a refused callable) and what to do for anything else.
    """
    path = input_file(path, description)
    data = _read_all(path, description)
    try:
        return unpickle(data, unpickler)
    except Exception as error:  # a truncated or hostile pickle fails in many ways: say which, and where
        raise _file_error(path, description, error) from error


# --- npz archives --------------------------------------------------------------------------------------

_SKIP = object()


def _read_npy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, objects: str, unpickler: type[RestrictedUnpickler]
) -> Any:
    """One ``.npy`` member: its header read and its declared size checked before any allocation."""
    if info.flag_bits & 0x1:
        raise _BadFile("it is encrypted", "hmrlab reads plain npz files, as numpy.savez writes them.")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _BadFile(f"it uses .npy format version {version}", "Save it again with numpy.savez.")
        if any(n < 0 for n in shape):
            raise _BadFile(f"its header declares the shape {shape}")
        if dtype.hasobject:
            if objects == "skip":
                return _SKIP
            array = unpickle(member.read(), unpickler)
            if not isinstance(array, np.ndarray) or array.shape != shape:
                raise _BadFile(f"it should unpickle to an array of shape {shape}; got a {type(array).__name__}")
            # VideoPose3D stores each dict as a 0-d object array; hand back the dict itself.
            return array.item() if array.shape == () else array
        nbytes = math.prod(shape) * dtype.itemsize
        available = info.file_size - member.tell()
        if nbytes > available:
            raise _BadFile(
                f"its header declares a {shape} {dtype} array ({describe_bytes(nbytes)}) but the member holds "
                f"{describe_bytes(max(available, 0))} of data",
                "The file is truncated or corrupt. " + _REFETCH,
            )
        buffer = bytearray(nbytes)
        view, filled = memoryview(buffer), 0
        while filled < nbytes:
            count = member.readinto(view[filled:])
            if not count:
                raise _BadFile(f"its data end after {filled} of {nbytes} bytes (truncated)")
            filled += count
        while member.read(1 << 20):  # to the end, where zipfile checks the CRC
            pass
    if dtype.itemsize == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_npz(
    path: str | os.PathLike,
    description: str = "npz file",
    *,
    objects: Literal["unpickle", "skip"] = "unpickle",
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
) -> dict[str, Any]:
    """All members of the ``.npz`` `path` by name (without ``.npy``): numeric and string arrays, and
    object arrays unpickled by `unpickler` (0-d ones come back as the object they wrap, e.g.
    VideoPose3D's dicts), or left out with ``objects="skip"``.

    Each member's ``.npy`` header is read first and the array it declares checked against the bytes
    the member holds, so a corrupt header fails here rather than in an allocation; the archive may
    unpack to at most `MAX_ARRAY_BYTES`. Raises `FileNotFoundError` for a missing file and
    `ValueError` naming the file, the member, what is wrong and what to do for anything else.
    """
    path = input_file(path, description)
    with _opened(path, description) as handle:
        try:
            archive = zipfile.ZipFile(handle)
        except Exception as error:
            raise _file_error(path, description, _BadFile(
                f"it is not a complete npz (zip) archive ({type(error).__name__}: {error}); it may be truncated"
            )) from error
        with archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > MAX_ARRAY_BYTES:
                raise _file_error(path, description, _BadFile(
                    f"it declares {describe_bytes(total)} of uncompressed data, more than hmrlab's limit of "
                    f"{describe_bytes(MAX_ARRAY_BYTES)} (hmrlab.io.MAX_ARRAY_BYTES)"
                ))
            content = {}
            for info in infos:
                try:
                    value = _read_npy_member(archive, info, objects, unpickler)
                except Exception as error:
                    raise _file_error(path, description, error, info.filename) from error
                if value is not _SKIP:
                    content[info.filename.removesuffix(".npy")] = value
    return content


# --- JSON ----------------------------------------------------------------------------------------------

def _no_constant(name: str) -> None:
    raise _BadFile(f"it holds the non-finite number {name}", "JSON numbers must be finite; fix the writer.")


def _json_depth(data: bytes) -> int:
    """Deepest nesting of brackets outside strings (vectorised; strings with escapes scanned by regex)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if (raw == ord("\\")).any():  # escaped quotes: walk the tokens that matter
        depth = deepest = 0
        in_string = False
        for token in re.finditer(rb'\\.|"|[\[\]{}]', data):
            text = token.group()
            if text == b'"':
                in_string = not in_string
            elif not in_string and len(text) == 1:
                depth += 1 if text in b"[{" else -1
                deepest = max(deepest, depth)
        return deepest
    in_string = np.cumsum(raw == ord('"')) % 2 == 1
    step = np.isin(raw, (ord("["), ord("{"))).astype(np.int64) - np.isin(raw, (ord("]"), ord("}")))
    step[in_string] = 0
    return int(np.cumsum(step).max(initial=0))



def read_json(
    path: str | os.PathLike, description: str = "JSON file", *, max_bytes: int | None = None,
    max_depth: int | None = None,
) -> Any:
    """The JSON value in the UTF-8 file `path`. ``NaN`` and ``Infinity`` (which Python's json accepts) are
    refused, and so is nesting deeper than Python can parse; files larger than ``max_bytes`` or nested
    deeper than ``max_depth`` are refused before parsing. Raises `FileNotFoundError` for a missing
    file, `ValueError` naming the file, what is wrong and what to do for anything else."""
    path = input_file(path, description)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"{path}: {size / 2**20:.0f} MiB is larger than the {max_bytes / 2**20:.0f} MiB allowed "
                         f"for a {description}; split it, or pass a larger max_bytes if you trust it")
    data = _read_all(path, description)
    depth = _json_depth(data) if max_depth is not None else 0
    if max_depth is not None and depth > max_depth:
        raise ValueError(f"{path}: JSON nested {depth} deep (a {description} nests at most {max_depth} levels); "
                         "is it the right file?")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        problem = _BadFile(f"it is not valid JSON (truncated or corrupt?): {error}")
        raise _file_error(path, description, problem) from error
    except UnicodeDecodeError as error:
        raise _file_error(path, description, _BadFile(f"it is not UTF-8 text: {error}")) from error
    except (_BadFile, RecursionError, ValueError, MemoryError) as error:
        raise _file_error(path, description, error) from error

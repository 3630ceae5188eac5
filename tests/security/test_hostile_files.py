"""Hostile, corrupt and truncated files against every hmrlab reader: no code runs, nothing crashes, and
every refusal is a ValueError/FileNotFoundError naming the file and what is wrong.

References: the standard library's trusting ``pickle.loads`` and smplx's own ``np.load(allow_pickle=True)``
do run each payload (the positive controls below), so a payload that does not run under hmrlab was
refused, not harmless; a crash in native code is caught by running it in a subprocess.
"""

from __future__ import annotations

import ast
import builtins
import copyreg
import functools
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import numpy.testing
import pytest
import scipy.sparse

import hmrlab.io
from hmrlab import paths
from hmrlab.body import MODEL_DIR_ENV, body_model_arrays, load_body_model, read_model_file
from hmrlab.body.skeletons import SMPL_24, SMPLX_55
from hmrlab.data import safe_files
from hmrlab.data.coco import load_coco_keypoints
from hmrlab.data.h36m import load_h36m
from hmrlab.data.pw3d import load_3dpw, write_3dpw
from hmrlab.data.synth import is_cached, load_h36m_cameras, load_smpl_params

REPO = Path(__file__).resolve().parents[2]
FIXTURES = paths.FIXTURES
PW3D_FIXTURE = FIXTURES / "3dpw" / "sequenceFiles" / "test" / "courtyard_tiny_00.pkl"
H36M_3D, H36M_2D = FIXTURES / "h36m" / "data_3d_h36m.npz", FIXTURES / "h36m" / "data_2d_h36m_gt.npz"
COCO_FIXTURE = FIXTURES / "coco" / "person_keypoints_tiny.json"
SYNTH = paths.SYNTH_H36M


# --- Files -------------------------------------------------------------------------------------------

def tiny_model(kind: str = "smpl", num_vertices: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """A small valid SMPL (24 joints) or SMPL-X (55 joints) layout, float32 as the model files."""
    rng = np.random.default_rng(seed)
    parents = (SMPL_24 if kind == "smpl" else SMPLX_55).parents
    joints = len(parents)
    regressor = rng.random((joints, num_vertices))
    arrays = {
        "v_template": rng.normal(size=(num_vertices, 3)),
        "shapedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 10 if kind == "smpl" else 20)),
        "posedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 9 * (joints - 1))),
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": rng.dirichlet(np.ones(joints), size=num_vertices),
        "kintree_table": np.array([[4294967295, *parents[1:]], range(joints)], dtype=np.int64),
        "f": rng.integers(0, num_vertices, size=(2 * num_vertices, 3)).astype(np.uint32),
    }
    if kind == "smplx":
        for side in "lr":
            arrays[f"hands_components{side}"] = rng.normal(size=(45, 45))
            arrays[f"hands_mean{side}"] = rng.normal(size=45)
        arrays["lmk_faces_idx"] = rng.integers(0, 2 * num_vertices, size=51)
        arrays["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def object_member(obj: object, shape: tuple = ()) -> bytes:
    """An ``.npy`` member holding `obj` pickled, as ``np.save`` writes object arrays."""
    array = np.empty(shape, dtype=object)
    array[...] = obj
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": shape})
    pickle.dump(array, buffer, protocol=2)
    return buffer.getvalue()


def write_npz(path: Path, members: dict[str, bytes | np.ndarray]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            archive.writestr(f"{name}.npy", value if isinstance(value, bytes) else npy_bytes(value))
    return path


def huge_header_member(shape: tuple = (10**7, 10**7, 3), descr: str = "<f8", data: bytes = b"\0" * 24) -> bytes:
    """An ``.npy`` member whose header declares `shape` (2.4 PB by default) over a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


# --- Payloads ----------------------------------------------------------------------------------------

class Payload:
    """Pickles as ``func(*args)``: what a hostile file asks the unpickler to call."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: Path, work: Path) -> dict[str, object]:
    """One object per kind of payload; unpickled by a trusting loader, each creates `marker`."""
    command = f"touch {marker}"
    inner = work / "inner.pkl"
    inner.write_bytes(pickle.dumps(Payload(os.system, (command,))))
    return {
        "os.system": Payload(os.system, (command,)),
        "builtins.eval": Payload(builtins.eval, (f"__import__('os').system({command!r})",)),
        "builtins.exec": Payload(builtins.exec, (f"import os; os.system({command!r})",)),
        "functools.partial": Payload(functools.partial(os.system, command), ()),
        "numpy.testing": Payload(numpy.testing.runstring, (f"import os; os.system({command!r})", {})),
        "subprocess.call": Payload(subprocess.call, (["touch", str(marker)],)),
        "numpy.load": Payload(np.load, (str(inner), None, True)),
    }


def raw_pickles(marker: Path) -> dict[str, bytes]:
    """Payloads written opcode by opcode: protocol 0 INST, protocol 4 STACK_GLOBAL, and copyreg's
    extension registry (EXT1), which names a callable by number."""
    command = f"touch {marker}".encode()
    return {
        "INST os.system": b"(S'" + command + b"'\nios\nsystem\n.",
        "STACK_GLOBAL": b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(command)]) + command + b"\x85R.",
        "EXT1 os.system": b"\x80\x02\x82\xf0\x8c" + bytes([len(command)]) + command + b"\x85R.",
    }


@pytest.fixture()
def extension_registered():
    """EXT1 240 names os.system while the test runs (copyreg's registry is per process)."""
    copyreg.add_extension("os", "system", 240)
    yield
    copyreg.remove_extension("os", "system", 240)


def test_payloads_run_under_a_trusting_loader(tmp_path, extension_registered) -> None:
    """Positive control: each payload is live (so its refusal below is what keeps the marker away)."""
    for name, payload in payloads(tmp_path / "marker", tmp_path).items():
        pickle.loads(pickle.dumps(payload, protocol=2))
        assert (tmp_path / "marker").exists(), name
        (tmp_path / "marker").unlink()
    for name, data in raw_pickles(tmp_path / "marker").items():
        pickle.loads(data)
        assert (tmp_path / "marker").exists(), name
        (tmp_path / "marker").unlink()


def pickle_readers() -> dict[str, callable]:
    return {
        "hmrlab.io.read_pickle": hmrlab.io.read_pickle,
        "safe_files.read_pickle": safe_files.read_pickle,
        "read_model_file": read_model_file,
        "load_3dpw": lambda path: load_3dpw(path, body_model=object()),
    }


def npz_readers() -> dict[str, callable]:
    return {
        "hmrlab.io.read_npz": hmrlab.io.read_npz,
        "safe_files.read_npz": safe_files.read_npz,
        "load_h36m 3D": load_h36m,
        "load_h36m 2D": lambda path: load_h36m(H36M_3D, path),
        "load_smpl_params": load_smpl_params,
    }


def test_pickled_payloads_are_refused_by_every_pickle_reader(tmp_path, extension_registered) -> None:
    marker = tmp_path / "marker"
    files = {name: pickle.dumps({"sequence": "x", "poses": [payload]}, protocol=2)
             for name, payload in payloads(marker, tmp_path).items()}
    files.update(raw_pickles(marker))
    for kind, data in files.items():
        path = tmp_path / "hostile.pkl"
        path.write_bytes(data)
        for reader_name, reader in pickle_readers().items():
            with pytest.raises(ValueError, match=r"hostile\.pkl: .*refused") as error:
                reader(path)
            assert "never runs code" in str(error.value), (kind, reader_name)
            assert not marker.exists(), (kind, reader_name)


def test_pickled_payloads_inside_npz_are_refused_by_every_npz_reader(tmp_path) -> None:
    marker = tmp_path / "marker"
    for kind, payload in payloads(marker, tmp_path).items():
        member = object_member({"S1": payload})
        for reader_name, reader in npz_readers().items():
            name = "positions_2d" if "2D" in reader_name else "positions_3d"
            path = write_npz(tmp_path / "hostile.npz", {name: member, "metadata": object_member({})})
            with pytest.raises(ValueError, match=rf"hostile\.npz \(member '{name}\.npy'\): .*refused"):
                reader(path)
            assert not marker.exists(), (kind, reader_name)


def test_body_model_npz_object_members_are_never_unpickled(tmp_path, monkeypatch) -> None:
    """A valid SMPL-X file with a hostile extra member, through HMRLAB_BODY_MODEL_DIR: smplx's own loader
    runs it (the bug); hmrlab reads the arrays itself and hands smplx a clean copy."""
    import smplx

    marker = tmp_path / "marker"
    arrays = tiny_model("smplx")
    for kind, payload in payloads(marker, tmp_path).items():
        folder = tmp_path / kind.replace(".", "_")
        folder.mkdir()
        hostile = write_npz(folder / "hmrlab_free_smplx.npz", {**arrays, "joint2num": object_member(payload)})
        if kind == "os.system":  # positive control: smplx alone unpickles the member
            smplx.SMPLX(str(hostile), ext="npz")
            assert marker.exists()
            marker.unlink()
        monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
        model = load_body_model("smplx")
        assert model.v_template.shape == (40, 3)
        assert "joint2num" not in body_model_arrays("smplx")
        assert "joint2num" not in read_model_file(hostile)
        assert not marker.exists(), kind
        # The arrays smplx needs, as hostile members: refused as missing, never unpickled.
        write_npz(folder / "hmrlab_free_smpl.npz", {**tiny_model("smpl"), "v_template": object_member(payload)})
        with pytest.raises(ValueError, match=r"hmrlab_free_smpl\.npz lacks the keys \['v_template'\]"):
            load_body_model("smpl")
        assert not marker.exists(), kind


def test_convert_command_drops_hostile_members(tmp_path) -> None:
    marker = tmp_path / "marker"
    source = write_npz(tmp_path / "in.npz", {**tiny_model(), "x": object_member(payloads(marker, tmp_path)["os.system"])})
    result = subprocess.run(
        [sys.executable, "-m", "hmrlab.body", "convert", str(source), str(tmp_path / "out.npz")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz", allow_pickle=False) as clean:
        assert "x" not in clean.files and "v_template" in clean.files
    assert not marker.exists()


# --- Gadgets made of allowed names -------------------------------------------------------------------

_RECONSTRUCT = np.zeros(0).__reduce_ex__(2)[0]


class ArrayState:
    """Pickles as NumPy does an array, ``_reconstruct(ndarray, (0,), b'b')`` then BUILD `state`."""

    def __init__(self, state, args=(np.ndarray, (0,), b"b")):
        self.state, self.args = state, args

    def __reduce__(self):
        return _RECONSTRUCT, self.args, self.state


def test_allowed_names_cannot_allocate_or_decode_beyond_the_file(tmp_path) -> None:
    petabyte = (10**7, 10**7, 3)
    gadgets = {
        "declared shape over 24 bytes": ArrayState((1, petabyte, np.dtype("f8"), False, b"\0" * 24)),
        "object array of a huge shape": ArrayState((1, petabyte, np.dtype("O"), False, [1, 2])),
        "negative shape": ArrayState((1, (-1,), np.dtype("f8"), False, b"")),
        "huge _reconstruct shape": ArrayState(None, (np.ndarray, petabyte, b"b")),
        "bytes(10**12)": Payload(bytes, (10**12,)),
        "codecs zlib": Payload(__import__("codecs").encode, ("x" * 100, "zlib")),
        "dtype from a list": Payload(np.dtype, ([("a", "<f4")],)),
        "structured dtype state": np.dtype([("a", "<f4")]),
        "sparse matrix of a huge shape": scipy.sparse.csc_matrix(petabyte[:2]),
    }
    for name, gadget in gadgets.items():
        path = tmp_path / "gadget.pkl"
        path.write_bytes(pickle.dumps({"a": gadget}, protocol=2))
        for reader_name, reader in pickle_readers().items():
            with pytest.raises(ValueError, match=r"gadget\.pkl") as error:
                reader(path)
            assert "MemoryError" not in str(error.value), (name, reader_name)


def test_huge_npy_headers_are_refused_before_allocating(tmp_path) -> None:
    for reader_name, reader in {**npz_readers(), "read_model_file": read_model_file}.items():
        name = "positions_2d" if "2D" in reader_name else "positions_3d"
        path = write_npz(tmp_path / "huge.npz", {name: huge_header_member(), "metadata": object_member({})})
        with pytest.raises(ValueError, match=r"huge\.npz \(member '.*'\): .*declares a \(10000000, 10000000, 3\) "
                                             r"float64 array \(2\.4 PB\) but the member holds 24 bytes"):
            reader(path)
    path = write_npz(tmp_path / "negative.npz", {"a": huge_header_member((-5,))})
    with pytest.raises(ValueError, match=r"negative\.npz \(member 'a\.npy'\)"):
        hmrlab.io.read_npz(path)


def test_files_beyond_the_size_limit_are_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hmrlab.io, "MAX_ARRAY_BYTES", 1000)
    path = write_npz(tmp_path / "big.npz", {"a": np.zeros(1000)})
    with pytest.raises(ValueError, match=r"big\.npz: .*more than hmrlab's limit of 1000 bytes"):
        hmrlab.io.read_npz(path)
    (tmp_path / "big.json").write_text(json.dumps(list(range(1000))))
    with pytest.raises(ValueError, match=r"big\.json: .*limit"):
        hmrlab.io.read_json(tmp_path / "big.json")


# --- Sparse matrices whose indices lie (a segfault in scipy's toarray) ----------------------------------

SPARSE_SCRIPT = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    import scipy.sparse
    from hmrlab.body import load_body_model, read_model_file

    folder, kind = sys.argv[1], sys.argv[2]
    base = dict(np.load(folder + "/base.npz"))
    good = scipy.sparse.csc_matrix(base["J_regressor"])
    bad = {}
    m = good.copy(); m.indices[3] = 10**6; bad["row index out of range"] = m
    m = good.copy(); m.indices[3] = -7; bad["negative row index"] = m
    m = good.copy(); m.indptr[5] = m.indptr[6] + 3; bad["decreasing indptr"] = m
    m = good.copy(); m.indptr[-1] = len(m.data) + 1000; bad["indptr beyond data"] = m
    m = good.copy(); m._shape = (24, 10**9); bad["shape far beyond data"] = m
    m = scipy.sparse.coo_matrix(base["J_regressor"]); m.row[0] = 99; bad["coo row out of range"] = m
    m = good.tocsr(); m.indices[0] = 10**6; bad["csr column out of range"] = m
    for name, matrix in bad.items():
        path = f"{folder}/{name.replace(' ', '_')}.pkl"
        with open(path, "wb") as handle:
            pickle.dump({**base, "J_regressor": matrix}, handle, protocol=2)
        print("case", name, flush=True)
        try:
            read_model_file(path) if kind == "read" else load_body_model("smpl", path=path)
        except ValueError as error:
            print("refused", error, flush=True)
        else:
            print("loaded", flush=True)
    """
)


@pytest.mark.parametrize("kind", ["read", "load"])
def test_sparse_indices_out_of_range_are_refused_not_a_segfault(tmp_path, kind) -> None:
    np.savez(tmp_path / "base.npz", **tiny_model())
    result = subprocess.run(
        [sys.executable, "-c", SPARSE_SCRIPT, str(tmp_path), kind],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120,
    )
    assert result.returncode == 0, f"exit {result.returncode} (-11 is a segfault)\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    cases = [line for line in lines if line.startswith("case")]
    refused = [line for line in lines if line.startswith("refused")]
    assert len(cases) == 7 and len(refused) == 7, result.stdout
    for line in refused:
        assert ".pkl: the entry 'J_regressor' is not a valid array" in line, line


def test_convert_command_refuses_a_bad_sparse_matrix_cleanly(tmp_path) -> None:
    matrix = scipy.sparse.csc_matrix(np.eye(24, 40))
    matrix.indices[3] = 10**6
    source = tmp_path / "SMPL_NEUTRAL.pkl"
    source.write_bytes(pickle.dumps({**tiny_model(), "J_regressor": matrix}, protocol=2))
    result = subprocess.run(
        [sys.executable, "-m", "hmrlab.body", "convert", str(source), str(tmp_path / "out.npz")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120,
    )
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr}"
    assert "SMPL_NEUTRAL.pkl: the entry 'J_regressor'" in result.stderr and "outside 0..23" in result.stderr
    assert not (tmp_path / "out.npz").exists()


# --- Truncated, empty, corrupt, unreadable -------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def free_smpl():
    """The shipped SMPL-layout model, built once (and before a test makes files unreadable)."""
    return load_body_model("smpl")


def body_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    arrays = tiny_model()
    arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    return path


def readers_and_files(tmp_path: Path) -> list[tuple[str, callable, Path]]:
    """(name, reader, a valid file it reads): every file kind hmrlab reads."""
    model_npz = hmrlab.io.atomic_save_npz(tmp_path / "model.npz", **tiny_model())
    return [
        ("read_model_file npz", read_model_file, model_npz),
        ("load_body_model npz", lambda p: load_body_model("smpl", path=p), model_npz),
        ("read_model_file pkl", read_model_file, body_pickle(tmp_path)),
        ("load_3dpw", lambda p: load_3dpw(p, body_model=free_smpl()), PW3D_FIXTURE),
        ("load_h36m 3D", load_h36m, H36M_3D),
        ("load_h36m 2D", lambda p: load_h36m(H36M_3D, p), H36M_2D),
        ("load_coco_keypoints", load_coco_keypoints, COCO_FIXTURE),
        ("load_h36m_cameras", load_h36m_cameras, SYNTH / "cameras.json"),
        ("load_smpl_params", load_smpl_params, SYNTH / "smpl_params.npz"),
    ]


def test_truncated_files_name_the_file_and_the_problem(tmp_path) -> None:
    for name, reader, source in readers_and_files(tmp_path):
        reader(source)  # the whole file reads
        data = source.read_bytes()
        for offset in sorted({0, 10, len(data) // 2, len(data) - 1}):
            path = tmp_path / f"cut_{offset}{source.suffix}"
            path.write_bytes(data[:offset])
            with pytest.raises(ValueError) as error:
                reader(path)
            message = str(error.value)
            assert str(path) in message and "cannot read this" in message, (name, offset, message)
            assert ("empty" if offset == 0 else "again") in message, (name, offset, message)
            path.unlink()


def test_unreadable_files_say_so(tmp_path, monkeypatch) -> None:
    locked: list[Path] = []

    def open_unless_locked(file, *args, **kwargs):  # what chmod 000 does for a non-root user
        if Path(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(hmrlab.io, "open", open_unless_locked, raising=False)
    free_smpl()
    for name, reader, source in readers_and_files(tmp_path):
        locked[:] = [source]
        with pytest.raises(ValueError, match="permission denied. Make it readable") as error:
            reader(source)
        assert str(source) in str(error.value), name


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_chmod_000_files_say_so(tmp_path) -> None:
    for name, reader, source in readers_and_files(tmp_path):
        path = tmp_path / f"locked{source.suffix}"
        path.write_bytes(source.read_bytes())
        path.chmod(0)
        with pytest.raises(ValueError, match="permission denied"):
            reader(path)
        path.unlink()


def test_folders_and_missing_files(tmp_path) -> None:
    for reader in (hmrlab.io.read_pickle, hmrlab.io.read_npz, hmrlab.io.read_json, safe_files.read_image):
        with pytest.raises(FileNotFoundError, match="absent"):
            reader(tmp_path / "absent")
        with pytest.raises(ValueError, match="is not a file"):
            reader(tmp_path)


def test_corrupt_images_name_the_file(tmp_path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "ok.jpg")
    assert safe_files.read_image(tmp_path / "ok.jpg").shape == (6, 8, 3)
    data = (tmp_path / "ok.jpg").read_bytes()
    for name, content in (("cut.jpg", data[: len(data) // 2]), ("noise.jpg", os.urandom(300)), ("empty.png", b""),
                          ("page.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{name}: cannot read this image") as error:
            safe_files.read_image(tmp_path / name)
        assert "JPEG or PNG" in str(error.value)


# --- Wrong types inside, deep nesting, NaN --------------------------------------------------------------

def test_deep_json_is_refused_not_a_recursion_error(tmp_path) -> None:
    content = json.loads(COCO_FIXTURE.read_text())
    text = json.dumps(content)[:-1] + ', "info": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"deep\.json: cannot read this COCO .*nested deeper than Python can parse"):
        load_coco_keypoints(path)
    (tmp_path / "cameras.json").write_text('{"S1": ' * 50_000 + "[]" + "}" * 50_000)
    with pytest.raises(ValueError, match=r"cameras\.json: .*nested deeper"):
        load_h36m_cameras(tmp_path / "cameras.json")
    (tmp_path / "manifest.json").write_text("[" * 100_000)
    assert not is_cached(tmp_path, "digest", [])


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(images=5), r"images must be a list"),
        (lambda c: c.update(categories={"id": 1}), r"categories must be a list"),
        (lambda c: c["categories"][0].update(keypoints=17), r"keypoints must be a list"),
        (lambda c: c["categories"][0].update(id="person"), r"person category's id must be a whole number"),
        (lambda c: c["images"][0].update(id=[1]), r"images\[0\]\['id'\] must be a whole number"),
        (lambda c: c["images"][0].update(width=1e300), r"images\[0\]\['width'\] is 1e\+300, too large"),
        (lambda c: c["images"][0].update(file_name=3), r"file_name'\] must be a string"),
        (lambda c: c["annotations"][0].update(image_id="1"), r"annotations\[0\]\['image_id'\] must be a whole"),
        (lambda c: c["annotations"][1].update(keypoints="x" * 51), r"annotations\[1\]\['keypoints'\] must be"),
        (lambda c: c["annotations"][0].update(iscrowd=[0]), r"iscrowd'\] must be 0 or 1"),
        (lambda c: c["annotations"].append(7), r"annotations\[3\] must be a dict"),
        (lambda c: c.clear() or c.update(x=[]), r"lacks the key 'categories'"),
    ],
)
def test_wrong_types_in_coco_files_name_file_and_entry(tmp_path, edit, message) -> None:
    content = json.loads(COCO_FIXTURE.read_text())
    edit(content)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as error:
        load_coco_keypoints(path)
    assert str(path) in str(error.value)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"edited\.json must be a dict"):
        load_coco_keypoints(path)


def test_nan_and_inf_are_refused_in_every_kind_of_file(tmp_path) -> None:
    coco = COCO_FIXTURE.read_text().replace('"keypoints": [', '"keypoints": [NaN, ', 1)
    (tmp_path / "nan.json").write_text(coco)
    with pytest.raises(ValueError, match=r"nan\.json: .*non-finite number NaN"):
        load_coco_keypoints(tmp_path / "nan.json")

    arrays = tiny_model()
    arrays["v_template"][3, 1] = np.nan
    arrays["posedirs"][0, 0, 0] = np.inf
    path = hmrlab.io.atomic_save_npz(tmp_path / "model.npz", **arrays)
    for reader in (read_model_file, lambda p: load_body_model("smpl", path=p), lambda p: body_model_arrays("smpl", p)):
        with pytest.raises(ValueError, match=r"model\.npz is not a valid body model: .*v_template holds 1 NaN"):
            reader(path)

    with open(PW3D_FIXTURE, "rb") as handle:
        sequence = pickle.load(handle, encoding="latin1")
    sequence["poses"][1] = sequence["poses"][1].copy()
    sequence["poses"][1][2, 5] = np.nan
    (tmp_path / "nan.pkl").write_bytes(pickle.dumps(sequence, protocol=2))
    with pytest.raises(ValueError, match=r"nan\.pkl: poses\[1\] .* holds 1 NaN or infinite value"):
        load_3dpw(tmp_path / "nan.pkl", body_model=free_smpl())

    with np.load(H36M_3D, allow_pickle=True) as data:
        positions = data["positions_3d"].item()
    positions["S1"]["Directions"][0, 4, 2] = np.inf
    write_npz(tmp_path / "inf.npz", {"positions_3d": object_member(positions)})
    with pytest.raises(ValueError, match=r"inf\.npz: positions_3d\['S1'\]\['Directions'\] .*NaN or infinite"):
        load_h36m(tmp_path / "inf.npz")

    params = dict(np.load(SYNTH / "smpl_params.npz"))
    params["S1/betas"] = params["S1/betas"].copy()
    params["S1/betas"][0] = np.nan
    np.savez(tmp_path / "smpl_params.npz", **params)
    with pytest.raises(ValueError, match=r"smpl_params\.npz: S1/betas holds 1 NaN"):
        load_smpl_params(tmp_path / "smpl_params.npz")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda a: a.update(f=a["f"] + 1000), r"f holds .*; indices must lie in 0\.\.39 \(V\)"),
        (lambda a: a.update(weights=a["weights"][:, :5]), r"weights must have shape \(V=40, J=24\)"),
        (lambda a: a.update(J_regressor=a["J_regressor"][:, :7]), r"J_regressor must have shape \(J=24, V=40\)"),
        (lambda a: a.update(posedirs=a["posedirs"][:, :, :9]), r"posedirs must have shape \(V=40, 3, 207\)"),
        (lambda a: a.update(shapedirs=a["shapedirs"][:10]), r"shapedirs must have shape \(V=40, 3, B\)"),
        (lambda a: a.update(v_template=a["v_template"].astype(str)), r"v_template must hold floating-point"),
        (lambda a: a.update(f=a["f"].astype(np.float32)), r"f must hold integers"),
        (lambda a: a["kintree_table"].__setitem__((0, 3), 20), r"kintree_table's first row is not a kinematic tree"),
        (lambda a: a.update(kintree_table=a["kintree_table"][:, :20]), r"kintree_table must have shape \(2, J=24\)"),
    ],
)
def test_inconsistent_body_model_arrays_are_refused(tmp_path, edit, message) -> None:
    arrays = tiny_model()
    edit(arrays)
    path = hmrlab.io.atomic_save_npz(tmp_path / "model.npz", **arrays)
    with pytest.raises(ValueError, match=rf"model\.npz is not a valid body model: .*{message}"):
        load_body_model("smpl", path=path)


def test_smplx_landmarks_and_hands_are_checked(tmp_path) -> None:
    arrays = tiny_model("smplx")
    arrays["lmk_faces_idx"] = arrays["lmk_faces_idx"] + 10_000
    arrays["hands_meanl"] = arrays["hands_meanl"][:40]
    path = hmrlab.io.atomic_save_npz(tmp_path / "model.npz", **arrays)
    with pytest.raises(ValueError, match=r"hands_meanl must have shape \(45,\).*lmk_faces_idx holds .*\(F\)"):
        load_body_model("smplx", path=path)


def test_zero_frame_3dpw_sequence_round_trips(tmp_path) -> None:
    """hmrlab's own 0-frame file reads back (Python 3 pickles an empty buffer as bytes())."""
    sequence = {
        "sequence": "empty", "genders": ["m"], "betas": [np.zeros(10)], "poses": [np.zeros((0, 72))],
        "trans": [np.zeros((0, 3))], "poses2d": [np.zeros((0, 3, 18))], "campose_valid": [np.zeros(0)],
        "cam_poses": np.zeros((0, 4, 4)), "cam_intrinsics": np.eye(3),
    }
    path = write_3dpw(tmp_path / "empty.pkl", sequence)
    loaded = load_3dpw(path, body_model=free_smpl())["empty"]
    assert loaded.cam_poses.shape == (0, 4, 4)
    assert loaded.actors[0].poses.shape == (0, 72) and loaded.actors[0].joints.shape == (0, 24, 3)


# --- Every file opener in the package uses a restricted reader -------------------------------------------

# Files whose JSON and images this issue routes through hmrlab.io.read_json and safe_files.read_image.
_OWN_READERS = {"coco.py", "h36m.py", "pw3d.py", "synth.py", "synth_images.py", "datasets.py", "safe_files.py"}


def _safe_loaders(tree: ast.AST) -> set[str]:
    """Classes of the module that subclass yaml.SafeLoader (a Loader= that constructs no objects)."""
    return {
        node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base) in ("yaml.SafeLoader", "yaml.CSafeLoader") for base in node.bases)
    }


def test_every_file_reader_in_the_package_is_restricted() -> None:
    problems = []
    for path in sorted([*(REPO / "hmrlab").rglob("*.py"), *(REPO / "tools").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        safe_loaders = _safe_loaders(tree) | {"yaml.SafeLoader", "yaml.CSafeLoader"}
        own = path.name in _OWN_READERS and path.parent.name == "data" or path.parent.name == "body"
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = ast.unparse(call.func)
            keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
            if (
                name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "yaml.unsafe_load", "yaml.full_load")
                or name in ("np.load", "numpy.load") and keywords.get("allow_pickle") != "False"
                or name == "torch.load" and keywords.get("weights_only") != "True"
                or name == "yaml.load" and keywords.get("Loader") not in safe_loaders
                or own and name in ("json.load", "json.loads")
                or own and name == "Image.open" and "formats" not in keywords
            ):
                problems.append(f"{path.relative_to(REPO)}:{call.lineno}: {ast.unparse(call)}")
    assert not problems, "readers that bypass hmrlab.io / safe_files:\n" + "\n".join(problems)

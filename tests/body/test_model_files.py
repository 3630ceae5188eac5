"""hmrlab.body.model_files: licensed-style pickles (chumpy, scipy.sparse) round-trip without chumpy;
anything else in a pickle is refused; npz files are written and read without pickle."""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from hmrlab.body.__main__ import main
from hmrlab.body.model_files import read_model_file
from hmrlab.io import atomic_save_npz

# A throwaway `chumpy.ch.Ch` with chumpy's pickled state: its __dict__ without the weak-reference
# entries `_parents` and `_cache` (chumpy/ch.py, Ch.__getstate__).
FAKE_CHUMPY_CH = textwrap.dedent(
    """
    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()
            self._itr = None
            self._parents = {}
            self._cache = {"r": None, "drs": {}}
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

        def __getstate__(self):
            state = dict(self.__dict__)
            del state["_parents"], state["_cache"]
            return state
    """
)


def write_chumpy_pickle(content: dict[str, object], path: Path, workdir: Path, chumpy_keys: tuple[str, ...]) -> None:
    """Pickle `content` (protocol 2, as the SMPL files) with `chumpy_keys` wrapped in a fake chumpy Ch.

    The fake module exists only while writing: reading must work without any chumpy.
    """
    package = workdir / "fake_chumpy" / "chumpy"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "ch.py").write_text(FAKE_CHUMPY_CH)
    sys.path.insert(0, str(package.parent))
    try:
        importlib.invalidate_caches()
        ch = importlib.import_module("chumpy.ch")
        wrapped = {k: ch.Ch(v) if k in chumpy_keys else v for k, v in content.items()}
        with open(path, "wb") as handle:
            pickle.dump(wrapped, handle, protocol=2)
    finally:
        sys.path.remove(str(package.parent))
        sys.modules.pop("chumpy.ch", None)
        sys.modules.pop("chumpy", None)


@pytest.fixture()
def smpl_like(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    rng = np.random.default_rng(0)
    content = {
        "v_template": rng.normal(size=(30, 3)),
        "shapedirs": rng.normal(size=(30, 3, 10)),
        "posedirs": rng.normal(size=(30, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(rng.random((24, 30)) * (rng.random((24, 30)) < 0.2)),
        "weights": rng.dirichlet(np.ones(24), size=30),
        "kintree_table": np.vstack([np.arange(-1, 23) % 4294967296, np.arange(24)]).astype(np.int64),
        "f": rng.integers(0, 30, size=(40, 3)).astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "pose_training_info": {"num_poses": 1786},
    }
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_chumpy_pickle(content, path, tmp_path, chumpy_keys=("v_template", "shapedirs", "weights"))
    return path, content


def test_licensed_style_pickle_round_trips_without_chumpy(smpl_like, tmp_path: Path) -> None:
    path, content = smpl_like
    assert b"chumpy.ch" in path.read_bytes() and b"scipy.sparse" in path.read_bytes()
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")
    arrays = read_model_file(path)
    assert set(arrays) == set(content) - {"pose_training_info"}  # a dict of metadata, not an array
    for key, value in content.items():
        if key == "J_regressor":
            np.testing.assert_array_equal(arrays[key], value.toarray())
        elif key != "pose_training_info":
            np.testing.assert_array_equal(arrays[key], np.asarray(value))
            assert arrays[key].dtype == np.asarray(value).dtype

    npz = atomic_save_npz(tmp_path / "out" / "model.npz", **arrays)
    with np.load(npz, allow_pickle=False) as clean:
        assert set(clean.files) == set(arrays)
        for key in arrays:
            np.testing.assert_array_equal(clean[key], arrays[key])
    assert read_model_file(npz).keys() == arrays.keys()


def test_convert_command_line(smpl_like, tmp_path: Path, capsys) -> None:
    path, content = smpl_like
    target = tmp_path / "SMPL_NEUTRAL.npz"
    main(["convert", str(path), str(target)])
    assert f"to {target}" in capsys.readouterr().out
    with np.load(target, allow_pickle=False) as clean:
        np.testing.assert_array_equal(clean["shapedirs"], content["shapedirs"])
    with pytest.raises(SystemExit):
        main(["convert", str(tmp_path / "absent.pkl"), str(target)])
    assert "no body-model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an npz named .pkl would then be unpickled by read_model_file
        main(["convert", str(path), str(tmp_path / "converted.pkl")])
    assert "must be an .npz file" in capsys.readouterr().err
    assert not (tmp_path / "converted.pkl").exists()


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickles_that_name_other_callables_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for payload, refused in [
        ({"v_template": _RunsCode(marker)}, "system"),
        ({"weights": np.zeros(3), "x": eval}, "eval"),
    ]:
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(ValueError, match=f"evil.pkl: .*refused to load .*{refused}"):
            read_model_file(path)
    assert not marker.exists()


def test_npz_object_entries_are_skipped_and_bad_paths_rejected(tmp_path: Path) -> None:
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, v_template=np.ones((3, 3)), joint2num=np.array({"pelvis": 0}, dtype=object))
    assert list(read_model_file(path)) == ["v_template"]
    with pytest.raises(FileNotFoundError, match="no body-model file"):
        read_model_file(tmp_path / "missing.pkl")
    (tmp_path / "model.obj").write_text("")
    with pytest.raises(ValueError, match=r"\.npz or \.pkl"):
        read_model_file(tmp_path / "model.obj")

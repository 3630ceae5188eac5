import numpy as np
import pytest
import torch

from hmrlab.io import atomic_save_npz, atomic_torch_save, atomic_write, atomic_write_text


def test_atomic_write_text_lands_and_creates_parents(tmp_path):
    target = tmp_path / "out" / "notes.txt"
    assert atomic_write_text(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.txt"]


def test_atomic_torch_save_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3}
    target = atomic_torch_save(state, tmp_path / "ckpt.pt")
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], state["w"])


def test_atomic_save_npz_round_trip_keeps_the_name(tmp_path):
    target = tmp_path / "data.bin"  # numpy.savez on a path would have written data.bin.npz
    atomic_save_npz(target, x=np.arange(4), y=np.eye(2))
    with np.load(target) as data:
        np.testing.assert_array_equal(data["x"], np.arange(4))
        np.testing.assert_array_equal(data["y"], np.eye(2))
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_atomic_save_npz_needs_arrays(tmp_path):
    with pytest.raises(ValueError, match="at least one array"):
        atomic_save_npz(tmp_path / "empty.npz")


def test_atomic_save_npz_refuses_python_objects_and_keeps_the_old_file(tmp_path):
    target = atomic_save_npz(tmp_path / "meta.npz", x=np.ones(2))
    with pytest.raises(ValueError, match=r"\['meta'\] hold Python objects.*allow_pickle=False"):
        atomic_save_npz(target, x=np.zeros(2), meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        atomic_save_npz(target, names=["a", None])  # a list becomes an object array
    with np.load(target, allow_pickle=False) as data:
        assert data.files == ["x"]
        np.testing.assert_array_equal(data["x"], np.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["meta.npz"]


def test_atomic_save_npz_output_loads_without_pickle(tmp_path):
    arrays = {"names": np.array(["pelvis", "left_hip"]), "f": np.arange(6).reshape(2, 3), "s": np.float32(2)}
    target = atomic_save_npz(tmp_path / "clean.npz", compress=True, **arrays)
    with np.load(target, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(data[key], value)
            assert data[key].dtype == np.asarray(value).dtype


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path, error):
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_write(target) as tmp:
            assert tmp.parent == target.parent
            tmp.write_text("half of the new")
            raise error
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_failing_writer_keeps_old_file(tmp_path):
    target = tmp_path / "state.pt"
    atomic_torch_save({"v": 1}, target)
    with pytest.raises(Exception):
        atomic_torch_save({"v": lambda: None}, target)  # lambdas cannot be pickled
    assert torch.load(target, weights_only=True) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_rejects_a_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        atomic_write_text(tmp_path, "x")

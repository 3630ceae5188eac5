"""Human3.6M as VideoPose3D prepares it: ``data_3d_h36m.npz`` and ``data_2d_h36m_<detector>.npz``.

The format (VideoPose3D, Pavllo et al., CVPR 2019: ``DATASETS.md``, ``data/prepare_data_h36m.py``,
``common/h36m_dataset.py``):

- ``data_3d_h36m.npz`` holds one entry, ``positions_3d``: a pickled dict subject ("S1") -> action
  ("Walking 1") -> (T, 32, 3) float32 world positions of the 32 motion-capture joints, in metres
  (the original files are in millimetres; VideoPose3D divides by 1000). Its loader removes 15 of the
  32 joints (`H36M_32_REMOVED`: toes, hand ends and joints that coincide with others), leaving 17 in
  the order of `hmrlab.body.skeletons.H36M_17`.
- ``data_2d_h36m_<detector>.npz`` (``gt``, ``cpn_ft_h36m_dbb``, ...) holds ``positions_2d``: subject ->
  action -> list of the 4 cameras' (T, 17, 2) pixel coordinates, and ``metadata``: a dict with
  ``num_joints`` (17), ``keypoints_symmetry`` ([left joints], [right joints], paired in order) and, in
  the detection files, ``layout_name`` ("h36m"). Some videos have a few frames more than the motion
  capture; VideoPose3D cuts the 2D to the 3D length, and so do we.

Subjects S1, S5, S6, S7, S8 train and S9, S11 test (Protocol 1 of Ionescu et al., TPAMI 2014, as
used by VideoPose3D and its successors).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmrlab.body.skeletons import H36M_17
from hmrlab.data.safe_files import checked_array, checked_dict, read_npz, require_key
from hmrlab.io import atomic_write

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")

# Joints of the 32-joint layout that VideoPose3D's Human36mDataset removes; the 17 kept ones, in
# index order, are H36M_17's joints in its order (pelvis, right leg, left leg, spine, neck, head,
# left arm, right arm).
H36M_32_REMOVED = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_32_KEPT = tuple(j for j in range(32) if j not in H36M_32_REMOVED)

# Writing 17 known joints into the 32-joint file: each removed joint takes the position of a kept
# one. Toe and hand-end joints take the end joint of their limb (ankle, wrist); the lower spine
# joint 11 takes the pelvis; the two shoulder-girdle joints 16 and 24 take the thorax (13), where
# Human3.6M's own recordings place them. VideoPose3D's loader drops all 15, so any filling reads back
# the same 17 joints; this one keeps the 32-joint skeleton drawable.
_REMOVED_FILLED_FROM = {
    4: 3, 5: 3, 9: 8, 10: 8, 11: 0, 16: 13, 20: 19, 21: 19, 22: 19, 23: 19, 24: 13, 28: 27, 29: 27, 30: 27, 31: 27,
}
H36M_17_TO_32 = np.array([H36M_32_KEPT.index(_REMOVED_FILLED_FROM.get(j, j)) for j in range(32)])

_LEFT_17 = [j for j, name in enumerate(H36M_17.joint_names) if name.startswith("left")]
H36M_METADATA: dict[str, Any] = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [_LEFT_17, H36M_17.flip_permutation[_LEFT_17].tolist()],
}

_3D_FILE = "VideoPose3D Human3.6M 3D file (data_3d_h36m.npz)"
_2D_FILE = "VideoPose3D Human3.6M 2D file (data_2d_h36m_<detector>.npz)"


@dataclass
class H36MData:
    """Human3.6M poses in the 17-joint layout of `H36M_17`.

    - ``positions_3d[subject][action]``: (T, 17, 3) float32 world positions, metres (z up, as recorded).
    - ``positions_2d[subject][action]``: list of one (T, 17, 2) float32 array per camera, pixels;
      None without a 2D file. Subjects present only in the 2D file (S2-S4 in the detection files)
      are kept; their 2D is not cut.
    - ``metadata``: the 2D file's metadata dict (``num_joints``, ``keypoints_symmetry``, ...), or None.
    """

    positions_3d: dict[str, dict[str, np.ndarray]]
    positions_2d: dict[str, dict[str, list[np.ndarray]]] | None = None
    metadata: dict[str, Any] | None = None


def check_h36m_metadata(metadata: Any, where: str) -> dict[str, Any]:
    """`metadata` if it describes the 17-joint Human3.6M layout, else `ValueError` naming `where`.

    ``num_joints`` must be 17, ``layout_name`` (when present) "h36m", and ``keypoints_symmetry``'s
    left/right lists, paired in order, must swap exactly the joints `H36M_17.flip_permutation` swaps.
    """
    num_joints = require_key(metadata, "num_joints", where, "the number of joints, 17")
    if num_joints != 17:
        raise ValueError(
            f"{where}: num_joints is {num_joints}; only the 17-joint Human3.6M layout is supported "
            "(Stacked Hourglass files have 16 joints)"
        )
    layout = metadata.get("layout_name", "h36m")
    if layout != "h36m":
        raise ValueError(f"{where}: layout_name is {layout!r}; expected 'h36m' (the 17-joint Human3.6M order)")
    symmetry = require_key(metadata, "keypoints_symmetry", where, "[left joints], [right joints]")
    expected = H36M_METADATA["keypoints_symmetry"]
    try:
        left, right = (np.asarray(side, dtype=np.int64).reshape(-1) for side in symmetry)
        permutation = np.arange(17)
        permutation[left], permutation[right] = right, left
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{where}: keypoints_symmetry must be two equal-length lists of joint indices "
                         f"below 17, e.g. {expected}; got {symmetry!r}") from error
    if not np.array_equal(permutation, H36M_17.flip_permutation):
        raise ValueError(
            f"{where}: keypoints_symmetry {symmetry!r} does not swap left and right joints of the Human3.6M "
            f"17-joint layout; expected {expected}"
        )
    return dict(metadata)


def _selected(tree: Any, subjects: tuple[str, ...] | None, where: str) -> list[str]:
    tree = checked_dict(tree, where, "subject -> action -> poses")
    if subjects is None:
        return list(tree)
    missing = [s for s in subjects if s not in tree]
    if missing:
        raise ValueError(f"{where} has no subjects {missing}; it has {sorted(map(str, tree))}")
    return list(subjects)


def _read_3d(path: Path, subjects: tuple[str, ...] | None) -> dict[str, dict[str, np.ndarray]]:
    tree = require_key(read_npz(path, _3D_FILE), "positions_3d", str(path), "subject -> action -> (T, 32, 3) metres")
    positions = {}
    for subject in _selected(tree, subjects, f"{path}: positions_3d"):
        where = f"{path}: positions_3d[{subject!r}]"
        positions[subject] = {
            action: checked_array(array, ("T", 32, 3), f"{where}[{action!r}]")[:, H36M_32_KEPT].astype(np.float32)
            for action, array in checked_dict(tree[subject], where, "action -> (T, 32, 3) metres").items()
        }
    return positions


def _camera_list(cameras: Any, where: str, num_frames: int | None) -> list[np.ndarray]:
    if not isinstance(cameras, (list, tuple)):
        raise ValueError(f"{where} must be a list of per-camera (T, 17, 2) arrays; got a {type(cameras).__name__}")
    arrays = [checked_array(c, ("T", 17, 2), f"{where}[{i}]").astype(np.float32) for i, c in enumerate(cameras)]
    if num_frames is None:
        return arrays
    short = [i for i, a in enumerate(arrays) if len(a) < num_frames]
    if short:
        raise ValueError(f"{where}: cameras {short} have fewer frames than the {num_frames} of the 3D poses")
    return [a[:num_frames] for a in arrays]


def _read_2d(
    path: Path, subjects: tuple[str, ...] | None, positions_3d: dict[str, dict[str, np.ndarray]]
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, Any]]:
    content = read_npz(path, _2D_FILE)
    metadata = check_h36m_metadata(require_key(content, "metadata", str(path), "a dict"), f"{path}: metadata")
    tree = require_key(content, "positions_2d", str(path), "subject -> action -> list of (T, 17, 2) pixels")
    chosen = _selected(tree, subjects, f"{path}: positions_2d")
    absent = [s for s in positions_3d if s not in tree]
    if absent:
        raise ValueError(f"{path}: positions_2d lacks the subjects {absent} that the 3D file has")
    positions = {}
    for subject in chosen:
        where = f"{path}: positions_2d[{subject!r}]"
        actions = checked_dict(tree[subject], where, "action -> list of (T, 17, 2) pixels")
        mocap = positions_3d.get(subject, {})
        missing = [a for a in mocap if a not in actions]
        if missing:
            raise ValueError(f"{where} lacks the actions {missing} that the 3D file has")
        positions[subject] = {
            action: _camera_list(cameras, f"{where}[{action!r}]", len(mocap[action]) if action in mocap else None)
            for action, cameras in actions.items()
        }
    return positions, metadata


def load_h36m(
    path_3d: str | os.PathLike,
    path_2d: str | os.PathLike | None = None,
    *,
    subjects: tuple[str, ...] | list[str] | None = None,
) -> H36MData:
    """Read VideoPose3D's Human3.6M files into the 17-joint layout of `H36M_17`.

    `path_3d` is ``data_3d_h36m.npz`` ((T, 32, 3) metres per subject and action, reduced here to
    (T, 17, 3) by dropping `H36M_32_REMOVED`, as VideoPose3D's loader does); `path_2d`, optional, a
    ``data_2d_h36m_<detector>.npz`` (four (T, 17, 2) pixel arrays per action, cut to the 3D length).
    `subjects` keeps only those subjects, e.g. `H36M_TEST_SUBJECTS`. The pickled dicts inside are read
    with a restricted unpickler (`hmrlab.data.safe_files`), never with ``allow_pickle=True``.
    Raises `FileNotFoundError` for a missing file and `ValueError` naming the file, key and expected
    layout for anything else (corrupt archive, missing key, (T, 17, 3) where (T, 32, 3) belongs).
    """
    chosen = None if subjects is None else tuple(subjects)
    positions_3d = _read_3d(Path(path_3d), chosen)
    if path_2d is None:
        return H36MData(positions_3d)
    positions_2d, metadata = _read_2d(Path(path_2d), chosen, positions_3d)
    return H36MData(positions_3d, positions_2d, metadata)


def _expand_to_32(array: Any, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[1:] == (32, 3):
        return array.astype(np.float32)
    return checked_array(array, ("T", 17, 3), f"{where} (or (T, 32, 3))")[:, H36M_17_TO_32].astype(np.float32)


def _save_npz(path: str | os.PathLike, **entries: Any) -> Path:
    # np.savez_compressed stores each dict as a pickled 0-d object array, exactly as VideoPose3D does.
    with atomic_write(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **entries)
    return Path(path)


def write_h36m(
    path_3d: str | os.PathLike,
    positions_3d: dict[str, dict[str, np.ndarray]],
    path_2d: str | os.PathLike | None = None,
    positions_2d: dict[str, dict[str, list[np.ndarray]]] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write Human3.6M poses as VideoPose3D's ``data_3d_h36m.npz`` (and ``data_2d_h36m_<detector>.npz``).

    `positions_3d[subject][action]` is (T, 17, 3) in `H36M_17` order or (T, 32, 3), world metres;
    17-joint poses are spread to the 32-joint layout by `H36M_17_TO_32` (each removed joint copies a
    nearby kept one, see `_REMOVED_FILLED_FROM`), so VideoPose3D's own loader and `load_h36m` read back
    the 17 given joints. `positions_2d[subject][action]` is a list of per-camera (T, 17, 2) pixel
    arrays, written with `metadata` (default `H36M_METADATA`). Both files are written atomically.
    """
    if (path_2d is None) != (positions_2d is None):
        raise ValueError("pass path_2d and positions_2d together (or neither) to write the 2D file")
    where = "write_h36m: positions_3d"
    tree_3d = {
        subject: {
            action: _expand_to_32(array, f"{where}[{subject!r}][{action!r}]")
            for action, array in checked_dict(actions, f"{where}[{subject!r}]", "action -> (T, 17, 3)").items()
        }
        for subject, actions in checked_dict(positions_3d, where, "subject -> action -> (T, 17, 3)").items()
    }
    tree_2d = None
    if positions_2d is not None:
        where = "write_h36m: positions_2d"
        tree_2d = {
            subject: {
                action: _camera_list(cameras, f"{where}[{subject!r}][{action!r}]", None)
                for action, cameras in checked_dict(actions, f"{where}[{subject!r}]", "action -> cameras").items()
            }
            for subject, actions in checked_dict(positions_2d, where, "subject -> action -> cameras").items()
        }
        metadata = check_h36m_metadata(H36M_METADATA if metadata is None else metadata, "write_h36m: metadata")
    _save_npz(path_3d, positions_3d=tree_3d)
    if tree_2d is not None:
        _save_npz(path_2d, positions_2d=tree_2d, metadata=metadata)

"""Benchmark protocols as their communities compute them: Human3.6M, 3DPW and MPI-INF-3DHP.

`hmrlab.metrics` defines each error on arrays; this module applies them the way each benchmark
aggregates over a test set, so that a number here can stand beside a paper's table:

* **Human3.6M** (`h36m_protocols`): Protocol 1 (MPJPE after aligning the pelvis), Protocol 2
  (PA-MPJPE) and MPJVE on the 17 joints, per action (all subjects and cameras of that action), then
  the **mean over the 15 actions** (the "Avg" column of every table) and the frame-weighted total.
  Actions are grouped by the name before a space ("Walking 1" counts as "Walking"), as VideoPose3D does.
* **3DPW** (`pw3d_protocol`): joints regressed from the mesh with the Human3.6M regressor, the 14
  LSP-order joints of SPIN/VIBE, both poses centred on the mid-hip; MPJPE, PA-MPJPE, MPVPE (vertices
  centred on the same mid-hip) and acceleration error per sequence, totals averaged over all frames;
  `pw3d_joint_protocol` scores joint-only models (lifters) the same way, without MPVPE.
* **MPI-INF-3DHP** (`mpi3dhp_protocol`): 3DPCK at 150 mm and AUC over 0-150 mm on root-relative
  joints, with the official strict comparison, and MPJPE.

Inputs are mappings from a sequence key to an array in metres: ``(T, J, 3)`` joints or ``(T, V, 3)``
vertices, NumPy or torch; predictions and targets must have the same keys and shapes. Results are
pandas DataFrames in millimetres (PCK and AUC in percent), one row per group plus the totals.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from hmrlab import metrics
from hmrlab.body.skeletons import H36M_17
from hmrlab.validation import check_points, to_numpy

H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
"""The 15 Human3.6M actions, named as in VideoPose3D's files, in the column order of papers' tables."""

LSP14_JOINT_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "thorax", "head",
)
"""The 14 evaluation joints of 3DPW (SPIN/VIBE's ``H36M_TO_J14``), named in `H36M_17`'s terms."""

H36M_TO_LSP14 = tuple(H36M_17.joint_names.index(name) for name in LSP14_JOINT_NAMES)
"""Indices into the 17 Human3.6M joints that give `LSP14_JOINT_NAMES`."""

LSP14_HIPS = (LSP14_JOINT_NAMES.index("right_hip"), LSP14_JOINT_NAMES.index("left_hip"))
"""The two joints whose mean is the root of the 3DPW protocol (VIBE's ``pred_pelvis``)."""

MM = 1000.0
TOTAL_ROWS = ("Average", "All frames")


def _paired_sequences(
    predictions: Mapping[Hashable, object], targets: Mapping[Hashable, object], dims: Sequence[str]
) -> list[tuple[Hashable, np.ndarray, np.ndarray]]:
    """Check that both mappings hold the same keys with same-shaped arrays; return them as float64."""
    if not predictions:
        raise ValueError("predictions is empty; pass a mapping from sequence key to a (T, J, 3) array")
    missing = [key for key in targets if key not in predictions]
    extra = [key for key in predictions if key not in targets]
    if missing or extra:
        raise ValueError(
            f"predictions and targets must have the same sequence keys; missing predictions for "
            f"{missing[:5]}, no targets for {extra[:5]}"
        )
    pairs = []
    for key, target in targets.items():
        pred = predictions[key]
        check_points(pred, f"predictions[{key!r}]", dims=dims)
        check_points(target, f"targets[{key!r}]", dims=dims)
        pred, target = to_numpy(pred).astype(np.float64), to_numpy(target).astype(np.float64)
        if pred.shape != target.shape:
            raise ValueError(f"sequence {key!r}: prediction {pred.shape} and target {target.shape} differ")
        pairs.append((key, pred, target))
    return pairs


def action_name(key: Hashable) -> str:
    """The Human3.6M action of a sequence key ``(subject, action, ...)`` or ``action``, without the
    take number: ``("S9", "Walking 1", 0)`` -> ``"Walking"``."""
    action = key[1] if isinstance(key, tuple) and len(key) > 1 else key
    if not isinstance(action, str):
        raise ValueError(f"sequence key {key!r} must be (subject, action, ...) with the action a string")
    return action.split(" ")[0]


def _group_table(per_frame: dict[str, dict[str, list[np.ndarray]]], order: Sequence[str]) -> pd.DataFrame:
    """One row per group (mean over its frames), then "Average" (mean of the group rows) and
    "All frames" (mean over every frame); columns in `order`, plus the frame count."""
    rows = {}
    for group, columns in per_frame.items():
        row = {name: float(np.concatenate(columns[name]).mean()) for name in order}
        row["frames"] = int(sum(len(v) for v in columns[order[0]]))
        rows[group] = row
    table = pd.DataFrame.from_dict(rows, orient="index")[[*order, "frames"]]
    average = table[list(order)].mean()
    everything = {
        name: float(np.concatenate([v for columns in per_frame.values() for v in columns[name]]).mean())
        for name in order
    }
    table.loc["Average"] = [*average, int(table["frames"].sum())]
    table.loc["All frames"] = [*everything.values(), int(table.loc["Average", "frames"])]
    table["frames"] = table["frames"].astype(int)
    return table


def h36m_protocols(
    predictions: Mapping[Hashable, object], targets: Mapping[Hashable, object], *, root: int = 0
) -> pd.DataFrame:
    """Human3.6M Protocols 1 and 2 and MPJVE, per action, averaged over actions, and over frames.

    predictions, targets: ``{(subject, action, camera): (T, 17, 3)}`` in metres (any key of the form
    ``(subject, action, ...)``), whole sequences in frame order (MPJVE differences consecutive
    frames). P1 aligns the `root` joint (the pelvis) of both poses; P2 aligns by similarity
    Procrustes per frame. Returns a DataFrame in mm indexed by action, sorted as `H36M_ACTIONS`
    where the names match, with the rows "Average" (mean over actions: what papers report) and
    "All frames" (mean over every frame), columns ``MPJPE``, ``PA-MPJPE``, ``MPJVE``, ``frames``.
    """
    per_action: dict[str, dict[str, list[np.ndarray]]] = {}
    for key, pred, target in _paired_sequences(predictions, targets, ("T", "J")):
        if pred.shape[0] < 2:
            raise ValueError(f"sequence {key!r} has {pred.shape[0]} frame; MPJVE needs at least 2")
        columns = per_action.setdefault(action_name(key), {"MPJPE": [], "PA-MPJPE": [], "MPJVE": []})
        columns["MPJPE"].append(MM * metrics.mpjpe(pred, target, root=root, reduction="frame"))
        columns["PA-MPJPE"].append(MM * metrics.pa_mpjpe(pred, target, reduction="frame"))
        relative = pred - pred[:, root : root + 1], target - target[:, root : root + 1]
        columns["MPJVE"].append(MM * metrics.mpjve(*relative, reduction="frame"))
    known = [a for a in H36M_ACTIONS if a in per_action]
    ordered = {a: per_action[a] for a in [*known, *sorted(set(per_action) - set(known))]}
    return _group_table(ordered, ("MPJPE", "PA-MPJPE", "MPJVE"))


def _lsp14_errors(pred17: np.ndarray, target17: np.ndarray, pred_vertices: np.ndarray | None = None,
                  target_vertices: np.ndarray | None = None) -> dict[str, list[np.ndarray]]:
    """Per-frame 3DPW errors (mm) of (T, 17, 3) Human3.6M-order joints, and of (T, V, 3) vertices if given."""
    joints = [j[:, H36M_TO_LSP14] for j in (pred17, target17)]  # (T, 14, 3)
    hips = [j[:, list(LSP14_HIPS)].mean(1, keepdims=True) for j in joints]
    p14, t14 = (j - hip for j, hip in zip(joints, hips))
    errors = {
        "MPJPE": [MM * metrics.mpjpe(p14, t14, reduction="frame")],
        "PA-MPJPE": [MM * metrics.pa_mpjpe(p14, t14, reduction="frame")],
    }
    if pred_vertices is not None:
        pv, tv = (mesh - hip for mesh, hip in zip((pred_vertices, target_vertices), hips))
        errors["MPVPE"] = [MM * metrics.mpvpe(pv, tv, reduction="frame")]
    errors["Accel"] = [MM * metrics.accel_error(p14, t14, reduction="frame")]
    return errors


def _check_accel_frames(key: Hashable, frames: int) -> None:
    if frames < 3:
        raise ValueError(f"sequence {key!r} has {frames} frames; acceleration needs at least 3")


def pw3d_protocol(
    pred_vertices: Mapping[Hashable, object],
    target_vertices: Mapping[Hashable, object],
    joint_regressor: object,
) -> pd.DataFrame:
    """3DPW's mesh protocol: MPJPE, PA-MPJPE, MPVPE and acceleration error on the 14 LSP joints.

    pred_vertices, target_vertices: ``{sequence: (T, V, 3)}`` meshes in metres (camera or world
    frame, the same for both). joint_regressor: (17, V), the Human3.6M joint regressor of the body
    model (the free model's ``J_regressor_h36m``). Joints are regressed from both meshes, reduced
    to `LSP14_JOINT_NAMES` and centred on the mid-hip; vertices are centred on the same point.
    Returns mm per sequence, with "Average" (over sequences) and "All frames" (the number papers
    report: every frame weighs the same); acceleration error is per sequence (T >= 3 frames).
    """
    regressor = to_numpy(joint_regressor).astype(np.float64)
    if regressor.ndim != 2 or regressor.shape[0] != len(H36M_17.joint_names):
        raise ValueError(f"joint_regressor must have shape (17, V); got {tuple(regressor.shape)}")
    per_sequence: dict[str, dict[str, list[np.ndarray]]] = {}
    for key, pred, target in _paired_sequences(pred_vertices, target_vertices, ("T", "V")):
        if pred.shape[1] != regressor.shape[1]:
            raise ValueError(f"sequence {key!r} has {pred.shape[1]} vertices; the regressor expects {regressor.shape[1]}")
        _check_accel_frames(key, pred.shape[0])
        per_sequence[str(key)] = _lsp14_errors(regressor @ pred, regressor @ target, pred, target)
    return _group_table(per_sequence, ("MPJPE", "PA-MPJPE", "MPVPE", "Accel"))


def pw3d_joint_protocol(
    pred_joints: Mapping[Hashable, object], target_joints: Mapping[Hashable, object]
) -> pd.DataFrame:
    """`pw3d_protocol` for models that predict joints, not meshes (2D-to-3D lifters): MPJPE,
    PA-MPJPE and acceleration error on the 14 LSP joints taken from ``{sequence: (T, 17, 3)}``
    Human3.6M-order joints in metres, centred on the mid-hip. No MPVPE. Same rows as `pw3d_protocol`.
    """
    per_sequence: dict[str, dict[str, list[np.ndarray]]] = {}
    for key, pred, target in _paired_sequences(pred_joints, target_joints, ("T", "J")):
        if pred.shape[1] != len(H36M_17.joint_names):
            raise ValueError(f"sequence {key!r} has {pred.shape[1]} joints; pass the 17 Human3.6M joints")
        _check_accel_frames(key, pred.shape[0])
        per_sequence[str(key)] = _lsp14_errors(pred, target)
    return _group_table(per_sequence, ("MPJPE", "PA-MPJPE", "Accel"))


def mpi3dhp_protocol(
    predictions: Mapping[Hashable, object],
    targets: Mapping[Hashable, object],
    *,
    root: int = 0,
    joints: Sequence[int] | None = None,
) -> pd.DataFrame:
    """MPI-INF-3DHP: 3DPCK (150 mm), AUC (0-150 mm, 31 thresholds) in percent and MPJPE in mm.

    predictions, targets: ``{sequence: (T, J, 3)}`` in metres; both are made relative to the `root`
    joint (the pelvis: index 0 in `H36M_17` order, 14 in 3DHP's own 17-joint order) and, with
    `joints`, reduced to those indices before scoring (papers differ: state which you use).
    Returns one row per sequence plus "Average" and "All frames".
    """
    per_sequence: dict[str, dict[str, list[np.ndarray]]] = {}
    for key, pred, target in _paired_sequences(predictions, targets, ("T", "J")):
        pred, target = pred - pred[:, root : root + 1], target - target[:, root : root + 1]
        if joints is not None:
            pred, target = pred[:, list(joints)], target[:, list(joints)]
        per_sequence[str(key)] = {
            "PCK": [100 * metrics.pck(pred, target, reduction="frame")],
            "AUC": [100 * metrics.auc(pred, target, reduction="frame")],
            "MPJPE": [MM * metrics.mpjpe(pred, target, reduction="frame")],
        }
    return _group_table(per_sequence, ("PCK", "AUC", "MPJPE"))

"""Keypoint layouts of 2D detectors and 3D datasets, and one converter between any two of them.

A layout is an ordered list of named points. Each layout keeps its joints' own spelling (OpenPose's
``"RShoulder"``, MediaPipe's ``"left_foot_index"``) in `KeypointLayout.joint_names` and gives each
joint an anatomical name from one shared vocabulary in `KeypointLayout.points`: the same point name in
two layouts means the same place on the body (up to each dataset's definition, as in
`hmrlab.body.skeletons`). Orders, from each format's own documentation:

- ``coco17``: COCO person keypoints (cocodataset.org "Data format"; `hmrlab.body.skeletons.COCO_17`).
- ``body25``: OpenPose BODY_25 (``doc/02_output.md`` of CMU-Perceptual-Computing-Lab/openpose, "Pose
  Output Format (BODY_25)"; ``POSE_BODY_25_BODY_PARTS`` in ``poseParameters.hpp``): Nose, Neck, RShoulder,
  RElbow, RWrist, LShoulder, LElbow, LWrist, MidHip, RHip, RKnee, RAnkle, LHip, LKnee, LAnkle, REye,
  LEye, REar, LEar, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel (the 26th "Background" map
  is not a keypoint).
- ``coco18``: OpenPose's COCO model, 18 points (same document, "Pose Output Format (COCO)"; also 3DPW's
  ``poses2d``, `hmrlab.data.pw3d.PW3D_KEYPOINTS_2D`).
- ``halpe26``: AlphaPose's Halpe body set (README of Fang-Haoshu/Halpe-FullBody, "26 body keypoints"):
  COCO's 17, then Head (top), Neck, Hip (centre), LBigToe, RBigToe, LSmallToe, RSmallToe, LHeel, RHeel.
- ``mediapipe33``: MediaPipe Pose Landmarker / BlazePose (ai.google.dev, "Pose landmarker", the 33
  landmarks): nose, left/right eye inner, eye, eye outer, ears, mouth corners, shoulders, elbows, wrists,
  pinky, index and thumb knuckles, hips, knees, ankles, heels, foot index (big-toe tip).
- ``h36m17``: Human3.6M's 17 joints as VideoPose3D keeps them (`hmrlab.body.skeletons.H36M_17`).
- ``smpl24``: the 24 joints of SMPL's kinematic tree (`hmrlab.body.skeletons.SMPL_24`).

`convert_keypoints(x, source, target)` gives every target joint from the source's points, by the
first rule of `RULES` that the source can feed, frame by frame, and says for each joint of each frame
how it was obtained (`KeypointOrigin`): MEASURED (the source has that very point), COPIED (one
nearby source point stands in for it), SYNTHESISED (a weighted mean of several points) or MISSING
(no rule applies: NaN, confidence 0). A point is missing in a frame when its coordinates are not
finite or its confidence is not positive. The synthesis rules (weights sum to 1, so they work on 2D
pixels and 3D metres alike, and commute with any camera's affine part):

- pelvis (hip centre) = mid-hip, ``(left_hip + right_hip) / 2``;
- thorax = mid-shoulder; failing a shoulder, OpenPose's or Halpe's neck is copied;
- spine (Human3.6M) = ``(pelvis + thorax) / 2``;
- neck/nose marker (Human3.6M's joint 9) = the nose, copied;
- head top = ``1.33 mid_ear - 0.48 thorax + 0.15 nose``; without ears
  ``3.66 mid_eye - 2.72 nose + 0.06 thorax``; without eyes ``0.26 nose + 1.36 thorax - 0.62 pelvis``;
- SMPL: pelvis = ``0.96 pelvis + 0.04 thorax``; spine1, 2, 3 = ``(0.8, 0.46, 0.19) pelvis +
  (0.2, 0.54, 0.81) thorax``; neck = ``0.58 thorax + 0.42 mid_ear``; head = ``0.76 mid_ear + 0.09 nose +
  0.15 thorax``; collar = ``0.78 thorax + 0.13 shoulder + 0.09 mid_ear``; foot = ``0.23 ankle + 0.77
  mid_toe`` (mid_toe the mean of big and small toe), or ``0.32 ankle + 0.68 big_toe``; hand = the mean
  of MediaPipe's index and pinky knuckles;
- the big toe and MediaPipe's foot index stand in for each other; Human3.6M's neck/nose marker stands
  in for the nose.

The weights were fitted by least squares on the free body model (`hmrlab.body`), posed by
`hmrlab.data.motions`, with the face points from its nose, eye and ear vertices: on those bodies
the Human3.6M rules land within 4 mm on average (head top 3 mm, 11 mm at worst), SMPL's head, collar
and foot within 5 mm, its neck within 15 mm, and its spine joints 3-5 cm off (a straight line
cannot follow the spine's curve; tests/data/test_keypoint_formats.py measures all of these). A
detector's hip and shoulder points sit differently from a mocap skeleton's, so on real detections
expect more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from hmrlab.body.skeletons import COCO_17, H36M_17, SMPL_24, Skeleton
from hmrlab.validation import format_shape


class KeypointOrigin(IntEnum):
    """How `convert_keypoints` obtained a target joint in a frame."""

    MISSING = 0  # no rule could be fed: coordinates NaN, confidence 0
    MEASURED = 1  # the source has this very point
    COPIED = 2  # one nearby source point stands in for it
    SYNTHESISED = 3  # a weighted mean of several points (module docstring)


@dataclass(frozen=True)
class KeypointLayout:
    """An ordered keypoint set: the format's own ``joint_names``, their anatomical ``points`` (the
    shared vocabulary of `RULES`), ``bones`` (pairs of indices to draw) and the `Skeleton` (a tree
    in topological order) where hmrlab has one."""

    name: str
    joint_names: tuple[str, ...]
    points: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    skeleton: Skeleton | None = None

    def __post_init__(self) -> None:
        if len(self.joint_names) != len(self.points) or len(set(self.points)) != len(self.points):
            raise ValueError(f"{self.name}: one distinct point name per joint needed")
        if any(not (0 <= a < len(self.points) and 0 <= b < len(self.points)) for a, b in self.bones):
            raise ValueError(f"{self.name}: bones must index the {len(self.points)} joints")

    @property
    def num_joints(self) -> int:
        return len(self.points)

    def index(self, point: str) -> int:
        """Position of the anatomical `point` (or joint name); ValueError listing them if absent."""
        for names in (self.points, self.joint_names):
            if point in names:
                return names.index(point)
        raise ValueError(f"{self.name} has no point {point!r}; points: {', '.join(self.points)}")

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) indices swapping each left point with its right twin (for mirroring)."""
        swapped = [p.replace("left", "\0").replace("right", "left").replace("\0", "right") for p in self.points]
        return np.array([self.points.index(p) for p in swapped])


def _bones_by_name(points: tuple[str, ...], pairs: str) -> tuple[tuple[int, int], ...]:
    return tuple((points.index(a), points.index(b)) for a, b in (pair.split("-") for pair in pairs.split()))


def _layout(name: str, joint_names: tuple[str, ...], points: tuple[str, ...], pairs: str) -> KeypointLayout:
    return KeypointLayout(name, joint_names, points, _bones_by_name(points, pairs))


def _from_skeleton(skeleton: Skeleton, points: tuple[str, ...]) -> KeypointLayout:
    return KeypointLayout(skeleton.name, skeleton.joint_names, points, tuple(skeleton.bones()), skeleton)


_LIMBS = (
    "left_shoulder-left_elbow left_elbow-left_wrist right_shoulder-right_elbow right_elbow-right_wrist "
    "left_hip-left_knee left_knee-left_ankle right_hip-right_knee right_knee-right_ankle"
)
_FACE = "nose-left_eye left_eye-left_ear nose-right_eye right_eye-right_ear"
_FEET = ("left_ankle-left_big_toe left_big_toe-left_small_toe left_ankle-left_heel "
         "right_ankle-right_big_toe right_big_toe-right_small_toe right_ankle-right_heel")

COCO17 = _from_skeleton(COCO_17, COCO_17.joint_names)

_BODY25_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip", "RHip", "RKnee",
    "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar", "LBigToe", "LSmallToe", "LHeel",
    "RBigToe", "RSmallToe", "RHeel",
)
_BODY25_POINTS = (
    "nose", "neck_base", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)
BODY25 = _layout("OpenPose-BODY_25", _BODY25_NAMES, _BODY25_POINTS, (
    f"neck_base-nose neck_base-left_shoulder neck_base-right_shoulder neck_base-pelvis pelvis-left_hip "
    f"pelvis-right_hip {_LIMBS} {_FACE} {_FEET}"))

_COCO18_NAMES = tuple(n for n in _BODY25_NAMES[:19] if n != "MidHip")
_COCO18_POINTS = tuple(p for p in _BODY25_POINTS[:19] if p != "pelvis")
COCO18 = _layout("OpenPose-COCO-18", _COCO18_NAMES, _COCO18_POINTS, (
    f"neck_base-nose neck_base-left_shoulder neck_base-right_shoulder neck_base-left_hip neck_base-right_hip "
    f"{_LIMBS} {_FACE}"))

_HALPE_NAMES = (
    "Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow", "LWrist", "RWrist",
    "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "Head", "Neck", "Hip", "LBigToe", "RBigToe",
    "LSmallToe", "RSmallToe", "LHeel", "RHeel",
)
_HALPE_POINTS = COCO_17.joint_names + (
    "head_top", "neck_base", "pelvis", "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe",
    "left_heel", "right_heel",
)
HALPE26 = _layout("Halpe-26", _HALPE_NAMES, _HALPE_POINTS, (
    f"neck_base-head_top neck_base-nose neck_base-left_shoulder neck_base-right_shoulder neck_base-pelvis "
    f"pelvis-left_hip pelvis-right_hip {_LIMBS} {_FACE} {_FEET}"))

_MEDIAPIPE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
MEDIAPIPE33 = _layout("MediaPipe-33", _MEDIAPIPE_NAMES, _MEDIAPIPE_NAMES, (
    f"left_shoulder-right_shoulder left_shoulder-left_hip right_shoulder-right_hip left_hip-right_hip {_LIMBS} "
    "nose-left_eye_inner left_eye_inner-left_eye left_eye-left_eye_outer left_eye_outer-left_ear "
    "nose-right_eye_inner right_eye_inner-right_eye right_eye-right_eye_outer right_eye_outer-right_ear "
    "mouth_left-mouth_right left_wrist-left_pinky left_wrist-left_index left_pinky-left_index "
    "left_wrist-left_thumb right_wrist-right_pinky right_wrist-right_index right_pinky-right_index "
    "right_wrist-right_thumb left_ankle-left_heel left_heel-left_foot_index left_ankle-left_foot_index "
    "right_ankle-right_heel right_heel-right_foot_index right_ankle-right_foot_index"))

H36M17 = _from_skeleton(H36M_17, tuple(
    {"neck": "neck_nose", "head": "head_top"}.get(n, n) for n in H36M_17.joint_names))

# SMPL's own joints inside the body get names of their own ("smpl_neck" is the base of the skull, not
# OpenPose's neck); limb joints share the detectors' names.
_SMPL_OWN = {"pelvis", "spine1", "spine2", "spine3", "left_foot", "right_foot", "neck", "left_collar",
             "right_collar", "head", "left_hand", "right_hand"}
SMPL24 = _from_skeleton(SMPL_24, tuple(f"smpl_{n}" if n in _SMPL_OWN else n for n in SMPL_24.joint_names))

LAYOUTS: dict[str, KeypointLayout] = {
    "coco17": COCO17, "body25": BODY25, "coco18": COCO18, "halpe26": HALPE26, "mediapipe33": MEDIAPIPE33,
    "h36m17": H36M17, "smpl24": SMPL24,
}
_ALIASES = {
    "coco": "coco17", "openposebody25": "body25", "openpose25": "body25", "openposecoco18": "coco18",
    "openpose18": "coco18", "openposecoco": "coco18", "halpe": "halpe26", "alphapose": "halpe26",
    "mediapipe": "mediapipe33", "blazepose": "mediapipe33", "h36m": "h36m17", "human36m": "h36m17",
    "human36m17": "h36m17", "smpl": "smpl24",
}


def get_layout(layout: str | KeypointLayout) -> KeypointLayout:
    """The layout named `layout` (case, ``-`` and ``_`` ignored: "COCO-17", "body_25", "h36m"), or
    `layout` itself; ValueError listing the names otherwise."""
    if isinstance(layout, KeypointLayout):
        return layout
    key = str(layout).lower().replace("-", "").replace("_", "").replace(" ", "").replace(".", "")
    key = _ALIASES.get(key, key)
    if key not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r}; choose one of {', '.join(LAYOUTS)} "
                         f"(or an alias: {', '.join(sorted(_ALIASES))})")
    return LAYOUTS[key]


# ---------------------------------------------------------------------------------------------------
# Rules: point -> alternatives, each a tuple of (point, weight) terms, tried in order after the point
# itself. One term of weight 1 copies a point; it is used only where the source *measures* that point
# (so copies never chain). Terms of weighted means may be derived points themselves.
# ---------------------------------------------------------------------------------------------------

Rule = tuple[tuple[str, float], ...]


def _mid(a: str, b: str) -> Rule:
    return ((a, 0.5), (b, 0.5))


RULES: dict[str, tuple[Rule, ...]] = {
    # helpers that no layout measures
    "mid_ear": (_mid("left_ear", "right_ear"),),
    "mid_eye": (_mid("left_eye", "right_eye"),),
    "left_mid_toe": (_mid("left_big_toe", "left_small_toe"),),
    "right_mid_toe": (_mid("right_big_toe", "right_small_toe"),),
    # the trunk
    "pelvis": (_mid("left_hip", "right_hip"),),
    "thorax": (_mid("left_shoulder", "right_shoulder"), (("neck_base", 1.0),)),
    "neck_base": (_mid("left_shoulder", "right_shoulder"), (("thorax", 1.0),)),
    "spine": (_mid("pelvis", "thorax"),),
    # the head
    "nose": ((("neck_nose", 1.0),),),
    "neck_nose": ((("nose", 1.0),),),
    "head_top": (
        (("mid_ear", 1.33), ("thorax", -0.48), ("nose", 0.15)),
        (("mid_eye", 3.66), ("nose", -2.72), ("thorax", 0.06)),
        (("nose", 0.26), ("thorax", 1.36), ("pelvis", -0.62)),
    ),
    # the feet
    "left_big_toe": ((("left_foot_index", 1.0),),),
    "right_big_toe": ((("right_foot_index", 1.0),),),
    "left_foot_index": ((("left_big_toe", 1.0),),),
    "right_foot_index": ((("right_big_toe", 1.0),),),
    # SMPL's joints inside the body
    "smpl_pelvis": ((("pelvis", 0.96), ("thorax", 0.04)),),
    "smpl_spine1": ((("pelvis", 0.8), ("thorax", 0.2)),),
    "smpl_spine2": ((("pelvis", 0.46), ("thorax", 0.54)),),
    "smpl_spine3": ((("pelvis", 0.19), ("thorax", 0.81)),),
    "smpl_neck": ((("thorax", 0.58), ("mid_ear", 0.42)),),
    "smpl_head": ((("mid_ear", 0.76), ("nose", 0.09), ("thorax", 0.15)),),
    **{f"smpl_{side}_collar": ((("thorax", 0.78), (f"{side}_shoulder", 0.13), ("mid_ear", 0.09)),)
       for side in ("left", "right")},
    **{f"smpl_{side}_foot": (((f"{side}_ankle", 0.23), (f"{side}_mid_toe", 0.77)),
                             ((f"{side}_ankle", 0.32), (f"{side}_big_toe", 0.68)))
       for side in ("left", "right")},
    **{f"smpl_{side}_hand": (_mid(f"{side}_index", f"{side}_pinky"),) for side in ("left", "right")},
}


class ConvertedKeypoints(NamedTuple):
    """`convert_keypoints`' result: ``keypoints`` (..., J, C) and ``origin`` (..., J) `KeypointOrigin` values."""

    keypoints: np.ndarray
    origin: np.ndarray


class _Resolver:
    """Evaluates points of the vocabulary on one source array, memoised, with per-frame fallback."""

    def __init__(self, x: np.ndarray, layout: KeypointLayout):
        self.xy = x[..., :2].astype(np.float64)
        self.conf = x[..., 2].astype(np.float64) if x.shape[-1] == 3 else None
        valid = np.isfinite(self.xy).all(-1) if x.shape[-1] == 2 else np.isfinite(x).all(-1)
        if self.conf is not None:
            valid &= self.conf > 0
        self.valid = valid
        self.layout = layout
        self.cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.active: set[str] = set()

    def measured(self, point: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if point not in self.layout.points:
            return None
        j = self.layout.points.index(point)
        conf = self.conf[..., j] if self.conf is not None else self.valid[..., j].astype(np.float64)
        return self.xy[..., j, :], self.valid[..., j], conf

    def resolve(self, point: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(values (..., D), valid (...,), confidence (...,), origin (...,)) of `point` in every frame."""
        if point in self.cache:
            return self.cache[point]
        if point in self.active:
            raise RuntimeError(f"RULES has a cycle through {point!r}")  # a bug in the table, not in the input
        self.active.add(point)
        shape = self.valid.shape[:-1]
        values = np.full((*shape, self.xy.shape[-1]), np.nan)
        valid = np.zeros(shape, dtype=bool)
        conf = np.zeros(shape)
        origin = np.full(shape, KeypointOrigin.MISSING, dtype=np.int8)
        measured = self.measured(point)
        if measured is not None:
            values[measured[1]] = measured[0][measured[1]]
            valid, conf = measured[1].copy(), np.where(measured[1], measured[2], 0.0)
            origin[valid] = KeypointOrigin.MEASURED
        for rule in RULES.get(point, ()):
            if valid.all():
                break
            term = self._evaluate(rule)
            if term is None:
                continue
            rule_values, rule_valid, rule_conf = term
            fill = rule_valid & ~valid
            values[fill] = rule_values[fill]
            conf[fill] = rule_conf[fill]
            origin[fill] = KeypointOrigin.COPIED if len(rule) == 1 else KeypointOrigin.SYNTHESISED
            valid |= fill
        self.active.discard(point)
        self.cache[point] = (values, valid, conf, origin)
        return self.cache[point]

    def _evaluate(self, rule: Rule) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if len(rule) == 1:  # a copy: only of a point the source measures
            return self.measured(rule[0][0])
        total, valid, conf = 0.0, None, None
        for point, weight in rule:
            values, point_valid, point_conf, _ = self.resolve(point)
            if not point_valid.any():
                return None
            total = total + weight * np.where(point_valid[..., None], values, 0.0)
            valid = point_valid if valid is None else valid & point_valid
            conf = point_conf if conf is None else np.minimum(conf, point_conf)
        return total, valid, conf


def convert_keypoints(
    x: np.ndarray,
    source: str | KeypointLayout,
    target: str | KeypointLayout,
    *,
    confidence: bool | None = None,
) -> ConvertedKeypoints:
    """Keypoints (..., J_source, C) in layout `source` -> (..., J_target, C) in layout `target`.

    C is 2 (pixels, or any 2D coordinates) or 3: (x, y, confidence) for 2D detections, or (x, y, z)
    for 3D joints (metres). `confidence` says which a third channel is; None takes it as a confidence
    for the 2D detector layouts (all but ``h36m17`` and ``smpl24``) and as z for those two.
    Each target joint comes from the first rule (module docstring, `RULES`) the source can feed in
    that frame; a synthesised joint's confidence is the lowest of the points it is made from.
    Returns `ConvertedKeypoints` (``keypoints``, float64, NaN and confidence 0 where MISSING; and
    ``origin`` (..., J_target) int8 `KeypointOrigin` values).
    """
    source, target = get_layout(source), get_layout(target)
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[-2] != source.num_joints or x.shape[-1] not in (2, 3):
        raise ValueError(f"x must have shape (..., {source.num_joints}, 2 or 3) for {source.name}; "
                         f"got {format_shape(x.shape)}")
    if confidence is None:
        confidence = source.name not in (H36M17.name, SMPL24.name)
    has_confidence = x.shape[-1] == 3 and confidence
    if has_confidence:
        resolver = _Resolver(x, source)
    else:  # 2D or 3D coordinates without confidence: every finite point is measured
        resolver = _Resolver(np.concatenate([x, np.ones_like(x[..., :1])], -1), source)
        resolver.xy = x.astype(np.float64)
    out_channels = x.shape[-1]
    out = np.full((*x.shape[:-2], target.num_joints, out_channels), np.nan)
    origin = np.zeros((*x.shape[:-2], target.num_joints), dtype=np.int8)
    for j, point in enumerate(target.points):
        values, valid, conf, how = resolver.resolve(point)
        out[..., j, : values.shape[-1]] = values
        if has_confidence:
            out[..., j, 2] = np.where(valid, conf, 0.0)
        origin[..., j] = how
    return ConvertedKeypoints(out, origin)


def describe_conversion(source: str | KeypointLayout, target: str | KeypointLayout) -> list[str]:
    """One line per target joint: how it is obtained from `source` when every source point is
    present, e.g. ``"head: SYNTHESISED from LEar, REar, ..."``."""
    source, target = get_layout(source), get_layout(target)
    _, origin = convert_keypoints(np.zeros((1, source.num_joints, 2)), source, target)
    lines = []
    for j, (name, point) in enumerate(zip(target.joint_names, target.points)):
        how = KeypointOrigin(int(origin[0, j]))
        made = how in (KeypointOrigin.COPIED, KeypointOrigin.SYNTHESISED)
        lines.append(f"{name}: {how.name}" + (f" ({_formula(point, source)})" if made else ""))
    return lines


def _formula(point: str, source: KeypointLayout) -> str:
    resolver = _Resolver(np.zeros((1, source.num_joints, 3)) + [0, 0, 1], source)
    for rule in RULES.get(point, ()):
        if resolver._evaluate(rule) is not None:
            if len(rule) == 1:
                return f"from {source.joint_names[source.points.index(rule[0][0])]}"
            return " + ".join(f"{w:g} {p}" for p, w in rule).replace("+ -", "- ")
    return "?"


__all__ = [
    "BODY25", "COCO17", "COCO18", "ConvertedKeypoints", "H36M17", "HALPE26", "KeypointLayout", "KeypointOrigin",
    "LAYOUTS", "MEDIAPIPE33", "RULES", "SMPL24", "convert_keypoints", "describe_conversion", "get_layout",
]

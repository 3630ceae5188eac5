"""Joint sets used across the collection: names, kinematic parents, left/right pairs and mappings.

Orders follow the datasets' and models' own files, so arrays read from them need no reordering:
- `H36M_17`: the 17 joints of Human3.6M used by VideoPose3D, MixSTE and most lifting papers.
- `SMPL_24`: the 24 joints of the SMPL kinematic tree (smplx's `SMPL_JOINT_NAMES`).
- `SMPLX_55`: the 55 joints of the SMPL-X kinematic tree (smplx's `JOINT_NAMES[:55]`): SMPL's first
  22 body joints, jaw and eyes, then 15 finger joints per hand.
- `COCO_17`: the 17 COCO keypoints in the order of the COCO annotation files.

The same name in two sets does not mean the same anatomical point: SMPL's `left_hip` is a joint
centre regressed from the mesh, Human3.6M's a motion-capture marker estimate. To score SMPL against
Human3.6M, regress the H36M joints from the vertices (`J_regressor_h36m`) rather than renaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A named joint set: `parents[j]` is the parent joint of j, -1 for the root.

    Joints are in topological order (a parent comes before its children), so forward kinematics
    and drawing can walk the joints in index order.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.joint_names) != len(self.parents):
            raise ValueError(f"{self.name}: {len(self.joint_names)} names but {len(self.parents)} parents")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"{self.name}: joint names must be unique")
        for joint, parent in enumerate(self.parents):
            if not -1 <= parent < joint:
                raise ValueError(
                    f"{self.name}: joint {joint} has parent {parent}; parents must be -1 or an earlier joint"
                )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Position of the joint called `name`; ValueError listing the names if absent."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"{self.name} has no joint {name!r}; joints: {', '.join(self.joint_names)}") from None

    @property
    def flip_permutation(self) -> np.ndarray:
        """(J,) indices that swap each left joint with its right twin (by name), for flip augmentation."""
        names = self.joint_names
        swapped = [n.replace("left", "\0").replace("right", "left").replace("\0", "right") for n in names]
        return np.array([names.index(n) for n in swapped])

    def bones(self) -> list[tuple[int, int]]:
        """(parent, child) pairs, one per non-root joint."""
        return [(p, j) for j, p in enumerate(self.parents) if p >= 0]


def joint_mapping(source: Skeleton, target: Skeleton) -> np.ndarray:
    """(J_target,) indices into `source` giving each `target` joint, matched by name.

    Use as ``joints[..., joint_mapping(source, target), :]`` to reorder ``(..., J_source, 3)``
    into ``(..., J_target, 3)``. Every target joint must exist in `source`; for a partial match
    use `shared_joints`.
    """
    missing = [n for n in target.joint_names if n not in source.joint_names]
    if missing:
        raise ValueError(
            f"{source.name} has no joints named {', '.join(missing)} (needed by {target.name}); "
            f"use shared_joints({source.name!r}, {target.name!r}) for the joints both sets name"
        )
    return np.array([source.joint_names.index(n) for n in target.joint_names])


def shared_joints(source: Skeleton, target: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Joints named in both sets: ``(source_idx, target_idx)``, each (K,), in target order.

    ``target_joints[..., target_idx, :]`` corresponds to ``source_joints[..., source_idx, :]``;
    e.g. `SMPL_24` and `H36M_17` share 15 names (all but H36M's `spine` and `thorax`).
    """
    pairs = [(source.joint_names.index(n), t) for t, n in enumerate(target.joint_names) if n in source.joint_names]
    source_idx, target_idx = zip(*pairs) if pairs else ((), ())
    return np.array(source_idx, dtype=np.int64), np.array(target_idx, dtype=np.int64)


H36M_17 = Skeleton(
    "Human3.6M-17",
    (
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
        "right_shoulder", "right_elbow", "right_wrist",
    ),
    (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)

SMPL_24 = Skeleton(
    "SMPL-24",
    (
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
        "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hand", "right_hand",
    ),
    (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21),
)


def _smplx_55() -> Skeleton:
    # SMPL-X keeps SMPL's 22 body joints (dropping the hand ends), adds jaw and eyes under the head,
    # then for each hand the fingers in smplx's (alphabetical) order, three joints each, knuckle first:
    # knuckle 1 hangs from the wrist and each further joint from the previous one.
    names = list(SMPL_24.joint_names[:22])
    parents = list(SMPL_24.parents[:22])
    head = SMPL_24.index("head")
    for face_joint in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
        names.append(face_joint)
        parents.append(head)
    for side in ("left", "right"):
        wrist = SMPL_24.index(f"{side}_wrist")
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            for k in (1, 2, 3):
                parents.append(wrist if k == 1 else len(names) - 1)
                names.append(f"{side}_{finger}{k}")
    return Skeleton("SMPL-X-55", tuple(names), tuple(parents))


SMPLX_55 = _smplx_55()

# COCO's own skeleton is a graph with loops (it links both shoulders and both hips); this is the
# spanning tree of its limbs rooted at the nose: nose-eye-ear-shoulder, then arms, torso sides, legs.
COCO_17 = Skeleton(
    "COCO-17",
    (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    (-1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
)

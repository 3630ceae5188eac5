"""Joint sets used across the collection: names, kinematic parents and left/right pairs.

Orders follow the datasets' own files so arrays read from them need no reordering:
- `H36M_17`: the 17 joints of Human3.6M used by VideoPose3D, MixSTE and most lifting papers.
- `SMPL_24`: the 24 joints of the SMPL kinematic tree (smplx's `JOINT_NAMES[:24]`).
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
